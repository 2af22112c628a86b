#!/usr/bin/env python
"""KV-cache benchmark: tokens forwarded and wall time of cache ``none`` / ``prefix`` / ``dual``, side by side.

Runs the real engine (Info-Gain, N candidates) on a randomly initialised LLaDA-shaped model built
from a config dict (no download), for several prompt lengths. Each row of the table is one
(prompt length, cache mode) case; ``speedup`` is the wall time of ``none`` divided by the case's.

    python scripts/bench_cache.py            # prompts 128/512/1024, gen 256, block 32, N = 8
                                             # (about half an hour on two CPU cores: ``none`` is slow)
    python scripts/bench_cache.py --quick    # a few seconds: short prompts, gen 32, block 8
    python scripts/bench_cache.py --device cuda --d-model 1024 --layers 8 --batch 4 \
        --prompt-lengths 512 --gen 64 --block 8   # the speed-target setting on a GPU
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lm_eval_infogain.models.llada import LLaDAModel, llada_config  # noqa: E402
from lm_eval_infogain.models.native import NativeAdapter  # noqa: E402
from lm_eval_infogain.sampling import DecodingConfig, generate  # noqa: E402

MODES = ("none", "prefix", "dual")


def build_adapter(args: argparse.Namespace) -> NativeAdapter:
    """A random LLaDA-shaped model; the top three ids play mask / pad / eos."""
    torch.manual_seed(0)
    config = llada_config(
        d_model=args.d_model,
        n_heads=args.heads,
        n_layers=args.layers,
        vocab_size=args.vocab,
        mlp_hidden_size=args.d_model * 2,
        max_sequence_length=max(args.prompt_lengths) + args.gen + 8,
    )
    model = LLaDAModel(config).to(device=args.device, dtype=getattr(torch, args.dtype))
    v = args.vocab
    return NativeAdapter(model, family="llada", mask_id=v - 1, pad_id=v - 2, eos_ids=[v - 3])


def run_case(adapter: NativeAdapter, prompts: list[list[int]], args: argparse.Namespace, mode: str) -> tuple[int, float]:
    config = DecodingConfig(
        sampler="info_gain",
        gen_length=args.gen,
        block_size=args.block,
        candidate_number=args.candidates,
        cache=mode,
        seed=0,
    )
    best = float("inf")
    tokens = 0
    for _ in range(args.repeats):
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = generate(adapter, prompts, config)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
        tokens = sum(s.tokens_forwarded for s in out.stats)
    return tokens, best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short run: prompts 64/128, gen 32, block 8")
    parser.add_argument("--prompt-lengths", type=int, nargs="+", default=[128, 512, 1024])
    parser.add_argument("--gen", type=int, default=256)
    parser.add_argument("--block", type=int, default=32)
    parser.add_argument("--candidates", type=int, default=8)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--d-model", type=int, default=128)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=1, help="best of this many runs per case")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args(argv)
    if args.quick:
        args.prompt_lengths, args.gen, args.block = [64, 128], 32, 8
    torch.set_num_threads(args.threads)

    adapter = build_adapter(args)
    gen = torch.Generator().manual_seed(1)
    print(
        f"LLaDA-shaped random model: {args.layers} layers, d_model {args.d_model}, vocab {args.vocab}, "
        f"{args.device}/{args.dtype}; Info-Gain N={args.candidates}, gen {args.gen}, block {args.block}, "
        f"batch {args.batch}"
    )
    print(f"{'prompt':>6} {'cache':>6} {'tokens_forwarded':>17} {'wall_s':>8} {'speedup':>8} {'tokens_ratio':>12}")
    for length in args.prompt_lengths:
        prompts = torch.randint(0, args.vocab - 3, (args.batch, length), generator=gen).tolist()
        run_case(adapter, [prompts[0][:16]], argparse.Namespace(**{**vars(args), "gen": args.block, "repeats": 1}), "none")  # warm-up
        results = {mode: run_case(adapter, prompts, args, mode) for mode in MODES}
        base_tokens, base_wall = results["none"]
        for mode in MODES:
            tokens, wall = results[mode]
            print(f"{length:>6} {mode:>6} {tokens:>17} {wall:>8.2f} {base_wall / wall:>7.2f}x {base_tokens / tokens:>11.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
