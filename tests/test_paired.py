"""Paired comparison from lm-eval per-sample files (lm_eval_infogain/leaderboard/paired.py): Δ, the paired
bootstrap interval and win/tie/loss on constructed data with known answers and on two real runs of the
bundled demo model (``--log_samples``, 20 addition problems, sampler=confidence vs sampler=random)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from lm_eval_infogain.leaderboard import paired

REAL = Path(__file__).resolve().parent / "data" / "paired"


def _records(scores, *, metric="accuracy", filters=("none",), hashes=None, gen_kwargs=None):
    """Records shaped like lm-eval 0.4.13's samples file: one per (document, filter)."""
    out = []
    for doc_id, score in enumerate(scores):
        if score is None:
            continue
        for name in filters:
            out.append({
                "doc_id": doc_id, "doc": {"q": doc_id}, "target": "t",
                "arguments": {"gen_args_0": {"arg_0": f"q{doc_id}", "arg_1": gen_kwargs or {"until": []}}},
                "resps": [["r"]], "filtered_resps": ["r"], "filter": name, "metrics": [metric, "other"],
                "doc_hash": (hashes or {}).get(doc_id, f"h{doc_id}"), "prompt_hash": "p", "target_hash": "t",
                metric: score, "other": 0.5,
            })  # fmt: skip
    return out


def _write(folder: Path, task: str, records) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"samples_{task}_2026-01-01T00-00-00.000000.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_delta_and_win_tie_loss_are_exact():
    result = paired.compare_samples(_records([1, 1, 0, 0, 1, 0.5]), _records([0, 1, 0, 1, 1, 0.25]), task="t")
    assert (result.wins, result.ties, result.losses, result.documents) == (2, 3, 1, 6)
    assert result.delta == pytest.approx((3.5 - 3.25) / 6) and result.mean_a == pytest.approx(3.5 / 6)
    assert result.ci_low <= result.delta <= result.ci_high
    assert (result.metric, result.filter, result.resamples, result.seed) == ("accuracy", "none", 10_000, 0)


def test_constant_difference_has_a_point_interval():
    low, high = paired.paired_bootstrap([0.7, 0.2, 0.9, 0.4], [0.5, 0.0, 0.7, 0.2])
    assert low == pytest.approx(0.2) and high == pytest.approx(0.2)


def test_interval_matches_the_binomial_width_and_is_seeded():
    """400 documents, A wins 100 and ties the rest: Δ = 0.25 with standard error sqrt(.25 * .75 / 400)."""
    a, b = [1.0] * 100 + [0.0] * 300, [0.0] * 400
    low, high = paired.paired_bootstrap(a, b, resamples=20_000, seed=3)
    se = math.sqrt(0.25 * 0.75 / 400)
    assert low == pytest.approx(0.25 - 1.96 * se, abs=0.006) and high == pytest.approx(0.25 + 1.96 * se, abs=0.006)
    assert paired.paired_bootstrap(a, b, resamples=20_000, seed=3) == (low, high)
    scores = [((i * 7919) % 101) / 101 for i in range(50)]  # continuous scores: the seed shows
    assert paired.paired_bootstrap(scores, [0.5] * 50, seed=1) == paired.paired_bootstrap(scores, [0.5] * 50, seed=1)
    assert paired.paired_bootstrap(scores, [0.5] * 50, seed=1) != paired.paired_bootstrap(scores, [0.5] * 50, seed=2)
    wide = paired.paired_bootstrap(a[::4], b[::4], resamples=20_000, seed=3)  # 100 documents: twice as wide
    assert (wide[1] - wide[0]) == pytest.approx(2 * (high - low), rel=0.15)
    assert paired.paired_bootstrap(a, b, confidence=0.5)[1] - paired.paired_bootstrap(a, b, confidence=0.5)[0] < high - low


def test_unmatched_documents_are_counted_not_compared():
    result = paired.compare_samples(_records([1, 0, 1, None]), _records([None, 0, 0, 1]))
    assert (result.documents, result.only_a, result.only_b) == (2, 1, 1)
    assert (result.wins, result.ties, result.losses, result.delta) == (1, 1, 0, 0.5)


def test_a_one_step_baseline_pairs_like_any_other_run(tmp_path):
    """Same documents decoded another way (here: different generation kwargs, as a one-forward run has)."""
    one_step = _records([0, 0, 1, 0], gen_kwargs={"until": [], "tokens_per_step": 9, "block_size": 9})
    _write(tmp_path / "a", "t", _records([1, 0, 1, 1]))
    _write(tmp_path / "one_step", "t", one_step)
    (result,) = paired.compare_runs(tmp_path / "a", tmp_path / "one_step")
    assert (result.task, result.delta, result.wins, result.ties, result.losses) == ("t", 0.5, 2, 2, 0)


def test_main_metric_prefers_flexible_extract_and_overrides_work():
    records = _records([1, 0], metric="exact_match", filters=("strict-match", "flexible-extract"))
    assert paired.main_metric(records) == ("exact_match", "flexible-extract")
    assert paired.main_metric(_records([1], filters=("execute",))) == ("accuracy", "execute")
    result = paired.compare_samples(records, _records([0, 0], metric="exact_match", filters=("strict-match", "flexible-extract")),
                                    metric="other", filter_name="strict-match")
    assert (result.metric, result.filter, result.delta) == ("other", "strict-match", 0.0)


@pytest.mark.parametrize("a,b,message", [
    (_records([1, 0]), _records([1, 0], hashes={1: "different"}), "different documents"),
    (_records([1, None]), _records([None, 1]), "share no doc_id"),
    (_records([1, 0]), _records(["yes", 0]), "not a finite number"),
    (_records([1, 0]), _records([1, 0]) + _records([1]), "appears twice"),
    (_records([1, 0]), _records([1, 0], metric="f1"), "no 'accuracy' score"),
])  # fmt: skip
def test_runs_that_cannot_be_paired_fail_with_a_named_error(a, b, message):
    with pytest.raises(paired.PairingError, match=message):
        paired.compare_samples(a, b)


def test_folder_search_finds_one_file_per_task_and_refuses_ambiguity(tmp_path):
    _write(tmp_path / "run" / "model", "t1", _records([1]))
    _write(tmp_path / "run" / "model", "t2_with_underscores", _records([1]))
    assert sorted(paired.find_samples_files(tmp_path / "run")) == ["t1", "t2_with_underscores"]
    second = tmp_path / "run" / "model" / "samples_t1_2026-02-02T00-00-00.000000.jsonl"
    second.write_text(json.dumps(_records([0])[0]) + "\n")
    with pytest.raises(paired.PairingError, match="2 samples files for t1"):
        paired.find_samples_files(tmp_path / "run")
    assert paired.find_samples_files(second) == {"t1": second}
    (tmp_path / "empty").mkdir()
    with pytest.raises(paired.PairingError, match="--log_samples"):
        paired.find_samples_files(tmp_path / "empty")
    (tmp_path / "bad.jsonl").write_text("{}\n")
    with pytest.raises(paired.PairingError, match="samples file"):
        paired.read_samples(tmp_path / "bad.jsonl")


def test_real_demo_runs_confidence_versus_random(capsys):
    (result,) = paired.compare_runs(REAL / "confidence", REAL / "random")
    assert (result.task, result.metric, result.filter, result.documents) == ("infogain_demo_addition", "accuracy", "none", 20)
    assert (result.mean_a, result.mean_b) == (pytest.approx(0.95), pytest.approx(0.85))
    assert result.delta == pytest.approx(0.10) and (result.wins, result.ties, result.losses) == (2, 18, 0)
    # Δ* = (wins in a resample) / 20 with wins ~ Binomial(20, 0.1): its 2.5 % / 97.5 % quantiles are 0 and 5
    assert (result.ci_low, result.ci_high) == (0.0, pytest.approx(0.25))
    assert paired.main([str(REAL / "confidence"), str(REAL / "random")]) == 0
    line = capsys.readouterr().out
    assert "Δ = +0.1000 [+0.0000, +0.2500]" in line and "win/tie/loss 2/18/0" in line
    assert paired.main([str(REAL / "confidence"), str(REAL / "random"), "--json", "--resamples", "500"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["resamples"] == 500
    assert paired.main([str(REAL / "confidence"), str(REAL / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_samples_files_of_one_results_file_share_its_timestamp(tmp_path):
    stamp = "2026-12-06T02-19-26.154905"
    (tmp_path / f"results_{stamp}.json").write_text("{}")
    mine = _write(tmp_path, "t1", _records([1]))
    mine = mine.rename(tmp_path / f"samples_t1_{stamp}.jsonl")
    (tmp_path / f"samples_t2_{stamp}.jsonl").write_text("")
    _write(tmp_path, "t1", _records([0]))  # another run's file in the same folder
    assert paired.samples_files_for_results(tmp_path / f"results_{stamp}.json") == {
        "t1": mine, "t2": tmp_path / f"samples_t2_{stamp}.jsonl"}
    assert paired.samples_files_for_results(tmp_path / "results_2020-01-01T00-00-00.000000.json") == {}
