"""Statistics of one evaluation: per-sample records, their gathering to rank 0, and the results-JSON block.

``results["config"]["infogain"]`` (lm-eval merges ``get_model_info()`` into ``results["config"]``)
has this schema (version 2) — the leaderboard reads it; ``docs/lm_eval.md`` documents every field::

    {"schema": 2, "pretrained": str, "model_name": str, "sampler": str,
     "decoding": DecodingConfig.to_dict(),            # model_args (+ seed) before any task changed it
     "task_decoding": {task: DecodingConfig.to_dict() | [several, when a task used several]},
     "seed": {"value": int, "source": "model_args" | "lm_eval" | "default"},
     "device": str, "dtype": str, "world_size": int, "batch_size": str, "max_batch_size": int,
     "threads": {"intra_op": int, "source": str, "reason": str} | None,
     "cache": {"answers_from_cache": int, "statistics_restored": int, "statistics_missing": int,
               "other_settings": int} | None,
     "sandbox": dict | None,
     "versions": {"lm_eval_infogain", "lm_eval", "torch", "transformers"},
     "peak_memory_bytes": int | None,
     "totals": summary, "per_task": {task: summary}}

A summary is ``aggregate_stats`` of the samples (``samples``, ``cumulative_entropy_mean``,
``model_calls_mean``, ``rows_forwarded_mean``, ``tokens_forwarded_mean``, ``generated_tokens``,
``wall_time_s``, ``tokens_per_second``) plus ``statistics_missing`` and ``from_cache``. Where the
statistics of any sample are missing (a cached answer without a stored record), or there are no
samples, every statistic is ``null`` — never 0 — while ``samples`` still counts the answers.

``peak_memory_bytes`` is the largest peak over ranks of ``torch.cuda.max_memory_allocated`` on
CUDA, and of the process's peak resident set size on CPU (``None`` where neither is available).
"""

from __future__ import annotations

import importlib.metadata
import sys
from collections import defaultdict
from typing import Any, Callable

import torch

from ..sampling.stats import SampleStats, aggregate_stats

__all__ = ["SCHEMA_VERSION", "RunStats", "STAT_FIELDS", "SOURCES", "peak_memory_bytes", "versions"]

SCHEMA_VERSION = 2
STAT_FIELDS = tuple(SampleStats().to_dict())
#: Where a record's statistics come from: decoded now, restored from the --use_cache sidecar
#: (made with the same / other decoding settings), or unknown.
SOURCES = ("computed", "cache", "cache_other_settings", "missing")
_SUMMARY_STATS = (
    "cumulative_entropy_mean", "model_calls_mean", "rows_forwarded_mean", "tokens_forwarded_mean",
    "generated_tokens", "wall_time_s", "tokens_per_second",
)  # fmt: skip


def peak_memory_bytes(device: torch.device) -> int | None:
    if device.type == "cuda" and torch.cuda.is_available():
        return int(torch.cuda.max_memory_allocated(device))
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)  # macOS reports bytes, Linux KiB


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def versions() -> dict[str, str | None]:
    import transformers

    from .. import __version__

    return {
        "lm_eval_infogain": __version__,
        "lm_eval": _version("lm_eval"),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }


def summarize(records: list[dict[str, Any]]) -> dict[str, Any]:
    """``aggregate_stats`` of the records, or ``None`` statistics where any is missing (or none exist)."""
    missing = sum(1 for r in records if r.get("stats_source") == "missing")
    from_cache = sum(1 for r in records if str(r.get("stats_source", "")).startswith("cache"))
    if records and not missing:
        summary = aggregate_stats([SampleStats(**{k: r[k] for k in STAT_FIELDS}) for r in records])
    else:
        summary = {"samples": len(records), **{key: None for key in _SUMMARY_STATS}}
    summary["samples"] = len(records)
    summary["statistics_missing"] = missing
    summary["from_cache"] = from_cache
    return summary


class RunStats:
    """Records and per-task decoding settings of this rank, merged on rank 0 at every barrier."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []  # everything known here (all ranks' on rank 0 after sync)
        self._unsynced: list[dict[str, Any]] = []
        self.peak_memory: int | None = None
        #: task -> {settings id: DecodingConfig dict} of every gen_kwargs group the task used.
        self.task_decoding: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)

    def add(self, meta: dict[str, Any], stats: SampleStats | dict[str, Any] | None, source: str = "computed") -> dict[str, Any]:
        """One request's record; ``stats=None`` records its statistics as missing."""
        if source not in SOURCES:
            raise ValueError(f"unknown statistics source {source!r}")
        values = stats.to_dict() if isinstance(stats, SampleStats) else stats
        if values is None:
            record = {**meta, **{key: None for key in STAT_FIELDS}, "stats_source": "missing"}
        else:
            record = {**meta, **{key: values.get(key) for key in STAT_FIELDS}, "stats_source": source}
        self.records.append(record)
        self._unsynced.append(record)
        return record

    def note_decoding(self, task: str, settings_key: str, decoding: dict[str, Any]) -> None:
        self.task_decoding[task].setdefault(settings_key, decoding)

    def sync(self, gather_object: Callable[[Any], list[Any] | None], rank: int, peak: int | None) -> None:
        """Collective: every rank sends its new records, decoding settings and peak memory to rank 0."""
        gathered = gather_object({"records": self._unsynced, "peak": peak, "decoding": dict(self.task_decoding)})
        self._unsynced = []
        if rank != 0 or gathered is None:
            return
        peaks = [part["peak"] for part in gathered if part["peak"] is not None]
        self.peak_memory = max(peaks) if peaks else None
        for other_rank, part in enumerate(gathered):
            if other_rank == 0:
                continue
            self.records.extend(part["records"])
            for task, settings in part["decoding"].items():
                for key, decoding in settings.items():
                    self.note_decoding(task, key, decoding)

    def cache_summary(self) -> dict[str, int] | None:
        sources = [r.get("stats_source") for r in self.records]
        if not any(str(s).startswith("cache") or s == "missing" for s in sources):
            return None
        return {
            "answers_from_cache": sum(1 for s in sources if s != "computed"),
            "statistics_restored": sum(1 for s in sources if str(s).startswith("cache")),
            "statistics_missing": sources.count("missing"),
            "other_settings": sources.count("cache_other_settings"),
        }

    def task_decoding_summary(self) -> dict[str, Any]:
        return {
            task: next(iter(settings.values())) if len(settings) == 1 else list(settings.values())
            for task, settings in sorted(self.task_decoding.items())
        }

    def summary(self, header: dict[str, Any], peak: int | None) -> dict[str, Any]:
        by_task: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for record in self.records:
            by_task[str(record["task"])].append(record)
        peaks = [p for p in (peak, self.peak_memory) if p is not None]
        return {
            "schema": SCHEMA_VERSION,
            **header,
            "task_decoding": self.task_decoding_summary(),
            "cache": self.cache_summary(),
            "peak_memory_bytes": max(peaks) if peaks else None,
            "totals": summarize(self.records),
            "per_task": {task: summarize(records) for task, records in sorted(by_task.items())},
        }
