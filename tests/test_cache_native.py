"""prefix / dual KV caches of the native families on small random models (no fixtures needed).

What is checked:
- block entry: the cache's logits and a cached step on the unchanged canvas equal the no-cache logits;
- inside a block: a cached step equals a full forward whose keys/values at the non-recomputed
  positions are frozen at their block-entry values (the documented approximation, computed here
  independently with plain SDPA), differs from the exact logits for bidirectional families, and is
  exact for block-causal SDAR;
- lookahead rows share their prompt's cache (one copy per prompt) and match a per-candidate cache;
- prompt_index gathers, left padding, errors.
"""

from __future__ import annotations

import pytest
import torch

from lm_eval_infogain.models._core import full_attention_mask, sdpa
from lm_eval_infogain.models.cache import raw_span, unshift
from lm_eval_infogain.models.llada import LLaDAModel, llada_config
from lm_eval_infogain.models.native import CacheModeError, NativeAdapter
from lm_eval_infogain.models.qwen import DreamModel, SDARModel

VOCAB, MASK, PAD, EOS = 40, 39, 38, 37
T, PROMPT = 20, 8


def _qwen_config(**extra):
    return dict(
        hidden_size=32, num_attention_heads=4, num_key_value_heads=2, num_hidden_layers=2, intermediate_size=48,
        vocab_size=VOCAB, rope_theta=10000.0, rms_norm_eps=1e-6, max_position_embeddings=64, **extra,
    )  # fmt: skip


def _adapter(family: str) -> NativeAdapter:
    torch.manual_seed(0)
    if family.startswith("llada"):
        # "llada-wpe": the official ``rope: false`` variant with a learned absolute position table
        extra = {"rope": False, "max_sequence_length": 64} if family == "llada-wpe" else {}
        sizes = dict(d_model=32, n_heads=4, n_layers=2, vocab_size=VOCAB, mlp_hidden_size=48, **extra)
        model, shift = LLaDAModel(llada_config(**sizes)), 0
    elif family == "dream":
        model, shift = DreamModel(_qwen_config()), 1
    else:
        model, shift = SDARModel(_qwen_config(block_size=4)), 0
    with torch.no_grad():  # large weights so that stale keys/values visibly change the logits
        for p in model.parameters():
            p.normal_(0, 0.3) if p.dim() > 1 else p.normal_(1.0, 0.1)
    return NativeAdapter(model, family=family.split("-")[0], mask_id=MASK, pad_id=PAD, eos_ids=[EOS], shift=shift)


FAMILIES = ["llada", "llada-wpe", "dream", "sdar"]
BLOCKS = [(8, 12), (12, 16), (16, 20)]


def _canvas(pads=(0, 3)):
    """Two left-padded prompts followed by a masked generation region."""
    g = torch.Generator().manual_seed(1)
    ids = torch.full((len(pads), T), MASK)
    mask = torch.ones(len(pads), T, dtype=torch.long)
    for row, pad in enumerate(pads):
        ids[row, :pad] = PAD
        mask[row, :pad] = 0
        ids[row, pad:PROMPT] = torch.randint(0, 30, (PROMPT - pad,), generator=g)
    return ids, mask


def _decode_some(ids, block, group, seed=2):
    """Lookahead rows: each prompt repeated ``group`` times with different tokens unmasked in (and before) the block."""
    g = torch.Generator().manual_seed(seed)
    rows = ids.repeat_interleave(group, dim=0).clone()
    start, end = block
    fill = torch.randint(0, 30, (rows.shape[0], end - start), generator=g)
    keep = torch.rand(rows.shape[0], end - start, generator=g) < 0.6
    rows[:, start:end] = torch.where(keep, fill, rows[:, start:end])
    return rows


def _frozen_reference(adapter, entry_ids, mask, rows, group, fresh, window):
    """Full forward of ``rows`` whose keys/values outside ``fresh`` are the block-entry ones."""
    model = adapter.model
    positions = adapter._positions(entry_ids, mask)
    full_mask = full_attention_mask(mask, T, model.block_size, entry_ids.device)
    entry_kv = []

    def record(_, q, k, v):
        entry_kv.append((k, v))
        return sdpa(q, k, v, full_mask)

    with torch.no_grad():
        model.run(entry_ids, positions, record)
        rows_mask = None if full_mask is None else full_mask.repeat_interleave(group, dim=0)
        other = torch.ones(T, dtype=torch.bool)
        other[fresh[0] : fresh[1]] = False

        def frozen(index, q, k, v):
            k_e, v_e = (t.repeat_interleave(group, dim=0) for t in entry_kv[index])
            k = torch.where(other[None, None, :, None], k_e, k)
            v = torch.where(other[None, None, :, None], v_e, v)
            return sdpa(q, k, v, rows_mask)

        a, b, first = raw_span(window, adapter.shift)
        raw = model.run(rows, positions.repeat_interleave(group, dim=0), frozen, head_slice=slice(a, b))
    return unshift(raw, first, window[1] - window[0])


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("mode", ["prefix", "dual"])
def test_block_entry_equals_no_cache(family, mode):
    adapter = _adapter(family)
    ids, mask = _canvas()
    full = adapter.logits(ids, mask)
    for block in BLOCKS:
        entry, state = adapter.open_cache(ids, mask, mode=mode, block=block)
        start, end = state.window
        assert state.window == ((block[0], T) if mode == "prefix" else block)
        assert (entry - full[:, start:end]).abs().max() <= 1e-5
        assert (adapter.cached_logits(state, ids) - full[:, start:end]).abs().max() <= 1e-5
        assert (adapter.logits(ids, mask, window=state.window) - full[:, start:end]).abs().max() <= 1e-5
        # one cached copy per prompt, of the non-recomputed positions only
        fresh = state.payload.fresh
        kept = fresh[0] + (0 if mode == "prefix" or adapter.model.block_size else T - fresh[1])
        assert state.payload.keys[0].shape[:3] == (2, adapter.model.n_kv_heads, kept)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("mode", ["prefix", "dual"])
def test_inside_block_follows_documented_approximation(family, mode):
    adapter = _adapter(family)
    ids, mask = _canvas()
    group = 3
    worst_vs_exact = 0.0
    for block in BLOCKS:
        _, state = adapter.open_cache(ids, mask, mode=mode, block=block)
        rows = _decode_some(ids, block, group)
        cached = adapter.cached_logits(state, rows, group_size=group)
        reference = _frozen_reference(adapter, ids, mask, rows, group, state.payload.fresh, state.window)
        # float32 rounding of two different attention paths, relative to logits of size ~3
        assert (cached - reference).abs().max() <= 1e-5 * max(1.0, float(reference.abs().max()))
        exact = adapter.logits(rows, mask.repeat_interleave(group, dim=0), window=state.window)
        worst_vs_exact = max(worst_vs_exact, float((cached - exact).abs().max()))
    if family == "sdar":
        assert worst_vs_exact <= 1e-5  # finished blocks never see later tokens: the cache is exact
    else:
        assert worst_vs_exact > 1e-3  # bidirectional: stale keys/values are a real approximation


def _lookahead_groups(family, mode, group=4, block=(12, 16)):
    """Two prompts' cache opened at ``block`` and ``group`` lookahead rows per prompt run against it."""
    adapter = _adapter(family)
    ids, mask = _canvas()
    rows = _decode_some(ids, block, group, seed=5)
    _, state = adapter.open_cache(ids, mask, mode=mode, block=block)
    return adapter, ids, mask, rows, state, adapter.cached_logits(state, rows, group_size=group)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("mode", ["prefix", "dual"])
def test_shared_cache_matches_per_candidate_cache(family, mode):
    group, block = 4, (12, 16)
    adapter, ids, mask, rows, state, shared = _lookahead_groups(family, mode, group, block)
    alone = []
    for row in range(rows.shape[0]):
        prompt = row // group
        _, own = adapter.open_cache(ids[prompt : prompt + 1], mask[prompt : prompt + 1], mode=mode, block=block)
        alone.append(adapter.cached_logits(own, rows[row : row + 1]))
    assert (shared - torch.cat(alone)).abs().max() <= 1e-5

    # prompt_index: groups of prompt 1 only, and both prompts in reverse order
    only_second = adapter.cached_logits(state, rows[group:], prompt_index=torch.tensor([1]), group_size=group)
    assert (only_second - shared[group:]).abs().max() <= 1e-5
    reordered = torch.cat([rows[group:], rows[:group]])
    flipped = adapter.cached_logits(state, reordered, prompt_index=torch.tensor([1, 0]), group_size=group)
    assert (flipped - torch.cat([shared[group:], shared[:group]])).abs().max() <= 1e-5
    identity = adapter.cached_logits(state, rows, prompt_index=torch.arange(2), group_size=group)
    assert torch.equal(identity, shared)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("mode", ["prefix", "dual"])
def test_unequal_candidate_groups_share_the_cache(family, mode):
    """Lookahead parents with different numbers of distinct candidates: each row's logits equal the
    equal-groups computation, and the cached keys are never copied per row."""
    adapter, _, _, rows, state, shared = _lookahead_groups(family, mode)
    keep = [0, 2, 3, 5]  # 3 candidates of prompt 0, 1 of prompt 1
    unequal = adapter.cached_logits(state, rows[keep], group_size=[3, 1])
    assert (unequal - shared[keep]).abs().max() <= 1e-5
    # the same groups with their prompts reordered, through prompt_index
    swapped = adapter.cached_logits(state, rows[[5, 0, 2, 3]], prompt_index=torch.tensor([1, 0]), group_size=[1, 3])
    assert (swapped - shared[[5, 0, 2, 3]]).abs().max() <= 1e-5
    with pytest.raises(ValueError, match="sizes"):
        adapter.cached_logits(state, rows[keep], group_size=[3, 2])


@pytest.mark.parametrize("family", ["llada", "llada-wpe"])
def test_padding_does_not_change_cached_logits(family):
    """A prompt decodes the same alone and left-padded inside a batch, with a cache (absolute
    positions included: real tokens count from 0 whatever the padding)."""
    adapter = _adapter(family)
    ids, mask = _canvas(pads=(0, 4))
    block = (8, 12)
    rows = _decode_some(ids, block, 1)
    _, state = adapter.open_cache(ids, mask, mode="dual", block=block)
    batched = adapter.cached_logits(state, rows)
    _, alone_state = adapter.open_cache(ids[1:, 4:], None, mode="dual", block=(4, 8))
    alone = adapter.cached_logits(alone_state, rows[1:, 4:])
    assert (batched[1] - alone[0]).abs().max() <= 1e-5


def test_cache_errors():
    adapter = _adapter("dream")
    ids, mask = _canvas()
    with pytest.raises(CacheModeError):
        adapter.open_cache(ids, mask, mode="full", block=(8, 12))
    with pytest.raises(CacheModeError):
        adapter.open_cache(ids, mask, mode="prefix", block=(12, 30))
    _, state = adapter.open_cache(ids, mask, mode="prefix", block=(8, 12))
    with pytest.raises(ValueError, match="groups"):
        adapter.cached_logits(state, ids.repeat(3, 1)[:5], group_size=2)
    with pytest.raises(ValueError, match="prompt_index"):
        adapter.cached_logits(state, ids.repeat(3, 1), group_size=2)
    assert adapter.cache_modes == ("none", "prefix", "dual")
