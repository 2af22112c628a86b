"""Gold round trips through lm-eval itself: a model answering with the gold solution scores (almost) 1,
a model answering wrongly scores 0. Uses the real data in ../shared/data (skipped when it is absent)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
TASK_DIR = Path(__file__).resolve().parents[1] / "task_configs"

pytestmark = pytest.mark.skipif(not (SHARED_DATA / "gsm8k" / "test.jsonl").is_file(),
                                reason="../shared/data (benchmark copies) is not next to the checkout")

#: MATH-500 problems whose `answer` field upstream's Minerva scoring fails to match with the boxed answer of
#: the solution, keyed by unique_id with the reason. Measured with lm-eval 0.4.13: none (500/500 on both
#: exact_match and math_verify), so any miss here is a regression.
MATH500_KNOWN_MISSES: dict[str, str] = {}


def _math_raw() -> dict[str, dict]:
    rows = [json.loads(line) for line in (SHARED_DATA / "math500" / "test.jsonl").open()]
    return {row["unique_id"]: row for row in rows}


def _gold(task: str, doc: dict, math_raw: dict[str, dict]) -> str:
    if task.startswith("infogain_gsm8k"):
        final = doc["answer"].split("####")[-1].strip()
        return doc["answer"] + (f"\nThe answer is {final}." if "cot" in task else "")
    if task.startswith("infogain_math500"):
        # only the dataset's `answer` field, never the worked solution (whose \\boxed{} would make it trivial)
        raw = math_raw[doc["unique_id"]]["answer"]
        if "cot" in task:
            return f"We work it out.\nSo the answer is $\\boxed{{{raw}}}$."
        return f"We work it out.\nFinal Answer: The final answer is ${raw}$. I hope it is correct."
    if task == "infogain_humaneval":
        return doc["canonical_solution"]
    if task == "infogain_humaneval_cot_zeroshot":
        return f"The body follows.\n```python\n{doc['prompt']}{doc['canonical_solution']}```\n"
    if task == "infogain_mbpp":
        return doc["code"] + "\n"
    if task == "infogain_mbpp_cot_zeroshot":
        return f"Step by step.\n```python\n{doc['code']}\n```"
    if task in ("infogain_sudoku", "infogain_countdown"):
        return doc["solution"]
    raise KeyError(task)


def _wrong(task: str) -> str:
    if "humaneval" in task:
        return "    raise NotImplementedError\n"
    if "mbpp" in task:
        return "def unrelated():\n    return None\n"
    if "math500" in task:
        return "We guess.\nFinal Answer: The final answer is $-987654321$. I hope it is correct."
    if "sudoku" in task:
        return "1111222233334444"
    if "countdown" in task:
        return "1 + 1"
    return "We do not know. #### -987654321\nThe answer is -987654321."


def _evaluate(monkeypatch, tasks: list[str], answer, limit: int | None = None) -> dict:
    from lm_eval import simple_evaluate
    from lm_eval.api.model import LM
    from lm_eval.tasks import TaskManager

    monkeypatch.setenv("LM_EVAL_INFOGAIN_DATA", str(SHARED_DATA))
    monkeypatch.setenv("LM_EVAL_INFOGAIN_EXEC_WORKERS", "2")
    math_raw = _math_raw()

    class Oracle(LM):
        def generate_until(self, requests, disable_tqdm: bool = False):
            return [answer(req.task_name, req.doc, math_raw) for req in requests]

        def loglikelihood(self, requests, disable_tqdm: bool = False):
            raise NotImplementedError

        def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
            raise NotImplementedError

    tm = TaskManager(include_defaults=False, include_path=str(TASK_DIR))
    out = simple_evaluate(model=Oracle(), tasks=tasks, task_manager=tm, bootstrap_iters=0, limit=limit,
                          confirm_run_unsafe_code=True, log_samples=True)
    return out


def test_gold_gsm8k_math_puzzles(monkeypatch):
    out = _evaluate(monkeypatch, ["infogain_gsm8k", "infogain_math500", "infogain_sudoku", "infogain_countdown"], _gold)
    res, samples = out["results"], out["samples"]
    assert res["infogain_gsm8k"]["exact_match,strict-match"] == 1.0
    assert res["infogain_gsm8k"]["exact_match,flexible-extract"] == 1.0
    assert len(samples["infogain_gsm8k"]) == 2 * 1319  # one row per filter
    misses = sorted(s["doc"]["unique_id"] for s in samples["infogain_math500"] if not s["exact_match"])
    verify_misses = sorted(s["doc"]["unique_id"] for s in samples["infogain_math500"] if not s["math_verify"])
    assert res["infogain_math500"]["exact_match,none"] >= 0.99, misses
    assert res["infogain_math500"]["math_verify,none"] >= 0.99, verify_misses
    assert set(misses) <= set(MATH500_KNOWN_MISSES), misses
    assert res["infogain_sudoku"]["accuracy,none"] == 1.0
    assert res["infogain_countdown"]["accuracy,none"] == 1.0


@pytest.mark.slow
def test_gold_code_tasks(monkeypatch):
    out = _evaluate(monkeypatch, ["infogain_humaneval", "infogain_mbpp"], _gold)
    res, samples = out["results"], out["samples"]
    failed = [s["doc"]["task_id"] for s in samples["infogain_mbpp"] if not s["pass@1"]]
    assert res["infogain_humaneval"]["pass@1,execute"] == 1.0
    assert len(samples["infogain_humaneval"]) == 164
    assert failed == [] and len(samples["infogain_mbpp"]) == 500


def test_gold_cot_variants(monkeypatch):
    tasks = ["infogain_gsm8k_cot_zeroshot", "infogain_math500_cot_zeroshot", "infogain_humaneval_cot_zeroshot",
             "infogain_mbpp_cot_zeroshot"]
    res = _evaluate(monkeypatch, tasks, _gold, limit=25)["results"]
    assert res["infogain_gsm8k_cot_zeroshot"]["exact_match,strict-match"] == 1.0
    assert res["infogain_math500_cot_zeroshot"]["exact_match,none"] == 1.0
    assert res["infogain_humaneval_cot_zeroshot"]["pass@1,execute"] == 1.0
    assert res["infogain_mbpp_cot_zeroshot"]["pass@1,execute"] == 1.0


def test_wrong_answers_score_zero(monkeypatch):
    wrong = lambda task, doc, raw: _wrong(task)  # noqa: E731
    full = ["infogain_gsm8k", "infogain_gsm8k_cot_zeroshot", "infogain_sudoku", "infogain_countdown"]
    res = _evaluate(monkeypatch, full, wrong)["results"]
    # sympy equivalence costs ~0.1 s per MATH doc and code runs ~0.2 s per program: a prefix suffices there
    res.update(_evaluate(monkeypatch, ["infogain_math500", "infogain_humaneval", "infogain_mbpp"], wrong,
                         limit=40)["results"])
    scored = 0
    for task in full + ["infogain_math500", "infogain_humaneval", "infogain_mbpp"]:
        for key, value in res[task].items():
            if key.split(",")[0] in ("exact_match", "math_verify", "accuracy", "pass@1"):
                assert value == 0.0, (task, key, value)
                scored += 1
    assert scored == 10
