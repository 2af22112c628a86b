"""HumanEval and MBPP on top of :mod:`.executor`: program assembly, one parallel execution filter, pass@k.

Why a filter does the execution: lm-eval calls ``process_results`` one document at a time, but calls a
filter once with every response of the task. Running all programs inside the filter lets the executor
use a process pool across problems; ``process_results`` then only counts verdicts. The filtered
responses (visible with ``--log_samples``) are dicts holding the executed program, its verdict and the
sandbox's isolation level.

Programs are built as two stages (:class:`.executor.Program`): the model's code, then the problem's tests
(HumanEval's ``test`` plus the ``check(entry_point)`` call we append; MBPP's setup code and asserts). The
executor compiles and runs them one after the other, so the model's code cannot swallow the tests, and a
sample passes only when the tests themselves returned normally.
"""

from __future__ import annotations

import math
import re
from typing import Callable, Sequence

from .executor import Program, SandboxLimits, run_programs

__all__ = [
    "pass_at_k",
    "humaneval_program",
    "mbpp_program",
    "extract_code_block",
    "execute_humaneval",
    "execute_humaneval_cot",
    "execute_mbpp",
    "execute_mbpp_cot",
    "pass_at_1",
    "pass_at_1_and_10",
]

_FENCE = re.compile(r"```[ \t]*(?:[A-Za-z0-9_+-]+)?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k (Chen et al., 2021): 1 - C(n-c, k) / C(n, k), for n samples with c correct."""
    if not 0 <= c <= n or k < 1 or k > n:
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def extract_code_block(text: str) -> str | None:
    """The last fenced code block (an unterminated final block counts), or None when there is none."""
    blocks = _FENCE.findall(text)
    return blocks[-1] if blocks else None


def _humaneval_tests(doc: dict) -> str:
    return f"{doc['test']}\n\ncheck({doc['entry_point']})\n"


def humaneval_program(doc: dict, completion: str) -> Program:
    """Prompt + completion, then (as the test stage) the problem's ``check`` called on the entry point."""
    return Program(f"{doc['prompt']}{completion}", _humaneval_tests(doc))


def humaneval_program_from_answer(doc: dict, answer: str) -> Program:
    """For chat/CoT answers: use the last code block; if it defines the entry point, keep only the prompt's
    preamble (imports, helper functions) before it, otherwise treat the block as the function body."""
    code = extract_code_block(answer)
    code = answer if code is None else code
    header = f"def {doc['entry_point']}("
    if header in code:
        preamble = doc["prompt"][: doc["prompt"].rfind(header)] if header in doc["prompt"] else ""
        return Program(f"{preamble}\n{code}", _humaneval_tests(doc))
    return humaneval_program(doc, code)


def mbpp_program(doc: dict, completion: str) -> Program:
    """Completion (a fenced block, if any, is unwrapped), then (as the test stage) setup code and asserts."""
    code = extract_code_block(completion)
    code = completion if code is None else code
    tests = "\n".join(doc["test_list"])
    return Program(code, f"{doc.get('test_setup_code') or ''}\n{tests}\n")


def _execute(build: Callable[[dict, str], Program], resps: Sequence[Sequence[str]], docs: Sequence[dict],
             limits: SandboxLimits | None = None, workers: int | None = None) -> list[list[dict]]:
    programs = [[build(doc, r) for r in resp] for resp, doc in zip(resps, docs)]
    flat = [p for group in programs for p in group]
    verdicts = iter(run_programs(flat, limits, workers=workers))
    return [[{"program": p.source, **next(verdicts).as_dict()} for p in group] for group in programs]


def execute_humaneval(resps, docs):
    """lm-eval custom filter: run prompt+completion+tests for every sample of every problem."""
    return _execute(humaneval_program, resps, docs)


def execute_humaneval_cot(resps, docs):
    """lm-eval custom filter for free-form answers that end in a code block."""
    return _execute(humaneval_program_from_answer, resps, docs)


def execute_mbpp(resps, docs):
    """lm-eval custom filter: run completion + setup + asserts for every sample of every problem."""
    return _execute(mbpp_program, resps, docs)


execute_mbpp_cot = execute_mbpp  # the MBPP builder already unwraps the last fenced block


def _counts(results: list) -> tuple[int, int]:
    verdicts = results[0]
    if isinstance(verdicts, dict):
        verdicts = [verdicts]
    return len(verdicts), sum(bool(v["passed"]) for v in verdicts)


def pass_at_1(doc: dict, results: list) -> dict[str, float]:
    """``process_results``: pass@1 (the mean over samples when the task repeats)."""
    n, c = _counts(results)
    return {"pass@1": pass_at_k(n, c, 1)}


def pass_at_1_and_10(doc: dict, results: list) -> dict[str, float]:
    """``process_results`` for tasks with ``repeats >= 10``: unbiased pass@1 and pass@10."""
    n, c = _counts(results)
    return {"pass@1": pass_at_k(n, c, 1), "pass@10": pass_at_k(n, c, 10)}
