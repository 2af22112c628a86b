"""Countdown: reach a target with + - * / over given numbers, each used at most once.

Checked without ``eval``: the answer is parsed with :mod:`ast`, only number literals, the four binary
operators and parentheses are accepted, and it is evaluated with exact fractions (so ``7/2*2`` is 7 and
division by zero is simply wrong).
"""

from __future__ import annotations

import ast
import operator
import re
from collections import Counter
from fractions import Fraction

__all__ = ["doc_to_text", "extract_expression", "evaluate", "check", "process_results"]

_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}
_MAX_CHARS = 200


def doc_to_text(doc: dict) -> str:
    numbers = ", ".join(str(n) for n in doc["numbers"])
    return (
        f"Using the numbers [{numbers}], write an arithmetic expression that equals {doc['target']}. "
        "You may use +, -, *, / and parentheses, and each number at most once. "
        "Give only the expression.\nAnswer:"
    )


def extract_expression(text: str) -> str:
    """The expression from an answer: inside <answer></answer> or after the last 'Answer:' when present,
    first non-empty line, with a trailing '= target' and a final period removed."""
    tagged = re.findall(r"<answer>(.*?)</answer>", text, re.DOTALL)
    if tagged:
        text = tagged[-1]
    elif "Answer:" in text:
        text = text.rsplit("Answer:", 1)[1]
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    line = line.replace("×", "*").replace("÷", "/").replace("−", "-").replace("`", "").replace("$", "")
    line = line.split("=")[0].strip().rstrip(".").strip()
    return line


def _walk(node: ast.AST, used: list[int]) -> Fraction:
    if isinstance(node, ast.Expression):
        return _walk(node.body, used)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        left, right = _walk(node.left, used), _walk(node.right, used)
        if isinstance(node.op, ast.Div) and right == 0:
            raise ZeroDivisionError
        return _OPS[type(node.op)](left, right)
    if isinstance(node, ast.Constant) and type(node.value) is int and node.value >= 0:
        used.append(node.value)
        return Fraction(node.value)
    raise ValueError(f"not allowed in an answer: {ast.dump(node)[:60]}")


def evaluate(expression: str) -> tuple[Fraction, list[int]]:
    """Exact value and the numbers used; ValueError/ZeroDivisionError/SyntaxError when not acceptable."""
    if not expression or len(expression) > _MAX_CHARS:
        raise ValueError("empty or too long")
    used: list[int] = []
    return _walk(ast.parse(expression, mode="eval"), used), used


def check(expression: str, numbers: list[int], target: int) -> bool:
    """True when the expression uses only the given numbers (each at most once) and equals the target."""
    try:
        value, used = evaluate(expression)
    except (ValueError, ZeroDivisionError, SyntaxError, RecursionError):
        return False
    if Counter(used) - Counter(numbers):
        return False
    return value == target


def process_results(doc: dict, results: list[str]) -> dict[str, int]:
    """``accuracy``: 1 when the extracted expression is a correct solution."""
    return {"accuracy": int(check(extract_expression(results[0]), list(doc["numbers"]), int(doc["target"])))}
