"""Per-sample statistics as JSONL, written beside lm-eval's own outputs.

lm-eval never tells a model its ``--output_path``. The folder it writes ``results_<date>.json``
into is only known when its ``EvaluationTracker`` saves (``<output_path>/<sanitized model name>/``,
or the parent of an ``output_path`` ending in ``.json``); the plugin wraps that save (see
``plugin.on_tracker_imported``) and calls :func:`write_beside_results`, which writes
``infogain_samples_<same date>.jsonl`` there — so the pair shares its timestamp.

Where that hook is not installed (or to choose the place yourself) the model writes at the end of
the run to ``stats_path`` (model_arg) or ``$LM_EVAL_INFOGAIN_STATS_PATH``: a ``.jsonl`` file, or a
folder that gets ``infogain_samples_<UTC timestamp>.jsonl``.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

__all__ = ["RECORD_FIELDS", "STATS_PATH_ENV", "publish", "write_records", "resolve_explicit_path", "write_beside_results"]

STATS_PATH_ENV = "LM_EVAL_INFOGAIN_STATS_PATH"
#: Keys of one JSONL line, in order.
RECORD_FIELDS: tuple[str, ...] = (
    "task", "doc_id", "repeat", "request_key", "cumulative_entropy", "model_calls", "rows_forwarded",
    "tokens_forwarded", "generated_tokens", "steps", "wall_time_s", "stats_source",
)

#: Records of the last finished run in this process (set on rank 0 by the model's get_model_info).
_pending: list[dict[str, Any]] = []


def publish(records: Iterable[dict[str, Any]]) -> None:
    """Hand the finished run's records to the results-saving hook."""
    _pending[:] = list(records)


def write_records(path: Path, records: Iterable[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps({key: record.get(key) for key in RECORD_FIELDS}, ensure_ascii=False) + "\n")
    return path


def _utc_stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H-%M-%S.%fZ")


def resolve_explicit_path(stats_path: str | None) -> Path | None:
    """The file named by ``stats_path`` / the environment variable, or ``None`` when neither is set."""
    target = stats_path or os.environ.get(STATS_PATH_ENV) or None
    if target is None:
        return None
    path = Path(target).expanduser()
    return path if path.suffix == ".jsonl" else path / f"infogain_samples_{_utc_stamp()}.jsonl"


def results_folder(tracker: Any) -> Path | None:
    """The folder lm-eval's tracker just wrote ``results_*.json`` into (its own rule)."""
    output_path = getattr(tracker, "output_path", None)
    if not output_path:
        return None
    path = Path(output_path)
    if path.suffix == ".json":
        return path.parent
    name = getattr(getattr(tracker, "general_config_tracker", None), "model_name_sanitized", None)
    return path / str(name)


def write_beside_results(tracker: Any) -> Path | None:
    folder = results_folder(tracker)
    if folder is None or not _pending:
        return None
    date_id = getattr(tracker, "date_id", None) or _utc_stamp()
    path = write_records(folder / f"infogain_samples_{date_id}.jsonl", _pending)
    _pending.clear()
    return path
