"""4x4 Sudoku: prompt, robust answer parsing and validity scoring.

Scored by validity, not by equality with the dataset's ``Solution`` column: 124 of the 500 puzzles
have more than one completion, and any grid that keeps every clue and puts 1-4 once in each row,
column and 2x2 box is a correct answer (the same rule as the reference implementation's checker).
"""

from __future__ import annotations

import re

__all__ = ["doc_to_text", "parse_grid", "is_valid_solution", "process_results"]

SIZE = 4
BOX = 2
_GROUP = re.compile(r"[0-9](?:[\s,|\[\]()]*[0-9])*")


def doc_to_text(doc: dict) -> str:
    """The puzzle as four rows of digits (0 = blank) and the answer format the model must follow."""
    rows = "\n".join(doc["puzzle"][i * SIZE:(i + 1) * SIZE] for i in range(SIZE))
    return (
        "Solve this 4x4 Sudoku. Replace every 0 with a digit from 1 to 4 so that each row, each column and "
        "each 2x2 box contains 1, 2, 3 and 4 exactly once. Keep the given digits.\n"
        f"Puzzle:\n{rows}\n"
        "Answer with the 16 digits of the solved grid, row by row.\n"
        "Solution:"
    )


def parse_grid(text: str) -> str | None:
    """16 digits from a model answer, or None.

    Accepts '3142243142131324', '3142\\n2431\\n...', '3 1 4 2 | 2 4 3 1 ...', '[[3,1,4,2],[...]]'. The first
    run of exactly 16 digits (separated only by spaces, commas, bars or brackets) wins; otherwise the
    first four runs of exactly 4 digits (e.g. 'Row 1: 3 1 4 2' lines).
    """
    groups = [re.sub(r"\D", "", g) for g in _GROUP.findall(text)]
    for digits in groups:
        if len(digits) == SIZE * SIZE:
            return digits
    rows = [d for d in groups if len(d) == SIZE]
    if len(rows) >= SIZE:
        return "".join(rows[:SIZE])
    return None


def is_valid_solution(puzzle: str, grid: str | None) -> bool:
    """Clues kept and every row, column and 2x2 box a permutation of 1-4."""
    if grid is None or len(grid) != SIZE * SIZE or len(puzzle) != SIZE * SIZE:
        return False
    if any(p != "0" and p != g for p, g in zip(puzzle, grid)):
        return False
    full = set("1234")
    cells = [[grid[r * SIZE + c] for c in range(SIZE)] for r in range(SIZE)]
    units = [set(row) for row in cells]
    units += [{cells[r][c] for r in range(SIZE)} for c in range(SIZE)]
    units += [
        {cells[r][c] for r in range(br, br + BOX) for c in range(bc, bc + BOX)}
        for br in range(0, SIZE, BOX)
        for bc in range(0, SIZE, BOX)
    ]
    return all(unit == full for unit in units)


def process_results(doc: dict, results: list[str]) -> dict[str, int]:
    """``accuracy``: 1 when the parsed grid is a valid completion of the puzzle."""
    return {"accuracy": int(is_valid_solution(doc["puzzle"], parse_grid(results[0])))}
