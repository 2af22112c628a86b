"""Hostile input to the engine: NaN/inf logits, wrong shapes, non-integer or out-of-vocabulary ids, plain modules."""

import pytest
import torch

from conftest import MASK, PROMPTS, ToyAdapter, ToyMDM
from lm_eval_infogain import InfoGainSampler
from lm_eval_infogain.models.base import LogitsShapeError
from lm_eval_infogain.sampling import DecodingConfig, DecodingConfigError, generate
from lm_eval_infogain.sampling.canvas import CanvasError
from lm_eval_infogain.sampling.config import SAMPLER_NAMES
from lm_eval_infogain.sampling.state import NonFiniteLogitsError


class PoisonedAdapter(ToyAdapter):
    """The toy model, except that rows for which ``poison(row_ids)`` holds get ``value`` logits."""

    def __init__(self, poison, value=float("nan"), dtype=torch.float32):
        super().__init__(ToyMDM())
        self.poison, self.value, self.dtype = poison, value, dtype

    def _full(self, input_ids, attention_mask):
        logits = super()._full(input_ids, attention_mask).to(self.dtype)
        hit = torch.tensor([bool(self.poison(row.tolist())) for row in input_ids])
        logits[hit] = self.value
        return logits


def _cfg(name, **kw):
    return DecodingConfig.from_options(dict(sampler=name, gen_length=6, block_size=3, candidate_number=4, **kw))


@pytest.mark.parametrize("name", SAMPLER_NAMES)
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_nan_or_inf_logits_raise_a_named_error_for_every_sampler(name, value):
    poisoned = PoisonedAdapter(lambda row: 7 in row, value=value)  # only prompt 1 starts with a 7
    with pytest.raises(NonFiniteLogitsError) as info:
        generate(poisoned, PROMPTS, _cfg(name, temperature=0.7))
    message = str(info.value)
    assert "prompt(s) [1]" in message and "forward call" in message and "block 0, step 0" in message
    assert "float32" in message


def test_non_finite_lookahead_candidates_are_caught_too():
    # Clean current states; NaN only once a candidate writes token 0 somewhere after the prompt.
    poisoned = PoisonedAdapter(lambda row: 0 in row[7:])
    cfg = DecodingConfig(sampler="info_gain", gen_length=6, block_size=6, threshold=None, candidate_number=8,
                         position_temperature=50.0, temperature=1.5, seed=3)
    with pytest.raises(NonFiniteLogitsError, match="lookahead"):
        generate(poisoned, [[1, 2, 3]], cfg)


def test_half_precision_overflow_suggests_float32():
    poisoned = PoisonedAdapter(lambda row: True, value=float("inf"), dtype=torch.bfloat16)
    with pytest.raises(NonFiniteLogitsError, match="bfloat16.*dtype=float32"):
        generate(poisoned, PROMPTS[:1], _cfg("confidence"))


class PlainLM(torch.nn.Module):
    """A plain module: no config, no vocab_size attribute, returns the logits tensor itself."""

    def __init__(self, vocab=16, out=None, length_delta=0, wrap=None):
        super().__init__()
        torch.manual_seed(0)
        self.emb = torch.nn.Embedding(vocab, 8)
        self.head = torch.nn.Linear(8, out or vocab)
        self.length_delta, self.wrap = length_delta, wrap

    def forward(self, input_ids, attention_mask=None):
        logits = self.head(self.emb(input_ids))
        if self.length_delta:
            logits = logits[:, : logits.shape[1] + self.length_delta]
        return self.wrap(logits) if self.wrap else logits


@pytest.mark.parametrize("name", SAMPLER_NAMES)
def test_every_sampler_runs_on_a_plain_module(name):
    sampler = InfoGainSampler(PlainLM(), mask_id=15)
    out = sampler.sample(torch.tensor([[1, 2, 3], [4, 5, 6]]), max_new_tokens=4, steps=4, block_size=2,
                         candidate_number=3, sampler=name, seed=1)
    assert out.shape == (2, 7) and not (out == 15).any()
    assert sampler.adapter.vocab_size == 16  # read from the logits


def test_wrong_shapes_are_named_errors():
    ids = torch.tensor([[1, 2, 3]])
    with pytest.raises(LogitsShapeError, match=r"shape \(1, 0, 16\)"):  # already the vocabulary probe
        InfoGainSampler(PlainLM(length_delta=-1), mask_id=15).sample(ids, max_new_tokens=4, steps=4)
    declared = InfoGainSampler(PlainLM(length_delta=-1), mask_id=15)
    declared.adapter.vocab_size = 16  # no probe: the decode's first forward is checked
    with pytest.raises(LogitsShapeError, match=r"shape \(1, 6, 16\).*\(1, 7, vocabulary\)"):
        declared.sample(ids, max_new_tokens=4, steps=4)
    short_vocab = InfoGainSampler(PlainLM(vocab=16, out=12), mask_id=11)
    short_vocab.adapter.vocab_size = 16  # a config promising more tokens than the head produces
    with pytest.raises(LogitsShapeError, match="expected .* 16\\)"):
        short_vocab.sample(ids, max_new_tokens=4, steps=4)
    with pytest.raises(TypeError, match="expected logits"):
        InfoGainSampler(PlainLM(wrap=lambda t: {"scores": t}), mask_id=15).sample(ids, max_new_tokens=2, steps=2)
    as_tuple = InfoGainSampler(PlainLM(wrap=lambda t: (t, None)), mask_id=15)
    assert as_tuple.sample(ids, max_new_tokens=2, steps=2).shape == (1, 5)


def test_ids_must_be_integers_inside_the_vocabulary():
    plain = InfoGainSampler(PlainLM(), mask_id=15)
    with pytest.raises(TypeError, match="integer"):
        plain.sample(torch.tensor([[1.0, 2.0]]), max_new_tokens=2, steps=2)
    with pytest.raises(TypeError, match="integer"):
        plain.sample(torch.tensor([[True, False]]), max_new_tokens=2, steps=2)
    with pytest.raises(CanvasError, match=r"token id 40, outside the model's vocabulary \[0, 16\)"):
        plain.sample(torch.tensor([[1, 40]]), max_new_tokens=2, steps=2)
    with pytest.raises(CanvasError, match="mask id 99"):
        InfoGainSampler(PlainLM(), mask_id=99).sample(torch.tensor([[1, 2]]), max_new_tokens=2, steps=2)
    toy = ToyAdapter(ToyMDM())
    with pytest.raises(TypeError, match=r"holds 2\.5"):
        generate(toy, [[1, 2.5]], _cfg("confidence"))
    with pytest.raises(TypeError, match="holds True"):
        generate(toy, [[1, True]], _cfg("confidence"))
    with pytest.raises(CanvasError, match="-3"):
        generate(toy, [[1, -3]], _cfg("confidence"))


def test_nan_options_are_rejected_before_any_model_is_loaded(tmp_path):
    from lm_eval_infogain.harness.options import parse_model_args

    with pytest.raises(DecodingConfigError, match="threshold"):
        parse_model_args({"threshold": "nan"})
    with pytest.raises(DecodingConfigError, match="temperature"):
        InfoGainSampler(ToyAdapter(ToyMDM())).sample(torch.tensor([[1, 2]]), max_new_tokens=2, steps=2,
                                                    temperature=float("nan"))
    calls = []
    adapter = ToyAdapter(ToyMDM())
    adapter.logits = lambda *a, **k: calls.append(1)
    with pytest.raises(DecodingConfigError):
        generate(adapter, [[1, MASK]], DecodingConfig.from_options({"eb_gamma": float("nan")}))
    assert calls == []
