"""Generic adapter: any HF-style model whose ``forward(input_ids=..., attention_mask=...)`` returns ``.logits``.

Used by the standalone :class:`~lm_eval_infogain.InfoGainSampler` API for models we do not know
(the paper's repository takes exactly such a model) and by ``AutoModelForMaskedLM`` checkpoints.
It has no KV cache. When the model's forward accepts ``position_ids`` it gets positions that
ignore left padding, so a prompt decodes the same alone and inside a padded batch.
"""

from __future__ import annotations

import inspect
from typing import Any, Iterable

import torch

from .base import LogitsShapeError, MaskTokenError, MDMAdapter, position_ids_from_mask

__all__ = ["HFModelAdapter", "detect_mask_id", "MASK_TOKEN_CANDIDATES"]

#: Mask token strings of the families we know, tried in order when the tokenizer has no mask_token_id.
MASK_TOKEN_CANDIDATES: tuple[str, ...] = ("<|mdm_mask|>", "<|mask|>", "<|MASK|>", "[MASK]", "<mask>")


def detect_mask_id(tokenizer: Any) -> int:
    """The tokenizer's mask id: ``mask_token_id``, else the first known mask string in the vocab."""
    mask_id = getattr(tokenizer, "mask_token_id", None)
    if isinstance(mask_id, int):
        return mask_id
    vocab = tokenizer.get_vocab() if hasattr(tokenizer, "get_vocab") else {}
    for token in MASK_TOKEN_CANDIDATES:
        if token in vocab:
            return int(vocab[token])
    raise MaskTokenError(
        "cannot find a mask token: the tokenizer has no mask_token_id and none of "
        f"{', '.join(MASK_TOKEN_CANDIDATES)} is in its vocabulary; pass mask_id explicitly"
    )


def _unique_ints(values: Iterable[Any]) -> tuple[int, ...]:
    out: list[int] = []
    for value in values:
        if isinstance(value, (list, tuple)):
            out.extend(int(v) for v in value if v is not None)
        elif value is not None:
            out.append(int(value))
    return tuple(dict.fromkeys(out))


class HFModelAdapter(MDMAdapter):
    """Wrap an HF-style module as an :class:`MDMAdapter` (no cache)."""

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        mask_id: int,
        pad_id: int | None = None,
        eos_ids: Iterable[int] = (),
        shift_logits: bool = False,
        vocab_size: int | None = None,
        max_length: int | None = None,
    ):
        self.model = model
        self.mask_id = int(mask_id)
        self.eos_ids = _unique_ints(eos_ids)
        self.pad_id = int(pad_id) if pad_id is not None else (self.eos_ids[0] if self.eos_ids else self.mask_id)
        self.penalized_ids = _unique_ints([*self.eos_ids[:1], self.pad_id]) if self.eos_ids else ()
        self.shift_logits = shift_logits
        config = getattr(model, "config", None)
        self.vocab_size = int(vocab_size or getattr(config, "vocab_size", 0) or 0)
        self.max_length = max_length or getattr(config, "max_position_embeddings", None)
        try:
            params = inspect.signature(model.forward).parameters
        except (TypeError, ValueError, AttributeError):
            params = {}
        self._takes_position_ids = "position_ids" in params
        self._takes_attention_mask = "attention_mask" in params or any(
            p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()
        )

    @classmethod
    def from_tokenizer(
        cls, model: torch.nn.Module, tokenizer: Any, mask_id: int | None = None, **kwargs: Any
    ) -> "HFModelAdapter":
        """Read mask / pad / eos ids from a tokenizer (and the model's generation config)."""
        mask = detect_mask_id(tokenizer) if mask_id is None else int(mask_id)
        eos = [getattr(tokenizer, "eos_token_id", None)]
        gen_config = getattr(model, "generation_config", None)
        eos.append(getattr(gen_config, "eos_token_id", None) if gen_config is not None else None)
        pad = getattr(tokenizer, "pad_token_id", None)
        return cls(model, mask_id=mask, pad_id=pad, eos_ids=_unique_ints(eos), **kwargs)

    @property
    def device(self) -> torch.device:
        try:
            return next(self.model.parameters()).device
        except (StopIteration, AttributeError):
            return torch.device("cpu")

    @torch.no_grad()
    def logits(self, input_ids, attention_mask=None, *, window=None):
        kwargs: dict[str, Any] = {"input_ids": input_ids}
        padded = attention_mask is not None and not bool(attention_mask.all())
        if padded and self._takes_attention_mask:
            kwargs["attention_mask"] = attention_mask
        if padded and self._takes_position_ids:
            kwargs["position_ids"] = position_ids_from_mask(attention_mask)
        out = self.model(**kwargs)
        if isinstance(out, torch.Tensor):  # a plain module returning its logits directly
            logits = out
        elif hasattr(out, "logits"):
            logits = out.logits
        elif isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
            logits = out[0]
        else:
            raise TypeError(
                f"{type(self.model).__name__}.forward returned {type(out).__name__}; expected logits, an output "
                "object with .logits, or a tuple whose first element is the logits"
            )
        if logits.dim() != 3 or tuple(logits.shape[:2]) != tuple(input_ids.shape):
            raise LogitsShapeError(
                f"{type(self.model).__name__} returned logits of shape {tuple(logits.shape)} for input_ids of shape "
                f"{tuple(input_ids.shape)}; expected ({input_ids.shape[0]}, {input_ids.shape[1]}, vocabulary)"
            )
        if self.shift_logits:
            logits = torch.cat([logits[:, :1], logits[:, :-1]], dim=1)
        if window is not None:
            logits = logits[:, window[0] : window[1]]
        return logits
