"""Standalone sampler, call-compatible with the paper's repository.

``InfoGainSampler(model, tokenizer).sample(input_ids, ...)`` returns ``[B, prompt_len + max_new_tokens]``
like the reference, but runs on the batched engine: every mask token already in ``input_ids`` is
decoded too (infilling; ``max_new_tokens=0`` decodes only those), every argument it accepts is honoured, any
:class:`~.config.DecodingConfig` field can be passed as an extra keyword (``sampler=``,
``tokens_per_step``, ``seed``, ``ig_scope``, ``eos_fill``, ``cache``, ``beam_size`` …), and unknown
keywords raise :class:`~.config.DecodingConfigError` instead of being ignored.
"""

from __future__ import annotations

from typing import Any

import torch

from ..models.base import MDMAdapter
from ..models.hf import HFModelAdapter
from .config import INFO_GAIN_FAMILY, DecodingConfig, DecodingConfigError, canonical_sampler
from .engine import GenerationOutput, generate

__all__ = ["InfoGainSampler"]


class InfoGainSampler:
    """Info-Gain (or any baseline) decoding of an HF-style masked diffusion model.

    ``model`` is either an :class:`~lm_eval_infogain.models.base.MDMAdapter` (used as is) or any
    module whose ``forward(input_ids=..., attention_mask=...)`` returns ``.logits``; the latter is
    wrapped with :meth:`HFModelAdapter.from_tokenizer`, which finds the mask id (or raises clearly).
    """

    def __init__(self, model: Any, tokenizer: Any = None, mask_id: int | None = None):
        if isinstance(model, MDMAdapter):
            self.adapter = model
        else:
            if tokenizer is None and mask_id is None:
                raise ValueError("InfoGainSampler needs a tokenizer (or mask_id) to wrap a plain model")
            self.adapter = HFModelAdapter.from_tokenizer(model, tokenizer, mask_id=mask_id)
        self.tokenizer = tokenizer
        #: Output of the last :meth:`sample` call (per-sample statistics included).
        self.last_output: GenerationOutput | None = None

    @property
    def mask_id(self) -> int:
        return self.adapter.mask_id

    @torch.no_grad()
    def sample(
        self,
        input_ids: torch.Tensor,
        max_new_tokens: int = 256,
        steps: int = 256,
        block_size: int = 32,
        candidate_number: int = 8,
        position_temperature: float = 0.2,
        threshold: float | None = 0.8,
        temperature: float = 0.0,
        variant: str = "info_gain",
        attention_mask: torch.Tensor | None = None,
        **extra: Any,
    ) -> torch.LongTensor:
        """Prompts ``[B, P]`` (left-padded; ``attention_mask`` marks the pads) → ``[B, P + max_new_tokens]``.

        Mask tokens inside ``input_ids`` are decoded as well (infilling); the output keeps every
        other token where it was. ``steps`` is capped at ``max_new_tokens`` and ignored when
        ``tokens_per_step`` is given or ``max_new_tokens`` is 0 (the reference's defaults would
        otherwise be invalid for short generations); ``threshold`` None or ≤ 0 disables the bypass;
        ``variant`` only applies when the sampler is info_gain / lookum.
        """
        config = self._config(max_new_tokens, steps, block_size, candidate_number, position_temperature,
                              threshold, temperature, variant, extra)
        ids = torch.as_tensor(input_ids)
        if ids.dtype == torch.bool or ids.is_floating_point() or ids.is_complex():
            raise TypeError(f"input_ids must hold integer token ids, got dtype {ids.dtype}")
        if ids.dim() == 1:
            ids = ids.unsqueeze(0)
        if ids.dim() != 2:
            raise ValueError(f"input_ids must be [B, P] or [P], got shape {tuple(ids.shape)}")
        if attention_mask is not None:
            keep = torch.as_tensor(attention_mask, device=ids.device).reshape(ids.shape).bool()
        else:
            keep = torch.ones_like(ids, dtype=torch.bool)
        prompts = [row[m].tolist() for row, m in zip(ids, keep)]
        out = generate(self.adapter, prompts, config)
        self.last_output = out
        result = torch.cat([ids, ids.new_zeros((ids.shape[0], config.gen_length))], dim=1)
        for row, (m, canvas) in enumerate(zip(keep, out.canvases)):  # prompts with their gaps filled
            decoded = torch.tensor(canvas, dtype=ids.dtype, device=ids.device)
            result[row, : ids.shape[1]][m] = decoded[: int(m.sum())]
            result[row, ids.shape[1] :] = decoded[int(m.sum()) :]
        return result

    @staticmethod
    def _config(max_new_tokens, steps, block_size, candidate_number, position_temperature, threshold,
                temperature, variant, extra) -> DecodingConfig:
        options: dict[str, Any] = dict(
            gen_length=max_new_tokens,
            block_size=block_size,
            candidate_number=candidate_number,
            position_temperature=position_temperature,
            threshold=None if threshold is None or threshold <= 0 else threshold,
            temperature=temperature,
        )
        if extra.get("tokens_per_step") is None and steps is not None and max_new_tokens != 0:
            options["steps"] = min(int(steps), int(max_new_tokens)) if isinstance(max_new_tokens, int) else steps
        options.update(extra)
        # ``variant`` picks between the two Info-Gain objectives; a baseline ``sampler=`` ignores it.
        sampler = canonical_sampler(options.get("sampler", "info_gain"))
        if sampler == "info_gain" and variant is not None:
            sampler = canonical_sampler(variant)
            if sampler not in INFO_GAIN_FAMILY:
                raise DecodingConfigError("variant", variant, "must be 'info_gain' or 'lookum'")
        options["sampler"] = sampler
        return DecodingConfig.from_options(options)
