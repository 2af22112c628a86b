"""One block of every row, as the strategies see it: ``L`` slots per row, each a canvas position.

A row's block is a set of canvas positions (its masks number ``b·block_size …``, see ``canvas.py``),
so different rows may have their block in different places. :class:`BlockSlots` turns that into
``[rows, L]`` tensors — slot ``j`` of row ``r`` is canvas position ``pos[r, j]`` — and offers the two
moves the strategies need: read a canvas/window tensor at the slots (:meth:`take`) and write tokens
into the slots (:meth:`put`). When every row's block is the same contiguous canvas slice (a plain
suffix: always the case without masks in the prompts) both moves are plain slicing, bit for bit the
arithmetic of slice-based decoding; otherwise they gather/scatter.

Everything here is built from host-side layouts once per block: no device syncs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

__all__ = ["BlockSlots"]


@dataclass
class BlockSlots:
    pos: torch.Tensor  # [R, L] long canvas positions (invalid slots point at column T, see put)
    valid: torch.Tensor  # [R, L] bool
    #: ``(s, e)`` when every row's block is exactly canvas ``[s, e)`` (then ``L == e - s``).
    span: tuple[int, int] | None
    #: Union of the rows' block positions: ``[lo, hi)``.
    lo: int
    hi: int

    @classmethod
    def build(cls, positions: Sequence[Sequence[int]], T: int, device: torch.device) -> "BlockSlots":
        """``positions[r]``: canvas positions of row r's block (empty when the row has none)."""
        filled = [p for p in positions if len(p)]
        if not filled:
            raise ValueError("a block needs at least one row with positions")
        L = max(len(p) for p in filled)
        firsts = {(p[0], len(p)) for p in filled}
        contiguous = all(p[-1] - p[0] + 1 == len(p) for p in filled)
        common = len(firsts) == 1 and len(filled) == len(positions) and contiguous
        rows = [list(p) + [T] * (L - len(p)) for p in positions]
        pos = torch.tensor(rows, dtype=torch.long).to(device)
        valid = pos < T
        lo = min(p[0] for p in filled)
        hi = max(p[-1] for p in filled) + 1
        span = (filled[0][0], filled[0][0] + L) if common else None
        return cls(pos=pos, valid=valid, span=span, lo=lo, hi=hi)

    @property
    def width(self) -> int:
        return self.pos.shape[1]

    def rows(self, index: torch.Tensor) -> "BlockSlots":
        """The slots of rows ``index`` (candidate states broadcast over them in :meth:`put`)."""
        return BlockSlots(pos=self.pos[index], valid=self.valid[index], span=self.span, lo=self.lo, hi=self.hi)

    def take(self, t: torch.Tensor, offset: int = 0) -> torch.Tensor:
        """``t [R, w, ...]`` (canvas positions ``offset …``) at the slots: ``[R, L, ...]``.

        Invalid slots read position ``offset`` (their values are never used).
        """
        if self.span is not None:
            return t[:, self.span[0] - offset : self.span[1] - offset]
        idx = torch.where(self.valid, self.pos - offset, torch.zeros_like(self.pos))
        if t.dim() > 2:
            idx = idx.view(*idx.shape, *([1] * (t.dim() - 2))).expand(*idx.shape, *t.shape[2:])
        return t.gather(1, idx)

    def masked(self, x: torch.Tensor, mask_id: int) -> torch.Tensor:
        """``[R, L]``: valid slots whose token in ``x [R, T]`` is still the mask."""
        here = self.take(x) == mask_id
        return here if self.span is not None else here & self.valid

    def put(self, x: torch.Tensor, values: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
        """A copy of ``x [..., T]`` with ``values [..., L]`` written at the slots where ``where``.

        Leading dims of ``x`` beyond the rows (candidates) are allowed: ``pos`` broadcasts over them.
        """
        out = x.clone()
        if self.span is not None:
            s, e = self.span
            out[..., s:e] = torch.where(where, values, x[..., s:e])
            return out
        shape = x.shape
        rows = shape[0]
        flat = torch.nn.functional.pad(out.reshape(rows, -1, shape[-1]), (0, 1))  # column T: sink of invalid slots
        pos = self.pos.unsqueeze(1).expand(rows, flat.shape[1], -1)
        current = flat.gather(-1, pos)
        new = torch.where(where.reshape(current.shape) & self.valid.unsqueeze(1), values.reshape(current.shape), current)
        flat.scatter_(-1, pos, new)
        return flat[..., : shape[-1]].reshape(shape)

    def window_mask(self, lo: int, width: int) -> torch.Tensor:
        """``[R, width]`` bool: which window positions (canvas ``lo …``) are slots of the row."""
        R = self.pos.shape[0]
        if self.span is not None:
            out = torch.zeros((R, width), dtype=torch.bool, device=self.pos.device)
            out[:, self.span[0] - lo : self.span[1] - lo] = True
            return out
        out = torch.zeros((R, width + 1), dtype=torch.bool, device=self.pos.device)
        idx = torch.where(self.valid, self.pos - lo, torch.full_like(self.pos, width))
        out.scatter_(1, idx, True)
        return out[:, :width]
