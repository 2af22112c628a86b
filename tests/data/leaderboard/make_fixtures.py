"""Regenerate the leaderboard test fixtures through lm-eval's own evaluator and result writer.

Why: the leaderboard parses lm-eval output folders, so its fixtures must be byte-for-byte what
lm-eval writes (keys, nesting, "N/A" stderr, file names). A scripted LM with a fixed, known answer
pattern per (sampler, seed, doc) runs two tiny local tasks through ``simple_evaluate`` and
``EvaluationTracker``; a model that reports decoding statistics adds the ``infogain`` block to
``results["config"]`` via ``get_model_info`` and writes ``infogain_samples_<timestamp>.jsonl``, the
way the plugin's model does. One hand-written pre-0.4.2 style ``results.json`` covers old layouts.

Run from the repository root:  python tests/data/leaderboard/make_fixtures.py
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path

from lm_eval.api.model import LM
from lm_eval.api.registry import register_model
from lm_eval.evaluator import simple_evaluate
from lm_eval.loggers import EvaluationTracker
from lm_eval.tasks import TaskManager

HERE = Path(__file__).resolve().parent
RUNS = HERE / "runs"
N_DOCS = 20

TASK_YAML = {
    "fx_sudoku": """task: fx_sudoku
dataset_path: json
dataset_kwargs:
  data_files: {data}
test_split: train
output_type: generate_until
doc_to_text: "{{{{question}}}}"
doc_to_target: "{{{{answer}}}}"
generation_kwargs:
  until: ["\\n"]
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
""",
    "fx_gsm": """task: fx_gsm
dataset_path: json
dataset_kwargs:
  data_files: {data}
test_split: train
output_type: generate_until
doc_to_text: "{{{{question}}}}"
doc_to_target: "{{{{answer}}}}"
generation_kwargs:
  until: ["\\n\\n"]
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
filter_list:
  - name: strict-match
    filter:
      - function: regex
        regex_pattern: "#### (\\\\-?[0-9]+)"
      - function: take_first
  - name: flexible-extract
    filter:
      - function: regex
        group_select: -1
        regex_pattern: "(-?[0-9]+)"
      - function: take_first
metadata:
  version: 2.0
""",
}

# Fraction of documents each (sampler, K) gets right; seeds perturb which ones.
SKILL = {("confidence", 1): 0.70, ("info_gain", 1): 0.80, ("random", 1): 0.15, ("confidence", 2): 0.55, ("info_gain", 2): 0.70}


def _unit(*parts: object) -> float:
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()
    return int(digest[:8], 16) / 0xFFFFFFFF


class _Scripted(LM):
    """Answers right with a fixed probability per sampler; deterministic per (sampler, seed, doc)."""

    def __init__(self, pretrained: str, sampler: str = "confidence", steps: int = 64, seed: int = 0, **_: object):
        super().__init__()
        self.pretrained, self.sampler, self.steps, self.seed = pretrained, sampler, int(steps), int(seed)
        self.k = 64 // self.steps
        self.records: list[dict] = []

    @classmethod
    def create_from_arg_string(cls, arg_string, additional_config=None):
        from lm_eval.utils import simple_parse_args_string

        return cls(**simple_parse_args_string(arg_string))

    def _answer(self, task: str, doc: dict) -> tuple[str, bool]:
        right = _unit(self.sampler, self.k, self.seed, task, doc["id"]) < SKILL.get((self.sampler, self.k), 0.5)
        value = doc["answer"] if right else str(int(doc["answer"]) + 1)
        # Half the gsm answers miss the "####" marker, so strict-match and flexible-extract differ.
        if task == "fx_gsm" and _unit("fmt", doc["id"]) < 0.5:
            return f"so it is {value}.", right
        return (f"#### {value}" if task == "fx_gsm" else value), right

    def generate_until(self, requests, disable_tqdm: bool = False):
        out = []
        for req in requests:
            text, right = self._answer(req.task_name, req.doc)
            h = 40.0 * (1.3 - (0.5 if right else 0.0)) * (1.0 + 0.2 * _unit("h", self.sampler, req.doc["id"]))
            calls = self.steps * (9 if self.sampler == "info_gain" else 1)
            self.records.append(
                {"task": req.task_name, "doc_id": req.doc_id, "repeat": req.repeats - 1, "request_key": f"{req.task_name}:{req.doc_id}",
                 "cumulative_entropy": round(h, 4), "model_calls": calls, "rows_forwarded": calls * (8 if self.sampler == "info_gain" else 1),
                 "tokens_forwarded": calls * 96, "generated_tokens": 64, "steps": self.steps,
                 "wall_time_s": round(0.002 * calls, 6)}
            )
            out.append(text)
        return out

    def loglikelihood(self, requests, disable_tqdm: bool = False):  # pragma: no cover - generate-only tasks
        raise NotImplementedError

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):  # pragma: no cover
        raise NotImplementedError


@register_model("fixture_mdm")
class FixtureMDM(_Scripted):
    """Reports the plugin's ``infogain`` statistics block (schema 1) through get_model_info."""

    def get_model_info(self) -> dict:
        per_task: dict[str, dict] = {}
        for task in sorted({r["task"] for r in self.records}):
            per_task[task] = _summary([r for r in self.records if r["task"] == task])
        decoding = {
            "sampler": self.sampler, "gen_length": 64, "steps": self.steps, "block_size": 32, "tokens_per_step": None,
            "temperature": 0.0, "candidate_number": 8, "position_temperature": 0.2, "threshold": 0.8, "variant": None,
            "ig_scope": None, "eos_penalty": 4.0, "eos_fill": True, "cache": "none", "seed": self.seed, "beam_size": 1,
            "fast_dllm_factor": None, "eb_gamma": 0.1, "pc_lambda": 0.25, "pc_alpha": 10.0, "pc_frequency_file": None,
            "klass_kl_threshold": 0.01, "klass_history": 2,
        }
        return {"infogain": {
            "schema": 1, "pretrained": self.pretrained, "sampler": self.sampler, "decoding": decoding, "device": "cpu",
            "dtype": "float32", "world_size": 1, "versions": {"lm_eval_infogain": "0.1.0"}, "peak_memory_bytes": None,
            "totals": _summary(self.records), "per_task": per_task,
        }}


@register_model("fixture_ar")
class FixtureAR(_Scripted):
    """A model without decoding statistics (like lm-eval's built-in ``hf``)."""


def _summary(records: list[dict]) -> dict:
    n = len(records)
    wall = sum(r["wall_time_s"] for r in records)
    gen = sum(r["generated_tokens"] for r in records)
    return {
        "samples": n,
        "cumulative_entropy_mean": sum(r["cumulative_entropy"] for r in records) / n,
        "model_calls_mean": sum(r["model_calls"] for r in records) / n,
        "rows_forwarded_mean": sum(r["rows_forwarded"] for r in records) / n,
        "tokens_forwarded_mean": sum(r["tokens_forwarded"] for r in records) / n,
        "generated_tokens": gen,
        "wall_time_s": wall,
        "tokens_per_second": gen / wall,
    }


def _write_tasks(root: Path) -> TaskManager:
    for task, yaml in TASK_YAML.items():
        data = root / f"{task}.jsonl"
        with data.open("w") as f:
            for i in range(N_DOCS):
                f.write(json.dumps({"id": i, "question": f"q{i} =", "answer": str(10 + 3 * i)}) + "\n")
        (root / f"{task}.yaml").write_text(yaml.format(data=data))
    return TaskManager(include_defaults=False, include_path=str(root))


def _run(tm: TaskManager, out: Path, model: str, model_args: str, tasks: list[str], log_samples: bool = False) -> None:
    """What lm-eval's ``run`` subcommand does after ``simple_evaluate`` (lm_eval/_cli/run.py)."""
    tracker = EvaluationTracker(output_path=str(out))
    results = simple_evaluate(model=model, model_args=model_args, tasks=tasks, task_manager=tm, limit=None,
                              bootstrap_iters=1000, evaluation_tracker=tracker, random_seed=0, log_samples=log_samples)
    samples = results.pop("samples", None) if log_samples else None
    results.pop("samples", None)
    tracker.save_results_aggregated(results=results, samples=samples)
    if log_samples:
        for task_name in results["configs"]:
            tracker.save_results_samples(task_name=task_name, samples=samples[task_name])
    if model == "fixture_mdm":
        # The plugin's model writes its per-sample statistics beside the results file.
        out = Path(out)
        model_dir = out.parent if out.suffix == ".json" else out / tracker.general_config_tracker.model_name_sanitized
        lm_records = _LAST_RECORDS[-1]
        with (model_dir / f"infogain_samples_{tracker.date_id}.jsonl").open("w") as f:
            for r in lm_records:
                f.write(json.dumps(r) + "\n")


_LAST_RECORDS: list[list[dict]] = []
_orig_info = FixtureMDM.get_model_info


def _capture(self):  # remember the records of the model instance simple_evaluate built
    _LAST_RECORDS.append(self.records)
    return _orig_info(self)


FixtureMDM.get_model_info = _capture  # type: ignore[method-assign]


def main() -> None:
    if RUNS.exists():
        shutil.rmtree(RUNS)
    with tempfile.TemporaryDirectory() as tmp:
        tm = _write_tasks(Path(tmp))
        llada = "pretrained=GSAI-ML/LLaDA-8B-Instruct"
        both = ["fx_sudoku", "fx_gsm"]
        _run(tm, RUNS / "llada_confidence_k1", "fixture_mdm", f"{llada},sampler=confidence,steps=64,seed=0", both, True)
        for seed in (0, 1, 2):
            _run(tm, RUNS / f"llada_info_gain_k1_seed{seed}", "fixture_mdm", f"{llada},sampler=info_gain,steps=64,seed={seed}", both, True)
        # One task per run: the leaderboard must join them into one row.
        _run(tm, RUNS / "llada_confidence_k2" / "sudoku", "fixture_mdm", f"{llada},sampler=confidence,steps=32,seed=0", ["fx_sudoku"])
        _run(tm, RUNS / "llada_confidence_k2" / "gsm", "fixture_mdm", f"{llada},sampler=confidence,steps=32,seed=0", ["fx_gsm"])
        _run(tm, RUNS / "llada_info_gain_k2", "fixture_mdm", f"{llada},sampler=info_gain,steps=32,seed=0", both)
        # Missing task: random was only run on sudoku.
        _run(tm, RUNS / "llada_random_k1", "fixture_mdm", f"{llada},sampler=random,steps=64,seed=0", ["fx_sudoku"])
        # Another model family without statistics.
        _run(tm, RUNS / "qwen_ar", "fixture_ar", "pretrained=Qwen/Qwen2.5-0.5B-Instruct", both)
        # --output_path given as a file name: lm-eval writes <stem>_<timestamp>.json next to it.
        _run(tm, RUNS / "as_file" / "dream.json", "fixture_mdm",
             "pretrained=Dream-org/Dream-v0-Instruct-7B,sampler=confidence,steps=64,seed=0", ["fx_sudoku"])
    for path in RUNS.rglob("*.json"):  # machine-specific noise that makes diffs unreadable
        data = json.loads(path.read_text())
        data["pretty_env_info"] = "(removed from the fixture)"
        for cfg in data.get("configs", {}).values():
            cfg.get("dataset_kwargs", {}).pop("data_files", None)
        path.write_text(json.dumps(data, indent=2, ensure_ascii=False))
    old = RUNS / "legacy_v040"
    old.mkdir(parents=True)
    (old / "results.json").write_text(json.dumps(LEGACY, indent=2))


# The shape lm-eval 0.4.0/0.4.1 wrote to OUT/results.json: no n-samples, no higher_is_better,
# "N/A" stderr where bootstrapping was off.
LEGACY = {
    "results": {
        "fx_sudoku": {"exact_match,none": 0.65, "exact_match_stderr,none": "N/A", "alias": "fx_sudoku"},
        "fx_gsm": {"exact_match,strict-match": 0.4, "exact_match_stderr,strict-match": 0.1124,
                   "exact_match,flexible-extract": 0.6, "exact_match_stderr,flexible-extract": 0.1124, "alias": "fx_gsm"},
    },
    "configs": {"fx_sudoku": {"task": "fx_sudoku"}, "fx_gsm": {"task": "fx_gsm"}},
    "versions": {"fx_sudoku": 1.0, "fx_gsm": 2.0},
    "n-shot": {"fx_sudoku": 0, "fx_gsm": 0},
    "config": {"model": "hf", "model_args": "pretrained=EleutherAI/pythia-160m", "batch_size": 1, "batch_sizes": [],
               "device": "cpu", "use_cache": None, "limit": None, "bootstrap_iters": 0, "gen_kwargs": None},
    "git_hash": None,
}


if __name__ == "__main__":
    main()
