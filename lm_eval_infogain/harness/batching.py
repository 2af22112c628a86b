"""Batches of prompts for the engine, with ``batch_size=auto`` backing off on out-of-memory.

Requests arrive sorted longest first (lm-eval's ``Collator``), so the first batch is the most
expensive and an out-of-memory error shows up immediately. ``auto`` starts at ``max_batch_size``,
halves on every OOM and keeps the size that worked; ``auto:N`` additionally returns to
``max_batch_size`` N times over the run, because later (shorter) prompts may fit more.
"""

from __future__ import annotations

import logging
import math
from typing import Callable, Sequence, TypeVar

import torch

from .options import BatchSize

__all__ = ["is_out_of_memory", "AdaptiveBatcher"]

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")


def is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def _free_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class AdaptiveBatcher:
    """Runs ``fn`` over consecutive slices of items; one instance per ``generate_until`` call."""

    def __init__(self, spec: BatchSize, max_batch_size: int, total: int):
        self.spec = spec
        self.max_batch_size = max_batch_size
        self.size = spec.value if not spec.auto else max_batch_size
        self._reset_every = math.ceil(total / (spec.resets + 1)) if spec.auto and spec.resets else 0
        self._done = 0
        #: Every batch size used, in order (for tests and the log).
        self.history: list[int] = []

    def run(self, items: Sequence[T], fn: Callable[[Sequence[T]], list[R]]) -> list[R]:
        out: list[R] = []
        start = 0
        while start < len(items):
            if self._reset_every and self._done and self._done % self._reset_every < self.size:
                self.size = self.max_batch_size
            batch = items[start : start + self.size]
            try:
                results = fn(batch)
            except Exception as exc:  # noqa: BLE001 - only OOM is handled, the rest re-raised
                if not (self.spec.auto and is_out_of_memory(exc)) or self.size == 1:
                    raise
                _free_memory()
                self.size = max(1, self.size // 2)
                log.warning("out of memory at batch size %d; retrying with %d", len(batch), self.size)
                continue
            self.history.append(len(batch))
            out.extend(results)
            start += len(batch)
            self._done += len(batch)
        return out
