"""Reference-free writing metrics."""

from __future__ import annotations

import pytest

from lm_eval_infogain.scoring.writing import distinct_n, process_results, repetition_rate, words


def test_metrics_on_known_text():
    text = "The cat sat. The cat sat. The cat sat."
    tokens = words(text)
    assert tokens == ["the", "cat", "sat"] * 3
    assert distinct_n(tokens, 1) == pytest.approx(3 / 9)
    assert distinct_n(tokens, 2) == pytest.approx(3 / 8)
    assert repetition_rate(tokens, 4) == pytest.approx(1 - 3 / 6)
    out = process_results({}, [text])
    assert out["length_words"] == 9.0 and out["distinct_1"] == pytest.approx(1 / 3)


def test_fresh_text_has_no_repetition():
    out = process_results({}, ["Once upon one night, the small robot learned to paint quiet seas."])
    assert out["repetition_4"] == 0.0 and out["distinct_1"] == 1.0 and out["distinct_2"] == 1.0


def test_empty_text():
    assert process_results({}, [""]) == {"distinct_1": 0.0, "distinct_2": 0.0, "length_words": 0.0,
                                          "repetition_4": 0.0}
