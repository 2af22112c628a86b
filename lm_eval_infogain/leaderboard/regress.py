"""Regression check: did a metric fall below a stored baseline by more than chance allows?

A drop counts when ``drop > max(k · sqrt(se_base² + se_cur²), floor)`` — the two runs' standard
errors combined as independent estimates, scaled by ``k`` (``--tolerance-sigma``), never below an
absolute floor (``--min-tolerance``, in the metric's own units). "Drop" respects the metric's
direction (``higher_is_better``). With no stderr on either side only the floor remains, so a
baseline written with ``bootstrap_iters=0`` is checked exactly.

Baseline file (``--write-baseline`` writes it; JSON)::

    {"schema": 1, "created_by": "lm-eval-infogain regress --write-baseline",
     "runs": [{"label": str, "key": {...}, "model_args": str,
               "tasks": {task: {"metric,filter": {"value": float, "stderr": float|null,
                                                  "higher_is_better": bool}}},
               "n_samples": {task: int}}]}

A single run may also be written flat as ``{"tasks": ..., "model_args": ...}``, and a raw lm-eval
``results_*.json`` is accepted as a baseline too. Each baseline run is paired with the current run
that has the same key (model, sampler, settings; seeds folded; numbers compared by value, so a
``limit`` of 40 matches 40.0); with one run on each side they are paired directly. When a baseline
run has no partner, the error names the fields in which the closest current run differs.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from .loading import MetricValue, ResultsLayoutError, RunResult, load_run, load_runs
from .table import run_identity, run_settings, strip_seed

__all__ = [
    "BaselineRun",
    "Check",
    "RegressionInputError",
    "baseline_from_runs",
    "load_baseline",
    "write_baseline",
    "compare",
    "format_checks",
]

SCHEMA = 1
CREATED_BY = "lm-eval-infogain regress --write-baseline"


class RegressionInputError(ValueError):
    """Missing or unreadable baseline/current results, or tasks/metrics absent on one side."""


@dataclass
class BaselineRun:
    label: str
    key: dict[str, Any] | None
    model_args: str
    tasks: dict[str, dict[str, MetricValue]]  # task -> "metric,filter" -> value
    higher_is_better: dict[str, dict[str, bool]] = field(default_factory=dict)
    n_samples: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "key": self.key,
            "model_args": self.model_args,
            "tasks": {
                task: {
                    name: {"value": mv.value, "stderr": mv.stderr,
                           "higher_is_better": self.higher_is_better.get(task, {}).get(name, True)}
                    for name, mv in metrics.items()
                }
                for task, metrics in self.tasks.items()
            },
            "n_samples": self.n_samples,
        }


@dataclass(frozen=True)
class Check:
    run: str
    task: str
    metric: str
    baseline: float
    current: float
    tolerance: float
    higher_is_better: bool

    @property
    def drop(self) -> float:
        return self.baseline - self.current if self.higher_is_better else self.current - self.baseline

    @property
    def failed(self) -> bool:
        return self.drop > self.tolerance


def _run_key(run: RunResult) -> dict[str, Any]:
    settings = run_settings(run)
    key: dict[str, Any] = {
        "model": run.model,
        "sampler": run.sampler,
        "settings": {k: v for k, v in settings.items()},
        "limit": run.limit,
        "chat_template": run.chat_template,
    }
    if run.infogain is None:
        key["model_args"] = strip_seed(run.model_args)
    if run.gen_kwargs:
        key["gen_kwargs"] = run.gen_kwargs
    return json.loads(json.dumps(key, sort_keys=True, default=str))


def _label(key: Mapping[str, Any]) -> str:
    settings = key.get("settings") or {}
    shown = {k: settings[k] for k in ("K", "temperature", "candidate_number", "threshold", "cache") if k in settings}
    extra = " ".join(f"{k}={v}" for k, v in shown.items())
    return " ".join(x for x in (str(key.get("model")), str(key.get("sampler") or "-"), extra) if x)


def baseline_from_runs(runs: Iterable[RunResult]) -> list[BaselineRun]:
    """Group results files by run identity; fold seeds (mean value, stderr of the mean)."""
    groups: dict[tuple, list[RunResult]] = {}
    for run in sorted(runs, key=lambda r: (r.timestamp, str(r.path))):
        groups.setdefault(run_identity(run, run_settings(run)), []).append(run)
    out: list[BaselineRun] = []
    for members in groups.values():
        key = _run_key(members[0])
        # per seed: task -> latest run providing it
        by_seed: dict[str, dict[str, RunResult]] = {}
        for run in members:
            for task in run.tasks:
                by_seed.setdefault(repr(run.seed), {})[task] = run
        tasks: dict[str, dict[str, MetricValue]] = {}
        hib: dict[str, dict[str, bool]] = {}
        n_samples: dict[str, int] = {}
        all_tasks = sorted({t for seed in by_seed.values() for t in seed})
        for task in all_tasks:
            providers = [seed[task] for seed in by_seed.values() if task in seed]
            names = list(dict.fromkeys(f"{m},{f}" for p in providers for (m, f) in p.tasks[task].metrics))
            tasks[task] = {}
            for name in names:
                metric, _, filt = name.partition(",")
                vals = [p.tasks[task].metrics[(metric, filt)] for p in providers if (metric, filt) in p.tasks[task].metrics]
                tasks[task][name] = _fold_seeds(vals)
                hib.setdefault(task, {})[name] = providers[0].tasks[task].higher_is_better.get(metric, True)
            counts = [p.tasks[task].n_samples for p in providers if p.tasks[task].n_samples is not None]
            if counts:
                n_samples[task] = int(sum(counts))
        out.append(BaselineRun(_label(key), key, members[0].model_args, tasks, hib, n_samples))
    return out


def _fold_seeds(values: list[MetricValue]) -> MetricValue:
    if len(values) == 1:
        return values[0]
    mean = statistics.fmean(v.value for v in values)
    errs = [v.stderr for v in values]
    se = math.sqrt(sum(e * e for e in errs)) / len(values) if all(e is not None for e in errs) else None  # type: ignore[operator]
    return MetricValue(mean, se)


def write_baseline(path: str | Path, runs: list[BaselineRun]) -> None:
    """Write the baseline JSON; an unusable path is a :class:`RegressionInputError` naming it."""
    data = {"schema": SCHEMA, "created_by": CREATED_BY, "runs": [r.to_json() for r in runs]}
    if len(runs) == 1:
        data["model_args"] = runs[0].model_args
    path = Path(path)
    if path.is_dir():
        raise RegressionInputError(f"--baseline {path} is a folder; --write-baseline needs a file path (e.g. {path / 'baseline.json'})")
    blocking = next((parent for parent in path.parents if parent.exists() and not parent.is_dir()), None)
    if blocking is not None:
        raise RegressionInputError(f"cannot write baseline {path}: {blocking} is a file, not a folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    except OSError as err:
        raise RegressionInputError(f"cannot write baseline {path}: {err.strerror or err}") from None


def _parse_run(entry: Mapping[str, Any], where: str) -> BaselineRun:
    tasks_raw = entry.get("tasks")
    if not isinstance(tasks_raw, Mapping) or not tasks_raw:
        raise RegressionInputError(f"{where}: baseline run has no 'tasks' table")
    tasks: dict[str, dict[str, MetricValue]] = {}
    hib: dict[str, dict[str, bool]] = {}
    for task, metrics in tasks_raw.items():
        if not isinstance(metrics, Mapping):
            raise RegressionInputError(f"{where}: task {task!r} must map metric names to values")
        tasks[task] = {}
        for name, spec in metrics.items():
            if isinstance(spec, (int, float)) and not isinstance(spec, bool):
                spec = {"value": spec}
            value = spec.get("value") if isinstance(spec, Mapping) else None
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise RegressionInputError(f"{where}: {task}/{name} has no numeric 'value'")
            stderr = spec.get("stderr")
            stderr = float(stderr) if isinstance(stderr, (int, float)) and not isinstance(stderr, bool) else None
            full = name if "," in name else f"{name},none"
            tasks[task][full] = MetricValue(float(value), stderr)
            hib.setdefault(task, {})[full] = bool(spec.get("higher_is_better", True))
    key = entry.get("key") if isinstance(entry.get("key"), Mapping) else None
    label = str(entry.get("label") or (_label(key) if key else "baseline"))
    n_samples = {t: int(n) for t, n in (entry.get("n_samples") or {}).items() if isinstance(n, int)}
    return BaselineRun(label, dict(key) if key else None, str(entry.get("model_args") or ""), tasks, hib, n_samples)


def load_baseline(path: str | Path) -> list[BaselineRun]:
    """Read a baseline file (our format, flat or multi-run) or a raw lm-eval results JSON."""
    path = Path(path)
    if not path.is_file():
        raise RegressionInputError(f"baseline file not found: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise RegressionInputError(f"cannot read baseline {path}: {err}") from err
    if isinstance(data, Mapping) and isinstance(data.get("runs"), list):
        if not data["runs"]:
            raise RegressionInputError(f"{path}: baseline has an empty 'runs' list")
        return [_parse_run(entry, f"{path} run {i}") for i, entry in enumerate(data["runs"])]
    if isinstance(data, Mapping) and isinstance(data.get("results"), Mapping):
        try:
            return baseline_from_runs([load_run(path)])
        except ResultsLayoutError as err:
            raise RegressionInputError(str(err)) from err
    if isinstance(data, Mapping) and "tasks" in data:
        return [_parse_run(data, str(path))]
    raise RegressionInputError(f"{path}: neither a baseline file ('runs' or 'tasks') nor lm-eval results ('results')")


def load_current(paths: Iterable[str | Path], on_skip: Any = None) -> list[BaselineRun]:
    try:
        return baseline_from_runs(load_runs(paths, on_skip=on_skip))
    except ResultsLayoutError as err:
        raise RegressionInputError(str(err)) from err


def _canonical(value: Any) -> Any:
    """Numbers by value (40.0 -> 40), mappings and lists recursively: how keys are compared."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    return value


def _same_key(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> bool:
    return a is not None and b is not None and _canonical(a) == _canonical(b)


def key_differences(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None, prefix: str = "") -> list[str]:
    """``["limit: 40 (baseline) vs 20 (current)", "settings.K: 1 vs 3", ...]`` — leaf fields that differ."""
    a, b = _canonical(dict(a or {})), _canonical(dict(b or {}))
    out: list[str] = []
    for name in sorted(set(a) | set(b)):
        left, right = a.get(name, "<absent>"), b.get(name, "<absent>")
        if isinstance(left, Mapping) and isinstance(right, Mapping):
            out += key_differences(left, right, f"{prefix}{name}.")
        elif left != right:
            out.append(f"{prefix}{name}: {json.dumps(left, default=str)} (baseline) vs {json.dumps(right, default=str)} (current)")
    return out


def pair_runs(baseline: list[BaselineRun], current: list[BaselineRun]) -> list[tuple[BaselineRun, BaselineRun]]:
    if len(baseline) == 1 and len(current) == 1:
        return [(baseline[0], current[0])]
    pairs = []
    for base in baseline:
        match = [cur for cur in current if _same_key(base.key, cur.key)]
        if not match:
            have = "; ".join(c.label for c in current) or "none"
            closest = min(current, key=lambda c: len(key_differences(base.key, c.key)), default=None)
            detail = ""
            if closest is not None:
                diffs = key_differences(base.key, closest.key)
                detail = f"; the closest current run '{closest.label}' differs in " + "; ".join(diffs)
            raise RegressionInputError(
                f"no current run matches baseline run '{base.label}'{detail} (current runs: {have})"
            )
        pairs.append((base, match[0]))
    return pairs


def compare(
    baseline: list[BaselineRun], current: list[BaselineRun], *, sigma: float = 2.0, min_tolerance: float = 0.0
) -> list[Check]:
    """Every baseline metric against the paired current run; raises when one is missing."""
    if sigma < 0 or min_tolerance < 0:
        raise RegressionInputError("--tolerance-sigma and --min-tolerance must be ≥ 0")
    checks: list[Check] = []
    for base, cur in pair_runs(baseline, current):
        for task, metrics in base.tasks.items():
            if task not in cur.tasks:
                raise RegressionInputError(
                    f"task {task!r} of baseline run '{base.label}' is missing from the current results "
                    f"(current has: {', '.join(sorted(cur.tasks)) or 'nothing'})"
                )
            for name, bval in metrics.items():
                cval = cur.tasks[task].get(name)
                if cval is None:
                    raise RegressionInputError(
                        f"metric {name!r} of task {task!r} is missing from the current results "
                        f"(current has: {', '.join(cur.tasks[task])})"
                    )
                combined = math.sqrt((bval.stderr or 0.0) ** 2 + (cval.stderr or 0.0) ** 2)
                tolerance = max(sigma * combined, min_tolerance)
                higher = base.higher_is_better.get(task, {}).get(name, True)
                checks.append(Check(base.label, task, name, bval.value, cval.value, tolerance, higher))
    return checks


def format_checks(checks: list[Check]) -> str:
    """Fixed-width table: one line per metric, status DROP / ok."""
    header = ("run", "task", "metric", "baseline", "current", "change", "tolerance", "status")
    lines = [header] + [
        (c.run, c.task, c.metric, f"{c.baseline:.4f}", f"{c.current:.4f}", f"{c.current - c.baseline:+.4f}",
         f"{c.tolerance:.4f}", "DROP" if c.failed else "ok")
        for c in checks
    ]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in lines)
