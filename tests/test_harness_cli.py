"""lm-eval's CLI with ``--model infogain_mdm``: bad input in one line before tasks load, lm-eval's
own flags merged, no CUDA warning nobody asked for, the bundled model's results folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from harness_helpers import install_scripted, restore_cli_side_effects, write_task
from lm_eval_infogain.harness import cli_checks
from lm_eval_infogain.harness.lm import DEMO_MODEL_DIR

torch.set_num_threads(1)
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
ENV.pop("LM_EVAL_INFOGAIN_DISABLE", None)


@pytest.fixture(autouse=True)
def _keep_process_state(monkeypatch):
    yield from restore_cli_side_effects(monkeypatch)


def _lm_eval_logs_to_current_stderr() -> None:
    """lm-eval's log handler is created once per process, on the stderr of the test that ran first;
    point it at this test's (captured) stderr. Call it in the test body: capture starts there."""
    import logging

    for handler in logging.getLogger("lm_eval").handlers:
        # lm-eval's own handler only: pytest (>= 9.1) also attaches its capture handlers, StreamHandler
        # subclasses, to non-propagating loggers such as lm-eval's, and must keep their streams.
        if type(handler) is logging.StreamHandler:
            handler.stream = sys.stderr  # (setStream would flush the closed stream of an earlier test)


def _bad_checkpoints(tmp_path: Path) -> dict[str, Path]:
    corrupt_config = tmp_path / "corrupt_config"
    shutil.copytree(DEMO_MODEL_DIR, corrupt_config)
    (corrupt_config / "config.json").write_text('{"model_type": "lla')
    truncated = tmp_path / "truncated"
    shutil.copytree(DEMO_MODEL_DIR, truncated)
    data = (truncated / "model.safetensors").read_bytes()
    (truncated / "model.safetensors").write_bytes(data[: len(data) // 3])
    return {"corrupt_config": corrupt_config, "truncated": truncated}


@pytest.mark.parametrize(
    "model_args, error, names",
    [
        ("samplr=confidence", "ModelArgsError", "samplr"),
        ("threshold=1.5", "DecodingConfigError", "threshold=1.5"),
        ("batch_size=auto:0", "ModelArgsError", "auto:0"),
        ("pretrained=/nonexistent/path", "CheckpointNotFoundError", "neither a local folder"),
        ("pretrained={readme}", "CheckpointNotFoundError", "is a file, not a checkpoint folder"),
        ("pretrained={corrupt_config}", "CorruptCheckpointError", "config.json is not valid JSON"),
        ("pretrained={truncated}", "CorruptCheckpointError", "model.safetensors"),
    ],
)
def test_bad_model_args_fail_in_one_line_before_any_task_loads(tmp_path, monkeypatch, capsys, model_args, error, names):
    from lm_eval.config.evaluate_config import EvaluatorConfig

    from lm_eval_infogain.cli import main

    _lm_eval_logs_to_current_stderr()
    loaded = []
    monkeypatch.setattr(EvaluatorConfig, "process_tasks", lambda self, *a, **k: loaded.append(1))
    paths = {"readme": Path(__file__).resolve().parents[1] / "README.md", **_bad_checkpoints(tmp_path)}
    code = main(["eval", "--model", "infogain_mdm", "--model_args", model_args.format(**paths),
                 "--tasks", "harness_chain"])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("lm_eval: error:")]
    assert code == 2 and loaded == []  # stopped before lm-eval indexed or loaded any task
    assert len(lines) == 1 and lines[0].startswith(f"lm_eval: error: infogain_mdm: {error}: ") and names in lines[0]
    assert "Traceback" not in err
    if "{" in model_args:
        assert str(next(iter(p for k, p in paths.items() if "{" + k + "}" in model_args))) in lines[0]


def test_real_cli_reports_a_missing_checkpoint_in_one_line(tmp_path):
    exe = shutil.which("lm_eval")
    if exe is None:
        pytest.skip("the lm_eval console script is not installed")
    done = subprocess.run([exe, "--model", "infogain_mdm", "--model_args", "pretrained=./no/such/checkpoint",
                           "--tasks", "infogain_demo_sudoku"], capture_output=True, text=True, env=ENV, cwd=tmp_path,
                          timeout=300)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        "lm_eval: error: infogain_mdm: CheckpointNotFoundError: pretrained='./no/such/checkpoint' is neither a local "
        f"folder (no such path: {tmp_path / 'no/such/checkpoint'}) nor a Hugging Face hub id ('name' or 'owner/name')"
    )
    assert "Traceback" not in done.stderr


def test_later_input_errors_are_one_line_and_bugs_keep_their_traceback(capsys):
    from lm_eval_infogain.harness.options import ModelArgsError

    seen = []
    hook = cli_checks.one_line_errors(lambda *args: seen.append(args[0]))
    hook(ModelArgsError, ModelArgsError("cache='dual' is not supported by this model"), None)
    assert capsys.readouterr().err == (
        "lm_eval: error: infogain_mdm: ModelArgsError: cache='dual' is not supported by this model\n")
    hook(ValueError, ValueError("a bug"), None)  # not one of our named errors: the normal hook
    hook(KeyError, KeyError("x"), None)
    assert seen == [ValueError, KeyError]


def test_cli_without_device_or_batch_flags_warns_about_nothing(tmp_path, monkeypatch, capfd):
    """lm-eval passes device=cuda:0 and batch_size=1 even when the user typed neither: no CUDA warning,
    model_args batch_size=4 wins silently; the results folder is named after pretrained."""
    from lm_eval_infogain.cli import main

    install_scripted(monkeypatch)
    _lm_eval_logs_to_current_stderr()
    tasks = write_task(tmp_path / "tasks")
    code = main(["eval", "--model", "infogain_mdm", "--model_args", "pretrained=org/model,sampler=confidence,batch_size=4",
                 "--tasks", "harness_chain", "--include_path", str(tasks), "--limit", "2",
                 "--output_path", str(tmp_path / "out")])
    err = capfd.readouterr().err
    assert code == 0
    assert "CUDA is not available" not in err and "given twice" not in err
    info = json.loads(next((tmp_path / "out" / "org__model").glob("results_*.json")).read_text())["config"]["infogain"]
    assert info["batch_size"] == "4" and info["device"] == ("cuda" if torch.cuda.is_available() else "cpu")
    assert cli_checks.take_flags_given() is None  # consumed by the model the CLI built


def test_bundled_model_results_folder_is_named_after_it(tmp_path):
    """Without pretrained= lm-eval would pick a random folder name (e.g. out/qdpv68r5/)."""
    from lm_eval.loggers.evaluation_tracker import GeneralConfigTracker

    tracker = GeneralConfigTracker()
    tracker.log_experiment_args(model_source="infogain_mdm", model_args={"sampler": "random"},
                                system_instruction=None, chat_template=None, fewshot_as_multiturn=False)
    assert tracker.model_name == "demo/model" and tracker.model_name_sanitized == "demo__model"
    other = GeneralConfigTracker()
    other.log_experiment_args(model_source="infogain_mdm", model_args="pretrained=org/ckpt",
                              system_instruction=None, chat_template=None, fewshot_as_multiturn=False)
    assert other.model_name_sanitized == "org__ckpt"
