"""Baseline rules on hand-made step views: each one's definition, checked on known numbers."""

import json

import pytest
import torch

from lm_eval_infogain.sampling import DecodingConfig, DecodingConfigError
from lm_eval_infogain.sampling.ops import topk_mask
from lm_eval_infogain.sampling.strategies import (
    KLASS, Confidence, EntropyBounded, FastDLLM, LeftToRight, Margin, PCSampler, StepView,
    _load_log_frequencies,
)


def _view(probs, tokens=None, masked=None, k=1, step=0):
    probs = torch.tensor(probs, dtype=torch.float32)
    logp = probs.clamp(min=1e-30).log()
    tokens = probs.argmax(-1) if tokens is None else torch.tensor(tokens)
    masked = torch.ones(probs.shape[:2], dtype=torch.bool) if masked is None else torch.tensor(masked)
    return StepView(
        rows=torch.arange(probs.shape[0]), logp=logp,
        entropy=torch.special.entr(probs).sum(-1), tokens=tokens,
        conf=probs.gather(-1, tokens.unsqueeze(-1)).squeeze(-1), masked=masked,
        k=torch.full((probs.shape[0],), k), generators=[], step=step,
    )


PROBS = [[[0.5, 0.4, 0.1], [0.9, 0.05, 0.05], [0.34, 0.33, 0.33], [0.6, 0.1, 0.3]]]


def test_topk_mask_per_row_k_ties_and_validity():
    score = torch.tensor([[1.0, 3.0, 3.0, 2.0], [float("-inf"), 0.0, 5.0, 1.0]])
    valid = torch.tensor([[True, True, True, True], [True, False, True, False]])
    out = topk_mask(score, torch.tensor([2, 3]), valid)
    assert out.tolist() == [[False, True, True, False], [True, False, True, False]]


def test_confidence_margin_left_to_right():
    v = _view(PROBS, k=2)
    assert Confidence().select(v)[0].tolist() == [False, True, False, True]
    assert Margin().select(v)[0].tolist() == [False, True, False, True]  # margins .1 .85 .01 .3
    assert LeftToRight().select(_view(PROBS, k=2, masked=[[False, True, True, True]]))[0].tolist() == \
        [False, True, True, False]


def test_entropy_bounded_budget():
    v = _view(PROBS)
    h = sorted(v.entropy[0].tolist())
    count = lambda gamma: int(EntropyBounded(gamma).select(v).sum())  # noqa: E731
    assert count(0.0) == 1  # at least one
    assert count(h[0] + 1e-4) == 2  # Σ of the 2 smallest minus the max = h0
    assert count(h[0] + h[1] + 1e-4) == 3
    assert count(100.0) == 4


def test_fast_dllm_threshold_and_factor():
    v = _view(PROBS)
    assert FastDLLM(0.55, None).select(v)[0].tolist() == [False, True, False, True]
    assert FastDLLM(0.95, None).select(v)[0].tolist() == [False, True, False, False]  # at least one
    # confidences sorted: .9 .6 .5 .34 -> (n+1)(1-c_n): 0.2, 1.2, 2.0, 3.3
    assert int(FastDLLM(None, 1.0).select(v).sum()) == 1
    assert int(FastDLLM(None, 1.5).select(v).sum()) == 2
    assert int(FastDLLM(None, 3.5).select(v).sum()) == 4


def test_pc_sampler_position_decay_and_background(tmp_path):
    v = _view([[[0.8, 0.1, 0.1], [0.8, 0.1, 0.1]]])
    uniform = PCSampler(0.25, 10.0, _load_log_frequencies(None, 3))
    assert uniform.select(v)[0].tolist() == [True, False]  # same confidence: earlier position wins
    # a rare token at the second position outweighs the decay
    file = tmp_path / "freq.json"
    file.write_text(json.dumps({"0": 1000, "1": 1, "2": 1}))
    v2 = _view([[[0.8, 0.1, 0.1], [0.1, 0.8, 0.1]]])
    assert PCSampler(0.25, 10.0, _load_log_frequencies(str(file), 3)).select(v2)[0].tolist() == [False, True]
    with pytest.raises(DecodingConfigError, match="pc_frequency_file"):
        _load_log_frequencies(str(tmp_path / "missing.json"), 3)


def test_klass_waits_for_stable_confident_positions():
    rule = KLASS(threshold=0.7, kl_threshold=0.01, history=2)
    rule.start_block(1, 2)
    steady = [0.75, 0.2, 0.05]
    moving = [[0.9, 0.05, 0.05], [0.05, 0.9, 0.05], [0.9, 0.05, 0.05]]
    picks = [rule.select(_view([[steady, moving[t]]], k=1, step=t))[0].tolist() for t in range(3)]
    # steps 0-1: position 0 not yet stable for 2 steps -> confidence fallback picks the 0.9 one;
    # step 2: position 0 is confident and stable, position 1 keeps moving -> only position 0
    assert picks == [[False, True], [False, True], [True, False]]
    rule.start_block(1, 2)  # history is per block
    assert rule.select(_view([[steady, moving[0]]], k=1))[0].tolist() == [False, True]


def test_pc_frequency_file_error_before_decoding(toy, tmp_path):
    from lm_eval_infogain.sampling import generate

    bad = tmp_path / "bad.json"
    bad.write_text("[0, 0, 0]")
    cfg = DecodingConfig(sampler="pc", gen_length=4, block_size=4, pc_frequency_file=str(bad))
    with pytest.raises(DecodingConfigError, match="pc_frequency_file"):
        generate(toy, [[1, 2]], cfg)
    assert toy.calls == []
