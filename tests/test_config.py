"""DecodingConfig: every invalid option fails early with the field, the value and what is allowed."""

import pytest

from lm_eval_infogain.sampling import DecodingConfig, DecodingConfigError
from lm_eval_infogain.sampling.config import SAMPLER_ALIASES, SAMPLER_NAMES
from lm_eval_infogain.sampling.strategies import schedule_k

import torch


@pytest.mark.parametrize(
    "options, field, value",
    [
        ({"sampler": "nope"}, "sampler", "nope"),
        ({"gen_length": -1}, "gen_length", -1),
        ({"gen_length": 0, "steps": 4}, "steps", 4),
        ({"gen_length": 2.5}, "gen_length", 2.5),
        ({"block_size": -1}, "block_size", -1),
        ({"gen_length": 64, "block_size": 32, "steps": 1}, "steps", 1),
        ({"gen_length": 64, "steps": 65}, "steps", 65),
        ({"block_size": 8, "tokens_per_step": 9}, "tokens_per_step", 9),
        ({"gen_length": 64, "block_size": 32, "tokens_per_step": 2, "steps": 64}, "steps", 64),
        ({"temperature": -0.1}, "temperature", -0.1),
        ({"candidate_number": 0}, "candidate_number", 0),
        ({"position_temperature": 0}, "position_temperature", 0),
        ({"threshold": 1.5}, "threshold", 1.5),
        ({"threshold": "high"}, "threshold", "high"),
        ({"sampler": "fast_dllm", "threshold": None}, "threshold", None),
        ({"sampler": "klass", "threshold": 0}, "threshold", None),
        ({"variant": "other"}, "variant", "other"),
        ({"sampler": "confidence", "variant": "lookum"}, "variant", "lookum"),
        ({"sampler": "lookum", "variant": "info_gain"}, "variant", "info_gain"),
        ({"ig_scope": "everything"}, "ig_scope", "everything"),
        ({"cache": "dual", "ig_scope": "sequence"}, "ig_scope", "sequence"),
        ({"cache": "paged"}, "cache", "paged"),
        ({"eos_penalty": "x"}, "eos_penalty", "x"),
        ({"eos_fill": "maybe"}, "eos_fill", "maybe"),
        ({"seed": 1.5}, "seed", 1.5),
        ({"beam_size": 0}, "beam_size", 0),
        ({"sampler": "confidence", "beam_size": 2}, "beam_size", 2),
        ({"fast_dllm_factor": -1.0}, "fast_dllm_factor", -1.0),
        ({"eb_gamma": -1.0}, "eb_gamma", -1.0),
        ({"pc_lambda": -0.5}, "pc_lambda", -0.5),
        ({"pc_alpha": 0}, "pc_alpha", 0),
        ({"klass_kl_threshold": -1.0}, "klass_kl_threshold", -1.0),
        ({"klass_history": 0}, "klass_history", 0),
        ({"no_such_option": 1}, "no_such_option", 1),
    ],
)
def test_invalid_options_name_field_and_value(options, field, value):
    with pytest.raises(DecodingConfigError) as info:
        DecodingConfig.from_options(options)
    err = info.value
    assert err.field == field and err.value == value
    assert field in str(err) and repr(value) in str(err) and err.allowed


FLOAT_OPTIONS = ["threshold", "eos_penalty", "temperature", "eb_gamma", "fast_dllm_factor", "klass_kl_threshold",
                 "pc_alpha", "pc_lambda", "position_temperature"]


@pytest.mark.parametrize("field", FLOAT_OPTIONS)
@pytest.mark.parametrize("value", [float("nan"), "nan", float("inf"), float("-inf"), "inf"])
def test_nan_and_inf_are_rejected_for_every_float_option(field, value):
    """NaN passes every < / > check, so without this a run exits 0 with garbage or dies in torch."""
    with pytest.raises(DecodingConfigError) as info:
        DecodingConfig.from_options({field: value})
    assert info.value.field == field and "number" in info.value.allowed


def test_pure_infilling_config_needs_no_steps():
    cfg = DecodingConfig(gen_length=0, block_size=8)
    assert cfg.block_lengths == [] and cfg.steps_for(20) == [8, 8, 4]
    assert DecodingConfig(gen_length=0, block_size=8, tokens_per_step=3).steps_for(10) == [3, 1]
    # steps keep their tokens-per-step ratio on rows with another number of masks
    assert DecodingConfig(gen_length=16, block_size=8, steps=8).steps_for(16) == [4, 4]
    assert DecodingConfig(gen_length=16, block_size=8, steps=8).steps_for(24) == [4, 4, 4]
    # a block above the masks is one block over all of them; the value is recorded as given
    assert DecodingConfig(gen_length=8, block_size=100).block_size == 100


def test_unknown_sampler_lists_every_valid_name():
    with pytest.raises(DecodingConfigError) as info:
        DecodingConfig(sampler="greedy")
    for name in SAMPLER_NAMES + tuple(SAMPLER_ALIASES):
        assert name in str(info.value)


def test_aliases_and_variant_resolution():
    assert DecodingConfig(sampler="low_confidence").sampler == "confidence"
    assert DecodingConfig(sampler="original").sampler == "confidence"
    assert DecodingConfig(sampler="Uniform").sampler == "random"
    cfg = DecodingConfig(variant="lookum")
    assert cfg.sampler == "lookum" and cfg.variant == "lookum"
    assert DecodingConfig(sampler="margin").variant is None


def test_string_options_are_coerced_like_lm_eval_model_args():
    cfg = DecodingConfig.from_options(
        {"sampler": "info_gain", "gen_length": "64", "threshold": "none", "eos_fill": "false",
         "temperature": "0.7", "steps": "32", "block_size": "16"}
    )
    assert (cfg.gen_length, cfg.threshold, cfg.eos_fill, cfg.temperature, cfg.steps) == (64, None, False, 0.7, 32)


def test_threshold_at_or_below_zero_disables_bypass():
    assert DecodingConfig(threshold=0).threshold is None
    assert DecodingConfig(threshold=-1).threshold is None


def test_replace_rederives_derived_fields():
    cfg = DecodingConfig()
    assert cfg.replace(sampler="confidence").sampler == "confidence"
    assert cfg.replace(cache="dual").ig_scope == "block"
    assert DecodingConfig(ig_scope="block").replace(gen_length=64).ig_scope == "block"
    assert DecodingConfig(sampler="lookum").replace(gen_length=8).sampler == "lookum"


def test_block_lengths_and_steps_split():
    cfg = DecodingConfig(gen_length=70, block_size=32, steps=35)
    assert cfg.block_lengths == [32, 32, 6]
    assert sum(cfg.steps_per_block) == 35 and all(1 <= s <= l for s, l in zip(cfg.steps_per_block, cfg.block_lengths))
    assert DecodingConfig(gen_length=70, block_size=32).steps_per_block == [32, 32, 6]
    assert DecodingConfig(gen_length=10, block_size=4, tokens_per_step=3).steps_per_block == [2, 2, 1]
    assert DecodingConfig(gen_length=8, block_size=100).block_lengths == [8]


def _llada_num_transfer_tokens(masks: int, steps: int) -> list[int]:
    """LLaDA's get_num_transfer_tokens, restated: base = m // steps, the remainder to the first steps."""
    base, rem = divmod(masks, steps)
    return [base + (1 if i < rem else 0) for i in range(steps)]


@pytest.mark.parametrize("masks, steps", [(32, 32), (32, 8), (10, 4), (7, 3), (5, 5), (31, 6)])
def test_k_schedule_reproduces_llada_linear_schedule(masks, steps):
    left, ks = torch.tensor([masks]), []
    for step in range(steps):
        k = schedule_k(left, steps - step, None)
        ks.append(int(k))
        left = left - k
    assert ks == _llada_num_transfer_tokens(masks, steps)
    assert int(left) == 0
