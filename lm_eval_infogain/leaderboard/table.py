"""Runs → leaderboard rows: one row per model × sampler × settings, seeds folded, deltas attached.

A row's identity is the model, the sampler, the decoding settings every sampler shares (K, steps,
length, block, temperature, cache, EOS handling) plus the settings *that sampler* reads (N and
position temperature only matter to Info-Gain, γ to the samplers with a threshold, …), the ``--limit``
and whether a chat template was applied. Settings a sampler ignores never split rows, so a
confidence baseline run with ``candidate_number=4`` still pairs with Info-Gain.

Several results files can feed one row: one run per task is joined, several seeds are folded into
mean ± sample sd (n), and a rerun of the same task with the same seed replaces the older file.

Identity comes from what the user chose (model_args, ``--gen_kwargs``); what a row *shows* is what
each task was really decoded with (``config.infogain.task_decoding``, schema 2): a task's
``generation_kwargs`` may set its own canvas, block and tokens per step, so one row can hold
several values of a setting — shown per task. Older results files fall back to the run's settings.
Decoding statistics that are missing for any contributing sample stay ``None`` ("–").

A row whose samples were each decoded in a single forward (measured: one model call per sample; from
the settings when statistics are missing: K ≥ the answer length and one block) is a *one-step* row.
The baseline sampler's one-step row is not the reference for the full-budget rows: it is compared with
the baseline-sampler row of the same model and settings apart from K, steps and block (the smallest K
if there are several), so "how much does iterative decoding add over one forward" gets a Δ too.

Paired comparison (on by default): where a row and its reference both have lm-eval's per-sample files
(``--log_samples``) for a task, :func:`~.paired.compare_pooled` gives Δ with a 95 % paired-bootstrap
interval and win/tie/loss. Rows folding several seeds score each document by its mean over the row's
seeds (see :mod:`.paired`). Without the files the comparison is absent with a note, never estimated.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..sampling.config import INFO_GAIN_FAMILY, SAMPLER_NAMES
from .loading import MetricValue, RunResult, TaskStats
from .metrics import MainMetric
from .paired import PairedComparison, PairingError, compare_pooled, read_samples, samples_files_for_results

__all__ = [
    "Cell", "Row", "Leaderboard", "build_leaderboard", "SETTING_LABELS", "run_identity", "run_settings", "strip_seed",
    "task_settings", "PerTask",
]  # fmt: skip

#: Settings every sampler uses, in display order.
SHARED_SETTINGS: tuple[str, ...] = ("K", "steps", "gen_length", "block_size", "temperature", "cache", "eos_penalty", "eos_fill")
#: Settings only some samplers read; others are dropped from their identity.
SAMPLER_SETTINGS: dict[str, tuple[str, ...]] = {
    **{name: ("candidate_number", "position_temperature", "threshold", "ig_scope", "beam_size") for name in INFO_GAIN_FAMILY},
    "fast_dllm": ("threshold", "fast_dllm_factor"),
    "klass": ("threshold", "klass_kl_threshold", "klass_history"),
    "eb": ("eb_gamma",),
    "pc": ("pc_lambda", "pc_alpha", "pc_frequency_file"),
}
#: Column headers of the settings (the paper's symbols where it has one).
SETTING_LABELS: dict[str, str] = {
    "K": "K",
    "steps": "steps",
    "gen_length": "L",
    "block_size": "block",
    "temperature": "T",
    "cache": "cache",
    "eos_penalty": "EOS pen.",
    "eos_fill": "EOS fill",
    "candidate_number": "N",
    "position_temperature": "pos. T",
    "threshold": "γ",
    "ig_scope": "IG scope",
    "beam_size": "beam",
    "fast_dllm_factor": "f",
    "klass_kl_threshold": "KL ε",
    "klass_history": "KL hist.",
    "eb_gamma": "EB γ",
    "pc_lambda": "PC λ",
    "pc_alpha": "PC α",
    "pc_frequency_file": "PC freq.",
    "limit": "limit",
    "chat_template": "chat",
}


class PerTask(dict):
    """A setting whose value differs between the tasks of one row: ``{task: value}``."""

    def __str__(self) -> str:
        return ", ".join(f"{_fmt_setting(v)} ({task})" for task, v in self.items())


@dataclass(frozen=True)
class Cell:
    """A displayed number: mean over seeds, with stderr (one seed) or sample sd (several)."""

    mean: float
    err: float | None
    err_kind: str | None  # "stderr" | "sd" | None
    n: int  # seeds that contributed


@dataclass
class Row:
    model: str
    sampler: str
    settings: dict[str, Any]  # ordered display settings; irrelevant ones absent
    seeds: list[Any]
    cells: dict[str, Cell]
    mean: Cell | None
    n_tasks: int
    task_stats: dict[str, dict[str, float | None]]
    entropy: float | None
    model_calls: float | None
    tokens_per_second: float | None
    sources: list[Path]
    deltas: dict[str, float] = field(default_factory=dict)
    #: Batch sizes and devices of the contributing runs (tokens/s depends on both).
    batch_sizes: list[str] = field(default_factory=list)
    devices: list[str] = field(default_factory=list)
    delta_mean: float | None = None
    is_baseline: bool = False
    _pair_key: tuple = ()
    #: Every sample decoded in one forward (see the module docstring).
    one_step: bool = False
    #: The row deltas and paired comparisons are taken against (None: none, or the row is the baseline).
    reference: Row | None = None
    #: Some other row takes its deltas against this one.
    referenced: bool = False
    #: task -> paired comparison with ``reference`` (raw metric units, not scaled).
    paired: dict[str, PairedComparison] = field(default_factory=dict)
    #: task -> why there is no paired comparison although the row has a reference.
    paired_notes: dict[str, str] = field(default_factory=dict)
    #: tasks whose per-sample files exist on both sides but could not be paired (reason in ``paired_notes``).
    paired_errors: set[str] = field(default_factory=set)
    #: seed -> task -> run (the files behind each cell; the paired comparison reads their samples).
    seed_runs: dict[str, dict[str, RunResult]] = field(default_factory=dict)
    _loose_key: tuple = ()

    @property
    def sampler_text(self) -> str:
        """The Sampler cell: the sampler, or ``one-step (sampler)`` for one-step rows."""
        name = self.sampler or "–"
        return f"one-step ({name})" if self.one_step else name

    @property
    def label(self) -> str:
        parts = [f"{SETTING_LABELS.get(k, k)}={_fmt_setting(v)}" for k, v in self.settings.items()]
        return " ".join([self.model, self.sampler or "-", *parts])


@dataclass
class Leaderboard:
    metrics: dict[str, MainMetric]
    rows: list[Row]
    baseline_sampler: str | None
    warnings: list[str]
    #: The folders/files the runs were found under (source paths are shown relative to them).
    roots: list[Path] = field(default_factory=list)
    #: Whether paired comparisons were computed (``--paired``, the default).
    paired: bool = False

    @property
    def has_paired(self) -> bool:
        """Some row has per-sample files on both sides (otherwise the paired columns are left out)."""
        return any(row.paired or row.paired_errors for row in self.rows)

    @property
    def has_reference(self) -> bool:
        return any(row.reference is not None for row in self.rows)

    @property
    def tasks(self) -> list[str]:
        return list(self.metrics)

    def varying_settings(self) -> list[str]:
        """Setting names whose value differs between rows (the rest go in a 'common settings' line)."""
        names: list[str] = []
        for row in self.rows:
            names.extend(k for k in row.settings if k not in names)
        # Rows that do not have a setting (other samplers, other models) neither vary nor fix it.
        return [n for n in names if len({_fmt_setting(r.settings[n]) for r in self.rows if n in r.settings}) > 1]

    def common_settings(self) -> dict[str, Any]:
        varying = set(self.varying_settings())
        out: dict[str, Any] = {}
        for row in self.rows:
            for k, v in row.settings.items():
                if k not in varying and v is not None:
                    out.setdefault(k, v)
        return out


def _fmt_setting(value: Any) -> str:
    if isinstance(value, PerTask):
        return str(value)
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _k_of(decoding: Mapping[str, Any]) -> Any:
    """Tokens per step: explicit, else gen_length / steps (one per step when steps is unset, also on an
    infilling canvas, where gen_length is 0: nothing appended, the gap's masks decoded one per step)."""
    if decoding.get("tokens_per_step"):
        return int(decoding["tokens_per_step"])
    gen, steps = decoding.get("gen_length"), decoding.get("steps")
    if not gen or not steps:
        return 1 if gen is not None else None
    k = gen / steps
    return int(k) if float(k).is_integer() else round(k, 2)


def _settings_of(decoding: Mapping[str, Any], sampler: str | None) -> dict[str, Any]:
    dec = dict(decoding)
    dec["K"] = _k_of(dec)
    if dec.get("steps") is None and dec.get("gen_length"):
        dec["steps"] = dec["gen_length"] if not dec.get("tokens_per_step") else None
    out = {name: dec.get(name) for name in SHARED_SETTINGS}
    for name in SAMPLER_SETTINGS.get(sampler or "", ()):
        out[name] = dec.get(name)
    return out


def run_settings(run: RunResult) -> dict[str, Any]:
    """The settings the user chose for the run (model_args before any task changed them): identity."""
    if run.infogain is None:
        return {}
    return _settings_of(run.decoding, run.sampler)


def task_settings(run: RunResult, task: str) -> dict[str, Any]:
    """What ``task`` was really decoded with in ``run`` (the run's settings where not recorded)."""
    if run.infogain is None:
        return {}
    return _settings_of(run.task_decoding.get(task) or run.decoding, run.sampler)


def run_identity(run: RunResult, settings: Mapping[str, Any]) -> tuple:
    extra: tuple = () if run.infogain is not None else (strip_seed(run.model_args),)
    if run.gen_kwargs:
        extra += (("gen_kwargs", json.dumps(run.gen_kwargs, sort_keys=True, default=str)),)
    return (run.model, run.sampler or "", tuple(sorted((k, repr(v)) for k, v in settings.items())), run.limit, run.chat_template, extra)


def _pair_key(run: RunResult, settings: Mapping[str, Any], ignore: tuple[str, ...] = ()) -> tuple:
    shared = tuple((k, repr(settings.get(k))) for k in SHARED_SETTINGS if k not in ignore)
    return (run.model, shared, run.limit, run.chat_template, run.infogain is not None)


#: Settings a one-step row may differ in from the multi-step row it is compared with.
ONE_STEP_FREE: tuple[str, ...] = ("K", "steps", "block_size")


def strip_seed(model_args: str) -> str:
    return ",".join(p for p in model_args.split(",") if not p.strip().startswith("seed="))


def _sampler_rank(sampler: str, baseline: str | None) -> tuple[int, str]:
    if sampler == baseline:
        return (-1, sampler)
    return (SAMPLER_NAMES.index(sampler) if sampler in SAMPLER_NAMES else len(SAMPLER_NAMES), sampler)


def _num(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) else math.inf


def _fold(values: list[MetricValue], scale: float) -> Cell:
    if len(values) == 1:
        v = values[0]
        return Cell(v.value * scale, None if v.stderr is None else v.stderr * scale, "stderr" if v.stderr is not None else None, 1)
    scaled = [v.value * scale for v in values]
    return Cell(statistics.fmean(scaled), statistics.stdev(scaled), "sd", len(scaled))


def _mean_cell(per_seed: list[dict[str, MetricValue]], tasks: list[str], metrics: Mapping[str, MainMetric]) -> Cell | None:
    if not tasks:
        return None
    if len(per_seed) == 1:
        vals = [per_seed[0][t] for t in tasks]
        mean = statistics.fmean(v.value * metrics[t].scale for v, t in zip(vals, tasks))
        errs = [v.stderr for v in vals]
        if all(e is not None for e in errs):
            err = math.sqrt(sum((e * metrics[t].scale) ** 2 for e, t in zip(errs, tasks))) / len(tasks)  # type: ignore[operator]
            return Cell(mean, err, "stderr", 1)
        return Cell(mean, None, None, 1)
    complete = [s for s in per_seed if all(t in s for t in tasks)]
    task_means = [statistics.fmean(s[t].value * metrics[t].scale for s in per_seed if t in s) for t in tasks]
    mean = statistics.fmean(task_means)
    if len(complete) == len(per_seed):
        seed_means = [statistics.fmean(s[t].value * metrics[t].scale for t in tasks) for s in complete]
        return Cell(mean, statistics.stdev(seed_means), "sd", len(seed_means))
    return Cell(mean, None, None, len(per_seed))


def _stats_summary(stats: list[TaskStats]) -> dict[str, float | None]:
    """Mean of per-request means over seeds; throughput pools tokens and time."""

    def avg(attr: str) -> float | None:
        vals = [getattr(s, attr) for s in stats]
        return None if not vals or any(v is None for v in vals) else statistics.fmean(vals)

    if any(s.generated_tokens is None or not s.wall_time_s for s in stats):
        gen = wall = []
    else:
        gen = [s.generated_tokens for s in stats]
        wall = [s.wall_time_s for s in stats]
    return {
        "samples": float(sum(s.samples for s in stats)),
        "cumulative_entropy_mean": avg("cumulative_entropy_mean"),
        "model_calls_mean": avg("model_calls_mean"),
        "rows_forwarded_mean": avg("rows_forwarded_mean"),
        "tokens_forwarded_mean": avg("tokens_forwarded_mean"),
        "generated_tokens": float(sum(gen)) if gen else None,
        "wall_time_s": float(sum(wall)) if wall else None,  # type: ignore[arg-type]
        "tokens_per_second": (sum(gen) / sum(wall)) if gen and sum(wall) > 0 else None,  # type: ignore[arg-type]
    }


def _weighted(task_stats: Mapping[str, Mapping[str, float | None]], key: str) -> float | None:
    if not task_stats or any(s.get(key) is None for s in task_stats.values()):
        return None  # a task without the statistic would bias the mean: missing stays missing
    pairs = [(s["samples"] or 0.0, s[key]) for s in task_stats.values()]
    total = sum(w for w, _ in pairs)
    if total <= 0:
        return statistics.fmean(v for _, v in pairs)  # type: ignore[misc]
    return sum(w * v for w, v in pairs) / total  # type: ignore[operator]


def build_leaderboard(
    runs: Iterable[RunResult], metrics: Mapping[str, MainMetric], baseline_sampler: str | None = "confidence",
    paired: bool = True,
) -> Leaderboard:
    """Group runs into rows, fold seeds, compute stats and deltas against ``baseline_sampler`` (and, with
    ``paired``, paired comparisons from the runs' per-sample files)."""
    warnings: list[str] = []
    # (row identity) -> seed -> task -> run providing it (latest timestamp wins)
    groups: dict[tuple, dict[Any, dict[str, RunResult]]] = {}
    meta: dict[tuple, tuple[RunResult, dict[str, Any]]] = {}
    for run in sorted(runs, key=lambda r: (r.timestamp, str(r.path))):
        settings = run_settings(run)
        ident = run_identity(run, settings)
        meta.setdefault(ident, (run, settings))
        by_task = groups.setdefault(ident, {}).setdefault(repr(run.seed), {})
        for task in run.tasks:
            if task not in metrics:
                continue
            if task in by_task:
                warnings.append(f"{task}: {run.path} replaces older {by_task[task].path} (same settings and seed)")
            by_task[task] = run

    rows: list[Row] = []
    for ident, seeds in groups.items():
        first, settings = meta[ident]
        cells: dict[str, Cell] = {}
        task_stats: dict[str, dict[str, float | None]] = {}
        per_seed: list[dict[str, MetricValue]] = []
        for by_task in seeds.values():
            per_seed.append({
                t: run.tasks[t].metrics[(metrics[t].metric, metrics[t].filter)]
                for t, run in by_task.items()
                if (metrics[t].metric, metrics[t].filter) in run.tasks[t].metrics
            })
        tasks = [t for t in metrics if any(t in s for s in per_seed)]
        if not tasks:
            continue
        for t in tasks:
            cells[t] = _fold([s[t] for s in per_seed if t in s], metrics[t].scale)
            stats = [by_task[t].stats[t] for by_task in seeds.values() if t in by_task and t in by_task[t].stats]
            if stats:
                task_stats[t] = _stats_summary(stats)
        complete = task_stats and all(s["generated_tokens"] is not None and s["wall_time_s"] for s in task_stats.values())
        gen = [s["generated_tokens"] for s in task_stats.values()] if complete else []
        wall = [s["wall_time_s"] for s in task_stats.values()] if complete else []
        runs_of_row = [r for by_task in seeds.values() for r in by_task.values()]
        runs_by_task = {t: next(by_task[t] for by_task in seeds.values() if t in by_task) for t in tasks}
        display = _display_settings(settings, runs_by_task)
        if first.limit is not None:
            display["limit"] = first.limit
        rows.append(Row(
            model=first.model,
            sampler=first.sampler or "",
            settings=display,
            seeds=sorted({r.seed for by_task in seeds.values() for r in by_task.values()}, key=repr),
            cells=cells,
            mean=_mean_cell(per_seed, tasks, metrics),
            n_tasks=len(tasks),
            task_stats=task_stats,
            entropy=_weighted(task_stats, "cumulative_entropy_mean"),
            model_calls=_weighted(task_stats, "model_calls_mean"),
            tokens_per_second=(sum(gen) / sum(wall)) if gen and sum(wall) > 0 else None,  # type: ignore[arg-type]
            sources=sorted({r.path for by_task in seeds.values() for r in by_task.values()}),
            _pair_key=_pair_key(first, settings),
            batch_sizes=sorted({r.batch_size for r in runs_of_row if r.batch_size}, key=_natural),
            devices=sorted({_device_label(r) for r in runs_of_row if r.device}),
            one_step=_is_one_step(task_stats, runs_by_task),
            seed_runs={seed: {t: r for t, r in by_task.items() if t in cells} for seed, by_task in seeds.items()},
            _loose_key=_pair_key(first, settings, ONE_STEP_FREE),
        ))

    _attach_deltas(rows, baseline_sampler, warnings)
    if paired:
        _attach_paired(rows, metrics, warnings)
    rows.sort(key=lambda r: (r.model, _num(r.settings.get("K")), repr(r._pair_key), _sampler_rank(r.sampler, baseline_sampler), r.label))
    return Leaderboard(dict(metrics), rows, baseline_sampler, warnings, paired=paired)


def _display_settings(identity: Mapping[str, Any], runs_by_task: Mapping[str, RunResult]) -> dict[str, Any]:
    """The settings a row shows: per setting, the value every task used, else a :class:`PerTask`."""
    per_task = {task: task_settings(run, task) for task, run in runs_by_task.items()}
    if not per_task or not any(per_task.values()):
        return dict(identity)
    out: dict[str, Any] = {}
    for name in identity:
        values = {task: settings.get(name) for task, settings in per_task.items() if name in settings}
        distinct = {repr(v) for v in values.values()}
        out[name] = next(iter(values.values())) if len(distinct) == 1 else PerTask(sorted(values.items()))
    return out


def _is_one_step(task_stats: Mapping[str, Mapping[str, float | None]], runs_by_task: Mapping[str, RunResult]) -> bool:
    """Every sample of every task decoded in one forward: measured (one model call per sample) where the
    statistics exist, else read from the settings (K covers the whole answer, which fits one block)."""
    if not runs_by_task:
        return False
    calls = [task_stats.get(t, {}).get("model_calls_mean") for t in runs_by_task]
    if all(c is not None for c in calls):
        return all(c == 1.0 for c in calls)
    for task, run in runs_by_task.items():
        settings = task_settings(run, task)
        k, length, block = settings.get("K"), settings.get("gen_length"), settings.get("block_size")
        if not (isinstance(k, (int, float)) and isinstance(length, int) and isinstance(block, int)):
            return False
        if not 0 < length <= min(k, block):
            return False
    return True


def _natural(text: str) -> tuple:
    return (0, int(text), "") if text.isdigit() else (1, 0, text)


def _device_label(run: RunResult) -> str:
    device = str(run.device)
    return f"{device}×{run.world_size}" if run.world_size and run.world_size > 1 else device


def _attach_deltas(rows: list[Row], baseline: str | None, warnings: list[str]) -> None:
    """Each row's reference (module docstring) and its per-task deltas of the displayed means."""
    if not baseline:
        return
    by_key: dict[tuple, list[Row]] = {}
    for row in rows:
        if row.sampler == baseline:
            by_key.setdefault(row._pair_key, []).append(row)
    for key, base_rows in by_key.items():
        if len(base_rows) > 1:  # e.g. two limits would already differ in key; keep the first, say so
            warnings.append(f"several {baseline} rows share settings {base_rows[0].label!r}; deltas use the first")
    for row in rows:
        bases = by_key.get(row._pair_key)
        if not bases:
            continue
        base = bases[0]
        if row is base:
            base = _multi_step_reference(row, rows, baseline) if row.one_step else None
            if base is None:
                row.is_baseline = True
                continue
        row.reference = base
        base.referenced = True
        common = [t for t in row.cells if t in base.cells]
        row.deltas = {t: row.cells[t].mean - base.cells[t].mean for t in common}
        row.delta_mean = statistics.fmean(row.deltas.values()) if common else None


def _multi_step_reference(row: Row, rows: list[Row], baseline: str) -> Row | None:
    """For the baseline sampler's one-step row: its multi-step row with the same model and settings apart
    from K, steps and block (the smallest K if there are several)."""
    candidates = [r for r in rows if r.sampler == baseline and not r.one_step and r._loose_key == row._loose_key]
    return min(candidates, key=lambda r: (_num(r.settings.get("K")), r.label)) if candidates else None


def _attach_paired(rows: list[Row], metrics: Mapping[str, MainMetric], warnings: list[str]) -> None:
    """Paired comparison of every row with its reference, per shared task, from the per-sample files."""
    cache: dict[Path, list[dict]] = {}

    def records(path: Path) -> list[dict]:
        if path not in cache:
            cache[path] = read_samples(path)
        return cache[path]

    for row in rows:
        if row.reference is None:
            continue
        for task in row.deltas:
            files_a, missing_a = _samples_of(row, task)
            files_b, missing_b = _samples_of(row.reference, task)
            if missing_a or missing_b:
                row.paired_notes[task] = "; ".join(filter(None, [
                    missing_a and f"no --log_samples file for {missing_a} of the row's runs",
                    missing_b and f"no --log_samples file for {missing_b} of the reference's runs",
                ]))
                continue
            metric = metrics[task]
            try:
                row.paired[task] = compare_pooled([records(f) for f in files_a], [records(f) for f in files_b],
                                                  task=task, metric=metric.metric, filter_name=metric.filter)
            except PairingError as err:
                row.paired_notes[task] = str(err)
                row.paired_errors.add(task)
                warnings.append(f"no paired comparison for {row.label!r} on {task}: {err}")


def _samples_of(row: Row, task: str) -> tuple[list[Path], int]:
    """The per-sample files of ``task`` in every run of ``row`` that has one, and how many runs lack one."""
    runs = [by_task[task] for by_task in row.seed_runs.values() if task in by_task]
    found = [samples_files_for_results(run.path).get(task) for run in runs]
    return [f for f in found if f is not None], sum(f is None for f in found)
