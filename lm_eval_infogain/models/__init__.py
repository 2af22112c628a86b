"""Model families behind the engine's adapter contract (see ``base.py``)."""

from .base import CacheState, MaskTokenError, MDMAdapter, position_ids_from_mask
from .hf import HFModelAdapter, detect_mask_id

__all__ = ["CacheState", "MaskTokenError", "MDMAdapter", "position_ids_from_mask", "HFModelAdapter", "detect_mask_id"]
