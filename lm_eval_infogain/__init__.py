"""lm_eval_infogain — the Info-Gain sampler and baseline decoders for masked diffusion LMs.

Public API (imported lazily so that ``import lm_eval_infogain`` stays cheap):

- :class:`InfoGainSampler` — standalone sampler, call-compatible with the paper's repository.
- :class:`DecodingConfig` / :func:`generate` — the validated config and the batched engine.
- :func:`load_mdm` — load LLaDA / Dream / SDAR / TraDo / any masked LM without remote code.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY: dict[str, str] = {
    "InfoGainSampler": "lm_eval_infogain.sampling.api",
    "DecodingConfig": "lm_eval_infogain.sampling.config",
    "DecodingConfigError": "lm_eval_infogain.sampling.config",
    "generate": "lm_eval_infogain.sampling.engine",
    "load_mdm": "lm_eval_infogain.models.loader",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lm_eval_infogain' has no attribute {name!r}")
