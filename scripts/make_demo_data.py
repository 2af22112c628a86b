#!/usr/bin/env python
"""Write the committed demo test sets (fixed seeds; rerunning reproduces the files byte for byte).

    python scripts/make_demo_data.py            # writes lm_eval_infogain/demo/data/*.jsonl
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lm_eval_infogain.demo import datasets as ds  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ds.DATA_DIR, help="output folder")
    parser.add_argument("--sudoku", type=int, default=ds.SUDOKU_COUNT, help="number of Sudoku puzzles")
    parser.add_argument("--addition", type=int, default=ds.ADDITION_COUNT, help="number of additions")
    args = parser.parse_args(argv)
    t0 = time.time()
    n = ds.write_jsonl(args.out / ds.SUDOKU_FILE.name, ds.sudoku_records(ds.SUDOKU_SEED, args.sudoku))
    m = ds.write_jsonl(args.out / ds.ADDITION_FILE.name, ds.addition_records(ds.ADDITION_SEED, args.addition))
    print(f"wrote {n} Sudoku puzzles and {m} additions to {args.out} in {time.time() - t0:.1f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
