#!/usr/bin/env python
"""Train the bundled demo model (one tiny LLaDA-shaped MDM for the Sudoku and addition demos).

    python scripts/train_demo_model.py                       # the shipped recipe: ~15 min on 2 CPU cores
    python scripts/train_demo_model.py --device cuda         # same recipe on a GPU (about a minute)
    python scripts/train_demo_model.py --steps 200 --out /tmp/demo   # a quick smoke run

Writes a complete LLaDA-format folder (config.json, model.safetensors, tokenizer files,
generation_config.json, training_log.json; the model card README.md is kept) that ``load_mdm``
reads like a real checkpoint. Everything is seeded; CPU reruns with the same thread count on the
same machine give the same weights.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _quick_eval(model, device: str, n_sudoku: int, n_addition: int) -> dict[str, float]:
    """Greedy one-token-per-step decoding with confidence vs random order (a sanity number for the
    log; the model card's accuracies come from the real engine via scripts/demo_accuracy.py)."""
    import torch

    from lm_eval_infogain.demo import datasets as ds
    from lm_eval_infogain.demo.puzzles import is_valid_solution
    from lm_eval_infogain.demo.tokenizer import BOS, MASK, TOKEN_ID
    from lm_eval_infogain.demo.training import encode_addition_prompt, encode_sudoku_prompt

    bos, mask = TOKEN_ID[BOS], TOKEN_ID[MASK]
    model = model.to(device).eval()

    @torch.no_grad()
    def decode(prompts: list[list[int]], length: int, order: str) -> torch.Tensor:
        g = torch.Generator().manual_seed(0)
        p = torch.tensor([[bos] + q for q in prompts])
        x = torch.cat([p, torch.full((len(prompts), length), mask)], 1).to(device)
        n, rows = p.shape[1], torch.arange(len(prompts), device=device)
        for _ in range(length):
            probs = model(x)[:, n:].float().softmax(-1)
            conf, tok = probs.max(-1)
            score = conf if order == "confidence" else torch.rand(conf.shape, generator=g).to(device)
            score = torch.where(x[:, n:] == mask, score, -1.0)
            pos = score.argmax(1)
            x[rows, n + pos] = tok[rows, pos]
        return x[:, n:].cpu()

    out: dict[str, float] = {}
    sudoku = ds.read_jsonl(ds.SUDOKU_FILE, n_sudoku)
    prompts = [encode_sudoku_prompt([int(c) for c in r["puzzle"]]) for r in sudoku]
    for order in ("confidence", "random"):
        grids = decode(prompts, 81, order)
        ok = [is_valid_solution(gr.tolist(), [int(c) for c in r["puzzle"]]) for gr, r in zip(grids, sudoku)]
        out[f"sudoku_{order}"] = sum(ok) / len(ok)
    addition = ds.read_jsonl(ds.ADDITION_FILE, n_addition)
    prompts = [encode_addition_prompt(r["a"], r["b"]) for r in addition]
    for order in ("confidence", "random"):
        sums = decode(prompts, 9, order)
        ok = [int("".join(map(str, s.tolist()))) == r["sum"] for s, r in zip(sums, addition)]
        out[f"addition_{order}"] = sum(ok) / len(ok)
    model.to("cpu")
    return {k: round(v, 4) for k, v in out.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "lm_eval_infogain" / "demo" / "model")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=None, help="override the recipe's step count")
    parser.add_argument(
        "--threads", type=int, default=2, help="CPU threads (the recipe's budget is two cores; reruns with the "
        "same thread count on the same machine give the same weights)",
    )
    parser.add_argument("--eval-sudoku", type=int, default=100, help="test puzzles for the quick check (0: skip)")
    parser.add_argument("--eval-addition", type=int, default=500)
    args = parser.parse_args(argv)

    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    import torch

    from lm_eval_infogain.demo.tokenizer import BOS, EOS, TOKEN_ID, save_tokenizer
    from lm_eval_infogain.demo.training import TrainConfig, model_config, train
    from lm_eval_infogain.models.llada import save_llada_checkpoint

    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    cfg = TrainConfig()
    if args.steps is not None:
        cfg.steps = args.steps
    t0 = time.time()
    model, log = train(cfg, device=args.device, log=lambda line: print(line, flush=True))
    log["device"] = args.device if args.device == "cpu" else torch.cuda.get_device_name(0)
    log["threads"] = args.threads
    log["torch"] = torch.__version__
    save_llada_checkpoint(model, model_config(cfg), args.out)
    save_tokenizer(args.out)
    generation = {"bos_token_id": TOKEN_ID[BOS], "eos_token_id": TOKEN_ID[EOS], "pad_token_id": TOKEN_ID[EOS]}
    (args.out / "generation_config.json").write_text(json.dumps(generation, indent=2, sort_keys=True) + "\n")
    if args.eval_sudoku:
        try:
            log["quick_eval"] = _quick_eval(model, args.device, args.eval_sudoku, args.eval_addition)
            print("quick eval:", log["quick_eval"], flush=True)
        except Exception as exc:  # the weights are saved already; a failed check must not lose them
            log["quick_eval_error"] = repr(exc)
            print("quick eval failed:", repr(exc), flush=True)
    log["total_seconds"] = round(time.time() - t0, 1)
    (args.out / "training_log.json").write_text(json.dumps(log, indent=2, sort_keys=True) + "\n")
    print(f"saved to {args.out} ({log['total_seconds']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
