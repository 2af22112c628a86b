"""The adapter for our native family modules (LLaDA, Dream, SDAR/TraDo): ids, shift, positions, caches.

One class serves all three families because they differ only in what the module already encodes
(attention pattern via ``model.block_size``) plus two adapter facts: Dream's logits are shifted by
one (``shift=1``), and SDAR's generation region must start on a model block boundary
(``alignment = block_size``).
"""

from __future__ import annotations

from typing import Any, Iterable

import torch

from ._core import DecoderLM, full_attention_mask, sdpa
from .base import CacheState, MDMAdapter, position_ids_from_mask
from .cache import CachePayload, cached_step, open_block_cache, raw_span, unshift

__all__ = ["NativeAdapter", "CacheModeError"]


class CacheModeError(ValueError):
    """An unknown cache mode or a block outside the canvas."""


def _dedupe(values: Iterable[int | None]) -> tuple[int, ...]:
    return tuple(dict.fromkeys(int(v) for v in values if v is not None))


class NativeAdapter(MDMAdapter):
    """:class:`MDMAdapter` over a :class:`~lm_eval_infogain.models._core.DecoderLM` family module."""

    cache_modes = ("none", "prefix", "dual")

    def __init__(
        self,
        model: DecoderLM,
        *,
        family: str,
        mask_id: int,
        pad_id: int,
        eos_ids: Iterable[int],
        shift: int = 0,
        penalized_ids: Iterable[int] | None = None,
        tokenizer: Any = None,
        name_or_path: str | None = None,
    ):
        if shift not in (0, 1):
            raise ValueError(f"shift must be 0 or 1, got {shift}")
        self.model = model.eval()
        self.family = family
        self.shift = shift
        self.mask_id = int(mask_id)
        self.pad_id = int(pad_id)
        self.eos_ids = _dedupe(eos_ids)
        self.penalized_ids = _dedupe(penalized_ids if penalized_ids is not None else (*self.eos_ids[:1], self.pad_id))
        self.vocab_size = int(model.vocab_size)
        self.max_length = int(model.max_length) if model.max_length else None
        self.alignment = int(model.block_size or 1)
        self.bidirectional = model.block_size is None
        self.tokenizer = tokenizer
        self.name_or_path = name_or_path

    def __repr__(self) -> str:
        return (
            f"NativeAdapter(family={self.family!r}, name_or_path={self.name_or_path!r}, mask_id={self.mask_id}, "
            f"pad_id={self.pad_id}, eos_ids={self.eos_ids}, alignment={self.alignment})"
        )

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _positions(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        if attention_mask is None:
            batch, length = input_ids.shape
            return torch.arange(length, device=input_ids.device).expand(batch, length)
        return position_ids_from_mask(attention_mask)

    @torch.no_grad()
    def logits(self, input_ids, attention_mask=None, *, window=None):
        length = input_ids.shape[1]
        window = (0, length) if window is None else (int(window[0]), int(window[1]))
        if not 0 <= window[0] < window[1] <= length:
            raise ValueError(f"window {window} is outside the canvas of length {length}")
        mask = full_attention_mask(attention_mask, length, self.model.block_size, input_ids.device)

        def attend(_: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
            return sdpa(q, k, v, mask)

        a, b, repeat_first = raw_span(window, self.shift)
        raw = self.model.run(input_ids, self._positions(input_ids, attention_mask), attend, head_slice=slice(a, b))
        return unshift(raw, repeat_first, window[1] - window[0])

    @torch.no_grad()
    def open_cache(self, input_ids, attention_mask, *, mode, block):
        if mode not in ("prefix", "dual"):
            raise CacheModeError(f"cache mode must be 'prefix' or 'dual' here, got {mode!r}")
        length = input_ids.shape[1]
        start, end = int(block[0]), int(block[1])
        if not 0 <= start < end <= length:
            raise CacheModeError(f"block {block} is outside the canvas of length {length}")
        logits, payload, window = open_block_cache(
            self.model,
            input_ids,
            attention_mask,
            self._positions(input_ids, attention_mask),
            mode=mode,
            block=(start, end),
            shift=self.shift,
        )
        state = CacheState(mode=mode, block=(start, end), window=window, attention_mask=attention_mask, payload=payload)
        return logits, state

    @torch.no_grad()
    def cached_logits(self, state, input_ids, *, prompt_index=None, group_size=1):
        payload: CachePayload = state.payload
        rows = input_ids.shape[0]
        prompts = payload.positions.shape[0]
        if isinstance(group_size, int):
            if group_size < 1 or rows % group_size:
                raise ValueError(f"{rows} rows do not split into groups of {group_size}")
            groups = rows // group_size
        else:
            group_size = [int(g) for g in group_size]
            if min(group_size, default=0) < 1 or sum(group_size) != rows:
                raise ValueError(f"{rows} rows do not split into groups of sizes {group_size}")
            groups = len(group_size)
        index: torch.Tensor | None = None
        if prompt_index is None:
            if groups != prompts:
                raise ValueError(f"{groups} row groups but the cache holds {prompts} prompts; pass prompt_index")
        else:
            prompt_index = torch.as_tensor(prompt_index)
            if prompt_index.numel() != groups:
                raise ValueError(f"prompt_index has {prompt_index.numel()} entries for {groups} row groups")
            # The identity needs no gather; we can only tell without a device sync on a CPU index.
            identity = (
                prompt_index.device.type == "cpu"
                and groups == prompts
                and torch.equal(prompt_index.long(), torch.arange(prompts))
            )
            if not identity:
                index = prompt_index.to(device=payload.positions.device, dtype=torch.long)
        raw = cached_step(self.model, payload, input_ids, index, group_size)
        return unshift(raw, payload.repeat_first, state.window[1] - state.window[0])
