"""Protein masked LMs by name: ``pretrained=antiberty`` -> a plain ``BertForMaskedLM`` checkpoint folder.

AntiBERTy (Ruffolo et al. 2021; 25.8 M parameters, trained on 558 M antibody sequences from OAS) is the
one real pretrained masked LM that installs from a package registry with its weights inside: the PyPI
wheel ``antiberty==0.1.3`` ships ``antiberty/trained_models/vocab.txt`` and
``antiberty/trained_models/AntiBERTy_md_smooth/{config.json,pytorch_model.bin}`` (version 1.0.0 ships no
weights and downloads them from the hub, which offline runs cannot). Its own runner does not work with
current transformers (``BertTokenizer(vocab_file=...)`` is ignored by transformers 5, and the model class
lacks what ``from_pretrained`` now needs), so we do not import the package at all. Instead
:func:`materialize_antiberty` writes, once, into a cache folder:

- ``config.json``: the checkpoint's BERT config with ``architectures: ["BertForMaskedLM"]``;
- ``model.safetensors``: every weight ``BertForMaskedLM`` has, taken from the checkpoint (checked: none
  missing; the only ones left out are AntiBERTy's auxiliary species/chain/graft classifiers, the unused
  pooler and the ``position_ids`` buffer). The MLM head (transform, LayerNorm, decoder tied to the word
  embeddings, bias) is the trained one;
- the tokenizer: ``BertTokenizer`` over the shipped ``vocab.txt``, ``do_lower_case=False`` as AntiBERTy
  uses it: upper-case residues separated by spaces (``"E V Q L"``), one token each, wrapped in
  ``[CLS] ... [SEP]``; ``[MASK]`` is the mask token;
- ``antiberty_source.json``: where it came from (package version, sha256 of the weights, dropped keys).

The folder then loads through the generic masked-LM path of :func:`~lm_eval_infogain.models.load_mdm`
like any BERT/ESM-style protein model. Nothing in site-packages is modified. The cache is
``$LM_EVAL_INFOGAIN_CACHE`` or ``$XDG_CACHE_HOME/lm_eval_infogain`` (default ``~/.cache/lm_eval_infogain``);
the folder name holds the weights' hash, so a reinstalled wheel never meets a stale copy.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "ANTIBERTY",
    "ANTIBERTY_VERSION",
    "ProteinExtraMissingError",
    "ProteinModelError",
    "AntibertySource",
    "cache_root",
    "antiberty_source",
    "materialize_antiberty",
    "resolve_pretrained",
]

ANTIBERTY = "antiberty"
ANTIBERTY_VERSION = "0.1.3"
INSTALL_HINT = f"pip install 'lm-eval-infogain[protein]' (or: pip install antiberty=={ANTIBERTY_VERSION})"
#: Checkpoint entries a plain masked LM does not use (AntiBERTy's auxiliary heads, the pooler, a buffer).
ANTIBERTY_UNUSED = frozenset({
    "bert.embeddings.position_ids", "bert.pooler.dense.weight", "bert.pooler.dense.bias",
    "cls.species.weight", "cls.species.bias", "cls.chain.weight", "cls.chain.bias",
    "cls.graft.weight", "cls.graft.bias",
})  # fmt: skip
_SOURCE_FILE = "antiberty_source.json"


class ProteinExtraMissingError(ImportError):
    """``pretrained=antiberty`` without the ``antiberty`` wheel installed."""


class ProteinModelError(RuntimeError):
    """The installed ``antiberty`` package does not hold the expected weights (wrong version, damaged)."""


@dataclass(frozen=True)
class AntibertySource:
    """Files of the installed wheel."""

    version: str
    vocab: Path
    checkpoint: Path  # folder with config.json and pytorch_model.bin

    @property
    def weights(self) -> Path:
        return self.checkpoint / "pytorch_model.bin"


def cache_root() -> Path:
    """Where materialised checkpoints live (see the module docstring)."""
    explicit = os.environ.get("LM_EVAL_INFOGAIN_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "lm_eval_infogain"


def antiberty_source() -> AntibertySource:
    """The installed wheel's ``trained_models`` files, found without importing the package."""
    spec = importlib.util.find_spec(ANTIBERTY)
    if spec is None or not spec.submodule_search_locations:
        raise ProteinExtraMissingError(f"pretrained={ANTIBERTY} needs the AntiBERTy weights, which are not installed: {INSTALL_HINT}")
    try:
        version = importlib.metadata.version(ANTIBERTY)
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    root = Path(next(iter(spec.submodule_search_locations))) / "trained_models"
    source = AntibertySource(version, root / "vocab.txt", root / "AntiBERTy_md_smooth")
    missing = [p for p in (source.vocab, source.checkpoint / "config.json", source.weights) if not p.is_file()]
    if missing:
        raise ProteinModelError(
            f"antiberty {version} is installed but lacks {', '.join(str(p.relative_to(root.parent)) for p in missing)}; "
            f"only version {ANTIBERTY_VERSION} ships its weights: {INSTALL_HINT}"
        )
    return source


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _write_checkpoint(source: AntibertySource, folder: Path, sha: str) -> None:
    import torch
    from transformers import BertConfig, BertForMaskedLM, BertTokenizer

    config = BertConfig.from_pretrained(str(source.checkpoint))
    config.architectures = ["BertForMaskedLM"]
    state = torch.load(str(source.weights), map_location="cpu", weights_only=True)
    model = BertForMaskedLM(config)
    expected = set(model.state_dict())
    missing = sorted(expected - set(state))
    unexpected = sorted(set(state) - expected - ANTIBERTY_UNUSED)
    if missing or unexpected:
        raise ProteinModelError(
            f"{source.weights}: not the AntiBERTy layout (missing {missing[:5]}, unexpected {unexpected[:5]})"
        )
    model.load_state_dict({name: state[name] for name in expected}, strict=True)
    model.eval().save_pretrained(str(folder))
    tokenizer = BertTokenizer(vocab=str(source.vocab), do_lower_case=False, model_max_length=config.max_position_embeddings)
    tokenizer.save_pretrained(str(folder))
    provenance = {
        "package": f"{ANTIBERTY}=={source.version}",
        "weights_sha256": sha,
        "dropped": sorted(set(state) - expected),
        "note": "BertForMaskedLM weights taken unchanged from antiberty/trained_models/AntiBERTy_md_smooth",
    }
    (folder / _SOURCE_FILE).write_text(json.dumps(provenance, indent=2) + "\n")


def materialize_antiberty(cache_dir: str | Path | None = None) -> Path:
    """A loadable checkpoint folder (config, safetensors weights, tokenizer) made from the installed wheel.

    Built once per wheel (the folder name holds the weights' sha256), atomically: a half-written folder
    is never visible, and concurrent processes (data-parallel ranks) each build in a temporary folder and
    keep whichever lands first.
    """
    source = antiberty_source()
    sha = _sha256(source.weights)
    root = Path(cache_dir).expanduser() if cache_dir is not None else cache_root()
    folder = root / f"antiberty-{source.version}-{sha[:16]}"
    if (folder / _SOURCE_FILE).is_file():
        return folder
    root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".antiberty-", dir=root))
    try:
        _write_checkpoint(source, scratch, sha)
        try:
            scratch.rename(folder)
        except OSError:
            if not (folder / _SOURCE_FILE).is_file():
                raise
    finally:
        if scratch.exists():
            shutil.rmtree(scratch, ignore_errors=True)
    return folder


def resolve_pretrained(name: str) -> str | None:
    """The local folder that stands for ``name`` when it names a packaged protein model (``antiberty``,
    any case), else ``None`` (load ``name`` as given). An existing folder called ``antiberty`` wins."""
    if name.strip().lower() != ANTIBERTY or Path(name).expanduser().is_dir():
        return None
    return str(materialize_antiberty())
