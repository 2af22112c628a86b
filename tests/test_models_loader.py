"""load_mdm against the official logits of every fixture folder, plus loading paths (dtype, shards,
tokenizers without a registered mask token, masked-LM fallback, missing mask)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from lm_eval_infogain.models import MaskTokenError
from lm_eval_infogain.models.loader import UnsupportedModelError, family_of, load_mdm
from lm_eval_infogain.models.native import NativeAdapter

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "official-tiny"
TOL = 1e-4


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _folders() -> list[Path]:
    if not FIXTURES.is_dir():
        return []
    return sorted(p for p in FIXTURES.iterdir() if (p / "config.json").is_file() and (p / "reference.safetensors").is_file())


def _need(folder):
    if folder is None:
        pytest.skip("../shared/fixtures/official-tiny is not available")


def _folder_of(family: str) -> Path | None:
    for folder in _folders():
        if family_of(json.loads((folder / "config.json").read_text())) == family:
            return folder
    return None


def _max_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().max())


def _shift(raw: torch.Tensor) -> torch.Tensor:
    return torch.cat([raw[:, :1], raw[:, :-1]], dim=1)


FOLDERS = _folders() or [None]
IDS = [getattr(p, "name", "missing") for p in FOLDERS]


@pytest.mark.parametrize("folder", FOLDERS, ids=IDS)
def test_official_logits(folder):
    """Full, left-padded (real positions) and rows-alone logits within 1e-4 of the official code."""
    _need(folder)
    from safetensors.torch import load_file

    ref = load_file(str(folder / "reference.safetensors"))
    adapter = load_mdm(folder)
    assert isinstance(adapter, NativeAdapter)
    family = adapter.family
    expect = _shift if family == "dream" else (lambda t: t)
    ids = ref["input_ids"]

    if family == "sdar":
        # The model's own mode is block-causal; logits_full is the same weights fully bidirectional.
        assert _max_err(adapter.logits(ids), ref["logits_block"]) <= TOL
        adapter.model.block_size = None
        try:
            assert _max_err(adapter.model(ids), ref["logits_full"]) <= TOL
        finally:
            adapter.model.block_size = adapter.alignment
        padded_key = "logits_block_padded"
    else:
        assert _max_err(adapter.model(ids), ref["logits_full"]) <= TOL  # raw module output
        assert _max_err(adapter.logits(ids), expect(ref["logits_full"])) <= TOL
        padded_key = "logits_padded"

    mask = ref["attention_mask_padded"]
    real = mask.bool()
    padded = adapter.logits(ref["input_ids_padded"], mask)
    raw_padded = adapter.model(ref["input_ids_padded"], mask, position_ids=adapter._positions(ids, mask))
    assert _max_err(raw_padded[real], ref[padded_key][real]) <= TOL
    alone_ref = ref[padded_key + "_rows_alone"]
    for row in range(mask.shape[0]):
        start = int((mask[row] == 0).sum())
        alone = adapter.model(ref["input_ids_padded"][row : row + 1, start:])[0]
        assert _max_err(alone, alone_ref[row, start:]) <= TOL
        if family == "dream":  # the adapter's shifted logits agree with shifting the padded raw ones
            assert _max_err(padded[row, start + 1 :], raw_padded[row, start:-1]) <= 1e-6


@pytest.mark.parametrize("folder", [_folder_of("sdar")], ids=["sdar"])
def test_sdar_cached_next_block(folder):
    """The exact cache of finished blocks reproduces the official DynamicCache next-block logits."""
    _need(folder)
    from safetensors.torch import load_file

    ref = load_file(str(folder / "reference.safetensors"))
    adapter = load_mdm(folder)
    start = ref["logits_cached_prefix"].shape[1]
    end = start + ref["logits_cached_next_block"].shape[1]
    ids = ref["input_ids"]
    assert _max_err(adapter.logits(ids[:, :start]), ref["logits_cached_prefix"]) <= TOL
    for mode in ("prefix", "dual"):
        entry, state = adapter.open_cache(ids, None, mode=mode, block=(start, end))
        assert state.payload.keys[0].shape[2] == start  # only finished blocks are kept
        cached = adapter.cached_logits(state, ids)[:, : end - start]
        assert _max_err(cached, ref["logits_cached_next_block"]) <= TOL
        assert _max_err(entry[:, : end - start], ref["logits_cached_next_block"]) <= TOL


@pytest.mark.parametrize("folder", FOLDERS, ids=IDS)
def test_special_ids_and_tokenizer(folder):
    _need(folder)
    config = json.loads((folder / "config.json").read_text())
    adapter = load_mdm(folder)
    tok = adapter.tokenizer
    assert tok is not None
    assert adapter.mask_id == config["mask_token_id"]
    pad = config.get("pad_token_id", tok.pad_token_id)
    assert adapter.pad_id == pad
    assert adapter.eos_ids[0] == config["eos_token_id"]
    assert set(adapter.penalized_ids) == {config["eos_token_id"], pad}
    assert adapter.mask_id not in adapter.eos_ids
    assert tok.convert_ids_to_tokens(adapter.eos_ids[0]) == "<|endoftext|>"
    assert adapter.vocab_size == adapter.model.vocab_size
    assert adapter.max_length == (config.get("max_sequence_length") or config.get("max_position_embeddings"))
    if adapter.family == "llada":
        assert tok.mask_token_id is None  # as in the real tokenizer: found through the vocabulary
        assert "<|eot_id|>" in tok.convert_ids_to_tokens(list(adapter.eos_ids))
    if adapter.family == "sdar":
        assert adapter.alignment == config["block_size"]


def test_llada_mask_from_vocab_when_config_has_none(tmp_path):
    folder = _folder_of("llada")
    _need(folder)
    shutil.copytree(folder, tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    mask = config.pop("mask_token_id")
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    adapter = load_mdm(tmp_path / "m")
    assert adapter.tokenizer.mask_token_id is None
    assert adapter.mask_id == mask == adapter.tokenizer.convert_tokens_to_ids("<|mdm_mask|>")


def test_missing_mask_raises(tmp_path):
    folder = _folder_of("llada")
    _need(folder)
    (tmp_path / "m").mkdir()
    shutil.copy(folder / "model.safetensors", tmp_path / "m")
    config = json.loads((folder / "config.json").read_text())
    config.pop("mask_token_id")
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    with pytest.raises(MaskTokenError, match="mask"):
        load_mdm(tmp_path / "m")
    assert load_mdm(tmp_path / "m", mask_id=7).mask_id == 7  # an explicit id is enough


@pytest.mark.parametrize("family", ["llada", "dream", "sdar"])
def test_bf16_and_sharded(tmp_path, family):
    folder = _folder_of(family)
    _need(folder)
    from safetensors.torch import load_file, save_file

    ids = load_file(str(folder / "reference.safetensors"))["input_ids"]
    full = load_mdm(folder).logits(ids)

    bf16 = load_mdm(folder, dtype="bf16")
    assert next(bf16.model.parameters()).dtype == torch.bfloat16
    low = bf16.logits(ids)
    assert low.dtype == torch.bfloat16 and torch.isfinite(low.float()).all()
    assert _max_err(low, full) < 0.05  # bf16 rounding only (weights ~1e-3 relative)

    shard_dir = tmp_path / "sharded"
    shard_dir.mkdir()
    for name in folder.iterdir():
        if name.name not in ("model.safetensors", "reference.safetensors"):
            shutil.copy(name, shard_dir)
    tensors = load_file(str(folder / "model.safetensors"))
    names = sorted(tensors)
    weight_map = {}
    for part, chunk in enumerate((names[: len(names) // 2], names[len(names) // 2 :])):
        fname = f"model-{part + 1:05d}-of-00002.safetensors"
        save_file({n: tensors[n] for n in chunk}, str(shard_dir / fname))
        weight_map.update({n: fname for n in chunk})
    (shard_dir / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    assert torch.equal(load_mdm(shard_dir).logits(ids), full)


def _word_tokenizer(with_mask: bool):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"] + (["[MASK]"] if with_mask else [])
    vocab = {tok: i for i, tok in enumerate(specials + [f"w{i}" for i in range(27)])}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    extra = {"mask_token": "[MASK]"} if with_mask else {}
    return PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]", **extra
    )


@pytest.mark.parametrize("with_mask", [True, False])
def test_masked_lm_fallback(tmp_path, with_mask):
    from transformers import BertConfig, BertForMaskedLM

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=31, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        max_position_embeddings=64,
    )  # fmt: skip
    model = BertForMaskedLM(config).eval()
    model.save_pretrained(tmp_path)
    _word_tokenizer(with_mask).save_pretrained(tmp_path)
    if not with_mask:
        with pytest.raises(MaskTokenError):
            load_mdm(tmp_path)
        return
    adapter = load_mdm(tmp_path)
    assert adapter.mask_id == 4 and adapter.tokenizer.mask_token_id == 4
    ids = torch.randint(0, 31, (2, 9))
    with torch.no_grad():
        assert torch.allclose(adapter.logits(ids), model(input_ids=ids).logits, atol=1e-6)
    assert adapter.cache_modes == ("none",)


def test_unknown_model_type_needs_remote_code(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "not_a_real_mdm"}))
    with pytest.raises(UnsupportedModelError, match="trust_remote_code"):
        load_mdm(tmp_path)


# ---------------------------------------------------------------- bad checkpoints: named errors naming the file
DEMO = Path(__file__).resolve().parents[1] / "lm_eval_infogain" / "demo" / "model"


def _demo_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "ckpt"
    shutil.copytree(DEMO, folder)
    return folder


def test_missing_local_path_is_neither_a_folder_nor_a_hub_id(tmp_path):
    from lm_eval_infogain.models.loader import CheckpointNotFoundError

    for missing in ("/nonexistent/path", str(tmp_path / "nope"), "./relative/dir/"):
        with pytest.raises(CheckpointNotFoundError, match="neither a local folder .* nor a Hugging Face hub id") as err:
            load_mdm(missing)
        assert missing in str(err.value)
    assert isinstance(err.value, FileNotFoundError)


def test_a_file_is_not_a_checkpoint_folder(tmp_path):
    from lm_eval_infogain.models.loader import CheckpointNotFoundError

    with pytest.raises(CheckpointNotFoundError, match="is a file, not a checkpoint folder"):
        load_mdm(DEMO / "config.json")


def test_corrupt_config_json_names_the_file(tmp_path):
    from lm_eval_infogain.models.loader import CorruptCheckpointError

    folder = _demo_copy(tmp_path)
    (folder / "config.json").write_text('{"model_type": "llada", "d_model": 12')
    with pytest.raises(CorruptCheckpointError) as err:
        load_mdm(folder)
    assert str(folder / "config.json") in str(err.value) and "not valid JSON" in str(err.value)
    (folder / "config.json").write_text("[1, 2]")
    with pytest.raises(CorruptCheckpointError, match="must hold a JSON object"):
        load_mdm(folder)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_damaged_safetensors_name_the_file(tmp_path, damage):
    from lm_eval_infogain.models.loader import CorruptCheckpointError

    folder = _demo_copy(tmp_path)
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes({"truncated": data[: len(data) - 1000], "garbage": b"\x00garbage" * 64, "empty": b""}[damage])
    with pytest.raises(CorruptCheckpointError) as err:
        load_mdm(folder)
    assert str(weights) in str(err.value)
    assert ("truncated" in str(err.value)) if damage == "truncated" else ("not a safetensors file" in str(err.value))


def test_a_folder_without_weights_says_so(tmp_path):
    from lm_eval_infogain.models.loader import MissingWeightsError

    folder = _demo_copy(tmp_path)
    (folder / "model.safetensors").unlink()
    with pytest.raises(MissingWeightsError, match="has no weights"):
        load_mdm(folder)
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"w": "model-1.safetensors"}}))
    with pytest.raises(MissingWeightsError, match="model-1.safetensors"):
        load_mdm(folder)


def test_generic_masked_lm_without_weights_is_named_too(tmp_path):
    from lm_eval_infogain.models.loader import MissingWeightsError

    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(MissingWeightsError, match=str(tmp_path)):
        load_mdm(tmp_path)


def test_device_cpu_0_loads(tmp_path):
    """Data-parallel CPU processes are told 'cpu:0', which safetensors itself rejects."""
    adapter = load_mdm(DEMO, device="cpu:0")
    assert next(adapter.model.parameters()).device == torch.device("cpu")
