"""The canvas every strategy edits: ``[left padding | prompt | appended masks]``, and where its masks are.

Prompts of different lengths are left-padded to one length ``P`` (rounded up to the adapter's
alignment, so block-causal families see block boundaries where they expect them); pads get attention
0. ``gen_length`` masks are appended at ``[P, P + gen_length)``. Every mask token of a row — the
appended ones and any already in its prompt (infilling) — is a position to decode.

How blocks are laid over the masks (semi-autoregressive decoding of any canvas): a row's masks are
numbered left to right, and block b holds masks number ``b·block_size … (b+1)·block_size − 1``. For a
plain suffix these are exactly the canvas slices ``[P + b·block_size, P + (b+1)·block_size)``; with
gaps inside the prompt, the first block starts with the leftmost gap, a block may span several gaps
(and the end of one gap and the start of the next), and every block except a row's last holds
exactly ``block_size`` masks. The layout is fixed when decoding starts: the EOS fill may settle some
of a later block's positions early, which then simply have nothing left to decode.

A **gap** is a maximal run of consecutive masks of the starting canvas (the appended region together
with any masks that end the prompt is one gap). The EOS fill works per gap: once an EOS is committed
inside a gap, every later mask of that gap becomes EOS — for a suffix that is the reference's rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from ..models.base import MDMAdapter

__all__ = [
    "Canvas",
    "CanvasError",
    "InfillingNotSupportedError",
    "RowLayout",
    "build_canvas",
    "apply_eos_fill",
    "gap_spans",
]


class CanvasError(ValueError):
    """Prompts that cannot form a canvas: bad ids, too long for the model, empty batch."""


class InfillingNotSupportedError(ValueError):
    """Masks inside a prompt with a setting that can only decode an appended region."""


@dataclass(frozen=True)
class RowLayout:
    """Host-side facts of one row: where its masks are and how they split into blocks."""

    pad: int  # left padding (canvas positions before the prompt)
    mask_positions: tuple[int, ...]  # canvas positions of every mask, left to right

    def block_positions(self, block_size: int) -> list[tuple[int, ...]]:
        m = self.mask_positions
        return [m[i : i + block_size] for i in range(0, len(m), block_size)]


@dataclass
class Canvas:
    x: torch.Tensor  # [B, T] token ids
    attention_mask: torch.Tensor  # [B, T] 1 = real token / mask, 0 = left padding
    gen_start: int  # P: first canvas position of the appended region
    gen_length: int
    rows: list[RowLayout]
    #: ``[B, T]`` canvas index of the first position of the gap holding each mask (-1 elsewhere).
    gap_start: torch.Tensor

    @property
    def length(self) -> int:
        return self.gen_start + self.gen_length

    @property
    def has_prompt_masks(self) -> bool:
        return any(len(r.mask_positions) != self.gen_length for r in self.rows)


def gap_spans(ids: Sequence[int], mask_id: int) -> list[tuple[int, int]]:
    """``(start, end)`` of every maximal run of ``mask_id`` in ``ids``."""
    spans: list[tuple[int, int]] = []
    start = None
    for i, t in enumerate(ids):
        if t == mask_id and start is None:
            start = i
        elif t != mask_id and start is not None:
            spans.append((start, i))
            start = None
    if start is not None:
        spans.append((start, len(ids)))
    return spans


def build_canvas(adapter: MDMAdapter, prompts: Sequence[Sequence[int]], gen_length: int) -> Canvas:
    """Left-pad ``prompts`` and append ``gen_length`` masks; raises before any model work on bad input."""
    if len(prompts) == 0:
        raise CanvasError("generate() needs at least one prompt")
    rows = [[int(t) for t in p] for p in prompts]
    vocab = int(getattr(adapter, "vocab_size", 0) or 0)
    for i, row in enumerate(rows):
        bad = next((t for t in row if not 0 <= t < vocab), None) if vocab else next((t for t in row if t < 0), None)
        if bad is not None:
            raise CanvasError(f"prompt {i} holds token id {bad}, outside the model's vocabulary [0, {vocab or '?'})")
    align = max(1, int(getattr(adapter, "alignment", 1) or 1))
    longest = max(len(r) for r in rows)
    P = -(-longest // align) * align
    T = P + gen_length
    if T == 0:
        raise CanvasError("nothing to decode: every prompt is empty and gen_length is 0")
    if adapter.max_length is not None and T > adapter.max_length:
        raise CanvasError(
            f"prompt ({longest} tokens, padded to {P}) + gen_length ({gen_length}) = {T} exceeds the "
            f"model's maximum length {adapter.max_length}"
        )
    mask_id = adapter.mask_id
    B = len(rows)
    x = torch.full((B, T), adapter.pad_id, dtype=torch.long)
    attn = torch.zeros((B, T), dtype=torch.long)
    gap_start = torch.full((B, T), -1, dtype=torch.long)
    layouts = []
    for i, row in enumerate(rows):
        pad = P - len(row)
        full = row + [mask_id] * gen_length
        if row:
            x[i, pad:P] = torch.tensor(row, dtype=torch.long)
        attn[i, pad:] = 1
        for start, end in gap_spans(full, mask_id):
            gap_start[i, pad + start : pad + end] = pad + start
        layouts.append(RowLayout(pad, tuple(pad + j for j, t in enumerate(full) if t == mask_id)))
    x[:, P:] = mask_id
    device = adapter.device
    return Canvas(x=x.to(device), attention_mask=attn.to(device), gen_start=P, gen_length=gen_length,
                  rows=layouts, gap_start=gap_start.to(device))


def apply_eos_fill(
    x: torch.Tensor, gap_start: torch.Tensor, mask_id: int, eos_ids: torch.Tensor, fill_id: int
) -> torch.Tensor:
    """Every mask after a committed EOS of the same gap becomes ``fill_id`` (returns a new tensor).

    ``gap_start`` is the canvas layout of ``x``'s rows (:attr:`Canvas.gap_start`, rows repeated for
    candidate states); positions outside every gap (-1) never trigger and never get filled.
    """
    in_gap = gap_start >= 0
    eos = (torch.isin(x, eos_ids) & in_gap).long()
    before = eos.cumsum(-1) - eos  # EOS strictly left of each position, anywhere in the row
    at_gap_start = before.gather(-1, gap_start.clamp(min=0))  # ... and left of the position's gap
    fill = in_gap & (before > at_gap_start) & (x == mask_id)
    return torch.where(fill, torch.full_like(x, fill_id), x)
