"""The demo generators make what they promise, and the committed test sets are what they make."""

from __future__ import annotations

import random

import pytest
import torch

from lm_eval_infogain.demo import datasets as ds
from lm_eval_infogain.demo.puzzles import (
    addition_answer,
    addition_prompt,
    carry_chain_length,
    count_solutions,
    is_valid_solution,
    make_addition,
    make_sudoku_puzzle,
    random_solved_grid,
    sudoku_prompt,
    sudoku_test_set,
    transform_grid,
)
from lm_eval_infogain.demo.scoring import addition_correct, sudoku_correct
from lm_eval_infogain.demo.tokenizer import CELL_BASE, TOKEN_ID, VOCAB
from lm_eval_infogain.demo.training import addition_batch, encode_sudoku_prompt, grid_pool, sudoku_batch


def test_generated_puzzles_are_unique_within_blank_range():
    puzzles = list(sudoku_test_set(seed=7, n=6, min_blanks=40, max_blanks=55))
    assert [p.blanks for p in puzzles] == [40, 47, 54, 45, 52, 43]  # the stratified cycle
    for p in puzzles:
        assert is_valid_solution(p.solution, p.puzzle)
        assert count_solutions(p.puzzle, limit=3) == 1


def test_solution_counter_sees_multiple_and_impossible_grids():
    grid = random_solved_grid(random.Random(0))
    assert count_solutions(grid) == 1
    assert count_solutions([0] * 81, limit=2) == 2
    clash = list(grid)
    clash[1] = clash[0]  # same digit twice in row 0
    assert count_solutions(clash) == 0


def test_transforms_keep_grids_valid_and_make_new_ones():
    rng = random.Random(3)
    grid = random_solved_grid(rng)
    out = [transform_grid(grid, rng) for _ in range(50)]
    assert all(is_valid_solution(g) for g in out)
    assert len({tuple(g) for g in out}) == 50


def test_make_puzzle_rejects_impossible_blank_counts():
    with pytest.raises(ValueError):
        make_sudoku_puzzle(random.Random(0), 70)


def test_carry_chain_length_and_planted_chains():
    assert carry_chain_length(99_999_999, 1) == 8
    assert carry_chain_length(1, 1) == 0
    assert carry_chain_length(5, 5) == 1
    assert carry_chain_length(95, 5) == 2
    rng = random.Random(0)
    for length in range(1, 9):
        p = make_addition(rng, 8, length)
        assert p.carry_chain >= length and p.a < 10**8 and p.b < 10**8
    assert addition_prompt(12, 7) == "0 0 0 0 0 0 1 2 + 0 0 0 0 0 0 0 7 ="
    assert addition_answer(19) == "0 0 0 0 0 0 0 1 9"
    assert sudoku_prompt([5, 0] + [0] * 79).startswith("r1c1=5 r1c2=. r1c3=.")
    assert sudoku_prompt([0] * 80 + [7]).endswith("r9c8=. r9c9=7 =")


def divmod_cells(ids):
    offset = ids - CELL_BASE
    assert bool((offset >= 0).all() and (offset < 810).all())
    return offset // 10, offset % 10


def test_training_batches_are_consistent():
    g = torch.Generator().manual_seed(0)
    prompt, solution = sudoku_batch(grid_pool(3, seed=1), 32, g, min_blanks=20, max_blanks=62)
    # cell words: id = CELL_BASE + 10·cell + clue (0 = blank), then "="
    cell, clue = divmod_cells(prompt[:, :81])
    assert bool((cell == torch.arange(81)).all()) and bool((prompt[:, 81] == TOKEN_ID["="]).all())
    blanks = (clue == 0).sum(1)
    assert prompt.shape == (32, 82) and bool(((blanks >= 20) & (blanks <= 62)).all())
    for p, s in zip(clue.tolist(), solution.tolist()):
        assert is_valid_solution(s, p)
    words = [VOCAB[i] for i in encode_sudoku_prompt(clue[0].tolist())]
    assert " ".join(words) == sudoku_prompt(clue[0].tolist())
    prompt, answer = addition_batch(500, g)
    a = [int("".join(map(str, row[:8]))) for row in prompt.tolist()]
    b = [int("".join(map(str, row[9:17]))) for row in prompt.tolist()]
    c = [int("".join(map(str, row))) for row in answer.tolist()]
    assert all(x + y == z for x, y, z in zip(a, b, c))
    assert max(carry_chain_length(x, y) for x, y in zip(a, b)) == 8  # long chains are planted


def test_committed_sets_equal_the_seeded_generator():
    sudoku = ds.read_jsonl(ds.SUDOKU_FILE)
    addition = ds.read_jsonl(ds.ADDITION_FILE)
    assert len(sudoku) == ds.SUDOKU_COUNT and len(addition) == ds.ADDITION_COUNT
    assert sudoku[:4] == list(ds.sudoku_records(ds.SUDOKU_SEED, 4))
    assert addition[:100] == list(ds.addition_records(ds.ADDITION_SEED, 100))


def test_committed_sudoku_set_is_unique_and_in_range():
    rows = ds.read_jsonl(ds.SUDOKU_FILE)
    assert {r["blanks"] for r in rows} == set(range(40, 56))
    for r in rows:
        puzzle = [int(c) for c in r["puzzle"]]
        assert sum(v == 0 for v in puzzle) == r["blanks"]
        assert count_solutions(puzzle) == 1
        assert sudoku_correct(r["answer"], r["puzzle"])
    long_chains = [r for r in ds.read_jsonl(ds.ADDITION_FILE) if r["carry_chain"] >= 4]
    assert len(long_chains) >= 250


def test_scorers_accept_gold_and_reject_near_misses():
    row = ds.read_jsonl(ds.SUDOKU_FILE, 1)[0]
    assert sudoku_correct(row["answer"], row["puzzle"])
    assert sudoku_correct(row["solution"], row["puzzle"])  # spacing does not matter
    digits = row["answer"].split()
    blank = row["puzzle"].index("0")
    other = next(i for i in range(blank + 1, 81) if i // 9 == blank // 9 and digits[i] != digits[blank])
    swapped = list(digits)
    swapped[blank], swapped[other] = swapped[other], swapped[blank]
    assert not sudoku_correct(" ".join(swapped), row["puzzle"])
    assert not sudoku_correct(" ".join(digits[:80]), row["puzzle"])
    assert addition_correct("1 0 0 0 0 4 4 2 1", 100004421)
    assert addition_correct("0 0 0 0 0 0 0 1 9", 19)
    assert not addition_correct("0 0 0 0 0 0 0 2 9", 19)
    assert not addition_correct("", 0)


def test_cell_words_start_factorised_into_row_column_box_and_value():
    from lm_eval_infogain.demo.training import TrainConfig, init_cell_embeddings_, model_config
    from lm_eval_infogain.models.llada import LLaDAModel

    model = LLaDAModel(model_config(TrainConfig(d_model=32, n_heads=2, n_layers=1, mlp_hidden_size=64)))
    init_cell_embeddings_(model, torch.Generator().manual_seed(0), 0.02)
    emb = model.model.transformer["wte"].weight.detach()

    def word(row, col, value):
        return emb[TOKEN_ID[f"r{row}c{col}={value}"]]

    # moving a clue along its row changes the embedding the same way whatever the clue is
    assert torch.allclose(word(1, 1, 5) - word(1, 2, 5), word(1, 1, ".") - word(1, 2, "."), atol=1e-6)
    # a step between two columns of one box stack is the same in every row (column parts only) ...
    assert torch.allclose(word(1, 1, 7) - word(1, 2, 7), word(4, 1, 7) - word(4, 2, 7), atol=1e-6)
    # ... a step across a box boundary also changes the box part, which depends on the band
    assert ((word(1, 3, 7) - word(1, 4, 7)) - (word(4, 3, 7) - word(4, 4, 7))).abs().max() > 1e-3
    assert 0.01 < float(emb[TOKEN_ID["r1c1=1"] : TOKEN_ID["r9c9=9"] + 1].std()) < 0.03
