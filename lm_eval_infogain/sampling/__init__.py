"""Decoding: the validated config, the block-wise engine, strategies and statistics."""

from .config import DecodingConfig, DecodingConfigError, canonical_sampler
from .engine import GenerationOutput, generate
from .stats import SampleStats, aggregate_stats

__all__ = [
    "DecodingConfig",
    "DecodingConfigError",
    "canonical_sampler",
    "generate",
    "GenerationOutput",
    "SampleStats",
    "aggregate_stats",
    "InfoGainSampler",
]


def __getattr__(name: str):
    # Lazy: the API module pulls in the HF adapter, which the engine itself never needs.
    if name == "InfoGainSampler":
        from .api import InfoGainSampler

        return InfoGainSampler
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
