"""lm_eval_infogain — the Info-Gain sampler and baseline decoders for masked diffusion LMs.

Public API (imported lazily so that ``import lm_eval_infogain`` stays cheap):

- :class:`InfoGainSampler` — standalone sampler, call-compatible with the paper's repository.
- :class:`DecodingConfig` / :func:`generate` — the validated config and the batched engine.
- :func:`load_mdm` — load LLaDA / Dream / SDAR / TraDo / any masked LM without remote code.
- :func:`register` — make lm-eval see the model ``infogain_mdm`` and our tasks. The installed
  ``lm_eval_infogain.pth`` already arranges that in every process; importing this package does the
  same where ``.pth`` files are not read (post-import hooks only: neither lm-eval nor torch is
  imported here), unless ``LM_EVAL_INFOGAIN_DISABLE=1``; calling it registers the model right away.
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
    "register": "lm_eval_infogain.harness.plugin",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lm_eval_infogain' has no attribute {name!r}")


def _hook_into_lm_eval() -> None:
    try:
        import lm_eval_infogain_bootstrap as bootstrap
    except ImportError:  # only a partial copy of the package lacks the top-level bootstrap module
        return
    if not bootstrap.disabled():
        bootstrap.install_hooks()


_hook_into_lm_eval()
