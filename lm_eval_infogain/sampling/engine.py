"""The decoding engine: batched, semi-autoregressive block decoding of a masked diffusion model.

``generate`` lays the prompts on one left-padded canvas with ``gen_length`` masks appended, then
decodes every mask of every row — the appended ones and any already in the prompt (infilling) —
block by block, left to right (how blocks are laid over gaps: ``canvas.py``). Each block gets one
:class:`~.forward.BlockForward` (the only place that knows about KV caches) and each row its own
number of denoising steps; each step asks the strategy (a baseline rule or Info-Gain) to commit some
masked positions. Everything a prompt experiences — its randomness, its schedule, its statistics —
depends on that prompt alone, so its output is the same alone or inside any batch.

Host syncs: one per block (which rows still have masks) and one per step (the strategy's status
``.tolist()``: Info-Gain sizes its lookahead batch with it, baselines drop finished rows with it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from numbers import Integral
from typing import Any, Callable, Sequence

import torch

from ..models.base import LogitsShapeError, MDMAdapter
from .blocks import BlockSlots
from .canvas import Canvas, CanvasError, InfillingNotSupportedError, build_canvas
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
    #: Exactly ``config.gen_length`` ids per prompt: the appended region only.
    tokens: list[list[int]]
    stats: list[SampleStats]
    #: Every forward call as (rows, positions run) — what the statistics were counted from.
    calls: list[tuple[int, int]]
    #: Each prompt's whole row after decoding, without padding: the prompt with every mask filled,
    #: then the appended region (``sampling.infill.filled_gaps`` extracts the gaps).
    canvases: list[list[int]]
    #: What each of ``calls`` was: ``enter``, ``current`` or ``lookahead`` (see ``stats.CallRecorder``).
    call_kinds: list[str]


def generate(
    adapter: MDMAdapter,
    prompts: Sequence[Sequence[int]],
    config: DecodingConfig,
    *,
    request_keys: Sequence[RequestKey] | None = None,
    trace: Trace | None = None,
) -> GenerationOutput:
    """Decode every mask of ``prompts`` plus ``config.gen_length`` appended ones with ``config.sampler``."""
    keys = _check(adapter, prompts, config, request_keys)
    started = time.perf_counter()
    canvas = build_canvas(adapter, prompts, config.gen_length)
    _check_canvas(adapter, canvas, config)
    state = DecodeState.create(adapter, canvas, config, [request_seed(config.seed, k) for k in keys])
    stepper = (
        InfoGainStepper(config, state, trace)
        if config.sampler in INFO_GAIN_FAMILY
        else BaselineStepper(make_rule(config, adapter), config, state, trace)
    )
    W, T = config.beam_size, canvas.x.shape[1]
    blocks = [row.block_positions(config.block_size) for row in canvas.rows]  # per prompt, per block
    plans = [config.steps_for(len(row.mask_positions)) for row in canvas.rows]
    for b in range(max(map(len, blocks))):
        slots = BlockSlots.build([blk[b] if b < len(blk) else () for blk in blocks for _ in range(W)], T, state.x.device)
        rows = state.rows_to_decode(slots)
        if not rows:
            continue
        planned = [plan[b] if b < len(plan) else 0 for plan in plans for _ in range(W)]
        budget = torch.tensor(planned, device=state.x.device)
        hi = stepper.window_end(slots, T)
        stepper.start_block(BlockForward(adapter, config.cache, state, slots, hi), b, rows)
        longest, step = max(planned[r] for r in rows), 0
        # Planned steps fill the block (K = ceil(masks / steps left)); adaptive rules may need more.
        while stepper.step(step, budget - step) and (step + 1 < longest or stepper.adaptive):
            step += 1
    return _finish(state, canvas, config, len(prompts), time.perf_counter() - started)


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
    for i, prompt in enumerate(prompts):
        _check_integer_ids(prompt, i)
    resolve_vocab_size(adapter)
    if request_keys is None:
        return list(derive_request_keys(prompts))
    keys = list(request_keys)
    if len(keys) != len(prompts):
        raise ValueError(f"got {len(keys)} request_keys for {len(prompts)} prompts")
    return keys


def _check_integer_ids(prompt: Any, index: int) -> None:
    """Token ids must be integers: ``int(2.7)`` or ``True`` would silently become another token."""
    if isinstance(prompt, torch.Tensor):
        if prompt.dtype == torch.bool or prompt.is_floating_point() or prompt.is_complex():
            raise TypeError(f"prompt {index} is a {prompt.dtype} tensor; token ids must be integers")
        return
    bad = next((t for t in prompt if isinstance(t, bool) or not isinstance(t, Integral)), None)
    if bad is not None:
        raise TypeError(f"prompt {index} holds {bad!r} ({type(bad).__name__}); token ids must be integers")


def resolve_vocab_size(adapter: MDMAdapter) -> int:
    """The adapter's vocabulary size; for a plain module that does not declare one, read it from the
    logits of a one-token probe forward (once per adapter), so out-of-vocabulary ids and samplers
    that need the vocabulary (``pc``) work with any model."""
    vocab = int(getattr(adapter, "vocab_size", 0) or 0)
    if vocab:
        return vocab
    probe = torch.tensor([[adapter.mask_id]], dtype=torch.long, device=adapter.device)
    try:
        with torch.no_grad():
            logits = adapter.logits(probe, torch.ones_like(probe))
    except (IndexError, RuntimeError) as err:
        raise CanvasError(
            f"{type(adapter).__name__} declares no vocabulary size and a one-token probe forward with the mask "
            f"id {adapter.mask_id} failed ({type(err).__name__}: {err}); is mask_id inside the model's vocabulary?"
        ) from err
    if not isinstance(logits, torch.Tensor) or logits.dim() != 3 or logits.shape[:2] != (1, 1):
        raise LogitsShapeError(
            f"{type(adapter).__name__}.logits returned {getattr(logits, 'shape', type(logits).__name__)} for one "
            "1-token row, expected (1, 1, vocabulary)"
        )
    adapter.vocab_size = int(logits.shape[-1])
    if not 0 <= adapter.mask_id < adapter.vocab_size:
        raise CanvasError(f"mask id {adapter.mask_id} is outside the model's vocabulary [0, {adapter.vocab_size})")
    return adapter.vocab_size


def _check_canvas(adapter: MDMAdapter, canvas: Canvas, config: DecodingConfig) -> None:
    """Settings that can only decode an appended region refuse masks inside the prompts."""
    if not canvas.has_prompt_masks:
        return
    if config.cache != "none":
        raise InfillingNotSupportedError(
            f"cache={config.cache!r} decodes only an appended region, but a prompt holds mask tokens "
            "(infilling): its cached keys/values would go stale where the prompt is still masked; use cache='none'"
        )
    if not getattr(adapter, "bidirectional", True):
        raise InfillingNotSupportedError(
            f"{type(adapter).__name__} attends block-causally (SDAR/TraDo): a mask inside the prompt cannot "
            "see the tokens after it, so infilling needs a bidirectional model (LLaDA, Dream, a masked LM)"
        )


def _finish(state: DecodeState, canvas: Canvas, config: DecodingConfig, n_prompts: int, wall: float):
    W = state.beam_size
    if W > 1:  # the beam with the lowest cumulative entropy
        inf = float("inf")
        h = state.cum_entropy.masked_fill(~state.alive, inf).view(n_prompts, W)
        best = (h.argmin(-1) + W * torch.arange(n_prompts, device=h.device)).tolist()
    else:
        best = list(range(n_prompts))
    if bool(state.nonfinite):  # lookahead logits of the last steps were checked only here
        raise state.nonfinite_error("the end of decoding")
    rows = state.x[best].tolist()
    tokens = [row[canvas.gen_start :] for row in rows]
    canvases = [row[layout.pad :] for row, layout in zip(rows, canvas.rows)]
    left = [sum(row[p] == state.mask_id for p in layout.mask_positions) for row, layout in zip(rows, canvas.rows)]
    entropy = state.cum_entropy[best].tolist()
    steps = state.steps[best].tolist()
    rec = state.recorder
    stats = [
        SampleStats(
            cumulative_entropy=float(entropy[i]),
            model_calls=rec.model_calls[i],
            rows_forwarded=rec.rows_forwarded[i],
            tokens_forwarded=rec.tokens_forwarded[i],
            generated_tokens=len(canvas.rows[i].mask_positions) - left[i],
            steps=int(steps[i]),
            wall_time_s=wall / n_prompts,
        )
        for i in range(n_prompts)
    ]
    return GenerationOutput(tokens=tokens, stats=stats, calls=list(rec.calls), canvases=canvases,
                            call_kinds=list(rec.kinds))

