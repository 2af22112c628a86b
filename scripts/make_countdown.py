"""Generate the seeded Countdown problem set shipped as task_configs/data/countdown.jsonl.

Each problem has 3 or 4 numbers (1-50) and an integer target (10-200) that a random expression over
all the numbers reaches with + - * / and integer intermediate values; that expression is stored as a
witness (``solution``). Rerunning with the same seed reproduces the file byte for byte:

    python scripts/make_countdown.py --seed 1234 --count 500 -o task_configs/data/countdown.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path


def _combine(rng: random.Random, items: list[tuple[int, str]]) -> tuple[int, str] | None:
    """Fold the (value, expression) pairs in random order with random operators; None if it goes astray."""
    items = items[:]
    while len(items) > 1:
        i, j = rng.sample(range(len(items)), 2)
        (a, ea), (b, eb) = items[i], items[j]
        op = rng.choice("+-*/")
        if op == "-" and a < b:
            (a, ea), (b, eb) = (b, eb), (a, ea)
        if op == "/" and (b == 0 or a % b):
            op = "+"
        value = {"+": a + b, "-": a - b, "*": a * b, "/": a // b if b else 0}[op]
        items = [it for k, it in enumerate(items) if k not in (i, j)] + [(value, f"({ea} {op} {eb})")]
    return items[0]


def make(seed: int, count: int) -> list[dict]:
    rng = random.Random(seed)
    problems: list[dict] = []
    while len(problems) < count:
        numbers = [rng.randint(1, 50) for _ in range(rng.choice((3, 4)))]
        value, expr = _combine(rng, [(n, str(n)) for n in numbers])
        if not 10 <= value <= 200 or value in numbers:
            continue
        problems.append({"id": len(problems), "numbers": numbers, "target": value, "solution": expr[1:-1]})
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("-o", "--output", type=Path, default=Path("task_configs/data/countdown.jsonl"))
    args = parser.parse_args()
    rows = make(args.seed, args.count)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"wrote {len(rows)} problems to {args.output}")


if __name__ == "__main__":
    main()
