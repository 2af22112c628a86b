"""Scoring for the ``infogain_*`` tasks: data loading, answer checking, code execution, writing metrics.

Each submodule has one job and imports only the standard library at top level (plus ``datasets`` /
``math_verify`` where a function needs them), so the thin helper modules in ``task_configs/`` stay
cheap to import when lm-eval builds its task index.

- :mod:`.executor` — runs untrusted programs in separate, resource-limited, network-less processes.
- :mod:`.code` — HumanEval / MBPP program assembly, filters and pass@k metrics on top of the executor.
- :mod:`.data` — hub-or-local dataset loading (``LM_EVAL_INFOGAIN_DATA``).
- :mod:`.math` — GSM8K / MATH-500 answer extraction helpers.
- :mod:`.sudoku`, :mod:`.countdown` — puzzle checkers.
- :mod:`.writing`, :mod:`.judge` — reference-free writing metrics and the pairwise LLM judge.
"""
