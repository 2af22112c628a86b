"""Write the SAbDab heavy chains shipped as task_configs/data/sabdab_heavy_chains.jsonl.

Input: a folder with ``sabdab_{train,val,test}.parquet`` (the SAbDab snapshot of the antiberta
repository; see task_configs/data/SABDAB_SOURCE.md). Output: one JSON line per heavy chain (``v_gene``
starting ``IGHV``) with ``split``, ``row``, ``pdb``, ``antibody_chains``, ``v_gene``, ``j_gene`` and
``sequence``, in the order the task uses (test, val, train; rows in file order). Rerunning on the same
files reproduces the output byte for byte:

    python scripts/make_sabdab_heavy_chains.py path/to/data/sabdab -o task_configs/data/sabdab_heavy_chains.jsonl
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lm_eval_infogain.scoring.data import read_sabdab_heavy_chains


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="folder holding sabdab_{train,val,test}.parquet")
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args(argv)
    rows = read_sabdab_heavy_chains(args.folder)
    if args.output.exists():
        raise SystemExit(f"{args.output} exists; remove it first (it is not overwritten)")
    args.output.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    print(f"{len(rows)} heavy chains -> {args.output}")


if __name__ == "__main__":
    main()
