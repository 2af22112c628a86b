"""The contract between the decoding engine and a model family.

An adapter knows token ids, logit shifts, position ids and caches — nothing about sampling. The
engine knows sampling — nothing about which model family it drives. Everything the engine asks of a
model goes through the methods below; positions are always absolute indices into the canvas
``[left padding | prompt | generation region]``.

Windows: every logits call names a half-open window ``[start, end)`` of canvas positions and gets
logits only there (``[rows, end - start, vocab]``), so the LM head never runs on positions nobody
reads — with a 126k vocabulary that is most of the memory of a lookahead batch.

Caches (``prefix`` / ``dual``, Fast-dLLM style): :meth:`MDMAdapter.open_cache` runs the full
sequence once at block entry and keeps keys/values; :meth:`MDMAdapter.cached_logits` then runs only
the positions that can change. Lookahead rows share their prompt's cached keys/values by
broadcasting, never by copying them per candidate.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

__all__ = ["MDMAdapter", "CacheState", "MaskTokenError", "LogitsShapeError", "position_ids_from_mask"]


class MaskTokenError(ValueError):
    """The model/tokenizer has no usable mask token, so it cannot be decoded as an MDM."""


class LogitsShapeError(ValueError):
    """A model or adapter returned something other than ``[rows, positions, vocabulary]`` logits."""


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Absolute positions for a left-padded batch: real tokens count from 0, pads get 0."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


@dataclass
class CacheState:
    """Keys/values cached at a block entry, plus what is needed to run later steps against them.

    ``mode`` is ``prefix`` or ``dual``; ``block`` the active block ``(start, end)``; ``window`` the
    positions :meth:`MDMAdapter.cached_logits` returns logits for; ``payload`` is family-specific.
    """

    mode: str
    block: tuple[int, int]
    window: tuple[int, int]
    attention_mask: torch.Tensor | None
    payload: Any = field(default=None, repr=False)


class MDMAdapter(ABC):
    """A masked diffusion model as the engine sees it.

    Subclasses set the id attributes and implement :meth:`logits`; families with a KV cache also
    override :attr:`cache_modes`, :meth:`open_cache` and :meth:`cached_logits`.
    """

    #: Token that marks a position still to be decoded.
    mask_id: int
    #: Padding token used for left padding (never generated on purpose).
    pad_id: int
    #: Tokens that end a generation (EOS, and end-of-turn where the family has one).
    eos_ids: tuple[int, ...] = ()
    #: Tokens whose logits ``eos_penalty`` lowers (EOS and PAD, as in the reference).
    penalized_ids: tuple[int, ...] = ()
    vocab_size: int
    #: Cache modes this family implements.
    cache_modes: tuple[str, ...] = ("none",)
    #: The generation region starts at a canvas position that is a multiple of this (SDAR/TraDo
    #: attend block-causally in blocks of this size counted from position 0).
    alignment: int = 1
    #: Every position attends to every other one. False for block-causal families (SDAR/TraDo),
    #: whose masks cannot see later tokens — they cannot fill gaps inside a prompt.
    bidirectional: bool = True
    #: Longest canvas the model accepts (prompt + generation), ``None`` when unknown.
    max_length: int | None = None

    @property
    @abstractmethod
    def device(self) -> torch.device: ...

    @abstractmethod
    def logits(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        *,
        window: tuple[int, int] | None = None,
    ) -> torch.Tensor:
        """Logits ``[B, end - start, V]`` where entry i predicts the token at canvas position
        ``start + i`` (any family shift already applied). ``window=None`` means the whole canvas.
        ``attention_mask`` is 1 for real tokens and 0 for left padding."""

    def open_cache(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        *,
        mode: str,
        block: tuple[int, int],
    ) -> tuple[torch.Tensor, CacheState]:
        """Run the whole canvas once at the entry of ``block`` and cache keys/values.

        Returns the logits of the cache's window (``[block_start, T)`` for ``prefix``,
        ``[block_start, block_end)`` for ``dual``) — exactly the no-cache logits there — and the state.
        """
        raise NotImplementedError(f"{type(self).__name__} has no KV cache (cache modes: {self.cache_modes})")

    def cached_logits(
        self,
        state: CacheState,
        input_ids: torch.Tensor,
        *,
        prompt_index: torch.Tensor | None = None,
        group_size: int | Sequence[int] = 1,
    ) -> torch.Tensor:
        """Logits ``[R, w, V]`` of ``state.window`` for ``R`` full-canvas rows run against the cache.

        Rows come in groups, group ``g`` belonging to prompt ``prompt_index[g]`` of the batch the
        cache was opened for (``prompt_index=None``: ``arange(groups)``). ``group_size`` is the rows
        per group: one int for equal groups (row ``r`` is in group ``r // group_size``) or a host
        sequence of ints, one per group, summing to ``R`` (lookahead rows: each parent brings its
        distinct candidates). Only the window's positions of ``input_ids`` are read; the cached
        keys/values stand in for the rest.
        """
        raise NotImplementedError(f"{type(self).__name__} has no KV cache (cache modes: {self.cache_modes})")
