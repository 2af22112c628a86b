"""``lm-eval-infogain``: one console script, one subcommand per job.

Subcommands are resolved lazily (``module:function`` strings) so that ``lm-eval-infogain --help``
does not import torch or lm-eval. Each target takes the remaining argv and returns an exit code.
"""

from __future__ import annotations

import importlib
import sys

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "eval": ("lm_eval_infogain.harness.cli_eval:main", "run lm-eval's CLI with this plugin loaded"),
    "leaderboard": ("lm_eval_infogain.leaderboard.cli:leaderboard_main", "tables and plots from lm-eval outputs"),
    "regress": ("lm_eval_infogain.leaderboard.cli:regress_main", "fail when metrics fall below a baseline"),
    "paired": ("lm_eval_infogain.leaderboard.paired:main", "paired Δ with a bootstrap interval from --log_samples files"),
    "reproduce": ("lm_eval_infogain.reproduce:main", "print / run the paper's experiment grids"),
    "bench": ("lm_eval_infogain.bench:main", "speed and memory benchmark of the samplers"),
}


def _usage() -> str:
    lines = ["usage: lm-eval-infogain <command> [args...]", "", "commands:"]
    lines += [f"  {name:<12} {help_}" for name, (_, help_) in SUBCOMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        print(f"lm-eval-infogain: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module_name, func_name = SUBCOMMANDS[name][0].split(":")
    func = getattr(importlib.import_module(module_name), func_name)
    return int(func(rest) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
