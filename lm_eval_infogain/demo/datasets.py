"""The committed demo test sets: how they are generated, where they live, how they are read.

``scripts/make_demo_data.py`` writes them with the seeds below; a test regenerates a prefix and
compares, so the files can never drift from the generator. They ship inside the package
(``lm_eval_infogain/demo/data``), and the task helpers resolve them relative to this file, never
relative to the working directory.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

from .puzzles import (
    ADD_WIDTH,
    addition_answer,
    addition_prompt,
    addition_test_set,
    sudoku_answer,
    sudoku_prompt,
    sudoku_test_set,
)

__all__ = [
    "DATA_DIR",
    "SUDOKU_FILE",
    "ADDITION_FILE",
    "SUDOKU_SEED",
    "ADDITION_SEED",
    "SUDOKU_COUNT",
    "ADDITION_COUNT",
    "sudoku_records",
    "addition_records",
    "write_jsonl",
    "read_jsonl",
]

DATA_DIR = Path(__file__).resolve().parent / "data"
SUDOKU_FILE = DATA_DIR / "sudoku_test.jsonl"
ADDITION_FILE = DATA_DIR / "addition_test.jsonl"
SUDOKU_SEED, SUDOKU_COUNT = 90_001, 200
ADDITION_SEED, ADDITION_COUNT = 90_002, 500


def sudoku_records(seed: int = SUDOKU_SEED, n: int = SUDOKU_COUNT) -> Iterator[dict[str, Any]]:
    """Rows of the Sudoku test set: puzzle/solution as 81-character strings (``0`` = blank)."""
    for i, p in enumerate(sudoku_test_set(seed, n)):
        yield {
            "id": i,
            "puzzle": "".join(map(str, p.puzzle)),
            "solution": "".join(map(str, p.solution)),
            "blanks": p.blanks,
            "prompt": sudoku_prompt(p.puzzle),
            "answer": sudoku_answer(p.solution),
        }


def addition_records(seed: int = ADDITION_SEED, n: int = ADDITION_COUNT) -> Iterator[dict[str, Any]]:
    """Rows of the addition test set; ``carry_chain`` is the longest carry run of the problem."""
    for i, p in enumerate(addition_test_set(seed, n)):
        yield {
            "id": i,
            "a": p.a,
            "b": p.b,
            "sum": p.total,
            "width": ADD_WIDTH,
            "carry_chain": p.carry_chain,
            "prompt": addition_prompt(p.a, p.b),
            "answer": addition_answer(p.total),
        }


def write_jsonl(path: Path, rows: Iterator[dict[str, Any]]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(row, sort_keys=True) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return len(lines)


def read_jsonl(path: Path, limit: int | None = None) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    return rows if limit is None else rows[:limit]
