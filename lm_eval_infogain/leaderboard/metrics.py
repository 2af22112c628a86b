"""Which number represents a task, and in what unit.

lm-eval reports several metrics per task, often under several filters (GSM8K: ``exact_match`` under
``strict-match`` and ``flexible-extract``). A leaderboard needs exactly one per task, chosen the same
way for every row. Rule: the first metric the task reports (file order = the task's ``metric_list``
order); for that metric the first filter of :data:`FILTER_PREFERENCE` that exists, else the first one
reported. ``--metric task=metric[,filter]`` overrides it. Fractions (higher-is-better metrics whose
values all lie in [0, 1]) are shown as percentages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

from .loading import RunResult

__all__ = ["FILTER_PREFERENCE", "MainMetric", "MetricChoiceError", "choose_main_metrics", "parse_metric_overrides"]

#: The lenient answer extraction first: it measures the model rather than its output format.
FILTER_PREFERENCE: tuple[str, ...] = ("flexible-extract", "strict-match", "none")


class MetricChoiceError(ValueError):
    """A ``--metric`` override that is malformed or names a metric no run reports."""


@dataclass(frozen=True)
class MainMetric:
    task: str
    metric: str
    filter: str
    higher_is_better: bool
    scale: float  # 100.0 for fractions shown as percentages, else 1.0

    @property
    def label(self) -> str:
        unit = " (%)" if self.scale == 100.0 else ""
        suffix = "" if self.filter == "none" else f", {self.filter}"
        return f"{self.metric}{suffix}{unit}"


def parse_metric_overrides(items: Iterable[str]) -> dict[str, tuple[str, str | None]]:
    """``["gsm8k=exact_match,strict-match", "mbpp=pass_at_1"]`` → ``{task: (metric, filter|None)}``."""
    out: dict[str, tuple[str, str | None]] = {}
    for item in items:
        task, sep, spec = item.partition("=")
        if not sep or not task.strip() or not spec.strip():
            raise MetricChoiceError(f"--metric expects TASK=METRIC[,FILTER], got {item!r}")
        metric, _, filter_name = spec.strip().partition(",")
        out[task.strip()] = (metric.strip(), filter_name.strip() or None)
    return out


def choose_main_metrics(
    runs: Iterable[RunResult], overrides: Mapping[str, tuple[str, str | None]] | None = None
) -> dict[str, MainMetric]:
    """One :class:`MainMetric` per task seen in ``runs`` (sorted by task name)."""
    runs = list(runs)
    overrides = dict(overrides or {})
    keys: dict[str, list[tuple[str, str]]] = {}
    hib: dict[str, dict[str, bool]] = {}
    for run in runs:
        for task, result in run.tasks.items():
            seen = keys.setdefault(task, [])
            seen.extend(k for k in result.metrics if k not in seen)
            hib.setdefault(task, {}).update(result.higher_is_better)
    unknown = sorted(set(overrides) - set(keys))
    if unknown:
        raise MetricChoiceError(f"--metric names tasks no results file contains: {', '.join(unknown)}")

    chosen: dict[str, MainMetric] = {}
    for task in sorted(keys):
        available = keys[task]
        if task in overrides:
            metric, filter_name = overrides[task]
            filters = [f for m, f in available if m == metric]
            if not filters or (filter_name is not None and filter_name not in filters):
                options = ", ".join(f"{m},{f}" for m, f in available)
                raise MetricChoiceError(f"task {task!r} has no metric {metric},{filter_name or '*'}; it has: {options}")
        else:
            metric = available[0][0]
            filters = [f for m, f in available if m == metric]
            filter_name = None
        if filter_name is None:
            filter_name = next((f for f in FILTER_PREFERENCE if f in filters), filters[0])
        higher = hib.get(task, {}).get(metric, True)
        values = [
            run.tasks[task].metrics[(metric, filter_name)].value
            for run in runs
            if task in run.tasks and (metric, filter_name) in run.tasks[task].metrics
        ]
        fraction = higher and all(0.0 <= v <= 1.0 for v in values)
        chosen[task] = MainMetric(task, metric, filter_name, higher, 100.0 if fraction else 1.0)
    return chosen
