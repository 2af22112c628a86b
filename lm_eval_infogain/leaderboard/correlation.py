"""Per-sample link between trajectory uncertainty and correctness.

The paper's case for Info-Gain is that a lower cumulative entropy H̃ goes with right answers. With
``--log_samples`` lm-eval writes each document's score (``samples_<task>_<time>.jsonl``) and our model
writes each request's H̃ (``infogain_samples_<time>.jsonl``) beside it; joined on ``doc_id`` they give
Pearson r (point-biserial for 0/1 metrics) per run and task, and pooled over all runs of a task.
"""

from __future__ import annotations

import csv
import io
import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

from .loading import RunResult
from .metrics import MainMetric
from .plots import pearson_r

__all__ = ["SampleCorrelation", "sample_pairs", "correlations", "to_csv"]


@dataclass(frozen=True)
class SampleCorrelation:
    model: str
    sampler: str
    seed: str
    source: str
    task: str
    n: int
    r: float | None
    entropy_right: float | None  # mean H̃ of samples that scored (> 0)
    entropy_wrong: float | None  # mean H̃ of samples that scored 0


def _samples_file(run: RunResult, task: str) -> Path | None:
    path = run.path.parent / f"samples_{task}_{run.timestamp}.jsonl"
    return path if run.timestamp and path.is_file() else None


def sample_pairs(run: RunResult, task: str, metric: MainMetric) -> list[tuple[float, float]]:
    """(H̃, score) per document of ``task`` in ``run``; repeats of a document are averaged."""
    path = _samples_file(run, task)
    if path is None or not run.per_sample_stats:
        return []
    scores: dict[int, float] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        rec = json.loads(line)
        value = rec.get(metric.metric)
        if rec.get("filter", "none") == metric.filter and isinstance(value, (int, float)) and not isinstance(value, bool):
            scores[int(rec["doc_id"])] = float(value)
    entropy: dict[int, list[float]] = {}
    for rec in run.per_sample_stats:
        if rec.get("task") == task and isinstance(rec.get("cumulative_entropy"), (int, float)):
            entropy.setdefault(int(rec["doc_id"]), []).append(float(rec["cumulative_entropy"]))
    return [(statistics.fmean(entropy[d]), scores[d]) for d in sorted(scores) if d in entropy]


def _summary(pairs: list[tuple[float, float]]) -> tuple[float | None, float | None, float | None]:
    """r, mean H̃ of samples that scored (> 0) and of those that did not (= 0)."""
    if not pairs:
        return None, None, None
    right = [h for h, s in pairs if s > 0]
    wrong = [h for h, s in pairs if s <= 0]
    r = pearson_r([h for h, _ in pairs], [s for _, s in pairs])
    return r, (statistics.fmean(right) if right else None), (statistics.fmean(wrong) if wrong else None)


def correlations(runs: Iterable[RunResult], metrics: Mapping[str, MainMetric]) -> list[SampleCorrelation]:
    """One entry per (run, task) with joined samples, then one pooled ``*`` entry per task."""
    out: list[SampleCorrelation] = []
    pooled: dict[str, list[tuple[float, float]]] = {}
    for run in sorted(runs, key=lambda r: str(r.path)):
        for task in sorted(run.tasks):
            if task not in metrics:
                continue
            pairs = sample_pairs(run, task, metrics[task])
            if not pairs:
                continue
            pooled.setdefault(task, []).extend(pairs)
            r, right, wrong = _summary(pairs)
            out.append(SampleCorrelation(run.model, run.sampler or "", str(run.seed), run.path.name, task, len(pairs), r, right, wrong))
    for task, pairs in sorted(pooled.items()):
        r, right, wrong = _summary(pairs)
        out.append(SampleCorrelation("*", "*", "*", "*", task, len(pairs), r, right, wrong))
    return out


def to_csv(items: list[SampleCorrelation]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["model", "sampler", "seed", "source", "task", "n", "r", "entropy_right", "entropy_wrong"])
    for c in items:
        writer.writerow([c.model, c.sampler, c.seed, c.source, c.task, c.n, "" if c.r is None else c.r,
                         "" if c.entropy_right is None else c.entropy_right, "" if c.entropy_wrong is None else c.entropy_wrong])
    return buf.getvalue()
