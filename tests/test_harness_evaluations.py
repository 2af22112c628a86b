"""What lm-eval does around the model: seeds, one evaluation after another, ``--use_cache``, per-task
settings, lm-eval's own model arguments. Through ``simple_evaluate`` on the scripted chain model (fast)."""

from __future__ import annotations

import json
import logging

import pytest
import torch

from harness_helpers import evaluate, install_scripted, write_task
from lm_eval_infogain.harness.lm import InfoGainLM

torch.set_num_threads(1)

DETERMINISTIC = ("cumulative_entropy_mean", "model_calls_mean", "rows_forwarded_mean", "tokens_forwarded_mean",
                 "generated_tokens")


@pytest.fixture
def scripted(monkeypatch):
    return install_scripted(monkeypatch)


@pytest.fixture
def tasks(tmp_path):
    folder = write_task(tmp_path / "tasks")
    write_task(folder, "harness_short", until=[], max_gen_toks=3, extra="")
    return folder


def _answers(results, task="harness_chain"):
    return [s["resps"][0][0] for s in sorted(results["samples"][task], key=lambda s: s["doc_id"])]


def _info(results):
    return results["config"]["infogain"]


# ---------------------------------------------------------------- item 2: lm-eval's --seed decides decoding
def test_lm_eval_torch_seed_is_the_decoding_seed(scripted, tasks):
    run = lambda seed, args="pretrained=m,sampler=random": evaluate(  # noqa: E731
        "infogain_mdm", tasks, model_args=args, torch_random_seed=seed)
    one, two, one_again = run(1), run(2), run(1)
    assert _answers(one) == _answers(one_again)
    assert _answers(one) != _answers(two)  # random order: another seed, other answers
    assert _info(one)["seed"] == {"value": 1, "source": "lm_eval"} and _info(one)["decoding"]["seed"] == 1
    assert _info(two)["task_decoding"]["harness_chain"]["seed"] == 2


def test_seed_in_model_args_wins_and_no_lm_eval_seed_means_the_default(scripted, tasks):
    fixed = [evaluate("infogain_mdm", tasks, model_args="pretrained=m,sampler=random,seed=7", torch_random_seed=s)
             for s in (1, 2)]
    assert _answers(fixed[0]) == _answers(fixed[1])
    assert _info(fixed[0])["seed"] == {"value": 7, "source": "model_args"}
    unseeded = evaluate("infogain_mdm", tasks, model_args="pretrained=m,sampler=random", torch_random_seed=None)
    assert _info(unseeded)["seed"] == {"value": 1234, "source": "default"}
    default = evaluate("infogain_mdm", tasks, model_args="pretrained=m,sampler=random")  # lm-eval's default 1234
    assert _info(default)["seed"] == {"value": 1234, "source": "lm_eval"}
    assert _answers(default) == _answers(unseeded)


# ---------------------------------------------------------------- item 4: statistics are per evaluation
def test_a_reused_model_reports_only_the_current_evaluations_samples(scripted, tasks):
    lm = InfoGainLM(pretrained="m", sampler="confidence")
    first = evaluate(lm, tasks, tasks=("harness_chain",), limit=2)
    second = evaluate(lm, tasks, tasks=("harness_short",), limit=3)
    assert _info(first)["totals"]["samples"] == 2 and list(_info(first)["per_task"]) == ["harness_chain"]
    assert _info(second)["totals"]["samples"] == 3 and list(_info(second)["per_task"]) == ["harness_short"]
    assert list(_info(second)["task_decoding"]) == ["harness_short"]


def test_direct_calls_without_lm_eval_start_fresh_after_a_report(scripted, tasks):
    """Without lm-eval's evaluate (no hook call), a report still closes the evaluation."""
    from lm_eval.api.instance import Instance

    lm = InfoGainLM(pretrained="m", sampler="confidence")
    request = lambda doc: Instance("generate_until", {}, ("question : a", {"until": ["."], "max_gen_toks": 4}),  # noqa: E731
                                   doc, ("t", doc, 1))
    lm.generate_until([request(0)])
    assert lm.get_model_info()["infogain"]["totals"]["samples"] == 1
    lm.generate_until([request(0), request(1)])
    assert lm.get_model_info()["infogain"]["totals"]["samples"] == 2


# ---------------------------------------------------------------- item 3: statistics under --use_cache
def test_fully_cached_rerun_reports_the_same_statistics(scripted, tasks, tmp_path):
    cache = str(tmp_path / "cache" / "run")
    first = evaluate("infogain_mdm", tasks, model_args="pretrained=m,sampler=confidence", use_cache=cache)
    computed = scripted["prompts"]
    second = evaluate("infogain_mdm", tasks, model_args="pretrained=m,sampler=confidence", use_cache=cache)
    assert scripted["prompts"] == computed == 6  # the rerun decoded nothing
    assert _answers(first) == _answers(second)
    a, b = _info(first)["totals"], _info(second)["totals"]
    assert b["samples"] == 6 and b["from_cache"] == 6 and b["statistics_missing"] == 0
    for key in (*DETERMINISTIC, "wall_time_s", "tokens_per_second"):
        assert b[key] == pytest.approx(a[key]) and b[key] is not None
    assert _info(second)["cache"] == {"answers_from_cache": 6, "statistics_restored": 6, "statistics_missing": 0,
                                      "other_settings": 0}
    assert _info(second)["task_decoding"] == _info(first)["task_decoding"]  # known without decoding anything
    assert (tmp_path / "cache" / "run_rank0.infogain_stats.db").is_file()


def test_resumed_run_reports_what_an_uninterrupted_run_reports(scripted, tasks, tmp_path):
    whole = evaluate("infogain_mdm", tasks, model_args="pretrained=m,sampler=confidence")
    cache = str(tmp_path / "cache" / "run")
    evaluate("infogain_mdm", tasks, model_args="pretrained=m,sampler=confidence", use_cache=cache, limit=3)
    resumed = evaluate("infogain_mdm", tasks, model_args="pretrained=m,sampler=confidence", use_cache=cache)
    assert _answers(resumed) == _answers(whole)
    assert _info(resumed)["totals"]["from_cache"] == 3
    for key in DETERMINISTIC:
        assert _info(resumed)["totals"][key] == pytest.approx(_info(whole)["totals"][key])


def test_a_cache_made_with_other_settings_is_detected_and_warned(scripted, tasks, tmp_path, caplog):
    cache = str(tmp_path / "cache" / "run")
    evaluate("infogain_mdm", tasks, model_args="pretrained=m,sampler=confidence", use_cache=cache)
    with caplog.at_level(logging.WARNING, logger="lm_eval_infogain"):
        reused = evaluate("infogain_mdm", tasks, model_args="pretrained=m,sampler=random", use_cache=cache)
    warning = next(r.getMessage() for r in caplog.records if "other decoding settings" in r.getMessage())
    assert "6 cached answers" in warning and "sampler: 'confidence' (cached) / 'random' (now)" in warning
    assert _info(reused)["cache"]["other_settings"] == 6


def test_cached_answers_without_statistics_are_missing_not_zero(scripted, tasks, tmp_path):
    from lm_eval.loggers import EvaluationTracker

    from lm_eval_infogain.leaderboard.cli import write_leaderboard

    cache = str(tmp_path / "cache" / "run")
    evaluate("infogain_mdm", tasks, model_args="pretrained=m,sampler=confidence", use_cache=cache)
    (tmp_path / "cache" / "run_rank0.infogain_stats.db").unlink()  # a cache written without statistics
    tracker = EvaluationTracker(output_path=str(tmp_path / "out"))
    results = evaluate("infogain_mdm", tasks, model_args="pretrained=m,sampler=confidence", use_cache=cache,
                       evaluation_tracker=tracker)
    totals = _info(results)["totals"]
    assert totals["samples"] == 6 and totals["statistics_missing"] == 6
    assert all(totals[key] is None for key in (*DETERMINISTIC, "wall_time_s", "tokens_per_second"))
    results.pop("samples")
    tracker.save_results_aggregated(results=results, samples=None)
    lines = (tmp_path / "out" / "m").glob("infogain_samples_*.jsonl")
    records = [json.loads(line) for line in next(lines).read_text().splitlines()]
    assert {r["stats_source"] for r in records} == {"missing"} and records[0]["cumulative_entropy"] is None
    table = write_leaderboard([tmp_path / "out"], tmp_path / "board")["leaderboard.md"].read_text()
    header = next(line for line in table.splitlines() if line.startswith("| Model"))
    row = next(line for line in table.splitlines() if line.startswith("| m "))
    cells = dict(zip([c.strip() for c in header.split("|")], [c.strip() for c in row.split("|")]))
    assert cells["H̃"] == "–" and cells["Tok/s"] == "–" and cells["Calls"] == "–"


# ---------------------------------------------------------------- item 5: per-task settings in the results
def test_results_record_the_settings_each_task_was_decoded_with(scripted, tasks, tmp_path):
    from lm_eval.loggers import EvaluationTracker

    from lm_eval_infogain.leaderboard.cli import write_leaderboard

    tracker = EvaluationTracker(output_path=str(tmp_path / "out"))
    results = evaluate("infogain_mdm", tasks, tasks=("harness_chain", "harness_short"),
                       model_args="pretrained=m,sampler=confidence", evaluation_tracker=tracker)
    info = _info(results)
    assert info["decoding"]["gen_length"] == 256  # model_args: the defaults
    assert info["task_decoding"]["harness_chain"]["gen_length"] == 6
    assert info["task_decoding"]["harness_short"]["gen_length"] == 3
    assert info["task_decoding"]["harness_short"]["block_size"] == 3
    results.pop("samples")
    tracker.save_results_aggregated(results=results, samples=None)
    table = write_leaderboard([tmp_path / "out"], tmp_path / "board")["leaderboard.md"].read_text()
    common = next(line for line in table.splitlines() if line.startswith("Common settings"))
    assert "L = 6 (harness_chain), 3 (harness_short)" in common and "256" not in common
    assert "block = 6 (harness_chain), 3 (harness_short)" in common


def test_gen_kwargs_on_the_command_line_reach_the_recorded_settings(scripted, tasks):
    results = evaluate("infogain_mdm", tasks, tasks=("harness_chain", "harness_short"),
                       model_args="pretrained=m,sampler=confidence", gen_kwargs="max_gen_toks=4")
    info = _info(results)
    assert {t: d["gen_length"] for t, d in info["task_decoding"].items()} == {"harness_chain": 4, "harness_short": 4}
    assert info["totals"]["generated_tokens"] == 4 * 12


# ---------------------------------------------------------------- items 7 and 9: lm-eval's own model arguments
def test_model_args_lm_eval_also_passes_are_merged_and_model_args_win(scripted, tasks, caplog):
    with caplog.at_level(logging.INFO, logger="lm_eval_infogain"):
        results = evaluate("infogain_mdm", tasks, model_args="pretrained=m,sampler=confidence,batch_size=4,device=cpu",
                           batch_size=2, device="cuda:0", limit=2)
    info = _info(results)
    assert info["batch_size"] == "4" and info["device"] == "cpu"
    messages = [r.getMessage() for r in caplog.records]
    assert "batch_size given twice: --model_args batch_size=4 wins over lm-eval's --batch_size 2" in messages
    assert "device given twice: --model_args device=cpu wins over lm-eval's --device cuda:0" in messages
    assert not any("CUDA is not available" in m for m in messages)


def test_create_from_arg_string_merges_instead_of_raising(scripted):
    lm = InfoGainLM.create_from_arg_string("pretrained=m,batch_size=auto:2,max_batch_size=8",
                                           {"batch_size": "16", "max_batch_size": None, "device": "cpu"})
    assert str(lm.options.batch_size) == "auto:2" and lm.options.max_batch_size == 8
    assert lm.device == torch.device("cpu")


def test_sandbox_isolation_report_goes_into_the_results(scripted, tasks, monkeypatch):
    """Where generated programs ran in this process, the executor's isolation report is recorded;
    the executor module is never imported just to ask."""
    import sys
    from types import SimpleNamespace

    monkeypatch.delitem(sys.modules, "lm_eval_infogain.scoring.executor", raising=False)
    plain = evaluate("infogain_mdm", tasks, model_args="pretrained=m,sampler=confidence", limit=1)
    assert _info(plain)["sandbox"] is None and "lm_eval_infogain.scoring.executor" not in sys.modules
    report = {"level": "namespaces", "network": False}
    monkeypatch.setitem(sys.modules, "lm_eval_infogain.scoring.executor", SimpleNamespace(isolation_report=lambda: report))
    ran = evaluate("infogain_mdm", tasks, model_args="pretrained=m,sampler=confidence", limit=1)
    assert _info(ran)["sandbox"] == report
