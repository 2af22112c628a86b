"""Log-likelihood of a continuation under a masked diffusion model: the Monte-Carlo ELBO.

An MDM has no left-to-right factorisation, so ``log p(continuation | context)`` is not a sum of
next-token terms. What it does give is a lower bound (LLaDA, eq. 6 / Ou et al. 2024): with ``L``
continuation tokens, draw ``k`` uniformly from ``1..L`` and a uniformly random set ``S`` of ``k``
continuation positions, mask them, and score the masked tokens::

    ELBO = E_k E_S [ (L / k) * sum_{j in S} log p(x_j | context, continuation with S masked) ]

:func:`mc_elbo` estimates it with ``mc_num`` samples per request. The ``k`` of the samples are
*stratified* (sample ``i`` takes ``k = floor((i + u) L / mc_num) + 1`` for one shared uniform
``u``): every sample is still unbiased on average over ``i``, but the samples cover small and large
``k`` evenly, which is where most of the variance comes from. All samples of all requests are
forwarded as rows of a few batched calls.

Randomness comes from one ``torch.Generator`` per request, seeded from (seed, context ids,
continuation ids), so a request's estimate does not depend on what it is batched with.

``is_greedy`` (lm-eval's "would greedy decoding produce this?") is answered the MDM way: mask the
whole continuation, take the argmax at every position from that one forward, and compare with the
continuation. It is one-shot, not the result of a multi-step sampler; tasks that use it
(``acc`` of single-token answers, ``greedy_until`` checks) are single-token in practice, where
both coincide.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch

from .models.base import MDMAdapter
from .sampling.rng import request_seed

__all__ = ["ElboRequest", "mc_elbo", "stratified_mask_counts", "elbo_weights"]


@dataclass(frozen=True)
class ElboRequest:
    context: Sequence[int]
    continuation: Sequence[int]


def stratified_mask_counts(length: int, samples: int, generator: torch.Generator) -> torch.Tensor:
    """``samples`` mask counts in ``1..length``, one per stratum of ``[0, 1)`` (shared offset)."""
    u = torch.rand((), generator=generator).item()
    strata = (torch.arange(samples, dtype=torch.float64) + u) / samples
    return (strata * length).floor().long().clamp(max=length - 1) + 1


def _random_masks(length: int, counts: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Boolean ``[samples, length]``: row i masks a uniformly random set of ``counts[i]`` positions."""
    ranks = torch.rand((counts.numel(), length), generator=generator).argsort(dim=1).argsort(dim=1)
    return ranks < counts.unsqueeze(1)


def elbo_weights(length: int, counts: torch.Tensor) -> torch.Tensor:
    """Weight ``L / k`` of a masked token in a sample with ``k`` masks."""
    return length / counts.double()


def _rows_for(
    request: ElboRequest, mc_num: int, mask_id: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    context = torch.as_tensor(list(request.context), dtype=torch.long)
    target = torch.as_tensor(list(request.continuation), dtype=torch.long)
    length = target.numel()
    key = "elbo:" + ",".join(map(str, request.context)) + "|" + ",".join(map(str, request.continuation))
    generator = torch.Generator().manual_seed(request_seed(seed, key))
    counts = stratified_mask_counts(length, mc_num, generator)
    masks = _random_masks(length, counts, generator)
    rows = torch.cat([context.expand(mc_num, -1), torch.where(masks, mask_id, target)], dim=1)
    weights = masks.double() * elbo_weights(length, counts).unsqueeze(1)  # [mc_num, L]
    greedy_row = torch.cat([context, torch.full_like(target, mask_id)]).unsqueeze(0)
    return torch.cat([greedy_row, rows]), weights, target


@torch.no_grad()
def mc_elbo(
    adapter: MDMAdapter,
    requests: Sequence[ElboRequest],
    *,
    mc_num: int,
    batch_rows: int = 32,
    seed: int = 1234,
) -> list[tuple[float, bool]]:
    """``(ELBO estimate, is_greedy)`` per request; rows of all requests share batched forwards.

    Each request contributes ``mc_num + 1`` rows (one fully masked row for the greedy check), right
    aligned and left padded, so the continuation of every row sits in the last columns and only
    that window's logits are computed.
    """
    if mc_num < 1 or batch_rows < 1:
        raise ValueError(f"mc_num ({mc_num}) and batch_rows ({batch_rows}) must be >= 1")
    results: list[tuple[float, bool]] = [(0.0, True)] * len(requests)
    # (request index, row tensor) for every row; rows are processed in order, batched by length.
    pending = []
    meta = {}
    for index, request in enumerate(requests):
        if len(request.continuation) == 0:
            continue
        rows, weights, target = _rows_for(request, mc_num, adapter.mask_id, seed)
        meta[index] = (weights, target, [])
        pending.extend((index, row) for row in rows)
    device = adapter.device
    for start in range(0, len(pending), batch_rows):
        chunk = pending[start : start + batch_rows]
        width = max(row.numel() for _, row in chunk)
        window = max(len(requests[i].continuation) for i, _ in chunk)
        ids = torch.full((len(chunk), width), adapter.pad_id, dtype=torch.long)
        attention = torch.zeros((len(chunk), width), dtype=torch.long)
        for r, (_, row) in enumerate(chunk):
            ids[r, width - row.numel() :] = row
            attention[r, width - row.numel() :] = 1
        targets = torch.zeros((len(chunk), window), dtype=torch.long)
        for r, (index, _) in enumerate(chunk):
            target = meta[index][1]
            targets[r, window - target.numel() :] = target
        logits = adapter.logits(ids.to(device), attention.to(device), window=(width - window, width)).float()
        picked = torch.log_softmax(logits, dim=-1).gather(-1, targets.to(logits.device).unsqueeze(-1)).squeeze(-1)
        argmax = logits.argmax(-1).cpu()
        picked = picked.cpu()
        for r, (index, _) in enumerate(chunk):
            length = meta[index][1].numel()
            meta[index][2].append((picked[r, window - length :], argmax[r, window - length :]))
    for index, (weights, target, row_outputs) in meta.items():
        greedy = bool((row_outputs[0][1] == target).all())
        token_logprobs = torch.stack([picked for picked, _ in row_outputs[1:]])  # [mc_num, L]
        estimate = (token_logprobs.double() * weights).sum(dim=1).mean().item()
        results[index] = (estimate if math.isfinite(estimate) else -math.inf, greedy)
    return results
