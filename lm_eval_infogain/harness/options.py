"""``--model_args`` of ``infogain_mdm``: split, typed and validated before anything is loaded.

lm-eval hands the model every ``key=value`` of ``--model_args`` (already typed by
``ast.literal_eval``) plus ``batch_size`` / ``max_batch_size`` / ``device`` from its own flags
(``batch_size`` arrives as a string such as ``'4'``, ``'auto'`` or ``'auto:2'``). Decoding options
go to :class:`DecodingConfig`; the rest are the harness options below. A name that is neither is
an error listing every valid name — a typo must never silently fall back to a default.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..sampling.config import DecodingConfig

__all__ = ["ModelArgsError", "HarnessOptions", "BatchSize", "parse_model_args", "valid_model_args"]

DTYPES: tuple[str, ...] = ("auto", "float32", "float16", "bfloat16")
_DTYPE_ALIASES = {"fp32": "float32", "float": "float32", "fp16": "float16", "half": "float16", "bf16": "bfloat16"}


class ModelArgsError(ValueError):
    """A model_arg that is unknown or has a bad value (decoding options raise ``DecodingConfigError``)."""


@dataclass(frozen=True)
class BatchSize:
    """``batch_size``: a fixed number of prompts per engine call, or ``auto`` (start at
    ``max_batch_size`` and halve on out-of-memory); ``auto:N`` also resets to ``max_batch_size``
    N times over a run, because lm-eval's length sort makes later prompts shorter."""

    value: int | None
    auto: bool = False
    resets: int = 0

    @classmethod
    def parse(cls, raw: Any) -> "BatchSize":
        if isinstance(raw, bool):
            raise ModelArgsError(f"batch_size={raw!r}: must be a positive integer, 'auto' or 'auto:N'")
        if isinstance(raw, int):
            if raw < 1:
                raise ModelArgsError(f"batch_size={raw!r}: must be a positive integer, 'auto' or 'auto:N'")
            return cls(raw)
        text = str(raw).strip().lower()
        if text == "auto":
            return cls(None, auto=True)
        if text.startswith("auto:"):
            try:
                resets = int(text[5:])
            except ValueError:
                resets = -1
            if resets < 1:
                raise ModelArgsError(f"batch_size={raw!r}: 'auto:N' needs an integer N >= 1")
            return cls(None, auto=True, resets=resets)
        try:
            return cls.parse(int(text))
        except ValueError:
            raise ModelArgsError(f"batch_size={raw!r}: must be a positive integer, 'auto' or 'auto:N'") from None


@dataclass(frozen=True)
class HarnessOptions:
    """Everything that is not a decoding option."""

    #: Hub id or local folder; ``None``: the bundled demo model.
    pretrained: str | None = None
    dtype: str | None = None
    #: What the user asked for; the model resolves it (CUDA absent -> CPU with a warning).
    device: str | None = None
    batch_size: BatchSize = field(default_factory=lambda: BatchSize(1))
    #: Upper bound (and starting point) of ``batch_size=auto``.
    max_batch_size: int = 64
    #: Longest canvas (prompt + generation); ``None``: the model's own limit.
    max_length: int | None = None
    #: Allow remote code, only for families without a native implementation.
    trust_remote_code: bool = False
    #: Monte-Carlo samples per loglikelihood request.
    mc_num: int = 128
    #: Where to write per-sample statistics when no ``--output_path`` hook applies.
    stats_path: str | None = None
    #: Whether ``generate_until`` prompts start with the tokenizer's BOS (``None``: when it has one).
    add_bos_token: bool | None = None
    #: The decoding options exactly as given (the max_gen_toks rule depends on which were set).
    decoding_options: dict[str, Any] = field(default_factory=dict)


HARNESS_ARGS: tuple[str, ...] = (
    "pretrained", "dtype", "device", "batch_size", "max_batch_size", "max_length", "trust_remote_code",
    "mc_num", "stats_path", "add_bos_token",
)


def valid_model_args() -> tuple[str, ...]:
    return HARNESS_ARGS + DecodingConfig.option_names()


def _optional_positive_int(name: str, value: Any) -> int | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "null")):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if isinstance(value, bool) or number < 1 or (isinstance(value, float) and value != number):
        raise ModelArgsError(f"{name}={value!r}: must be a positive integer")
    return number


def _bool(name: str, value: Any, *, optional: bool = False) -> bool | None:
    if optional and (value is None or str(value).strip().lower() in ("none", "null", "")):
        return None
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise ModelArgsError(f"{name}={value!r}: must be true or false")


def _dtype(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip().lower().removeprefix("torch.")
    text = _DTYPE_ALIASES.get(text, text)
    if text not in DTYPES:
        raise ModelArgsError(f"dtype={value!r}: must be one of {', '.join(DTYPES)}")
    return text


def parse_model_args(kwargs: dict[str, Any]) -> tuple[HarnessOptions, DecodingConfig]:
    """Split and validate all model_args; raises before any model is touched."""
    valid = valid_model_args()
    unknown = sorted(name for name in kwargs if name not in valid)
    if unknown:
        raise ModelArgsError(
            f"unknown model_args for infogain_mdm: {', '.join(unknown)}. Valid model_args: {', '.join(valid)}"
        )
    decoding = {k: v for k, v in kwargs.items() if k in DecodingConfig.option_names()}
    config = DecodingConfig.from_options(decoding)
    raw = {k: v for k, v in kwargs.items() if k in HARNESS_ARGS}
    pretrained = raw.get("pretrained")
    options = HarnessOptions(
        pretrained=None if pretrained in (None, "") else str(pretrained),
        dtype=_dtype(raw.get("dtype")),
        device=None if raw.get("device") in (None, "") else str(raw["device"]),
        batch_size=BatchSize.parse(raw.get("batch_size", 1) if raw.get("batch_size") is not None else 1),
        max_batch_size=_optional_positive_int("max_batch_size", raw.get("max_batch_size")) or 64,
        max_length=_optional_positive_int("max_length", raw.get("max_length")),
        trust_remote_code=bool(_bool("trust_remote_code", raw.get("trust_remote_code", False))),
        mc_num=_optional_positive_int("mc_num", raw.get("mc_num", 128)) or 128,
        stats_path=None if raw.get("stats_path") in (None, "") else str(raw["stats_path"]),
        add_bos_token=_bool("add_bos_token", raw.get("add_bos_token"), optional=True),
        decoding_options=dict(decoding),
    )
    return options, config
