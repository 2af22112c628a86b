"""infogain_mdm answers infilling requests (infill_protocol) with the gap's text, decoded by the engine."""

from __future__ import annotations

import pytest
import torch
from lm_eval.api.instance import Instance

from harness_helpers import install_scripted
from lm_eval_infogain.harness.lm import InfoGainLM
from lm_eval_infogain.harness.requests import InfillSettingError
from lm_eval_infogain.infill_protocol import InfillRequestError, encode_request, generation_kwargs

torch.set_num_threads(1)


@pytest.fixture
def scripted(monkeypatch):
    return install_scripted(monkeypatch)


def _instances(pairs, task="t"):
    return [Instance("generate_until", {}, (context, dict(kwargs)), i, (task, i, 1))
            for i, (context, kwargs) in enumerate(pairs)]


INFILL = generation_kwargs()


def test_gaps_are_filled_between_prefix_and_suffix_next_to_ordinary_requests(scripted):
    # The chain model predicts the successor of the token on a mask's left: a -> b -> c -> d, x -> y -> .
    lm = InfoGainLM(pretrained="m", sampler="confidence", batch_size=4)
    pairs = [
        (encode_request("question : a", "d", "b c"), INFILL),        # gap of 2: "b c"
        ("question : x", {"until": ["."], "max_gen_toks": 4}),       # an ordinary request in the same call
        (encode_request("0", "3 0", "1 2"), INFILL),                  # 0 -> 1 -> 2
        (encode_request("z q", "e", "w"), INFILL),                    # gap of 1
    ]
    # the gap's text as it stands in context: this word tokenizer joins words with spaces
    assert lm.generate_until(_instances(pairs)) == [" b c", "y", " 1 2", " w"]
    records = {r["doc_id"]: r for r in lm.stats.records}
    assert records[0]["generated_tokens"] == 2 and records[2]["generated_tokens"] == 2
    assert records[3]["generated_tokens"] == 1 and records[0]["cumulative_entropy"] >= 0
    assert records[1]["generated_tokens"] == 4  # the ordinary request decodes its appended region


def test_fixed_length_gaps_are_cut_at_their_first_eos(scripted):
    lm = InfoGainLM(pretrained="m", sampler="confidence")
    fixed = generation_kwargs(infill_length=5)
    # a -> b -> c -> d -> [EOS]: a gap of 5 fills "b c d [EOS] [EOS]" (EOS fill) and answers "b c d"
    out = lm.generate_until(_instances([(encode_request("question : a", "", "b"), fixed)]))
    assert out == [" b c d"]


def test_one_step_decodes_the_whole_gap_in_one_forward(scripted):
    lm = InfoGainLM(pretrained="m", sampler="confidence", steps=1, block_size=256)
    out = lm.generate_until(_instances([(encode_request("question : a", "d", "b c"), INFILL)]))
    # in one step every mask is committed from the same logits: the second mask had no left token yet
    assert out[0].split()[0] == "b"
    assert lm.stats.records[0]["model_calls"] == 1 and lm.stats.records[0]["steps"] == 1


def test_settings_and_requests_that_cannot_infill_are_named_errors(scripted):
    from lm_eval_infogain.harness.requests import plan_generation
    from lm_eval_infogain.sampling import DecodingConfig

    with pytest.raises(InfillSettingError, match="cache=none"):  # (the chain model has no cache to try it on)
        plan_generation(INFILL, {"cache": "prefix"}, DecodingConfig(cache="prefix"), None)
    plan = plan_generation(INFILL, {"steps": 64}, DecodingConfig(steps=64), None)
    assert (plan.infill, plan.until, plan.config.gen_length, plan.config.tokens_per_step) == (True, [], 0, 4)
    wrapped = _instances([("< user > " + encode_request("question : a", "d", "b c"), INFILL)])
    with pytest.raises(InfillRequestError, match="apply_chat_template"):
        InfoGainLM(pretrained="m").generate_until(wrapped)
    unmarked = _instances([(encode_request("question : a", "d", "b c"), {"until": []})])
    with pytest.raises(InfillRequestError, match="infill: true"):
        InfoGainLM(pretrained="m").generate_until(unmarked)
