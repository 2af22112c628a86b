"""HumanEval-Infilling (Bavarian et al., 2022) on top of the infilling protocol and our sandbox.

Each document is a HumanEval function with one span cut out: ``prompt`` (code before the gap), ``suffix``
(code after it), ``canonical_solution`` (the gap) and the problem's ``test``. The request hands the
backend prefix, suffix and the reference middle (for the oracle gap length only; see
:mod:`lm_eval_infogain.infill_protocol`), the response is the gap's text, and the program executed is
``prompt + response + suffix``, then the tests and ``check(entry_point)`` — as the official harness
builds it. Execution happens in one filter over all responses (as for HumanEval in :mod:`.code`), so the
executor runs problems in parallel; ``process_results`` reuses :func:`.code.pass_at_1` /
:func:`.code.pass_at_1_and_10`.
"""

from __future__ import annotations

from typing import Sequence

from ..infill_protocol import encode_request
from .executor import Program, run_programs

__all__ = ["doc_to_text", "program", "execute"]

def doc_to_text(doc: dict) -> str:
    """The infilling request of one problem: its prompt and suffix around the canonical gap."""
    return encode_request(prefix=doc["prompt"], suffix=doc["suffix"], middle=doc["canonical_solution"])


def program(doc: dict, gap: str) -> Program:
    """The program that decides a response: code before the gap, the response and the code after it;
    then, as a stage of its own (the model's text cannot swallow it), the tests and ``check``."""
    return Program(f"{doc['prompt']}{gap}{doc['suffix']}", f"{doc['test']}\ncheck({doc['entry_point']})\n")


def execute(resps: Sequence[Sequence[str]], docs: Sequence[dict]) -> list[list[dict]]:
    """lm-eval custom filter: run every sample of every problem in the sandbox.

    Returns, per problem, one dict per sample with the executed ``program`` and the executor's verdict
    (``passed``, ``status``, ...), which ``--log_samples`` shows.
    """
    programs = [[program(doc, gap) for gap in resp] for resp, doc in zip(resps, docs, strict=True)]
    verdicts = iter(run_programs([p for group in programs for p in group]))
    return [[{"program": p.source, **next(verdicts).as_dict()} for p in group] for group in programs]
