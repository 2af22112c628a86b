"""Read lm-eval output folders into plain records, tolerating every layout lm-eval has written.

lm-eval 0.4.3+ writes ``OUT/<sanitized model>/results_<timestamp>.json`` (or ``<stem>_<timestamp>.json``
when ``--output_path`` names a ``.json`` file); 0.4.0/0.4.1 wrote ``OUT/results.json``. Rather than
guessing from names, any ``*.json`` whose top level has a ``results`` mapping plus one of lm-eval's
bookkeeping keys is a results file; a ``*.json`` that cannot be read at all is skipped with a note
naming it. Our model adds ``config["infogain"]`` (schema 1, or 2 with the decoding settings each task
really used, the seed's source, batch size and cache counts) and an
``infogain_samples_<timestamp>.jsonl`` beside the results; other models simply have no statistics.
Statistics recorded as missing (``null``) stay ``None`` here, so tables show "–", never 0.
"""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

__all__ = [
    "MetricValue",
    "TaskStats",
    "TaskResult",
    "RunResult",
    "ResultsLayoutError",
    "discover_result_files",
    "load_run",
    "load_runs",
    "parse_metric_key",
    "model_name_from_args",
    "portable_model_name",
]

log = logging.getLogger(__name__)
#: Called with (file, reason) for every ``*.json`` that is skipped because it cannot be read.
SkipNote = Callable[[Path, str], None]
_LM_EVAL_MARKERS = ("config", "configs", "versions", "n-shot", "higher_is_better")
_NON_METRIC_KEYS = {"alias", "name", "sample_len", "sample_count", "samples", " "}
_STAT_KEYS = (
    "samples",
    "cumulative_entropy_mean",
    "model_calls_mean",
    "rows_forwarded_mean",
    "tokens_forwarded_mean",
    "generated_tokens",
    "wall_time_s",
    "tokens_per_second",
)


class ResultsLayoutError(ValueError):
    """A path given by the user holds no lm-eval results, or a results file cannot be parsed."""


@dataclass(frozen=True)
class MetricValue:
    value: float
    stderr: float | None  # None where lm-eval wrote "N/A" (bootstrap off, or no stderr for the metric)


@dataclass(frozen=True)
class TaskStats:
    """Decoding statistics of one task in one run (all means are per request)."""

    samples: int
    cumulative_entropy_mean: float | None
    model_calls_mean: float | None
    rows_forwarded_mean: float | None
    tokens_forwarded_mean: float | None
    generated_tokens: float | None
    wall_time_s: float | None
    #: Samples whose statistics could not be restored (cached answers without a stored record).
    statistics_missing: int = 0

    @property
    def tokens_per_second(self) -> float | None:
        if self.generated_tokens is None or not self.wall_time_s:
            return None
        return self.generated_tokens / self.wall_time_s

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> "TaskStats":
        def num(key: str) -> float | None:
            value = data.get(key)
            return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None

        return cls(
            samples=int(data.get("samples") or 0),
            cumulative_entropy_mean=num("cumulative_entropy_mean"),
            model_calls_mean=num("model_calls_mean"),
            rows_forwarded_mean=num("rows_forwarded_mean"),
            tokens_forwarded_mean=num("tokens_forwarded_mean"),
            generated_tokens=num("generated_tokens"),
            wall_time_s=num("wall_time_s"),
            statistics_missing=int(data.get("statistics_missing") or 0),
        )

    @classmethod
    def from_samples(cls, records: list[Mapping[str, Any]]) -> "TaskStats":
        """Summarise ``infogain_samples`` lines the same way the model summarises them (a line with
        missing statistics makes every statistic missing)."""
        missing = sum(1 for r in records if r.get("stats_source") == "missing")
        if missing or not records:
            return cls(len(records), None, None, None, None, None, None, missing)

        def mean(key: str) -> float | None:
            vals = [float(r[key]) for r in records if isinstance(r.get(key), (int, float))]
            return sum(vals) / len(vals) if vals else None

        def total(key: str) -> float | None:
            vals = [float(r[key]) for r in records if isinstance(r.get(key), (int, float))]
            return sum(vals) if vals else None

        return cls(
            samples=len(records),
            cumulative_entropy_mean=mean("cumulative_entropy"),
            model_calls_mean=mean("model_calls"),
            rows_forwarded_mean=mean("rows_forwarded"),
            tokens_forwarded_mean=mean("tokens_forwarded"),
            generated_tokens=total("generated_tokens"),
            wall_time_s=total("wall_time_s"),
        )


@dataclass
class TaskResult:
    """All metrics lm-eval reported for one task, keyed ``(metric, filter)`` in file order."""

    metrics: dict[tuple[str, str], MetricValue]
    higher_is_better: dict[str, bool]
    n_samples: int | None


@dataclass
class RunResult:
    """One results file: who decoded how, and what it scored."""

    path: Path
    timestamp: str
    model: str
    model_args: str
    sampler: str | None  # None for models that are not ours and name no sampler
    decoding: dict[str, Any]  # DecodingConfig fields (empty for other models)
    seed: Any
    limit: Any
    chat_template: bool
    tasks: dict[str, TaskResult]
    stats: dict[str, TaskStats] = field(default_factory=dict)
    totals: TaskStats | None = None
    infogain: dict[str, Any] | None = None
    per_sample_stats: list[dict[str, Any]] = field(default_factory=list)
    #: task -> DecodingConfig fields that task was decoded with (schema 2; empty before).
    task_decoding: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: ``--gen_kwargs`` of the run (they change what tasks decode with).
    gen_kwargs: Any = None
    batch_size: str | None = None
    device: str | None = None
    world_size: int | None = None


def parse_metric_key(key: str) -> tuple[str, str, bool]:
    """``"exact_match_stderr,strict-match"`` → ``("exact_match", "strict-match", True)``.

    Keys without a comma (lm-eval < 0.4) have the implicit filter ``none``.
    """
    metric, _, filter_name = key.partition(",")
    filter_name = filter_name or "none"
    if metric.endswith("_stderr"):
        return metric[: -len("_stderr")], filter_name, True
    return metric, filter_name, False


def model_name_from_args(model_args: Any) -> str | None:
    """The model name lm-eval's EvaluationTracker derives from ``model_args`` (same key order)."""
    prefixes = ("peft", "delta", "pretrained", "model", "path", "engine")
    if isinstance(model_args, Mapping):
        for key in prefixes:
            if model_args.get(key):
                return str(model_args[key])
        return None
    if isinstance(model_args, str):
        for key in prefixes:
            match = re.search(rf"(?:^|,)\s*{key}=([^,]*)", model_args)
            if match and match.group(1):
                return match.group(1)
    return None


def portable_model_name(model: str) -> str:
    """Hub ids stay as they are; a local checkpoint path keeps only its last two components.

    Tables and CI baselines are committed and compared across machines, so they must not carry
    (or match on) where a checkpoint happened to live: ``/ckpt/llada-sft/step-1000`` → ``llada-sft/step-1000``.
    """
    text = model.replace("\\", "/")
    if text.startswith(("/", "./", "../", "~")) or (len(text) > 2 and text[1] == ":"):
        parts = [p for p in text.split("/") if p not in ("", ".", "..", "~")]
        return "/".join(parts[-2:]) if parts else model
    return model


def _args_value(model_args: Any, key: str) -> Any:
    if isinstance(model_args, Mapping):
        return model_args.get(key)
    if isinstance(model_args, str):
        match = re.search(rf"(?:^|,)\s*{re.escape(key)}=([^,]*)", model_args)
        return match.group(1) if match else None
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _is_results_dict(data: Any) -> bool:
    return (
        isinstance(data, dict)
        and isinstance(data.get("results"), dict)
        and any(key in data for key in _LM_EVAL_MARKERS)
    )


def _log_skip(path: Path, reason: str) -> None:
    log.warning("skipped unreadable results file %s: %s", path, reason)


def discover_result_files(paths: Iterable[str | Path], on_skip: SkipNote | None = None) -> list[Path]:
    """Every lm-eval results file under the given files/folders (recursive), sorted by path.

    Raises :class:`ResultsLayoutError` naming the first path that does not exist or holds none. A
    ``*.json`` found in a folder that cannot be read as JSON is skipped, and ``on_skip(file, reason)``
    (default: a logged warning) names it.
    """
    on_skip = on_skip or _log_skip
    found: list[Path] = []
    for raw in paths:
        root = Path(raw)
        if not root.exists():
            raise ResultsLayoutError(f"results path does not exist: {root}")
        candidates = [root] if root.is_file() else sorted(p for p in root.rglob("*.json") if p.is_file())
        hits = [p for p in candidates if _is_results_dict(_read_json(p, strict=root.is_file(), on_skip=on_skip))]
        if not hits:
            raise ResultsLayoutError(f"no lm-eval results file (a JSON with a 'results' table) under {root}")
        found.extend(hits)
    return sorted(dict.fromkeys(p.resolve() for p in found))


def _read_json(path: Path, *, strict: bool, on_skip: SkipNote | None = None) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        if strict:
            raise ResultsLayoutError(f"cannot read {path} as JSON: {err}") from err
        if on_skip is not None:
            on_skip(path, str(err))
        return None


def _timestamp(path: Path, data: Mapping[str, Any]) -> str:
    """lm-eval's ``date_id`` from the file name; falls back to the recorded start time."""
    match = re.search(r"_(\d{4}-\d{2}-\d{2}T[\d\-.]+)\.json$", path.name)
    if match:
        return match.group(1)
    date = data.get("date")
    return f"{float(date):020.6f}" if isinstance(date, (int, float)) else ""


def _tasks(data: Mapping[str, Any]) -> dict[str, TaskResult]:
    group_subtasks = data.get("group_subtasks") or {}
    groups = {name for name, subtasks in group_subtasks.items() if subtasks}
    hib_all = data.get("higher_is_better") or {}
    n_all = data.get("n-samples") or {}
    out: dict[str, TaskResult] = {}
    for task, table in (data.get("results") or {}).items():
        if task in groups or not isinstance(table, Mapping):
            continue  # group rows aggregate their subtasks; the leaderboard shows leaves
        values: dict[tuple[str, str], float] = {}
        errors: dict[tuple[str, str], float | None] = {}
        for key, raw in table.items():
            if key in _NON_METRIC_KEYS:
                continue
            metric, filter_name, is_err = parse_metric_key(key)
            if is_err:
                errors[(metric, filter_name)] = _number(raw)
            elif _number(raw) is not None:
                values[(metric, filter_name)] = _number(raw)  # type: ignore[assignment]
        if not values:
            continue
        counts = n_all.get(task) or {}
        n = counts.get("effective") if isinstance(counts, Mapping) else None
        if n is None and isinstance(table.get("sample_len"), int):
            n = table["sample_len"]
        hib = {m: bool(v) for m, v in (hib_all.get(task) or {}).items() if v is not None}
        out[task] = TaskResult(
            metrics={k: MetricValue(v, errors.get(k)) for k, v in values.items()},
            higher_is_better=hib,
            n_samples=int(n) if isinstance(n, (int, float)) else None,
        )
    return out


def _per_sample_file(path: Path, timestamp: str) -> Path | None:
    candidate = path.parent / f"infogain_samples_{timestamp}.jsonl"
    if timestamp and candidate.is_file():
        return candidate
    return None


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line:
            try:
                item = json.loads(line)
            except json.JSONDecodeError:
                continue  # a truncated last line from an interrupted run
            if isinstance(item, dict):
                records.append(item)
    return records


def load_run(path: str | Path) -> RunResult:
    """Parse one results file (any layout) into a :class:`RunResult`."""
    path = Path(path)
    data = _read_json(path, strict=True)
    if not _is_results_dict(data):
        raise ResultsLayoutError(f"{path} is not an lm-eval results file (no 'results' table)")
    config = data.get("config") or {}
    model_args = config.get("model_args") or ""
    info = config.get("infogain") if isinstance(config.get("infogain"), dict) else None
    timestamp = _timestamp(path, data)
    chat = bool(data.get("chat_template") or data.get("chat_template_sha"))

    if info is not None:
        decoding = dict(info.get("decoding") or {})
        sampler = str(info.get("sampler") or decoding.get("sampler") or "")
        model = str(info.get("model_name") or info.get("pretrained") or model_name_from_args(model_args)
                    or config.get("model") or "?")
        model = portable_model_name(model)
        seed_info = info.get("seed")
        seed = seed_info.get("value") if isinstance(seed_info, Mapping) else decoding.get("seed")
    else:
        decoding = {}
        sampler_arg = _args_value(model_args, "sampler")
        sampler = str(sampler_arg) if sampler_arg else None
        model = portable_model_name(model_name_from_args(model_args) or str(config.get("model") or data.get("model_name") or "?"))
        seed = _args_value(model_args, "seed")
        if seed is None:
            seed = tuple(config.get(k) for k in ("random_seed", "numpy_seed", "torch_seed", "fewshot_seed"))

    tasks = _tasks(data)
    run = RunResult(
        path=path,
        timestamp=timestamp,
        model=model,
        model_args=model_args if isinstance(model_args, str) else json.dumps(model_args, sort_keys=True),
        sampler=sampler,
        decoding=decoding,
        seed=seed,
        limit=config.get("limit"),
        chat_template=chat,
        tasks=tasks,
        infogain=info,
        gen_kwargs=config.get("gen_kwargs") or None,
        batch_size=_text((info or {}).get("batch_size") or config.get("batch_size")),
        device=_text((info or {}).get("device") or config.get("device")),
        world_size=int((info or {}).get("world_size") or 1),
    )
    if info is not None:
        run.task_decoding = {
            task: (dec[0] if isinstance(dec, list) and dec else dec)
            for task, dec in (info.get("task_decoding") or {}).items()
            if isinstance(dec, Mapping) or (isinstance(dec, list) and dec and isinstance(dec[0], Mapping))
        }
        per_task = info.get("per_task") or {}
        run.stats = {t: TaskStats.from_mapping(s) for t, s in per_task.items() if isinstance(s, Mapping)}
        if isinstance(info.get("totals"), Mapping):
            run.totals = TaskStats.from_mapping(info["totals"])
    sample_file = _per_sample_file(path, timestamp)
    if sample_file is not None:
        run.per_sample_stats = _read_jsonl(sample_file)
        missing = {r.get("task") for r in run.per_sample_stats} - set(run.stats) - {None}
        for task in missing:  # statistics the results file lacks, rebuilt from the per-sample lines
            run.stats[task] = TaskStats.from_samples([r for r in run.per_sample_stats if r.get("task") == task])
    if info is not None and not run.stats and run.totals is not None and len(tasks) == 1:
        run.stats = {next(iter(tasks)): run.totals}
    return run


def _text(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def load_runs(paths: Iterable[str | Path], on_skip: SkipNote | None = None) -> list[RunResult]:
    """Discover and parse every results file under ``paths`` (``on_skip``: see :func:`discover_result_files`)."""
    return [load_run(p) for p in discover_result_files(paths, on_skip)]
