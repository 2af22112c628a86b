"""Paired comparison of two runs on the same documents: Δ, a paired-bootstrap interval, win/tie/loss.

Why: two samplers evaluated on the same documents are not independent samples. Comparing their means
with two separate standard errors wastes that pairing (the per-document difference has far less
noise when both runs find the same documents easy or hard) and cannot say how often one beats the
other. Here, from lm-eval's per-sample files (``samples_<task>_<timestamp>.jsonl``, written with
``--log_samples``):

- each document's score under the task's main metric (same rule as the leaderboard: the first metric
  the task lists; for it the first filter of :data:`~.metrics.FILTER_PREFERENCE` present, else the first
  one written), matched between the runs by ``doc_id`` (one record per document and filter; with
  ``repeats: n`` lm-eval has already folded the n samples into that document's score, e.g. unbiased
  pass@1). Matched records must have the same ``doc_hash``, else the runs scored different data;
- Δ = mean(A) − mean(B) over the documents present in both;
- a paired bootstrap interval for Δ: resample the matched documents with replacement
  (:data:`DEFAULT_RESAMPLES` = 10,000 times, NumPy ``default_rng(seed)``, seed 0 by default) and take
  the 2.5 % and 97.5 % percentiles of the resampled Δ (for a 95 % interval);
- win / tie / loss: documents where A's score is higher / equal / lower than B's.

Several runs per side (one row of the leaderboard folding several seeds): each document's score is its
mean over that side's runs that scored it (:func:`pooled_document_scores`), then documents are paired as
above. The document stays the resampling unit — its seeds are not independent draws of new data — so
the interval covers which documents were drawn, and Δ equals the difference of the rows' seed-averaged
means whenever every seed scored the same documents.

The reference run B can be any decoding setting, e.g. another sampler, or a one-step baseline that
fills every mask in one forward (one block over the canvas with ``tokens_per_step`` equal to it); the
comparison only needs both runs' per-sample files for the same task.

``lm-eval-infogain paired RUN_A RUN_B [--task T] [--metric T=M[,FILTER]]`` (or ``python -m
lm_eval_infogain.leaderboard.paired``) prints one line per task (``--json`` for machine-readable output);
RUN_A / RUN_B are samples files or folders searched for them. ``lm-eval-infogain leaderboard`` runs the
same comparison for every row against its baseline-sampler row.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from .metrics import FILTER_PREFERENCE

__all__ = [
    "DEFAULT_RESAMPLES",
    "PairingError",
    "PairedComparison",
    "read_samples",
    "find_samples_files",
    "samples_files_for_results",
    "main_metric",
    "document_scores",
    "pooled_document_scores",
    "paired_bootstrap",
    "compare_samples",
    "compare_pooled",
    "compare_runs",
    "main",
]

DEFAULT_RESAMPLES = 10_000
_SAMPLES_NAME = re.compile(r"^samples_(?P<task>.+)_(?P<stamp>\d{4}-\d{2}-\d{2}T[\d.\-]+)\.jsonl$")
#: Resampled rows per NumPy batch (bounds memory: batch x documents indices at a time).
_BATCH_CELLS = 4_000_000


class PairingError(ValueError):
    """Two runs that cannot be compared document by document (no shared documents, different data under
    the same ``doc_id``, a metric one of them lacks, non-numeric scores, unreadable files)."""


@dataclass(frozen=True)
class PairedComparison:
    """A − B on one task's main metric over the documents both runs scored."""

    task: str
    metric: str
    filter: str
    documents: int  # matched documents
    mean_a: float
    mean_b: float
    delta: float
    ci_low: float
    ci_high: float
    confidence: float
    resamples: int
    seed: int
    wins: int  # documents where A scored higher
    ties: int
    losses: int
    only_a: int  # documents only A scored (not compared)
    only_b: int
    runs_a: int = 1  # runs (seeds) averaged per document on side A
    runs_b: int = 1

    def describe(self) -> str:
        return (f"{self.task} {self.metric},{self.filter}: Δ = {self.delta:+.4f} "
                f"[{self.ci_low:+.4f}, {self.ci_high:+.4f}] ({self.confidence:.0%} paired bootstrap, "
                f"{self.resamples} resamples, seed {self.seed}); A {self.mean_a:.4f} vs B {self.mean_b:.4f} "
                f"on {self.documents} documents; win/tie/loss {self.wins}/{self.ties}/{self.losses}"
                + (f"; unmatched A {self.only_a}, B {self.only_b}" if self.only_a or self.only_b else "")
                + (f"; per-document means over {self.runs_a} (A) and {self.runs_b} (B) runs"
                   if self.runs_a > 1 or self.runs_b > 1 else ""))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_samples(path: str | Path) -> list[dict]:
    """The records of one lm-eval samples file."""
    path = Path(path)
    records = []
    try:
        with path.open(encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    records.append(json.loads(line))
    except (OSError, json.JSONDecodeError) as err:
        raise PairingError(f"cannot read samples file {path}: {err}") from None
    bad = [r for r in records if not isinstance(r, dict) or "doc_id" not in r]
    if bad or not records:
        raise PairingError(f"{path} is not an lm-eval samples file (records need doc_id)")
    return records


def find_samples_files(path: str | Path) -> dict[str, Path]:
    """task -> samples file, for a samples file or a folder searched recursively. Two files for one task
    under the same folder (several runs) are ambiguous: an error naming them."""
    path = Path(path)
    if path.is_file():
        match = _SAMPLES_NAME.match(path.name)
        if not match:
            raise PairingError(f"{path} is not named samples_<task>_<timestamp>.jsonl")
        return {match["task"]: path}
    if not path.is_dir():
        raise PairingError(f"{path} does not exist")
    found: dict[str, list[Path]] = {}
    for file in sorted(path.rglob("samples_*.jsonl")):
        match = _SAMPLES_NAME.match(file.name)
        if match:
            found.setdefault(match["task"], []).append(file)
    if not found:
        raise PairingError(f"no samples_<task>_<timestamp>.jsonl under {path} (run lm_eval with --log_samples)")
    ambiguous = {task: files for task, files in found.items() if len(files) > 1}
    if ambiguous:
        task, files = next(iter(ambiguous.items()))
        raise PairingError(f"{path} holds {len(files)} samples files for {task} ({', '.join(map(str, files))}); "
                           "pass the folder of one run or the file itself")
    return {task: files[0] for task, files in found.items()}


def samples_files_for_results(results_file: str | Path) -> dict[str, Path]:
    """task -> samples file written by the same lm-eval run as ``results_file`` (lm-eval names both with one
    timestamp: ``results_<ts>.json`` and ``samples_<task>_<ts>.jsonl`` in the same folder). Empty when the run
    was made without ``--log_samples``."""
    results_file = Path(results_file)
    stamp = results_file.stem.rpartition("_")[2]
    found = {}
    for file in sorted(results_file.parent.glob(f"samples_*_{stamp}.jsonl")):
        match = _SAMPLES_NAME.match(file.name)
        if match and match["stamp"] == stamp:
            found[match["task"]] = file
    return found


def main_metric(records: Sequence[Mapping[str, Any]]) -> tuple[str, str]:
    """(metric, filter) that represents a task (rule in the module docstring)."""
    names = next((r.get("metrics") for r in records if r.get("metrics")), None)
    if not names:
        raise PairingError("the samples records list no metrics")
    filters = list(dict.fromkeys(str(r.get("filter", "none")) for r in records))
    chosen = next((f for f in FILTER_PREFERENCE if f in filters), filters[0])
    return str(names[0]), chosen


def document_scores(records: Iterable[Mapping[str, Any]], metric: str, filter_name: str) -> dict[int, tuple[float, str]]:
    """doc_id -> (score, doc_hash) under one metric and filter."""
    scores: dict[int, tuple[float, str]] = {}
    for record in records:
        if str(record.get("filter", "none")) != filter_name:
            continue
        doc_id = int(record["doc_id"])
        if metric not in record:
            raise PairingError(f"document {doc_id} has no {metric!r} score (metrics: {record.get('metrics')})")
        value = record[metric]
        if isinstance(value, bool):
            value = float(value)
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            raise PairingError(f"document {doc_id}: {metric}={value!r} is not a finite number")
        if doc_id in scores:
            raise PairingError(f"document {doc_id} appears twice under filter {filter_name!r}")
        scores[doc_id] = (float(value), str(record.get("doc_hash", "")))
    if not scores:
        raise PairingError(f"no record has filter {filter_name!r}")
    return scores


def paired_bootstrap(a: Sequence[float], b: Sequence[float], *, resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
                     confidence: float = 0.95) -> tuple[float, float]:
    """Percentile interval of mean(a) − mean(b) under resampling of the pairs (a[i], b[i])."""
    import numpy as np

    if len(a) != len(b) or not len(a):
        raise PairingError(f"need two equally long, non-empty score lists, got {len(a)} and {len(b)}")
    if resamples < 1 or not 0 < confidence < 1:
        raise PairingError(f"need resamples >= 1 and 0 < confidence < 1, got {resamples}, {confidence}")
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    n = diff.size
    rng = np.random.default_rng(seed)
    batch = max(1, _BATCH_CELLS // n)
    means = np.empty(resamples, dtype=np.float64)
    for start in range(0, resamples, batch):
        stop = min(resamples, start + batch)
        means[start:stop] = diff[rng.integers(0, n, size=(stop - start, n))].mean(axis=1)
    alpha = 1.0 - confidence
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def pooled_document_scores(runs: Sequence[Sequence[Mapping[str, Any]]], metric: str, filter_name: str
                           ) -> dict[int, tuple[float, str]]:
    """doc_id -> (mean score over the runs that scored it, doc_hash) for several runs of one setting (seeds).

    A ``doc_id`` holding different documents in two of these runs (``doc_hash`` differs) is an error."""
    if not runs:
        raise PairingError("no run to take document scores from")
    sums: dict[int, list[float]] = {}
    hashes: dict[int, str] = {}
    for records in runs:
        for doc_id, (score, doc_hash) in document_scores(records, metric, filter_name).items():
            known = hashes.get(doc_id)
            if known and doc_hash and known != doc_hash:
                raise PairingError(f"doc_id {doc_id} holds different documents in two runs of the same setting "
                                   "(doc_hash differs)")
            hashes[doc_id] = known or doc_hash
            sums.setdefault(doc_id, []).append(score)
    return {doc_id: (sum(values) / len(values), hashes[doc_id]) for doc_id, values in sums.items()}


def compare_samples(records_a: Sequence[Mapping[str, Any]], records_b: Sequence[Mapping[str, Any]], *, task: str = "",
                    metric: str | None = None, filter_name: str | None = None, resamples: int = DEFAULT_RESAMPLES,
                    seed: int = 0, confidence: float = 0.95) -> PairedComparison:
    """A vs B from two runs' records of one task (metric and filter: the main metric unless given)."""
    return compare_pooled([records_a], [records_b], task=task, metric=metric, filter_name=filter_name,
                          resamples=resamples, seed=seed, confidence=confidence)


def compare_pooled(runs_a: Sequence[Sequence[Mapping[str, Any]]], runs_b: Sequence[Sequence[Mapping[str, Any]]], *,
                   task: str = "", metric: str | None = None, filter_name: str | None = None,
                   resamples: int = DEFAULT_RESAMPLES, seed: int = 0, confidence: float = 0.95) -> PairedComparison:
    """A vs B where each side may be several runs (seeds) of one setting: documents scored by their mean
    over the side's runs, then paired by ``doc_id`` (rule in the module docstring)."""
    if not runs_a or not runs_b:
        raise PairingError(f"{task or 'the task'}: each side needs at least one run's samples")
    default_metric, default_filter = main_metric(runs_a[0])
    metric = metric or default_metric
    filter_name = filter_name or default_filter
    scores_a = pooled_document_scores(runs_a, metric, filter_name)
    scores_b = pooled_document_scores(runs_b, metric, filter_name)
    shared = sorted(set(scores_a) & set(scores_b))
    if not shared:
        raise PairingError(f"{task or 'the task'}: the two runs share no doc_id")
    clashes = [d for d in shared if scores_a[d][1] and scores_b[d][1] and scores_a[d][1] != scores_b[d][1]]
    if clashes:
        raise PairingError(f"{task or 'the task'}: doc_id {clashes[0]} (and {len(clashes) - 1} more) holds different "
                           "documents in the two runs (doc_hash differs): they did not evaluate the same data")
    a = [scores_a[d][0] for d in shared]
    b = [scores_b[d][0] for d in shared]
    low, high = paired_bootstrap(a, b, resamples=resamples, seed=seed, confidence=confidence)
    mean_a, mean_b = sum(a) / len(a), sum(b) / len(b)
    return PairedComparison(
        task=task, metric=metric, filter=filter_name, documents=len(shared), mean_a=mean_a, mean_b=mean_b,
        delta=mean_a - mean_b, ci_low=low, ci_high=high, confidence=confidence, resamples=resamples, seed=seed,
        wins=sum(x > y for x, y in zip(a, b, strict=True)), ties=sum(x == y for x, y in zip(a, b, strict=True)),
        losses=sum(x < y for x, y in zip(a, b, strict=True)),
        only_a=len(set(scores_a) - set(scores_b)), only_b=len(set(scores_b) - set(scores_a)),
        runs_a=len(runs_a), runs_b=len(runs_b),
    )


def compare_runs(run_a: str | Path, run_b: str | Path, *, tasks: Iterable[str] | None = None,
                 metrics: Mapping[str, tuple[str, str | None]] | None = None, resamples: int = DEFAULT_RESAMPLES,
                 seed: int = 0, confidence: float = 0.95) -> list[PairedComparison]:
    """One :class:`PairedComparison` per task both runs have samples for (or per task in ``tasks``)."""
    files_a, files_b = find_samples_files(run_a), find_samples_files(run_b)
    wanted = sorted(tasks) if tasks is not None else sorted(set(files_a) & set(files_b))
    if not wanted:
        raise PairingError(f"no task has samples in both runs (A: {sorted(files_a)}, B: {sorted(files_b)})")
    out = []
    for task in wanted:
        for label, files in (("A", files_a), ("B", files_b)):
            if task not in files:
                raise PairingError(f"run {label} has no samples for {task}")
        metric, filter_name = (metrics or {}).get(task, (None, None))
        out.append(compare_samples(read_samples(files_a[task]), read_samples(files_b[task]), task=task, metric=metric,
                                   filter_name=filter_name, resamples=resamples, seed=seed, confidence=confidence))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lm-eval-infogain paired",
                                     description="Paired comparison A − B from lm-eval --log_samples files: Δ, a "
                                     "paired-bootstrap interval and win/tie/loss per task. Exit 2 on bad input.")
    parser.add_argument("run_a", type=Path, help="samples file or output folder of run A")
    parser.add_argument("run_b", type=Path, help="samples file or output folder of the reference run B")
    parser.add_argument("--task", action="append", help="only this task (repeatable)")
    parser.add_argument("--metric", action="append", default=[], metavar="TASK=METRIC[,FILTER]",
                        help="instead of the task's main metric (the leaderboard's rule)")
    parser.add_argument("--resamples", type=int, default=DEFAULT_RESAMPLES)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--confidence", type=float, default=0.95)
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of one line per task")
    args = parser.parse_args(argv)
    from .metrics import parse_metric_overrides

    try:
        results = compare_runs(args.run_a, args.run_b, tasks=args.task, metrics=parse_metric_overrides(args.metric),
                               resamples=args.resamples, seed=args.seed, confidence=args.confidence)
    except (PairingError, ValueError) as err:
        print(f"lm-eval-infogain paired: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps([r.to_dict() for r in results], indent=2))
    else:
        for result in results:
            print(result.describe())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
