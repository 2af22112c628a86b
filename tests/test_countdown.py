"""Countdown: AST-only evaluation, numbers used at most once, exact target; shipped set reproducible."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lm_eval_infogain.scoring.countdown import check, evaluate, extract_expression, process_results

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "task_configs" / "data" / "countdown.jsonl"


@pytest.mark.parametrize(("expr", "ok"), [
    ("(8 + 6) + (38 - 1)", True),
    ("38 + 8 + 6 - 1", True),
    ("38 + 13", False),  # 13 is not given
    ("38 + 8 + 8 - 3", False),  # 8 used twice
    ("(38 * 1 + 6) + 8 - 1", False),  # 1 used twice
    ("38 + 6 + 8 - 1", True),
    ("51", False),
    ("__import__('os').system('true')", False),
    ("2 ** 10", False),
    ("38 / 0 + 51", False),
    ("-1 + 52", False),
    ("", False),
])
def test_check(expr, ok):
    assert check(expr, [8, 1, 6, 38], 51) is ok


def test_exact_fractions():
    assert evaluate("7 / 2 * 2")[0] == 7
    assert check("(1 / 3) * 3 * 17", [1, 3, 3, 17], 17)


@pytest.mark.parametrize("text", [
    " (8 + 6) + (38 - 1)\nbecause...", "<answer>(8 + 6) + (38 - 1)</answer>", "(8 + 6) + (38 - 1) = 51.",
    "Let me think.\nAnswer: (8 × 6) - 38 + 1 + 40", "`38 + 8 + 6 - 1`",
])
def test_extraction(text):
    expr = extract_expression(text)
    assert "=" not in expr and "<" not in expr and "`" not in expr


def test_shipped_set_matches_generator_and_witnesses(tmp_path):
    out = tmp_path / "c.jsonl"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_countdown.py"), "-o", str(out)], check=True,
                   capture_output=True)
    assert out.read_bytes() == DATA.read_bytes()
    rows = [json.loads(line) for line in DATA.open()]
    assert len(rows) == 500 and {len(r["numbers"]) for r in rows} == {3, 4}
    assert all(process_results(r, [r["solution"]])["accuracy"] == 1 for r in rows)
    assert all(process_results(r, ["1 + 1"])["accuracy"] == 0 for r in rows)
