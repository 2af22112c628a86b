"""Leaderboard and regression check on REAL ``infogain_mdm`` runs written by lm-eval.

Two backends, same checks:
* ``chain`` — always available: the scripted chain MDM of ``harness_helpers`` behind the real
  ``infogain_mdm`` model, on a 6-document local task.
* ``demo`` — the bundled demo model on ``infogain_demo_sudoku`` (``--limit 10``); skipped with a reason
  until the package ships it. It also proves the regression check bites on a really broken sampler
  (confidence order reversed by a test-only patch of the strategy).

Runs go through ``simple_evaluate`` + ``EvaluationTracker`` exactly as ``lm_eval --output_path``
does (lm_eval/_cli/run.py), in-process so the patch applies and no task index is built.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
import torch

from harness_helpers import chain_adapter, write_task
from lm_eval_infogain.leaderboard.cli import OUTPUT_FILES, leaderboard_main, regress_main
from test_leaderboard import parse_markdown_table, png_info

torch.set_num_threads(1)

PACKAGE = Path(__file__).resolve().parents[1] / "lm_eval_infogain"
DEMO_MODEL = PACKAGE / "demo" / "model" / "config.json"
DEMO_TASK = "infogain_demo_sudoku"
DEMO_LIMIT = 10
#: The task's recommended_model_args (one block over the 81 cells), plus one batch for the 10 puzzles.
DEMO_ARGS = f"block_size=81,batch_size={DEMO_LIMIT}"


def _demo_missing() -> str | None:
    if not DEMO_MODEL.is_file():
        return f"the bundled demo model is not built yet ({DEMO_MODEL.relative_to(PACKAGE.parent)} missing)"
    from lm_eval_infogain.harness.plugin import task_dir

    if not list(Path(task_dir()).rglob(f"{DEMO_TASK}.yaml")):
        return f"task {DEMO_TASK} is not in the task folder yet"
    return None


def run_lm_eval(out: Path, model_args: str, task: str, include_path: str, limit: int | None) -> Path:
    """One evaluation saved like ``lm_eval --output_path OUT --log_samples``."""
    import lm_eval_infogain
    from lm_eval import simple_evaluate
    from lm_eval.loggers import EvaluationTracker
    from lm_eval.tasks import TaskManager

    lm_eval_infogain.register()
    tracker = EvaluationTracker(output_path=str(out))
    results = simple_evaluate(
        model="infogain_mdm", model_args=model_args, tasks=[task], limit=limit, log_samples=True,
        task_manager=TaskManager(include_defaults=False, include_path=include_path), evaluation_tracker=tracker,
    )
    samples = results.pop("samples")
    tracker.save_results_aggregated(results=results, samples=samples)
    for name in results["configs"]:
        tracker.save_results_samples(task_name=name, samples=samples[name])
    return out


@pytest.fixture(scope="module")
def chain_runs(tmp_path_factory):
    import lm_eval_infogain.models.loader as loader

    root = tmp_path_factory.mktemp("chain")
    tasks = write_task(root / "tasks")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(loader, "load_mdm", lambda *a, **k: chain_adapter(max_length=k.get("max_length", 512)))
        for sampler in ("confidence", "random", "info_gain"):
            run_lm_eval(root / "runs" / sampler, f"pretrained=chain/model,sampler={sampler},gen_length=6",
                        "harness_chain", str(tasks), None)
    return root / "runs"


@pytest.fixture(scope="module")
def demo_runs(tmp_path_factory):
    reason = _demo_missing()
    if reason:
        pytest.skip(reason)
    from lm_eval_infogain.harness.plugin import task_dir

    root = tmp_path_factory.mktemp("demo")
    for sampler in ("confidence", "random"):
        run_lm_eval(root / "runs" / sampler, f"sampler={sampler},{DEMO_ARGS}", DEMO_TASK, str(task_dir()), DEMO_LIMIT)
    return root / "runs"


def _check_board(runs: Path, out: Path) -> None:
    """Every file written; every Markdown number recomputed from the results JSON files."""
    assert leaderboard_main([str(runs), "-o", str(out)]) == 0
    for name in OUTPUT_FILES:
        assert (out / name).stat().st_size > 500, name
    for name in ("entropy_vs_accuracy.png", "speed_vs_accuracy.png"):
        assert png_info(out / name)["text"]["Software"].startswith("Matplotlib")
    rows = {r["Sampler"]: r for r in parse_markdown_table((out / "leaderboard.md").read_text())}
    files = sorted(runs.rglob("results_*.json"))
    assert len(rows) == len(files) >= 2
    values: dict[str, float] = {}
    for path in files:
        data = json.loads(path.read_text())
        info = data["config"]["infogain"]
        row = rows[info["sampler"]]
        (task, table), = data["results"].items()
        key = next(k for k in table if "," in k and "_stderr," not in k)  # the task's first metric
        metric, _, filt = key.partition(",")
        value, err = table[key] * 100, table[f"{metric}_stderr,{filt}"]
        expected = f"{value:.1f}" + ("" if err == "N/A" else f" ± {err * 100:.1f}")
        assert row[task] == expected
        assert row["H̃"] == f"{info['totals']['cumulative_entropy_mean']:.1f}"
        assert row["Calls"] == f"{info['totals']['model_calls_mean']:.1f}"
        tps = info["totals"]["generated_tokens"] / info["totals"]["wall_time_s"]
        assert row["Tok/s"] == f"{tps:.1f}"
        # the per-sample statistics file sits beside the results and agrees with the totals
        lines = [json.loads(x) for x in next(path.parent.glob("infogain_samples_*.jsonl")).read_text().splitlines()]
        assert statistics.fmean(x["cumulative_entropy"] for x in lines) == pytest.approx(info["totals"]["cumulative_entropy_mean"])
        values[info["sampler"]] = value
    for sampler, value in values.items():
        if sampler != "confidence":
            assert rows[sampler]["Δ vs confidence"] == f"{value - values['confidence']:+.1f}"


def test_leaderboard_from_real_chain_runs(chain_runs, tmp_path):
    _check_board(chain_runs, tmp_path / "board")


def test_regress_on_real_chain_runs(chain_runs, tmp_path):
    baseline = tmp_path / "baseline.json"
    conf = chain_runs / "confidence"
    assert regress_main(["--write-baseline", "--baseline", str(baseline), "--current", str(conf)]) == 0
    assert regress_main(["--baseline", str(baseline), "--current", str(conf)]) == 0


@pytest.mark.slow
def test_leaderboard_from_real_demo_runs(demo_runs, tmp_path):
    _check_board(demo_runs, tmp_path / "board")


@pytest.mark.slow
def test_regress_bites_on_a_really_broken_sampler(demo_runs, tmp_path, capsys):
    """Confidence order reversed (least confident first) must fail the check; the run itself passes."""
    from lm_eval_infogain.harness.plugin import task_dir
    from lm_eval_infogain.sampling import strategies

    baseline = tmp_path / "ci_baseline.json"
    assert regress_main(["--write-baseline", "--baseline", str(baseline), "--current", str(demo_runs / "confidence")]) == 0
    assert regress_main(["--baseline", str(baseline), "--current", str(demo_runs / "confidence")]) == 0
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(strategies.Confidence, "score", lambda self, v: -v.conf)
        broken = run_lm_eval(tmp_path / "broken", f"sampler=confidence,{DEMO_ARGS}", DEMO_TASK,
                             str(task_dir()), DEMO_LIMIT)
    capsys.readouterr()
    assert regress_main(["--baseline", str(baseline), "--current", str(broken)]) == 1
    out = capsys.readouterr().out
    assert "REGRESSION" in out and DEMO_TASK in [ln for ln in out.splitlines() if "DROP" in ln][0]


def test_paired_comparison_on_real_chain_runs(chain_runs, tmp_path):
    """The paired cells of runs saved with --log_samples, recomputed from their samples files."""
    from lm_eval_infogain.leaderboard.paired import paired_bootstrap

    out = tmp_path / "board"
    assert leaderboard_main([str(chain_runs), "-o", str(out)]) == 0
    rows = {r["Sampler"]: r for r in parse_markdown_table((out / "leaderboard.md").read_text())}

    def scores(sampler: str) -> list[float]:
        lines = [json.loads(x) for x in next((chain_runs / sampler).rglob("samples_*.jsonl")).read_text().splitlines()]
        return [float(r["exact_match"]) for r in sorted(lines, key=lambda r: r["doc_id"])]

    base = scores("confidence")
    assert rows["confidence"]["W/T/L"] == "ref"
    for sampler in ("random", "info_gain"):
        mine = scores(sampler)
        delta = (sum(mine) - sum(base)) / len(base) * 100
        low, high = paired_bootstrap(mine, base)
        assert rows[sampler]["paired Δ [95% CI]"] == f"{delta:+.1f} [{low * 100:+.1f}, {high * 100:+.1f}]"
        wins = sum(x > y for x, y in zip(mine, base))
        losses = sum(x < y for x, y in zip(mine, base))
        assert rows[sampler]["W/T/L"] == f"{wins}/{len(base) - wins - losses}/{losses}"
