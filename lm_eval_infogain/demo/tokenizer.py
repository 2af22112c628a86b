"""The demo model's word-level tokenizer, in the layout of a LLaDA checkpoint.

Why word-level: every symbol of the demo tasks (digits, ``+``, ``=``, ``.``) is one token, so one
answer cell is one generated token and the canvas length equals the answer length. A Sudoku clue is
one token naming its cell, ``r<row>c<col>=<digit or .>`` (810 words): a rotary-position model only
sees distances, and "same row / column / box" is not a distance, so the prompt states where each
cell is (see :mod:`~lm_eval_infogain.demo.training`). The special
tokens are LLaDA's own strings with LLaDA's roles: ``<|endoftext|>`` is both EOS and PAD,
``<|startoftext|>`` is BOS, and ``<|mdm_mask|>`` is the mask but is NOT registered as the tokenizer's
``mask_token`` (the real LLaDA tokenizer does not register it either, so loaders must find it by
string — the demo exercises exactly that path).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .puzzles import sudoku_cell_word

__all__ = [
    "SYMBOLS", "SPECIALS", "CELL_TOKENS", "VOCAB", "TOKEN_ID", "MASK", "BOS", "EOS",
    "CELL_BASE", "cell_word_id", "build_tokenizer", "save_tokenizer",
]  # fmt: skip

#: Ordinary words: digits, the addition operator, the prompt/answer separator, the Sudoku blank.
SYMBOLS: tuple[str, ...] = ("0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "+", "=", ".")
MASK, BOS, EOS = "<|mdm_mask|>", "<|startoftext|>", "<|endoftext|>"
SPECIALS: tuple[str, ...] = (
    "<|unk|>",
    BOS,
    EOS,
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
    MASK,
)


#: One word per (cell, value or blank), cell-major, so that :func:`cell_word_id` is arithmetic.
CELL_TOKENS: tuple[str, ...] = tuple(sudoku_cell_word(cell, value) for cell in range(81) for value in range(10))
VOCAB: tuple[str, ...] = SYMBOLS + SPECIALS + CELL_TOKENS
CELL_BASE = len(SYMBOLS) + len(SPECIALS)


def cell_word_id(cell, value):
    """Id of the word for ``cell`` (0..80) holding ``value`` (0 = blank); ints or tensors alike."""
    return CELL_BASE + 10 * cell + value

TOKEN_ID: dict[str, int] = {token: i for i, token in enumerate(VOCAB)}

#: LLaDA-8B-Instruct's chat template (plain Jinja, no remote code).
CHAT_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    "+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
)


def build_tokenizer() -> Any:
    """A ``PreTrainedTokenizerFast`` over :data:`VOCAB` (WordLevel, words split at whitespace only,
    so ``r1c2=5`` stays one word)."""
    from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.WordLevel(vocab=dict(TOKEN_ID), unk_token="<|unk|>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    core.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIALS])
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=EOS,
        unk_token="<|unk|>",
        clean_up_tokenization_spaces=False,
        model_max_length=512,
    )
    tok.chat_template = CHAT_TEMPLATE
    return tok


def save_tokenizer(folder: str | Path) -> Path:
    """Write ``tokenizer.json``, ``tokenizer_config.json`` and ``special_tokens_map.json``.

    The two JSON configs are written by hand in the classic ``PreTrainedTokenizerFast`` layout
    (chat template inside ``tokenizer_config.json``) rather than by ``save_pretrained``, whose
    output differs between transformers 4.x and 5.x; this layout loads under both.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    build_tokenizer().backend_tokenizer.save(str(folder / "tokenizer.json"))
    special = {"bos_token": BOS, "eos_token": EOS, "pad_token": EOS, "unk_token": "<|unk|>"}
    added = {
        str(TOKEN_ID[t]): {
            "content": t, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False, "special": True,
        }
        for t in SPECIALS
    }  # fmt: skip
    config = {
        "added_tokens_decoder": added,
        **special,
        "chat_template": CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "extra_special_tokens": {},
        "model_max_length": 512,
        "tokenizer_class": "PreTrainedTokenizerFast",
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    (folder / "special_tokens_map.json").write_text(json.dumps(special, indent=2, sort_keys=True) + "\n")
    return folder
