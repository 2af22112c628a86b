"""lm-eval's CLI with ``--model infogain_mdm``: bad model_args in one line, before tasks load.

lm-eval builds the model only after it has indexed and loaded every task (8-40 s), and reports a bad
model argument as a 7-13-frame traceback. Its CLI turns the command line into an
``EvaluatorConfig`` first (``EvaluatorConfig.from_cli``); the plugin wraps that (see :func:`install`)
and, for our model only:

- remembers which of lm-eval's own model arguments the user typed (``--batch_size``,
  ``--max_batch_size``, ``--device``, or the same keys in a ``--config`` YAML): lm-eval passes
  ``batch_size=1`` and ``device="cuda:0"`` even when nobody asked, and a default must neither
  win over ``--model_args`` loudly nor trigger "cuda:0 requested but CUDA is not available"
  (a device nobody asked for is dropped: the model picks CUDA when present, else the CPU);
- checks every model_arg merged with those flags (``options.check_model_args``: names, values,
  that ``pretrained`` is a folder with a readable ``config.json`` or a hub id) and on failure
  prints ``lm_eval: error: infogain_mdm: <what is wrong>`` and exits with status 2, like argparse;
- shows this package's log lines (threads, seed, data-parallel rank) through lm-eval's own log
  handler and level (``LMEVAL_LOG_LEVEL`` / ``--verbosity``), which only cover ``lm_eval.*``;
- installs an exception hook so that a named input error of this package raised later (a corrupt
  weights file, ``cache=dual`` on a model without one) also ends in one line, not a traceback
  (``LM_EVAL_INFOGAIN_TRACEBACK=1`` shows the traceback).
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from typing import Any

__all__ = ["install", "take_flags_given", "one_line_errors"]

MODEL_NAME = "infogain_mdm"
TRACEBACK_ENV = "LM_EVAL_INFOGAIN_TRACEBACK"
_PATCHED = "_lm_eval_infogain_patched"
_LM_EVAL_FLAGS = ("batch_size", "max_batch_size", "device")
#: lm-eval's own model arguments the user set on the CLI run about to build the model; ``None``: no CLI run.
_FLAGS_GIVEN: frozenset[str] | None = None


def take_flags_given() -> frozenset[str] | None:
    """Which of ``batch_size`` / ``max_batch_size`` / ``device`` the CLI user set, for the model the
    CLI builds next (read once: a later Python-API model is not a CLI run); ``None``: not the CLI."""
    global _FLAGS_GIVEN
    given, _FLAGS_GIVEN = _FLAGS_GIVEN, None
    return given


def _given(cls: Any, namespace: Any) -> frozenset[str]:
    given = {name for name in _LM_EVAL_FLAGS if getattr(namespace, name, None) is not None}
    config_path = getattr(namespace, "config", None)
    if config_path:
        try:
            yaml = cls.load_yaml_config(config_path)
        except Exception:  # noqa: BLE001 - lm-eval reports its own YAML errors
            yaml = {}
        given |= {name for name in _LM_EVAL_FLAGS if isinstance(yaml, dict) and yaml.get(name) is not None}
    return frozenset(given)


def _is_our_input_error(exc: BaseException) -> bool:
    """Named errors of this package about the user's input (not bugs: those keep their traceback)."""
    module = type(exc).__module__ or ""
    return module.startswith("lm_eval_infogain") and isinstance(exc, (ValueError, LookupError, OSError))


def one_line_errors(hook: Any = None) -> Any:
    """An ``excepthook`` that prints our input errors as one line and defers everything else."""
    previous = hook or sys.excepthook

    def excepthook(kind: type[BaseException], exc: BaseException, tb: Any) -> None:
        if _is_our_input_error(exc) and not os.environ.get(TRACEBACK_ENV):
            print(f"lm_eval: error: {MODEL_NAME}: {type(exc).__name__}: {exc}", file=sys.stderr)
            return
        previous(kind, exc, tb)

    setattr(excepthook, _PATCHED, True)
    return excepthook


def _fail(message: str) -> None:
    print(f"lm_eval: error: {MODEL_NAME}: {message}", file=sys.stderr)
    raise SystemExit(2)


class _ToLmEvalLogger(logging.Handler):
    """Hands our records to lm-eval's logger, i.e. to whatever handlers it has when they are logged."""

    def emit(self, record: logging.LogRecord) -> None:
        logging.getLogger("lm_eval").handle(record)


def route_logs_through_lm_eval() -> None:
    """Our loggers print like lm-eval's, at its level (lm-eval does not propagate to the root logger)."""
    ours = logging.getLogger("lm_eval_infogain")
    if not any(isinstance(h, _ToLmEvalLogger) for h in ours.handlers):
        ours.addHandler(_ToLmEvalLogger())
    ours.setLevel(logging.getLogger("lm_eval").getEffectiveLevel())
    ours.propagate = False


def prepare(cls: Any, namespace: Any, cfg: Any) -> None:
    """The checks and merges for one parsed command line (see the module docstring)."""
    global _FLAGS_GIVEN
    from .options import merge_lm_eval_args

    given = _given(cls, namespace)
    _FLAGS_GIVEN = given
    route_logs_through_lm_eval()
    if "device" not in given:
        cfg.device = None
    if not getattr(sys.excepthook, _PATCHED, False):
        sys.excepthook = one_line_errors()
    model_args = cfg.model_args if isinstance(cfg.model_args, dict) else {}
    lm_eval_args = {name: getattr(cfg, name, None) for name in _LM_EVAL_FLAGS}
    try:
        from .options import check_model_args

        check_model_args(merge_lm_eval_args(model_args, lm_eval_args, given))
    except (ValueError, LookupError, OSError) as err:
        if not _is_our_input_error(err):
            raise
        _fail(f"{type(err).__name__}: {err}")


def install(module: Any) -> None:
    """Wrap ``EvaluatorConfig.from_cli`` of ``lm_eval.config.evaluate_config`` (idempotent)."""
    cls = getattr(module, "EvaluatorConfig", None)
    original = getattr(cls, "from_cli", None) if cls is not None else None
    if original is None or getattr(original, _PATCHED, False):
        return
    func = original.__func__

    @functools.wraps(func)
    def from_cli(klass: Any, namespace: Any) -> Any:
        cfg = func(klass, namespace)
        if getattr(cfg, "model", None) == MODEL_NAME:
            prepare(klass, namespace, cfg)
        return cfg

    setattr(from_cli, _PATCHED, True)
    cls.from_cli = classmethod(from_cli)
