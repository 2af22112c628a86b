"""The README's data-parallel and Python-API snippets, run exactly as written, offline.

Data parallel: the README's ``torchrun --nproc_per_node 2 -m lm_eval ...`` with the bundled model on
two CPU processes (plain torchrun: no ``ACCELERATE_USE_CPU``) and ``accelerate launch --multi_gpu``
score, answer and report per-request statistics exactly like one process.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
for name in ("LM_EVAL_INFOGAIN_DISABLE", "ACCELERATE_USE_CPU", "OMP_NUM_THREADS", "WORLD_SIZE", "RANK", "LOCAL_RANK"):
    ENV.pop(name, None)
DETERMINISTIC = ("cumulative_entropy", "steps", "generated_tokens", "model_calls", "rows_forwarded", "tokens_forwarded")


def readme_block(after: str, language: str) -> str:
    """The first ``language`` code block of the README after the line ``after`` starts."""
    text = README.read_text()
    start = text.index(after)
    match = re.compile(rf"```{language}\n(.*?)```", re.S).search(text, start)
    assert match, f"no {language} block after {after!r}"
    return match.group(1)


def _free_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return str(sock.getsockname()[1])


def _outputs(folder: Path) -> dict:
    results = json.loads(next(folder.glob("results_*.json")).read_text())
    samples = [json.loads(line) for line in next(folder.glob("samples_infogain_demo_sudoku_*.jsonl")).read_text().splitlines()]
    stats = [json.loads(line) for line in next(folder.glob("infogain_samples_*.jsonl")).read_text().splitlines()]
    return {"results": results, "answers": {s["doc_id"]: s["resps"] for s in samples}, "stats": stats}


def _per_request(stats: list[dict]) -> list[tuple]:
    return sorted((r["request_key"], r["doc_id"], *(round(r[f], 5) for f in DETERMINISTIC)) for r in stats)


def _single_process(tmp_path: Path, limit: int) -> dict:
    """The reference: the same evaluation in this process (same code path from simple_evaluate on)."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    from lm_eval_infogain.harness.plugin import task_dir

    stats_path = tmp_path / "single.jsonl"
    results = simple_evaluate(model="infogain_mdm", model_args=f"stats_path={stats_path}", tasks=["infogain_demo_sudoku"],
                              task_manager=TaskManager(include_defaults=False, include_path=task_dir()),
                              limit=limit, log_samples=True)
    samples = results.pop("samples")["infogain_demo_sudoku"]
    stats = [json.loads(line) for line in stats_path.read_text().splitlines()]
    return {"results": json.loads(json.dumps(results, default=str)), "answers": {s["doc_id"]: s["resps"] for s in samples},
            "stats": stats}


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun (torch's launcher) is not on PATH")
def test_readme_data_parallel_command_splits_the_work_and_matches_one_process(tmp_path):
    command = readme_block("Data parallel (here 2 CPU processes", "bash").strip()
    assert command.startswith("torchrun --nproc_per_node 2 -m lm_eval --model infogain_mdm")
    limit = int(shlex.split(command)[shlex.split(command).index("--limit") + 1])
    env = {**ENV, "PET_MASTER_PORT": _free_port()}  # torchrun's --master_port, without changing the command
    done = subprocess.run(command, shell=True, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    for rank in (0, 1):  # the log names the real rank and world size
        assert f"data parallel run: rank {rank} of 2 processes" in done.stderr
        assert f"Building contexts for infogain_demo_sudoku on rank {rank}" in done.stderr
    double = _outputs(tmp_path / "out" / "demo__model")  # named after the bundled model, not at random
    single = _single_process(tmp_path, limit)

    assert len(single["answers"]) == limit and double["answers"] == single["answers"]
    assert double["results"]["results"]["infogain_demo_sudoku"] == single["results"]["results"]["infogain_demo_sudoku"]
    two, one = double["results"]["config"]["infogain"], single["results"]["config"]["infogain"]
    assert two["world_size"] == 2 and one["world_size"] == 1
    assert two["totals"]["samples"] == one["totals"]["samples"] == limit  # every rank's statistics on rank 0
    assert two["task_decoding"] == one["task_decoding"] and two["seed"] == one["seed"] == {"value": 1234, "source": "lm_eval"}
    assert _per_request(double["stats"]) == _per_request(single["stats"])

    # accelerate's own launcher, on the same CPU-only machine
    if shutil.which("accelerate") is None:
        return
    launch = ["accelerate", "launch", "--multi_gpu", "--num_processes", "2", "--main_process_port", _free_port(),
              "-m", "lm_eval", "--model", "infogain_mdm", "--tasks", "infogain_demo_sudoku", "--limit", "4",
              "--output_path", "acc/", "--log_samples"]
    done = subprocess.run(launch, capture_output=True, text=True, env=ENV, cwd=tmp_path, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    accelerated = _outputs(tmp_path / "acc" / "demo__model")
    assert accelerated["results"]["config"]["infogain"]["world_size"] == 2
    assert accelerated["answers"] == {d: a for d, a in single["answers"].items() if d < 4}
    assert _per_request(accelerated["stats"]) == [r for r in _per_request(single["stats"]) if r[1] < 4]


@pytest.mark.slow
def test_readme_python_api_snippet_runs_as_written_without_importing_the_plugin(tmp_path):
    snippet = readme_block("Python API (offline, bundled model)", "python")
    assert "import lm_eval_infogain" not in snippet
    done = subprocess.run([sys.executable, "-c", snippet], capture_output=True, text=True, env=ENV, cwd=tmp_path,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    accuracy, totals = done.stdout.strip().splitlines()[-2:]
    assert 0.0 <= float(accuracy) <= 1.0
    totals = ast.literal_eval(totals)  # the printed dict
    assert totals["samples"] == 8 and totals["model_calls_mean"] > 0 and totals["cumulative_entropy_mean"] > 0
