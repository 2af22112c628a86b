"""The decoding engine: batched, semi-autoregressive block decoding of a masked diffusion model.

``generate`` lays the prompts on one left-padded canvas, then walks the blocks left to right. Each
block gets one :class:`~.forward.BlockForward` (the only place that knows about KV caches) and a number
of denoising steps; each step asks the strategy (a baseline rule or Info-Gain) to commit some masked
positions. Everything a prompt experiences — its randomness, its schedule, its statistics — depends
on that prompt alone, so its output is the same alone or inside any batch.

Host syncs: one per block (which rows still have masks) and one per step (the strategy's status
``.tolist()``: Info-Gain sizes its lookahead batch with it, baselines drop finished rows with it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

from ..models.base import MDMAdapter
from .canvas import build_canvas
from .config import INFO_GAIN_FAMILY, DecodingConfig, DecodingConfigError
from .forward import BlockForward
from .info_gain import InfoGainStepper
from .rng import RequestKey, derive_request_keys, request_seed
from .state import DecodeState
from .stats import SampleStats
from .strategies import BaselineStepper, make_rule

__all__ = ["generate", "GenerationOutput", "Trace"]

#: Optional per-step observer; receives a dict of the step's tensors (see the strategies).
Trace = Callable[[dict[str, Any]], None]


@dataclass
class GenerationOutput:
    #: Exactly ``config.gen_length`` ids per prompt: the generation region only.
    tokens: list[list[int]]
    stats: list[SampleStats]
    #: Every forward call as (rows, positions run) — what the statistics were counted from.
    calls: list[tuple[int, int]]


def generate(
    adapter: MDMAdapter,
    prompts: Sequence[Sequence[int]],
    config: DecodingConfig,
    *,
    request_keys: Sequence[RequestKey] | None = None,
    trace: Trace | None = None,
) -> GenerationOutput:
    """Decode ``config.gen_length`` tokens after each prompt with ``config.sampler``."""
    keys = _check(adapter, prompts, config, request_keys)
    started = time.perf_counter()
    canvas = build_canvas(adapter, prompts, config.gen_length)
    state = DecodeState.create(adapter, canvas, config, [request_seed(config.seed, k) for k in keys])
    stepper = (
        InfoGainStepper(config, state, trace)
        if config.sampler in INFO_GAIN_FAMILY
        else BaselineStepper(make_rule(config, adapter), config, state, trace)
    )
    blocks = canvas.blocks(config.block_lengths)
    for b, ((start, end), planned) in enumerate(zip(blocks, config.steps_per_block)):
        rows = state.rows_to_decode(start, end)
        if not rows:
            continue
        hi = stepper.window_end((start, end), canvas.length)
        stepper.start_block(BlockForward(adapter, config.cache, state, (start, end), hi), b, rows)
        step = 0
        # Planned steps fill the block (K = ceil(masks / steps left)); adaptive rules may need more.
        while stepper.step(step, planned - step) and (step + 1 < planned or stepper.adaptive):
            step += 1
    return _finish(state, canvas.gen_start, config, len(prompts), time.perf_counter() - started)


def _check(adapter, prompts, config, request_keys) -> list[RequestKey]:
    """Every input problem raises here, before a tensor is built or a model is run."""
    if not isinstance(config, DecodingConfig):
        raise TypeError(f"config must be a DecodingConfig, not {type(config).__name__}")
    if not isinstance(adapter, MDMAdapter):
        raise TypeError(f"adapter must be an MDMAdapter, not {type(adapter).__name__}")
    if config.cache not in adapter.cache_modes:
        raise DecodingConfigError(
            "cache", config.cache,
            f"{type(adapter).__name__} supports only: {', '.join(adapter.cache_modes)}",
        )
    if isinstance(prompts, (str, bytes)) or not all(hasattr(p, "__len__") for p in prompts):
        raise TypeError("prompts must be a sequence of token-id sequences")
    if request_keys is None:
        return list(derive_request_keys(prompts))
    keys = list(request_keys)
    if len(keys) != len(prompts):
        raise ValueError(f"got {len(keys)} request_keys for {len(prompts)} prompts")
    return keys


def _finish(state: DecodeState, gen_start: int, config: DecodingConfig, n_prompts: int, wall: float):
    W = state.beam_size
    if W > 1:  # the beam with the lowest cumulative entropy
        inf = float("inf")
        h = state.cum_entropy.masked_fill(~state.alive, inf).view(n_prompts, W)
        best = (h.argmin(-1) + W * torch.arange(n_prompts, device=h.device)).tolist()
    else:
        best = list(range(n_prompts))
    gen = state.x[best, gen_start:]
    tokens = gen.tolist()
    left = (gen == state.mask_id).sum(-1).tolist()
    entropy = state.cum_entropy[best].tolist()
    steps = state.steps[best].tolist()
    rec = state.recorder
    stats = [
        SampleStats(
            cumulative_entropy=float(entropy[i]),
            model_calls=rec.model_calls[i],
            rows_forwarded=rec.rows_forwarded[i],
            tokens_forwarded=rec.tokens_forwarded[i],
            generated_tokens=config.gen_length - int(left[i]),
            steps=int(steps[i]),
            wall_time_s=wall / n_prompts,
        )
        for i in range(n_prompts)
    ]
    return GenerationOutput(tokens=tokens, stats=stats, calls=list(rec.calls))

