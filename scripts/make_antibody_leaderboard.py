#!/usr/bin/env python
"""AntiBERTy CDR-H3 infilling: every sampler plus a one-step baseline through lm-eval's CLI, then the leaderboard.

    python scripts/make_antibody_leaderboard.py                         # everything (about 20 minutes on 2 cores)
    python scripts/make_antibody_leaderboard.py --runs confidence,one_step --limit 16 --results /tmp/ab
    python scripts/make_antibody_leaderboard.py --build-only            # tables from the finished runs again

Every run is one ``lm_eval --model infogain_mdm --model_args pretrained=antiberty,sampler=S --tasks
infogain_antibody_cdrh3 --limit N --batch_size B --log_samples --output_path WORK/S`` (a subprocess, so
each run is timed from start-up to exit exactly as a user would see it). The one-step baseline is
``sampler=confidence,steps=1,block_size=1024``: one block over the whole gap, all of it committed from a
single forward. Everything else stays at its default (greedy tokens: the task sets ``do_sample: false``;
model seed = lm-eval's ``--seed`` default; every sampler's own parameters at their defaults).

Finished runs in WORK (same model_args and limit) are reused, so an interrupted invocation resumes.
The raw lm-eval folders record machine paths and the full prompts (about 3 MB for the 12 runs), so ``results/antibody/runs``
gets a slim copy holding only what the leaderboard reads (``slim_results`` / ``slim_samples``), and the
tables are built from that copy with ``lm-eval-infogain leaderboard`` — anyone can rebuild them from the
committed files, and the paired comparison runs on exactly those files.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Mapping

ROOT = Path(__file__).resolve().parents[1]
TASK = "infogain_antibody_cdrh3"
ONE_STEP = "one_step"
#: model_args of the one-step baseline (steps=1 over one block that covers any CDR-H3 loop).
ONE_STEP_ARGS = "sampler=confidence,steps=1,block_size=1024"
#: Top-level keys of a results file the leaderboard reads (the rest records paths, prompts, environment).
RESULTS_KEYS = (
    "results", "group_subtasks", "versions", "n-shot", "higher_is_better", "n-samples", "config", "date",
    "lm_eval_version", "transformers_version", "model_name", "chat_template", "total_evaluation_time_seconds",
)  # fmt: skip
#: Fields of a samples record the paired comparison reads (each metric's score is kept too).
SAMPLE_KEYS = ("doc_id", "doc_hash")


def sampler_names() -> list[str]:
    from lm_eval_infogain.sampling.config import SAMPLER_NAMES

    return list(SAMPLER_NAMES)


def model_args_of(name: str) -> str:
    return f"pretrained=antiberty,{ONE_STEP_ARGS if name == ONE_STEP else f'sampler={name}'}"


def lm_eval_command(name: str, work: Path, limit: int, batch_size: str) -> list[str]:
    return [
        "lm_eval", "--model", "infogain_mdm", "--model_args", model_args_of(name), "--tasks", TASK,
        "--limit", str(limit), "--batch_size", batch_size, "--log_samples", "--output_path", str(work / name),
    ]  # fmt: skip


def finished_run(folder: Path, name: str, limit: int) -> Path | None:
    """The newest results file in ``folder`` made with this run's model_args and limit, if any."""
    from lm_eval_infogain.leaderboard.paired import samples_files_for_results

    expected = dict(p.split("=", 1) for p in model_args_of(name).split(","))
    for path in sorted(folder.rglob("results_*.json"), reverse=True):
        data = json.loads(path.read_text(encoding="utf-8"))
        config = data.get("config") or {}
        args = {k: str(v) for k, v in (config.get("model_args") or {}).items()}
        if args == expected and config.get("limit") == limit and TASK in samples_files_for_results(path):
            return path
    return None


def run_all(names: list[str], work: Path, limit: int, batch_size: str, timings_file: Path) -> dict[str, Any]:
    """Run what is not finished yet; returns ``{name: {"seconds": …, "results": …}}`` for every run."""
    timings: dict[str, Any] = json.loads(timings_file.read_text()) if timings_file.is_file() else {}
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    for name in names:
        done = finished_run(work / name, name, limit)
        if done is not None and name in timings and timings[name].get("results") == done.name:
            print(f"{name}: finished earlier ({timings[name]['seconds']:.0f} s), kept", flush=True)
            continue
        command = lm_eval_command(name, work, limit, batch_size)
        print("$ " + " ".join(command), flush=True)
        started = time.perf_counter()
        proc = subprocess.run(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              check=False)
        seconds = time.perf_counter() - started
        if proc.returncode != 0:
            print(proc.stdout[-4000:], file=sys.stderr)
            raise SystemExit(f"{name}: lm_eval exited with {proc.returncode}")
        done = finished_run(work / name, name, limit)
        if done is None:
            raise SystemExit(f"{name}: lm_eval finished but wrote no results file with samples under {work / name}")
        timings[name] = {"seconds": round(seconds, 1), "results": done.name, "command": " ".join(command[:-1] + [f"WORK/{name}"])}
        timings_file.parent.mkdir(parents=True, exist_ok=True)
        timings_file.write_text(json.dumps(timings, indent=2) + "\n")
        print(f"{name}: {seconds:.0f} s", flush=True)
    return {name: timings[name] for name in names}


def slim_results(data: Mapping[str, Any]) -> dict[str, Any]:
    """A results file reduced to what the leaderboard reads (no task configs, paths or environment dump)."""
    return {key: data[key] for key in RESULTS_KEYS if key in data}


def slim_samples(lines: list[str]) -> str:
    """Samples records reduced to what the paired comparison reads: ``doc_id``, ``doc_hash`` and each metric's
    score; ``filter`` only where it is not lm-eval's ``none`` (the reader's default), and the ``metrics`` list
    (which names the main metric) only on the first record. Keeps 12 runs × 128 chains to ~200 KB."""
    out = []
    for line in lines:
        if not line.strip():
            continue
        record = json.loads(line)
        keep = {key: record[key] for key in SAMPLE_KEYS if key in record}
        if record.get("filter", "none") != "none":
            keep["filter"] = record["filter"]
        if not out:
            keep["metrics"] = record.get("metrics", [])
        keep.update({metric: record[metric] for metric in record.get("metrics", []) if metric in record})
        out.append(json.dumps(keep, ensure_ascii=False, separators=(",", ":")) + "\n")
    return "".join(out)


def publish_run(results_file: Path, target: Path) -> None:
    """Slim copies of one run's results file and samples files into ``target`` (its previous copy replaced)."""
    from lm_eval_infogain.leaderboard.paired import samples_files_for_results

    if target.is_dir():
        for old in [*target.glob("results_*.json"), *target.glob("samples_*.jsonl")]:
            old.unlink()  # this script's own earlier copy of the same run
    target.mkdir(parents=True, exist_ok=True)
    data = json.loads(results_file.read_text(encoding="utf-8"))
    (target / results_file.name).write_text(json.dumps(slim_results(data), indent=1) + "\n", encoding="utf-8")
    for samples in samples_files_for_results(results_file).values():
        lines = samples.read_text(encoding="utf-8").splitlines()
        (target / samples.name).write_text(slim_samples(lines), encoding="utf-8")


def runtime_report(timings: Mapping[str, Any], runs: Path, limit: int, batch_size: str) -> tuple[dict, str]:
    """Per-run wall time (lm_eval start to exit) and decoding time, in JSON and Markdown."""
    from lm_eval_infogain.leaderboard.loading import load_run

    rows = []
    for name, timing in timings.items():
        run = load_run(next((runs / name).rglob("results_*.json")))
        totals = run.totals
        metrics = run.tasks[TASK].metrics
        rows.append({
            "run": name,
            "model_args": model_args_of(name),
            "wall_s": timing["seconds"],
            "decode_s": None if totals is None or totals.wall_time_s is None else round(totals.wall_time_s, 1),
            "model_calls_per_chain": None if totals is None else totals.model_calls_mean,
            "recovery": metrics[("recovery", "none")].value,
            "exact_match": metrics[("exact_match", "none")].value,
            "threads": (run.infogain or {}).get("threads", {}).get("intra_op"),
        })
    total = sum(r["wall_s"] for r in rows)
    machine = {"cpu_cores": os.cpu_count(), "processor": cpu_model(), "python": platform.python_version(), "device": "cpu"}
    report = {"task": TASK, "limit": limit, "batch_size": batch_size, "machine": machine, "total_wall_s": round(total, 1), "runs": rows}
    lines = [
        "# Runtimes: AntiBERTy CDR-H3 leaderboard",
        "",
        f"{len(rows)} lm-eval runs of `{TASK}` (`--limit {limit} --batch_size {batch_size}`), one after another on "
        f"{machine['cpu_cores']} CPU cores ({machine['processor']}) shared with other work, so the times are "
        "indicative. Wall: `lm_eval` start to exit (model load, data, decoding, scoring); decode: the model's own "
        "decoding time (`config.infogain.totals.wall_time_s`); threads: the torch threads the run chose.",
        "",
        "| run | model_args | recovery (%) | exact match (%) | wall (s) | decode (s) | calls / chain | threads |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        calls = "–" if r["model_calls_per_chain"] is None else f"{r['model_calls_per_chain']:.1f}"
        decode = "–" if r["decode_s"] is None else f"{r['decode_s']:.1f}"
        lines.append(f"| {r['run']} | `{r['model_args']}` | {r['recovery'] * 100:.1f} | {r['exact_match'] * 100:.1f} | "
                     f"{r['wall_s']:.0f} | {decode} | {calls} | {r['threads'] or '–'} |")
    lines += ["", f"Total wall time: {total:.0f} s ({total / 60:.1f} min)."]
    return report, "\n".join(lines) + "\n"


def cpu_model() -> str:
    """The CPU's model name where the system says it (Linux), else the architecture."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", default=None, help=f"comma-separated samplers and/or {ONE_STEP} (default: all samplers and {ONE_STEP})")
    parser.add_argument("--limit", type=int, default=128, help="chains (the first 46 are the test split)")
    parser.add_argument("--batch-size", default="32")
    parser.add_argument("--work", type=Path, default=ROOT / "out" / "antibody_runs", help="raw lm-eval output folders")
    parser.add_argument("--results", type=Path, default=ROOT / "results" / "antibody", help="where the tables go")
    parser.add_argument("--build-only", action="store_true", help="no new runs: rebuild from the finished ones in --work")
    args = parser.parse_args(argv)

    known = [*sampler_names(), ONE_STEP]
    names = [n for n in (args.runs or ",".join(known)).split(",") if n]
    unknown = [n for n in names if n not in known]
    if unknown:
        parser.error(f"unknown run(s) {', '.join(unknown)}; choose from {', '.join(known)}")
    timings_file = args.work / "timings.json"
    if args.build_only:
        stored = json.loads(timings_file.read_text()) if timings_file.is_file() else {}
        missing = [n for n in names if n not in stored or finished_run(args.work / n, n, args.limit) is None]
        if missing:
            parser.error(f"--build-only: no finished run for {', '.join(missing)} under {args.work}")
        timings = {n: stored[n] for n in names}
    else:
        timings = run_all(names, args.work, args.limit, args.batch_size, timings_file)

    runs = args.results / "runs"
    for name in names:
        publish_run(finished_run(args.work / name, name, args.limit), runs / name)
    report, markdown = runtime_report(timings, runs, args.limit, args.batch_size)
    (args.results / "runtimes.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (args.results / "runtimes.md").write_text(markdown, encoding="utf-8")

    from lm_eval_infogain.leaderboard.cli import leaderboard_main

    title = (f"AntiBERTy CDR-H3 infilling ({args.limit} SAbDab heavy chains, CPU, greedy tokens): every sampler and a "
             "one-step baseline, paired against confidence")
    previous = Path.cwd()
    os.chdir(ROOT)  # source paths in the tables relative to the repository
    try:
        return leaderboard_main([str(runs.resolve()), "-o", str(args.results), "--baseline-sampler", "confidence",
                                 "--paired", "--title", title])
    finally:
        os.chdir(previous)


if __name__ == "__main__":
    sys.exit(main())
