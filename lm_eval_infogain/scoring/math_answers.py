"""MATH-500 scoring for free-form (zero-shot chain-of-thought) answers.

The 4-shot task reuses lm-eval's Minerva functions unchanged (``lm_eval.tasks.minerva_math.utils``), so
its numbers are comparable with upstream ``minerva_math500``. Those functions only read an answer from
the Minerva sentence "Final Answer: The final answer is X. I hope it is correct.", which a zero-shot
model is not shown; here the answer is that sentence when present, otherwise the last ``\\boxed{}``.
Equivalence is still upstream's: normalised string / sympy equality (``exact_match``) and math-verify.
"""

from __future__ import annotations

__all__ = ["extract_answer", "process_results_cot"]


def extract_answer(text: str) -> str:
    """The Minerva final-answer sentence if present, else the last boxed expression, else the marker."""
    from lm_eval.tasks.minerva_math import utils as minerva

    answer = minerva.get_unnormalized_answer(text)
    if answer != "[invalidanswer]":
        return answer
    boxed = minerva.last_boxed_only_string(text)
    if boxed is None:
        return answer
    try:
        return minerva.remove_boxed(boxed)
    except AssertionError:
        return answer


def process_results_cot(doc: dict, results: list[str]) -> dict[str, int]:
    """``exact_match`` (normalised/sympy) and ``math_verify`` for one free-form answer."""
    from lm_eval.tasks.minerva_math import utils as minerva
    from math_verify import parse, verify

    text = results[0]
    answer = minerva.normalize_final_answer(extract_answer(text))
    exact = int(minerva.is_equiv(answer, doc["answer"]))
    verified = int(bool(verify(gold=parse(doc["solution"]), target=parse(text))))
    return {"exact_match": exact, "math_verify": verified}
