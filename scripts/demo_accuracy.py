#!/usr/bin/env python
"""Accuracy of the bundled demo model per sampler, through the real loader and engine.

    python scripts/demo_accuracy.py --task sudoku --samplers confidence,random --n 200
    python scripts/demo_accuracy.py --task addition --tokens-per-step 3 --out results/demo_accuracy.json

Prompts are encoded as the lm-eval backend encodes them (BOS + the prompt text) and decoded in a
single block of the answer's length, as the demo tasks do.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def evaluate(adapter, task: str, sampler: str, n: int, tokens_per_step: int | None, batch_size: int,
             seed: int = 1234, **options) -> dict:
    """Accuracy and cost of one sampler on the first ``n`` items of a demo test set."""
    from lm_eval_infogain.demo import datasets as ds
    from lm_eval_infogain.demo.scoring import addition_correct, sudoku_correct
    from lm_eval_infogain.sampling import DecodingConfig, generate

    rows = ds.read_jsonl(ds.SUDOKU_FILE if task == "sudoku" else ds.ADDITION_FILE, n)
    length = 81 if task == "sudoku" else 9
    tok = adapter.tokenizer
    config = DecodingConfig.from_options(
        {"sampler": sampler, "gen_length": length, "block_size": length, "tokens_per_step": tokens_per_step,
         "seed": seed, **options}
    )
    correct, forwards, started = [], 0, time.perf_counter()
    for i in range(0, len(rows), batch_size):
        chunk = rows[i : i + batch_size]
        prompts = [[tok.bos_token_id, *tok(r["prompt"], add_special_tokens=False)["input_ids"]] for r in chunk]
        out = generate(adapter, prompts, config)
        forwards += len(out.calls)
        for ids, row in zip(out.tokens, chunk):
            text = tok.decode(ids, skip_special_tokens=True)
            ok = sudoku_correct(text, row["puzzle"]) if task == "sudoku" else addition_correct(text, row["sum"])
            correct.append(ok)
    result = {
        "task": task, "sampler": sampler, "tokens_per_step": tokens_per_step or 1, "n": len(correct),
        "accuracy": round(sum(correct) / len(correct), 4), "forward_calls": forwards,
        "seconds": round(time.perf_counter() - started, 1), **options,
    }
    if task == "addition":
        long = [ok for ok, r in zip(correct, rows) if r["carry_chain"] >= 4]
        result["accuracy_carry_chain_ge4"] = round(sum(long) / max(1, len(long)), 4)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "lm_eval_infogain" / "demo" / "model"))
    parser.add_argument("--task", choices=["sudoku", "addition"], default="sudoku")
    parser.add_argument("--samplers", default="confidence,random,left_to_right,info_gain")
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--tokens-per-step", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--caches", default="none", help="comma list of cache modes to compare (none,prefix,dual)")
    parser.add_argument("--block-size", type=int, default=None, help="default: one block over the answer")
    parser.add_argument("--out", type=Path, default=None, help="append results as JSON lines")
    args = parser.parse_args(argv)

    import torch

    from lm_eval_infogain.models.loader import load_mdm

    torch.set_num_threads(args.threads)
    adapter = load_mdm(args.model)
    for sampler in args.samplers.split(","):
        for cache in args.caches.split(","):
            options = {"cache": cache.strip(), **({"block_size": args.block_size} if args.block_size else {})}
            result = evaluate(adapter, args.task, sampler.strip(), args.n, args.tokens_per_step, args.batch_size,
                              **options)
            print(json.dumps(result), flush=True)
            if args.out:
                args.out.parent.mkdir(parents=True, exist_ok=True)
                with args.out.open("a") as fh:
                    fh.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
