"""HumanEval-Infilling through lm-eval itself: a model answering each infilling request with the document's
canonical middle passes every problem, a model answering garbage passes none, pass@k counts repeats, and
a backend that cannot infill (lm-eval's own ``--model hf``) fails loudly instead of scoring."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from lm_eval_infogain import infill_protocol as ip
from lm_eval_infogain.scoring import data, infilling

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TASK_DIR = Path(__file__).resolve().parents[1] / "task_configs"
SUBSETS = {"single_line": 1033, "multi_line": 5815, "random_span": 1640, "random_span_light": 164}
TASKS = [f"infogain_humaneval_infilling_{s}" for s in SUBSETS]

needs_data = pytest.mark.skipif(not (SHARED_DATA / "humaneval_infilling").is_dir(),
                                reason="../shared/data/humaneval_infilling (the official files) is not next to the checkout")


def _manager():
    from lm_eval.tasks import TaskManager

    return TaskManager(include_defaults=False, include_path=str(TASK_DIR))


def _evaluate(monkeypatch, tasks, answer, limit=None, seen=None):
    """simple_evaluate with a model that decodes every request with the protocol and answers ``answer(request,
    doc, n)`` (n = how many times this document was asked before)."""
    from lm_eval import simple_evaluate
    from lm_eval.api.model import LM

    monkeypatch.setenv(data.ENV_VAR, str(SHARED_DATA))
    monkeypatch.setenv("LM_EVAL_INFOGAIN_EXEC_WORKERS", "2")
    asked: Counter = Counter()

    class InfillingOracle(LM):
        def generate_until(self, requests, disable_tqdm: bool = False):
            out = []
            for req in requests:
                context, gen_kwargs = req.args
                request = ip.decode_request(context, gen_kwargs)
                assert request is not None, "every request of an infilling task is an infilling request"
                key = (req.task_name, req.doc_id)
                out.append(answer(request, req.doc, asked[key]))
                asked[key] += 1
                if seen is not None:
                    seen.append((req.task_name, gen_kwargs, request))
            return out

        def loglikelihood(self, requests, disable_tqdm: bool = False):
            raise NotImplementedError

        def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
            raise NotImplementedError

    return simple_evaluate(model=InfillingOracle(), tasks=tasks, task_manager=_manager(), bootstrap_iters=0,
                           limit=limit, confirm_run_unsafe_code=True, log_samples=True)


def test_group_and_tasks_are_indexed():
    names = set(_manager().all_tasks)
    assert {"infogain_infilling", *TASKS, *(t + "_pass10" for t in TASKS)} <= names


@needs_data
def test_every_subset_builds_from_the_official_files(monkeypatch):
    monkeypatch.setenv(data.ENV_VAR, str(SHARED_DATA))
    tasks = _manager().load(["infogain_infilling"])["tasks"]
    sizes = {name: len(list(task.test_docs())) for name, task in tasks.items()}
    assert sizes == {f"infogain_humaneval_infilling_{s}": n for s, n in SUBSETS.items()}
    task = tasks["infogain_humaneval_infilling_single_line"]
    doc = next(iter(task.test_docs()))
    assert doc["task_id"] == "SingleLineInfilling/HumanEval/0/L0"
    request = ip.decode_request(task.doc_to_text(doc), task.config.generation_kwargs)
    assert (request.prefix, request.suffix, request.middle) == (doc["prompt"], doc["suffix"], doc["canonical_solution"])
    assert task.config.generation_kwargs == {"infill": True, "until": [], "do_sample": False}


def _oracle(request, doc, n):
    return request.middle


@needs_data
def test_canonical_middles_pass_every_light_problem_and_a_slice_of_each_big_subset(monkeypatch):
    seen: list = []
    full = _evaluate(monkeypatch, ["infogain_humaneval_infilling_random_span_light"], _oracle, seen=seen)
    res = full["results"]["infogain_humaneval_infilling_random_span_light"]
    assert res["pass@1,execute"] == 1.0 and len(full["samples"]["infogain_humaneval_infilling_random_span_light"]) == 164
    big = _evaluate(monkeypatch, TASKS[:3], _oracle, limit=40, seen=seen)
    for task in TASKS[:3]:
        assert big["results"][task]["pass@1,execute"] == 1.0, task
        assert len(big["samples"][task]) == 40
    sample = big["samples"]["infogain_humaneval_infilling_single_line"][0]
    verdict = sample["filtered_resps"][0][0]  # one instance; its 1 sample
    assert verdict["passed"] and verdict["program"].startswith(sample["doc"]["prompt"] + sample["doc"]["canonical_solution"])
    assert {task for task, _, _ in seen} == set(TASKS)
    assert all(kwargs.get("infill") is True and request.length is None for _, kwargs, request in seen)


@needs_data
def test_garbage_gaps_pass_nothing(monkeypatch):
    out = _evaluate(monkeypatch, TASKS, lambda request, doc, n: "\n)))( not python at all", limit=15)
    assert {task: out["results"][task]["pass@1,execute"] for task in TASKS} == dict.fromkeys(TASKS, 0.0)


@needs_data
def test_pass_at_k_counts_every_repeat(monkeypatch):
    """3 of 10 samples right per problem: unbiased pass@1 = 0.3 exactly, pass@10 = 1."""
    task = "infogain_humaneval_infilling_random_span_light_pass10"
    out = _evaluate(monkeypatch, [task], lambda request, doc, n: request.middle if n < 3 else "\n)))(", limit=4)
    assert out["results"][task]["pass@1,execute"] == pytest.approx(0.3)
    assert out["results"][task]["pass@10,execute"] == 1.0
    assert all(len(s["filtered_resps"][0]) == 10 for s in out["samples"][task])


def test_program_is_prefix_gap_suffix_then_tests():
    doc = {"prompt": "def f(x):\n", "suffix": "\n", "test": "def check(c):\n    assert c(2) == 3\n", "entry_point": "f"}
    built = infilling.program(doc, "    return x + 1")
    assert built.solution == "def f(x):\n    return x + 1\n"  # the model's part ...
    assert built.tests == "def check(c):\n    assert c(2) == 3\n\ncheck(f)\n"  # ... and the trusted stage
    # an unterminated string in the gap cannot swallow the tests: the solution stage fails to compile
    verdicts = infilling.execute([["    return x + 1", "    return x", '    return x + 1  # """'
                                   '\n    """']], [doc])
    assert [v["passed"] for v in verdicts[0]] == [True, False, False]
    assert verdicts[0][0]["program"] == built.source


def test_missing_local_file_and_hub_failure_name_the_variable(monkeypatch, tmp_path):
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path))
    with pytest.raises(data.DataUnavailableError, match=data.ENV_VAR):
        data.load_humaneval_infilling("single_line", version=1.0)
    monkeypatch.delenv(data.ENV_VAR)

    def offline(*args, **kwargs):
        raise ConnectionError("hub unreachable")

    monkeypatch.setattr(data, "_hub_load", offline)
    with pytest.raises(data.DataUnavailableError, match=data.ENV_VAR):
        data.load_humaneval_infilling("multi_line")
    with pytest.raises(ValueError, match="random_span_light"):
        data.load_humaneval_infilling("middle_line")


@needs_data
def test_hf_backend_refuses_infilling_requests_loudly(monkeypatch, tmp_path):
    """lm-eval's ``--model hf`` passes unknown gen_kwargs to transformers' generate, which rejects ``infill``:
    the run stops with an error naming the key instead of scoring prompts it cannot read."""
    import torch
    from lm_eval import simple_evaluate
    from transformers import GPT2Config, GPT2LMHeadModel

    from harness_helpers import VOCAB, WORDS, word_tokenizer

    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(WORDS), n_embd=16, n_layer=1, n_head=2, n_positions=2048,
                        bos_token_id=VOCAB["[CLS]"], eos_token_id=VOCAB["[EOS]"], pad_token_id=VOCAB["[PAD]"])
    GPT2LMHeadModel(config).save_pretrained(tmp_path / "gpt2")
    word_tokenizer(chat_template=None).save_pretrained(tmp_path / "gpt2")
    monkeypatch.setenv(data.ENV_VAR, str(SHARED_DATA))
    with pytest.raises(ValueError, match=r"not used by the model: \['infill'\]"):
        simple_evaluate(model="hf", model_args=f"pretrained={tmp_path / 'gpt2'},device=cpu",
                        tasks=["infogain_humaneval_infilling_random_span_light"], task_manager=_manager(), limit=2,
                        bootstrap_iters=0, confirm_run_unsafe_code=True)
