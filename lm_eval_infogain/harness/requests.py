"""From lm-eval ``generate_until`` requests to engine inputs: decoding config, stop strings, keys.

How a task's ``generation_kwargs`` meet the model_args (the precedence is "what the user typed on
the command line wins, then the task, then the defaults"):

- **Canvas length.** ``gen_length`` in model_args fixes how many tokens are decoded for every task.
  Without it, a task that sets ``max_gen_toks`` (or an alias: ``max_new_tokens``, ``max_tokens``,
  ``max_completion_tokens``) gets exactly that many; otherwise ``DecodingConfig``'s default (256,
  also lm-eval's default). ``block_size`` is clamped to the canvas.
- **Steps.** ``steps`` unset: one token per step, whatever the canvas. ``steps`` set together with
  ``gen_length``: used as given. ``steps`` set *without* ``gen_length`` while a task changes the
  canvas: scaled by ``canvas / default gen_length`` (rounded, kept between the number of blocks and
  the canvas), so the tokens-per-step ratio the user chose is preserved. ``tokens_per_step`` is a
  ratio already and is kept.
- **Task decoding options.** A task's ``generation_kwargs`` may also set ``block_size`` and
  ``tokens_per_step`` (e.g. the demo tasks: one block over the whole answer, K tokens per step);
  the same names in model_args win, and ``steps`` in model_args drops the task's ``tokens_per_step``.
- **Temperature.** ``temperature`` in model_args wins. Otherwise the task's: lm-eval's
  ``normalize_gen_kwargs`` makes ``do_sample: false`` mean temperature 0 (argmax tokens).
- Other generation kwargs (``top_p``, ``top_k``, ...) have no meaning for these samplers: ignored
  with one warning.
- **Infilling requests** (``infill: true``, see ``infill_protocol``): nothing is appended
  (``gen_length=0``); the gap is the canvas's only masks and its text is the answer (no stop strings).
  ``steps`` keeps its tokens-per-step ratio as ``tokens_per_step = ceil(gen_length / steps)``, so
  e.g. ``steps=1`` with one block decodes the whole gap in one forward (the one-step baseline).
  Caches decode only an appended region: ``cache`` other than ``none`` is an error here.

Request keys seed each request's random generator. They are derived from (context, generation
kwargs, repeat index) only — never from batch position — so a request decodes the same alone, in
any batch, on any rank, and ``repeats: k`` gives k different samples when sampling.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, replace
from typing import Any, Sequence

from lm_eval.models.utils import handle_stop_sequences, normalize_gen_kwargs

from ..infill_protocol import INFILL_KEY, LENGTH_KEY, is_infill_request
from ..sampling.config import DecodingConfig

__all__ = ["GenerationPlan", "plan_generation", "request_key", "RepeatTracker", "MAX_TOKEN_KEYS", "InfillSettingError"]

log = logging.getLogger(__name__)

MAX_TOKEN_KEYS: tuple[str, ...] = ("max_gen_toks", "max_new_tokens", "max_tokens", "max_completion_tokens")
#: Decoding options a task may set in its generation_kwargs (model_args win).
TASK_DECODING_KEYS: tuple[str, ...] = ("block_size", "tokens_per_step")
_UNDERSTOOD = frozenset({"until", "do_sample", "temperature", INFILL_KEY, LENGTH_KEY, *MAX_TOKEN_KEYS, *TASK_DECODING_KEYS})
_warned_ignored: set[str] = set()


class InfillSettingError(ValueError):
    """A decoding setting that cannot decode an infilling request."""


@dataclass(frozen=True)
class GenerationPlan:
    """What one gen_kwargs group is decoded with."""

    config: DecodingConfig
    until: list[str]
    #: The group's requests are infilling requests (the answer is the gap's text).
    infill: bool = False


def _scaled_steps(base: DecodingConfig, gen_length: int, block_size: int) -> int:
    n_blocks = -(-gen_length // block_size)
    scaled = round((base.steps or base.gen_length) * gen_length / base.gen_length)
    return max(n_blocks, min(gen_length, scaled))


def plan_generation(
    gen_kwargs: dict[str, Any], raw_options: dict[str, Any], base: DecodingConfig, eos_text: str | None
) -> GenerationPlan:
    """The decoding config and stop strings of one gen_kwargs group (rules in the module docstring).

    ``raw_options`` are the decoding model_args as the user gave them (``base`` is their validated
    config): rebuilding from them keeps e.g. ``block_size=1024`` meaning "one block" on any canvas.
    """
    ignored = sorted(set(gen_kwargs) - _UNDERSTOOD - _warned_ignored)
    if ignored:
        _warned_ignored.update(ignored)
        log.warning("infogain_mdm ignores generation kwargs it has no use for: %s", ", ".join(ignored))
    normalized = normalize_gen_kwargs(gen_kwargs, base.gen_length)
    until = handle_stop_sequences(list(normalized.get("until") or []), eos=eos_text)
    task_options = {
        key: gen_kwargs[key] for key in TASK_DECODING_KEYS if gen_kwargs.get(key) is not None and key not in raw_options
    }
    if raw_options.get("steps") is not None:
        task_options.pop("tokens_per_step", None)
    options = {**task_options, **raw_options}
    changes: dict[str, Any] = {}
    gen_length = base.gen_length
    task_sets_length = any(gen_kwargs.get(key) is not None for key in MAX_TOKEN_KEYS)
    if "gen_length" not in raw_options and task_sets_length and int(normalized["max_gen_toks"]) != base.gen_length:
        gen_length = int(normalized["max_gen_toks"])
        block_size = min(int(options.get("block_size", DecodingConfig.block_size)), gen_length)
        changes["gen_length"] = gen_length
        if raw_options.get("steps") is not None and raw_options.get("tokens_per_step") is None:
            changes["steps"] = _scaled_steps(base, gen_length, block_size)
    if options.get("tokens_per_step") is not None and (task_options or "gen_length" in changes):
        block_size = min(int(options.get("block_size", DecodingConfig.block_size)), gen_length)
        changes["tokens_per_step"] = min(int(options["tokens_per_step"]), block_size)
    if "temperature" not in raw_options:
        changes["temperature"] = float(normalized.get("temperature") or 0.0)
    config = DecodingConfig.from_options({**options, **changes}) if changes or task_options else base
    plan = GenerationPlan(config=config, until=until)
    return _infill_plan(plan) if is_infill_request(gen_kwargs) else plan


def _infill_plan(plan: GenerationPlan) -> GenerationPlan:
    """An infilling group: decode only the canvas's gap (see the module docstring)."""
    config = plan.config
    if config.cache != "none":
        raise InfillSettingError(
            f"cache={config.cache!r} decodes only an appended region; infilling tasks need cache=none"
        )
    changes: dict[str, Any] = {"gen_length": 0, "steps": None}
    if config.steps is not None and config.tokens_per_step is None:
        changes["tokens_per_step"] = min(config.block_size, -(-config.gen_length // config.steps))
    return replace(plan, config=config.replace(**changes), until=[], infill=True)


def request_key(context: str, gen_kwargs: dict[str, Any], repeat: int) -> str:
    """Stable key of one generation request (see the module docstring)."""
    payload = json.dumps([context, gen_kwargs, int(repeat)], sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:32]


class RepeatTracker:
    """Repeat index of each request in the list lm-eval hands over.

    lm-eval passes an ``Instance`` with ``repeats: k`` k times in a row; in data-parallel runs it
    appends further copies of the last instance so every rank runs equally many requests. The
    n-th appearance of an instance is its repeat n; appearances beyond ``repeats`` are that padding
    (their answers are discarded by lm-eval, and their statistics by us).
    """

    def __init__(self, requests: Sequence[Any]):
        seen: dict[int, int] = {}
        self.repeat: list[int] = []
        self.padding: list[bool] = []
        for request in requests:
            n = seen.get(id(request), 0)
            seen[id(request)] = n + 1
            repeats = getattr(request, "repeats", None) or 1
            self.repeat.append(n)
            self.padding.append(n >= repeats)
