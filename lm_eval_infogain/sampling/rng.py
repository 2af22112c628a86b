"""Per-request randomness: a prompt's draws depend on (seed, its key, block, step) and nothing else.

Each request gets a stable 63-bit seed from hashlib over (config.seed, request key). Inside the loop
its generator is re-seeded at every (block, step) from that seed, so how many draws a prompt made
earlier — or how long its batch-mates kept the loop running — never shifts its later randomness.
That is what makes a prompt decode identically alone and inside any batch.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import Sequence

import torch

__all__ = ["RequestKey", "derive_request_keys", "request_seed", "StepGenerators"]

RequestKey = str | bytes | int

_MASK63 = (1 << 63) - 1
_MASK64 = (1 << 64) - 1


def derive_request_keys(prompts: Sequence[Sequence[int]]) -> list[bytes]:
    """Key of each prompt: its token ids plus its occurrence index among identical prompts of the call."""
    seen: Counter[tuple[int, ...]] = Counter()
    keys = []
    for prompt in prompts:
        ids = tuple(int(t) for t in prompt)
        keys.append(("ids:" + ",".join(map(str, ids)) + f"#{seen[ids]}").encode())
        seen[ids] += 1
    return keys


def _key_bytes(key: RequestKey) -> bytes:
    # A type tag keeps the str "1", the bytes b"1" and the int 1 apart.
    if isinstance(key, bytes):
        return b"b:" + key
    if isinstance(key, bool) or not isinstance(key, (str, int)):
        raise TypeError(f"request key must be str, bytes or int, not {type(key).__name__}")
    return (f"i:{key}" if isinstance(key, int) else f"s:{key}").encode()


def request_seed(seed: int, key: RequestKey) -> int:
    """Stable 63-bit seed of one request (same on every machine and Python run)."""
    digest = hashlib.blake2b(str(int(seed)).encode() + b"|" + _key_bytes(key), digest_size=8).digest()
    return int.from_bytes(digest, "little") & _MASK63


def _mix(*values: int) -> int:
    """splitmix64-style mixing of small integers into a 63-bit seed (cheap; called every step)."""
    h = 0x9E3779B97F4A7C15
    for v in values:
        h = (h ^ (v & _MASK64)) * 0xBF58476D1CE4E5B9 & _MASK64
        h = (h ^ (h >> 27)) * 0x94D049BB133111EB & _MASK64
        h ^= h >> 31
    return h & _MASK63


class StepGenerators:
    """One ``torch.Generator`` per request, re-seeded from (request seed, block, step) on demand."""

    def __init__(self, seeds: Sequence[int], device: torch.device):
        self.seeds = list(seeds)
        self._gens = [torch.Generator(device=device) for _ in self.seeds]

    def for_step(self, block: int, step: int, prompts: Sequence[int]) -> list[torch.Generator]:
        """Generators for ``prompts`` (one entry per row; rows of one prompt share its generator)."""
        seeded: dict[int, torch.Generator] = {}
        out = []
        for p in prompts:
            if p not in seeded:
                seeded[p] = self._gens[p]
                seeded[p].manual_seed(_mix(self.seeds[p], block, step))
            out.append(seeded[p])
        return out
