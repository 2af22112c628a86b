"""Registration with lm-eval: the ``.pth`` bootstrap, task discovery, built-ins untouched.

The fast tests run the bootstrap in fresh interpreters; the slow test installs the package
non-editable into a fresh virtual environment and runs the real CLI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

import lm_eval_infogain_bootstrap as bootstrap
from harness_helpers import save_tiny_bert, write_task

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
ENV.pop("LM_EVAL_INFOGAIN_DISABLE", None)


@pytest.mark.parametrize(
    "argv, orig, expected",
    [
        (["/usr/bin/lm_eval"], ["/usr/bin/python", "/usr/bin/lm_eval"], True),
        (["/venv/bin/lm-eval"], ["/venv/bin/python", "/venv/bin/lm-eval", "run"], True),
        (["-m"], ["python", "-m", "lm_eval", "--tasks", "x"], True),
        (["-m"], ["python", "-u", "-X", "utf8", "-m", "lm_eval"], True),
        (["-m"], ["python", "-mlm_eval"], True),
        (["-m"], ["python", "-m", "pytest"], False),
        (["-c"], ["python", "-c", "import lm_eval"], False),
        (["script.py"], ["python", "script.py", "-m", "lm_eval"], False),
        (["/usr/bin/torchrun"], ["python", "/usr/bin/torchrun", "-m", "lm_eval"], False),  # its children are
    ],
)
def test_cli_detection(argv, orig, expected):
    assert bootstrap.is_lm_eval_cli(argv, orig) is expected


def _probe(code: str, *, argv0: str = "lm_eval", env: dict | None = None) -> dict:
    """Run ``code`` in a fresh interpreter whose argv looks like lm-eval's CLI, after the bootstrap."""
    script = textwrap.dedent(f"""
        import json, sys
        sys.argv = [{argv0!r}]
        import lm_eval_infogain_bootstrap as b
        b.startup()
        out = {{}}
    """) + textwrap.dedent(code) + "\nprint(json.dumps(out))\n"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env or ENV, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


PROBE = """
    out["before"] = "lm_eval_infogain" in sys.modules
    from lm_eval.api.registry import get_model, model_registry
    out["ours"] = get_model("infogain_mdm").__module__
    out["hf"] = get_model("hf").__name__
    out["builtins"] = len(model_registry)
    import lm_eval.tasks._index as index
    out["patched"] = bool(getattr(index.TaskIndex.build, "_lm_eval_infogain_patched", False))
    out["torch"] = "torch" in sys.modules and "lm_eval_infogain.harness.lm" not in sys.modules
"""


def test_bootstrap_registers_lazily_inside_the_cli_and_keeps_builtins():
    out = _probe(PROBE)
    assert out["before"] is False  # nothing of ours is imported before lm-eval imports its modules
    assert out["ours"] == "lm_eval_infogain.harness.lm" and out["hf"] == "HFLM"
    assert out["builtins"] > 30 and out["patched"]


CHEAP = """
    import lm_eval
    out["after_import"] = sorted(m for m in sys.modules if m.startswith("lm_eval_infogain"))
    out["torch"] = "torch" in sys.modules
    import lm_eval.models
    from lm_eval.api.registry import model_registry
    out["registered"] = "infogain_mdm" in model_registry
    out["after_models"] = sorted(m for m in sys.modules if m.startswith("lm_eval_infogain"))
    out["torch_after_models"] = "torch" in sys.modules
"""


def test_plain_python_gets_the_model_lazily_and_import_lm_eval_stays_cheap():
    """Outside the CLI too (item 6 of #14): ``import lm_eval`` imports nothing of ours and no torch;
    once lm-eval fills its registry the model is there, still without torch or our package."""
    out = _probe(CHEAP, argv0="-c")
    assert out["after_import"] == ["lm_eval_infogain_bootstrap"] and out["torch"] is False
    assert out["registered"] is True
    assert out["after_models"] == ["lm_eval_infogain_bootstrap"] and out["torch_after_models"] is False


def test_disabled_bootstrap_registers_nothing():
    disabled = _probe(
        'import lm_eval.models\nfrom lm_eval.api.registry import model_registry\nout["ours"] = "infogain_mdm" in model_registry',
        env={**ENV, "LM_EVAL_INFOGAIN_DISABLE": "1"}, argv0="-c",
    )
    assert disabled == {"ours": False}


def test_task_lookup_and_simple_evaluate_without_importing_the_plugin():
    """A fresh interpreter that never imports lm_eval_infogain finds our tasks through lm-eval's own
    ``TaskManager()`` and evaluates ``model="infogain_mdm"`` (the bundled model, 2 documents)."""
    out = _probe("""
        from lm_eval import simple_evaluate
        from lm_eval.tasks import TaskManager
        manager = TaskManager()
        out["tasks"] = sorted(t for t in manager.all_tasks if t.startswith("infogain_demo"))
        out["imported_before"] = "lm_eval_infogain.harness.lm" in sys.modules
        results = simple_evaluate(model="infogain_mdm", model_args="sampler=confidence",
                                  tasks=["infogain_demo_addition"], limit=2, task_manager=manager, bootstrap_iters=0)
        out["samples"] = results["config"]["infogain"]["totals"]["samples"]
        out["accuracy"] = results["results"]["infogain_demo_addition"]["accuracy,none"]
    """, argv0="-c")
    assert {"infogain_demo_sudoku", "infogain_demo_addition", "infogain_demo_addition_parallel"} <= set(out["tasks"])
    assert out["imported_before"] is False
    assert out["samples"] == 2 and 0.0 <= out["accuracy"] <= 1.0


def test_task_folder_is_added_only_next_to_lm_evals_own(tmp_path):
    from lm_eval_infogain.harness.plugin import _with_our_tasks, task_dir

    default = tmp_path / "lm_eval_tasks"
    user = tmp_path / "mine"
    default.mkdir(), user.mkdir()
    ours = Path(task_dir())
    assert _with_our_tasks([default, user], default) == [default, ours, user]  # user's folder still wins
    assert _with_our_tasks([user], default) == [user]  # include_defaults=False: untouched
    assert _with_our_tasks([default, ours], default) == [default, ours]  # never twice
    assert (ours / "infogain_sudoku.yaml").is_file() or not any(ours.glob("*.yaml"))


def test_entry_points_are_declared():
    from importlib.metadata import entry_points

    models = {ep.name: ep.value for ep in entry_points(group="lm_eval.models")}
    tasks = {ep.name: ep for ep in entry_points(group="lm_eval.tasks")}
    assert models.get("infogain_mdm") == "lm_eval_infogain.harness.lm:InfoGainLM"
    target = tasks["infogain"].load()
    assert Path(target).is_dir() and Path(target()).is_dir() and target == target()


# ---------------------------------------------------------------- fresh virtual environment
def _console_script(venv: Path, name: str, module: str, func: str) -> Path:
    """The wrapper pip writes for a console script (lm-eval itself lives outside the venv here)."""
    script = venv / "bin" / name
    script.write_text(f"#!{venv / 'bin' / 'python'}\nimport sys\nfrom {module} import {func}\nsys.exit({func}())\n")
    script.chmod(0o755)
    return script


@pytest.mark.slow
def test_pip_install_into_fresh_venv_then_plain_lm_eval(tmp_path):
    """``pip install .`` (not editable) into a new venv; from outside the checkout, ``lm_eval`` finds
    ``infogain_mdm`` and our tasks without ``--include_path``; ``--model hf`` still works;
    ``import lm_eval`` alone does not import us."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    # torch, lm-eval, pip... come from the system site-packages as *plain paths*: unlike
    # --system-site-packages this does not run the system's .pth files, so a development (editable)
    # install of this project there cannot stand in for the one under test.
    (site / "_system_packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    work = tmp_path / "elsewhere"
    work.mkdir()
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", "-q", str(REPO)],
        capture_output=True, text=True, cwd=work, env=ENV, timeout=600,
    )
    assert install.returncode == 0, install.stdout[-2000:] + install.stderr[-3000:]
    assert (site / "lm_eval_infogain.pth").is_file() and (site / "lm_eval_infogain_bootstrap.py").is_file()
    assert (site / "lm_eval_infogain" / "task_configs" / "infogain_sudoku.yaml").is_file()
    where = subprocess.run([str(python), "-c", "import lm_eval, sys, lm_eval_infogain; "
                            "print(lm_eval_infogain.__file__)"], capture_output=True, text=True, cwd=work, env=ENV)
    assert where.stdout.strip().startswith(str(site)), where.stdout + where.stderr
    # lm-eval's own task index lists every task and group we ship
    shipped = {line.split(":", 1)[1].strip() for yaml in (REPO / "task_configs").glob("*.yaml")
               for line in yaml.read_text().splitlines() if line.startswith(("task:", "group:"))}
    listing = subprocess.run([str(python), "-m", "lm_eval", "ls", "tasks"], capture_output=True, text=True,
                             cwd=work, env=ENV, timeout=600)
    listed = {cell.strip() for line in listing.stdout.splitlines() for cell in line.split("|")}
    assert len(shipped) >= 20 and not shipped - listed, (sorted(shipped - listed), listing.stderr[-2000:])
    alone = subprocess.run([str(python), "-c", "import lm_eval, lm_eval.models, sys; "
                            "from lm_eval.api.registry import model_registry; "
                            "print('lm_eval_infogain' in sys.modules, 'torch' in sys.modules, 'infogain_mdm' in model_registry)"],
                           capture_output=True, text=True, cwd=work, env=ENV)
    assert alone.stdout.strip() == "False False True", alone.stderr[-2000:]

    model = save_tiny_bert(tmp_path / "bert")
    lm_eval_cli = _console_script(venv, "lm_eval", "lm_eval.__main__", "cli_evaluate")
    run = subprocess.run(
        [str(lm_eval_cli), "--model", "infogain_mdm", "--model_args",
         f"pretrained={model},sampler=confidence,gen_length=8", "--tasks", "infogain_sudoku", "--limit", "4",
         "--output_path", str(work / "out")],
        capture_output=True, text=True, cwd=work, env=ENV, timeout=900,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    results = json.loads(next((work / "out").rglob("results_*.json")).read_text())
    assert "infogain_sudoku" in results["results"]
    assert results["config"]["infogain"]["totals"]["samples"] == 4
    assert len(next((work / "out").rglob("infogain_samples_*.jsonl")).read_text().splitlines()) == 4

    # python -m lm_eval with lm-eval's own backend: the built-in registry is intact.
    from transformers import GPT2Config, GPT2LMHeadModel

    from harness_helpers import word_tokenizer

    gpt = tmp_path / "gpt2"
    GPT2LMHeadModel(GPT2Config(vocab_size=40, n_positions=64, n_embd=16, n_layer=1, n_head=2)).save_pretrained(gpt)
    word_tokenizer().save_pretrained(gpt)
    tasks = write_task(tmp_path / "tasks")
    hf = subprocess.run(
        [str(python), "-m", "lm_eval", "--model", "hf", "--model_args", f"pretrained={gpt}", "--tasks",
         "harness_chain", "--include_path", str(tasks), "--limit", "2", "--device", "cpu"],
        capture_output=True, text=True, cwd=work, env=ENV, timeout=900,
    )
    assert hf.returncode == 0, hf.stderr[-4000:]
    assert "harness_chain" in hf.stdout
