"""Block-entry KV caches (``prefix`` / ``dual``) shared by every native family.

At block entry the whole canvas runs once (:func:`open_block_cache`); every layer's rotated keys and
values are kept for the positions that later steps will *not* recompute (the "other" positions).
A step (:func:`cached_step`) then runs only the "fresh" positions of each row through all layers and
the LM head only on the window:

- ``prefix``: fresh = ``[block_start, T)``, other = ``[0, block_start)``.
- ``dual``:   fresh = ``[block_start, block_end)``, other = ``[0, block_start) ∪ [block_end, T)``.

(A family whose logits are shifted — Dream — also recomputes ``block_start - 1``, whose output
scores ``block_start``.) Attention of a fresh query is one softmax over *other* keys (cached, one
copy per prompt) and *fresh* keys (per row). The two parts are computed separately and merged with
their log-sum-exp weights, which is exactly the joint softmax. Rows of a lookahead group share
their prompt's cached keys by folding the group into the query dimension (``[prompts, heads,
group * t, D] @ [prompts, heads, D, s]``), so the prefix is never expanded or copied per candidate.

What is approximated (bidirectional families, LLaDA and Dream): the cached keys/values of the
other positions are those of the canvas *at block entry*. In a bidirectional model they depend on
every token, so once tokens of the block are unmasked the exact keys/values of the prefix (and, for
``dual``, of the suffix) would change; the cache keeps the block-entry ones. Nothing else is
approximated: a step's logits equal a full forward in which, at every layer, the keys/values of
the other positions are replaced by their block-entry values (tested). At block entry — canvas
unchanged — both modes equal the no-cache logits. For block-causal SDAR/TraDo the positions before
a block boundary never see later ones, so ``prefix`` is exact, and ``dual`` is exact on the block
whenever the suffix is invisible to it (block aligned to the model's blocks).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from ._core import DecoderLM, full_attention_mask, sdpa

__all__ = ["CachePayload", "open_block_cache", "cached_step", "shared_prefix_attention"]

_NEG = torch.finfo(torch.float32).min


@dataclass
class CachePayload:
    """Family-independent cache contents (one entry per prompt, never per lookahead row)."""

    fresh: tuple[int, int]
    #: raw-output slice of the fresh run fed to the LM head, and whether position 0's raw output is
    #: repeated in front (shifted families whose window starts at 0).
    head: tuple[int, int]
    repeat_first: bool
    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    #: ``[P, t|1, s]`` True = fresh query may attend the other key; ``None`` = all allowed.
    other_mask: torch.Tensor | None
    #: ``[P, t|1, t]`` among fresh positions; ``None`` = all allowed.
    fresh_mask: torch.Tensor | None
    positions: torch.Tensor


def raw_span(window: tuple[int, int], shift: int) -> tuple[int, int, bool]:
    """Raw model outputs ``[a, b)`` that score canvas ``window`` (and whether output 0 is repeated)."""
    start, end = window
    if shift == 0:
        return start, end, False
    if start == 0:
        return 0, max(end - 1, 1), True
    return start - 1, end - 1, False


def unshift(raw: torch.Tensor, repeat_first: bool, width: int) -> torch.Tensor:
    if not repeat_first:
        return raw
    return torch.cat([raw[:, :1], raw], dim=1)[:, :width]


def _none_if_all(mask: torch.Tensor) -> torch.Tensor | None:
    # One host sync per block entry (not per step): lets unpadded batches skip masking entirely.
    return None if bool(mask.all()) else mask


def open_block_cache(
    model: DecoderLM,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    positions: torch.Tensor,
    *,
    mode: str,
    block: tuple[int, int],
    shift: int,
) -> tuple[torch.Tensor, CachePayload, tuple[int, int]]:
    """Full forward of the canvas at block entry; returns (window logits, payload, window)."""
    length = input_ids.shape[1]
    start, end = block
    window = (start, length) if mode == "prefix" else (start, end)
    fresh = (max(start - shift, 0), length if mode == "prefix" else end)
    device = input_ids.device
    full_mask = full_attention_mask(attention_mask, length, model.block_size, device)
    keys: list[torch.Tensor] = []
    values: list[torch.Tensor] = []

    def attend(_: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        keys.append(k)
        values.append(v)
        return sdpa(q, k, v, full_mask)

    a, b, repeat_first = raw_span(window, shift)
    raw = model.run(input_ids, positions, attend, head_slice=slice(a, b))
    logits = unshift(raw, repeat_first, window[1] - window[0])

    # Other positions: everything not recomputed. Block-causal models never let a fresh query see
    # keys beyond the model block holding the last fresh position, so those are not kept at all.
    limit = length
    if model.block_size is not None:
        limit = min(length, -(-fresh[1] // model.block_size) * model.block_size)
    other_idx = torch.cat([torch.arange(0, fresh[0]), torch.arange(fresh[1], limit)]).to(device)
    contiguous_prefix = other_idx.numel() == fresh[0]

    def keep(t: torch.Tensor) -> torch.Tensor:
        return t[:, :, : fresh[0]].clone() if contiguous_prefix else t.index_select(2, other_idx)

    keys = [keep(k) for k in keys]
    values = [keep(v) for v in values]

    fresh_idx = torch.arange(fresh[0], fresh[1], device=device)
    other_mask: torch.Tensor | None = None
    fresh_mask: torch.Tensor | None = None
    if attention_mask is not None:
        valid = attention_mask.bool()
        other_mask = valid[:, None, other_idx]
        fresh_mask = valid[:, None, fresh[0] : fresh[1]]
    if model.block_size is not None:
        blk_q = fresh_idx // model.block_size
        see_other = (other_idx // model.block_size)[None, :] <= blk_q[:, None]
        see_fresh = (fresh_idx // model.block_size)[None, :] <= blk_q[:, None]
        other_mask = see_other[None] if other_mask is None else other_mask & see_other[None]
        fresh_mask = see_fresh[None] if fresh_mask is None else fresh_mask & see_fresh[None]
    if fresh_mask is not None:
        # A query always sees itself: a pad query must not end up with an all-False row (NaNs).
        fresh_mask = fresh_mask | torch.eye(fresh_idx.numel(), dtype=torch.bool, device=device)[None]
        fresh_mask = _none_if_all(fresh_mask)
    if other_mask is not None:
        other_mask = _none_if_all(other_mask)

    head = (a - fresh[0], b - fresh[0])
    payload = CachePayload(
        fresh=fresh,
        head=head,
        repeat_first=repeat_first,
        keys=keys,
        values=values,
        other_mask=other_mask,
        fresh_mask=fresh_mask,
        positions=positions[:, fresh[0] : fresh[1]],
    )
    return logits, payload, window


def shared_prefix_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    k_other: torch.Tensor,
    v_other: torch.Tensor,
    other_mask: torch.Tensor | None,
    fresh_mask: torch.Tensor | None,
    group: int,
) -> torch.Tensor:
    """Joint-softmax attention of fresh queries over (shared other keys) ∪ (own fresh keys).

    ``q [R, H, t, D]``, ``k/v [R, Hkv, t, D]`` per row; ``k_other/v_other [n, Hkv, s, D]`` per
    prompt with ``R = n * group``; masks ``[n, t|1, s]`` / ``[n, t|1, t]``. Returns ``[R, t, H*D]``.
    Query head ``h`` uses key head ``h // (H / Hkv)`` (the grouped-query convention).
    """
    rows, heads, length, dim = q.shape
    kv_heads = k.shape[1]
    rep = heads // kv_heads
    n = rows // group
    scale = dim**-0.5

    q_f = q.reshape(rows, kv_heads, rep * length, dim)
    s_f = torch.matmul(q_f, k.transpose(-1, -2)).float() * scale
    if fresh_mask is not None:
        keep = fresh_mask.to(s_f.device)[:, None, None, None]
        s_f = s_f.view(n, group, kv_heads, rep, length, length).masked_fill(~keep, _NEG)
        s_f = s_f.view(rows, kv_heads, rep * length, length)
    lse_f = torch.logsumexp(s_f, dim=-1, keepdim=True)
    out = torch.matmul((s_f - lse_f).exp().to(v.dtype), v).float()

    if k_other.shape[2] > 0:
        q_o = q.reshape(n, group, kv_heads, rep * length, dim).transpose(1, 2)
        q_o = q_o.reshape(n, kv_heads, group * rep * length, dim)
        s_o = torch.matmul(q_o, k_other.transpose(-1, -2)).float() * scale
        if other_mask is not None:
            keep = other_mask.to(s_o.device)[:, None, None]
            s_o = s_o.view(n, kv_heads, group * rep, length, -1).masked_fill(~keep, _NEG)
            s_o = s_o.view(n, kv_heads, group * rep * length, -1)
        lse_o = torch.logsumexp(s_o, dim=-1, keepdim=True)
        out_o = torch.matmul((s_o - lse_o).exp().to(v_other.dtype), v_other).float()
        out_o = out_o.view(n, kv_heads, group, rep * length, dim).transpose(1, 2).reshape(rows, kv_heads, rep * length, dim)
        lse_o = lse_o.view(n, kv_heads, group, rep * length, 1).transpose(1, 2).reshape(rows, kv_heads, rep * length, 1)
        top = torch.maximum(lse_o, lse_f)
        w_o, w_f = (lse_o - top).exp(), (lse_f - top).exp()
        out = (out_o * w_o + out * w_f) / (w_o + w_f)

    out = out.to(q.dtype).reshape(rows, heads, length, dim)
    return out.transpose(1, 2).reshape(rows, length, heads * dim)


def _gather(mask: torch.Tensor | None, prompts: torch.Tensor) -> torch.Tensor | None:
    """Per-prompt mask rows for the selected prompts (masks shared by all prompts stay as they are)."""
    if mask is None or mask.shape[0] == 1:
        return mask
    return mask.index_select(0, prompts.to(mask.device))


def _padded_slots(sizes: Sequence[int], device: torch.device) -> tuple[torch.Tensor, int]:
    """Row ``r`` of groups of ``sizes`` → its place in ``len(sizes)`` groups of ``max(sizes)`` rows."""
    width = max(sizes)
    counts = torch.tensor(sizes, device=device)
    starts = torch.cumsum(counts, 0) - counts
    group_of = torch.repeat_interleave(torch.arange(len(sizes), device=device), counts)
    within = torch.arange(int(sum(sizes)), device=device) - starts[group_of]
    return group_of * width + within, width


def cached_step(
    model: DecoderLM,
    payload: CachePayload,
    input_ids: torch.Tensor,
    prompts: torch.Tensor | None,
    group: int | Sequence[int],
) -> torch.Tensor:
    """Raw LM-head outputs for ``input_ids [R, T]`` run against the cache.

    ``prompts``: per-group prompt indices to gather (``None`` = groups are the cache's prompts in
    order, which needs no gather at all). ``group``: rows per group, one int or one size per group.
    Unequal groups (each lookahead parent brings its distinct candidates) run every layer on exactly
    their ``R`` rows; only inside attention are queries laid out as equal groups of the largest size
    (zero rows fill the gaps and are dropped), so the cached keys are still shared, never copied.
    """
    lo, hi = payload.fresh
    ids = input_ids[:, lo:hi]
    positions = payload.positions
    other_mask, fresh_mask = payload.other_mask, payload.fresh_mask
    if prompts is not None:
        positions = positions.index_select(0, prompts)
        other_mask, fresh_mask = _gather(other_mask, prompts), _gather(fresh_mask, prompts)
    slots: torch.Tensor | None = None
    if isinstance(group, int):
        width = group
        positions = positions.repeat_interleave(group, dim=0) if group > 1 else positions
    else:
        slots, width = _padded_slots(group, positions.device)
        positions = positions.repeat_interleave(torch.tensor(list(group), device=positions.device), dim=0)

    def attend(index: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        k_o, v_o = payload.keys[index], payload.values[index]
        if prompts is not None:
            sel = prompts.to(k_o.device)
            k_o, v_o = k_o.index_select(0, sel), v_o.index_select(0, sel)
        if slots is None:
            return shared_prefix_attention(q, k, v, k_o, v_o, other_mask, fresh_mask, width)
        at = slots.to(q.device)
        padded = [t.new_zeros((k_o.shape[0] * width, *t.shape[1:])).index_copy_(0, at, t) for t in (q, k, v)]
        return shared_prefix_attention(*padded, k_o, v_o, other_mask, fresh_mask, width).index_select(0, at)

    a, b = payload.head
    return model.run(ids, positions, attend, head_slice=slice(a, b))
