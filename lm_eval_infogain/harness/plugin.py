"""Registration of the ``infogain_mdm`` model, our task folder and our statistics file with lm-eval.

Three ways in, one implementation:

- lm-eval releases with plugin discovery read the ``lm_eval.models`` / ``lm_eval.tasks`` entry
  points declared in ``setup.cfg`` (:data:`MODEL_TARGET`, :data:`TASKS`);
- on lm-eval 0.4.13 the ``.pth`` bootstrap (``lm_eval_infogain_bootstrap``) calls the ``on_*``
  functions below right after lm-eval imports the matching module of its own — in every process,
  so the Python API needs no ``import lm_eval_infogain`` either;
- where ``.pth`` files are not read: ``import lm_eval_infogain`` installs the same hooks,
  :func:`register` forces them.

Every function here imports lm-eval pieces only — never torch — so that registering stays free for
runs that use another backend.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import inspect
from pathlib import Path
from typing import Any

from lm_eval_infogain_bootstrap import MODEL_NAME, MODEL_TARGET

__all__ = ["MODEL_NAME", "MODEL_TARGET", "TASKS", "task_dir", "register", "register_model"]

_PATCHED = "_lm_eval_infogain_patched"


def task_dir() -> str:
    """Folder of our task YAMLs: ``lm_eval_infogain.task_configs`` (the top-level ``task_configs/`` of
    a checkout, mapped into the package when built)."""
    spec = importlib.util.find_spec("lm_eval_infogain.task_configs")
    if spec is not None and spec.submodule_search_locations:
        return str(Path(list(spec.submodule_search_locations)[0]).resolve())
    return str((Path(__file__).resolve().parents[2] / "task_configs").resolve())


class _TaskDir(str):
    """The task folder as an entry-point target that works however a loader treats it: as a path
    (it *is* a ``str``) or as a zero-argument factory (calling it returns the path)."""

    def __call__(self) -> str:
        return task_dir()


#: Target of the ``lm_eval.tasks`` entry point.
TASKS = _TaskDir(task_dir())


# ---------------------------------------------------------------------------- model
def register_model() -> None:
    """Register ``infogain_mdm`` after lm-eval's built-ins (idempotent): a lazy placeholder where
    the registry supports one (the bootstrap does that), else the class itself."""
    import lm_eval.models  # noqa: F401  -- fills the built-in registry first (else they vanish)
    from lm_eval.api import registry

    model_registry = getattr(registry, "model_registry", None)
    if model_registry is not None and hasattr(model_registry, "register"):
        import lm_eval_infogain_bootstrap

        lm_eval_infogain_bootstrap.register_model()
        return
    # Releases before the lazy registry (<= 0.4.9): a plain dict of classes.
    if MODEL_NAME not in getattr(registry, "MODEL_REGISTRY", {}):
        module_name, class_name = MODEL_TARGET.split(":")
        cls = getattr(importlib.import_module(module_name), class_name)
        registry.register_model(MODEL_NAME)(cls)


def on_models_imported(_module: Any) -> None:
    register_model()


# ---------------------------------------------------------------------------- tasks
def _with_our_tasks(paths: Any, default_dir: Path) -> list[Path]:
    """Insert our task folder right after lm-eval's own, when lm-eval's own is being scanned.

    Only then: ``TaskManager(include_defaults=False, ...)`` stays exactly what the caller asked
    for. Placing it before any ``--include_path`` keeps a user's same-named task the winner, and
    comparing resolved paths avoids scanning it twice once lm-eval adds it from the entry point.
    """
    paths = [Path(p) for p in paths]
    resolved = [p.resolve() for p in paths]
    ours = Path(task_dir())
    if default_dir not in resolved or ours in resolved or not ours.is_dir():
        return paths
    at = resolved.index(default_dir) + 1
    return paths[:at] + [ours] + paths[at:]


def on_tasks_imported(module: Any) -> None:
    """Make every ``TaskManager`` that scans lm-eval's task folder scan ours too.

    The least invasive hook on 0.4.13 is ``TaskIndex.build`` — the one place that receives the
    list of folders (``lm_eval --tasks list``, ``lm-eval ls``, ``validate`` and ``run`` all go
    through it). Older releases have no ``TaskIndex``; there ``TaskManager.__init__`` gets our
    folder appended to ``include_path``.
    """
    default_dir = Path(module.__file__).resolve().parent
    try:
        from lm_eval.tasks._index import TaskIndex
    except ImportError:
        TaskIndex = None
    if TaskIndex is not None:
        original = TaskIndex.build
        if getattr(original, _PATCHED, False):
            return

        @functools.wraps(original)
        def build(paths: Any, *args: Any, **kwargs: Any) -> Any:
            return original(_with_our_tasks(paths, default_dir), *args, **kwargs)

        setattr(build, _PATCHED, True)
        TaskIndex.build = staticmethod(build)
        return
    manager_cls = module.TaskManager
    init = manager_cls.__init__
    if getattr(init, _PATCHED, False):
        return
    signature = inspect.signature(init)

    @functools.wraps(init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        if bound.arguments.get("include_defaults", True):
            current = bound.arguments.get("include_path")
            current = [] if current is None else list(current) if isinstance(current, (list, tuple)) else [current]
            if all(Path(p).resolve() != Path(task_dir()) for p in current):
                bound.arguments["include_path"] = [task_dir(), *current]
        init(*bound.args, **bound.kwargs)

    setattr(__init__, _PATCHED, True)
    manager_cls.__init__ = __init__


# ---------------------------------------------------------------------------- evaluator and CLI
def on_evaluator_imported(module: Any) -> None:
    """Evaluations announce their start and seeds to the model; cache hits keep their statistics."""
    from .evaluation import install

    install(module)


def on_cli_config_imported(module: Any) -> None:
    """The CLI checks our model_args (one line, exit 2) before it loads any task."""
    from .cli_checks import install

    install(module)


# ---------------------------------------------------------------------------- results folder and statistics file
def _name_bundled_model(config_tracker_cls: Any) -> None:
    """lm-eval names the results folder after ``pretrained=``; without one (the bundled model) it
    would pick a random name. Give it the bundled model's name instead."""
    original = config_tracker_cls.log_experiment_args
    if getattr(original, _PATCHED, False):
        return

    @functools.wraps(original)
    def log_experiment_args(self: Any, model_source: str, model_args: Any, *args: Any, **kwargs: Any) -> Any:
        out = original(self, model_source, model_args, *args, **kwargs)
        if model_source == MODEL_NAME and config_tracker_cls._get_model_name(model_args) is None:
            from lm_eval.utils import sanitize_model_name

            from .options import BUNDLED_MODEL_NAME

            self.model_name = BUNDLED_MODEL_NAME
            self.model_name_sanitized = sanitize_model_name(BUNDLED_MODEL_NAME)
        return out

    setattr(log_experiment_args, _PATCHED, True)
    config_tracker_cls.log_experiment_args = log_experiment_args


def on_tracker_imported(module: Any) -> None:
    """After lm-eval saves ``results_<date>.json``, write ``infogain_samples_<date>.jsonl`` beside it;
    name the bundled model's results folder."""
    if hasattr(module, "GeneralConfigTracker"):
        _name_bundled_model(module.GeneralConfigTracker)
    tracker_cls = module.EvaluationTracker
    original = tracker_cls.save_results_aggregated
    if getattr(original, _PATCHED, False):
        return

    @functools.wraps(original)
    def save_results_aggregated(self: Any, *args: Any, **kwargs: Any) -> Any:
        out = original(self, *args, **kwargs)
        from .stats_file import write_beside_results

        write_beside_results(self)
        return out

    setattr(save_results_aggregated, _PATCHED, True)
    tracker_cls.save_results_aggregated = save_results_aggregated


# ---------------------------------------------------------------------------- public
def register() -> None:
    """Make ``infogain_mdm``, our tasks and the statistics file available to lm-eval's Python API.

    Registers immediately what lm-eval has already imported and hooks the rest, so it imports
    nothing heavy itself (only ``lm_eval.models``, a table of names).
    """
    import lm_eval_infogain_bootstrap

    lm_eval_infogain_bootstrap.install_hooks()
    register_model()
