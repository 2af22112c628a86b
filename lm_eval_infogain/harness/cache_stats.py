"""Decoding statistics of ``--use_cache`` answers, kept beside lm-eval's answer cache.

lm-eval's ``CachingLM`` stores each answer in ``<use_cache>_rank<r>.db`` under
``hash_args("generate_until", (context, gen_kwargs))`` and answers a rerun from there without
calling the model, so the statistics of those answers would be lost (a fully cached rerun would
report nothing, a resumed run only its new requests). This sidecar,
``<use_cache>_rank<r>.infogain_stats.db`` (SQLite), stores the statistics of every computed answer
under the same hash plus the repeat index, written *before* the answer itself goes into the cache:
an answer in the cache always has its statistics unless the cache was written without this
plugin's statistics (an older version, another backend) — those are reported as missing.

Each entry also names the decoding settings that produced it (model, every ``DecodingConfig``
field, seed), so answers made under other settings are detected when they are reused: lm-eval's
cache key ignores model_args entirely.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

__all__ = ["StatsSidecar", "StoredStats", "sidecar_path", "settings_id", "answer_key"]

SUFFIX = ".infogain_stats.db"


def sidecar_path(cache_db: str | Path) -> Path:
    """``cache/run_rank0.db`` -> ``cache/run_rank0.infogain_stats.db``."""
    path = Path(cache_db)
    return path.with_name((path.name[:-3] if path.name.endswith(".db") else path.name) + SUFFIX)


def settings_id(settings: Mapping[str, Any]) -> str:
    payload = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


def answer_key(args: Sequence[Any], repeat: int) -> str:
    """lm-eval's own cache key of the request, plus the repeat index."""
    from lm_eval.api.model import hash_args

    return f"{hash_args('generate_until', args)}#{int(repeat)}"


@dataclass(frozen=True)
class StoredStats:
    settings_id: str
    stats: dict[str, Any]


class StatsSidecar:
    """The statistics store of one answer-cache file (one per rank, like the cache itself)."""

    def __init__(self, cache_db: str | Path):
        self.path = sidecar_path(cache_db)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path))
        self._db.execute("CREATE TABLE IF NOT EXISTS stats (key TEXT PRIMARY KEY, settings TEXT, record TEXT)")
        self._db.execute("CREATE TABLE IF NOT EXISTS settings (id TEXT PRIMARY KEY, value TEXT)")
        self._db.commit()

    def put(self, entries: Iterable[tuple[str, Mapping[str, Any], Mapping[str, Any]]]) -> None:
        """Store ``(answer key, decoding settings, statistics)`` triples and commit."""
        rows, settings = [], {}
        for key, setting, stats in entries:
            sid = settings_id(setting)
            settings[sid] = setting
            rows.append((key, sid, json.dumps(dict(stats), default=str)))
        if not rows:
            return
        self._db.executemany(
            "INSERT OR IGNORE INTO settings (id, value) VALUES (?, ?)",
            [(sid, json.dumps(value, sort_keys=True, default=str)) for sid, value in settings.items()],
        )
        self._db.executemany("INSERT OR REPLACE INTO stats (key, settings, record) VALUES (?, ?, ?)", rows)
        self._db.commit()

    def get(self, keys: Sequence[str]) -> dict[str, StoredStats]:
        out: dict[str, StoredStats] = {}
        for start in range(0, len(keys), 500):  # SQLite's bound-parameter limit
            chunk = list(keys[start : start + 500])
            marks = ",".join("?" * len(chunk))
            for key, sid, record in self._db.execute(
                f"SELECT key, settings, record FROM stats WHERE key IN ({marks})", chunk
            ):
                out[key] = StoredStats(sid, json.loads(record))
        return out

    def settings(self, sid: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT value FROM settings WHERE id = ?", (sid,)).fetchone()
        return None if row is None else json.loads(row[0])

    def close(self) -> None:
        self._db.close()


def describe_difference(stored: Mapping[str, Any] | None, current: Mapping[str, Any]) -> str:
    """``sampler: confidence (cached) / info_gain (now); seed: 1 / 2`` for a warning."""
    if stored is None:
        return "settings not recorded"

    def flat(settings: Mapping[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in settings.items() if k != "decoding"}
        out.update(settings.get("decoding") or {})
        return out

    old, new = flat(stored), flat(current)
    diffs = [f"{k}: {old.get(k)!r} (cached) / {new.get(k)!r} (now)" for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    return "; ".join(diffs[:6]) + ("; ..." if len(diffs) > 6 else "")
