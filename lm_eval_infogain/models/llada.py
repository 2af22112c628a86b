"""LLaDA in plain PyTorch, with the real checkpoint's parameter names.

Why our own module: the official remote code does not run under transformers 5.x, refuses a KV
cache, and there is no LLaDA class in transformers. The block is Llama-like (RMSNorm, SwiGLU, RoPE
half-split in float32, no biases) but fully bidirectional, and its names
(``model.transformer.blocks.N.{attn_norm,q_proj,k_proj,v_proj,attn_out,ff_norm,ff_proj,up_proj,ff_out}``,
``model.transformer.{wte,ln_f,ff_out}``, and ``wpe`` for the learned absolute positions of a
``rope: false`` config) are kept so ``model.safetensors`` of
``GSAI-ML/LLaDA-8B-*`` loads with ``load_state_dict`` as is. In LLaDA's MLP ``ff_proj`` is the
SiLU-gated branch, ``up_proj`` the linear branch and ``blocks.N.ff_out`` the down projection.

The module is trainable (plain ``nn.Linear``/``nn.Embedding``) and :func:`save_llada_checkpoint`
writes a folder in the official layout that :func:`~lm_eval_infogain.models.load_mdm` reads back.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ._core import DecoderLM, RMSNorm, apply_rope

__all__ = ["LLaDAModel", "LLaDAConfigError", "llada_config", "normalize_llada_config", "save_llada_checkpoint"]


class LLaDAConfigError(ValueError):
    """The LLaDA config asks for a variant this module does not implement."""


#: Defaults of the keys a LLaDA ``config.json`` carries (values of ``GSAI-ML/LLaDA-8B-Instruct``
#: except the sizes, which callers set).
_DEFAULTS: dict[str, Any] = {
    "activation_type": "silu",
    "alibi": False,
    "alibi_bias_max": 8.0,
    "attention_dropout": 0.0,
    "attention_layer_norm": False,
    "attention_layer_norm_with_affine": True,
    "bias_for_layer_norm": False,
    "block_group_size": 1,
    "block_type": "llama",
    "embedding_dropout": 0.0,
    "flash_attention": False,
    "include_bias": False,
    "include_qkv_bias": False,
    "init_cutoff_factor": None,
    "init_device": "meta",
    "init_fn": "mitchell",
    "init_std": 0.02,
    "input_emb_norm": False,
    "layer_norm_type": "rms",
    "layer_norm_with_affine": True,
    "mlp_ratio": 4,
    "multi_query_attention": None,
    "precision": "amp_bf16",
    "residual_dropout": 0.0,
    "rms_norm_eps": 1e-5,
    "rope": True,
    "rope_full_precision": True,
    "rope_theta": 500000.0,
    "scale_logits": False,
    "use_cache": False,
    "weight_tying": False,
}


def normalize_llada_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Fill defaults, resolve derived sizes and reject variants we do not implement (clear error
    before any weight is allocated)."""
    cfg = {**_DEFAULTS, **dict(config)}
    for key in ("d_model", "n_heads", "n_layers", "vocab_size"):
        if cfg.get(key) is None:
            raise LLaDAConfigError(f"LLaDA config needs {key!r}")
    if cfg.get("n_kv_heads") is None:
        cfg["n_kv_heads"] = 1 if cfg.get("multi_query_attention") else cfg["n_heads"]
    if cfg.get("mlp_hidden_size") is None:
        cfg["mlp_hidden_size"] = int(cfg["mlp_ratio"]) * int(cfg["d_model"])
    if cfg.get("embedding_size") is None:
        cfg["embedding_size"] = cfg["vocab_size"]
    if cfg.get("max_sequence_length") is None:
        cfg["max_sequence_length"] = 4096
    unsupported = {
        "block_type": cfg["block_type"] != "llama",
        "activation_type": cfg["activation_type"] != "silu",
        "layer_norm_type": cfg["layer_norm_type"] != "rms",
        "alibi": bool(cfg["alibi"]),
        "attention_layer_norm": bool(cfg["attention_layer_norm"]),
        "bias_for_layer_norm": bool(cfg["bias_for_layer_norm"]),
        "layer_norm_with_affine": not cfg["layer_norm_with_affine"],
    }
    bad = [f"{key}={cfg[key]!r}" for key, flag in unsupported.items() if flag]
    if bad:
        raise LLaDAConfigError("unsupported LLaDA variant: " + ", ".join(bad))
    if cfg["d_model"] % cfg["n_heads"] or cfg["n_heads"] % cfg["n_kv_heads"]:
        raise LLaDAConfigError("d_model must divide by n_heads and n_heads by n_kv_heads")
    return cfg


def llada_config(**sizes: Any) -> dict[str, Any]:
    """A complete LLaDA config dict (official key set) for the given sizes, e.g.
    ``llada_config(d_model=64, n_heads=4, n_layers=2, vocab_size=320, mlp_hidden_size=128)``."""
    base = {"model_type": "llada", "architectures": ["LLaDAModelLM"], "max_sequence_length": 4096}
    return normalize_llada_config({**base, **sizes})


class LLaDABlock(nn.Module):
    """One LLaDA ``llama`` block (pre-norm attention + SwiGLU), bidirectional."""

    def __init__(self, cfg: Mapping[str, Any]):
        super().__init__()
        d, heads, kv_heads = cfg["d_model"], cfg["n_heads"], cfg["n_kv_heads"]
        self.n_heads, self.n_kv_heads, self.head_dim = heads, kv_heads, d // heads
        qkv_bias = bool(cfg["include_bias"] or cfg["include_qkv_bias"])
        bias = bool(cfg["include_bias"])
        hidden = int(cfg["mlp_hidden_size"])
        self.attn_norm = RMSNorm(d, cfg["rms_norm_eps"])
        self.q_proj = nn.Linear(d, heads * self.head_dim, bias=qkv_bias)
        self.k_proj = nn.Linear(d, kv_heads * self.head_dim, bias=qkv_bias)
        self.v_proj = nn.Linear(d, kv_heads * self.head_dim, bias=qkv_bias)
        self.attn_out = nn.Linear(d, d, bias=bias)
        self.ff_norm = RMSNorm(d, cfg["rms_norm_eps"])
        self.ff_proj = nn.Linear(d, hidden, bias=bias)
        self.up_proj = nn.Linear(d, hidden, bias=bias)
        self.ff_out = nn.Linear(hidden, d, bias=bias)

    def project(self, h: torch.Tensor, cos: torch.Tensor | None, sin: torch.Tensor | None):
        batch, length, _ = h.shape
        x = self.attn_norm(h)
        q = self.q_proj(x).view(batch, length, self.n_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(batch, length, self.n_kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(batch, length, self.n_kv_heads, self.head_dim).transpose(1, 2)
        if cos is None:  # learned absolute positions (``rope: false``) were added to the input
            return q, k, v
        return apply_rope(q, cos, sin), apply_rope(k, cos, sin), v

    def finish(self, h: torch.Tensor, attn: torch.Tensor) -> torch.Tensor:
        h = h + self.attn_out(attn)
        x = self.ff_norm(h)
        return h + self.ff_out(F.silu(self.ff_proj(x)) * self.up_proj(x))


class LLaDAModel(DecoderLM):
    """LLaDA (``model_type: llada``) built from a plain config dict (a LLaDA ``config.json``)."""

    def __init__(self, config: Mapping[str, Any]):
        super().__init__()
        cfg = normalize_llada_config(config)
        self.config = cfg
        d = cfg["d_model"]
        self.n_heads, self.n_kv_heads, self.head_dim = cfg["n_heads"], cfg["n_kv_heads"], d // cfg["n_heads"]
        self.rope_theta = float(cfg["rope_theta"])
        self.vocab_size = int(cfg["embedding_size"])
        self.max_length = int(cfg["max_sequence_length"])
        transformer = nn.ModuleDict(
            {
                "wte": nn.Embedding(cfg["embedding_size"], d),
                "blocks": nn.ModuleList(LLaDABlock(cfg) for _ in range(cfg["n_layers"])),
                "ln_f": RMSNorm(d, cfg["rms_norm_eps"]),
            }
        )
        if not cfg["rope"]:
            # The official code's other position scheme: a learned table added to the input
            # embeddings (``wpe``) when neither RoPE nor ALiBi is on.
            transformer["wpe"] = nn.Embedding(self.max_length, d)
        if not cfg["weight_tying"]:
            transformer["ff_out"] = nn.Linear(d, cfg["embedding_size"], bias=bool(cfg["include_bias"]))
        self.model = nn.Module()
        self.model.transformer = transformer
        if cfg["rope"]:
            self._init_rope()
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Normal(0, init_std) matrices, zero biases, unit norms — a sane start for training."""
        std = float(self.config.get("init_std") or 0.02)
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, mean=0.0, std=std)
                if getattr(module, "bias", None) is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, RMSNorm):
                nn.init.ones_(module.weight)

    @property
    def layer_list(self) -> Sequence[nn.Module]:
        return self.model.transformer["blocks"]

    def embed(self, input_ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        t = self.model.transformer
        h = t["wte"](input_ids)
        if self.config["input_emb_norm"]:
            h = h * math.sqrt(self.config["d_model"])
        if "wpe" in t:  # same order as the official code: scaled token embedding + position row
            h = h + t["wpe"](positions.to(h.device))
        return h

    def _place_ends(self, first: torch.device, last: torch.device) -> None:
        t = self.model.transformer
        t["wte"].to(first)
        if "wpe" in t:
            t["wpe"].to(first)
        t["ln_f"].to(last)
        if "ff_out" in t:
            t["ff_out"].to(last)
        elif first != last:
            raise ValueError("weight_tying=true needs the embedding and the LM head on one device")

    def head(self, hidden: torch.Tensor) -> torch.Tensor:
        t = self.model.transformer
        x = t["ln_f"](hidden)
        logits = F.linear(x, t["wte"].weight) if self.config["weight_tying"] else t["ff_out"](x)
        if self.config["scale_logits"]:
            logits = logits * (1.0 / math.sqrt(self.config["d_model"]))
        return logits


def save_llada_checkpoint(model: LLaDAModel, config: Mapping[str, Any], folder: str | Path) -> Path:
    """Write ``config.json`` (official LLaDA format) and ``model.safetensors`` (official names).

    The folder then loads with :func:`~lm_eval_infogain.models.load_mdm` (add a tokenizer to use it
    end to end). Weights are saved in their current dtype.
    """
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cfg = normalize_llada_config(config)
    cfg["model_type"] = "llada"
    cfg["architectures"] = ["LLaDAModelLM"]
    dtype = next(model.parameters()).dtype
    cfg["torch_dtype"] = str(dtype).removeprefix("torch.")
    (folder / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    tensors = {name: t.detach().contiguous().cpu() for name, t in model.state_dict().items()}
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return folder
