"""Statistics of a run: per-sample records, their gathering to rank 0, and the results-JSON block.

``results["config"]["infogain"]`` (lm-eval merges ``get_model_info()`` into ``results["config"]``)
has this exact schema — the leaderboard reads it::

    {"schema": 1, "pretrained": str, "sampler": str, "decoding": DecodingConfig.to_dict(),
     "device": str, "dtype": str, "world_size": int,
     "versions": {"lm_eval_infogain", "lm_eval", "torch", "transformers"},
     "peak_memory_bytes": int | None,
     "totals": aggregate_stats(all samples), "per_task": {task: aggregate_stats(its samples)}}

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

__all__ = ["SCHEMA_VERSION", "RunStats", "peak_memory_bytes", "versions"]

SCHEMA_VERSION = 1
_STAT_FIELDS = tuple(SampleStats().to_dict())


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


class RunStats:
    """Records of this rank, merged on rank 0 at every barrier."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []  # everything known here (all ranks' on rank 0 after sync)
        self._unsynced: list[dict[str, Any]] = []
        self.peak_memory: int | None = None

    def add(self, meta: dict[str, Any], stats: SampleStats) -> None:
        record = {**meta, **stats.to_dict()}
        self.records.append(record)
        self._unsynced.append(record)

    def sync(self, gather_object: Callable[[Any], list[Any] | None], rank: int, peak: int | None) -> None:
        """Collective: every rank sends its new records (and peak memory) to rank 0."""
        gathered = gather_object({"records": self._unsynced, "peak": peak})
        self._unsynced = []
        if rank != 0 or gathered is None:
            return
        peaks = [part["peak"] for part in gathered if part["peak"] is not None]
        self.peak_memory = max(peaks) if peaks else None
        for other_rank, part in enumerate(gathered):
            if other_rank != 0:
                self.records.extend(part["records"])

    @staticmethod
    def _aggregate(records: list[dict[str, Any]]) -> dict[str, Any]:
        return aggregate_stats([SampleStats(**{k: r[k] for k in _STAT_FIELDS}) for r in records])

    def summary(self, header: dict[str, Any], peak: int | None) -> dict[str, Any]:
        by_task: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for record in self.records:
            by_task[str(record["task"])].append(record)
        peaks = [p for p in (peak, self.peak_memory) if p is not None]
        return {
            "schema": SCHEMA_VERSION,
            **header,
            "peak_memory_bytes": max(peaks) if peaks else None,
            "totals": self._aggregate(self.records),
            "per_task": {task: self._aggregate(records) for task, records in sorted(by_task.items())},
        }
