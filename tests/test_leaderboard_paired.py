"""Paired comparison inside the leaderboard, and one-step rows.

Expected numbers are recomputed here straight from the per-sample files (lm-eval's
``samples_<task>_<ts>.jsonl``), never from the leaderboard's code: on the committed fixture runs
(tests/data/leaderboard/runs, written by lm-eval's own evaluator), on constructed runs with
answers worked out by hand, and on real AntiBERTy runs of the CDR-H3 task (one-step baseline included).
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import statistics
from pathlib import Path

import pytest

from lm_eval_infogain.leaderboard import paired
from lm_eval_infogain.leaderboard.cli import leaderboard_main
from test_leaderboard import parse_markdown_table

RUNS = Path(__file__).resolve().parent / "data" / "leaderboard" / "runs"
LLADA = "GSAI-ML/LLaDA-8B-Instruct"


def _doc_scores(folder: Path, task: str, metric: str, filter_name: str) -> dict[int, float]:
    (path,) = folder.rglob(f"samples_{task}_*.jsonl")
    lines = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    return {r["doc_id"]: float(r[metric]) for r in lines if r["filter"] == filter_name}


def _csv_rows(board: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO((board / "leaderboard.csv").read_text())))


@pytest.fixture(scope="module")
def fixture_board(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("paired_board")
    assert leaderboard_main([str(RUNS), "-o", str(out)]) == 0
    return out


# ---------------------------------------------------------------- fixture runs written by lm-eval
@pytest.mark.parametrize("task,metric,filter_name", [("fx_gsm", "exact_match", "flexible-extract"),
                                                      ("fx_sudoku", "exact_match", "none")])
def test_three_seeds_against_confidence_recomputed_from_the_samples_files(fixture_board, task, metric, filter_name):
    """info_gain K=1 has three seeds: each document's score is its mean over them, paired with confidence."""
    seeds = [_doc_scores(RUNS / f"llada_info_gain_k1_seed{s}", task, metric, filter_name) for s in (0, 1, 2)]
    base = _doc_scores(RUNS / "llada_confidence_k1", task, metric, filter_name)
    docs = sorted(base)
    assert all(sorted(s) == docs for s in seeds) and len(docs) == 20
    a = [statistics.fmean(s[d] for s in seeds) for d in docs]
    b = [base[d] for d in docs]
    delta = statistics.fmean(a) - statistics.fmean(b)
    low, high = paired.paired_bootstrap(a, b)  # the documented defaults: 10,000 resamples, seed 0, 95 %
    wtl = (sum(x > y for x, y in zip(a, b)), sum(x == y for x, y in zip(a, b)), sum(x < y for x, y in zip(a, b)))

    rows = {(r["Model"], r["Sampler"], r["K"]): r for r in parse_markdown_table((fixture_board / "leaderboard.md").read_text())}
    ig = rows[(LLADA, "info_gain", "1")]
    assert ig[f"{task} paired Δ [95% CI]"] == f"{delta * 100:+.1f} [{low * 100:+.1f}, {high * 100:+.1f}]"
    assert ig[f"{task} W/T/L"] == "/".join(map(str, wtl))
    assert rows[(LLADA, "confidence", "1")][f"{task} W/T/L"] == "ref"
    line = next(r for r in _csv_rows(fixture_board) if r["sampler"] == "info_gain" and r["K"] == "1")
    assert float(line[f"{task}_paired_delta"]) == pytest.approx(delta * 100, abs=1e-9)
    assert (float(line[f"{task}_paired_ci_low"]), float(line[f"{task}_paired_ci_high"])) == (
        pytest.approx(low * 100, abs=1e-9), pytest.approx(high * 100, abs=1e-9))
    assert (line[f"{task}_paired_wins"], line[f"{task}_paired_ties"], line[f"{task}_paired_losses"]) == tuple(map(str, wtl))
    assert (line[f"{task}_paired_documents"], line[f"{task}_paired_runs"], line[f"{task}_paired_note"]) == ("20", "3/1", "")
    # every seed scored every document, so the paired Δ is the difference of the displayed means
    assert float(line[f"{task}_paired_delta"]) == pytest.approx(float(line[f"{task}_delta"]), abs=1e-9)


def test_rows_without_samples_files_show_a_dash_and_the_csv_says_why(fixture_board):
    text = (fixture_board / "leaderboard.md").read_text()
    rows = {(r["Model"], r["Sampler"], r["K"]): r for r in parse_markdown_table(text)}
    rnd = rows[(LLADA, "random", "1")]  # run without --log_samples
    assert rnd["Δ vs confidence"] != "–" and rnd["fx_sudoku paired Δ [95% CI]"] == rnd["fx_sudoku W/T/L"] == "–"
    assert rows[(LLADA, "info_gain", "2")]["fx_gsm paired Δ [95% CI]"] == "–"
    assert rows[("EleutherAI/pythia-160m", "–", "–")]["fx_gsm W/T/L"] == "–"  # no reference row at all
    assert "lacks per-sample files" in text and "--log_samples" in text
    lines = {(r["model"], r["sampler"], r["K"]): r for r in _csv_rows(fixture_board)}
    assert lines[(LLADA, "random", "1")]["fx_sudoku_paired_note"] == "no --log_samples file for 1 of the row's runs"
    assert lines[(LLADA, "random", "1")]["fx_sudoku_paired_delta"] == ""
    assert lines[(LLADA, "random", "1")]["fx_gsm_paired_note"] == ""  # the row has no fx_gsm at all
    assert lines[(LLADA, "info_gain", "2")]["fx_gsm_paired_note"] == (
        "no --log_samples file for 1 of the row's runs; no --log_samples file for 1 of the reference's runs")
    assert lines[("EleutherAI/pythia-160m", "", "")]["fx_gsm_paired_note"] == "no reference row"
    assert lines[(LLADA, "confidence", "1")]["fx_gsm_paired_note"] == "reference row"
    page = (fixture_board / "leaderboard.html").read_text()
    assert "paired Δ [95% CI]" in page and "W/T/L" in page


def test_no_paired_flag_and_boards_without_any_samples(tmp_path):
    assert leaderboard_main([str(RUNS), "-o", str(tmp_path / "off"), "--no-paired"]) == 0
    text = (tmp_path / "off" / "leaderboard.md").read_text()
    assert "paired" not in text.lower() and "W/T/L" not in text
    assert not any("paired" in h for h in _csv_rows(tmp_path / "off")[0])
    # runs that all lack per-sample files: no columns of dashes, one legend line that says so
    assert leaderboard_main([str(RUNS / "llada_info_gain_k2"), str(RUNS / "llada_confidence_k2"), "-o", str(tmp_path / "none")]) == 0
    text = (tmp_path / "none" / "leaderboard.md").read_text()
    assert "W/T/L" not in text and "Paired comparison: not shown" in text and "--log_samples" in text


# ---------------------------------------------------------------- constructed runs with known answers
TASK = "toy"
_STAMPS = iter(f"2026-01-01T00-00-{i:02d}.000000" for i in range(100))


def write_run(root: Path, name: str, sampler: str, scores: list[float] | None, *, seed: int = 0, steps: int | None = None,
              block_size: int = 8, calls: float | None = 8.0, hashes: dict[int, str] | None = None) -> Path:
    """One run in lm-eval's layout: results (schema-2 infogain block) plus, unless ``scores`` is None, a
    samples file with those per-document accuracies. gen_length 8; ``calls``: model calls per sample."""
    stamp = next(_STAMPS)
    folder = root / name / "m"
    folder.mkdir(parents=True)
    values = scores if scores is not None else [1.0, 0.0]
    mean = statistics.fmean(values)
    decoding = {"sampler": sampler, "gen_length": 8, "steps": steps, "block_size": block_size, "tokens_per_step": None,
                "temperature": 0.0, "cache": "none", "eos_penalty": 4.0, "eos_fill": True, "seed": seed}
    stats = {"samples": len(values), "cumulative_entropy_mean": 1.0, "model_calls_mean": calls,
             "rows_forwarded_mean": calls, "tokens_forwarded_mean": None, "generated_tokens": 8.0 * len(values),
             "wall_time_s": 1.0}
    results = {
        "results": {TASK: {"alias": TASK, "acc,none": mean, "acc_stderr,none": 0.1}},
        "versions": {TASK: 1}, "higher_is_better": {TASK: {"acc": True}},
        "n-samples": {TASK: {"original": len(values), "effective": len(values)}},
        "config": {"model": "infogain_mdm", "model_args": f"pretrained=m,sampler={sampler},seed={seed}", "limit": None,
                   "infogain": {"schema": 2, "model_name": "m", "sampler": sampler, "decoding": decoding,
                                "seed": {"value": seed, "source": "model_args"}, "task_decoding": {TASK: decoding},
                                "per_task": {TASK: stats}, "totals": stats}},
    }  # fmt: skip
    (folder / f"results_{stamp}.json").write_text(json.dumps(results))
    if scores is not None:
        records = [{"doc_id": d, "filter": "none", "metrics": ["acc"], "doc_hash": (hashes or {}).get(d, f"h{d}"), "acc": s}
                   for d, s in enumerate(scores)]
        (folder / f"samples_{TASK}_{stamp}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return folder


def _board(runs: Path, out: Path, *extra: str) -> tuple[dict, dict, str]:
    assert leaderboard_main([str(runs), "-o", str(out), *extra]) == 0
    text = (out / "leaderboard.md").read_text()
    md = {r["Sampler"] + "|" + r.get("K", ""): r for r in parse_markdown_table(text)}
    rows = {r["sampler"] + "|" + r["K"] + "|" + r["one_step"]: r for r in _csv_rows(out)}
    return md, rows, text


def test_two_seeds_are_averaged_per_document_before_pairing(tmp_path):
    runs = tmp_path / "runs"
    write_run(runs, "conf", "confidence", [0, 0, 1, 1])
    write_run(runs, "rnd0", "random", [1, 0, 1, 0], seed=0)
    write_run(runs, "rnd1", "random", [1, 1, 1, 0], seed=1)
    # document means of random: 1, .5, 1, 0 against 0, 0, 1, 1: two wins, one tie, one loss, Δ = (2.5 - 2) / 4
    md, rows, _ = _board(runs, tmp_path / "board")
    line = rows["random|1|False"]  # K is 1 everywhere: the Markdown has no K column
    assert float(line["toy_paired_delta"]) == pytest.approx(12.5)
    assert (line["toy_paired_wins"], line["toy_paired_ties"], line["toy_paired_losses"]) == ("2", "1", "1")
    assert (line["toy_paired_documents"], line["toy_paired_runs"]) == ("4", "2/1")
    low, high = paired.paired_bootstrap([1, 0.5, 1, 0], [0, 0, 1, 1])
    assert (float(line["toy_paired_ci_low"]), float(line["toy_paired_ci_high"])) == (pytest.approx(low * 100), pytest.approx(high * 100))
    assert md["random|"]["paired Δ [95% CI]"] == f"+12.5 [{low * 100:+.1f}, {high * 100:+.1f}]"  # one task: no task prefix
    assert md["random|"]["W/T/L"] == "2/1/1" and md["confidence|"]["W/T/L"] == "ref"


def test_pooled_scores_are_checked_and_documents_one_seed_lacks_use_the_others():
    def recs(scores, hashes=None):
        return [{"doc_id": d, "filter": "none", "metrics": ["acc"], "doc_hash": (hashes or {}).get(d, f"h{d}"), "acc": s}
                for d, s in enumerate(scores) if s is not None]

    pooled = paired.pooled_document_scores([recs([1, 0, None]), recs([0, 0, 1])], "acc", "none")
    assert pooled == {0: (0.5, "h0"), 1: (0.0, "h1"), 2: (1.0, "h2")}
    with pytest.raises(paired.PairingError, match="two runs of the same setting"):
        paired.pooled_document_scores([recs([1, 0]), recs([1, 0], {1: "other"})], "acc", "none")
    result = paired.compare_pooled([recs([1, 0]), recs([1, 1])], [recs([0, 1])], task="toy")
    assert (result.delta, result.wins, result.ties, result.losses, result.runs_a, result.runs_b) == (0.25, 1, 0, 1, 2, 1)
    assert "per-document means over 2 (A) and 1 (B) runs" in result.describe()
    with pytest.raises(paired.PairingError, match="at least one run"):
        paired.compare_pooled([], [recs([1])])


def test_one_step_row_is_labelled_and_compared_with_the_full_budget_row(tmp_path):
    runs = tmp_path / "runs"
    write_run(runs, "conf_k1", "confidence", [1, 1, 0, 1, 0])                       # K = 8 / 8 = 1
    write_run(runs, "conf_k2", "confidence", [1, 0, 0, 0, 0], steps=4, calls=4.0)   # K = 2
    write_run(runs, "one", "confidence", [0, 1, 0, 0, 0], steps=1, block_size=64, calls=1.0)
    write_run(runs, "rnd", "random", [0, 1, 0, 1, 0])
    md, rows, text = _board(runs, tmp_path / "board")
    one = md["one-step (confidence)|8"]
    assert one["Δ vs confidence"] == "-40.0"  # against K=1 (the smallest K), not K=2
    low, high = paired.paired_bootstrap([0, 1, 0, 0, 0], [1, 1, 0, 1, 0])
    assert one["paired Δ [95% CI]"] == f"-40.0 [{low * 100:+.1f}, {high * 100:+.1f}]" and one["W/T/L"] == "0/3/2"
    assert rows["confidence|8|True"]["reference"].startswith("m confidence K=1 ")
    assert md["random|1"]["Δ vs confidence"] == "-20.0" and md["confidence|2"]["W/T/L"] == "–"
    assert md["confidence|1"]["W/T/L"] == "ref" and rows["confidence|2|False"]["toy_paired_note"] == "no reference row"
    assert "one-step: every sample was decoded in a single forward" in text
    page = (tmp_path / "board" / "leaderboard.html").read_text()
    assert ">one-step (confidence)<" in page


def test_one_step_from_the_settings_when_statistics_are_missing_and_when_every_row_is_one_step(tmp_path):
    runs = tmp_path / "runs"
    write_run(runs, "conf", "confidence", [1, 0], calls=None)
    write_run(runs, "one", "confidence", [0, 0], steps=1, calls=None)  # K = 8 over one block of 8
    md, _, _ = _board(runs, tmp_path / "board")
    assert md["one-step (confidence)|8"]["Δ vs confidence"] == "-50.0"
    # a board where every sample takes one forward (e.g. one-token answers): the plain rule stays
    runs = tmp_path / "all"
    write_run(runs, "conf", "confidence", [1, 0], calls=1.0)
    write_run(runs, "rnd", "random", [0, 0], calls=1.0)
    md, _, _ = _board(runs, tmp_path / "board2")
    assert md["one-step (random)|"]["Δ vs confidence"] == "-50.0"
    assert md["one-step (confidence)|"]["W/T/L"] == "ref"


def test_runs_over_different_documents_leave_a_note_not_a_number(tmp_path, capsys):
    runs = tmp_path / "runs"
    write_run(runs, "conf", "confidence", [1, 0, 1])
    write_run(runs, "rnd", "random", [1, 1, 1], hashes={1: "another document"})
    md, rows, _ = _board(runs, tmp_path / "board")
    assert md["random|"]["paired Δ [95% CI]"] == "–" and md["random|"]["Δ vs confidence"] == "+33.3"
    assert "doc_hash differs" in rows["random|1|False"]["toy_paired_note"]
    assert "no paired comparison for" in capsys.readouterr().err


def test_paired_subcommand_of_the_console_script(tmp_path, capsys):
    from lm_eval_infogain.cli import main

    a = write_run(tmp_path, "a", "confidence", [1, 1, 0])
    b = write_run(tmp_path, "b", "random", [0, 1, 0])
    assert main(["paired", str(a), str(b), "--json"]) == 0
    (result,) = json.loads(capsys.readouterr().out)
    assert (result["task"], result["delta"], result["wins"], result["ties"], result["losses"]) == (TASK, pytest.approx(1 / 3), 1, 2, 0)
    assert main(["paired", str(a), str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err.startswith("lm-eval-infogain paired: ")
    assert main(["--help"]) == 0 and "paired" in capsys.readouterr().out


# ---------------------------------------------------------------- real AntiBERTy runs, one-step baseline included
@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("antiberty") is None,
                    reason="the protein extra is not installed (pip install '.[protein]')")
def test_real_antiberty_runs_one_step_baseline_and_paired_delta(tmp_path, monkeypatch):
    from lm_eval_infogain.harness.plugin import task_dir
    from test_leaderboard_real import run_lm_eval

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("LM_EVAL_INFOGAIN_DATA", raising=False)  # the heavy chains ship with the package
    task, limit = "infogain_antibody_cdrh3", 6
    for name, args in (("confidence", "sampler=confidence"), ("one_step", "sampler=confidence,steps=1,block_size=1024")):
        run_lm_eval(tmp_path / "runs" / name, f"pretrained=antiberty,{args},batch_size={limit}", task, str(task_dir()), limit)
    md, rows, text = _board(tmp_path / "runs", tmp_path / "board")
    conf, one = md["confidence|1"], md["one-step (confidence)|256"]  # K = ceil(256 / 1 step), the whole gap at once
    assert one["Calls"] == "1.0" and float(conf["Calls"]) > 5  # a CDR-H3 loop is longer than 5 residues
    assert one["block"] == "1024" and conf["block"] == "32"
    a = _doc_scores(tmp_path / "runs" / "one_step", task, "recovery", "none")
    b = _doc_scores(tmp_path / "runs" / "confidence", task, "recovery", "none")
    assert sorted(a) == sorted(b) == list(range(limit))
    delta = statistics.fmean(a.values()) - statistics.fmean(b.values())
    low, high = paired.paired_bootstrap([a[d] for d in range(limit)], [b[d] for d in range(limit)])
    assert one["paired Δ [95% CI]"] == f"{delta * 100:+.1f} [{low * 100:+.1f}, {high * 100:+.1f}]"
    assert float(rows["confidence|256|True"]["infogain_antibody_cdrh3_paired_delta"]) == pytest.approx(delta * 100)
    assert conf["W/T/L"] == "ref" and "Main metric per task — `infogain_antibody_cdrh3`: recovery (%)" in text


# ---------------------------------------------------------------- the committed AntiBERTy leaderboard
ANTIBODY = Path(__file__).resolve().parents[1] / "results" / "antibody"


def test_committed_antibody_leaderboard_rebuilds_from_its_committed_runs(tmp_path, monkeypatch):
    """results/antibody/leaderboard.md is what `leaderboard` makes of results/antibody/runs (the slim copies
    scripts/make_antibody_leaderboard.py keeps): every sampler, the one-step row, a paired Δ for each."""
    from lm_eval_infogain.sampling.config import SAMPLER_NAMES

    committed = (ANTIBODY / "leaderboard.md").read_text()
    title = committed.splitlines()[0].removeprefix("## ")
    monkeypatch.chdir(ANTIBODY.parents[1])
    assert leaderboard_main([str(ANTIBODY / "runs"), "-o", str(tmp_path), "--title", title]) == 0
    assert (tmp_path / "leaderboard.md").read_text() == committed
    rows = parse_markdown_table(committed)
    assert sorted(r["Sampler"] for r in rows) == sorted([*SAMPLER_NAMES, "one-step (confidence)"])
    assert all(r["W/T/L"] != "–" for r in rows)
    assert all(r["paired Δ [95% CI]"] == "ref" for r in rows if r["Sampler"] == "confidence")
    runtimes = json.loads((ANTIBODY / "runtimes.json").read_text())
    assert runtimes["limit"] >= 100 and len(runtimes["runs"]) == len(rows)
    checkout = str(ANTIBODY.parents[1])
    for path in ANTIBODY.rglob("*"):
        if path.suffix in (".md", ".csv", ".json", ".jsonl", ".html"):
            assert checkout not in path.read_text(), f"{path} records a machine path"
