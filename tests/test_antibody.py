"""Antibody CDR-H3 infilling: IMGT anchors on real SAbDab heavy chains, skip counting, the shipped chain file,
the metrics, and the task through lm-eval (oracle, constant and random-residue answers, doc_id joins)."""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path

import pytest

from lm_eval_infogain import infill_protocol as ip
from lm_eval_infogain.scoring import antibody, data

SHARED_SABDAB = Path(__file__).resolve().parents[2] / "shared" / "data" / "sabdab"
TASK_DIR = Path(__file__).resolve().parents[1] / "task_configs"
SHIPPED = TASK_DIR / "data" / "sabdab_heavy_chains.jsonl"
TASK = "infogain_antibody_cdrh3"
AMINO = "ACDEFGHIKLMNPQRSTVWY"

#: Real heavy chains (SAbDab, shipped file) with their CDR-H3 as IMGT defines it.
KNOWN = {
    # the example of the data README: ...AVYYC|ARERGMHYMDV|WGKG...
    "5k59": "ARERGMHYMDV",
    # test split, first heavy chain: ...AIYYC|AKDWGGASDRVFDY|WGRG...
    "6w00": "AKDWGGASDRVFDY",
}


def _shipped_rows() -> list[dict]:
    return [json.loads(line) for line in SHIPPED.read_text().splitlines()]


def test_known_loops_on_real_chains():
    rows = {row["pdb"]: row for row in _shipped_rows()}
    for pdb, loop in KNOWN.items():
        cdr = antibody.find_cdrh3(rows[pdb]["sequence"])
        assert cdr.loop == loop and cdr.framework_before.endswith("YYC") and cdr.framework_after[:2] == "WG"
        assert cdr.framework_before + cdr.loop + cdr.framework_after == rows[pdb]["sequence"]
        assert rows[pdb]["sequence"][cdr.start : cdr.start + len(loop)] == loop
    assert antibody.find_cdrh3(rows["5k59"]["sequence"]).framework_before.endswith("AVYYC")


def test_framework_wgxg_before_cys_and_cys_inside_the_loop_are_not_anchors():
    # a real chain whose framework 1 holds QQWGAG (a WGxG before Cys 104)
    real = "QVQLQQWGAGLLKPSETLSLTCAVYGGSFSGYYWSWIRQSPEKGLEWIGEINHGGYVTYNPSLESRVTISVDTSKNQFSLKLSSVTAADTAVYYCARDYGPGNYDWYFDLWGRGTLVTVSS"
    assert antibody.find_cdrh3(real).loop == "ARDYGPGNYDWYFDL"
    framework3 = "QVQLVESGGGLVQPGGSLRLSCAASGFTFSSYAMSWVRQAPGKGLEWVSAISGSGGSTYYADSVKGRFTISRDNSKNTLYLQMNSLRAEDTAVYYC"
    loop = "ARDYYCSGCFDY"  # a loop that itself contains YYC and Cys
    assert antibody.find_cdrh3(framework3 + loop + "WGQGTLVTVSS").loop == loop
    assert antibody.find_cdrh3(framework3.replace("AVYYC", "ALFYC") + loop + "WGQGTLVTVSS").loop == loop


@pytest.mark.parametrize("sequence,reason", [
    ("QVQLVESGGGLVQPGGSLRLSCAASGFTFSSYAMSWVRQAPGKGLEWVSAISGSGGSTYYADSVKGRFTISRDNSKNTLYLQMNSLRAEDTAVYYVARGRFFDYWGQGTLVTVS", "no Cys 104"),
    ("QVQLVESGGGLVQPGGSLRLSCAASGFTFSSYAMSWVRQAPGKGLEWVSAISGSGGSTYYADSVKGRFTISRDNSKNTLYLQMNSLRAEDTAVYYCARDVQYSGSYFDYWSPGTLVTVSS", "no Trp 118"),
    ("QVQLVESGGGLVQPGGSLRLSCAASGFTFSSYAMSWVRQAPGKGLEWVSAISGSGGSTYYADSVKGRFTISRDNSKNTLYLQMNSLRAEDTAVYYCWGQGTLVTVSS", "empty loop"),
])  # fmt: skip
def test_chains_without_anchors_raise_with_the_reason(sequence, reason):
    with pytest.raises(antibody.AnchorNotFound, match=reason):
        antibody.find_cdrh3(sequence)


def test_real_chains_usable_and_skipped_counts():
    docs, skipped = antibody.cdrh3_documents(_shipped_rows())
    assert len(docs) == 456 and len(docs) >= 100
    assert sorted((s["id"], s["reason"].split(" (")[0]) for s in skipped) == [
        ("2vh5_HL_val_68", "no Cys 104"),  # ...AVYYVAR...: the Cys is a Val in this structure
        ("3se8_HL_train_605", "no Trp 118"), ("4fqj_HL_train_438", "no Trp 118"),  # WCQG, WSPG: no WGxG
        ("5fgc_EB_train_588", "no Trp 118"),  # WSQG
    ]  # fmt: skip
    assert [d["split"] for d in docs[:3]] == ["test"] * 3  # held-out splits first: --limit runs take them
    assert len({d["id"] for d in docs}) == 456
    assert all(2 <= len(d["cdrh3"]) <= 30 and set(d["cdrh3"]) <= set(AMINO) for d in docs)


def test_duplicate_chains_count_once(caplog):
    rows = _shipped_rows()[:3]
    with caplog.at_level(logging.WARNING, logger="lm_eval_infogain.scoring.antibody"):
        dataset = antibody.cdrh3_dataset([*rows, dict(rows[0], row=999)])
    assert len(dataset["test"]) == 3
    assert "3 of 4 heavy chains usable; 1 skipped (1 duplicate)" in caplog.text


@pytest.mark.skipif(not SHARED_SABDAB.is_dir(), reason="../shared/data/sabdab (the parquet files) is not next to the checkout")
def test_shipped_file_is_the_parquet_heavy_chains_and_the_task_reads_either(monkeypatch):
    assert data.read_sabdab_heavy_chains(SHARED_SABDAB) == _shipped_rows()
    monkeypatch.delenv(data.ENV_VAR, raising=False)
    shipped = _load_docs()
    monkeypatch.setenv(data.ENV_VAR, str(SHARED_SABDAB.parent))
    assert _load_docs() == shipped and len(shipped) == 456


def test_missing_parquet_folder_names_the_variable(monkeypatch, tmp_path):
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path))
    with pytest.raises(data.DataUnavailableError, match=data.ENV_VAR):
        data.load_sabdab_heavy_chains(SHIPPED)


def test_recovery_and_exact_match():
    assert antibody.recovery("ARERG", "ARERG") == 1.0
    assert antibody.recovery("ARQRG", "ARERG") == pytest.approx(0.8)
    assert antibody.recovery("AR", "ARERG") == pytest.approx(0.4)  # missing positions are wrong
    assert antibody.recovery("ARERGWWW", "ARERG") == 1.0  # extra residues are ignored
    doc = {"cdrh3": "ARERG"}
    assert antibody.process_results(doc, [" A R E R G"]) == {"recovery": 1.0, "exact_match": 1.0}
    assert antibody.process_results(doc, ["A R E R"]) == {"recovery": 0.8, "exact_match": 0.0}
    assert antibody.process_results(doc, [""]) == {"recovery": 0.0, "exact_match": 0.0}


def test_request_is_spaced_frameworks_around_the_loop():
    doc = antibody.cdrh3_documents(_shipped_rows())[0][0]
    request = ip.decode_request(antibody.doc_to_text(doc), {"infill": True})
    assert request.prefix == " ".join(doc["framework_before"]) and request.prefix.endswith("Y Y C")
    assert request.suffix == " ".join(doc["framework_after"]) and request.middle == " ".join(doc["cdrh3"])


# ------------------------------------------------------------------ through lm-eval
def _manager():
    from lm_eval.tasks import TaskManager

    return TaskManager(include_defaults=False, include_path=str(TASK_DIR))


def _load_docs() -> list[dict]:
    return list(_manager().load([TASK])["tasks"][TASK].test_docs())


def _evaluate(monkeypatch, answer, limit=None):
    from lm_eval import simple_evaluate
    from lm_eval.api.model import LM

    monkeypatch.delenv(data.ENV_VAR, raising=False)
    asked: list[tuple[int, str]] = []

    class Answers(LM):
        def generate_until(self, requests, disable_tqdm: bool = False):
            out = []
            for req in requests:
                request = ip.decode_request(*req.args)
                asked.append((req.doc_id, req.doc["id"]))
                out.append(answer(request))
            return out

        def loglikelihood(self, requests, disable_tqdm: bool = False):
            raise NotImplementedError

        def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
            raise NotImplementedError

    out = simple_evaluate(model=Answers(), tasks=[TASK], task_manager=_manager(), bootstrap_iters=0, limit=limit,
                          log_samples=True)
    return out, asked


def test_true_loops_score_one_and_constant_answers_score_their_share(monkeypatch):
    out, _ = _evaluate(monkeypatch, lambda request: request.middle)
    assert out["results"][TASK]["recovery,none"] == 1.0 and out["results"][TASK]["exact_match,none"] == 1.0
    docs = _load_docs()
    glycine = sum(d["cdrh3"].count("G") / len(d["cdrh3"]) for d in docs) / len(docs)
    out, _ = _evaluate(monkeypatch, lambda request: " ".join("G" * len(request.middle.split())))
    assert out["results"][TASK]["recovery,none"] == pytest.approx(glycine) and 0.1 < glycine < 0.2
    assert out["results"][TASK]["exact_match,none"] == 0.0


def test_random_residues_recover_about_one_in_twenty(monkeypatch):
    rng = random.Random(0)
    out, _ = _evaluate(monkeypatch, lambda request: " ".join(rng.choice(AMINO) for _ in request.middle.split()))
    assert 0.04 < out["results"][TASK]["recovery,none"] < 0.065


def test_doc_ids_join_samples_and_backend_records(monkeypatch):
    """The backend's per-sample statistics are keyed by (task, doc_id): doc_id must name the same chain in
    lm-eval's samples and in the dataset, also under --limit."""
    out, asked = _evaluate(monkeypatch, lambda request: request.middle, limit=32)
    docs = _load_docs()
    samples = out["samples"][TASK]
    assert len(samples) == 32 and sorted(doc_id for doc_id, _ in asked) == list(range(32))
    assert all(docs[doc_id]["id"] == chain for doc_id, chain in asked)
    assert all(docs[s["doc_id"]]["id"] == s["doc"]["id"] for s in samples)
