"""What the model must learn from lm-eval's evaluator: when an evaluation starts, its seeds, its cache hits.

lm-eval 0.4.13 tells a model none of this. ``simple_evaluate`` seeds ``random`` / ``numpy`` /
``torch`` and then builds (or reuses) the model; ``evaluate`` runs the requests; ``CachingLM``
answers ``--use_cache`` hits without ever calling the model. The plugin wraps those three (see
:func:`install`, run right after lm-eval imports ``lm_eval.evaluator``) and talks to the model
through two duck-typed methods, so nothing here imports torch or the model:

- ``model._infogain_begin_evaluation(context)`` at the start of every ``evaluate`` — the model resets
  its statistics there and takes the decoding seed from ``context`` (an :class:`EvaluationContext`,
  or ``None`` when ``evaluate`` was called without ``simple_evaluate``);
- ``model._infogain_cache_hits(requests, received)`` after ``CachingLM`` answered a
  ``generate_until`` call: ``received`` holds the ids of the requests the model computed itself, so
  every other request was a cache hit (exactly lm-eval's own rule, not a copy of it).
"""

from __future__ import annotations

import contextvars
import functools
import inspect
from dataclasses import dataclass
from typing import Any, Callable

__all__ = ["EvaluationContext", "current_context", "install"]

_PATCHED = "_lm_eval_infogain_patched"
_SEED_ARGS = ("random_seed", "numpy_random_seed", "torch_random_seed", "fewshot_random_seed")


@dataclass(frozen=True)
class EvaluationContext:
    """The seeds ``simple_evaluate`` set before this evaluation (``None``: that seed was not set)."""

    random_seed: int | None
    numpy_seed: int | None
    torch_seed: int | None
    fewshot_seed: int | None


_CONTEXT: contextvars.ContextVar[EvaluationContext | None] = contextvars.ContextVar("infogain_evaluation", default=None)


def current_context() -> EvaluationContext | None:
    """The context of the ``simple_evaluate`` call running now (``None`` outside one)."""
    return _CONTEXT.get()


def _int_or_none(value: Any) -> int | None:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def _wrap_simple_evaluate(original: Callable[..., Any]) -> Callable[..., Any]:
    signature = inspect.signature(original)

    @functools.wraps(original)
    def simple_evaluate(*args: Any, **kwargs: Any) -> Any:
        try:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            seeds = [_int_or_none(bound.arguments.get(name)) for name in _SEED_ARGS]
        except TypeError:  # let lm-eval report its own argument errors
            return original(*args, **kwargs)
        token = _CONTEXT.set(EvaluationContext(*seeds))
        try:
            return original(*args, **kwargs)
        finally:
            _CONTEXT.reset(token)

    setattr(simple_evaluate, _PATCHED, True)
    return simple_evaluate


def _wrap_evaluate(original: Callable[..., Any]) -> Callable[..., Any]:
    signature = inspect.signature(original)

    @functools.wraps(original)
    def evaluate(*args: Any, **kwargs: Any) -> Any:
        try:
            lm = signature.bind_partial(*args, **kwargs).arguments.get("lm")
        except TypeError:
            lm = None
        # A CachingLM passes attribute look-ups through to the model it wraps.
        begin = getattr(lm, "_infogain_begin_evaluation", None) if lm is not None else None
        if callable(begin):
            begin(current_context())
        return original(*args, **kwargs)

    setattr(evaluate, _PATCHED, True)
    return evaluate


def _patch_caching_lm(caching_cls: type) -> None:
    original = caching_cls.__getattr__
    if getattr(original, _PATCHED, False):
        return

    @functools.wraps(original)
    def __getattr__(self: Any, attr: str) -> Any:
        fn = original(self, attr)
        model = self.__dict__.get("lm")
        hits = getattr(model, "_infogain_cache_hits", None)
        if attr != "generate_until" or not callable(hits):
            return fn

        def generate_until(requests: list[Any], *args: Any, **kwargs: Any) -> Any:
            model._infogain_received = set()
            try:
                out = fn(requests, *args, **kwargs)
                received = model._infogain_received
            finally:
                model._infogain_received = None
            hits(requests, received)
            return out

        return generate_until

    setattr(__getattr__, _PATCHED, True)
    caching_cls.__getattr__ = __getattr__


def install(evaluator_module: Any) -> None:
    """Wrap ``simple_evaluate`` / ``evaluate`` of ``lm_eval.evaluator`` and ``CachingLM`` (idempotent).

    ``lm_eval.simple_evaluate`` reads the module attribute at call time, and ``simple_evaluate``
    calls ``evaluate`` through the module's globals, so replacing the attributes reaches both.
    """
    for name, wrap in (("simple_evaluate", _wrap_simple_evaluate), ("evaluate", _wrap_evaluate)):
        current = getattr(evaluator_module, name, None)
        if current is not None and not getattr(current, _PATCHED, False):
            setattr(evaluator_module, name, wrap(current))
    try:
        from lm_eval.api.model import CachingLM
    except ImportError:  # pragma: no cover - every 0.4 release has it
        return
    _patch_caching_lm(CachingLM)
