"""Reference-free metrics for open-ended writing: diversity, length, repetition.

Why these: the creative-writing prompts have no reference text, so offline we can only measure
properties of the text itself — lexical diversity (distinct-n: unique n-grams / all n-grams), length in
words, and degenerate looping (the share of repeated 4-grams). Quality is judged pairwise by an LLM
(:mod:`.judge`), which needs a network endpoint.
"""

from __future__ import annotations

import re

__all__ = ["words", "distinct_n", "repetition_rate", "process_results"]

_WORD = re.compile(r"[\w']+", re.UNICODE)


def words(text: str) -> list[str]:
    """Lower-cased word tokens (letters, digits, apostrophes)."""
    return _WORD.findall(text.lower())


def _ngrams(tokens: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]


def distinct_n(tokens: list[str], n: int) -> float:
    """Unique n-grams / all n-grams (0.0 for a text shorter than n words)."""
    grams = _ngrams(tokens, n)
    return len(set(grams)) / len(grams) if grams else 0.0


def repetition_rate(tokens: list[str], n: int = 4) -> float:
    """Share of n-grams that repeat an earlier n-gram of the same text (0 = no loops, near 1 = a loop)."""
    grams = _ngrams(tokens, n)
    return 1.0 - len(set(grams)) / len(grams) if grams else 0.0


def process_results(doc: dict, results: list[str]) -> dict[str, float]:
    """Per-sample ``distinct_1``, ``distinct_2``, ``length_words`` and ``repetition_4``."""
    tokens = words(results[0])
    return {
        "distinct_1": distinct_n(tokens, 1),
        "distinct_2": distinct_n(tokens, 2),
        "length_words": float(len(tokens)),
        "repetition_4": repetition_rate(tokens, 4),
    }
