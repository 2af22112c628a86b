#!/usr/bin/env python
"""Run every sampler on every demo task with the bundled model, then build the demo leaderboard.

    python scripts/make_demo_leaderboard.py                      # all samplers, full demo test sets
    python scripts/make_demo_leaderboard.py --samplers confidence,info_gain --limit 20 --out /tmp/demo

Each sampler is one lm-eval evaluation of the four demo tasks through lm-eval's own Python API, saved
by lm-eval's own ``EvaluationTracker`` (``results_*.json`` plus our ``infogain_samples_*.jsonl``), so
the tables come from exactly the files an ``lm_eval --output_path`` run writes. Nothing is typed by
hand: ``results/`` is this script's output.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEMO_TASKS = (
    "infogain_demo_sudoku",
    "infogain_demo_sudoku_parallel",
    "infogain_demo_addition",
    "infogain_demo_addition_parallel",
)
ALL_SAMPLERS = (
    "confidence", "margin", "entropy", "random", "left_to_right", "eb", "fast_dllm", "pc", "klass",
    "info_gain", "lookum",
)


def run_sampler(sampler: str, tasks: list[str], out_dir: Path, limit: int | None, batch_size: int) -> float:
    """Evaluate ``tasks`` with one sampler and save lm-eval's outputs under ``out_dir/sampler``."""
    import lm_eval_infogain
    from lm_eval import simple_evaluate
    from lm_eval.loggers import EvaluationTracker
    from lm_eval.tasks import TaskManager

    lm_eval_infogain.register()
    tracker = EvaluationTracker(output_path=str(out_dir / sampler))
    started = time.perf_counter()
    results = simple_evaluate(
        model="infogain_mdm",
        model_args=f"sampler={sampler},device=cpu",
        tasks=tasks,
        batch_size=batch_size,
        limit=limit,
        task_manager=TaskManager(),
        evaluation_tracker=tracker,
        random_seed=0,
        numpy_random_seed=0,
        torch_random_seed=0,
        fewshot_random_seed=0,
    )
    elapsed = time.perf_counter() - started
    results.pop("samples", None)  # per-document logs are not needed for the tables (use --log_samples runs for that)
    tracker.save_results_aggregated(results=results, samples=None)
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samplers", default=",".join(ALL_SAMPLERS))
    parser.add_argument("--tasks", default=",".join(DEMO_TASKS))
    parser.add_argument("--limit", type=int, default=None, help="documents per task (default: all)")
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "demo_runs", help="lm-eval output folders")
    parser.add_argument("--leaderboard", type=Path, default=ROOT / "results", help="where the tables go")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(max(1, torch.get_num_threads()))
    tasks = [t for t in args.tasks.split(",") if t]
    for sampler in [s for s in args.samplers.split(",") if s]:
        seconds = run_sampler(sampler, tasks, args.out, args.limit, args.batch_size)
        print(f"{sampler}: {seconds:.0f} s", flush=True)

    from lm_eval_infogain.leaderboard.cli import leaderboard_main

    return leaderboard_main([str(args.out), "-o", str(args.leaderboard), "--baseline-sampler", "confidence",
                             "--title", "Demo leaderboard: bundled tiny LLaDA-format MDM, CPU (answer length, one block and K per task come from each demo task's generation_kwargs)"])


if __name__ == "__main__":
    sys.exit(main())
