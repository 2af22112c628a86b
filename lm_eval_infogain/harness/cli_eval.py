"""``lm-eval-infogain eval ...``: lm-eval's own CLI, with this plugin loaded explicitly.

The ``.pth`` bootstrap makes plain ``lm_eval`` work, but ``.pth`` files are not read under
``python -S``, ``PYTHONPATH`` / ``pip --target`` installs, or with ``LM_EVAL_INFOGAIN_DISABLE=1``.
This command registers the model, tasks and statistics hook itself and then hands every argument
to lm-eval unchanged, so it accepts exactly what ``lm_eval`` accepts.
"""

from __future__ import annotations

import sys

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    from .plugin import register

    register()
    from lm_eval.__main__ import cli_evaluate

    saved = sys.argv
    sys.argv = ["lm-eval", *(sys.argv[1:] if argv is None else argv)]
    try:
        cli_evaluate()
    except SystemExit as exc:  # argparse --help / errors
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    finally:
        sys.argv = saved
    return 0
