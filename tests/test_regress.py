"""``lm-eval-infogain regress``: passes same-quality runs, bites on real drops, names missing inputs."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from lm_eval_infogain.leaderboard.cli import regress_main
from lm_eval_infogain.leaderboard.loading import MetricValue
from lm_eval_infogain.leaderboard.regress import BaselineRun, compare, load_baseline

RUNS = Path(__file__).resolve().parent / "data" / "leaderboard" / "runs"


def _one(subdir: str) -> Path:
    return next((RUNS / subdir).rglob("results_*.json"))


def _copy_with(tmp: Path, src: Path, task: str, key: str, value: float) -> Path:
    """A copy of a results folder where one metric is changed (a 'broken sampler' result)."""
    dst = tmp / "current" / src.parent.name / src.name
    dst.parent.mkdir(parents=True)
    data = json.loads(src.read_text())
    data["results"][task][key] = value
    dst.write_text(json.dumps(data))
    return tmp / "current"


def test_write_baseline_then_same_run_passes(tmp_path, capsys):
    base = tmp_path / "ci_baseline.json"
    assert regress_main(["--write-baseline", "--baseline", str(base), "--current", str(RUNS / "llada_confidence_k1")]) == 0
    data = json.loads(base.read_text())
    assert data["created_by"] == "lm-eval-infogain regress --write-baseline" and data["schema"] == 1
    run = data["runs"][0]
    raw = json.loads(_one("llada_confidence_k1").read_text())["results"]
    assert run["tasks"]["fx_gsm"]["exact_match,strict-match"]["value"] == raw["fx_gsm"]["exact_match,strict-match"]
    assert run["tasks"]["fx_gsm"]["exact_match,strict-match"]["stderr"] == raw["fx_gsm"]["exact_match_stderr,strict-match"]
    assert run["key"]["sampler"] == "confidence" and run["n_samples"] == {"fx_gsm": 20, "fx_sudoku": 20}
    capsys.readouterr()
    assert regress_main(["--baseline", str(base), "--current", str(RUNS / "llada_confidence_k1")]) == 0
    out = capsys.readouterr().out
    assert "ok: 3 metric(s) within tolerance" in out and "DROP" not in out


def test_raw_lm_eval_results_file_is_accepted_as_baseline(tmp_path, capsys):
    assert regress_main(["--baseline", str(_one("llada_confidence_k1")), "--current", str(RUNS / "llada_confidence_k1")]) == 0


def test_a_much_lower_metric_fails_with_a_table(tmp_path, capsys):
    src = _one("llada_confidence_k1")
    current = _copy_with(tmp_path, src, "fx_sudoku", "exact_match,none", 0.15)
    code = regress_main(["--baseline", str(src), "--current", str(current)])
    out = capsys.readouterr().out
    assert code == 1
    assert "REGRESSION: 1 of 3" in out
    drop_line = [ln for ln in out.splitlines() if "DROP" in ln][0]
    assert "fx_sudoku" in drop_line and "0.7000" in drop_line and "0.1500" in drop_line


def test_tolerance_is_k_combined_stderr_with_a_floor(tmp_path, capsys):
    src = _one("llada_confidence_k1")
    raw = json.loads(src.read_text())["results"]["fx_sudoku"]
    se = raw["exact_match_stderr,none"]
    # Drop just below and just above 2 * sqrt(se^2 + se^2) (the copy keeps the same stderr).
    limit = 2 * math.sqrt(2) * se
    inside = _copy_with(tmp_path / "a", src, "fx_sudoku", "exact_match,none", raw["exact_match,none"] - 0.95 * limit)
    outside = _copy_with(tmp_path / "b", src, "fx_sudoku", "exact_match,none", raw["exact_match,none"] - 1.05 * limit)
    assert regress_main(["--baseline", str(src), "--current", str(inside)]) == 0
    assert regress_main(["--baseline", str(src), "--current", str(outside)]) == 1
    assert regress_main(["--baseline", str(src), "--current", str(outside), "--tolerance-sigma", "3"]) == 0
    assert regress_main(["--baseline", str(src), "--current", str(outside), "--tolerance-sigma", "0",
                         "--min-tolerance", "0.5"]) == 0


def test_direction_and_missing_stderr():
    base = [BaselineRun("b", None, "", {"t": {"loss,none": MetricValue(1.0, None), "acc,none": MetricValue(0.5, None)}},
                        {"t": {"loss,none": False, "acc,none": True}})]
    worse = [BaselineRun("c", None, "", {"t": {"loss,none": MetricValue(1.2, None), "acc,none": MetricValue(0.6, None)}})]
    checks = {c.metric: c for c in compare(base, worse)}
    assert checks["loss,none"].failed and checks["loss,none"].drop == pytest.approx(0.2)  # lower is better
    assert not checks["acc,none"].failed and checks["acc,none"].tolerance == 0.0  # no stderr: exact check
    assert not any(c.failed for c in compare(base, worse, min_tolerance=0.25))


def test_multi_run_baseline_pairs_runs_by_settings(tmp_path, capsys):
    base = tmp_path / "all.json"
    assert regress_main(["--write-baseline", "--baseline", str(base), "--current", str(RUNS)]) == 0
    runs = json.loads(base.read_text())["runs"]
    assert len(runs) == 8  # seeds of info_gain K=1 fold into one run
    ig = [r for r in runs if r["key"]["sampler"] == "info_gain" and r["key"]["settings"]["K"] == 1][0]
    vals = [json.loads(_one(f"llada_info_gain_k1_seed{s}").read_text())["results"]["fx_sudoku"]["exact_match,none"] for s in range(3)]
    assert ig["tasks"]["fx_sudoku"]["exact_match,none"]["value"] == pytest.approx(sum(vals) / 3)
    assert regress_main(["--baseline", str(base), "--current", str(RUNS)]) == 0
    # A current folder holding only some of the baseline's runs is an input error, not a pass.
    some = tmp_path / "some"
    shutil.copytree(RUNS / "llada_confidence_k1", some / "a")
    shutil.copytree(RUNS / "llada_random_k1", some / "b")
    capsys.readouterr()
    assert regress_main(["--baseline", str(base), "--current", str(some)]) == 2
    assert "no current run matches baseline run" in capsys.readouterr().err


def test_missing_inputs_exit_2(tmp_path, capsys):
    src = _one("llada_confidence_k1")
    assert regress_main(["--baseline", str(tmp_path / "none.json"), "--current", str(RUNS / "llada_confidence_k1")]) == 2
    assert "baseline file not found" in capsys.readouterr().err
    assert regress_main(["--baseline", str(src), "--current", str(tmp_path / "nothing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    # random was only run on fx_sudoku: the baseline's fx_gsm is missing.
    assert regress_main(["--baseline", str(src), "--current", str(RUNS / "llada_random_k1")]) == 2
    assert "task 'fx_gsm'" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text('{"foo": 1}')
    assert regress_main(["--baseline", str(bad), "--current", str(RUNS / "llada_confidence_k1")]) == 2


def test_flat_baseline_format(tmp_path):
    flat = tmp_path / "flat.json"
    flat.write_text(json.dumps({"tasks": {"fx_sudoku": {"exact_match": {"value": 0.9, "stderr": 0.01}}},
                                "model_args": "x", "created_by": "hand"}))
    runs = load_baseline(flat)
    assert runs[0].tasks["fx_sudoku"]["exact_match,none"] == MetricValue(0.9, 0.01)
    # random order on sudoku (15%) falls far below a 90% baseline.
    assert regress_main(["--baseline", str(flat), "--current", str(RUNS / "llada_random_k1")]) == 1


# ---------------------------------------------------------------- pairing errors and output paths
def _copies(tmp: Path, edit) -> Path:
    """Copies of two fixture runs (confidence, random) with ``edit(config)`` applied to each."""
    for name in ("llada_confidence_k1", "llada_random_k1"):
        shutil.copytree(RUNS / name, tmp / name)
        for file in (tmp / name).rglob("results_*.json"):
            data = json.loads(file.read_text())
            edit(data["config"])
            file.write_text(json.dumps(data))
    return tmp


def test_unmatched_baseline_run_names_the_field_that_differs(tmp_path, capsys):
    base = tmp_path / "baseline.json"
    original = _copies(tmp_path / "a", lambda config: config.update(limit=40.0))
    assert regress_main(["--write-baseline", "--baseline", str(base), "--current", str(original)]) == 0
    same_limit_as_int = _copies(tmp_path / "b", lambda config: config.update(limit=40))
    capsys.readouterr()
    assert regress_main(["--baseline", str(base), "--current", str(same_limit_as_int)]) == 0  # 40 == 40.0
    other_limit = _copies(tmp_path / "c", lambda config: config.update(limit=20))
    capsys.readouterr()
    assert regress_main(["--baseline", str(base), "--current", str(other_limit)]) == 2
    err = capsys.readouterr().err
    assert "no current run matches baseline run" in err
    assert "differs in limit: 40 (baseline) vs 20 (current)" in err


def test_write_baseline_into_a_folder_is_a_one_line_error(tmp_path, capsys):
    folder = tmp_path / "baselines"
    folder.mkdir()
    code = regress_main(["--write-baseline", "--baseline", str(folder), "--current", str(RUNS / "llada_confidence_k1")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith(f"lm-eval-infogain regress: --baseline {folder} is a folder")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert regress_main(["--write-baseline", "--baseline", str(blocker / "b.json"), "--current",
                         str(RUNS / "llada_confidence_k1")]) == 2
    assert f"{blocker} is a file, not a folder" in capsys.readouterr().err


def test_regress_notes_skipped_unreadable_results(tmp_path, capsys):
    shutil.copytree(RUNS / "llada_confidence_k1", tmp_path / "cur")
    (tmp_path / "cur" / "results_2026-01-01T00-00-00.json").write_text("{not json")
    assert regress_main(["--baseline", str(_one("llada_confidence_k1")), "--current", str(tmp_path / "cur")]) == 0
    assert "note: skipped unreadable results file" in capsys.readouterr().err
