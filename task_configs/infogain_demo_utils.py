"""Helpers of the demo tasks (``infogain_demo_*``): offline data and exact-match scoring.

The test sets ship inside the package (``lm_eval_infogain/demo/data``) and are located through the
package, so the tasks work from any working directory and with no network.

``num_examples`` (task metadata, overridable with ``--metadata '{"num_examples": 200}'``) takes a
prefix of the file; the files are stratified so every prefix mixes easy and hard items.
"""

from __future__ import annotations

from typing import Any

from lm_eval_infogain.demo import datasets as demo_data
from lm_eval_infogain.demo.scoring import addition_correct, sudoku_correct


def _dataset(path, num_examples: Any = None, **_: Any):
    import datasets

    limit = None if num_examples in (None, "", "all") else int(num_examples)
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(demo_data.read_jsonl(path, limit))})


def sudoku_dataset(**kwargs: Any):
    """The 9×9 test puzzles (unique solutions, 40-55 blanks); kwargs are the task metadata."""
    return _dataset(demo_data.SUDOKU_FILE, **kwargs)


def addition_dataset(**kwargs: Any):
    """The 8-digit additions (every other one with a carry chain of 4 or more)."""
    return _dataset(demo_data.ADDITION_FILE, **kwargs)


def sudoku_results(doc: dict, results: list[str]) -> dict[str, float]:
    return {"accuracy": float(sudoku_correct(results[0], doc["puzzle"]))}


def addition_results(doc: dict, results: list[str]) -> dict[str, float]:
    return {"accuracy": float(addition_correct(results[0], doc["sum"], doc.get("width", 8)))}
