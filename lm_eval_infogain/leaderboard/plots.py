"""The two pictures the paper argues with, one panel per task.

* accuracy vs cumulative entropy H̃ — the trajectory-uncertainty view: samplers that commit more
  certain tokens (lower H̃) should score higher; each panel reports Pearson r over its points.
* accuracy vs tokens/s — the speed/quality frontier: the Pareto-optimal rows are joined by a line.

Points are leaderboard rows (colour = sampler, marker = model); error bars are the cell's ± value.
Rows without decoding statistics (other models) cannot be placed and are listed in the caption.
"""

from __future__ import annotations

import io
import math
from typing import Callable

from .table import SETTING_LABELS, Leaderboard, Row, _fmt_setting

__all__ = ["entropy_plot", "speed_plot", "pearson_r", "pareto_front"]

_MARKERS = "osD^vP*Xh<>"


def pearson_r(xs: list[float], ys: list[float]) -> float | None:
    """Pearson correlation, or None when undefined (fewer than 3 points or no spread)."""
    if len(xs) < 3:
        return None
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    if sxx <= 0 or syy <= 0:
        return None
    return sxy / math.sqrt(sxx * syy)


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points not beaten on both speed (x) and quality (y), sorted by x."""
    front = [p for p in points if not any(q[0] >= p[0] and q[1] >= p[1] and q != p for q in points)]
    return sorted(set(front))


def _figure(n_panels: int):
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    cols = min(3, max(1, n_panels))
    rows = max(1, math.ceil(n_panels / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 4.2 * rows), squeeze=False)
    return plt, fig, [ax for line in axes for ax in line]


def _styles(lb: Leaderboard) -> tuple[dict[str, str], dict[str, str]]:
    import matplotlib

    samplers = list(dict.fromkeys(r.sampler_text for r in lb.rows))  # one-step rows get a colour of their own
    palette = matplotlib.colormaps["tab10" if len(samplers) <= 10 else "tab20"].colors  # distinct up to 20
    models = list(dict.fromkeys(r.model for r in lb.rows))
    colors = {s: matplotlib.colors.to_hex(palette[i % len(palette)]) for i, s in enumerate(samplers)}
    markers = {m: _MARKERS[i % len(_MARKERS)] for i, m in enumerate(models)}
    return colors, markers


def _panel_plot(
    lb: Leaderboard,
    x_of: Callable[[Row, str], float | None],
    xlabel: str,
    title: str,
    decorate: Callable[[object, list[tuple[float, float]]], str],
    log_x: bool = False,
) -> bytes:
    tasks = lb.tasks or ["(no tasks)"]
    plt, fig, axes = _figure(len(tasks))
    colors, markers = _styles(lb)
    unplaced: set[str] = set()
    handles: dict[str, object] = {}
    varying = [k for k in lb.varying_settings() if k != "steps"]
    shared_style = {key for key in ((r.sampler_text, r.model) for r in lb.rows)
                    if sum((r.sampler_text, r.model) == key for r in lb.rows) > 1}
    for ax, task in zip(axes, tasks):
        metric = lb.metrics.get(task)
        points: list[tuple[float, float]] = []
        for row in lb.rows:
            cell = row.cells.get(task)
            x = x_of(row, task)
            if cell is None:
                continue
            if x is None:
                unplaced.add(f"{row.model} {row.sampler_text}")
                continue
            points.append((x, cell.mean))
            label = f"{row.sampler_text} · {row.model}"
            h = ax.errorbar(
                [x], [cell.mean], yerr=[[cell.err or 0.0], [cell.err or 0.0]],
                fmt=markers[row.model], color=colors[row.sampler_text], ms=7, capsize=3, alpha=0.9,
            )
            handles.setdefault(label, h)
            tag = " ".join(f"{SETTING_LABELS.get(k, k)}={_fmt_setting(row.settings[k])}" for k in varying if k in row.settings)
            if tag and (row.sampler_text, row.model) in shared_style:  # same colour and marker: settings tell them apart
                ax.annotate(tag, (x, cell.mean), xytext=(5, 4), textcoords="offset points", fontsize=7, color="#333")
        note = decorate(ax, points) if points else "no rows with decoding statistics"
        ax.set_title(f"{task} {note}".strip(), fontsize=10)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(metric.label if metric else "")
        ax.grid(True, alpha=0.3)
        if log_x and len(points) > 1 and min(p[0] for p in points) > 0 and max(p[0] for p in points) / min(p[0] for p in points) > 20:
            ax.set_xscale("log")
    for ax in axes[len(tasks):]:
        ax.axis("off")
    ncol = max(1, min(3, len(handles), int(fig.get_figwidth() // 2.6)))  # legend columns that fit the width
    if handles:
        fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=ncol, fontsize=8, frameon=False)
    caption = title + (f"  (not shown, no statistics: {', '.join(sorted(unplaced))})" if unplaced else "")
    fig.suptitle(caption, fontsize=11)
    bottom = 0.04 + 0.05 * math.ceil(len(handles) / ncol) / max(1, math.ceil(len(tasks) / 3))
    fig.tight_layout(rect=(0, min(bottom, 0.4), 1, 0.95))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def _task_stat(key: str) -> Callable[[Row, str], float | None]:
    return lambda row, task: row.task_stats.get(task, {}).get(key)


def entropy_plot(lb: Leaderboard) -> bytes:
    """PNG: main metric vs mean cumulative entropy, one panel per task, with Pearson r."""

    def decorate(ax, points):
        r = pearson_r([p[0] for p in points], [p[1] for p in points])
        return "" if r is None else f"(r = {r:+.2f}, {len(points)} rows)"

    return _panel_plot(lb, _task_stat("cumulative_entropy_mean"), "cumulative entropy H̃ (mean per sample)",
                       "Accuracy vs cumulative entropy", decorate)


def speed_plot(lb: Leaderboard) -> bytes:
    """PNG: main metric vs generated tokens per second, one panel per task, Pareto front drawn."""

    def decorate(ax, points):
        front = pareto_front(points)
        if len(front) > 1:
            ax.plot([p[0] for p in front], [p[1] for p in front], "--", color="#555", lw=1, zorder=0)
        return f"({len(front)} on the frontier)"

    return _panel_plot(lb, _task_stat("tokens_per_second"), "generated tokens / s", "Accuracy vs throughput", decorate, log_x=True)
