"""``--model_args`` of ``infogain_mdm``: split, typed and validated before anything is loaded.

lm-eval hands the model every ``key=value`` of ``--model_args`` (already typed by
``ast.literal_eval``) plus ``batch_size`` / ``max_batch_size`` / ``device`` from its own flags
(``batch_size`` arrives as a string such as ``'4'``, ``'auto'`` or ``'auto:2'``). lm-eval passes
both as keyword arguments of one call, so a name in both was a ``TypeError``; here they are merged
first (:func:`merge_lm_eval_args`: **model_args win**, with a log line). Decoding options go to
:class:`DecodingConfig`; the rest are the harness options below. A name that is neither is an error
listing every valid name — a typo must never silently fall back to a default.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Collection, Mapping

from ..sampling.config import DecodingConfig

__all__ = [
    "ModelArgsError", "HarnessOptions", "BatchSize", "parse_model_args", "valid_model_args", "merge_lm_eval_args",
    "LM_EVAL_ARGS", "BUNDLED_MODEL_NAME", "check_model_args",
]  # fmt: skip

log = logging.getLogger(__name__)

#: Arguments lm-eval passes to every model itself (from ``--batch_size`` / ``--max_batch_size`` / ``--device``).
LM_EVAL_ARGS: tuple[str, ...] = ("batch_size", "max_batch_size", "device")
#: How results name the bundled demo model (``pretrained`` not given): the leaderboard's model
#: column and lm-eval's results folder (``<output_path>/demo__model/``).
BUNDLED_MODEL_NAME = "demo/model"

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

    def __str__(self) -> str:
        if not self.auto:
            return str(self.value)
        return f"auto:{self.resets}" if self.resets else "auto"

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


def merge_lm_eval_args(
    model_args: Mapping[str, Any], lm_eval_args: Mapping[str, Any], given: Collection[str] | None = None
) -> dict[str, Any]:
    """model_args plus what lm-eval passes itself; on a clash **model_args win**.

    ``given``: which of lm-eval's own arguments the user actually set (the CLI hook knows: lm-eval's
    CLI always passes ``batch_size=1``); ``None`` means all of them (the Python API passes only what
    the caller gave). A clash with a value the user set is logged as a warning; replacing a default
    the user never typed is only a debug line. ``None`` values count as not given.
    """
    merged = dict(model_args)
    for name, value in lm_eval_args.items():
        if value is None:
            continue
        if name not in merged:
            merged[name] = value
            continue
        if str(merged[name]) == str(value):
            continue
        user_set = given is None or name in given
        (log.warning if user_set else log.debug)(
            "%s given twice: --model_args %s=%s wins over lm-eval's %s %s",
            name, name, merged[name], f"--{name}" if user_set else f"default --{name}", value,
        )
    return merged


def _check_packaged_model(pretrained: str) -> None:
    """``pretrained=antiberty`` needs the ``protein`` extra (its weights ship inside that wheel)."""
    import importlib.util
    from pathlib import Path

    if pretrained.strip().lower() == "antiberty" and not Path(pretrained).expanduser().is_dir():
        if importlib.util.find_spec("antiberty") is None:
            raise ModelArgsError(
                "pretrained=antiberty needs the protein extra: pip install 'lm-eval-infogain[protein]' "
                "(or: pip install antiberty==0.1.3)"
            )


def check_model_args(kwargs: Mapping[str, Any]) -> tuple[HarnessOptions, DecodingConfig]:
    """Everything that can be checked without torch, for lm-eval's CLI before it loads tasks:
    every model_arg (:func:`parse_model_args`) and that ``pretrained`` names a hub id or a folder
    with a readable ``config.json`` and intact weight files (their headers; milliseconds)."""
    from ..checkpoint_files import check_weights, local_checkpoint_folder, read_config_file

    options, config = parse_model_args(dict(kwargs))
    if options.pretrained is not None:
        _check_packaged_model(options.pretrained)
        folder = local_checkpoint_folder(options.pretrained)
        if folder is not None:
            read_config_file(folder / "config.json")
            if not options.trust_remote_code:  # remote code may keep its weights its own way
                check_weights(folder)
    return options, config


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
