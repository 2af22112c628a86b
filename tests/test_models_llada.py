"""LLaDAModel: official numerics on the shipped fixtures, trainability and the checkpoint round trip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from lm_eval_infogain.models.llada import LLaDAConfigError, LLaDAModel, llada_config, save_llada_checkpoint

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "official-tiny"


def _llada_folders() -> list[Path]:
    if not FIXTURES.is_dir():
        return []
    return sorted(
        p for p in FIXTURES.iterdir() if (p / "config.json").is_file()
        and json.loads((p / "config.json").read_text()).get("model_type") == "llada"
    )


@pytest.mark.parametrize("folder", _llada_folders() or [None], ids=lambda p: getattr(p, "name", "missing"))
def test_llada_module_matches_official_logits(folder):
    if folder is None:
        pytest.skip("../shared/fixtures/official-tiny with a llada folder is not available")
    from safetensors.torch import load_file

    model = LLaDAModel(json.loads((folder / "config.json").read_text()))
    model.load_state_dict(load_file(str(folder / "model.safetensors")), strict=True)
    ref = load_file(str(folder / "reference.safetensors"))
    with torch.no_grad():
        assert (model(ref["input_ids"]) - ref["logits_full"]).abs().max() <= 1e-4
        mask = ref["attention_mask_padded"]
        padded = model(ref["input_ids_padded"], attention_mask=mask)
        assert (padded - ref["logits_padded"])[mask.bool()].abs().max() <= 1e-4
        for row in range(mask.shape[0]):
            start = int((mask[row] == 0).sum())
            alone = model(ref["input_ids_padded"][row : row + 1, start:])[0]
            assert (alone - ref["logits_padded_rows_alone"][row, start:]).abs().max() <= 1e-4


@pytest.mark.parametrize("tied,rope", [(False, True), (True, True), (False, False)])
def test_llada_trains_and_round_trips(tmp_path, tied, rope):
    torch.manual_seed(0)
    cfg = llada_config(
        d_model=32, n_heads=4, n_layers=2, vocab_size=50, mlp_hidden_size=64, weight_tying=tied, rope=rope,
        max_sequence_length=32,
    )  # fmt: skip
    model = LLaDAModel(cfg)
    names = set(model.state_dict())
    assert ("model.transformer.ff_out.weight" in names) is (not tied)
    assert ("model.transformer.wpe.weight" in names) is (not rope)
    assert {"model.transformer.wte.weight", "model.transformer.blocks.1.up_proj.weight"} <= names
    ids = torch.randint(0, 50, (4, 12))
    optim = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(5):
        loss = torch.nn.functional.cross_entropy(model(ids).flatten(0, 1), ids.flatten())
        optim.zero_grad()
        loss.backward()
        optim.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0] - 0.5

    save_llada_checkpoint(model, cfg, tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model_type"] == "llada" and saved["architectures"] == ["LLaDAModelLM"]
    assert saved["weight_tying"] is tied and saved["rope"] is rope
    from safetensors.torch import load_file

    again = LLaDAModel(saved)
    again.load_state_dict(load_file(str(tmp_path / "model.safetensors")), strict=True)
    with torch.no_grad():
        assert torch.equal(again(ids), model(ids))


def test_llada_rejects_unsupported_variants():
    with pytest.raises(LLaDAConfigError, match="alibi"):
        llada_config(d_model=32, n_heads=4, n_layers=1, vocab_size=10, alibi=True)
    with pytest.raises(LLaDAConfigError, match="d_model"):
        LLaDAModel({"n_heads": 4, "n_layers": 1, "vocab_size": 10})


def test_learned_positions_are_absolute_and_rope_is_relative():
    """``rope: false`` adds the official ``wpe`` table: shifting every position changes the logits;
    with RoPE only distances matter, so the same shift changes nothing."""
    ids = torch.randint(0, 50, (2, 10), generator=torch.Generator().manual_seed(3))
    base = torch.arange(10).expand(2, 10)
    for rope in (True, False):
        torch.manual_seed(0)
        model = LLaDAModel(llada_config(d_model=32, n_heads=4, n_layers=2, vocab_size=50, rope=rope, max_sequence_length=32))
        with torch.no_grad():
            for p in model.parameters():
                p.normal_(0, 0.3) if p.dim() > 1 else p.normal_(1.0, 0.1)
            shift = (model(ids, position_ids=base + 5) - model(ids, position_ids=base)).abs().max()
        assert bool(shift > 1e-2) is (not rope)
