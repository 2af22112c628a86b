"""4x4 Sudoku: robust parsing and validity scoring (any valid completion counts)."""

from __future__ import annotations

import csv
import itertools
from pathlib import Path

import pytest

from lm_eval_infogain.scoring.sudoku import doc_to_text, is_valid_solution, parse_grid, process_results

CSV = Path(__file__).resolve().parents[1] / "task_configs" / "data" / "sudoku.csv"
PUZZLE, SOLUTION = "3102200002100320", "3142243142131324"


@pytest.mark.parametrize("text", [
    "3142243142131324", " 3142\n2431\n4213\n1324\n", "3 1 4 2 | 2 4 3 1 | 4 2 1 3 | 1 3 2 4",
    "[[3,1,4,2],[2,4,3,1],[4,2,1,3],[1,3,2,4]]", "Row 1: 3 1 4 2\nRow 2: 2 4 3 1\nRow 3: 4 2 1 3\nRow 4: 1 3 2 4",
])
def test_parse_formats(text):
    assert parse_grid(text) == SOLUTION


def test_parse_gives_none_for_garbage():
    assert parse_grid("I cannot solve this") is None
    assert parse_grid("31422431") is None


def test_validity_rules():
    assert is_valid_solution(PUZZLE, SOLUTION)
    assert not is_valid_solution(PUZZLE, "1111222233334444")  # rows fine? no: columns/boxes broken
    assert not is_valid_solution(PUZZLE, "4132" + SOLUTION[4:])  # changes a clue
    assert not is_valid_solution(PUZZLE, None)
    # a Latin square that breaks a 2x2 box
    assert not is_valid_solution("0" * 16, "1234234134124123")


def _all_grids() -> list[str]:
    """All valid 4x4 grids, row by row, pruning rows that clash with a column or box so far."""
    perms = ["".join(p) for p in itertools.permutations("1234")]
    grids = [""]
    for r in range(4):
        grids = [
            g + row for g in grids for row in perms
            if all(row[c] not in g[c::4] for c in range(4))
            and all(len({*g[(r // 2) * 8 + b:(r // 2) * 8 + b + 2], *g[(r // 2) * 8 + 4 + b:(r // 2) * 8 + 6 + b],
                         *row[b:b + 2]} - {""}) == (r % 2 + 1) * 2 for b in (0, 2))
        ]
    return [g for g in grids if is_valid_solution("0" * 16, g)]


def test_every_puzzle_accepts_all_its_completions():
    grids = _all_grids()
    assert len(grids) == 288
    with CSV.open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 500
    multi = 0
    for row in rows:
        fits = [g for g in grids if all(p in ("0", g[i]) for i, p in enumerate(row["Puzzle"]))]
        assert row["Solution"] in fits
        assert all(process_results({"puzzle": row["Puzzle"]}, [g])["accuracy"] == 1 for g in fits)
        multi += len(fits) > 1
    assert multi == 124


def test_prompt_shows_rows():
    text = doc_to_text({"puzzle": PUZZLE})
    assert "3102\n2000\n0210\n0320" in text and text.endswith("Solution:")
