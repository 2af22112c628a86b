"""Decoding: the validated config, the block-wise engine, strategies and statistics."""

from .config import DecodingConfig, DecodingConfigError, canonical_sampler

__all__ = ["DecodingConfig", "DecodingConfigError", "canonical_sampler"]
