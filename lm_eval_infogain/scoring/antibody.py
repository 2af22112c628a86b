"""Antibody CDR-H3 infilling: find the loop in a heavy chain, ask for it as a gap, score the residues.

CDR-H3 is the most variable loop of an antibody and the one that decides most of its binding, so
"design the loop between fixed frameworks" is the protein counterpart of code infilling. The loop is
located with the IMGT anchors (no alignment tool needed): it runs from the residue after the conserved
Cys 104 (the ``C`` of the ``YYC``-like motif closing framework 3) to the residue before Trp 118 (the
``W`` of the ``WGxG`` motif opening framework 4), e.g. ``...AVYYC|ARERGMHYMDV|WGKG...``.

- Cys 104: the first ``[YF][YFHSW]C`` at or after sequence index :data:`CYS_SEARCH_START` (past the
  Cys 23 of framework 1, whose context never matches). Variants seen in SAbDab: ``YYC``, ``YFC``,
  ``FYC``, ``YSC``, ``YHC``.
- Trp 118: the first ``WG.G`` after that Cys (a ``WGxG`` inside framework 1/2, as in ``QQWGAG``, lies
  before it and is not taken).

Chains where either anchor is missing, or the loop would be empty, are skipped and counted; the task
logs the counts. Sequences are written with single spaces between residues (``E V Q L ...``): one
token per residue for BERT-style protein vocabularies (AntiBERTy, ProtBERT) and for ESM alike.

Metrics per chain: ``recovery`` (fraction of loop positions whose residue is right; positions the
response leaves out count as wrong) and ``exact_match`` (the whole loop right).
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass
from typing import Iterable

from ..infill_protocol import encode_request

__all__ = [
    "CYS_SEARCH_START",
    "AnchorNotFound",
    "Cdrh3",
    "find_cdrh3",
    "cdrh3_documents",
    "cdrh3_dataset",
    "spaced",
    "residues",
    "doc_to_text",
    "recovery",
    "process_results",
]

log = logging.getLogger(__name__)

#: Cys 104 sits at sequence index ~90-100 in heavy chains; Cys 23 (~index 21) must not be taken.
CYS_SEARCH_START = 60
_CYS104 = re.compile(r"[YF][YFHSW]C")
_TRP118 = re.compile(r"WG.G")


class AnchorNotFound(ValueError):
    """A chain whose CDR-H3 anchors cannot be found (``reason`` says which)."""

    def __init__(self, reason: str, sequence: str):
        super().__init__(f"{reason}: {sequence[CYS_SEARCH_START:]!r}")
        self.reason = reason


@dataclass(frozen=True)
class Cdrh3:
    """A heavy chain split at its CDR-H3: ``framework_before + loop + framework_after == sequence``."""

    framework_before: str  # ends with Cys 104
    loop: str  # IMGT 105-117
    framework_after: str  # starts with Trp 118
    start: int  # index of the loop's first residue in the chain


def find_cdrh3(sequence: str) -> Cdrh3:
    """The CDR-H3 of one heavy chain (rules in the module docstring); :class:`AnchorNotFound` if absent."""
    sequence = sequence.strip().upper()
    cys = _CYS104.search(sequence, CYS_SEARCH_START)
    if cys is None:
        raise AnchorNotFound("no Cys 104 ([YF][YFHSW]C motif)", sequence)
    start = cys.end()
    trp = _TRP118.search(sequence, start)
    if trp is None:
        raise AnchorNotFound("no Trp 118 (WGxG motif) after Cys 104", sequence)
    if trp.start() == start:
        raise AnchorNotFound("empty loop between Cys 104 and Trp 118", sequence)
    return Cdrh3(sequence[:start], sequence[start : trp.start()], sequence[trp.start() :], start)


def cdrh3_documents(chains: Iterable[dict]) -> tuple[list[dict], list[dict]]:
    """(documents, skipped) from heavy-chain rows (``sequence`` plus any metadata, kept as is).

    A chain whose sequence repeats an earlier one is skipped as ``duplicate``, so no loop counts twice.
    Each document gets ``id`` (``<pdb>_<chains>_<split>_<row>`` where known), the chain split into
    ``framework_before`` / ``cdrh3`` / ``framework_after``, and ``cdrh3_start``.
    """
    docs: list[dict] = []
    skipped: list[dict] = []
    seen: set[str] = set()
    for index, chain in enumerate(chains):
        sequence = str(chain["sequence"]).strip().upper()
        ident = "_".join(str(chain[k]) for k in ("pdb", "antibody_chains", "split", "row") if k in chain) or str(index)
        if sequence in seen:
            skipped.append({"id": ident, "reason": "duplicate", "sequence": sequence})
            continue
        seen.add(sequence)
        try:
            cdr = find_cdrh3(sequence)
        except AnchorNotFound as err:
            skipped.append({"id": ident, "reason": err.reason, "sequence": sequence})
            continue
        docs.append({
            **chain, "id": ident, "sequence": sequence, "framework_before": cdr.framework_before,
            "cdrh3": cdr.loop, "framework_after": cdr.framework_after, "cdrh3_start": cdr.start,
        })
    return docs, skipped


def cdrh3_dataset(chains: Iterable[dict]):
    """The task's :class:`datasets.DatasetDict` (``test``: one document per usable chain); logs how many
    chains were skipped and why, because the score covers only the usable ones."""
    import datasets

    chains = list(chains)
    docs, skipped = cdrh3_documents(chains)
    if skipped:
        reasons = Counter(s["reason"] for s in skipped)
        log.warning(
            "infogain_antibody_cdrh3: %d of %d heavy chains usable; %d skipped (%s): %s",
            len(docs), len(chains), len(skipped), "; ".join(f"{n} {r}" for r, n in sorted(reasons.items())),
            ", ".join(s["id"] for s in skipped),
        )
    if not docs:
        raise ValueError(f"none of the {len(chains)} heavy chains has both CDR-H3 anchors")
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(docs)})


def spaced(residues_: str) -> str:
    """``"EVQL"`` -> ``"E V Q L"`` (one token per residue for protein vocabularies)."""
    return " ".join(residues_)


def residues(text: str) -> str:
    """A response's residues: the text without whitespace."""
    return "".join(str(text).split())


def doc_to_text(doc: dict) -> str:
    """The infilling request: the frameworks around the loop, the loop as the reference middle."""
    return encode_request(prefix=spaced(doc["framework_before"]), suffix=spaced(doc["framework_after"]),
                          middle=spaced(doc["cdrh3"]))


def recovery(predicted: str, true_loop: str) -> float:
    """Fraction of the loop's positions where ``predicted`` has the right residue (position by position;
    missing positions are wrong, extra residues are ignored)."""
    if not true_loop:
        raise ValueError("recovery of an empty loop is undefined")
    return sum(p == t for p, t in zip(predicted, true_loop, strict=False)) / len(true_loop)


def process_results(doc: dict, results: list) -> dict[str, float]:
    """``process_results``: amino-acid recovery and exact loop match of the first response."""
    predicted = residues(results[0])
    return {"recovery": recovery(predicted, doc["cdrh3"]), "exact_match": float(predicted == doc["cdrh3"])}
