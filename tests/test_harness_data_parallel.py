"""Two CPU processes under ``torchrun -m lm_eval`` score exactly like one process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from harness_helpers import save_tiny_bert, write_task

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
       "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "1"}
ENV.pop("LM_EVAL_INFOGAIN_DISABLE", None)


MODEL_ARGS = "sampler=confidence,gen_length=4,block_size=2"


def _torchrun(model: Path, tasks: Path, out: Path) -> dict:
    args = ["torchrun", "--nproc_per_node", "2", "--master_port", "29517", "-m", "lm_eval", "--model", "infogain_mdm",
            "--model_args", f"pretrained={model},{MODEL_ARGS}", "--tasks", "harness_chain",
            "--include_path", str(tasks), "--output_path", str(out), "--log_samples", "--device", "cpu"]
    done = subprocess.run(args, capture_output=True, text=True, env=ENV, timeout=900, cwd=out.parent)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    folder = next(out.rglob("results_*.json")).parent
    samples = [json.loads(line) for line in next(folder.glob("samples_harness_chain_*.jsonl")).read_text().splitlines()]
    stats = [json.loads(line) for line in next(folder.glob("infogain_samples_*.jsonl")).read_text().splitlines()]
    return {"results": json.loads(next(folder.glob("results_*.json")).read_text()), "samples": samples, "stats": stats}


def _in_process(model: Path, tasks: Path, stats_path: Path) -> dict:
    """The single-process reference, without a second CLI start (same code path from simple_evaluate on)."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    results = simple_evaluate(model="infogain_mdm", model_args=f"pretrained={model},{MODEL_ARGS},stats_path={stats_path}",
                              tasks=["harness_chain"], task_manager=TaskManager(include_defaults=False, include_path=str(tasks)),
                              log_samples=True, device="cpu")
    samples = results.pop("samples")["harness_chain"]
    stats = [json.loads(line) for line in stats_path.read_text().splitlines()]
    return {"results": json.loads(json.dumps(results, default=str)), "samples": samples, "stats": stats}


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun (torch's launcher) is not on PATH")
def test_two_cpu_processes_score_like_one(tmp_path):
    model = save_tiny_bert(tmp_path / "bert")
    tasks = write_task(tmp_path / "tasks")
    single = _in_process(model, tasks, tmp_path / "one.jsonl")
    double = _torchrun(model, tasks, tmp_path / "two")

    by_doc = lambda run: {s["doc_id"]: s["resps"] for s in run["samples"]}  # noqa: E731
    assert len(by_doc(single)) == 6 and by_doc(single) == by_doc(double)
    assert single["results"]["results"]["harness_chain"] == double["results"]["results"]["harness_chain"]
    info_one, info_two = single["results"]["config"]["infogain"], double["results"]["config"]["infogain"]
    assert info_one["world_size"] == 1 and info_two["world_size"] == 2
    assert info_one["totals"]["samples"] == info_two["totals"]["samples"] == 6  # every rank's stats on rank 0
    key = lambda record: record["request_key"]  # noqa: E731
    deterministic = ("cumulative_entropy", "steps", "generated_tokens", "model_calls")
    pick = lambda run: sorted(((key(r), *(round(r[f], 5) for f in deterministic)) for r in run["stats"]))  # noqa: E731
    assert pick(single) == pick(double)
