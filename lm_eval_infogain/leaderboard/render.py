"""Leaderboard → Markdown, CSV and one self-contained HTML page.

Markdown and HTML share one column layout (:func:`columns`), so the README table and the web page
never disagree; CSV carries the unrounded numbers and every setting for spreadsheets and scripts.
The HTML has no external assets: styles, the sorting script and the plots (as data URIs) are inline.
Its sorting also runs from the URL — ``leaderboard.html#sort=3`` (ascending by the 4th column) or
``#sort=-3`` (descending) — so a headless browser can check it without clicking.
"""

from __future__ import annotations

import base64
import csv
import html
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from .paired import DEFAULT_RESAMPLES
from .table import SETTING_LABELS, Cell, Leaderboard, Row, _fmt_setting

__all__ = ["Column", "columns", "to_markdown", "to_csv", "to_html", "fmt_cell"]


@dataclass(frozen=True)
class Column:
    header: str
    numeric: bool
    text: Callable[[Row], str]
    sort: Callable[[Row], Any]
    title: str = ""


def source_path(path: Path, roots: Sequence[Path] = ()) -> str:
    """A source file relative to the working directory, else to the parent of the results folder it
    was found in — committed tables must not carry machine paths."""
    path = path.resolve()
    for base in (Path.cwd(), *(Path(r).resolve().parent for r in roots)):
        try:
            return path.relative_to(base.resolve()).as_posix()
        except ValueError:
            continue
    return path.name


def _fmt(value: float | None, scale: float = 100.0) -> str:
    if value is None:
        return "–"
    return f"{value:.1f}" if scale == 100.0 else f"{value:.4g}"


def fmt_cell(cell: Cell | None, scale: float = 100.0) -> str:
    """``70.0 ± 10.5`` (one run, ± stderr), ``73.3 ± 20.2 (n=3)`` (± sd over seeds), ``65.0`` (no error)."""
    if cell is None:
        return "–"
    text = _fmt(cell.mean, scale)
    if cell.err is not None:
        text += f" ± {_fmt(cell.err, scale)}"
    if cell.err_kind == "sd" or cell.n > 1:
        text += f" (n={cell.n})"
    return text


def _signed(value: float | None) -> str:
    return "–" if value is None else f"{value:+.1f}"


def _signed_scaled(value: float, scale: float) -> str:
    return f"{value * scale:+.1f}" if scale == 100.0 else f"{value * scale:+.4g}"


def paired_text(row: Row, task: str, scale: float = 100.0) -> str:
    """``+2.1 [-0.5, +4.7]`` (Δ and its interval, in the task column's unit), ``ref`` for the reference
    row, ``–`` where there is no comparison (no reference, or no per-sample files)."""
    result = row.paired.get(task)
    if result is not None:
        return f"{_signed_scaled(result.delta, scale)} [{_signed_scaled(result.ci_low, scale)}, {_signed_scaled(result.ci_high, scale)}]"
    return "ref" if row.referenced and row.reference is None else "–"


def win_tie_loss_text(row: Row, task: str) -> str:
    result = row.paired.get(task)
    if result is not None:
        return f"{result.wins}/{result.ties}/{result.losses}"
    return "ref" if row.referenced and row.reference is None else "–"


def _paired_columns(lb: Leaderboard) -> list[Column]:
    single = len(lb.metrics) == 1
    cols = []
    for task, metric in lb.metrics.items():
        prefix = "" if single else f"{task} "
        cols.append(Column(
            f"{prefix}paired Δ [95% CI]", True,
            lambda r, t=task, s=metric.scale: paired_text(r, t, s),
            lambda r, t=task, s=metric.scale: r.paired[t].delta * s if t in r.paired else None,
            f"{task}: row − reference on the documents both scored, 95% paired-bootstrap interval",
        ))
        cols.append(Column(
            f"{prefix}W/T/L", False,
            lambda r, t=task: win_tie_loss_text(r, t),
            lambda r, t=task: r.paired[t].wins - r.paired[t].losses if t in r.paired else None,
            f"{task}: documents where the row scores higher / equal / lower than its reference",
        ))
    return cols


def columns(lb: Leaderboard) -> list[Column]:
    """The displayed columns: identity, settings that vary, tasks, mean, delta, statistics."""
    cols = [
        Column("Model", False, lambda r: r.model, lambda r: r.model, "model (pretrained)"),
        Column("Sampler", False, lambda r: r.sampler_text, lambda r: r.sampler_text),
    ]
    for name in lb.varying_settings():
        if name == "steps" and "K" in lb.varying_settings():
            continue  # steps = L / K; the CSV keeps it
        cols.append(Column(
            SETTING_LABELS.get(name, name), True,
            lambda r, n=name: _fmt_setting(r.settings.get(n)) if n in r.settings else "–",
            lambda r, n=name: r.settings.get(n),
            name,
        ))
    for task, metric in lb.metrics.items():
        cols.append(Column(
            task, True,
            lambda r, t=task, s=metric.scale: fmt_cell(r.cells.get(t), s),
            lambda r, t=task: r.cells[t].mean if t in r.cells else None,
            metric.label,
        ))
    incomplete = lambda r: "†" if r.n_tasks < len(lb.metrics) else ""  # noqa: E731
    all_percent = all(m.scale == 100.0 for m in lb.metrics.values())
    cols.append(Column(
        "Mean", True,
        lambda r: fmt_cell(r.mean, 100.0 if all_percent else 1.0) + incomplete(r),
        lambda r: r.mean.mean if r.mean else None,
        "mean over tasks",
    ))
    if lb.baseline_sampler and any(r.delta_mean is not None for r in lb.rows):
        cols.append(Column(
            f"Δ vs {lb.baseline_sampler}", True,
            lambda r: _signed(r.delta_mean),
            lambda r: r.delta_mean,
            f"mean over shared tasks of (row − {lb.baseline_sampler} with the same model and shared settings)",
        ))
    if lb.paired and lb.has_paired:
        cols += _paired_columns(lb)
    cols += [
        Column("H̃", True, lambda r: _fmt(r.entropy), lambda r: r.entropy, "mean cumulative entropy per sample"),
        Column("Calls", True, lambda r: _fmt(r.model_calls), lambda r: r.model_calls, "model forward calls per sample"),
        Column("Tok/s", True, lambda r: _fmt(r.tokens_per_second), lambda r: r.tokens_per_second, "generated tokens per second"),
    ]
    if any(r.batch_sizes or r.devices for r in lb.rows):  # throughput is only comparable at equal batch and device
        cols += [
            Column("Batch", True, lambda r: "/".join(r.batch_sizes) or "–",
                   lambda r: _batch_sort(r.batch_sizes), "batch size (prompts per engine call)"),
            Column("Device", False, lambda r: "/".join(r.devices) or "–", lambda r: "/".join(r.devices),
                   "device (×N: N data-parallel processes)"),
        ]
    return cols


def _batch_sort(sizes: list[str]) -> float | None:
    numbers = [float(s) for s in sizes if s.isdigit()]
    return max(numbers) if numbers else None


def _legend(lb: Leaderboard) -> list[str]:
    metric_text = "; ".join(f"`{t}`: {m.label}" for t, m in lb.metrics.items())
    lines = [
        f"Main metric per task — {metric_text}.",
        "Cells: value ± stderr for a single run; mean ± sd over seeds, with the number of seeds (n=…), for repeated runs. "
        "Mean: over tasks (± propagated stderr, or sd of the per-seed means); † = the row lacks some tasks.",
    ]
    if lb.baseline_sampler:
        lines.append(
            f"Δ vs {lb.baseline_sampler}: mean over the shared tasks of the row minus the `{lb.baseline_sampler}` row "
            "with the same model and shared decoding settings, in points."
        )
    if any(r.one_step for r in lb.rows):
        lines.append(
            "one-step: every sample was decoded in a single forward (all masks committed at once, so the sampler's "
            "order plays no role)"
            + (f"; a `{lb.baseline_sampler}` one-step row is compared with the `{lb.baseline_sampler}` row of the same "
               "model and settings apart from K, steps and block (the smallest K if there are several)."
               if lb.baseline_sampler else ".")
        )
    lines += _paired_legend(lb)
    lines.append(
        "H̃: mean cumulative entropy of a sample's committed tokens (lower = a more certain trajectory); "
        "Calls: model forward calls per sample; Tok/s: generated tokens per second of wall time, "
        "at the batch size and on the device shown next to it "
        "(– where the model reports no decoding statistics, or they are missing for some samples)."
    )
    common = lb.common_settings()
    if common:
        lines.append(
            "Common settings, as each task was decoded (where a sampler uses them): "
            + ", ".join(f"{SETTING_LABELS.get(k, k)} = {_fmt_setting(v)}" for k, v in common.items()) + "."
        )
    return lines


def _paired_legend(lb: Leaderboard) -> list[str]:
    if not lb.paired or not lb.has_reference:
        return []
    if not lb.has_paired:
        return ["Paired comparison: not shown — none of the compared runs has lm-eval's per-sample files; run "
                "lm_eval with --log_samples for Δ with a 95% interval and win/tie/loss per task."]
    return [
        f"Paired Δ [95% CI]: per task, the row minus its reference (the row its Δ vs {lb.baseline_sampler} uses; "
        "`ref` marks the reference) on the documents both scored, matched by doc_id in lm-eval's per-sample files "
        f"(--log_samples), in the task column's unit, with a 95% paired-bootstrap interval ({DEFAULT_RESAMPLES:,} "
        "resamples of the documents, seed 0). W/T/L: documents where the row scores higher / equal / lower. "
        "A row folding several seeds scores each document by its mean over those seeds. "
        "– : no comparison (no reference row, the row or its reference lacks per-sample files for the task, or "
        "they hold different documents; leaderboard.csv says which)."
    ]


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def to_markdown(lb: Leaderboard, title: str = "Leaderboard", pooled: Sequence[Any] = ()) -> str:
    """README-ready Markdown: a legend, one pipe table, and the pooled per-sample H̃ correlation."""
    cols = columns(lb)
    out = [f"## {title}", ""]
    for line in _legend(lb):
        out += [line, ""]
    out.append("| " + " | ".join(_md_escape(c.header) for c in cols) + " |")
    out.append("|" + "|".join("---:" if c.numeric else "---" for c in cols) + "|")
    for row in lb.rows:
        out.append("| " + " | ".join(_md_escape(c.text(row)) for c in cols) + " |")
    pooled = [c for c in pooled if c.r is not None]
    if pooled:
        parts = [f"`{c.task}` r = {c.r:+.2f} (n = {c.n} samples)" for c in pooled]
        out += ["", "Per-sample correlation of cumulative entropy with the main metric, pooled over all rows "
                "(entropy_correlation.csv has it per run): " + "; ".join(parts) + "."]
    return "\n".join(out) + "\n"


def to_csv(lb: Leaderboard) -> str:
    """One line per row with unrounded numbers, every setting, seeds and source files."""
    setting_names: list[str] = []
    for row in lb.rows:
        setting_names.extend(k for k in row.settings if k not in setting_names)
    header = ["model", "sampler", "one_step", *setting_names, "seeds", "n_tasks", "reference"]
    for task in lb.metrics:
        header += [task, f"{task}_err", f"{task}_err_kind", f"{task}_n", f"{task}_delta",
                   f"{task}_cumulative_entropy", f"{task}_model_calls", f"{task}_tokens_per_second"]
        if lb.paired:
            header += [f"{task}_{name}" for name in _PAIRED_CSV]
    header += ["mean", "mean_err", "mean_err_kind", "delta_mean", "cumulative_entropy", "model_calls",
               "tokens_per_second", "batch_size", "device", "sources"]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for row in lb.rows:
        line: list[Any] = [row.model, row.sampler, row.one_step, *(row.settings.get(k, "") for k in setting_names),
                           " ".join(map(str, row.seeds)), row.n_tasks,
                           "" if row.reference is None else row.reference.label]
        for task in lb.metrics:
            cell = row.cells.get(task)
            stats = row.task_stats.get(task, {})
            line += [
                "" if cell is None else cell.mean,
                "" if cell is None or cell.err is None else cell.err,
                "" if cell is None or cell.err_kind is None else cell.err_kind,
                "" if cell is None else cell.n,
                row.deltas.get(task, ""),
                _blank(stats.get("cumulative_entropy_mean")),
                _blank(stats.get("model_calls_mean")),
                _blank(stats.get("tokens_per_second")),
            ]
            if lb.paired:
                line += _paired_csv(row, task, lb.metrics[task].scale)
        mean = row.mean
        line += [
            "" if mean is None else mean.mean,
            "" if mean is None or mean.err is None else mean.err,
            "" if mean is None or mean.err_kind is None else mean.err_kind,
            _blank(row.delta_mean),
            _blank(row.entropy),
            _blank(row.model_calls),
            _blank(row.tokens_per_second),
            "/".join(row.batch_sizes),
            "/".join(row.devices),
            " ".join(source_path(p, lb.roots) for p in row.sources),
        ]
        writer.writerow(["" if v is None else v for v in line])
    return buf.getvalue()


def _blank(value: Any) -> Any:
    return "" if value is None else value


#: Per-task paired columns of the CSV (prefixed with the task name).
_PAIRED_CSV = ("paired_delta", "paired_ci_low", "paired_ci_high", "paired_wins", "paired_ties", "paired_losses",
               "paired_documents", "paired_runs", "paired_note")


def _paired_csv(row: Row, task: str, scale: float) -> list[Any]:
    """Δ and interval in the task column's unit, unrounded; counts; runs per side; why absent."""
    result = row.paired.get(task)
    if result is None:
        if task not in row.cells:
            note = ""
        elif row.referenced and row.reference is None:
            note = "reference row"
        elif row.reference is None:
            note = "no reference row"
        else:
            note = row.paired_notes.get(task, "task not shared with the reference")
        return ["", "", "", "", "", "", "", "", note]
    return [result.delta * scale, result.ci_low * scale, result.ci_high * scale, result.wins, result.ties,
            result.losses, result.documents, f"{result.runs_a}/{result.runs_b}", ""]


_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.5rem;color:#1d1d1f;background:#fff}
h1{font-size:1.4rem}p.legend{font-size:.85rem;color:#444;max-width:70rem;margin:.3rem 0}
table{border-collapse:collapse;font-size:.85rem;margin:1rem 0}
th,td{border:1px solid #d0d0d7;padding:.3rem .55rem;white-space:nowrap}
th{background:#eef0f6;cursor:pointer;user-select:none;position:sticky;top:0}
th[aria-sort=ascending]::after{content:" ▲"}th[aria-sort=descending]::after{content:" ▼"}
td.num{text-align:right;font-variant-numeric:tabular-nums}tr:nth-child(even) td{background:#f8f9fc}
tr.baseline td{font-weight:600}img{max-width:100%;border:1px solid #e3e3e8;margin:.5rem 0}
"""

# Sorting: click a header (again to reverse); missing values ("–") always sink to the bottom.
_SCRIPT = """
(function(){
  var table=document.getElementById('leaderboard');
  var heads=table.tHead.rows[0].cells;
  function sortBy(col,desc){
    var body=table.tBodies[0];
    var rows=Array.prototype.slice.call(body.rows);
    rows.sort(function(a,b){
      var x=a.cells[col].getAttribute('data-sort'),y=b.cells[col].getAttribute('data-sort');
      if(x===''&&y==='')return 0; if(x==='')return 1; if(y==='')return -1;
      var num=heads[col].getAttribute('data-type')==='num';
      var c=num?(parseFloat(x)-parseFloat(y)):x.localeCompare(y);
      return desc?-c:c;
    });
    rows.forEach(function(r){body.appendChild(r);});
    for(var i=0;i<heads.length;i++)heads[i].removeAttribute('aria-sort');
    heads[col].setAttribute('aria-sort',desc?'descending':'ascending');
    document.body.setAttribute('data-sorted',(desc?'-':'')+col);
  }
  for(var i=0;i<heads.length;i++)(function(i){
    heads[i].addEventListener('click',function(){sortBy(i,heads[i].getAttribute('aria-sort')==='ascending');});
  })(i);
  function fromHash(){
    var m=/sort=(-?)(\\d+)/.exec(window.location.hash);
    if(m&&Number(m[2])<heads.length)sortBy(Number(m[2]),m[1]==='-');
  }
  window.addEventListener('hashchange',fromHash);
  fromHash();
})();
"""


def _sort_attr(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, (int, float)):
        return repr(float(value))
    return str(value)


def to_html(lb: Leaderboard, images: Mapping[str, bytes] | None = None, title: str = "Leaderboard") -> str:
    """One page: legend, sortable table (inline JS), plots embedded as PNG data URIs."""
    cols = columns(lb)
    esc = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{esc(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
    ]
    parts += [f'<p class="legend">{esc(line).replace("`", "")}</p>' for line in _legend(lb)]
    parts.append('<table id="leaderboard"><thead><tr>')
    for col in cols:
        kind = "num" if col.numeric else "text"
        parts.append(f'<th data-type="{kind}" title="{esc(col.title)}">{esc(col.header)}</th>')
    parts.append("</tr></thead><tbody>")
    for row in lb.rows:
        cls = ' class="baseline"' if row.is_baseline else ""
        parts.append(f'<tr{cls} title="{esc(" ".join(source_path(p, lb.roots) for p in row.sources))}">')
        for col in cols:
            num = ' class="num"' if col.numeric else ""
            parts.append(f'<td{num} data-sort="{esc(_sort_attr(col.sort(row)))}">{esc(col.text(row))}</td>')
        parts.append("</tr>")
    parts.append("</tbody></table>")
    for name, data in (images or {}).items():
        encoded = base64.b64encode(data).decode("ascii")
        parts.append(f'<figure><img alt="{esc(name)}" src="data:image/png;base64,{encoded}"><figcaption>{esc(name)}</figcaption></figure>')
    parts.append(f"<script>{_SCRIPT}</script></body></html>")
    return "\n".join(parts) + "\n"
