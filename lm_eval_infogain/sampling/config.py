"""One validated description of how to decode.

Every option the engine understands lives here, is checked once, and fails with a single
:class:`DecodingConfigError` that names the field, the value and what is allowed — before any model
is loaded or any tensor is touched. The lm-eval glue and the standalone API both build their config
through :meth:`DecodingConfig.from_options`, so an option means the same thing everywhere.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping

__all__ = [
    "DecodingConfig",
    "DecodingConfigError",
    "SAMPLER_NAMES",
    "SAMPLER_ALIASES",
    "INFO_GAIN_FAMILY",
    "ADAPTIVE_SAMPLERS",
    "CACHE_MODES",
    "canonical_sampler",
]

#: Canonical strategy names (one definition each in ``strategies.py`` / ``info_gain.py``).
SAMPLER_NAMES: tuple[str, ...] = (
    "confidence",
    "margin",
    "entropy",
    "random",
    "left_to_right",
    "eb",
    "fast_dllm",
    "pc",
    "klass",
    "info_gain",
    "lookum",
)
#: Names used by LLaDA, the paper's repository and other peers, mapped to ours.
SAMPLER_ALIASES: dict[str, str] = {
    "low_confidence": "confidence",
    "original": "confidence",
    "uniform": "random",
}
#: Samplers that score candidate actions by a batched lookahead forward.
INFO_GAIN_FAMILY: frozenset[str] = frozenset({"info_gain", "lookum"})
#: Samplers that decide per step how many tokens to commit (they ignore the K schedule).
ADAPTIVE_SAMPLERS: frozenset[str] = frozenset({"eb", "fast_dllm", "klass"})
CACHE_MODES: tuple[str, ...] = ("none", "prefix", "dual")
IG_SCOPES: tuple[str, ...] = ("sequence", "block")


class DecodingConfigError(ValueError):
    """An invalid decoding option: says which field, which value, and what is allowed."""

    def __init__(self, field: str, value: Any, allowed: str):
        self.field, self.value, self.allowed = field, value, allowed
        super().__init__(f"invalid decoding option {field}={value!r}: {allowed}")


def canonical_sampler(name: str) -> str:
    """Map a sampler name or alias to its canonical name, or raise listing every valid name."""
    key = str(name).strip().lower().replace("-", "_")
    key = SAMPLER_ALIASES.get(key, key)
    if key not in SAMPLER_NAMES:
        valid = ", ".join(SAMPLER_NAMES + tuple(SAMPLER_ALIASES))
        raise DecodingConfigError("sampler", name, f"must be one of: {valid}")
    return key


@dataclass(frozen=True)
class DecodingConfig:
    """Every decoding option, validated on construction.

    Defaults reproduce the settings behind the paper's numbers (N = 8, position temperature 0.2,
    bypass threshold 0.8, greedy tokens, EOS penalty 4 with EOS fill, lookahead entropy averaged over
    the whole remaining sequence); every deviation from the reference code is a named option.
    """

    sampler: str = "info_gain"
    #: Tokens appended (as masks) after each prompt and decoded. 0: pure infilling — only the mask
    #: tokens already present in the prompts are decoded.
    gen_length: int = 256
    #: Total denoising steps of the appended region, split over blocks in proportion to their
    #: length. ``None``: one token per step (``steps == gen_length``). On a canvas whose prompt holds
    #: masks too, a row with M masks gets ``round(steps · M / gen_length)`` steps (the same tokens per
    #: step), so ``steps`` needs ``gen_length ≥ 1`` there; ``tokens_per_step`` needs nothing.
    steps: int | None = None
    #: Semi-autoregressive block length in masks: block b of a row holds its masks number
    #: ``b·block_size … (b+1)·block_size − 1``, counted left to right over the canvas (for a plain
    #: suffix these are the canvas slices of LLaDA's blocks). A value above the number of masks
    #: means a single block.
    block_size: int = 32
    #: Explicit tokens per step K; overrides the linear schedule derived from ``steps``.
    tokens_per_step: int | None = None
    #: Token sampling temperature; 0 means argmax tokens.
    temperature: float = 0.0
    #: Info-Gain: candidate actions scored per step (candidate 0 is always the greedy action).
    candidate_number: int = 8
    #: Info-Gain: temperature of the Gumbel-top-K position draw over confidences.
    position_temperature: float = 0.2
    #: Info-Gain high-confidence bypass γ, and the confidence threshold τ of ``fast_dllm`` and
    #: ``klass``. ``None`` (or a value ≤ 0) disables the bypass.
    threshold: float | None = 0.8
    #: Info-Gain objective: ``info_gain`` (J = −C − H̄_next) or ``lookum`` (J = −H̄_next).
    #: ``None``: taken from the sampler name.
    variant: str | None = None
    #: Which masks the lookahead's mean entropy averages over: the whole remaining ``sequence``
    #: (the reference code) or only the active ``block`` (the paper text). ``None``: ``sequence``,
    #: except with the ``dual`` cache, which only computes block positions.
    ig_scope: str | None = None
    #: Subtracted from the EOS and PAD logits before anything else (the reference uses 4).
    eos_penalty: float = 4.0
    #: Once an EOS is committed in the generation region, fill every later mask with EOS.
    eos_fill: bool = True
    #: KV cache: ``none`` (exact), ``prefix`` or ``dual`` (Fast-dLLM-style approximations).
    cache: str = "none"
    #: Base seed; each request's generator is seeded from (seed, request key).
    seed: int = 1234
    #: Info-Gain beam search width; 1 is the plain sampler.
    beam_size: int = 1
    #: ``fast_dllm`` factor variant: commit the largest n with (n + 1)(1 − c_(n)) < f. ``None``:
    #: threshold variant.
    fast_dllm_factor: float | None = None
    #: ``eb``: entropy budget γ of the entropy-bounded sampler.
    eb_gamma: float = 0.1
    #: ``pc``: position decay λ, clip α and an optional background token-frequency file
    #: (JSON list / dict of id → frequency, or a 1-D torch tensor); uniform when ``None``.
    pc_lambda: float = 0.25
    pc_alpha: float = 10.0
    pc_frequency_file: str | None = None
    #: ``klass``: KL bound ε and the number of consecutive steps it must hold.
    klass_kl_threshold: float = 0.01
    klass_history: int = 2

    # ------------------------------------------------------------------ construction
    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_options(cls, options: Mapping[str, Any] | None = None, **kwargs: Any) -> "DecodingConfig":
        """Build from loosely typed options (lm-eval passes strings, ints, floats and bools).

        Unknown names raise, listing the valid ones; ``"none"``/``"null"`` strings become ``None``.
        """
        merged = {**(options or {}), **kwargs}
        valid = set(cls.option_names())
        for name in merged:
            if name not in valid:
                raise DecodingConfigError(
                    name, merged[name], "unknown decoding option; valid options: " + ", ".join(sorted(valid))
                )
        return cls(**{name: _coerce(cls, name, value) for name, value in merged.items()})

    def replace(self, **changes: Any) -> "DecodingConfig":
        """A copy with ``changes``; values this config derived (not chosen) are derived again."""
        base = dataclasses.asdict(self)
        base["variant"] = None  # always derived: the sampler name already says which objective
        if "cache" in changes and "ig_scope" not in changes and self.ig_scope == _default_scope(self.cache):
            base["ig_scope"] = None
        return DecodingConfig.from_options(base, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    # ------------------------------------------------------------------ validation
    def __post_init__(self) -> None:
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731  (frozen)
        set_("sampler", canonical_sampler(self.sampler))
        _non_negative_int("gen_length", self.gen_length)
        _positive_int("block_size", self.block_size)
        if self.steps is not None:
            _positive_int("steps", self.steps)
            if self.gen_length == 0:
                raise DecodingConfigError(
                    "steps", self.steps,
                    "needs gen_length ≥ 1 (steps count the appended region's denoising steps); "
                    "for pure infilling use tokens_per_step, or leave steps unset for one token per step",
                )
            n_blocks = -(-self.gen_length // self.block_size)
            if not n_blocks <= self.steps <= self.gen_length:
                raise DecodingConfigError(
                    "steps", self.steps,
                    f"must lie between the number of blocks ({n_blocks}) and gen_length ({self.gen_length})",
                )
        if self.tokens_per_step is not None:
            _positive_int("tokens_per_step", self.tokens_per_step)
            if self.tokens_per_step > self.block_size:
                raise DecodingConfigError(
                    "tokens_per_step", self.tokens_per_step, f"must be at most block_size ({self.block_size})"
                )
            if self.steps is not None and self.steps != self.derived_steps_for_k():
                raise DecodingConfigError(
                    "steps", self.steps,
                    f"conflicts with tokens_per_step={self.tokens_per_step}, which implies "
                    f"{self.derived_steps_for_k()} steps; give only one of them",
                )
        _non_negative("temperature", self.temperature)
        _positive_int("candidate_number", self.candidate_number)
        if not (_finite(self.position_temperature) and self.position_temperature > 0):
            raise DecodingConfigError("position_temperature", self.position_temperature, "must be a finite number > 0")
        if self.threshold is not None:
            if not _finite(self.threshold):
                raise DecodingConfigError("threshold", self.threshold, "must be a number in (0, 1] or None")
            if self.threshold <= 0:
                set_("threshold", None)
            elif self.threshold > 1:
                raise DecodingConfigError("threshold", self.threshold, "must be in (0, 1]; None or ≤ 0 disables it")
        if (self.sampler == "klass" or (self.sampler == "fast_dllm" and self.fast_dllm_factor is None)) and (
            self.threshold is None
        ):
            raise DecodingConfigError("threshold", None, f"sampler {self.sampler!r} needs a threshold in (0, 1]")
        if self.variant is not None:
            if self.variant not in ("info_gain", "lookum"):
                raise DecodingConfigError("variant", self.variant, "must be 'info_gain' or 'lookum'")
            if self.sampler not in INFO_GAIN_FAMILY:
                raise DecodingConfigError(
                    "variant", self.variant, f"only applies to samplers info_gain/lookum, not {self.sampler!r}"
                )
            if self.sampler == "lookum" and self.variant != "lookum":
                raise DecodingConfigError("variant", self.variant, "conflicts with sampler='lookum'")
            set_("sampler", self.variant)
        set_("variant", self.sampler if self.sampler in INFO_GAIN_FAMILY else None)
        if self.cache not in CACHE_MODES:
            raise DecodingConfigError("cache", self.cache, "must be one of: " + ", ".join(CACHE_MODES))
        if self.ig_scope is None:
            set_("ig_scope", _default_scope(self.cache))
        elif self.ig_scope not in IG_SCOPES:
            raise DecodingConfigError("ig_scope", self.ig_scope, "must be one of: " + ", ".join(IG_SCOPES))
        elif self.ig_scope == "sequence" and self.cache == "dual":
            raise DecodingConfigError(
                "ig_scope", self.ig_scope,
                "the dual cache computes only the active block, so ig_scope must be 'block' with cache='dual'",
            )
        if not _finite(self.eos_penalty):
            raise DecodingConfigError("eos_penalty", self.eos_penalty, "must be a finite number (0 disables it)")
        if not isinstance(self.eos_fill, bool):
            raise DecodingConfigError("eos_fill", self.eos_fill, "must be true or false")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise DecodingConfigError("seed", self.seed, "must be an integer")
        _positive_int("beam_size", self.beam_size)
        if self.beam_size > 1 and self.sampler not in INFO_GAIN_FAMILY:
            raise DecodingConfigError(
                "beam_size", self.beam_size, f"beam search needs sampler info_gain or lookum, not {self.sampler!r}"
            )
        if self.fast_dllm_factor is not None:
            if not _finite(self.fast_dllm_factor) or self.fast_dllm_factor <= 0:
                raise DecodingConfigError("fast_dllm_factor", self.fast_dllm_factor, "must be a finite number > 0 or None")
        _non_negative("eb_gamma", self.eb_gamma)
        _non_negative("pc_lambda", self.pc_lambda)
        if not _finite(self.pc_alpha) or self.pc_alpha <= 0:
            raise DecodingConfigError("pc_alpha", self.pc_alpha, "must be a finite number > 0")
        _non_negative("klass_kl_threshold", self.klass_kl_threshold)
        _positive_int("klass_history", self.klass_history)

    # ------------------------------------------------------------------ derived schedule
    def blocks_for(self, n_masks: int) -> list[int]:
        """Lengths of the blocks over ``n_masks`` masks (the last one may be shorter)."""
        full, rest = divmod(int(n_masks), self.block_size)
        return [self.block_size] * full + ([rest] if rest else [])

    @property
    def block_lengths(self) -> list[int]:
        """Lengths of the semi-autoregressive blocks of the appended region."""
        return self.blocks_for(self.gen_length)

    def derived_steps_for_k(self) -> int:
        k = self.tokens_per_step or 1
        return sum(-(-length // k) for length in self.block_lengths)

    def steps_for(self, n_masks: int) -> list[int]:
        """Denoising steps of each block of a row with ``n_masks`` masks.

        ``steps`` (scaled to ``n_masks / gen_length`` when the row has another number of masks) is
        split in proportion to block length: largest-remainder rounding with at least one step per
        block and at most one step per token, so ``steps == gen_length`` gives exactly one token per
        step everywhere. ``tokens_per_step`` K gives ``ceil(length / K)`` steps per block.
        """
        lengths = self.blocks_for(n_masks)
        if not lengths:
            return []
        if self.tokens_per_step is not None:
            return [-(-length // self.tokens_per_step) for length in lengths]
        if self.steps is None:
            return list(lengths)
        total = self.steps
        if n_masks != self.gen_length:  # same tokens per step as the appended region
            total = max(len(lengths), min(n_masks, round(self.steps * n_masks / self.gen_length)))
        shares = [total * length / n_masks for length in lengths]
        steps = [max(1, min(length, int(share))) for share, length in zip(shares, lengths)]
        order = sorted(range(len(lengths)), key=lambda i: shares[i] - int(shares[i]), reverse=True)
        while sum(steps) < total:
            grew = False
            for i in order:
                if sum(steps) < total and steps[i] < lengths[i]:
                    steps[i] += 1
                    grew = True
            if not grew:
                break
        while sum(steps) > total:
            i = max(range(len(steps)), key=lambda j: steps[j])
            steps[i] -= 1
        return steps

    @property
    def steps_per_block(self) -> list[int]:
        """Denoising steps of each block of the appended region (see :meth:`steps_for`)."""
        return self.steps_for(self.gen_length)


# ---------------------------------------------------------------------- helpers
def _default_scope(cache: str) -> str:
    return "block" if cache == "dual" else "sequence"


def _positive_int(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise DecodingConfigError(name, value, "must be an integer ≥ 1")


def _non_negative_int(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise DecodingConfigError(name, value, "must be an integer ≥ 0")


def _finite(value: Any) -> bool:
    """A real number that is neither NaN nor ±inf (NaN passes every ``<``/``>`` check silently)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _non_negative(name: str, value: Any) -> None:
    if not _finite(value) or value < 0:
        raise DecodingConfigError(name, value, "must be a finite number ≥ 0")


_NONE_STRINGS = {"none", "null", ""}
_BOOL_STRINGS = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}


def _coerce(cls: type, name: str, value: Any) -> Any:
    """Turn lm-eval's loosely typed model_args into the field's type; leave anything odd to validation."""
    field_type = {f.name: f.type for f in dataclasses.fields(cls)}[name]
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in _NONE_STRINGS and "None" in str(field_type):
            return None
        if "bool" in str(field_type):
            return _BOOL_STRINGS.get(text.lower(), value)
        if "int" in str(field_type) and "float" not in str(field_type):
            try:
                return int(text)
            except ValueError:
                return value
        if "float" in str(field_type):
            try:
                return float(text)
            except ValueError:
                return value
        return text
    if "float" in str(field_type) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value
