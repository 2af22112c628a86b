"""Decoding: the validated config, the block-wise engine, strategies and statistics.

Only ``config`` (stdlib-only) is imported eagerly, so tools that need the option names without
torch — the leaderboard, the reproduction presets — can read them from ``sampling.config``; the
engine, the statistics and the standalone API load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from .config import DecodingConfig, DecodingConfigError, canonical_sampler

_LAZY: dict[str, str] = {
    "generate": ".engine",
    "GenerationOutput": ".engine",
    "SampleStats": ".stats",
    "aggregate_stats": ".stats",
    "InfoGainSampler": ".api",
}

__all__ = ["DecodingConfig", "DecodingConfigError", "canonical_sampler", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
