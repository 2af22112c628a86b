"""The ``infogain_mdm`` lm-eval model on a scripted tiny MDM: arguments, batching, stops, chat,
cache resume, statistics. Fast: no hub, no full task index (``TaskManager(include_defaults=False)``)."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from lm_eval.api.instance import Instance

from harness_helpers import install_scripted, restore_cli_side_effects, write_task
from lm_eval_infogain.harness.lm import InfoGainLM
from lm_eval_infogain.harness.options import ModelArgsError
from lm_eval_infogain.sampling.config import DecodingConfigError

torch.set_num_threads(1)


@pytest.fixture
def scripted(monkeypatch):
    """``load_mdm`` returns the scripted chain model; counts loads and engine calls."""
    return install_scripted(monkeypatch)


def _requests(contexts, gen_kwargs, task="t"):
    return [
        Instance("generate_until", {}, (context, dict(gen_kwargs)), i, (task, i, 1)) for i, context in enumerate(contexts)
    ]


GREEDY = {"until": ["."], "max_gen_toks": 6, "do_sample": False}


# ---------------------------------------------------------------- arguments
def test_unknown_model_arg_is_rejected_with_the_valid_names(scripted):
    with pytest.raises(ModelArgsError) as err:
        InfoGainLM(pretrained="m", samplr="confidence")
    message = str(err.value)
    assert "samplr" in message and "sampler" in message and "candidate_number" in message and "mc_num" in message
    assert scripted["loads"] == 0


@pytest.mark.parametrize(
    "bad, error",
    [
        ({"sampler": "nope"}, DecodingConfigError),
        ({"candidate_number": 0}, DecodingConfigError),
        ({"threshold": 1.5}, DecodingConfigError),
        ({"batch_size": "auto:0"}, ModelArgsError),
        ({"batch_size": "many"}, ModelArgsError),
        ({"dtype": "int8"}, ModelArgsError),
        ({"mc_num": 0}, ModelArgsError),
        ({"trust_remote_code": "maybe"}, ModelArgsError),
    ],
)
def test_bad_values_fail_before_the_model_loads(scripted, bad, error):
    with pytest.raises(error):
        InfoGainLM(pretrained="m", **bad)
    assert scripted["loads"] == 0


def test_cli_style_strings_are_typed(scripted):
    lm = InfoGainLM(pretrained="m", sampler="margin", batch_size="4", threshold="0.9", device="cuda:0")
    assert lm.config.sampler == "margin" and lm.config.threshold == 0.9
    assert lm.options.batch_size.value == 4
    assert lm.device.type == ("cuda" if torch.cuda.is_available() else "cpu")


# ---------------------------------------------------------------- generation
def test_outputs_cut_at_stop_strings_and_eos_in_original_order(scripted):
    lm = InfoGainLM(pretrained="m", sampler="confidence", batch_size=2)
    contexts = ["question : a", "question : x", "0 1", "q"]
    out = lm.generate_until(_requests(contexts, GREEDY))
    # chain: a->b->c->d->EOS (EOS cut), x->y->"." (stop string), digits cycle, q->w->e->r->t->a
    assert out == ["b c d", "y", "2 3 0 1 2 3", "w e r t a b"]
    assert scripted["generate"] == 2  # 4 prompts, batch size 2, one gen_kwargs group


def test_batching_does_not_change_results_and_groups_by_gen_kwargs(scripted):
    contexts = ["question : a", "question : x", "0 1", "q", "z", "1"]
    short = {"until": [], "max_gen_toks": 2, "do_sample": False}
    requests = _requests(contexts, GREEDY) + _requests(contexts, short)
    one = InfoGainLM(pretrained="m", sampler="confidence", batch_size=1).generate_until(requests)
    calls_one = scripted["generate"]
    many = InfoGainLM(pretrained="m", sampler="confidence", batch_size=8).generate_until(requests)
    assert one == many
    assert calls_one == 12 and scripted["generate"] - calls_one == 2  # one call per gen_kwargs group
    assert many[6:] == ["b c", "y.", "2 3", "w e", "q w", "2 3"]  # max_gen_toks=2 became the canvas


def test_gen_length_in_model_args_wins_over_max_gen_toks(scripted):
    lm = InfoGainLM(pretrained="m", sampler="confidence", gen_length=3)
    assert lm.generate_until(_requests(["q"], GREEDY)) == ["w e r"]


def test_prompts_too_long_are_left_truncated_with_a_warning(scripted, caplog):
    lm = InfoGainLM(pretrained="m", sampler="confidence", max_length=10)
    context = " ".join(["z"] * 12) + " : x"  # [CLS] + 14 tokens; 6 generated -> keep 4
    with caplog.at_level(logging.WARNING):
        out = lm.generate_until(_requests([context], GREEDY))
    assert out == ["y"]
    assert any("dropped its first 11 tokens" in record.getMessage() for record in caplog.records)


def test_sampling_repeats_get_distinct_keys_and_padding_is_not_counted(scripted):
    from lm_eval_infogain.harness.requests import RepeatTracker, request_key

    req = _requests(["q"], {"until": [], "max_gen_toks": 2, "do_sample": True, "temperature": 1.0})[0]
    req.repeats = 3
    tracker = RepeatTracker([req, req, req, req])  # the 4th copy is data-parallel padding
    assert tracker.repeat == [0, 1, 2, 3] and tracker.padding == [False, False, False, True]
    keys = {request_key(*req.args, r) for r in range(3)}
    assert len(keys) == 3
    lm = InfoGainLM(pretrained="m", sampler="confidence")
    lm.generate_until([req, req, req, req])
    assert [r["repeat"] for r in lm.stats.records] == [0, 1, 2]


def test_auto_batch_size_halves_on_out_of_memory():
    from lm_eval_infogain.harness.batching import AdaptiveBatcher
    from lm_eval_infogain.harness.options import BatchSize

    def fn(batch):
        if len(batch) > 3:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return [x * 10 for x in batch]

    batcher = AdaptiveBatcher(BatchSize.parse("auto"), max_batch_size=16, total=10)
    assert batcher.run(list(range(10)), fn) == [x * 10 for x in range(10)]
    assert batcher.history == [2, 2, 2, 2, 2]
    with pytest.raises(RuntimeError):  # a fixed batch size does not hide errors
        AdaptiveBatcher(BatchSize.parse(8), max_batch_size=16, total=10).run(list(range(10)), fn)


# ---------------------------------------------------------------- through lm-eval
def _evaluate(lm_or_name, tmp_path, **kwargs):
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    tasks = write_task(tmp_path / "tasks", extra=kwargs.pop("task_extra", ""))
    manager = TaskManager(include_defaults=False, include_path=str(tasks))
    return simple_evaluate(model=lm_or_name, tasks=["harness_chain"], task_manager=manager, bootstrap_iters=0,
                           log_samples=True, **kwargs)


def test_statistics_in_results_json(scripted, tmp_path):
    stats_file = tmp_path / "stats" / "samples.jsonl"
    results = _evaluate("infogain_mdm", tmp_path,
                        model_args=f"pretrained=m,sampler=confidence,stats_path={stats_file}", limit=4)
    info = results["config"]["infogain"]
    assert list(info) == ["schema", "pretrained", "model_name", "sampler", "decoding", "seed", "device", "dtype",
                          "world_size", "batch_size", "max_batch_size", "threads", "sandbox", "versions",
                          "task_decoding", "cache", "peak_memory_bytes", "totals", "per_task"]
    assert info["schema"] == 2 and info["sampler"] == "confidence" and info["world_size"] == 1
    assert info["model_name"] == "m" and info["batch_size"] == "1" and info["cache"] is None
    assert info["threads"]["source"] == "torch.set_num_threads" and info["threads"]["intra_op"] == 1
    assert info["decoding"]["sampler"] == "confidence" and set(info["versions"]) == {
        "lm_eval_infogain", "lm_eval", "torch", "transformers"}
    assert info["totals"]["samples"] == 4 and list(info["per_task"]) == ["harness_chain"]
    assert info["totals"]["generated_tokens"] == 24 and info["totals"]["model_calls_mean"] > 0
    lines = [json.loads(line) for line in stats_file.read_text().splitlines()]
    assert len(lines) == 4 and sorted(line["doc_id"] for line in lines) == [0, 1, 2, 3]
    assert set(lines[0]) == {"task", "doc_id", "repeat", "request_key", "cumulative_entropy", "model_calls",
                             "rows_forwarded", "tokens_forwarded", "generated_tokens", "steps", "wall_time_s",
                             "stats_source"}
    assert {line["stats_source"] for line in lines} == {"computed"}
    json.dumps(results["config"], default=str)  # serialisable like lm-eval writes it


def test_statistics_jsonl_beside_lm_eval_results(scripted, tmp_path):
    import lm_eval_infogain
    from lm_eval.loggers import EvaluationTracker

    lm_eval_infogain.register()
    tracker = EvaluationTracker(output_path=str(tmp_path / "out"))
    results = _evaluate("infogain_mdm", tmp_path, model_args="pretrained=some/model,sampler=confidence", limit=3,
                        evaluation_tracker=tracker)
    samples = results.pop("samples")
    tracker.save_results_aggregated(results=results, samples=samples)
    folder = tmp_path / "out" / "some__model"
    result_files, stats_files = list(folder.glob("results_*.json")), list(folder.glob("infogain_samples_*.jsonl"))
    assert len(result_files) == 1 and len(stats_files) == 1
    assert stats_files[0].name.removeprefix("infogain_samples_").removesuffix(".jsonl") == \
        result_files[0].name.removeprefix("results_").removesuffix(".json")
    assert len(stats_files[0].read_text().splitlines()) == 3


def test_use_cache_resume_computes_nothing_the_second_time(scripted, tmp_path):
    cache = str(tmp_path / "cache" / "run")
    first = _evaluate("infogain_mdm", tmp_path, model_args="pretrained=m,sampler=confidence", use_cache=cache)
    calls = scripted["prompts"]
    assert calls == 6
    second = _evaluate("infogain_mdm", tmp_path, model_args="pretrained=m,sampler=confidence", use_cache=cache)
    assert scripted["prompts"] == calls  # every answer came from the cache
    resps = lambda r: [s["resps"] for s in r["samples"]["harness_chain"]]  # noqa: E731
    assert resps(first) == resps(second)
    assert first["results"]["harness_chain"] == second["results"]["harness_chain"]


def test_chat_template_system_instruction_and_multiturn_fewshot(scripted, tmp_path):
    lm = InfoGainLM(pretrained="m", sampler="confidence")
    results = _evaluate(lm, tmp_path, limit=2, apply_chat_template=True, system_instruction="answer",
                        fewshot_as_multiturn=True, num_fewshot=1, task_extra="fewshot_split: test\n")
    sample = results["samples"]["harness_chain"][0]
    prompt = sample["arguments"][0][0]
    assert prompt.startswith("< system > answer < user > question :")
    assert prompt.count("< user >") == 2 and prompt.count("< assistant >") == 2  # shot + question
    assert prompt.endswith("< assistant > ")
    assert lm.chat_template(True) == lm.tokenizer.chat_template and lm.chat_template(False) is None
    assert sample["resps"][0][0] == "a b c d"  # the prompt ends in ">", whose successor is "a"


def test_loglikelihood_requests_use_the_elbo(scripted):
    lm = InfoGainLM(pretrained="m", sampler="confidence", mc_num=4)
    requests = [Instance("loglikelihood", {}, ("question : a", " b"), 0, ("t", 0, 1)),
                Instance("loglikelihood", {}, ("question : a", " x"), 1, ("t", 0, 1))]
    (good, good_greedy), (bad, bad_greedy) = lm.loglikelihood(requests)
    assert good_greedy and not bad_greedy and good > -1e-3 and bad < -20
    with pytest.raises(NotImplementedError, match="ELBO"):
        lm.loglikelihood_rolling(requests)


@pytest.fixture
def cli_side_effects(monkeypatch):
    yield from restore_cli_side_effects(monkeypatch)


def test_lm_eval_infogain_eval_runs_lm_evals_cli_with_the_plugin(scripted, tmp_path, monkeypatch, cli_side_effects):
    """The fallback for environments that skip ``.pth`` files: same arguments as ``lm_eval``."""
    from lm_eval_infogain.cli import main

    monkeypatch.setenv("LM_EVAL_INFOGAIN_DISABLE", "1")  # only the explicit registration may work here
    tasks = write_task(tmp_path / "tasks")
    code = main(["eval", "--model", "infogain_mdm", "--model_args", "pretrained=m,sampler=confidence",
                 "--tasks", "harness_chain", "--include_path", str(tasks), "--limit", "2",
                 "--output_path", str(tmp_path / "out"), "--device", "cpu"])
    assert code == 0
    folder = tmp_path / "out" / "m"
    assert len(list(folder.glob("results_*.json"))) == 1
    assert len(next(folder.glob("infogain_samples_*.jsonl")).read_text().splitlines()) == 2
    assert main(["eval", "--model", "infogain_mdm", "--tasks"]) != 0  # argparse errors become exit codes
