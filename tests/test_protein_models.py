"""Protein masked LMs: ``pretrained=antiberty`` resolution (and its error without the extra), the AntiBERTy
checkpoint as a plain BertForMaskedLM with every weight from the wheel, a real AntiBERTy forward recovering
CDR-H3 loops far above chance, and tiny random ESM/BERT protein models through the generic loader."""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

import pytest
import torch

from lm_eval_infogain import infill_protocol as ip
from lm_eval_infogain.models import protein
from lm_eval_infogain.scoring import antibody

TASK_DATA = Path(__file__).resolve().parents[1] / "task_configs" / "data" / "sabdab_heavy_chains.jsonl"
AMINO = "ACDEFGHIKLMNPQRSTVWY"
HAS_WHEEL = importlib.util.find_spec("antiberty") is not None
needs_wheel = pytest.mark.skipif(not HAS_WHEEL, reason="antiberty==0.1.3 (the protein extra) is not installed")


def _docs(n: int) -> list[dict]:
    rows = [json.loads(line) for line in TASK_DATA.read_text().splitlines()]
    return antibody.cdrh3_documents(rows)[0][:n]


# ------------------------------------------------------------------ resolution without the wheel
def test_without_the_extra_the_error_says_what_to_install(monkeypatch, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(protein.importlib.util, "find_spec", lambda name, *a: None if name == "antiberty" else real(name, *a))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(protein.ProteinExtraMissingError) as err:
        protein.resolve_pretrained("antiberty")
    assert "pip install 'lm-eval-infogain[protein]'" in str(err.value) and "antiberty==0.1.3" in str(err.value)


def test_a_weightless_antiberty_release_is_refused(monkeypatch, tmp_path):
    """antiberty 1.0.0 ships no weights (it downloads them from the hub): name the version that has them."""
    (tmp_path / "antiberty").mkdir()
    (tmp_path / "antiberty" / "__init__.py").write_text("")
    dist = tmp_path / "antiberty-1.0.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: antiberty\nVersion: 1.0.0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path / "antiberty")
    with pytest.raises(protein.ProteinModelError, match=r"antiberty 1\.0\.0 is installed but lacks .*0\.1\.3"):
        protein.resolve_pretrained("antiberty")


def test_other_names_and_existing_folders_are_left_alone(monkeypatch, tmp_path):
    assert protein.resolve_pretrained("GSAI-ML/LLaDA-8B-Instruct") is None
    assert protein.resolve_pretrained(str(tmp_path)) is None
    (tmp_path / "antiberty").mkdir()
    monkeypatch.chdir(tmp_path)
    assert protein.resolve_pretrained("antiberty") is None  # a local folder of that name wins


def test_cache_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("LM_EVAL_INFOGAIN_CACHE", str(tmp_path / "c"))
    assert protein.cache_root() == tmp_path / "c"
    monkeypatch.delenv("LM_EVAL_INFOGAIN_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert protein.cache_root() == tmp_path / "x" / "lm_eval_infogain"


# ------------------------------------------------------------------ the real AntiBERTy
@pytest.fixture(scope="module")
def antiberty_folder(tmp_path_factory):
    if not HAS_WHEEL:
        pytest.skip("antiberty==0.1.3 (the protein extra) is not installed")
    return protein.materialize_antiberty(tmp_path_factory.mktemp("cache"))


@needs_wheel
def test_antiberty_checkpoint_holds_every_masked_lm_weight_of_the_wheel(antiberty_folder):
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    source = protein.antiberty_source()
    assert source.version == protein.ANTIBERTY_VERSION
    model, info = AutoModelForMaskedLM.from_pretrained(str(antiberty_folder), output_loading_info=True)
    assert type(model).__name__ == "BertForMaskedLM"
    assert not any(info[key] for key in ("missing_keys", "unexpected_keys", "mismatched_keys"))
    original = torch.load(str(source.weights), map_location="cpu", weights_only=True)
    loaded = model.state_dict()
    assert set(original) - set(loaded) == protein.ANTIBERTY_UNUSED
    assert all(torch.equal(loaded[name], original[name]) for name in loaded), "every weight comes from the wheel"
    assert sum(p.numel() for p in model.parameters()) == 25_759_769
    provenance = json.loads((antiberty_folder / "antiberty_source.json").read_text())
    assert provenance["package"] == "antiberty==0.1.3" and antiberty_folder.name.endswith(provenance["weights_sha256"][:16])
    tokenizer = AutoTokenizer.from_pretrained(str(antiberty_folder))
    vocab_lines = source.vocab.read_text().split()
    assert tokenizer("E V Q L [MASK]")["input_ids"] == [2, *(vocab_lines.index(c) for c in "EVQL"), 4, 3]
    assert tokenizer.mask_token_id == 4 and tokenizer.pad_token_id == 0
    stamp = (antiberty_folder / "model.safetensors").stat().st_mtime_ns
    assert protein.materialize_antiberty(antiberty_folder.parent) == antiberty_folder  # built once
    assert (antiberty_folder / "model.safetensors").stat().st_mtime_ns == stamp


@needs_wheel
@pytest.mark.slow
def test_real_antiberty_recovers_cdrh3_loops_far_above_chance(antiberty_folder):
    """One forward per chain with its whole CDR-H3 masked, argmax per position, through the generic loader
    and the infilling protocol: a random residue is right 1 time in 20."""
    from lm_eval_infogain.models import load_mdm

    torch.manual_seed(0)
    adapter = load_mdm(str(antiberty_folder))
    assert type(adapter).__name__ == "HFModelAdapter" and adapter.mask_id == 4
    recoveries, exact, seconds = [], 0, []
    for doc in _docs(32):
        request = ip.decode_request(antibody.doc_to_text(doc), {"infill": True})
        canvas = ip.build_canvas(request, adapter.tokenizer, adapter.mask_id)
        assert canvas.gap_length == len(doc["cdrh3"]) and canvas.ids[0] == 2 and canvas.ids[-1] == 3
        ids = torch.tensor([canvas.ids])
        start = time.perf_counter()
        logits = adapter.logits(ids)
        seconds.append(time.perf_counter() - start)
        row = ids[0].clone()
        gap = slice(canvas.gap_start, canvas.gap_start + canvas.gap_length)
        row[gap] = logits[0, gap].argmax(-1)
        text = ip.gap_text(adapter.tokenizer, canvas, canvas.gap_ids(row.tolist()), eos_ids=adapter.eos_ids, pad_id=adapter.pad_id)
        scores = antibody.process_results(doc, [text])
        recoveries.append(scores["recovery"])
        exact += scores["exact_match"]
    mean = sum(recoveries) / len(recoveries)
    print(f"AntiBERTy one-shot CDR-H3 recovery on 32 chains: {mean:.3f} (exact {exact:.0f}/32); "
          f"median forward {sorted(seconds)[16] * 1000:.0f} ms")
    assert mean > 0.3  # measured 0.41 on the first 40 chains; chance is 0.05


# ------------------------------------------------------------------ any BERT/ESM-style protein model
def _esm_folder(folder: Path) -> Path:
    from transformers import EsmConfig, EsmForMaskedLM, EsmTokenizer

    tokens = ["<cls>", "<pad>", "<eos>", "<unk>", *AMINO, "X", "<null_1>", "<mask>"]
    folder.mkdir()
    (folder / "vocab.txt").write_text("\n".join(tokens) + "\n")
    torch.manual_seed(0)
    config = EsmConfig(vocab_size=len(tokens), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                       intermediate_size=32, max_position_embeddings=256, pad_token_id=1, mask_token_id=len(tokens) - 1,
                       position_embedding_type="absolute", token_dropout=False)
    EsmForMaskedLM(config).eval().save_pretrained(folder)
    EsmTokenizer(vocab_file=str(folder / "vocab.txt")).save_pretrained(folder)
    return folder


def _bert_folder(folder: Path) -> Path:
    from transformers import BertConfig, BertForMaskedLM, BertTokenizer

    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *AMINO])}
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=256)
    BertForMaskedLM(config).eval().save_pretrained(folder)
    BertTokenizer(vocab=vocab, do_lower_case=False).save_pretrained(folder)
    return folder


@pytest.mark.parametrize("kind", ["esm", "bert"])
def test_tiny_protein_masked_lms_load_generically_and_fill_a_cdrh3_canvas(kind, tmp_path):
    from lm_eval_infogain.models import load_mdm

    folder = (_esm_folder if kind == "esm" else _bert_folder)(tmp_path / kind)
    adapter = load_mdm(str(folder))
    tokenizer = adapter.tokenizer
    assert adapter.mask_id == tokenizer.mask_token_id
    doc = _docs(1)[0]
    canvas = ip.build_canvas(ip.decode_request(antibody.doc_to_text(doc), {"infill": True}), tokenizer, adapter.mask_id)
    vocab = tokenizer.get_vocab()
    first, last = ("<cls>", "<eos>") if kind == "esm" else ("[CLS]", "[SEP]")
    assert canvas.ids[0] == vocab[first] and canvas.ids[-1] == vocab[last]
    assert canvas.ids[1 : canvas.gap_start] == [vocab[c] for c in doc["framework_before"]]
    assert canvas.gap_length == len(doc["cdrh3"]) == canvas.ids.count(adapter.mask_id)
    logits = adapter.logits(torch.tensor([canvas.ids]))
    assert logits.shape == (1, len(canvas.ids), len(vocab)) and torch.isfinite(logits).all()
    residue_ids = torch.tensor([vocab[c] for c in AMINO])
    gap = slice(canvas.gap_start, canvas.gap_start + canvas.gap_length)
    best = residue_ids[logits[0, gap][:, residue_ids].argmax(-1)]
    row = list(canvas.ids)
    row[gap] = best.tolist()
    text = ip.gap_text(tokenizer, canvas, canvas.gap_ids(row), eos_ids=adapter.eos_ids, pad_id=adapter.pad_id)
    assert "".join(text.split()) == "".join(AMINO[int((residue_ids == t).nonzero())] for t in best)
