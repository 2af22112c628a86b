"""InfoGainSampler.sample: the paper repository's call, on a tiny random BERT and on an adapter."""

import pytest
import torch

from conftest import MASK, PROMPTS, TinyTokenizer, ToyAdapter, tiny_bert
from lm_eval_infogain import InfoGainSampler
from lm_eval_infogain.models.base import MaskTokenError
from lm_eval_infogain.sampling import DecodingConfig, DecodingConfigError, generate

BERT_MASK = 29


@pytest.fixture(scope="module")
def bert():
    return tiny_bert()


def test_shape_and_prompt_kept(bert):
    sampler = InfoGainSampler(bert, TinyTokenizer())
    assert sampler.mask_id == BERT_MASK  # found as "[MASK]" in the vocabulary
    ids = torch.tensor([[5, 6, 7, 8]])
    out = sampler.sample(ids, max_new_tokens=8, steps=8, block_size=4, candidate_number=3)
    assert out.shape == (1, 12) and out.dtype == torch.long
    assert torch.equal(out[:, :4], ids) and BERT_MASK not in out[0].tolist()


def test_left_padded_batch_matches_single_prompts(bert):
    sampler = InfoGainSampler(bert, TinyTokenizer(mask_token_id=BERT_MASK))
    ids = torch.tensor([[0, 0, 5, 6], [7, 8, 9, 10]])
    mask = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    kw = dict(max_new_tokens=6, steps=6, block_size=3, candidate_number=3, temperature=0.6, seed=9)
    out = sampler.sample(ids, attention_mask=mask, **kw)
    assert out.shape == (2, 10) and torch.equal(out[:, :4], ids)
    assert torch.equal(out[0, 4:], sampler.sample(torch.tensor([[5, 6]]), **kw)[0, 2:])
    assert torch.equal(out[1, 4:], sampler.sample(torch.tensor([[7, 8, 9, 10]]), **kw)[0, 4:])


def test_mask_id_detection_errors_clearly(bert):
    with pytest.raises(MaskTokenError, match="mask"):
        InfoGainSampler(bert, TinyTokenizer(mask_token=None))
    assert InfoGainSampler(bert, TinyTokenizer(mask_token=None), mask_id=BERT_MASK).mask_id == BERT_MASK
    assert InfoGainSampler(bert, TinyTokenizer(mask_token="<|mdm_mask|>")).mask_id == BERT_MASK


@pytest.mark.parametrize("sampler_name", ["confidence", "low_confidence", "fast_dllm", "random", "lookum"])
def test_sampler_keyword_selects_any_strategy(toy_model, sampler_name):
    adapter = ToyAdapter(toy_model)
    sampler = InfoGainSampler(adapter)
    ids = torch.tensor([PROMPTS[0]])
    out = sampler.sample(ids, max_new_tokens=8, steps=8, block_size=4, sampler=sampler_name, seed=3)
    expected = generate(adapter, [PROMPTS[0]], DecodingConfig(
        sampler=sampler_name, gen_length=8, steps=8, block_size=4, seed=3, threshold=0.8,
        candidate_number=8, position_temperature=0.2,
    ))
    assert out[0, 3:].tolist() == expected.tokens[0] and MASK not in out[0].tolist()


def test_variant_threshold_and_extra_options_reach_the_config():
    cfg = InfoGainSampler._config(16, 256, 4, 8, 0.2, 0.0, 0.0, "lookum", {})
    assert cfg.sampler == "lookum" and cfg.threshold is None and cfg.steps == 16
    assert InfoGainSampler._config(16, 16, 4, 8, 0.2, None, 0.0, "info_gain", {}).threshold is None
    cfg = InfoGainSampler._config(16, 16, 4, 8, 0.2, 0.8, 0.0, "info_gain",
                                  {"sampler": "margin", "tokens_per_step": 2, "ig_scope": "block", "seed": 5})
    assert (cfg.sampler, cfg.tokens_per_step, cfg.steps, cfg.seed) == ("margin", 2, None, 5)
    with pytest.raises(DecodingConfigError, match="unknown decoding option"):
        InfoGainSampler._config(16, 16, 4, 8, 0.2, 0.8, 0.0, "info_gain", {"top_p": 0.9})


def test_threshold_none_or_zero_disables_the_bypass(toy_model):
    sampler = InfoGainSampler(ToyAdapter(toy_model))
    ids = torch.tensor([PROMPTS[1]])
    kw = dict(max_new_tokens=8, steps=8, block_size=4, candidate_number=4)
    off = sampler.sample(ids, threshold=None, **kw)
    assert torch.equal(off, sampler.sample(ids, threshold=0, **kw))
    assert torch.equal(off, sampler.sample(ids, threshold=-1, **kw))
    assert sampler.last_output.stats[0].model_calls > 2
    # a threshold every position meets fixes all K = 1 slots every step: no lookahead ever runs, one
    # forward per step, and the order is exactly the confidence order
    always = sampler.sample(ids, threshold=1e-6, **kw)
    assert sampler.last_output.stats[0].model_calls == 8
    assert torch.equal(always, sampler.sample(ids, sampler="confidence", **kw))


def test_tokens_per_step_is_honoured(toy_model):
    adapter = ToyAdapter(toy_model)
    sampler = InfoGainSampler(adapter)
    sampler.sample(torch.tensor([PROMPTS[0]]), max_new_tokens=8, block_size=8, sampler="confidence",
                   tokens_per_step=4)
    assert sampler.last_output.stats[0].model_calls == 2
