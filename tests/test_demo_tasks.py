"""The demo task YAMLs load offline through lm-eval, score gold as right and near misses as wrong,
and ask the backend for one block over the whole answer (K tokens per step in the parallel ones)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

TASK_DIR = Path(__file__).resolve().parents[1] / "task_configs"
DEMO_TASKS = {
    "infogain_demo_sudoku": (81, None, 100),
    "infogain_demo_sudoku_parallel": (81, 3, 100),
    "infogain_demo_addition": (9, None, 500),
    "infogain_demo_addition_parallel": (9, 3, 500),
}


@pytest.fixture(scope="module")
def tasks(tmp_path_factory):
    from lm_eval.tasks import TaskManager

    cwd = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("elsewhere"))  # data paths must not depend on the working directory
    try:
        manager = TaskManager(include_defaults=False, include_path=str(TASK_DIR))
        return manager.load(list(DEMO_TASKS))["tasks"]
    finally:
        os.chdir(cwd)


def test_demo_tasks_load_with_their_sizes_and_generation_kwargs(tasks):
    from lm_eval_infogain.harness.requests import plan_generation
    from lm_eval_infogain.sampling.config import DecodingConfig

    for name, (length, k, size) in DEMO_TASKS.items():
        task = tasks[name]
        docs = list(task.test_docs())
        assert len(docs) == size
        gen = task.config.generation_kwargs
        assert gen["max_gen_toks"] == length and gen["block_size"] == length and gen.get("tokens_per_step") == k
        assert task.config.output_type == "generate_until"
        plan = plan_generation(dict(gen), {}, DecodingConfig(), "<|endoftext|>")
        assert plan.config.gen_length == length and plan.config.block_lengths == [length]
        assert plan.config.steps_per_block == [length if k is None else -(-length // k)]
        # what the user types on the command line wins over the task
        user = plan_generation(dict(gen), {"block_size": 4}, DecodingConfig(block_size=4), "<|endoftext|>")
        assert user.config.block_size == 4


def test_prompts_tokenize_to_one_token_per_cell_or_symbol(tasks):
    from transformers import AutoTokenizer

    model_dir = Path(__file__).resolve().parents[1] / "lm_eval_infogain" / "demo" / "model"
    tok = AutoTokenizer.from_pretrained(str(model_dir), trust_remote_code=False)
    sudoku = next(iter(tasks["infogain_demo_sudoku"].test_docs()))
    text = tasks["infogain_demo_sudoku"].doc_to_text(sudoku)
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert len(ids) == 82 and tok.unk_token_id not in ids and ids[-1] == tok.convert_tokens_to_ids("=")
    answer = tok(tasks["infogain_demo_sudoku"].doc_to_target(sudoku), add_special_tokens=False)["input_ids"]
    assert len(answer) == 81
    addition = next(iter(tasks["infogain_demo_addition"].test_docs()))
    assert len(tok(tasks["infogain_demo_addition"].doc_to_text(addition))["input_ids"]) == 18
    assert len(tok(tasks["infogain_demo_addition"].doc_to_target(addition))["input_ids"]) == 9


@pytest.mark.parametrize("name", list(DEMO_TASKS))
def test_scorer_accepts_gold_and_rejects_wrong(tasks, name):
    task = tasks[name]
    docs = list(task.test_docs())[:5]
    for doc in docs:
        gold = task.doc_to_target(doc)
        assert task.process_results(doc, [gold]) == {"accuracy": 1.0}
        digits = gold.split()
        wrong = list(digits)
        wrong[-1] = str((int(digits[-1]) + 1) % 10)
        assert task.process_results(doc, [" ".join(wrong)]) == {"accuracy": 0.0}
        assert task.process_results(doc, [""]) == {"accuracy": 0.0}
