"""Make ``infogain_mdm`` and our tasks known to lm-eval releases without plugin discovery.

lm-eval 0.4.13 looks ``--model`` up in an in-process registry filled from a fixed list and scans only
its own task folder plus ``--include_path``; it discovers nothing from installed packages. This
module is imported by ``lm_eval_infogain.pth`` in every Python process, so it must stay tiny,
stdlib-only and a *separate top-level module* (a ``.pth`` line ``import lm_eval_infogain.x`` would
run the package ``__init__``).

At start-up it imports nothing: it installs a post-import hook (unless ``LM_EVAL_INFOGAIN_DISABLE``
is set), so that — in the CLI and in the Python API alike, without ``import lm_eval_infogain`` —
once lm-eval itself imports

- ``lm_eval.models`` (which fills the built-in registry — registering before that would hide every
  built-in backend), our model is registered as a lazy ``"module:Class"`` placeholder, by this
  module alone (no torch, no module of the package);
- ``lm_eval.tasks``, task discovery also scans our task folder (after lm-eval's own, before
  ``--include_path``, so a user's folder still wins);
- ``lm_eval.evaluator``, each evaluation tells our model that it starts and with which seeds, and
  ``--use_cache`` hits keep their statistics;
- ``lm_eval.config.evaluate_config`` (the CLI only), our model_args are checked before any task is
  loaded and merged with lm-eval's own ``--batch_size`` / ``--device``;
- ``lm_eval.loggers.evaluation_tracker``, saving results also writes our per-sample statistics and
  names the results folder of the bundled model.

A plain ``import lm_eval`` imports none of those, so it costs what it cost before.
``import lm_eval_infogain`` installs the same hooks (see :func:`install_hooks`) where ``.pth``
files are not read.
"""

from __future__ import annotations

import importlib.abc
import os
import sys
from typing import Any, Callable

__all__ = ["DISABLE_ENV", "MODEL_NAME", "MODEL_TARGET", "is_lm_eval_cli", "install_hooks", "register_model", "startup"]

#: Set to 1/true/yes to keep the plugin out of lm-eval's CLI processes.
DISABLE_ENV = "LM_EVAL_INFOGAIN_DISABLE"
_CLI_NAMES = frozenset({"lm_eval", "lm-eval", "lm_eval.exe", "lm-eval.exe", "lm_eval-script.py", "lm-eval-script.py"})
_CLI_MODULES = frozenset({"lm_eval", "lm_eval.__main__"})
MODEL_NAME = "infogain_mdm"
MODEL_TARGET = "lm_eval_infogain.harness.lm:InfoGainLM"
#: module imported by lm-eval -> "module:function" of ours run right after it (given that module).
HOOKS: dict[str, str] = {
    "lm_eval.models": "lm_eval_infogain_bootstrap:register_model",
    "lm_eval.tasks": "lm_eval_infogain.harness.plugin:on_tasks_imported",
    "lm_eval.evaluator": "lm_eval_infogain.harness.plugin:on_evaluator_imported",
    "lm_eval.config.evaluate_config": "lm_eval_infogain.harness.plugin:on_cli_config_imported",
    "lm_eval.loggers.evaluation_tracker": "lm_eval_infogain.harness.plugin:on_tracker_imported",
}


def disabled() -> bool:
    return os.environ.get(DISABLE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def is_lm_eval_cli(argv: list[str] | None = None, orig_argv: list[str] | None = None) -> bool:
    """True for lm-eval's console scripts and for ``python [opts] -m lm_eval``."""
    argv = sys.argv if argv is None else argv
    orig = list(getattr(sys, "orig_argv", []) if orig_argv is None else orig_argv)
    if argv and os.path.basename(str(argv[0])) in _CLI_NAMES:
        return True
    args = iter(orig[1:])
    for arg in args:
        if arg == "-m":
            return next(args, None) in _CLI_MODULES
        if arg.startswith("-m"):  # python -mlm_eval
            return arg[2:] in _CLI_MODULES
        if arg in ("-X", "-W"):  # options that take a value
            next(args, None)
        elif arg == "-c" or not arg.startswith("-"):  # a command or a script: not lm-eval
            return False
    return False


def register_model(_module: Any = None) -> None:
    """Register ``infogain_mdm`` as a lazy ``"module:Class"`` placeholder after lm-eval's built-ins.

    Imports only lm-eval's registry, so ``import lm_eval.models`` stays free of torch and of this
    package. Releases without the lazy registry (<= 0.4.9) need the class itself: the package's
    ``plugin.register_model`` handles those.
    """
    import lm_eval.models  # noqa: F401  -- fills the built-in registry first (else they vanish)
    from lm_eval.api import registry

    model_registry = getattr(registry, "model_registry", None)
    if model_registry is not None and hasattr(model_registry, "register"):
        if MODEL_NAME not in model_registry:
            model_registry.register(MODEL_NAME, target=MODEL_TARGET)
        return
    _resolve("lm_eval_infogain.harness.plugin:register_model")()


def _resolve(target: str) -> Callable[[Any], None]:
    import importlib

    module_name, func_name = target.split(":")
    return getattr(importlib.import_module(module_name), func_name)


def _run_hook(target: str, module: Any) -> None:
    try:
        _resolve(target)(module)
    except Exception as exc:  # never break lm-eval because of us; say what happened
        print(f"lm_eval_infogain: plugin hook {target} failed: {exc!r}", file=sys.stderr)


class _PostImportHook(importlib.abc.MetaPathFinder):
    """Runs a callback right after a named module has executed, without importing it early.

    It asks the other finders for the real spec and wraps that loader's ``exec_module`` (on the
    loader instance, so ``module.__loader__`` stays the real loader).
    """

    def __init__(self) -> None:
        self.pending: dict[str, list[str]] = {}

    def add(self, module_name: str, target: str) -> None:
        if module_name in sys.modules:
            _run_hook(target, sys.modules[module_name])
        elif target not in self.pending.setdefault(module_name, []):
            self.pending[module_name].append(target)

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname not in self.pending:
            return None
        targets = self.pending.pop(fullname)
        if not self.pending and self in sys.meta_path:  # every hook placed: stop looking at imports
            sys.meta_path.remove(self)
        spec = None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        loader = getattr(spec, "loader", None)
        if spec is None or loader is None or not hasattr(loader, "exec_module"):
            self.pending[fullname] = targets
            return spec
        original = loader.exec_module

        def exec_module(module: Any) -> None:
            original(module)
            for hook_target in targets:
                _run_hook(hook_target, module)

        loader.exec_module = exec_module
        return spec


_HOOK: _PostImportHook | None = None


def install_hooks() -> None:
    """Arrange for our model, tasks and statistics writer to be registered as lm-eval loads (idempotent)."""
    global _HOOK
    if _HOOK is None:
        _HOOK = _PostImportHook()
    for module_name, target in HOOKS.items():
        _HOOK.add(module_name, target)
    if _HOOK.pending and _HOOK not in sys.meta_path:
        sys.meta_path.insert(0, _HOOK)


def startup() -> None:
    """Called from ``lm_eval_infogain.pth`` at interpreter start: cheap, never raises.

    The hooks are installed in every process (not only lm-eval's CLI) so that
    ``lm_eval.simple_evaluate(model="infogain_mdm")`` works without importing this package first;
    they cost nothing until lm-eval imports the modules named in :data:`HOOKS`.
    """
    try:
        if not disabled():
            install_hooks()
    except Exception as exc:  # pragma: no cover - defensive: site.py must never fail because of us
        print(f"lm_eval_infogain: bootstrap skipped: {exc!r}", file=sys.stderr)
