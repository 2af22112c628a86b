"""``load_mdm``: a checkpoint name or folder -> an :class:`MDMAdapter` (with ``.tokenizer``).

The family is read from ``config.json`` (``model_type``): ``llada`` -> :class:`LLaDAModel`,
``Dream`` -> :class:`DreamModel`, ``sdar`` (SDAR and TraDo) -> :class:`SDARModel`, all loaded from
their safetensors without remote code. Anything else goes through ``AutoModelForMaskedLM`` (BERT,
ModernBERT, ...) or — only when ``trust_remote_code=True`` — ``AutoModel`` with the model's own code,
wrapped by :class:`HFModelAdapter`.

Bad input fails before any weight is read, with an error naming the path or file
(``checkpoint_files``): a missing path that is no hub id either, a file instead of a folder, a
corrupt ``config.json``, a garbage or truncated safetensors file, a folder without weights.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from ..checkpoint_files import (
    CheckpointError,
    CheckpointNotFoundError,
    CorruptCheckpointError,
    MissingWeightsError,
    check_weights,
    local_checkpoint_folder,
    read_config_file,
    read_json_file,
)
from ._core import DecoderLM
from .base import MaskTokenError, MDMAdapter
from . import protein
from .hf import HFModelAdapter, detect_mask_id
from .llada import LLaDAModel
from .native import NativeAdapter
from .qwen import DreamModel, SDARModel

__all__ = [
    "load_mdm", "family_of", "resolve_dtype", "read_safetensors", "UnsupportedModelError", "FAMILIES",
    "CheckpointError", "CheckpointNotFoundError", "CorruptCheckpointError", "MissingWeightsError",
]  # fmt: skip

logger = logging.getLogger(__name__)


class UnsupportedModelError(ValueError):
    """The checkpoint is neither a native family nor loadable as a masked LM."""


#: family -> (module class, logit shift, mask token string, end-of-turn token string)
FAMILIES: dict[str, tuple[Callable[[Mapping[str, Any]], DecoderLM], int, str, str]] = {
    "llada": (LLaDAModel, 0, "<|mdm_mask|>", "<|eot_id|>"),
    "dream": (DreamModel, 1, "<|mask|>", "<|im_end|>"),
    "sdar": (SDARModel, 0, "<|MASK|>", "<|im_end|>"),
}

_DTYPES = {
    "float32": torch.float32, "fp32": torch.float32, "float": torch.float32,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
}  # fmt: skip


def family_of(config: Mapping[str, Any]) -> str | None:
    """Native family of a ``config.json`` (``None``: not one of ours)."""
    model_type = str(config.get("model_type", "")).lower()
    if model_type in ("llada", "dream", "sdar"):
        return model_type
    if model_type == "trado":
        return "sdar"
    archs = " ".join(config.get("architectures") or [])
    for marker, family in (("LLaDA", "llada"), ("Dream", "dream"), ("SDAR", "sdar"), ("TraDo", "sdar")):
        if marker in archs:
            return family
    return None


def resolve_dtype(dtype: Any, config: Mapping[str, Any] | None = None) -> torch.dtype:
    """``torch.dtype`` or a name (``bf16``, ``float16``, ...); ``None``/``"auto"``: the checkpoint's own."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype is None or dtype == "auto":
        dtype = (config or {}).get("torch_dtype") or (config or {}).get("dtype") or "float32"
    key = str(dtype).removeprefix("torch.").lower()
    if key not in _DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; use one of {sorted(_DTYPES)}")
    return _DTYPES[key]


def read_safetensors(folder: Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """All tensors of ``model.safetensors`` or of the shards named by ``model.safetensors.index.json``."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    files = [file for file in check_weights(folder) if file.suffix == ".safetensors"]
    if not files:
        raise MissingWeightsError(f"{folder} has no model.safetensors (native families load safetensors only)")
    device = torch.device(device)
    where = "cpu" if device.type == "cpu" else str(device)  # safetensors rejects "cpu:0"
    tensors: dict[str, torch.Tensor] = {}
    for file in files:
        try:
            tensors.update(load_file(str(file), device=where))
        except SafetensorError as err:
            raise CorruptCheckpointError(f"{file}: not a readable safetensors file ({err})") from None
    return tensors


def _local_or_download(name_or_path: str, revision: str | None, cache_dir: str | None, token: Any) -> Path:
    path = local_checkpoint_folder(name_or_path)
    if path is not None:
        return path
    from huggingface_hub import snapshot_download

    patterns = ["*.json", "*.safetensors", "tokenizer*", "*.model", "*.tiktoken", "*.txt"]
    return Path(snapshot_download(name_or_path, revision=revision, cache_dir=cache_dir, token=token, allow_patterns=patterns))


def _read_config(name_or_path: str, revision: str | None, cache_dir: str | None, token: Any) -> dict[str, Any]:
    path = local_checkpoint_folder(name_or_path)
    if path is not None:
        config_file = path / "config.json"
    else:
        from huggingface_hub import hf_hub_download

        config_file = Path(hf_hub_download(name_or_path, "config.json", revision=revision, cache_dir=cache_dir, token=token))
    return read_config_file(config_file)


def _load_tokenizer(folder: Path | str, trust_remote_code: bool) -> Any:
    import warnings

    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    # AutoTokenizer also parses config.json, whose model_type (llada, Dream, sdar) transformers does
    # not know; its warnings about that are noise here, so they are muted for this call only.
    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            return AutoTokenizer.from_pretrained(str(folder), trust_remote_code=trust_remote_code)
    except (OSError, ValueError, TypeError) as err:
        logger.warning("no tokenizer loaded from %s (%s); ids come from config.json only", folder, err)
        return None
    finally:
        hf_logging.set_verbosity(level)


def _ids(value: Any) -> list[int]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [int(v) for v in value if v is not None]
    return [int(value)]


def _vocab_id(tokenizer: Any, token: str) -> int | None:
    if tokenizer is None:
        return None
    vocab = tokenizer.get_vocab()
    return int(vocab[token]) if token in vocab else None


def _special_ids(
    family: str, config: Mapping[str, Any], folder: Path, tokenizer: Any, mask_id: int | None
) -> tuple[int, int, list[int]]:
    """(mask, pad, eos ids) from explicit value > config.json > generation_config.json > tokenizer."""
    _, _, mask_token, turn_token = FAMILIES[family]
    gen_file = folder / "generation_config.json"
    gen = read_json_file(gen_file, "generation_config.json") if gen_file.is_file() else {}
    gen = gen if isinstance(gen, dict) else {}
    if mask_id is None:
        mask_id = config.get("mask_token_id")
    if mask_id is None:
        mask_id = _vocab_id(tokenizer, mask_token)
    if mask_id is None and tokenizer is not None:
        mask_id = detect_mask_id(tokenizer)
    if mask_id is None:
        raise MaskTokenError(
            f"{folder}: no mask token ({family}): config.json has no mask_token_id and no tokenizer with "
            f"{mask_token!r} was found; pass mask_id=..."
        )
    eos = _ids(config.get("eos_token_id")) + _ids(gen.get("eos_token_id"))
    if tokenizer is not None:
        eos += _ids(tokenizer.eos_token_id)
    eos += [i for i in (_vocab_id(tokenizer, "<|endoftext|>"), _vocab_id(tokenizer, turn_token)) if i is not None]
    eos = [i for i in dict.fromkeys(eos) if i != int(mask_id)]
    pad = config.get("pad_token_id")
    if pad is None and tokenizer is not None:
        pad = tokenizer.pad_token_id
    if pad is None:
        pad = gen.get("pad_token_id")
    if pad is None:
        if not eos:
            raise MaskTokenError(f"{folder}: neither a pad nor an eos token id is known; cannot left-pad prompts")
        pad = eos[0]
    return int(mask_id), int(pad), eos


def _build_native(family: str, config: Mapping[str, Any], folder: Path, dtype: torch.dtype, device: str | torch.device, devices: list[torch.device] | None) -> DecoderLM:
    cls = FAMILIES[family][0]
    with torch.device("meta"):
        model = cls(config)  # shapes only: real 8B checkpoints never get a random init
    load_device = "cpu" if devices else device
    state = {
        name: (t.to(dtype) if t.is_floating_point() else t)
        for name, t in read_safetensors(folder, load_device).items()
        if not name.endswith("rotary_emb.inv_freq")
    }
    expected = set(model.state_dict())
    if getattr(model, "tied", False) or config.get("weight_tying"):
        state = {k: v for k, v in state.items() if k in expected}
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise UnsupportedModelError(
            f"{folder}: weights do not match the {family} layout (missing {missing[:5]}, unexpected {unexpected[:5]})"
        )
    model.load_state_dict(state, strict=True, assign=True)
    model._init_rope()  # the RoPE table is a non-persistent buffer: rebuild it off the meta device
    if devices:
        model.rope_inv_freq = model.rope_inv_freq.to(devices[0])
        model.spread_layers(devices)
    else:
        model.to(device)
    return model.eval().requires_grad_(False)


def _devices_for(device_map: Any, device: str | torch.device) -> tuple[str | torch.device, list[torch.device] | None]:
    if device_map is None:
        return device, None
    if device_map != "auto":
        raise ValueError(f"native families support device_map=None or 'auto', got {device_map!r}")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count <= 1:
        return ("cuda:0" if count == 1 else device), None
    return "cpu", [torch.device(f"cuda:{i}") for i in range(count)]


def _load_auto(
    name_or_path: str, config: Mapping[str, Any], *, device: Any, dtype: torch.dtype, device_map: Any,
    trust_remote_code: bool, mask_id: int | None, tokenizer: Any, **kwargs: Any,
) -> HFModelAdapter:
    from transformers import AutoModel, AutoModelForMaskedLM
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    model_type = config.get("model_type")
    local = local_checkpoint_folder(name_or_path)
    if local is not None and model_type in CONFIG_MAPPING:
        check_weights(local)  # (remote code may read its weights its own way: not checked)
    load_kwargs: dict[str, Any] = {"dtype": dtype, **kwargs}
    if device_map is not None:
        load_kwargs["device_map"] = device_map
    if model_type in CONFIG_MAPPING:
        try:
            model = AutoModelForMaskedLM.from_pretrained(name_or_path, **load_kwargs)
        except ValueError as err:
            if not trust_remote_code:
                raise UnsupportedModelError(
                    f"{name_or_path}: model_type {model_type!r} has no masked-LM head in transformers ({err}); "
                    "pass trust_remote_code=True to load its own code"
                ) from err
            model = AutoModel.from_pretrained(name_or_path, trust_remote_code=True, **load_kwargs)
    elif trust_remote_code:
        model = AutoModel.from_pretrained(name_or_path, trust_remote_code=True, **load_kwargs)
    else:
        raise UnsupportedModelError(
            f"{name_or_path}: unknown model_type {model_type!r} (native: llada, Dream, sdar); "
            "pass trust_remote_code=True to run the checkpoint's own code"
        )
    if device_map is None:
        model.to(device)
    model.eval()
    if tokenizer is None:
        tokenizer = _load_tokenizer(name_or_path, trust_remote_code)
    if tokenizer is None and mask_id is None:
        raise MaskTokenError(f"{name_or_path}: no tokenizer to find the mask token in; pass mask_id=...")
    if tokenizer is None:
        adapter = HFModelAdapter(model, mask_id=mask_id, pad_id=config.get("pad_token_id"), eos_ids=_ids(config.get("eos_token_id")))
    else:
        adapter = HFModelAdapter.from_tokenizer(model, tokenizer, mask_id=mask_id)
    adapter.tokenizer = tokenizer
    return adapter


def load_mdm(
    name_or_path: str | Path,
    device: str | torch.device = "cpu",
    dtype: Any = None,
    *,
    device_map: Any = None,
    trust_remote_code: bool = False,
    mask_id: int | None = None,
    tokenizer: Any = None,
    revision: str | None = None,
    cache_dir: str | None = None,
    token: Any = None,
    **kwargs: Any,
) -> MDMAdapter:
    """Load a masked diffusion LM as an :class:`MDMAdapter`; the tokenizer is ``adapter.tokenizer``.

    ``name_or_path``: a local folder or a Hugging Face hub id. ``dtype``: ``None``/``"auto"`` keeps
    the checkpoint's dtype; ``"bf16"``, ``torch.float32``, ... convert. ``device_map="auto"`` spreads
    layers over all visible GPUs. ``mask_id`` overrides the mask token. Extra keyword arguments go
    to ``from_pretrained`` for non-native checkpoints.
    """
    name = str(name_or_path)
    name = protein.resolve_pretrained(name) or name  # pretrained=antiberty: the protein extra's weights
    config = _read_config(name, revision, cache_dir, token)
    torch_dtype = resolve_dtype(dtype, config)
    family = family_of(config)
    if family is None:
        return _load_auto(
            name, config, device=device, dtype=torch_dtype, device_map=device_map,
            trust_remote_code=trust_remote_code, mask_id=mask_id, tokenizer=tokenizer,
            revision=revision, cache_dir=cache_dir, token=token, **kwargs,
        )  # fmt: skip
    if kwargs:
        raise TypeError(f"unexpected arguments for a native {family} checkpoint: {sorted(kwargs)}")
    folder = _local_or_download(name, revision, cache_dir, token)
    if tokenizer is None:
        tokenizer = _load_tokenizer(folder, trust_remote_code=False)
    mask, pad, eos = _special_ids(family, config, folder, tokenizer, mask_id)
    load_device, devices = _devices_for(device_map, device)
    model = _build_native(family, config, folder, torch_dtype, load_device, devices)
    _, shift, _, _ = FAMILIES[family]
    return NativeAdapter(
        model, family=family, mask_id=mask, pad_id=pad, eos_ids=eos, shift=shift, tokenizer=tokenizer, name_or_path=name
    )
