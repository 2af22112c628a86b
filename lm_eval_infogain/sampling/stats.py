"""Per-sample decoding statistics and their aggregation over a run.

Counts are per prompt so that they stay meaningful (and batch-invariant) when prompts share forward
calls: ``model_calls`` counts the forward calls that included at least one of the sample's rows,
``rows_forwarded`` the rows it contributed and ``tokens_forwarded`` rows × positions actually run
through the model (which is what a KV cache saves). ``wall_time_s`` is the sample's share of its
batch's wall time (batch time / batch size), so summing it over samples gives the run time.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Iterable, Sequence

__all__ = ["SampleStats", "aggregate_stats", "CallRecorder"]


@dataclass
class SampleStats:
    #: Σ over every committed position of its entropy at the moment of commit (nats).
    cumulative_entropy: float = 0.0
    model_calls: int = 0
    rows_forwarded: int = 0
    tokens_forwarded: int = 0
    #: Generation positions committed by the decoder (bypass, chosen, EOS-filled).
    generated_tokens: int = 0
    #: Denoising steps in which the sample had masks to decode.
    steps: int = 0
    wall_time_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def aggregate_stats(stats: Sequence[SampleStats]) -> dict[str, Any]:
    """Run-level summary: means of the per-sample counts, total tokens and time, throughput."""
    n = len(stats)
    mean = lambda values: (sum(values) / n) if n else 0.0  # noqa: E731
    generated = sum(s.generated_tokens for s in stats)
    wall = sum(s.wall_time_s for s in stats)
    return {
        "samples": n,
        "cumulative_entropy_mean": mean([s.cumulative_entropy for s in stats]),
        "model_calls_mean": mean([s.model_calls for s in stats]),
        "rows_forwarded_mean": mean([s.rows_forwarded for s in stats]),
        "tokens_forwarded_mean": mean([s.tokens_forwarded for s in stats]),
        "generated_tokens": generated,
        "wall_time_s": wall,
        "tokens_per_second": generated / wall if wall > 0 else 0.0,
    }


class CallRecorder:
    """Host-side counters of forward calls per prompt (no device syncs: rows are host lists)."""

    def __init__(self, n_prompts: int):
        self.model_calls = [0] * n_prompts
        self.rows_forwarded = [0] * n_prompts
        self.tokens_forwarded = [0] * n_prompts
        #: Every call as (number of rows, positions run) — for tests and benchmarks.
        self.calls: list[tuple[int, int]] = []
        #: What each call was: ``enter`` (block entry), ``current`` (a state refreshed after a commit
        #: without lookahead) or ``lookahead`` (candidate next states).
        self.kinds: list[str] = []

    def record(self, prompts_of_rows: Iterable[int], positions: int, kind: str = "current") -> None:
        counts: dict[int, int] = {}
        for p in prompts_of_rows:
            counts[p] = counts.get(p, 0) + 1
        for p, c in counts.items():
            self.model_calls[p] += 1
            self.rows_forwarded[p] += c
            self.tokens_forwarded[p] += c * positions
        self.calls.append((sum(counts.values()), positions))
        self.kinds.append(kind)
