"""Shared numerics of the native families: RMSNorm, RoPE and a layer-generic decoder runner.

LLaDA, Dream and SDAR are all "pre-norm attention + SwiGLU MLP" stacks that differ only in
parameter names, biases, q/k norms and the attention pattern. Each family module implements two
small per-layer hooks (:meth:`project` -> rotated q/k/v, :meth:`finish` -> output projection, residuals
and MLP) so that one runner (:meth:`DecoderLM.run`) can drive every family through a full forward,
a KV-cache fill or a cached step (see ``cache.py``) with the same arithmetic. That single code path
is what makes "cached logits at block entry == no-cache logits" hold by construction.

Numerics follow the official remote code: RMSNorm and RoPE are computed in float32 and cast back.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["RMSNorm", "rotate_half", "apply_rope", "DecoderLM", "full_attention_mask", "Attend"]

#: ``attend(layer_index, q, k, v) -> [B, t, H * D]``; q ``[B, H, t, D]``, k/v ``[B, Hkv, s, D]``.
Attend = Callable[[int, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


class RMSNorm(nn.Module):
    """RMSNorm with the statistics in float32 (as LLaDA's ``RMSLayerNorm`` and Qwen's RMSNorm)."""

    def __init__(self, size: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.eps = float(eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(x.dtype)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """The half-split rotation used by all three families (not the interleaved GPT-J form)."""
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate ``x [B, H, t, D]`` by float32 ``cos``/``sin`` ``[B, 1, t, D]``; result in ``x.dtype``."""
    xf = x.float()
    return (xf * cos + rotate_half(xf) * sin).to(x.dtype)


def full_attention_mask(
    attention_mask: torch.Tensor | None, length: int, block_size: int | None, device: torch.device
) -> torch.Tensor | None:
    """Boolean SDPA mask (True = may attend) for a whole-canvas forward.

    Bidirectional families only hide padded keys (``[B, 1, 1, T]``; ``None`` without padding).
    Block-causal families (SDAR) let a query see keys of its own and earlier blocks, counted from
    canvas position 0; pad queries see themselves only, because an all-False row would give NaNs
    that leak into later layers.
    """
    if block_size is None:
        if attention_mask is None:
            return None
        return attention_mask.bool()[:, None, None, :]
    blocks = torch.arange(length, device=device) // block_size
    allowed = blocks[None, :] <= blocks[:, None]
    if attention_mask is None:
        return allowed[None, None]
    eye = torch.eye(length, dtype=torch.bool, device=device)
    return (allowed[None, None] & attention_mask.bool()[:, None, None, :]) | eye[None, None]


class DecoderLM(nn.Module):
    """Base of the native family modules: RoPE tables, the generic runner and a plain forward.

    Subclasses build their parameters with the checkpoint's own names and implement
    :meth:`embed`, :meth:`head`, :attr:`layer_list`; each layer implements
    ``project(h, cos, sin) -> (q, k, v)`` and ``finish(h, attn) -> h``.
    """

    n_heads: int
    n_kv_heads: int
    head_dim: int
    rope_theta: float
    #: Block-causal attention block size (SDAR); ``None`` = fully bidirectional.
    block_size: int | None = None

    def _init_rope(self) -> None:
        exponent = torch.arange(0, self.head_dim, 2, dtype=torch.int64).float() / self.head_dim
        inv_freq = 1.0 / (float(self.rope_theta) ** exponent)
        self.register_buffer("rope_inv_freq", inv_freq, persistent=False)

    def rope(self, positions: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """float32 ``cos, sin [B, 1, t, D]`` for absolute ``positions [B, t]``; ``(None, None)`` for
        a model without rotary embeddings (learned absolute positions are added in :meth:`embed`)."""
        if not hasattr(self, "rope_inv_freq"):
            return None, None
        inv = self.rope_inv_freq.to(device=positions.device, dtype=torch.float32)
        freqs = positions.float()[..., None] * inv
        emb = torch.cat((freqs, freqs), dim=-1)[:, None]
        return emb.cos(), emb.sin()

    # -- family hooks -------------------------------------------------------------------------
    def embed(self, input_ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Input embeddings of ``input_ids [B, t]`` at absolute ``positions [B, t]`` (families with
        rotary embeddings ignore the positions here)."""
        raise NotImplementedError

    def head(self, hidden: torch.Tensor) -> torch.Tensor:
        """Final norm + LM head."""
        raise NotImplementedError

    @property
    def layer_list(self) -> Sequence[nn.Module]:
        raise NotImplementedError

    # -- runner -------------------------------------------------------------------------------
    def run(
        self,
        input_ids: torch.Tensor,
        positions: torch.Tensor,
        attend: Attend,
        head_slice: slice | None = None,
    ) -> torch.Tensor:
        """Run ``input_ids [B, t]`` at absolute ``positions [B, t]``; attention is delegated to
        ``attend`` so callers choose full, cache-filling or cached attention. The LM head runs
        only on ``head_slice`` of the ``t`` positions (all when ``None``)."""
        cos, sin = self.rope(positions)
        h = self.embed(input_ids, positions)
        devices = self.layer_devices
        for index, layer in enumerate(self.layer_list):
            if devices is not None and h.device != devices[index]:
                h = h.to(devices[index])
                if cos is not None:
                    cos, sin = cos.to(devices[index]), sin.to(devices[index])
            q, k, v = layer.project(h, cos, sin)
            h = layer.finish(h, attend(index, q, k, v))
        if head_slice is not None:
            h = h[:, head_slice]
        if devices is not None:
            h = h.to(self.head_device)
        return self.head(h)

    #: Per-layer devices when the layers are spread over several GPUs (``device_map="auto"``).
    layer_devices: list[torch.device] | None = None
    head_device: torch.device | None = None

    def spread_layers(self, devices: Sequence[torch.device]) -> None:
        """Place consecutive layers on ``devices`` in equal runs (embedding on the first, final norm
        and LM head on the last). accelerate's dispatch hooks wrap ``forward()`` only, and the
        runner drives layers through ``project``/``finish``, so placement is done here instead."""
        devices = [torch.device(d) for d in devices]
        layers = list(self.layer_list)
        per = -(-len(layers) // len(devices))
        self.layer_devices = [devices[min(i // per, len(devices) - 1)] for i in range(len(layers))]
        for layer, device in zip(layers, self.layer_devices):
            layer.to(device)
        self.head_device = devices[-1]
        self._place_ends(devices[0], devices[-1])

    def _place_ends(self, first: torch.device, last: torch.device) -> None:
        """Move embedding to ``first`` and final norm / LM head to ``last`` (family-specific)."""
        raise NotImplementedError

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        head_slice: slice | None = None,
    ) -> torch.Tensor:
        """Logits ``[B, T, V]`` of a whole canvas (differentiable; used for training too), or only
        of ``head_slice`` of the positions (training on an answer need not project the prompt).

        ``attention_mask`` is 2-D 1/0 (0 = left padding). Without ``position_ids`` positions are
        ``0..T-1``; RoPE only sees relative distances, so left padding does not change real logits
        (a model with learned absolute positions needs ``position_ids`` for left-padded rows).
        """
        batch, length = input_ids.shape
        if position_ids is None:
            position_ids = torch.arange(length, device=input_ids.device).expand(batch, length)
        mask = full_attention_mask(attention_mask, length, self.block_size, input_ids.device)

        def attend(_: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
            return sdpa(q, k, v, mask)

        return self.run(input_ids, position_ids, attend, head_slice=head_slice)


def sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Scaled dot-product attention with grouped KV heads; returns ``[B, t, H * D]``."""
    out = F.scaled_dot_product_attention(
        q, k, v, attn_mask=mask, is_causal=False, enable_gqa=k.shape[1] != q.shape[1]
    )
    batch, heads, length, dim = out.shape
    return out.transpose(1, 2).reshape(batch, length, heads * dim)
