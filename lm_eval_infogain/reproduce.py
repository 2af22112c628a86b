"""``lm-eval-infogain reproduce EXPERIMENT``: the paper's experiment grids as exact ``lm_eval`` commands.

Each preset expands to one ``lm_eval`` command per (model, task, sampler, K, seed), using the paper's
settings (docs: "Paper settings"): N = 8 candidates, position temperature 0.2, bypass threshold 0.8,
temperature 0 for LLaDA/Dream and 0.7 for SDAR/TraDo, gen_length = steps·K = 256 for GSM8K and 512
otherwise, block 32 (16 for SDAR/TraDo), the chat template for these instruct models, and
``--confirm_run_unsafe_code`` for the code tasks. Every command is printed shell-quoted before it runs,
so a grid can be copied to a cluster scheduler with ``--dry-run``. After the runs the leaderboard is
built from the experiment's output folder.

Seeds: a run is repeated over seeds only where decoding is random — temperature > 0, the ``random``
order, or the Info-Gain family (its candidates are drawn at random even with greedy tokens).
Samplers that decide how many tokens to commit per step (``eb``, ``fast_dllm``, ``klass``) ignore K and
run once, with one token per step as their step budget.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

from .sampling.config import ADAPTIVE_SAMPLERS, INFO_GAIN_FAMILY, SAMPLER_NAMES

__all__ = ["ModelPreset", "Job", "Experiment", "MODELS", "EXPERIMENTS", "build_jobs", "main"]


@dataclass(frozen=True)
class ModelPreset:
    key: str
    pretrained: str
    temperature: float
    block_size: int


MODELS: dict[str, ModelPreset] = {
    "llada": ModelPreset("llada", "GSAI-ML/LLaDA-8B-Instruct", 0.0, 32),
    "dream": ModelPreset("dream", "Dream-org/Dream-v0-Instruct-7B", 0.0, 32),
    "sdar": ModelPreset("sdar", "JetLM/SDAR-8B-Chat", 0.7, 16),
    "trado": ModelPreset("trado", "Gen-Verse/TraDo-8B-Instruct", 0.7, 16),
}
REASONING_TASKS: tuple[str, ...] = ("infogain_gsm8k", "infogain_math500", "infogain_humaneval", "infogain_mbpp")
GEN_LENGTH: dict[str, int] = {"infogain_gsm8k": 256}
DEFAULT_GEN_LENGTH = 512
CODE_TASKS = frozenset({"infogain_humaneval", "infogain_mbpp"})
#: The greedy baselines the paper compares against, its LookUM stand-in, and Info-Gain.
MAIN_SAMPLERS: tuple[str, ...] = ("confidence", "margin", "entropy", "eb", "fast_dllm", "pc", "klass", "lookum", "info_gain")
#: Paper settings of the Info-Gain family.
INFO_GAIN_ARGS: dict[str, object] = {"candidate_number": 8, "position_temperature": 0.2, "threshold": 0.8}
DEFAULT_SEEDS: tuple[int, ...] = (0, 1, 2)


@dataclass(frozen=True)
class Job:
    """One ``lm_eval`` invocation."""

    experiment: str
    model: ModelPreset
    task: str
    sampler: str
    k: int
    seed: int
    extra_args: tuple[tuple[str, object], ...] = ()
    log_samples: bool = False

    @property
    def gen_length(self) -> int:
        return GEN_LENGTH.get(self.task, DEFAULT_GEN_LENGTH)

    def name(self) -> str:
        extra = "".join(f"_{k}{v}" for k, v in self.extra_args)
        return f"{self.sampler}{extra}_K{self.k}_seed{self.seed}"

    def output_path(self, root: Path) -> Path:
        return root / self.experiment / self.model.key / self.task / self.name()

    def model_args(self) -> str:
        args: dict[str, object] = {
            "pretrained": self.model.pretrained,
            "sampler": self.sampler,
            "gen_length": self.gen_length,
            "steps": self.gen_length // self.k,
            "block_size": self.model.block_size,
            "temperature": self.model.temperature,
        }
        if self.sampler in INFO_GAIN_FAMILY:
            args.update(INFO_GAIN_ARGS)
        args.update(dict(self.extra_args))
        args["seed"] = self.seed
        return ",".join(f"{k}={v}" for k, v in args.items())

    def argv(self, root: Path, *, lm_eval: str = "lm_eval", limit: int | None = None, extra: Sequence[str] = ()) -> list[str]:
        cmd = [lm_eval, "--model", "infogain_mdm", "--model_args", self.model_args(), "--tasks", self.task,
               "--apply_chat_template", "--output_path", str(self.output_path(root))]
        if self.log_samples:
            cmd.append("--log_samples")
        if self.task in CODE_TASKS:
            cmd.append("--confirm_run_unsafe_code")
        if limit is not None:
            cmd += ["--limit", str(limit)]
        return cmd + list(extra)


def _stochastic(model: ModelPreset, sampler: str) -> bool:
    return model.temperature > 0 or sampler == "random" or sampler in INFO_GAIN_FAMILY


@dataclass(frozen=True)
class Grid:
    """Filters a user may narrow a preset with (``--models`` etc.); ``None`` keeps the preset's."""

    models: tuple[str, ...] | None = None
    tasks: tuple[str, ...] | None = None
    samplers: tuple[str, ...] | None = None
    ks: tuple[int, ...] | None = None
    seeds: tuple[int, ...] | None = None


def _grid(
    experiment: str,
    grid: Grid,
    *,
    models: Iterable[str],
    tasks: Iterable[str],
    samplers: Iterable[str],
    ks: Iterable[int],
    extra_sets: Iterable[tuple[tuple[str, object], ...]] = ((),),
    log_samples: bool = False,
) -> list[Job]:
    jobs = []
    seeds = grid.seeds or DEFAULT_SEEDS
    extra_sets = list(extra_sets)
    for model_key in grid.models or tuple(models):
        model = MODELS[model_key]
        for task in grid.tasks or tuple(tasks):
            for sampler in grid.samplers or tuple(samplers):
                for k in grid.ks or tuple(ks):
                    if sampler in ADAPTIVE_SAMPLERS and k != 1:
                        continue
                    for extra in extra_sets:
                        for seed in seeds if _stochastic(model, sampler) else seeds[:1]:
                            jobs.append(Job(experiment, model, task, sampler, k, seed, extra, log_samples))
    return jobs


@dataclass(frozen=True)
class Experiment:
    name: str
    description: str
    build: Callable[[Grid], list[Job]]
    after: str = ""  # what to do with the outputs beyond the leaderboard
    leaderboard_args: tuple[str, ...] = field(default_factory=tuple)


EXPERIMENTS: dict[str, Experiment] = {
    e.name: e
    for e in (
        Experiment(
            "main",
            "Main table: 4 models × GSM8K/MATH-500/HumanEval/MBPP × every compared sampler × K ∈ {1, 2} × seeds.",
            lambda g: _grid("main", g, models=MODELS, tasks=REASONING_TASKS, samplers=MAIN_SAMPLERS, ks=(1, 2)),
        ),
        Experiment(
            "writing",
            "Creative writing: confidence vs Info-Gain stories (samples logged) for a pairwise LLM-judge win rate.",
            lambda g: _grid("writing", g, models=("llada", "dream"), tasks=("infogain_writing",),
                            samplers=("confidence", "info_gain"), ks=(1,), log_samples=True),
            after="win rate: python -m lm_eval_infogain.scoring.judge --candidate <info_gain samples_infogain_writing_*.jsonl> "
            "--baseline <confidence samples_infogain_writing_*.jsonl> -o win_rate.json "
            "(judge endpoint from LM_EVAL_INFOGAIN_JUDGE_URL / _MODEL / _KEY)",
        ),
        Experiment(
            "entropy",
            "Cumulative entropy vs accuracy: LLaDA/Dream on GSM8K/MATH-500 across samplers, per-sample stats logged "
            "(leaderboard's entropy_vs_accuracy.png gives r per task).",
            lambda g: _grid("entropy", g, models=("llada", "dream"), tasks=("infogain_gsm8k", "infogain_math500"),
                            samplers=("random", "confidence", "margin", "entropy", "lookum", "info_gain"), ks=(1,),
                            log_samples=True),
        ),
        Experiment(
            "beam",
            "Info-Gain beam search ablation: beam width 1/2/4 on LLaDA/Dream, GSM8K and MATH-500.",
            lambda g: _grid("beam", g, models=("llada", "dream"), tasks=("infogain_gsm8k", "infogain_math500"),
                            samplers=("info_gain",), ks=(1,),
                            extra_sets=((("beam_size", 1),), (("beam_size", 2),), (("beam_size", 4),))),
        ),
    )
}


def build_jobs(experiment: str, grid: Grid | None = None) -> list[Job]:
    if experiment not in EXPERIMENTS:
        raise KeyError(experiment)
    return EXPERIMENTS[experiment].build(grid or Grid())


def _csv(kind: Callable[[str], object]) -> Callable[[str], tuple]:
    def parse(text: str) -> tuple:
        return tuple(kind(x.strip()) for x in text.split(",") if x.strip())

    return parse


def _validate(grid: Grid) -> str | None:

    checks = [
        ("--models", grid.models, tuple(MODELS)),
        ("--samplers", grid.samplers, SAMPLER_NAMES),
    ]
    for flag, given, allowed in checks:
        bad = [x for x in given or () if x not in allowed]
        if bad:
            return f"{flag}: unknown {', '.join(map(str, bad))} (valid: {', '.join(allowed)})"
    if grid.ks and any(k < 1 for k in grid.ks):
        return "--k: values must be ≥ 1"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="lm-eval-infogain reproduce",
        description="Print (--dry-run) or run the lm_eval commands of one of the paper's experiments, "
        "then build its leaderboard.",
    )
    parser.add_argument("experiment", nargs="?", help="one of: " + ", ".join(EXPERIMENTS))
    parser.add_argument("--list", action="store_true", help="list the experiments and their sizes")
    parser.add_argument("--dry-run", action="store_true", help="only print the commands")
    parser.add_argument("--output-root", default="runs", help="outputs go to OUTPUT_ROOT/EXPERIMENT/... (default: runs)")
    parser.add_argument("--limit", type=int, default=None, help="pass --limit N to every lm_eval run (smoke tests)")
    parser.add_argument("--extra", default="", help="extra lm_eval arguments for every run, one shell-quoted string")
    parser.add_argument("--models", type=_csv(str), help="subset of: " + ", ".join(MODELS))
    parser.add_argument("--tasks", type=_csv(str), help="subset of the preset's tasks")
    parser.add_argument("--samplers", type=_csv(str), help="subset/override of the samplers")
    parser.add_argument("--k", type=_csv(int), help="tokens per step values, e.g. 1,2")
    parser.add_argument("--seeds", type=_csv(int), help=f"seeds for stochastic runs (default {','.join(map(str, DEFAULT_SEEDS))})")
    parser.add_argument("--lm-eval-bin", default="lm_eval", help="the lm_eval executable")
    parser.add_argument("--skip-existing", action="store_true", help="skip runs whose output folder already has results")
    parser.add_argument("--keep-going", action="store_true", help="continue after a failed run")
    args = parser.parse_args(argv)

    if args.list:
        for exp in EXPERIMENTS.values():
            print(f"{exp.name:<9} {len(exp.build(Grid())):>4} runs  {exp.description}")
        return 0
    if args.experiment not in EXPERIMENTS:
        print(f"lm-eval-infogain reproduce: unknown experiment {args.experiment!r}; choose one of: "
              f"{', '.join(EXPERIMENTS)} (or --list)", file=sys.stderr)
        return 2
    grid = Grid(args.models, args.tasks, args.samplers, args.k, args.seeds)
    error = _validate(grid)
    if error:
        print(f"lm-eval-infogain reproduce: {error}", file=sys.stderr)
        return 2
    experiment = EXPERIMENTS[args.experiment]
    jobs = experiment.build(grid)
    if not jobs:
        print("lm-eval-infogain reproduce: the filters leave no runs", file=sys.stderr)
        return 2
    root = Path(args.output_root)
    extra = shlex.split(args.extra)
    failed: list[Job] = []
    for job in jobs:
        cmd = job.argv(root, lm_eval=args.lm_eval_bin, limit=args.limit, extra=extra)
        out = job.output_path(root)
        if args.skip_existing and any(out.rglob("results*.json")):
            print(f"# skip (has results): {shlex.join(cmd)}", flush=True)
            continue
        print(shlex.join(cmd), flush=True)
        if args.dry_run:
            continue
        code = subprocess.run(cmd, check=False).returncode
        if code != 0:
            failed.append(job)
            print(f"# failed with exit code {code}: {job.output_path(root)}", file=sys.stderr, flush=True)
            if not args.keep_going:
                return 1
    if experiment.after:
        print(f"# then: {experiment.after}")
    if args.dry_run:
        return 0
    from .leaderboard.cli import leaderboard_main

    code = leaderboard_main([str(root / experiment.name), "-o", str(root / experiment.name / "leaderboard"),
                             "--title", f"{experiment.name}: {experiment.description}", *experiment.leaderboard_args])
    return 1 if failed else code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
