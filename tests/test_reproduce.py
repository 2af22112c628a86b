"""``lm-eval-infogain reproduce``: exact command lines, grid sizes, and the run → leaderboard path."""

from __future__ import annotations

import shlex
import stat
import sys
from pathlib import Path

from lm_eval_infogain.reproduce import EXPERIMENTS, Grid, build_jobs, main

RUNS = Path(__file__).resolve().parent / "data" / "leaderboard" / "runs"


def test_dry_run_prints_the_exact_paper_commands(capsys, tmp_path):
    code = main(["main", "--dry-run", "--output-root", "out", "--models", "dream,trado", "--tasks", "infogain_humaneval",
                 "--samplers", "info_gain", "--k", "2", "--seeds", "7", "--limit", "5"])
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "lm_eval --model infogain_mdm --model_args pretrained=Dream-org/Dream-v0-Instruct-7B,sampler=info_gain,"
        "gen_length=512,steps=256,block_size=32,temperature=0.0,candidate_number=8,position_temperature=0.2,"
        "threshold=0.8,seed=7 --tasks infogain_humaneval --apply_chat_template --output_path "
        "out/main/dream/infogain_humaneval/info_gain_K2_seed7 --confirm_run_unsafe_code --limit 5",
        "lm_eval --model infogain_mdm --model_args pretrained=Gen-Verse/TraDo-8B-Instruct,sampler=info_gain,"
        "gen_length=512,steps=256,block_size=16,temperature=0.7,candidate_number=8,position_temperature=0.2,"
        "threshold=0.8,seed=7 --tasks infogain_humaneval --apply_chat_template --output_path "
        "out/main/trado/infogain_humaneval/info_gain_K2_seed7 --confirm_run_unsafe_code --limit 5",
    ]
    assert not (tmp_path / "out").exists()


def test_gsm8k_length_greedy_baselines_run_once_and_extra_args_are_quoted(capsys):
    assert main(["main", "--dry-run", "--models", "llada", "--tasks", "infogain_gsm8k", "--samplers", "confidence,eb",
                 "--extra", "--batch_size 4 --gen_kwargs 'a=1'"]) == 0
    lines = capsys.readouterr().out.splitlines()
    # confidence at temperature 0 is deterministic: one seed, K = 1 and 2; eb ignores K: one run.
    assert len(lines) == 3
    argv = [shlex.split(line) for line in lines]
    assert argv[0][argv[0].index("--model_args") + 1].split(",")[2:4] == ["gen_length=256", "steps=256"]
    assert argv[1][argv[1].index("--model_args") + 1].split(",")[3] == "steps=128"
    assert "sampler=eb" in argv[2][4] and argv[2][-4:] == ["--batch_size", "4", "--gen_kwargs", "a=1"]
    assert all("--confirm_run_unsafe_code" not in a for a in argv)


def test_presets_cover_the_paper_grid():
    main_jobs = build_jobs("main")
    assert {j.model.key for j in main_jobs} == {"llada", "dream", "sdar", "trado"}
    assert {j.task for j in main_jobs} == {"infogain_gsm8k", "infogain_math500", "infogain_humaneval", "infogain_mbpp"}
    assert {j.k for j in main_jobs} == {1, 2}
    assert {"confidence", "info_gain", "lookum", "eb", "pc"} <= {j.sampler for j in main_jobs}
    # SDAR/TraDo sample at T = 0.7, so even the confidence baseline is repeated over seeds.
    sdar_conf = [j for j in main_jobs if j.model.key == "sdar" and j.sampler == "confidence" and j.k == 1 and j.task == "infogain_gsm8k"]
    assert sorted(j.seed for j in sdar_conf) == [0, 1, 2]
    beam = build_jobs("beam", Grid(models=("llada",), tasks=("infogain_gsm8k",)))
    assert sorted(dict(j.extra_args)["beam_size"] for j in beam if j.seed == 0) == [1, 2, 4]
    writing = build_jobs("writing")
    assert all(j.log_samples for j in writing) and {j.sampler for j in writing} == {"confidence", "info_gain"}
    assert set(EXPERIMENTS) == {"main", "writing", "entropy", "beam"}


def test_list_and_bad_input(capsys):
    assert main(["--list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in EXPERIMENTS)
    assert main(["nope"]) == 2
    assert main(["main", "--dry-run", "--models", "gpt"]) == 2
    assert "unknown gpt" in capsys.readouterr().err


def test_runs_commands_then_builds_the_leaderboard(tmp_path, capsys):
    """A stand-in lm_eval that writes a real results file into --output_path: the runner runs each
    printed command and then the leaderboard sees every output."""
    src = next((RUNS / "llada_confidence_k1").rglob("results_*.json"))
    fake = tmp_path / "fake_lm_eval"
    fake.write_text(
        f"#!{sys.executable}\n"
        "import shutil, sys, pathlib\n"
        "out = pathlib.Path(sys.argv[sys.argv.index('--output_path') + 1]) / 'm'\n"
        "out.mkdir(parents=True)\n"
        f"shutil.copy({str(src)!r}, out / 'results_2026-01-01T00-00-00.000000.json')\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    root = tmp_path / "runs"
    code = main(["beam", "--output-root", str(root), "--models", "llada", "--tasks", "infogain_gsm8k", "--seeds", "0",
                 "--lm-eval-bin", str(fake)])
    assert code == 0
    out = capsys.readouterr().out
    assert out.count(str(fake)) == 3
    assert len(list((root / "beam").rglob("results_*.json"))) == 3
    assert (root / "beam" / "leaderboard" / "leaderboard.md").is_file()
    # A second pass with --skip-existing runs nothing.
    assert main(["beam", "--output-root", str(root), "--models", "llada", "--tasks", "infogain_gsm8k", "--seeds", "0",
                 "--lm-eval-bin", str(fake), "--skip-existing"]) == 0
    assert capsys.readouterr().out.count("# skip (has results)") == 3


def test_a_failing_run_stops_the_grid(tmp_path, capsys):
    fake = tmp_path / "fail"
    fake.write_text(f"#!{sys.executable}\nimport sys\nsys.exit(3)\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    assert main(["beam", "--output-root", str(tmp_path), "--models", "llada", "--tasks", "infogain_gsm8k",
                 "--seeds", "0", "--lm-eval-bin", str(fake)]) == 1
    assert capsys.readouterr().out.count(str(fake)) == 1
