"""Exact-match scoring of the demo tasks, shared by the lm-eval task helpers and scripts.

The model writes its answer as space-separated digits; scoring reads the digits only, so spacing
or a stop string left in the text does not matter, but a missing or extra digit does.
"""

from __future__ import annotations

import re

from .puzzles import is_valid_solution

__all__ = ["digits_of", "sudoku_correct", "addition_correct"]

_DIGIT = re.compile(r"\d")


def digits_of(text: str) -> list[int]:
    return [int(d) for d in _DIGIT.findall(text or "")]


def sudoku_correct(text: str, puzzle: str) -> bool:
    """A complete valid grid (81 digits) that keeps every clue of ``puzzle`` (81 chars, ``0`` = blank).

    Any valid completion counts; the committed puzzles have exactly one, so this equals matching
    the stored solution.
    """
    grid = digits_of(text)
    clues = [int(c) for c in puzzle]
    return len(grid) == 81 and is_valid_solution(grid, clues)


def addition_correct(text: str, total: int, width: int = 8) -> bool:
    """The digits, read as one number of at most ``width + 1`` digits, equal ``total``."""
    digits = digits_of(text)
    return 0 < len(digits) <= width + 1 and int("".join(map(str, digits))) == int(total)
