"""Model families behind the engine's adapter contract (see ``base.py``).

``load_mdm(name_or_path)`` picks the family from ``config.json``: LLaDA, Dream and SDAR/TraDo run
on our own modules (no remote code, with ``prefix``/``dual`` KV caches); anything else loads as a
masked LM through transformers.
"""

from .base import CacheState, MaskTokenError, MDMAdapter, position_ids_from_mask
from .hf import HFModelAdapter, detect_mask_id
from .llada import LLaDAModel, llada_config, save_llada_checkpoint
from .loader import UnsupportedModelError, load_mdm
from .native import NativeAdapter
from .qwen import DreamModel, SDARModel

__all__ = [
    "CacheState",
    "MaskTokenError",
    "MDMAdapter",
    "position_ids_from_mask",
    "HFModelAdapter",
    "detect_mask_id",
    "LLaDAModel",
    "llada_config",
    "save_llada_checkpoint",
    "DreamModel",
    "SDARModel",
    "NativeAdapter",
    "UnsupportedModelError",
    "load_mdm",
]
