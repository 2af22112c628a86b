"""The engine: every strategy fills every mask, batch invariance, seeds, caches, EOS options, stats."""

import pytest
import torch

from conftest import EOS, MASK, PROMPTS, ToyAdapter, TinyTokenizer, tiny_bert
from lm_eval_infogain.models.hf import HFModelAdapter
from lm_eval_infogain.sampling import DecodingConfig, DecodingConfigError, aggregate_stats, generate
from lm_eval_infogain.sampling.config import SAMPLER_ALIASES, SAMPLER_NAMES

ALL_NAMES = SAMPLER_NAMES + tuple(SAMPLER_ALIASES)
STOCHASTIC = ("random", "info_gain", "lookum")


def _config(name, **kw):
    base = dict(sampler=name, gen_length=10, block_size=4, candidate_number=4)
    base.update(kw)
    return DecodingConfig.from_options(base)


def _no_masks(tokens, length):
    return all(len(row) == length and MASK not in row for row in tokens)


@pytest.mark.parametrize("name", ALL_NAMES)
def test_every_strategy_fills_every_mask(toy_model, name):
    for gen_length in (8, 10):  # a multiple of the block size and not
        for k in (1, 3):
            cfg = _config(name, gen_length=gen_length, tokens_per_step=k)
            for batch in (PROMPTS, PROMPTS[1:2]):
                out = generate(ToyAdapter(toy_model), batch, cfg)
                assert _no_masks(out.tokens, gen_length), (name, gen_length, k, out.tokens)
                assert [s.generated_tokens for s in out.stats] == [gen_length] * len(batch)


@pytest.mark.parametrize("name", ALL_NAMES)
def test_batch_invariance(toy_model, name):
    """Each prompt decodes the same alone and inside a batch of 4 (sampled tokens included)."""
    for temperature in (0.0, 0.7):
        cfg = _config(name, temperature=temperature, seed=7)
        batch = generate(ToyAdapter(toy_model), PROMPTS, cfg)
        for i, prompt in enumerate(PROMPTS):
            alone = generate(ToyAdapter(toy_model), [prompt], cfg)
            assert alone.tokens[0] == batch.tokens[i], (name, temperature, i)
            assert alone.stats[0].cumulative_entropy == pytest.approx(batch.stats[i].cumulative_entropy, abs=1e-5)
            assert alone.stats[0].model_calls == batch.stats[i].model_calls


def test_request_keys_make_identical_prompts_independent(toy_model):
    cfg = _config("random", seed=3, temperature=1.0, gen_length=16)
    twice = generate(ToyAdapter(toy_model), [PROMPTS[0], PROMPTS[0]], cfg)
    assert twice.tokens[0] != twice.tokens[1]  # occurrence index enters the derived key
    keyed = generate(ToyAdapter(toy_model), [PROMPTS[0], PROMPTS[2]], cfg, request_keys=["a", "b"])
    again = generate(ToyAdapter(toy_model), [PROMPTS[2]], cfg, request_keys=["b"])
    assert keyed.tokens[1] == again.tokens[0]
    with pytest.raises(ValueError, match="request_keys"):
        generate(ToyAdapter(toy_model), PROMPTS, cfg, request_keys=["a"])


@pytest.mark.parametrize("name, temperature", [("random", 0.0), ("confidence", 0.9), ("info_gain", 0.9),
                                               ("lookum", 0.9), ("info_gain", 0.0)])
def test_same_seed_same_output_other_seed_differs(toy_model, name, temperature):
    cfg = _config(name, temperature=temperature, gen_length=16, block_size=8, position_temperature=1.0)
    a = generate(ToyAdapter(toy_model), PROMPTS, cfg.replace(seed=1)).tokens
    assert a == generate(ToyAdapter(toy_model), PROMPTS, cfg.replace(seed=1)).tokens
    others = [generate(ToyAdapter(toy_model), PROMPTS, cfg.replace(seed=s)).tokens for s in (2, 3)]
    assert any(o != a for o in others)


def test_greedy_baselines_ignore_the_seed(toy_model):
    cfg = _config("confidence")
    assert generate(ToyAdapter(toy_model), PROMPTS, cfg.replace(seed=1)).tokens == \
        generate(ToyAdapter(toy_model), PROMPTS, cfg.replace(seed=2)).tokens


@pytest.mark.parametrize("mode", ["prefix", "dual"])
@pytest.mark.parametrize("name", ["info_gain", "lookum", "confidence", "fast_dllm", "klass"])
def test_cache_path_equals_no_cache_with_exact_reference_cache(toy_model, mode, name):
    scope = {"ig_scope": "block"} if name in ("info_gain", "lookum") else {}
    cfg = _config(name, eos_fill=False, temperature=0.5, **scope)
    plain = generate(ToyAdapter(toy_model), PROMPTS, cfg)
    cached = generate(ToyAdapter(toy_model), PROMPTS, cfg.replace(cache=mode))
    assert cached.tokens == plain.tokens
    for a, b in zip(cached.stats, plain.stats):
        assert a.cumulative_entropy == pytest.approx(b.cumulative_entropy, abs=1e-5)
        assert a.model_calls == b.model_calls and a.tokens_forwarded < b.tokens_forwarded


def test_cache_mode_the_adapter_lacks_fails_before_decoding():
    adapter = HFModelAdapter(tiny_bert(), mask_id=29, pad_id=0, eos_ids=[1])
    with pytest.raises(DecodingConfigError, match="cache"):
        generate(adapter, PROMPTS, DecodingConfig(gen_length=8, block_size=4, cache="prefix"))


def test_bad_prompts_fail_clearly(toy):
    cfg = _config("confidence")
    with pytest.raises(ValueError, match="vocabulary"):
        generate(toy, [[1, 99]], cfg)
    with pytest.raises(ValueError, match="maximum length"):
        generate(toy, [[1] * 90], cfg)
    with pytest.raises(ValueError, match="at least one prompt"):
        generate(toy, [], cfg)


def test_stats_count_forwards_per_sample(toy_model):
    cfg = _config("confidence", gen_length=8, block_size=4, eos_fill=False)
    out = generate(ToyAdapter(toy_model), PROMPTS, cfg)
    T = max(map(len, PROMPTS)) + 8
    for s in out.stats:
        assert (s.model_calls, s.rows_forwarded, s.tokens_forwarded, s.steps) == (8, 8, 8 * T, 8)
        assert s.cumulative_entropy > 0 and s.generated_tokens == 8
    agg = aggregate_stats(out.stats)
    assert agg["samples"] == 4 and agg["generated_tokens"] == 32 and agg["model_calls_mean"] == 8
    assert agg["wall_time_s"] > 0 and agg["tokens_per_second"] == pytest.approx(32 / agg["wall_time_s"])
    assert set(out.stats[0].to_dict()) == {"cumulative_entropy", "model_calls", "rows_forwarded",
                                           "tokens_forwarded", "generated_tokens", "steps", "wall_time_s"}
    # Fast-dLLM with a low threshold commits several tokens per step: fewer forwards.
    fast = generate(ToyAdapter(toy_model), PROMPTS, cfg.replace(sampler="fast_dllm", threshold=0.2))
    assert all(f.model_calls < 8 for f in fast.stats)


def test_cumulative_entropy_counts_every_commit(toy_model):
    """H̃ = Σ over committed positions of their entropy under the logits of the commit step."""
    cfg = _config("confidence", gen_length=8, block_size=4, eos_fill=False, eos_penalty=0.0)
    records = []
    out = generate(ToyAdapter(toy_model), PROMPTS[:1], cfg, trace=records.append)
    adapter, total = ToyAdapter(toy_model), 0.0
    for rec in records:
        x = rec["before"]
        logits = adapter._full(x, (x != 9).long())
        logits[..., MASK] = float("-inf")
        p = logits.softmax(-1)
        h = torch.where(p > 0, -p * p.log(), torch.zeros_like(p)).sum(-1)
        total += float((h * ((rec["before"] == MASK) & (rec["after"] != MASK))).sum())
    assert out.stats[0].cumulative_entropy == pytest.approx(total, rel=1e-5)


def test_eos_fill_and_penalty(toy_model):
    # A negative penalty favours EOS, so EOS gets committed early and the fill takes over.
    cfg = _config("confidence", gen_length=12, block_size=4, eos_penalty=-3.0)
    out = generate(ToyAdapter(toy_model), PROMPTS, cfg)
    for row in out.tokens:
        assert EOS in row
        first = row.index(EOS)
        assert all(t == EOS for t in row[first:])
    unfilled = generate(ToyAdapter(toy_model), PROMPTS, cfg.replace(eos_fill=False))
    assert sum(s.steps for s in out.stats) < sum(s.steps for s in unfilled.stats)
    # The default penalty of 4 keeps this model's (rare) EOS out entirely.
    assert all(EOS not in row for row in generate(ToyAdapter(toy_model), PROMPTS, _config("confidence")).tokens)


@pytest.mark.parametrize("name", ["info_gain", "confidence", "klass", "eb"])
def test_tiny_bert_through_hf_adapter(name):
    torch.manual_seed(0)
    tok = TinyTokenizer()
    adapter = HFModelAdapter.from_tokenizer(tiny_bert(), tok)
    prompts = [[3, 4, 5], [6, 7, 8, 9, 10, 11], [12]]
    cfg = DecodingConfig(sampler=name, gen_length=6, block_size=4, candidate_number=3, seed=5, temperature=0.5)
    batch = generate(adapter, prompts, cfg)
    assert _no_masks([[t if t != tok.get_vocab()["[MASK]"] else MASK for t in r] for r in batch.tokens], 6)
    assert all(adapter.mask_id not in r for r in batch.tokens)
    for i, p in enumerate(prompts):
        assert generate(adapter, [p], cfg).tokens[0] == batch.tokens[i]
