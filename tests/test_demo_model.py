"""The shipped demo model loads through the real LLaDA loading path and shows why order matters."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

MODEL_DIR = Path(__file__).resolve().parents[1] / "lm_eval_infogain" / "demo" / "model"


@pytest.fixture(scope="module")
def adapter():
    from lm_eval_infogain.models.loader import load_mdm

    torch.set_num_threads(1)
    return load_mdm(str(MODEL_DIR))


def test_checkpoint_is_a_small_llada_folder():
    config = json.loads((MODEL_DIR / "config.json").read_text())
    assert config["model_type"] == "llada" and config["architectures"] == ["LLaDAModelLM"]
    assert config["rope"] is True and config["mask_token_id"] == 19
    tok_config = json.loads((MODEL_DIR / "tokenizer_config.json").read_text())
    assert "mask_token" not in tok_config  # as in real LLaDA: found by string, not registered
    total = sum(p.stat().st_size for p in MODEL_DIR.iterdir())
    assert total < 10 * 2**20
    assert config["vocab_size"] == 830  # 20 symbols and specials + 810 Sudoku cell words


def test_loader_finds_llada_specials(adapter):
    tok = adapter.tokenizer
    assert tok.mask_token_id is None
    assert adapter.mask_id == tok.convert_tokens_to_ids("<|mdm_mask|>") == 19
    assert adapter.pad_id == tok.eos_token_id == tok.convert_tokens_to_ids("<|endoftext|>")
    assert tok.convert_tokens_to_ids("<|eot_id|>") in adapter.eos_ids


def _solve(adapter, sampler: str, n: int) -> list[bool]:
    from lm_eval_infogain.demo import datasets as ds
    from lm_eval_infogain.demo.scoring import sudoku_correct
    from lm_eval_infogain.sampling import DecodingConfig, generate

    rows = ds.read_jsonl(ds.SUDOKU_FILE, n)
    tok = adapter.tokenizer
    prompts = [[tok.bos_token_id, *tok(r["prompt"], add_special_tokens=False)["input_ids"]] for r in rows]
    config = DecodingConfig(sampler=sampler, gen_length=81, block_size=81, seed=0)
    out = generate(adapter, prompts, config)
    assert all(len(t) == 81 for t in out.tokens)
    return [sudoku_correct(tok.decode(t, skip_special_tokens=True), r["puzzle"]) for t, r in zip(out.tokens, rows)]


def test_confidence_order_solves_sudoku_and_random_order_does_not(adapter):
    confident = _solve(adapter, "confidence", 10)
    random_order = _solve(adapter, "random", 10)
    # measured on these 10: 6 vs 0 (on the first 100, the demo task: see results/leaderboard.md)
    assert sum(confident) >= 5
    assert sum(random_order) <= 1
    assert sum(confident) - sum(random_order) >= 4


def test_addition_is_mostly_right_with_confidence_order(adapter):
    from lm_eval_infogain.demo import datasets as ds
    from lm_eval_infogain.demo.scoring import addition_correct
    from lm_eval_infogain.sampling import DecodingConfig, generate

    rows = ds.read_jsonl(ds.ADDITION_FILE, 40)
    tok = adapter.tokenizer
    prompts = [[tok.bos_token_id, *tok(r["prompt"], add_special_tokens=False)["input_ids"]] for r in rows]
    out = generate(adapter, prompts, DecodingConfig(sampler="confidence", gen_length=9, block_size=9))
    ok = [addition_correct(tok.decode(t, skip_special_tokens=True), r["sum"]) for t, r in zip(out.tokens, rows)]
    assert sum(ok) >= 35  # measured 37 of these 40 (94.6% of all 500, results/leaderboard.md)


def test_shipped_tokenizer_is_what_the_builder_writes(tmp_path):
    from lm_eval_infogain.demo.tokenizer import save_tokenizer

    save_tokenizer(tmp_path)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        assert json.loads((tmp_path / name).read_text()) == json.loads((MODEL_DIR / name).read_text())


def test_training_recipe_is_seeded_and_round_trips_through_the_loader(tmp_path):
    from lm_eval_infogain.demo.tokenizer import save_tokenizer
    from lm_eval_infogain.demo.training import TrainConfig, model_config, train
    from lm_eval_infogain.models.llada import save_llada_checkpoint
    from lm_eval_infogain.models.loader import load_mdm

    cfg = TrainConfig(steps=4, batch_size=4, pool_size=3, d_model=32, n_heads=2, n_layers=1, mlp_hidden_size=64)
    model, log = train(cfg, log=lambda _: None, log_every=1)
    again, _ = train(cfg, log=lambda _: None, log_every=1)
    assert len(log["history"]) == 4
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    first = log["history"][0]
    assert 5.5 < first["loss_sudoku"] < 7.5  # about log(830) at a small random init
    save_llada_checkpoint(model, model_config(cfg), tmp_path)
    save_tokenizer(tmp_path)
    adapter = load_mdm(str(tmp_path))
    ids = torch.tensor([[14, 5, 3, 12, 11, 19, 19, 19]])
    with torch.no_grad():
        assert torch.allclose(adapter.logits(ids), model(ids), atol=1e-5)


RESULTS = Path(__file__).resolve().parents[1] / "results"


def _leaderboard_sudoku() -> dict[str, float]:
    import csv

    rows = csv.DictReader((RESULTS / "leaderboard.csv").read_text().splitlines())
    return {row["sampler"]: float(row["infogain_demo_sudoku"]) for row in rows}


def test_committed_leaderboard_shows_random_order_30_points_below_confidence():
    sudoku = _leaderboard_sudoku()
    assert sudoku["confidence"] - sudoku["random"] >= 30


@pytest.mark.slow
def test_readme_main_command_runs_offline_and_prints_the_table(tmp_path):
    """`lm_eval --model infogain_mdm --tasks infogain_demo_sudoku`, nothing else, with the hub
    unreachable: it must finish, print lm-eval's table and score what the committed leaderboard
    records for the default sampler (info_gain) on the same 100 puzzles."""
    import re
    import shutil
    import subprocess

    exe = shutil.which("lm_eval")
    if exe is None:
        pytest.skip("the lm_eval console script is not installed")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    done = subprocess.run([exe, "--model", "infogain_mdm", "--tasks", "infogain_demo_sudoku"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    row = next(line for line in done.stdout.splitlines() if line.startswith("|infogain_demo_sudoku"))
    accuracy = float(re.search(r"accuracy\|↑\s*\|\s*([0-9.]+)", row).group(1))
    assert accuracy == pytest.approx(_leaderboard_sudoku()["info_gain"] / 100, abs=1e-6)
