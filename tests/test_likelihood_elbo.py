"""The Monte-Carlo ELBO of ``likelihood.py`` against its exact value, computed by enumeration."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from harness_helpers import VOCAB, chain_adapter
from lm_eval_infogain.likelihood import ElboRequest, mc_elbo, stratified_mask_counts

torch.set_num_threads(1)


def _tiny_bert_adapter(seed: int = 0):
    from transformers import BertConfig, BertForMaskedLM

    from lm_eval_infogain.models.hf import HFModelAdapter

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=12, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=32)
    model = BertForMaskedLM(config).eval()
    with torch.no_grad():  # sharper than the default init, so the terms differ a lot between subsets
        model.cls.predictions.decoder.weight.mul_(40.0)
    return HFModelAdapter(model, mask_id=11, pad_id=0, eos_ids=[10])


@torch.no_grad()
def exact_elbo(adapter, context: list[int], target: list[int]) -> float:
    """E_k E_S[(L/k) sum_{j in S} log p(x_j | S masked)]: every k in 1..L, every subset of size k."""
    length = len(target)
    per_k = []
    for k in range(1, length + 1):
        subsets = list(itertools.combinations(range(length), k))
        rows = []
        for subset in subsets:
            row = list(target)
            for j in subset:
                row[j] = adapter.mask_id
            rows.append(context + row)
        logp = torch.log_softmax(adapter.logits(torch.tensor(rows)).double(), -1)[:, len(context):]
        values = [
            (length / k) * sum(logp[r, j, target[j]].item() for j in subset) for r, subset in enumerate(subsets)
        ]
        per_k.append(sum(values) / len(values))
    return sum(per_k) / length


def test_stratified_counts_cover_every_k_evenly():
    generator = torch.Generator().manual_seed(0)
    counts = stratified_mask_counts(3, 300, generator)
    assert counts.min() == 1 and counts.max() == 3
    assert torch.bincount(counts, minlength=4)[1:].tolist() == [100, 100, 100]


def test_mc_elbo_converges_to_the_enumerated_value():
    """Unbiased, with error shrinking like 1/sqrt(mc_num): RMS over seeds at 8 vs 512 samples."""
    adapter = _tiny_bert_adapter()
    context, target = [1, 5, 7], [3, 9, 2]
    exact = exact_elbo(adapter, context, target)
    seeds = range(8)

    def errors(mc_num: int) -> list[float]:
        return [
            mc_elbo(adapter, [ElboRequest(context, target)], mc_num=mc_num, batch_rows=1024, seed=seed)[0][0] - exact
            for seed in seeds
        ]

    small, large = errors(8), errors(512)
    rms = lambda values: math.sqrt(sum(v * v for v in values) / len(values))  # noqa: E731
    assert rms(large) < rms(small) / 3, (exact, rms(small), rms(large))
    assert abs(sum(large) / len(large)) < 0.15, (exact, large)  # no bias beyond the MC noise (~0.1)
    assert rms(large) < 0.02 * abs(exact)


def test_mc_elbo_matches_exact_when_one_token():
    """L = 1: every sample masks the token, so the estimate is exactly log p(x | context)."""
    adapter = _tiny_bert_adapter(seed=3)
    (estimate, greedy), = mc_elbo(adapter, [ElboRequest([1, 2], [4])], mc_num=5, batch_rows=3)
    logp = torch.log_softmax(adapter.logits(torch.tensor([[1, 2, 11]])).double(), -1)[0, 2]
    assert estimate == pytest.approx(logp[4].item(), abs=1e-5)
    assert greedy == (int(logp.argmax()) == 4)


def test_estimates_do_not_depend_on_batching_or_neighbours():
    adapter = _tiny_bert_adapter()
    a, b = ElboRequest([1, 5, 7], [3, 9, 2]), ElboRequest([4], [6, 6])
    alone = mc_elbo(adapter, [a], mc_num=16, batch_rows=64)[0][0]
    mixed = mc_elbo(adapter, [b, a], mc_num=16, batch_rows=5)[1][0]
    assert alone == pytest.approx(mixed, abs=1e-5)


def test_is_greedy_on_scripted_model():
    adapter = chain_adapter()
    a, b, c, x = VOCAB["a"], VOCAB["b"], VOCAB["c"], VOCAB["x"]
    # one-shot fill of a single masked token after "a" gives "b"
    (logp_b, greedy_b), (logp_x, greedy_x) = mc_elbo(
        adapter, [ElboRequest([VOCAB["[CLS]"], a], [b]), ElboRequest([VOCAB["[CLS]"], a], [x])], mc_num=4
    )
    assert greedy_b and not greedy_x
    assert logp_b > -1e-3 and logp_x < -20
    # two masked tokens: the second one's left neighbour is masked, so one-shot argmax misses "c"
    (_, greedy_bc), = mc_elbo(adapter, [ElboRequest([VOCAB["[CLS]"], a], [b, c])], mc_num=4)
    assert not greedy_bc
    assert math.isfinite(logp_b)
