"""Tensor helpers shared by every strategy: logit processing, safe entropies, per-row top-K, draws.

They are written once so that every sampler measures uncertainty the same way: in fp32, after the
EOS/PAD penalty, with ``0 · log 0 = 0`` so that logits of ``-inf`` (suppressed tokens) give finite
entropies instead of NaNs that would silently make every Info-Gain candidate tie.
"""

from __future__ import annotations

from typing import Sequence

import torch

__all__ = [
    "LogitPrep",
    "prepare_logits_",
    "log_probs",
    "entropies",
    "topk_mask",
    "sample_tokens",
    "gumbel",
    "uniform",
]

#: Upper bound on fp32 elements materialised at once when turning raw logits into entropies.
_CHUNK_ELEMENTS = 1 << 26


def prepare_logits_(
    logits: torch.Tensor, penalized_ids: Sequence[int] = (), penalty: float = 0.0, forbidden: Sequence[int] = ()
) -> torch.Tensor:
    """Apply the shared logit processing IN PLACE and return ``logits``.

    Subtracts ``penalty`` from the ``penalized_ids`` logits, forbids ``forbidden`` ids (the mask token:
    committing it would leave the position masked) and replaces ``-inf`` by the dtype's most negative
    finite value. The last step changes no probability (``exp`` underflows to exactly 0 either way)
    but lets entropies use ``Σ p·z`` without ``0 · (−inf) = NaN``. Done once per forward output, so
    neither the entropies nor the log-probabilities copy the ``[rows, positions, vocab]`` tensor again.
    """
    lowest = torch.finfo(logits.dtype).min
    logits.clamp_(min=lowest)
    if penalty and len(penalized_ids):
        logits[..., list(penalized_ids)] -= penalty
    if len(forbidden):
        logits[..., list(forbidden)] = lowest
    return logits


def log_probs(logits: torch.Tensor) -> torch.Tensor:
    """fp32 log-probabilities of prepared logits."""
    return torch.log_softmax(logits.float(), dim=-1)


def _entropy_chunk(logits: torch.Tensor, scratch: torch.Tensor | None = None) -> torch.Tensor:
    # H = log S + m − Σ e·z / S with e = exp(z − m), S = Σ e: one exp per element and no log, the
    # fewest passes over the [rows, positions, vocab] tensor we found (measured against
    # logsumexp/softmax and log_softmax forms). Prepared logits hold no -inf, so every e·z is finite.
    z = logits.float()
    m = z.amax(dim=-1, keepdim=True)
    e = torch.sub(z, m, out=scratch) if scratch is not None else torch.sub(z, m)
    e.exp_()
    total = e.sum(dim=-1)
    return total.log() + m.squeeze(-1) - torch.linalg.vecdot(e, z) / total


def entropies(logits: torch.Tensor, workspace: "Workspace | None" = None) -> torch.Tensor:
    """Per-position entropy ``[..., L]`` of prepared logits ``[..., L, V]``, in row chunks.

    A lookahead batch of B×N rows over a long window with a 126k vocabulary would not fit as one fp32
    tensor; only the entropies survive, so the work is chunked over the leading dimension. With a
    ``workspace`` the fp32 intermediate reuses one buffer across calls instead of a fresh allocation
    (on CPU a fresh large tensor costs page faults on every step).
    """
    if logits.dim() < 3 or logits.shape[0] == 0:
        return _entropy_chunk(logits).clamp_(min=0)
    per_row = max(1, logits[0].numel())
    chunk = max(1, _CHUNK_ELEMENTS // per_row)
    parts = []
    for i in range(0, logits.shape[0], chunk):
        part = logits[i : i + chunk]
        scratch = workspace.get(part.shape, part.device) if workspace is not None else None
        parts.append(_entropy_chunk(part, scratch))
    return torch.cat(parts, dim=0).clamp_(min=0)


class Workspace:
    """One reusable fp32 buffer, grown on demand (the entropy maths' only large intermediate)."""

    def __init__(self) -> None:
        self._buffer: torch.Tensor | None = None

    def get(self, shape: torch.Size, device: torch.device) -> torch.Tensor:
        size = 1
        for dim in shape:
            size *= int(dim)
        if self._buffer is None or self._buffer.numel() < size or self._buffer.device != device:
            self._buffer = torch.empty(size, dtype=torch.float32, device=device)
        return self._buffer[:size].view(shape)


class LogitPrep:
    """The one logit processing every sampler shares (EOS/PAD penalty, forbidden ids, fp32 maths).

    :meth:`prepare_` runs once on every forward output (in :class:`~.forward.BlockForward`); the
    entropies and log-probabilities are then computed from the prepared tensor without copying it.
    """

    def __init__(self, penalized_ids: Sequence[int], penalty: float, forbidden: Sequence[int]):
        self.penalized_ids, self.penalty, self.forbidden = tuple(penalized_ids), float(penalty), tuple(forbidden)
        self.workspace = Workspace()

    def prepare_(self, logits: torch.Tensor) -> torch.Tensor:
        return prepare_logits_(logits, self.penalized_ids, self.penalty, self.forbidden)

    @staticmethod
    def log_probs(logits: torch.Tensor) -> torch.Tensor:
        return log_probs(logits)

    def entropies(self, logits: torch.Tensor) -> torch.Tensor:
        return entropies(logits, self.workspace)


def topk_mask(score: torch.Tensor, k: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Boolean mask of the ``k[r]`` highest-scoring valid entries of each row (per-row K, vectorised).

    Ties go to the leftmost position (stable sort). Valid entries always rank before invalid ones,
    even when their score is ``-inf``; a row never gets more entries than it has valid ones.
    """
    finite = torch.finfo(torch.float32)
    key = score.float().nan_to_num(nan=finite.min, neginf=finite.min, posinf=finite.max)
    key = torch.where(valid, key, torch.full_like(key, float("-inf")))
    order = torch.sort(key, dim=-1, descending=True, stable=True).indices
    rank = torch.empty_like(order)
    rank.scatter_(-1, order, torch.arange(key.shape[-1], device=key.device).expand_as(order).contiguous())
    return (rank < k.unsqueeze(-1)) & valid


def sample_tokens(
    logp: torch.Tensor,
    temperature: float,
    generators: Sequence[torch.Generator],
    num_samples: int = 1,
) -> torch.Tensor:
    """Tokens ``[R, num_samples, L]`` from ``softmax(logp / temperature)``; argmax when temperature is 0.

    ``logp`` is ``[R, L, V]``; row ``r`` draws with ``generators[r]`` (a loop over rows, never over
    candidates), so a row's tokens do not depend on its batch-mates.
    """
    rows, length, vocab = logp.shape
    if temperature == 0 or rows == 0:
        return logp.argmax(-1).unsqueeze(1).expand(rows, num_samples, length).contiguous()
    probs = torch.softmax(logp / temperature, dim=-1)
    # Rows of NaN/inf logits would make multinomial raise a bare "invalid distribution" here; draw
    # from uniform weights instead and let the step's non-finite check raise its named error.
    probs = torch.where(torch.isfinite(probs).all(-1, keepdim=True), probs, torch.ones_like(probs))
    out = [
        torch.multinomial(probs[r], num_samples, replacement=True, generator=generators[r]).T
        for r in range(rows)
    ]
    return torch.stack(out)


def uniform(shape: tuple[int, ...], generators: Sequence[torch.Generator], device: torch.device) -> torch.Tensor:
    """``[R, *shape]`` uniforms in (0, 1), row ``r`` drawn from ``generators[r]``."""
    if not generators:
        return torch.empty((0, *shape), device=device)
    u = torch.stack([torch.rand(shape, generator=g, device=device) for g in generators])
    return u.clamp(min=torch.finfo(torch.float32).tiny, max=1 - torch.finfo(torch.float32).eps)


def gumbel(shape: tuple[int, ...], generators: Sequence[torch.Generator], device: torch.device) -> torch.Tensor:
    """``[R, *shape]`` standard Gumbel noise, row ``r`` drawn from ``generators[r]``."""
    return -torch.log(-torch.log(uniform(shape, generators, device)))
