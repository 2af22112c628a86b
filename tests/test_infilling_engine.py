"""Masks anywhere on the canvas: gaps inside prompts are decoded by every strategy, exactly and batch-invariantly."""

import pytest
import torch

from conftest import EOS, MASK, PAD, ToyAdapter
from lm_eval_infogain import InfoGainSampler
from lm_eval_infogain.sampling import DecodingConfig, generate
from lm_eval_infogain.sampling.canvas import InfillingNotSupportedError, apply_eos_fill
from lm_eval_infogain.sampling.config import SAMPLER_NAMES
from lm_eval_infogain.sampling.infill import filled_gaps, gap_spans, trim_at

M = MASK
#: Prompts with gaps in different places (one, two, none, a trailing one).
GAPPED = [
    [1, 2, M, M, M, 3, 4],
    [5, M, M, 6, 7, M, M, M, 0],
    [2, 3, 1],
    [4, M, 0, 1, M, M],
]


def _config(name, **kw):
    base = dict(sampler=name, gen_length=4, block_size=4, candidate_number=4)
    base.update(kw)
    return DecodingConfig.from_options(base)


def _check_filled(prompts, out, gen_length):
    for prompt, canvas, tokens in zip(prompts, out.canvases, out.tokens):
        assert len(canvas) == len(prompt) + gen_length and MASK not in canvas
        assert all(c == p for p, c in zip(prompt, canvas) if p != MASK)  # nothing else moves
        assert canvas[len(prompt):] == tokens


@pytest.mark.parametrize("name", SAMPLER_NAMES)
@pytest.mark.parametrize("gen_length", [0, 5])
def test_every_strategy_fills_every_gap(toy_model, name, gen_length):
    for k in (None, 2):
        cfg = _config(name, gen_length=gen_length, tokens_per_step=k, temperature=0.6, seed=2)
        out = generate(ToyAdapter(toy_model), GAPPED, cfg)
        _check_filled(GAPPED, out, gen_length)
        assert [s.generated_tokens for s in out.stats] == [p.count(MASK) + gen_length for p in GAPPED]


@pytest.mark.parametrize("name", ["confidence", "random", "eb", "klass", "info_gain", "lookum"])
def test_a_row_decodes_the_same_alone_or_next_to_gaps_elsewhere(toy_model, name):
    cfg = _config(name, gen_length=3, block_size=3, temperature=0.7, seed=9)
    batch = generate(ToyAdapter(toy_model), GAPPED, cfg)
    for i, prompt in enumerate(GAPPED):
        alone = generate(ToyAdapter(toy_model), [prompt], cfg)
        assert alone.canvases[0] == batch.canvases[i], (name, i)
        assert alone.stats[0].cumulative_entropy == pytest.approx(batch.stats[i].cumulative_entropy, abs=1e-5)
        assert alone.stats[0].model_calls == batch.stats[i].model_calls


@pytest.mark.parametrize("name", ["confidence", "margin", "random", "pc", "fast_dllm", "info_gain", "lookum"])
def test_one_gap_at_the_end_equals_suffix_decoding_bit_for_bit(toy_model, name):
    base = [[1, 2, 3], [4, 5, 6, 7, 0, 1], [2]]
    cfg = _config(name, gen_length=6, block_size=4, temperature=0.5, seed=5)
    keys = ["a", "b", "c"]  # the same randomness for both forms of each prompt
    suffix = generate(ToyAdapter(toy_model), base, cfg, request_keys=keys)
    as_gaps = generate(ToyAdapter(toy_model), [p + [MASK] * 6 for p in base], cfg.replace(gen_length=0),
                       request_keys=keys)
    assert [c[-6:] for c in as_gaps.canvases] == suffix.tokens
    for a, b in zip(as_gaps.stats, suffix.stats):
        assert a.cumulative_entropy == b.cumulative_entropy  # bit for bit, not approximately
        assert (a.model_calls, a.rows_forwarded, a.steps) == (b.model_calls, b.rows_forwarded, b.steps)


def _entropy(adapter, x):
    logits = adapter._full(x, (x != PAD).long()).clone()
    logits[..., MASK] = float("-inf")
    p = logits.softmax(-1)
    return torch.where(p > 0, -p * p.log(), torch.zeros_like(p)).sum(-1), p


@pytest.mark.parametrize("variant", ["info_gain", "lookum"])
@pytest.mark.parametrize("scope", ["sequence", "block"])
def test_info_gain_picks_the_brute_force_argmax_inside_a_gap(toy_model, variant, scope):
    """A gap in the middle of a prompt, one block over the gap (a second gap waits for the next
    block): every step's choice is the argmax of J, with H̄ over every mask left (``sequence``) or
    over the block's (``block``)."""
    adapter = ToyAdapter(toy_model)
    prompt = [1, 2, 3, 4, M, M, M, M, M, 5, M, M, M, 6, 7]
    gap = [4, 5, 6, 7, 8]
    cfg = DecodingConfig(sampler=variant, gen_length=0, block_size=5, threshold=None, candidate_number=64,
                         position_temperature=50.0, eos_penalty=0.0, eos_fill=False, ig_scope=scope, seed=1)
    records = []
    generate(adapter, [prompt], cfg, trace=records.append)
    checked = 0
    for rec in records:
        if rec["block"] != 0:
            continue
        before, after = rec["before"], rec["after"]
        newly = ((before == MASK) & (after != MASK))[0].nonzero().flatten().tolist()
        assert len(newly) == 1 and newly[0] in gap
        if not rec["need_rows"]:
            continue
        h, p = _entropy(adapter, before)
        in_scope = torch.zeros(len(prompt), dtype=torch.bool)
        in_scope[gap if scope == "block" else list(range(len(prompt)))] = True
        J = {}
        for pos in gap:
            if before[0, pos] != MASK:
                continue
            nxt = before.clone()
            nxt[0, pos] = p[0, pos].argmax()
            h_next, _ = _entropy(adapter, nxt)
            left = (nxt[0] == MASK) & in_scope
            mean = float(h_next[0][left].mean()) if left.any() else 0.0
            J[pos] = -mean if variant == "lookum" else -float(h[0, pos]) - mean
        assert J[newly[0]] == pytest.approx(max(J.values()), abs=1e-5), (J, newly)
        assert float(rec["J"][0][rec["valid"][0]].max()) == pytest.approx(max(J.values()), abs=1e-4)
        checked += 1
    assert checked == 4  # 5 masks in the block: 4 lookahead steps, the last one commits alone


def test_blocks_walk_the_masks_left_to_right(toy_model):
    """Block b holds masks number b·block_size…: a block may end inside one gap and span the next."""
    prompt = [1, M, M, M, 2, M, M, 3]  # masks at 1,2,3 and 5,6; plus 2 appended at 8,9
    records = []
    cfg = _config("confidence", gen_length=2, block_size=3, eos_fill=False)
    generate(ToyAdapter(toy_model), [prompt], cfg, trace=records.append)
    by_block = {}
    for rec in records:
        committed = ((rec["before"] == MASK) & (rec["after"] != MASK))[0].nonzero().flatten().tolist()
        by_block.setdefault(rec["block"], []).extend(committed)
    assert {b: sorted(v) for b, v in by_block.items()} == {0: [1, 2, 3], 1: [5, 6, 8], 2: [9]}


def test_eos_fill_stays_inside_its_gap():
    x = torch.tensor([[1, M, EOS, M, M, 2, M, M, EOS, M]])
    gap_start = torch.full_like(x, -1)
    for start, end in gap_spans([1, M, M, M, M, 2, M, M, M, M], M):
        gap_start[0, start:end] = start
    filled = apply_eos_fill(x, gap_start, M, torch.tensor([EOS]), EOS)
    assert filled.tolist() == [[1, M, EOS, EOS, EOS, 2, M, M, EOS, EOS]]


def test_eos_in_one_gap_leaves_the_next_gap_to_the_model(toy_model):
    favour_eos = _config("confidence", gen_length=0, block_size=16, eos_penalty=-3.0)
    prompt = [1, M, M, M, M, 2, 3, M, M, M, M, 4]
    out = generate(ToyAdapter(toy_model), [prompt], favour_eos)
    gaps = filled_gaps(prompt, out.canvases[0], MASK)
    with_eos = [g for g in gaps if EOS in g]
    assert with_eos and len(with_eos) < len(gaps)  # one gap ended early, the other did not follow it
    for gap in with_eos:
        assert all(t == EOS for t in gap[gap.index(EOS):])


def test_caches_and_block_causal_models_refuse_gaps(toy_model):
    with pytest.raises(InfillingNotSupportedError, match="cache='none'"):
        generate(ToyAdapter(toy_model), GAPPED, _config("confidence", cache="prefix"))
    blockwise = ToyAdapter(toy_model)
    blockwise.bidirectional = False
    with pytest.raises(InfillingNotSupportedError, match="block-causally"):
        generate(blockwise, GAPPED, _config("confidence"))
    # without masks in the prompts both still decode the appended region
    assert generate(blockwise, [[1, 2]], _config("confidence")).tokens[0].count(MASK) == 0


def test_beam_search_on_gaps_is_batch_invariant(toy_model):
    cfg = _config("info_gain", gen_length=2, block_size=3, beam_size=3, temperature=0.7, seed=4)
    batch = generate(ToyAdapter(toy_model), GAPPED, cfg)
    _check_filled(GAPPED, batch, 2)
    for i, prompt in enumerate(GAPPED):
        assert generate(ToyAdapter(toy_model), [prompt], cfg).canvases[0] == batch.canvases[i]


def test_filled_gaps_and_trim():
    prompt = [1, M, M, 2, M]
    canvas = [1, 7, 8, 2, 5, 6, EOS]
    assert filled_gaps(prompt, canvas, M) == [[7, 8], [5, 6, EOS]]  # trailing masks + appended: one gap
    assert trim_at([5, 6, EOS, EOS], [EOS, PAD]) == [5, 6]
    with pytest.raises(ValueError, match="differs from the prompt"):
        filled_gaps(prompt, [9, 7, 8, 2, 5], M)


def test_standalone_sampler_fills_masks_in_input_ids(toy_model):
    sampler = InfoGainSampler(ToyAdapter(toy_model))
    ids = torch.tensor([[PAD, PAD, 1, M, M, 3], [4, M, 0, 1, M, 2]])
    attention = (ids != PAD).long()
    out = sampler.sample(ids, max_new_tokens=0, block_size=4, candidate_number=4, attention_mask=attention)
    assert out.shape == ids.shape and not (out == M).any()
    keep = ids != M
    assert torch.equal(out[keep], ids[keep])
    more = sampler.sample(ids, max_new_tokens=3, steps=3, block_size=4, attention_mask=attention)
    assert more.shape == (2, 9) and not (more == M).any()
    with pytest.raises(TypeError, match="integer"):
        sampler.sample(ids.float(), max_new_tokens=2)
    with pytest.raises(TypeError, match="integer"):
        sampler.sample(ids.bool(), max_new_tokens=2)
