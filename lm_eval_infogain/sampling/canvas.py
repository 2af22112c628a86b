"""The canvas every strategy edits: ``[left padding | prompt | generation region of masks]``.

Prompts of different lengths are left-padded to one length ``P`` (rounded up to the adapter's
alignment, so block-causal families see block boundaries where they expect them); pads get attention
0. The generation region is ``[P, P + gen_length)`` for every row, so blocks are the same canvas
slices for the whole batch. Also holds the two commit rules every strategy shares: writing tokens and
the EOS fill.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from ..models.base import MDMAdapter

__all__ = ["Canvas", "build_canvas", "apply_eos_fill"]


@dataclass
class Canvas:
    x: torch.Tensor  # [B, T] token ids
    attention_mask: torch.Tensor  # [B, T] 1 = real token / mask, 0 = left padding
    gen_start: int  # P: first canvas position of the generation region
    gen_length: int

    @property
    def length(self) -> int:
        return self.gen_start + self.gen_length

    def blocks(self, block_lengths: Sequence[int]) -> list[tuple[int, int]]:
        """Canvas ``(start, end)`` of each semi-autoregressive block."""
        out, start = [], self.gen_start
        for length in block_lengths:
            out.append((start, start + length))
            start += length
        return out


def build_canvas(adapter: MDMAdapter, prompts: Sequence[Sequence[int]], gen_length: int) -> Canvas:
    """Left-pad ``prompts`` and append ``gen_length`` masks; raises before any model work on bad input."""
    if len(prompts) == 0:
        raise ValueError("generate() needs at least one prompt")
    rows = [[int(t) for t in p] for p in prompts]
    vocab = int(getattr(adapter, "vocab_size", 0) or 0)
    for i, row in enumerate(rows):
        if vocab and any(not 0 <= t < vocab for t in row):
            bad = next(t for t in row if not 0 <= t < vocab)
            raise ValueError(f"prompt {i} holds token id {bad}, outside the model's vocabulary [0, {vocab})")
    align = max(1, int(getattr(adapter, "alignment", 1) or 1))
    longest = max(len(r) for r in rows)
    P = -(-longest // align) * align
    T = P + gen_length
    if adapter.max_length is not None and T > adapter.max_length:
        raise ValueError(
            f"prompt ({longest} tokens, padded to {P}) + gen_length ({gen_length}) = {T} exceeds the "
            f"model's maximum length {adapter.max_length}"
        )
    B = len(rows)
    x = torch.full((B, T), adapter.pad_id, dtype=torch.long)
    attn = torch.zeros((B, T), dtype=torch.long)
    for i, row in enumerate(rows):
        if row:
            x[i, P - len(row) : P] = torch.tensor(row, dtype=torch.long)
        attn[i, P - len(row) :] = 1
    x[:, P:] = adapter.mask_id
    device = adapter.device
    return Canvas(x=x.to(device), attention_mask=attn.to(device), gen_start=P, gen_length=gen_length)


def apply_eos_fill(
    x: torch.Tensor, gen_start: int, mask_id: int, eos_ids: torch.Tensor, fill_id: int
) -> torch.Tensor:
    """Every mask after the first committed EOS of a row's generation region becomes ``fill_id``.

    Works on any number of rows (candidate states included); returns a new tensor.
    """
    gen = x[:, gen_start:]
    is_eos = torch.isin(gen, eos_ids)
    after = (is_eos.long().cumsum(-1) - is_eos.long()) > 0  # strictly after the first EOS
    fill = after & (gen == mask_id)
    out = x.clone()
    out[:, gen_start:] = torch.where(fill, torch.full_like(gen, fill_id), gen)
    return out
