"""How logits are obtained inside one block, for every cache mode — in one object.

The strategies ask three things: logits of the current states at block entry (:meth:`enter`), logits
of current states later in the block (:meth:`current`), and logits of candidate next states grouped
per parent row (:meth:`lookahead`; each parent brings as many candidates as it has distinct actions). Whether that is a full forward (``cache="none"``) or a run against
keys/values cached at block entry (``prefix``/``dual``) is decided here, so the decoding loop reads
the same for every mode. Every call is recorded per prompt for the statistics, and every output is
prepared once, in place (EOS/PAD penalty, mask token forbidden): the engine owns the logits an
adapter returns.

Window: logits are returned for canvas positions ``[lo, hi)`` only. ``lo`` is the leftmost position
of any row's block (every mask left of it is already decoded); ``hi`` is the rightmost block position
+ 1 when nothing beyond the block is read, else the canvas end (Info-Gain's ``sequence`` scope
averages over later masks; the EOS fill measures filled positions there). The caches need every
row's block to be the same canvas slice (``slots.span``), which holds whenever the prompts carry no
masks — the engine refuses ``prefix``/``dual`` on infilling canvases before decoding starts.
"""

from __future__ import annotations

from typing import Sequence

import torch

from ..models.base import CacheState, LogitsShapeError, MDMAdapter
from .blocks import BlockSlots
from .state import DecodeState

__all__ = ["BlockForward", "LogitsShapeError"]


class BlockForward:
    def __init__(self, adapter: MDMAdapter, mode: str, state: DecodeState, slots: BlockSlots, hi: int):
        self.adapter, self.mode, self.state, self.slots = adapter, mode, state, slots
        T = state.x.shape[1]
        if mode == "none":
            self.block = (slots.lo, slots.hi)
            self.window = (slots.lo, hi)
        else:
            if slots.span is None:
                raise RuntimeError(f"cache={mode!r} needs every row's block on one canvas slice")
            self.block = slots.span
            self.window = {"prefix": (slots.span[0], T), "dual": slots.span}[mode]
        self._cache: CacheState | None = None
        #: Row of the cache batch holding each canvas row's keys/values (-1: none).
        self._slot = torch.full((state.n_rows,), -1, dtype=torch.long, device=state.x.device)

    @property
    def lo(self) -> int:
        return self.window[0]

    # ------------------------------------------------------------------ calls
    def enter(self, rows: Sequence[int]) -> torch.Tensor:
        """Logits of the current states of ``rows`` at block entry (opens the cache)."""
        idx = self._index(rows)
        x, attn = self.state.x[idx], self.state.attn[idx]
        T = x.shape[1]
        self._record(rows, [1] * len(rows), T, "enter")
        if self.mode == "none":
            return self._prepare(self.adapter.logits(x, attn, window=self.window), len(rows), "logits")
        logits, self._cache = self.adapter.open_cache(x, attn, mode=self.mode, block=self.block)
        if tuple(self._cache.window) != self.window:
            raise RuntimeError(
                f"{type(self.adapter).__name__}.open_cache returned window {self._cache.window}, "
                f"expected {self.window} for cache={self.mode!r}"
            )
        self._slot[idx] = torch.arange(len(rows), device=idx.device)
        return self._prepare(logits, len(rows), "open_cache")

    def current(self, rows: Sequence[int]) -> torch.Tensor:
        """Logits of the current states of ``rows`` later in the block."""
        idx = self._index(rows)
        return self._run(self.state.x[idx], idx, rows, [1] * len(rows), "current")

    def lookahead(self, x_next: torch.Tensor, parents: Sequence[int], counts: Sequence[int]) -> torch.Tensor:
        """Logits of ``sum(counts)`` candidate states: the first ``counts[0]`` belong to ``parents[0]``,
        the next ``counts[1]`` to ``parents[1]``, ... (``counts`` are host ints)."""
        if len(counts) != len(parents) or sum(counts) != x_next.shape[0]:
            raise ValueError(f"{x_next.shape[0]} candidate rows do not match counts {list(counts)}")
        return self._run(x_next, self._index(parents), parents, list(counts), "lookahead")

    def reorder(self, parent_of_row: torch.Tensor) -> None:
        """Beam search: row ``r`` now continues ``parent_of_row[r]`` (and uses its cached keys/values)."""
        self._slot = self._slot[parent_of_row]

    # ------------------------------------------------------------------ helpers
    def _run(self, x: torch.Tensor, parent_idx: torch.Tensor, parents: Sequence[int], counts: list[int],
             kind: str) -> torch.Tensor:
        lo, hi = self.window
        T = x.shape[1]
        positions = T if self.mode == "none" else hi - lo
        self._record(parents, counts, positions, kind)
        uniform = len(set(counts)) == 1
        group: int | list[int] = counts[0] if uniform else counts
        if self.mode == "none":
            repeats = counts[0] if uniform else torch.tensor(counts, device=parent_idx.device)
            attn = self.state.attn[parent_idx].repeat_interleave(repeats, 0)
            logits = self.adapter.logits(x, attn, window=self.window)
        else:
            logits = self.adapter.cached_logits(
                self._cache, x, prompt_index=self._slot[parent_idx], group_size=group
            )
        return self._prepare(logits, x.shape[0], "logits" if self.mode == "none" else "cached_logits")

    def _prepare(self, logits: object, rows: int, method: str) -> torch.Tensor:
        """Check the adapter kept its contract (host-side shape metadata only), then prepare."""
        lo, hi = self.window
        vocab = int(getattr(self.adapter, "vocab_size", 0) or 0)
        name = f"{type(self.adapter).__name__}.{method}"
        if not isinstance(logits, torch.Tensor):
            raise LogitsShapeError(f"{name} returned {type(logits).__name__}, expected a tensor of logits")
        if logits.dim() != 3 or tuple(logits.shape[:2]) != (rows, hi - lo) or logits.shape[2] < max(vocab, 1):
            raise LogitsShapeError(
                f"{name} returned logits of shape {tuple(logits.shape)}, expected ({rows}, {hi - lo}, "
                f"{vocab if vocab else 'vocabulary'}) for {rows} rows and canvas positions [{lo}, {hi})"
            )
        if not logits.is_floating_point():
            raise LogitsShapeError(f"{name} returned {logits.dtype} logits, expected floating point")
        self.state.logits_dtype = logits.dtype
        return self.state.prep.prepare_(logits)

    def _index(self, rows: Sequence[int]) -> torch.Tensor:
        return torch.tensor(list(rows), dtype=torch.long, device=self.state.x.device)

    def _record(self, rows: Sequence[int], counts: Sequence[int], positions: int, kind: str) -> None:
        prompts = [self.state.row_prompt[r] for r, c in zip(rows, counts) for _ in range(c)]
        self.state.recorder.record(prompts, positions, kind)
