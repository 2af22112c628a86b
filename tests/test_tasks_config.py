"""Every task YAML loads through lm-eval's TaskManager; missing data fails with an error naming the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from lm_eval_infogain.scoring import data

TASK_DIR = Path(__file__).resolve().parents[1] / "task_configs"
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

EXPECTED_TASKS = {
    "infogain_gsm8k", "infogain_gsm8k_cot_zeroshot", "infogain_math500", "infogain_math500_cot_zeroshot",
    "infogain_humaneval", "infogain_humaneval_cot_zeroshot", "infogain_humaneval_pass10",
    "infogain_mbpp", "infogain_mbpp_cot_zeroshot", "infogain_mbpp_pass10",
    "infogain_writing", "infogain_sudoku", "infogain_countdown",
}
EXPECTED_GROUPS = {"infogain_reasoning", "infogain_reasoning_cot_zeroshot"}


def _manager():
    from lm_eval.tasks import TaskManager

    return TaskManager(include_defaults=False, include_path=str(TASK_DIR))


def test_index_lists_every_task_and_group():
    names = set(_manager().all_tasks)
    own = {n for n in names if n.startswith("infogain_") and not n.startswith("infogain_demo")}
    assert EXPECTED_TASKS | EXPECTED_GROUPS <= own
    yaml_tasks = {p.stem for p in TASK_DIR.glob("infogain_*.yaml") if not p.stem.startswith("infogain_demo")}
    assert yaml_tasks <= names


def test_shipped_tasks_build_offline(monkeypatch):
    """Sudoku, Countdown and HumanEval need no data folder at all."""
    monkeypatch.delenv(data.ENV_VAR, raising=False)
    tasks = _manager().load(["infogain_sudoku", "infogain_countdown", "infogain_humaneval"])["tasks"]
    sizes = {name: len(list(task.test_docs())) for name, task in tasks.items()}
    assert sizes == {"infogain_sudoku": 500, "infogain_countdown": 500, "infogain_humaneval": 164}
    sudoku = tasks["infogain_sudoku"]
    doc = next(iter(sudoku.test_docs()))
    assert sudoku.doc_to_text(doc).endswith("Solution:") and doc["puzzle"][:4] in sudoku.doc_to_text(doc)


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/data is not next to the checkout")
def test_all_tasks_build_from_local_folder(monkeypatch):
    monkeypatch.setenv(data.ENV_VAR, str(SHARED_DATA))
    tasks = _manager().load(sorted(EXPECTED_TASKS))["tasks"]
    sizes = {name: len(list(task.test_docs())) for name, task in tasks.items()}
    assert sizes["infogain_gsm8k"] == 1319 and sizes["infogain_math500"] == 500
    assert sizes["infogain_mbpp"] == 500 and sizes["infogain_writing"] == 200
    mbpp = tasks["infogain_mbpp"]
    doc = next(iter(mbpp.test_docs()))
    prompt = mbpp.fewshot_context(doc, num_fewshot=3)
    # the three lm-eval 3-shot examples (task ids 2, 3, 4), each closed by [DONE], then the open [BEGIN]
    assert prompt.count("[DONE]") == 3 and prompt.endswith("[BEGIN]\n") and "similar_elements" in prompt
    assert doc["task_id"] == 11


def test_missing_local_file_names_the_variable(monkeypatch, tmp_path):
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path))
    for loader in (data.load_gsm8k, data.load_math500, data.load_mbpp, data.load_writing):
        with pytest.raises(data.DataUnavailableError, match=data.ENV_VAR):
            loader(version=1.0, pretrained="x")  # lm-eval passes metadata + model_args as kwargs
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path / "nope"))
    with pytest.raises(data.DataUnavailableError, match=data.ENV_VAR):
        data.load_gsm8k()


def test_writing_without_folder_names_the_variable(monkeypatch):
    monkeypatch.delenv(data.ENV_VAR, raising=False)
    with pytest.raises(data.DataUnavailableError, match=data.ENV_VAR):
        data.load_writing()


def test_hub_failure_names_the_variable(monkeypatch):
    monkeypatch.delenv(data.ENV_VAR, raising=False)
    calls = []

    def unreachable(path, name=None):
        calls.append((path, name))
        raise ConnectionError("Couldn't reach the Hub")

    monkeypatch.setattr(data, "_hub_load", unreachable)
    for loader in (data.load_gsm8k, data.load_math500, data.load_mbpp):
        with pytest.raises(data.DataUnavailableError, match=data.ENV_VAR):
            loader()
    assert calls == [("openai/gsm8k", "main"), ("HuggingFaceH4/MATH-500", None),
                     ("google-research-datasets/mbpp", "full")]


def test_task_build_error_surfaces_the_variable(monkeypatch, tmp_path):
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path))
    with pytest.raises(Exception) as info:
        _manager().load(["infogain_gsm8k"])["tasks"]
    chain, exc = [], info.value
    while exc is not None:
        chain.append(str(exc))
        exc = exc.__cause__ or exc.__context__
    assert any(data.ENV_VAR in text for text in chain)


def test_code_tasks_are_marked_unsafe():
    for name in ("infogain_humaneval", "infogain_mbpp", "infogain_humaneval_cot_zeroshot", "infogain_mbpp_cot_zeroshot"):
        text = (TASK_DIR / f"{name}.yaml").read_text()
        base = text if "include:" not in text else (TASK_DIR / text.split("include:")[1].split()[0]).read_text()
        assert "unsafe_code: true" in base
