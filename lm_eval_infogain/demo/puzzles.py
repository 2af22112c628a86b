"""Seeded generators for the two demo tasks: 9×9 Sudoku and fixed-width multi-digit addition.

Why these two: in both, the answer tokens depend on each other through hard constraints (Sudoku's
row/column/box rules, addition's carry chains), so the ORDER in which a masked diffusion model commits
tokens decides whether it can use what it already knows — the effect the Info-Gain sampler is about.

Everything here is pure stdlib (``random.Random``), so a seed gives the same puzzles on every platform
and Python version, and the committed test sets can be regenerated and compared byte for byte.

Text formats (space-separated words, because the demo tokenizer is a word-level vocabulary split at
whitespace):

- Sudoku prompt: the 81 cells row by row, each as one word naming the cell and its clue,
  ``r1c1=5 r1c2=. … r9c9=7``, then ``=``; answer: the 81 solved digits, row by row. The cell names
  carry what a rotary-position model cannot see from distances (which cells share a row, column or
  box).
- Addition prompt: ``a`` and ``b`` zero-padded to ``width`` digits, most significant first, as
  ``a₁ … aₙ + b₁ … bₙ =``; answer: the sum zero-padded to ``width + 1`` digits. With a fixed width,
  answer digit *i* sits at a constant distance from the operand digits it depends on, which is what
  lets a small rotary-position model learn it (variable-width ``a + b = c`` did not train).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Iterator, Sequence

__all__ = [
    "BLANK",
    "SUDOKU_CELLS",
    "ADD_WIDTH",
    "SudokuPuzzle",
    "AdditionProblem",
    "random_solved_grid",
    "transform_grid",
    "count_solutions",
    "is_valid_solution",
    "make_sudoku_puzzle",
    "sudoku_test_set",
    "carry_chain_length",
    "make_addition",
    "addition_test_set",
    "sudoku_cell_word",
    "sudoku_prompt",
    "sudoku_answer",
    "addition_prompt",
    "addition_answer",
]

BLANK = "."
SUDOKU_CELLS = 81
ADD_WIDTH = 8
_ALL = 0x3FE  # bits 1..9

# Peers of each cell (same row, column or box), computed once.
_PEERS: list[tuple[int, ...]] = []
for _cell in range(81):
    _r, _c = divmod(_cell, 9)
    _br, _bc = 3 * (_r // 3), 3 * (_c // 3)
    _p = {9 * _r + j for j in range(9)} | {9 * i + _c for i in range(9)}
    _p |= {9 * (_br + i) + _bc + j for i in range(3) for j in range(3)}
    _p.discard(_cell)
    _PEERS.append(tuple(sorted(_p)))
_UNITS: list[tuple[int, ...]] = (
    [tuple(9 * r + c for c in range(9)) for r in range(9)]
    + [tuple(9 * r + c for r in range(9)) for c in range(9)]
    + [tuple(9 * (br + i) + bc + j for i in range(3) for j in range(3)) for br in (0, 3, 6) for bc in (0, 3, 6)]
)


# ---------------------------------------------------------------------------------------------- Sudoku
def _candidates(grid: Sequence[int], cell: int) -> int:
    used = 0
    for p in _PEERS[cell]:
        used |= 1 << grid[p]
    return _ALL & ~used


def _search(grid: list[int], limit: int, rng: random.Random | None) -> int:
    """Count completions of ``grid`` (0 = blank) up to ``limit`` by MRV backtracking on bitmasks.

    With ``rng`` the digit order is shuffled and the first completion is left in ``grid`` (used to
    draw random solved grids); without it the grid is restored and only the count matters.
    """
    best, best_mask, best_n = -1, 0, 10
    for cell in range(81):
        if grid[cell] == 0:
            mask = _candidates(grid, cell)
            n = bin(mask).count("1")
            if n < best_n:
                best, best_mask, best_n = cell, mask, n
                if n <= 1:
                    break
    if best < 0:
        return 1
    if best_n == 0:
        return 0
    digits = [d for d in range(1, 10) if best_mask >> d & 1]
    if rng is not None:
        rng.shuffle(digits)
    found = 0
    for d in digits:
        grid[best] = d
        found += _search(grid, limit - found, rng)
        if found >= limit:
            if rng is None:
                grid[best] = 0
            return found
    grid[best] = 0
    return found


def count_solutions(puzzle: Sequence[int], limit: int = 2) -> int:
    """Number of valid completions of ``puzzle`` (81 ints, 0 = blank), counted up to ``limit``."""
    grid = list(puzzle)
    if len(grid) != 81 or any(not 0 <= v <= 9 for v in grid):
        raise ValueError("a Sudoku puzzle is 81 integers in 0..9 (0 = blank)")
    for cell, v in enumerate(grid):  # clues that already clash have no completion
        if v and any(grid[p] == v for p in _PEERS[cell]):
            return 0
    return _search(grid, limit, None)


def random_solved_grid(rng: random.Random) -> list[int]:
    """A uniformly shuffled backtracking fill of the empty grid: a valid solved Sudoku."""
    grid = [0] * 81
    if _search(grid, 1, rng) != 1:  # pragma: no cover - the empty grid always has a completion
        raise RuntimeError("could not fill an empty Sudoku grid")
    return grid


def transform_grid(grid: Sequence[int], rng: random.Random) -> list[int]:
    """A random validity-preserving transform: digit relabeling, band/row/stack/column
    permutations and an optional transpose. Cheap, so training grids can be made on the fly."""
    digits = list(range(1, 10))
    rng.shuffle(digits)
    relabel = [0] + digits

    def axis_perm() -> list[int]:
        bands = [0, 1, 2]
        rng.shuffle(bands)
        order = []
        for b in bands:
            inner = [0, 1, 2]
            rng.shuffle(inner)
            order.extend(3 * b + i for i in inner)
        return order

    rows, cols = axis_perm(), axis_perm()
    transpose = rng.random() < 0.5
    out = [0] * 81
    for r in range(9):
        for c in range(9):
            src_r, src_c = rows[r], cols[c]
            if transpose:
                src_r, src_c = src_c, src_r
            out[9 * r + c] = relabel[grid[9 * src_r + src_c]]
    return out


def is_valid_solution(grid: Sequence[int], clues: Sequence[int] | None = None) -> bool:
    """True when ``grid`` is a complete valid Sudoku that keeps every clue of ``clues`` (0 = blank)."""
    if len(grid) != 81 or any(not isinstance(v, int) or not 1 <= v <= 9 for v in grid):
        return False
    if clues is not None and any(c and c != g for c, g in zip(clues, grid)):
        return False
    return all(len({grid[i] for i in unit}) == 9 for unit in _UNITS)


@dataclass(frozen=True)
class SudokuPuzzle:
    puzzle: tuple[int, ...]  # 0 = blank
    solution: tuple[int, ...]

    @property
    def blanks(self) -> int:
        return sum(1 for v in self.puzzle if v == 0)


def make_sudoku_puzzle(rng: random.Random, blanks: int) -> SudokuPuzzle:
    """Blank cells of a random solved grid in random order, keeping the solution unique.

    A cell whose removal would admit a second solution stays a clue; if fewer than ``blanks`` cells
    can go, a fresh grid is drawn (rare for ``blanks`` ≤ 55).
    """
    if not 0 <= blanks <= 64:
        raise ValueError(f"blanks must be in 0..64 for a unique 9x9 Sudoku, got {blanks}")
    while True:
        solution = random_solved_grid(rng)
        puzzle = list(solution)
        order = list(range(81))
        rng.shuffle(order)
        removed = 0
        for cell in order:
            if removed == blanks:
                break
            keep = puzzle[cell]
            puzzle[cell] = 0
            if count_solutions(puzzle, 2) == 1:
                removed += 1
            else:
                puzzle[cell] = keep
        if removed == blanks:
            return SudokuPuzzle(tuple(puzzle), tuple(solution))


def sudoku_test_set(seed: int, n: int, min_blanks: int = 40, max_blanks: int = 55) -> Iterator[SudokuPuzzle]:
    """``n`` unique-solution puzzles; blank counts cycle evenly over ``min_blanks..max_blanks``
    (a stratified spread, so any prefix covers easy and hard puzzles alike)."""
    rng = random.Random(seed)
    span = max_blanks - min_blanks + 1
    for i in range(n):
        yield make_sudoku_puzzle(rng, min_blanks + (i * 7) % span)


def sudoku_cell_word(cell: int, value: int) -> str:
    """``r<row>c<col>=<digit>`` (1-based), ``.`` for a blank: one tokenizer word per cell."""
    row, col = divmod(cell, 9)
    return f"r{row + 1}c{col + 1}={value if value else BLANK}"


def sudoku_prompt(puzzle: Sequence[int]) -> str:
    return " ".join(sudoku_cell_word(cell, v) for cell, v in enumerate(puzzle)) + " ="


def sudoku_answer(solution: Sequence[int]) -> str:
    return " ".join(str(v) for v in solution)


# -------------------------------------------------------------------------------------------- addition
@dataclass(frozen=True)
class AdditionProblem:
    a: int
    b: int
    width: int = ADD_WIDTH

    @property
    def total(self) -> int:
        return self.a + self.b

    @property
    def carry_chain(self) -> int:
        return carry_chain_length(self.a, self.b)


def carry_chain_length(a: int, b: int) -> int:
    """Longest run of consecutive digit positions that a carry travels through: a carry created at
    one position and propagated by following positions whose digits sum to 9 counts them all."""
    longest = run = 0
    carry = 0
    while a or b or carry:
        s = a % 10 + b % 10 + carry
        carry = 1 if s >= 10 else 0
        run = run + 1 if carry else 0
        longest = max(longest, run)
        a, b = a // 10, b // 10
    return longest


def make_addition(rng: random.Random, width: int = ADD_WIDTH, min_chain: int = 0) -> AdditionProblem:
    """Operands of up to ``width`` digits. With ``min_chain`` > 0 a carry chain of at least that
    length is planted: a generating position (digit sum ≥ 10) followed by propagating ones (sum 9)."""
    if not 0 <= min_chain <= width:
        raise ValueError(f"min_chain must be in 0..{width}, got {min_chain}")
    a_digits = [rng.randrange(10) for _ in range(width)]  # least significant first
    b_digits = [rng.randrange(10) for _ in range(width)]
    if min_chain:
        start = rng.randrange(width - min_chain + 1)
        a_digits[start] = rng.randrange(1, 10)
        b_digits[start] = rng.randrange(10 - a_digits[start], 10)
        for i in range(start + 1, start + min_chain):
            a_digits[i] = rng.randrange(10)
            b_digits[i] = 9 - a_digits[i]
    a = int("".join(map(str, reversed(a_digits))))
    b = int("".join(map(str, reversed(b_digits))))
    return AdditionProblem(a, b, width)


def addition_test_set(seed: int, n: int, width: int = ADD_WIDTH) -> Iterator[AdditionProblem]:
    """``n`` problems; every other one has a planted carry chain of length 4..width, so long chains
    are as common as uniform draws (uniform draws rarely have chains longer than 3)."""
    rng = random.Random(seed)
    for i in range(n):
        yield make_addition(rng, width, 0 if i % 2 == 0 else 4 + (i // 2) % (width - 3))


def addition_prompt(a: int, b: int, width: int = ADD_WIDTH) -> str:
    if not (0 <= a < 10**width and 0 <= b < 10**width):
        raise ValueError(f"operands must have at most {width} digits")
    return " ".join(f"{a:0{width}d}") + " + " + " ".join(f"{b:0{width}d}") + " ="


def addition_answer(total: int, width: int = ADD_WIDTH) -> str:
    return " ".join(f"{total:0{width + 1}d}")
