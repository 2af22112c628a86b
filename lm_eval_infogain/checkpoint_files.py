"""Checks of a checkpoint's files before anything is loaded, each failure a named error naming the file.

Without them a bad ``pretrained=`` ends deep inside other libraries: a missing local path as
``HFValidationError: Repo id must be in the form ...``, a corrupt ``config.json`` as a bare
``JSONDecodeError``, a truncated weights file as ``SafetensorError: incomplete metadata`` — none of
which says which file is at fault. Everything here is standard library (no torch) and lives outside
``models/`` (whose package imports torch), so lm-eval's CLI can run the same checks before it spends
time loading tasks; ``models.loader`` runs them before it reads any weights.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

__all__ = [
    "CheckpointError",
    "CheckpointNotFoundError",
    "CorruptCheckpointError",
    "MissingWeightsError",
    "local_checkpoint_folder",
    "read_config_file",
    "read_json_file",
    "weight_files",
    "check_safetensors_file",
    "check_weights",
]

#: Weight files ``from_pretrained`` and our native loader read, in order of preference.
WEIGHT_FILES: tuple[str, ...] = (
    "model.safetensors.index.json", "model.safetensors", "pytorch_model.bin.index.json", "pytorch_model.bin",
)  # fmt: skip
_MAX_HEADER = 100 * 1024 * 1024  # safetensors' own limit on the JSON header


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded; the message names the path or file at fault."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """``pretrained`` names no checkpoint folder: a missing path, a file, or a folder without config.json."""


class CorruptCheckpointError(CheckpointError):
    """A file of the checkpoint exists but cannot be parsed (bad JSON, truncated or garbage weights)."""


class MissingWeightsError(CheckpointError, FileNotFoundError):
    """The checkpoint folder has a config but no weight file."""


def _is_hub_id(name: str) -> bool:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def local_checkpoint_folder(name_or_path: str | Path) -> Path | None:
    """The local folder ``name_or_path`` names, or ``None`` when it is a hub id to download.

    Raises :class:`CheckpointNotFoundError` for an existing file (a folder is needed) and for a
    path that does not exist and cannot be a hub id either (``/nonexistent/path``, ``./ckpt/``).
    """
    text = str(name_or_path)
    path = Path(text).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise CheckpointNotFoundError(
            f"pretrained={text!r} is a file, not a checkpoint folder (a folder holding config.json and the weights)"
        )
    if isinstance(name_or_path, str) and _is_hub_id(text):
        return None
    raise CheckpointNotFoundError(
        f"pretrained={text!r} is neither a local folder (no such path: {path.absolute()}) "
        "nor a Hugging Face hub id ('name' or 'owner/name')"
    )


def read_json_file(file: Path, what: str) -> Any:
    """A JSON file of the checkpoint; unreadable or invalid JSON is a :class:`CorruptCheckpointError`."""
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise CorruptCheckpointError(f"{file}: {what} is not UTF-8 text ({err.reason} at byte {err.start})") from None
    except OSError as err:
        raise CorruptCheckpointError(f"{file}: cannot read {what} ({err.strerror or err})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise CorruptCheckpointError(
            f"{file}: {what} is not valid JSON ({err.msg}: line {err.lineno} column {err.colno})"
        ) from None


def read_config_file(file: Path) -> dict[str, Any]:
    """``config.json`` as a dict; a missing, unreadable or non-object file is a named error."""
    if not file.is_file():
        raise CheckpointNotFoundError(f"{file.parent} is not a checkpoint folder: it has no config.json")
    data = read_json_file(file, "config.json")
    if not isinstance(data, dict):
        raise CorruptCheckpointError(f"{file}: config.json must hold a JSON object, not {type(data).__name__}")
    return data


def weight_files(folder: Path) -> list[Path]:
    """Every weight file the checkpoint's index (or single file) names, checked to exist."""
    for name in WEIGHT_FILES:
        file = folder / name
        if not file.is_file():
            continue
        if not name.endswith(".index.json"):
            return [file]
        index = read_json_file(file, "the weights index")
        weight_map = index.get("weight_map") if isinstance(index, dict) else None
        if not isinstance(weight_map, dict) or not weight_map:
            raise CorruptCheckpointError(f"{file}: the weights index has no 'weight_map' table")
        shards = [folder / str(shard) for shard in dict.fromkeys(weight_map.values())]
        missing = [shard.name for shard in shards if not shard.is_file()]
        if missing:
            raise MissingWeightsError(f"{file} names weight files that are not in {folder}: {', '.join(missing[:5])}")
        return shards
    raise MissingWeightsError(f"{folder} has no weights: none of {', '.join(WEIGHT_FILES)} is there")


def check_safetensors_file(file: Path) -> None:
    """A safetensors file's header parses and every tensor it lists lies inside the file.

    Reads only the header (8-byte length + JSON), so it catches garbage and truncated downloads of
    multi-GB files in microseconds, before any tensor is allocated.
    """
    size = file.stat().st_size
    with file.open("rb") as handle:
        head = handle.read(8)
        if len(head) < 8:
            raise CorruptCheckpointError(f"{file}: not a safetensors file ({size} bytes, shorter than its header)")
        (length,) = struct.unpack("<Q", head)
        if length > min(_MAX_HEADER, size - 8):
            raise CorruptCheckpointError(
                f"{file}: not a safetensors file, or truncated (its header claims {length} bytes; the file has {size})"
            )
        raw = handle.read(length)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CorruptCheckpointError(f"{file}: not a safetensors file (its header is not JSON)") from None
    if not isinstance(header, dict):
        raise CorruptCheckpointError(f"{file}: not a safetensors file (its header is not a JSON object)")
    data_size = size - 8 - length
    end = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)):
            raise CorruptCheckpointError(f"{file}: not a safetensors file (tensor {name!r} has no data_offsets)")
        end = max(end, offsets[1])
    if end > data_size:
        raise CorruptCheckpointError(
            f"{file}: truncated — its tensors need {end} bytes of data, the file holds {data_size}"
        )


def check_weights(folder: Path) -> list[Path]:
    """The checkpoint's weight files, each safetensors one checked by :func:`check_safetensors_file`."""
    files = weight_files(folder)
    for file in files:
        if file.suffix == ".safetensors":
            check_safetensors_file(file)
    return files
