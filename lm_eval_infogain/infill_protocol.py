"""The infilling request protocol: how an lm-eval task asks a masked-diffusion backend to fill a gap.

Why a protocol: lm-eval hands a backend ``generate_until`` requests whose arguments are only
``(context: str, gen_kwargs: dict)``. ``gen_kwargs`` come from the task YAML and are the same for every
document (backends group requests by them, so per-document values there would break batching), while
the context is built per document. An infilling request therefore carries

- in its **context**: a fixed header line, then one JSON object with the document's ``prefix``,
  ``suffix`` and the reference ``middle`` (base64 of its UTF-8 bytes: the backend needs it only to
  count its tokens for the oracle gap length, and a backend that wrongly shows the context to a model
  must not hand it the answer);
- in its **gen_kwargs**: ``infill: true`` (marks the request; a backend that does not know the key
  fails loudly, e.g. transformers' ``generate`` rejects it as an unused model kwarg) and, optionally,
  ``infill_length: N`` (a fixed gap of N tokens instead of the oracle length).

The response to an infilling request is the gap's text only. The full specification is
``docs/infilling.md``. This module is standard-library only (no torch, no lm-eval), so any backend can
import it; tokenizers are used duck-typed (Hugging Face interface).

Task side: :func:`encode_request` (the context; used by ``doc_to_text``) and :func:`generation_kwargs`.
Backend side: :func:`decode_request` (``None`` for ordinary requests), :func:`build_canvas` (prompt ids
with the gap as mask tokens) and :func:`gap_text` (the filled gap's ids back to text).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

__all__ = [
    "PROTOCOL_VERSION",
    "HEADER",
    "INFILL_KEY",
    "LENGTH_KEY",
    "InfillRequestError",
    "InfillTooLongError",
    "InfillRequest",
    "InfillCanvas",
    "encode_request",
    "generation_kwargs",
    "is_infill_request",
    "decode_request",
    "build_canvas",
    "gap_text",
]

PROTOCOL_VERSION = 1
#: First line of every infilling context. Written in words so that a log or a model that is wrongly
#: shown the context says what it is.
HEADER = "<<lm_eval_infogain infill request v1: a masked-diffusion backend fills the gap between prefix and suffix>>\n"
#: gen_kwargs key that marks a request as an infilling request (value ``true``).
INFILL_KEY = "infill"
#: Optional gen_kwargs key: fixed gap length in tokens (default: the reference middle's token count).
LENGTH_KEY = "infill_length"

_FIELDS = ("prefix", "suffix", "middle_base64")
_WRAPPED_HINT = (
    "infilling tasks take the request exactly as the task writes it: drop --apply_chat_template, "
    "--system_instruction, --num_fewshot (keep 0), and any description or gen_prefix in the task config"
)


class InfillRequestError(ValueError):
    """A request that is (or claims to be) an infilling request but cannot be decoded as one."""


class InfillTooLongError(ValueError):
    """The gap, the suffix and the special tokens alone do not fit into the model's context."""


@dataclass(frozen=True)
class InfillRequest:
    """One decoded infilling request.

    ``middle`` is the reference gap text: a backend may only count its tokens (oracle length), never
    show it to the model. ``length`` is the fixed gap length from ``infill_length`` or ``None`` (oracle).
    """

    prefix: str
    suffix: str
    middle: str = field(repr=False)
    length: int | None = None

    def gap_length(self, tokenizer: Any) -> int:
        """Tokens to mask: ``length`` if fixed, else the reference middle's token count under ``tokenizer``."""
        if self.length is not None:
            return self.length
        return len(_encode(tokenizer, self.middle))


def encode_request(prefix: str, suffix: str, middle: str) -> str:
    """The ``generate_until`` context of an infilling request (a task's ``doc_to_text`` returns it)."""
    for name, value in (("prefix", prefix), ("suffix", suffix), ("middle", middle)):
        if not isinstance(value, str):
            raise InfillRequestError(f"{name} must be a string, got {type(value).__name__}")
    payload = {
        "prefix": prefix,
        "suffix": suffix,
        "middle_base64": base64.b64encode(middle.encode("utf-8")).decode("ascii"),
    }
    return HEADER + json.dumps(payload, ensure_ascii=False)


def generation_kwargs(infill_length: int | None = None, **other: Any) -> dict[str, Any]:
    """The ``generation_kwargs`` of an infilling task (what its YAML writes by hand)."""
    kwargs: dict[str, Any] = {INFILL_KEY: True, "until": [], **other}
    if infill_length is not None:
        kwargs[LENGTH_KEY] = _checked_length(infill_length)
    return kwargs


def is_infill_request(gen_kwargs: Mapping[str, Any] | None) -> bool:
    """Whether ``gen_kwargs`` mark an infilling request (``infill`` set to a true value)."""
    return bool(gen_kwargs) and _truthy(gen_kwargs.get(INFILL_KEY))  # type: ignore[union-attr]


def decode_request(context: str, gen_kwargs: Mapping[str, Any] | None) -> InfillRequest | None:
    """The :class:`InfillRequest` of one ``generate_until`` request, or ``None`` for an ordinary one.

    Raises :class:`InfillRequestError` when the two halves disagree (an infilling context without
    ``infill: true``, or the reverse) or when lm-eval wrapped the context in other text (chat template,
    few-shot examples, a description, a system instruction or a generation prefix): such a canvas
    would not be the task's, and silently decoding it would give a meaningless score.
    """
    marked = is_infill_request(gen_kwargs)
    if gen_kwargs and INFILL_KEY in gen_kwargs and not marked and not _is_false(gen_kwargs[INFILL_KEY]):
        raise InfillRequestError(f"gen_kwargs {INFILL_KEY}={gen_kwargs[INFILL_KEY]!r}: expected true or false")
    if not isinstance(context, str):
        raise InfillRequestError(f"the context must be a string, got {type(context).__name__}")
    found = context.count(HEADER)
    if not marked:
        if found:
            raise InfillRequestError(
                f"the context is an infilling request but its gen_kwargs lack {INFILL_KEY}: true; "
                "the task's generation_kwargs must set it (see docs/infilling.md)"
            )
        if gen_kwargs and LENGTH_KEY in gen_kwargs:
            raise InfillRequestError(f"gen_kwargs set {LENGTH_KEY} without {INFILL_KEY}: true")
        return None
    if found == 0:
        raise InfillRequestError(
            f"gen_kwargs mark an infilling request ({INFILL_KEY}: true) but the context is not one "
            "(the task's doc_to_text must return lm_eval_infogain.infill_protocol.encode_request(...))"
        )
    if found > 1:
        raise InfillRequestError(f"the context holds {found} infilling requests (few-shot examples?); {_WRAPPED_HINT}")
    start = context.index(HEADER)
    if context[:start].strip():
        raise InfillRequestError(
            f"text before the infilling request ({context[:start][:60]!r}...: a chat template, task "
            f"description or system instruction); {_WRAPPED_HINT}"
        )
    body = context[start + len(HEADER) :]
    try:
        payload, end = json.JSONDecoder().raw_decode(body.lstrip())
    except json.JSONDecodeError as err:
        raise InfillRequestError(f"the infilling request's JSON is malformed: {err}") from None
    rest = body.lstrip()[end:]
    if rest.strip():
        raise InfillRequestError(
            f"text after the infilling request ({rest.strip()[:60]!r}: a chat template or generation "
            f"prefix); {_WRAPPED_HINT}"
        )
    if not isinstance(payload, dict) or sorted(payload) != sorted(_FIELDS):
        got = sorted(payload) if isinstance(payload, dict) else type(payload).__name__
        raise InfillRequestError(f"the infilling request must have exactly the fields {list(_FIELDS)}, got {got}")
    if not all(isinstance(payload[name], str) for name in _FIELDS):
        raise InfillRequestError(f"the fields {list(_FIELDS)} of an infilling request must be strings")
    try:
        middle = base64.b64decode(payload["middle_base64"].encode("ascii"), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeError, ValueError) as err:
        raise InfillRequestError(f"middle_base64 is not base64 of UTF-8 text: {err}") from None
    length = gen_kwargs.get(LENGTH_KEY) if gen_kwargs else None  # type: ignore[union-attr]
    return InfillRequest(
        prefix=payload["prefix"], suffix=payload["suffix"], middle=middle,
        length=None if length is None else _checked_length(length),
    )


@dataclass(frozen=True)
class InfillCanvas:
    """Prompt ids of one infilling request: ``ids[gap_start : gap_start + gap_length]`` are mask tokens.

    ``ids`` = the tokenizer's leading special tokens + prefix + masks + suffix + its trailing special
    tokens. ``anchor`` holds the last prefix tokens, which :func:`gap_text` uses to decode the gap
    with the spacing it has in context. ``dropped`` counts prefix tokens cut by :meth:`fit`.
    """

    ids: list[int]
    gap_start: int
    gap_length: int
    fixed_length: bool
    anchor: list[int]
    head: int = 0
    dropped: int = 0

    def gap_ids(self, row: Sequence[int]) -> list[int]:
        """The gap's tokens in a decoded row (the canvas with its masks filled, optionally followed by
        appended tokens)."""
        if len(row) < len(self.ids):
            raise InfillRequestError(f"decoded row has {len(row)} tokens, the canvas {len(self.ids)}")
        return [int(t) for t in row[self.gap_start : self.gap_start + self.gap_length]]

    def fit(self, max_length: int | None) -> "InfillCanvas":
        """The canvas shortened to ``max_length`` by dropping the oldest prefix tokens (after the leading
        special tokens). Raises :class:`InfillTooLongError` when even an empty prefix does not fit."""
        if max_length is None or len(self.ids) <= max_length:
            return self
        excess = len(self.ids) - max_length
        prefix_len = self.gap_start - self.head
        if excess > prefix_len:
            raise InfillTooLongError(
                f"gap ({self.gap_length} tokens) + suffix + special tokens need {len(self.ids) - prefix_len} "
                f"positions, more than max_length={max_length}"
            )
        ids = self.ids[: self.head] + self.ids[self.head + excess :]
        return InfillCanvas(ids, self.gap_start - excess, self.gap_length, self.fixed_length, self.anchor,
                            self.head, self.dropped + excess)


def build_canvas(request: InfillRequest, tokenizer: Any, mask_id: int, *, add_special_tokens: bool = True) -> InfillCanvas:
    """Prompt ids for ``request``: prefix, ``gap_length`` mask tokens, suffix.

    Prefix, suffix and middle are tokenized separately (without special tokens), so the gap length is
    exactly the reference middle's token count and the gap's edges are token boundaries. With
    ``add_special_tokens`` the sequence gets the special tokens the tokenizer puts around a whole text
    (BOS for Llama-like tokenizers, ``[CLS] ... [SEP]`` for BERT-like ones, none for GPT-2-like ones):
    an infilling canvas is a complete sequence, unlike a generation prompt.
    """
    mask_id = int(mask_id)
    prefix = _encode(tokenizer, request.prefix)
    suffix = _encode(tokenizer, request.suffix)
    n = request.gap_length(tokenizer)
    head, tail = _special_wrap(tokenizer, request.prefix + request.middle + request.suffix) if add_special_tokens else ([], [])
    for name, ids in (("prefix", prefix), ("suffix", suffix)):
        if mask_id in ids:
            raise InfillRequestError(f"the {name} tokenizes to the mask token (id {mask_id}); it cannot be told from the gap")
    ids = [*head, *prefix, *([mask_id] * n), *suffix, *tail]
    return InfillCanvas(ids=ids, gap_start=len(head) + len(prefix), gap_length=n,
                        fixed_length=request.length is not None, anchor=prefix[-8:], head=len(head))


def gap_text(tokenizer: Any, canvas: InfillCanvas, gap_ids: Sequence[int], *, eos_ids: Iterable[int] = (),
             pad_id: int | None = None) -> str:
    """The filled gap as text: cut at the first EOS, trailing PAD dropped, special tokens skipped.

    Decoded after the gap's anchor (the last prefix tokens) and with the anchor's text removed, so
    tokenizers that decode a leading word piece differently on its own (SentencePiece drops the space
    of a leading ``▁``) give the text the gap has in place.
    """
    stops = {int(e) for e in eos_ids}
    tokens = [int(t) for t in gap_ids]
    end = next((i for i, t in enumerate(tokens) if t in stops), len(tokens))
    tokens = tokens[:end]
    while tokens and pad_id is not None and tokens[-1] == int(pad_id):
        tokens.pop()
    if not tokens:
        return ""
    if canvas.anchor:
        head = tokenizer.decode(list(canvas.anchor), skip_special_tokens=True)
        whole = tokenizer.decode([*canvas.anchor, *tokens], skip_special_tokens=True)
        if whole.startswith(head):
            return whole[len(head) :]
    return tokenizer.decode(tokens, skip_special_tokens=True)


# ---------------------------------------------------------------------------------------------- helpers
def _encode(tokenizer: Any, text: str) -> list[int]:
    if not text:
        return []
    return [int(t) for t in tokenizer(text, add_special_tokens=False)["input_ids"]]


def _special_wrap(tokenizer: Any, probe: str) -> tuple[list[int], list[int]]:
    """(leading, trailing) special tokens the tokenizer adds around a whole text, found by comparing the
    encodings of ``probe`` with and without special tokens (works for any Hugging Face tokenizer)."""
    probe = probe or "a"
    bare = _encode(tokenizer, probe)
    full = [int(t) for t in tokenizer(probe, add_special_tokens=True)["input_ids"]]
    if not bare:
        return full, []
    for start in range(len(full) - len(bare) + 1):
        if full[start : start + len(bare)] == bare:
            return full[:start], full[start + len(bare) :]
    raise InfillRequestError("cannot tell the tokenizer's special tokens from the text: its encodings with and "
                             "without special tokens do not nest; pass add_special_tokens=False")


def _checked_length(value: Any) -> int:
    """A positive integer gap length (lm-eval's ``--gen_kwargs`` may hand it over as a digit string)."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InfillRequestError(f"{LENGTH_KEY} must be a positive integer, got {value!r}")
    return value


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return value is True or (isinstance(value, int) and not isinstance(value, bool) and value == 1)


def _is_false(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("false", "0", "no", "")
    return value is False or value is None or (isinstance(value, int) and value == 0)
