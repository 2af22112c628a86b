"""Shared fixtures: a deterministic toy masked diffusion model behind the adapter contract.

The toy model's logits are a fixed function of its input (random weights from a fixed seed,
bidirectional attention that respects left padding and uses pad-free positions), so a prompt gives
the same logits alone or in a padded batch, and tests can recompute any quantity independently.
Its adapter also implements a *reference* KV cache (it recomputes the full forward, reading only the
window's tokens from the rows it is given) so that the engine's cache path can be checked against
the exact no-cache path, and it logs every call so tests can count forwards.
"""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest
import torch

from lm_eval_infogain.models.base import CacheState, MDMAdapter, position_ids_from_mask

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(1)

VOCAB = 12
EOS, PAD, MASK = 8, 9, 10


class ToyMDM(torch.nn.Module):
    """Embedding + learned positions → 2 bidirectional attention-mixing layers → linear head."""

    def __init__(self, vocab: int = VOCAB, dim: int = 16, max_len: int = 96, seed: int = 0, sharpness: float = 2.0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.emb = torch.nn.Parameter(torch.randn(vocab, dim, generator=g) * 0.7)
        self.pos = torch.nn.Parameter(torch.randn(max_len, dim, generator=g) * 0.7)
        self.mix = torch.nn.Parameter(torch.randn(2, dim, dim, generator=g) / dim**0.5)
        self.head = torch.nn.Parameter(torch.randn(dim, vocab, generator=g) * sharpness / dim**0.5)
        self.config = SimpleNamespace(vocab_size=vocab, max_position_embeddings=max_len)

    @torch.no_grad()
    def forward(self, input_ids, attention_mask=None, position_ids=None):
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if position_ids is None:
            position_ids = position_ids_from_mask(attention_mask)
        h = self.emb[input_ids] + self.pos[position_ids]
        key_ok = attention_mask.bool()[:, None, :]
        for layer in range(self.mix.shape[0]):
            att = torch.einsum("btd,bsd->bts", h, h) / h.shape[-1] ** 0.5
            att = att.masked_fill(~key_ok, float("-inf")).softmax(-1)
            h = h + torch.tanh(torch.einsum("bts,bsd->btd", att, h) @ self.mix[layer])
        return SimpleNamespace(logits=torch.einsum("btd,dv->btv", h, self.head))


class ToyAdapter(MDMAdapter):
    """The toy model as the engine sees it, with a reference cache and a call log."""

    cache_modes = ("none", "prefix", "dual")

    def __init__(self, model: ToyMDM | None = None, suppress: tuple[int, ...] = (), max_length: int | None = 96):
        self.model = model or ToyMDM()
        self.mask_id, self.pad_id = MASK, PAD
        self.eos_ids = (EOS,)
        self.penalized_ids = (EOS, PAD)
        self.vocab_size = VOCAB
        self.max_length = max_length
        self.suppress = suppress
        self.calls: list[tuple[str, int]] = []

    @property
    def device(self):
        return torch.device("cpu")

    def _full(self, input_ids, attention_mask):
        logits = self.model(input_ids, attention_mask).logits
        if self.suppress:
            logits[..., list(self.suppress)] = float("-inf")
        return logits

    def logits(self, input_ids, attention_mask=None, *, window=None):
        self.calls.append(("logits", input_ids.shape[0]))
        out = self._full(input_ids, attention_mask)
        return out if window is None else out[:, window[0] : window[1]]

    def open_cache(self, input_ids, attention_mask, *, mode, block):
        self.calls.append(("open_cache", input_ids.shape[0]))
        T = input_ids.shape[1]
        window = (block[0], T) if mode == "prefix" else block
        state = CacheState(mode, block, window, attention_mask.clone(), payload=input_ids.clone())
        return self._full(input_ids, attention_mask)[:, window[0] : window[1]], state

    def cached_logits(self, state, input_ids, *, prompt_index=None, group_size=1):
        self.calls.append(("cached", input_ids.shape[0]))
        sizes = torch.as_tensor(group_size) if not isinstance(group_size, int) else None
        groups = input_ids.shape[0] // group_size if sizes is None else len(sizes)
        if prompt_index is None:
            prompt_index = torch.arange(groups)
        src = prompt_index.repeat_interleave(group_size if sizes is None else sizes)
        x = state.payload[src].clone()  # cached keys/values stand for everything outside the window
        lo, hi = state.window
        x[:, lo:hi] = input_ids[:, lo:hi]
        return self._full(x, state.attention_mask[src])[:, lo:hi]


@pytest.fixture(scope="session")
def toy_model():
    return ToyMDM()


@pytest.fixture
def toy(toy_model):
    return ToyAdapter(toy_model)


#: Four prompts of different lengths (ids 0..7 are ordinary tokens).
PROMPTS = [[1, 2, 3], [4, 5, 6, 7, 0, 1], [2], [3, 3, 1, 0, 5]]


@pytest.fixture
def prompts():
    return [list(p) for p in PROMPTS]


def tiny_bert(vocab: int = 30, seed: int = 0):
    """A random-weight BertForMaskedLM (hidden 32, 2 layers) built from a config: no download."""
    from transformers import BertConfig, BertForMaskedLM

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=128,
    )
    return BertForMaskedLM(config).eval()


class TinyTokenizer:
    """Just enough tokenizer for the API: ids, and a vocab in which the mask token can be found."""

    def __init__(self, vocab: int = 30, mask_token: str | None = "[MASK]", mask_token_id: int | None = None):
        self._vocab = {f"tok{i}": i for i in range(vocab)}
        if mask_token is not None:
            self._vocab.pop(f"tok{vocab - 1}")
            self._vocab[mask_token] = vocab - 1
        self.mask_token_id = mask_token_id
        self.eos_token_id = 1
        self.pad_token_id = 0

    def get_vocab(self):
        return dict(self._vocab)
