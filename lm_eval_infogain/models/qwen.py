"""Dream (Qwen2 layout) and SDAR / TraDo (Qwen3 layout) in plain PyTorch.

Why not ``transformers``' Qwen2/Qwen3 classes: their attention goes through the library's mask and
``Cache`` machinery, which cannot (a) let many lookahead rows share one prompt's keys/values without
copying them, (b) overwrite a block's keys/values per step (``dual``), or (c) run only a window of
positions while RoPE sees their absolute positions — all of which the cached decoding path needs
(see ``cache.py``). The modules here keep the checkpoints' parameter names, so the official
``model.safetensors`` (or its shards) load with ``load_state_dict``; the arithmetic follows the
official remote code (float32 RMSNorm statistics and RoPE, SiLU-gated MLP, ``1/sqrt(head_dim)``
scaling). Differences between the two: Dream has q/k/v biases and is bidirectional; SDAR applies an
RMSNorm over ``head_dim`` to q and k before RoPE and attends block-causally with the config's
``block_size``.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ._core import DecoderLM, RMSNorm, apply_rope

__all__ = ["QwenConfigError", "QwenDiffusionModel", "DreamModel", "SDARModel"]


class QwenConfigError(ValueError):
    """The Dream/SDAR config asks for a variant this module does not implement."""


class _Attention(nn.Module):
    def __init__(self, cfg: Mapping[str, Any], *, qkv_bias: bool, o_bias: bool, qk_norm: bool):
        super().__init__()
        d = cfg["hidden_size"]
        self.n_heads, self.n_kv_heads, self.head_dim = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
        self.q_proj = nn.Linear(d, self.n_heads * self.head_dim, bias=qkv_bias)
        self.k_proj = nn.Linear(d, self.n_kv_heads * self.head_dim, bias=qkv_bias)
        self.v_proj = nn.Linear(d, self.n_kv_heads * self.head_dim, bias=qkv_bias)
        self.o_proj = nn.Linear(self.n_heads * self.head_dim, d, bias=o_bias)
        if qk_norm:
            self.q_norm = RMSNorm(self.head_dim, cfg["rms_norm_eps"])
            self.k_norm = RMSNorm(self.head_dim, cfg["rms_norm_eps"])
        self.qk_norm = qk_norm


class _MLP(nn.Module):
    def __init__(self, d: int, hidden: int):
        super().__init__()
        self.gate_proj = nn.Linear(d, hidden, bias=False)
        self.up_proj = nn.Linear(d, hidden, bias=False)
        self.down_proj = nn.Linear(hidden, d, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class _Layer(nn.Module):
    def __init__(self, cfg: Mapping[str, Any], **attn_flags: bool):
        super().__init__()
        self.self_attn = _Attention(cfg, **attn_flags)
        self.mlp = _MLP(cfg["hidden_size"], cfg["intermediate_size"])
        self.input_layernorm = RMSNorm(cfg["hidden_size"], cfg["rms_norm_eps"])
        self.post_attention_layernorm = RMSNorm(cfg["hidden_size"], cfg["rms_norm_eps"])

    def project(self, h: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor):
        a = self.self_attn
        batch, length, _ = h.shape
        x = self.input_layernorm(h)
        q = a.q_proj(x).view(batch, length, a.n_heads, a.head_dim)
        k = a.k_proj(x).view(batch, length, a.n_kv_heads, a.head_dim)
        v = a.v_proj(x).view(batch, length, a.n_kv_heads, a.head_dim).transpose(1, 2)
        if a.qk_norm:
            q, k = a.q_norm(q), a.k_norm(k)
        q, k = q.transpose(1, 2), k.transpose(1, 2)
        return apply_rope(q, cos, sin), apply_rope(k, cos, sin), v

    def finish(self, h: torch.Tensor, attn: torch.Tensor) -> torch.Tensor:
        h = h + self.self_attn.o_proj(attn)
        return h + self.mlp(self.post_attention_layernorm(h))


def _normalize(config: Mapping[str, Any], family: str) -> dict[str, Any]:
    cfg = dict(config)
    for key in ("hidden_size", "num_attention_heads", "num_hidden_layers", "intermediate_size", "vocab_size"):
        if cfg.get(key) is None:
            raise QwenConfigError(f"{family} config needs {key!r}")
    cfg.setdefault("rms_norm_eps", 1e-6)
    cfg.setdefault("rope_theta", 10000.0)
    if cfg.get("num_key_value_heads") is None:
        cfg["num_key_value_heads"] = cfg["num_attention_heads"]
    if cfg.get("head_dim") is None:
        cfg["head_dim"] = cfg["hidden_size"] // cfg["num_attention_heads"]
    if cfg["num_attention_heads"] % cfg["num_key_value_heads"]:
        raise QwenConfigError("num_attention_heads must divide by num_key_value_heads")
    rope_scaling = cfg.get("rope_scaling")
    if rope_scaling and (rope_scaling.get("rope_type") or rope_scaling.get("type")) not in (None, "default"):
        raise QwenConfigError(f"{family}: rope_scaling {rope_scaling!r} is not supported")
    if cfg.get("use_sliding_window"):
        raise QwenConfigError(f"{family}: use_sliding_window=true is not supported")
    if cfg.get("hidden_act", "silu") != "silu":
        raise QwenConfigError(f"{family}: hidden_act {cfg['hidden_act']!r} is not supported")
    return cfg


class QwenDiffusionModel(DecoderLM):
    """Qwen2/Qwen3-layout decoder with non-causal (or block-causal) attention."""

    family = "qwen"

    def __init__(self, config: Mapping[str, Any], *, qkv_bias: bool, o_bias: bool, qk_norm: bool, block_size: int | None):
        super().__init__()
        cfg = _normalize(config, self.family)
        self.config = cfg
        self.n_heads, self.n_kv_heads, self.head_dim = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
        self.rope_theta = float(cfg["rope_theta"])
        self.block_size = block_size
        self.vocab_size = int(cfg["vocab_size"])
        self.max_length = cfg.get("max_position_embeddings")
        self.tied = bool(cfg.get("tie_word_embeddings", False))
        self.model = nn.Module()
        self.model.embed_tokens = nn.Embedding(cfg["vocab_size"], cfg["hidden_size"])
        self.model.layers = nn.ModuleList(
            _Layer(cfg, qkv_bias=qkv_bias, o_bias=o_bias, qk_norm=qk_norm) for _ in range(cfg["num_hidden_layers"])
        )
        self.model.norm = RMSNorm(cfg["hidden_size"], cfg["rms_norm_eps"])
        if not self.tied:
            self.lm_head = nn.Linear(cfg["hidden_size"], cfg["vocab_size"], bias=False)
        self._init_rope()

    @property
    def layer_list(self) -> Sequence[nn.Module]:
        return self.model.layers

    def embed(self, input_ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        return self.model.embed_tokens(input_ids)

    def _place_ends(self, first: torch.device, last: torch.device) -> None:
        self.model.embed_tokens.to(first)
        self.model.norm.to(last)
        if not self.tied:
            self.lm_head.to(last)
        elif first != last:
            raise ValueError("tie_word_embeddings=true needs the embedding and the LM head on one device")

    def head(self, hidden: torch.Tensor) -> torch.Tensor:
        x = self.model.norm(hidden)
        return F.linear(x, self.model.embed_tokens.weight) if self.tied else self.lm_head(x)


class DreamModel(QwenDiffusionModel):
    """Dream (``model_type: Dream``): Qwen2 blocks, q/k/v biases, bidirectional. Raw logits are
    shifted (output i scores token i+1); the adapter undoes that."""

    family = "Dream"

    def __init__(self, config: Mapping[str, Any]):
        super().__init__(config, qkv_bias=True, o_bias=False, qk_norm=False, block_size=None)


class SDARModel(QwenDiffusionModel):
    """SDAR / TraDo (``model_type: sdar``): Qwen3 blocks (q/k RMSNorm), block-causal attention."""

    family = "sdar"

    def __init__(self, config: Mapping[str, Any]):
        block = config.get("block_size")
        if not isinstance(block, int) or block < 1:
            raise QwenConfigError(f"sdar config needs a positive integer block_size, got {block!r}")
        bias = bool(config.get("attention_bias", False))
        super().__init__(config, qkv_bias=bias, o_bias=bias, qk_norm=True, block_size=block)
