"""Speed and memory benchmark of the samplers: ``lm-eval-infogain bench`` / ``python scripts/bench.py``.

Measures, per case (model × sampler × batch size × cache mode): wall time, time spent inside model
forwards, generated tokens/s, model calls, rows and tokens forwarded, peak memory. Warm-up runs are
excluded, repeats are interleaved across cases (so drift on a noisy machine hits every case alike)
and medians are reported. On CUDA every timer synchronises the device.

The printed ratios are the project's speed targets, each measured side by side in one run:

- overhead  = wall time / time inside model forwards (Info-Gain, N = 8, K = 1, B = 16);
- cache     = wall time of ``none`` / wall time of ``prefix`` and ``dual`` (512-token prompts);
- cost      = Info-Gain wall time / confidence wall time, next to the ratio of rows forwarded.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch

from .models.base import CacheState, MDMAdapter
from .sampling import DecodingConfig, generate

__all__ = ["TimedAdapter", "BenchCase", "run_cases", "main"]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class TimedAdapter(MDMAdapter):
    """Wraps an adapter and accumulates the time spent inside its forwards (device-synchronised)."""

    def __init__(self, inner: MDMAdapter):
        self.inner = inner
        self.forward_seconds = 0.0
        for name in ("mask_id", "pad_id", "eos_ids", "penalized_ids", "vocab_size", "cache_modes", "alignment",
                     "max_length"):
            setattr(self, name, getattr(inner, name))

    @property
    def device(self) -> torch.device:
        return self.inner.device

    def _timed(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        _sync(self.device)
        start = time.perf_counter()
        result = func(*args, **kwargs)
        _sync(self.device)
        self.forward_seconds += time.perf_counter() - start
        return result

    def logits(self, input_ids, attention_mask=None, *, window=None):
        return self._timed(self.inner.logits, input_ids, attention_mask, window=window)

    def open_cache(self, input_ids, attention_mask, *, mode, block):
        return self._timed(self.inner.open_cache, input_ids, attention_mask, mode=mode, block=block)

    def cached_logits(self, state: CacheState, input_ids, *, prompt_index=None, group_size=1):
        return self._timed(self.inner.cached_logits, state, input_ids, prompt_index=prompt_index,
                           group_size=group_size)


# ---------------------------------------------------------------------------------------------- models
def bert_adapter(layers: int, width: int, vocab: int = 1000, device: str = "cpu",
                 dtype: torch.dtype = torch.float32) -> MDMAdapter:
    """A randomly initialised BERT-style masked LM (no download) behind the generic masked-LM adapter.

    The vocabulary is small by default (1000) so that the ratio measures the sampler's bookkeeping
    rather than the vocabulary-sized entropy maths, which grows with the LM head at the same rate;
    pass ``vocab=30522`` for bert-base's vocabulary.
    """
    from transformers import BertConfig, BertForMaskedLM

    from .models.hf import HFModelAdapter

    torch.manual_seed(0)
    config = BertConfig(vocab_size=vocab, hidden_size=width, num_hidden_layers=layers,
                        num_attention_heads=max(1, width // 64), intermediate_size=4 * width,
                        max_position_embeddings=1024)
    model = BertForMaskedLM(config).to(device=device, dtype=dtype).eval()
    mask, eos = (103, 102) if vocab > 200 else (vocab - 1, vocab - 2)  # bert-base's [MASK]/[SEP] ids
    return HFModelAdapter(model, mask_id=mask, pad_id=0, eos_ids=(eos,), max_length=1024)


def llada_adapter(layers: int = 4, width: int = 256, heads: int = 4, vocab: int = 4096, device: str = "cpu",
                  dtype: torch.dtype = torch.float32, mlp: int | None = None) -> MDMAdapter:
    """A randomly initialised LLaDA-shaped model (the real LLaDA code path, random weights)."""
    from .models.llada import LLaDAModel, llada_config
    from .models.native import NativeAdapter

    config = llada_config(d_model=width, n_heads=heads, n_kv_heads=heads, n_layers=layers,
                          mlp_hidden_size=mlp or 4 * width, vocab_size=vocab, embedding_size=vocab,
                          rope_theta=500000.0, rms_norm_eps=1e-5, weight_tying=False)
    torch.manual_seed(0)
    with torch.device(device):
        model = LLaDAModel(config).to(dtype=dtype).eval()
    return NativeAdapter(model, family="llada", mask_id=vocab - 1, pad_id=vocab - 2, eos_ids=(vocab - 2,))


# ---------------------------------------------------------------------------------------------- cases
@dataclass
class BenchCase:
    """One measured configuration; ``adapter`` is built once and shared by cases that name it."""

    label: str
    model: str
    batch_size: int
    prompt_length: int
    config: DecodingConfig
    samples: list[dict[str, float]] = field(default_factory=list)


def _prompts(batch_size: int, prompt_length: int, vocab: int, seed: int = 0) -> list[list[int]]:
    generator = torch.Generator().manual_seed(seed)
    # Ordinary ids only: stay clear of the special tokens at both ends of the vocabulary.
    margin = min(200, vocab // 4)
    ids = torch.randint(margin, vocab - margin, (batch_size, prompt_length), generator=generator)
    return ids.tolist()


def _measure(adapter: MDMAdapter, case: BenchCase) -> dict[str, float]:
    timed = TimedAdapter(adapter)
    device = adapter.device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    prompts = _prompts(case.batch_size, case.prompt_length, adapter.vocab_size)
    _sync(device)
    start = time.perf_counter()
    out = generate(timed, prompts, case.config)
    _sync(device)
    wall = time.perf_counter() - start
    stats = out.stats
    generated = sum(s.generated_tokens for s in stats)
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else _cpu_peak_rss()
    return {
        "wall_s": wall,
        "forward_s": timed.forward_seconds,
        "tokens_per_s": generated / wall if wall > 0 else float("nan"),
        "model_calls": max(s.model_calls for s in stats),
        "rows_forwarded": sum(s.rows_forwarded for s in stats),
        "tokens_forwarded": sum(s.tokens_forwarded for s in stats),
        "peak_memory_bytes": float(peak),
    }


def _cpu_peak_rss() -> int:
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    except (ImportError, OSError):  # pragma: no cover - non-POSIX
        return 0


def run_cases(adapters: dict[str, MDMAdapter], cases: Sequence[BenchCase], repeats: int = 3,
              warmup: int = 1) -> list[dict[str, Any]]:
    """Warm up every case, then run ``repeats`` interleaved rounds; return per-case medians."""
    with torch.inference_mode():
        for _ in range(warmup):
            for case in cases:
                _measure(adapters[case.model], case)
        for _ in range(repeats):
            for case in cases:
                case.samples.append(_measure(adapters[case.model], case))
    rows = []
    for case in cases:
        median = {key: statistics.median(s[key] for s in case.samples) for key in case.samples[0]}
        median["overhead"] = median["wall_s"] / median["forward_s"] if median["forward_s"] else float("nan")
        rows.append({"label": case.label, "model": case.model, "batch_size": case.batch_size,
                     "prompt_length": case.prompt_length, "sampler": case.config.sampler,
                     "cache": case.config.cache, "repeats": len(case.samples), **median})
    return rows


def _config(sampler: str, gen_length: int, block: int, cache: str = "none", **extra: Any) -> DecodingConfig:
    return DecodingConfig(sampler=sampler, gen_length=gen_length, steps=gen_length, block_size=block,
                          cache=cache, candidate_number=8, threshold=0.8, **extra)


def target_suite(device: str, dtype: torch.dtype, quick: bool) -> tuple[dict[str, MDMAdapter], list[BenchCase]]:
    """The cases behind the printed target ratios (see the module docstring)."""
    adapters = {
        "bert-4x256": bert_adapter(4, 256, device=device, dtype=dtype),
        "bert-2x64": bert_adapter(2, 64, device=device, dtype=dtype),
        "llada-4x256": llada_adapter(4, 256, device=device, dtype=dtype),
    }
    cases: list[BenchCase] = []
    for model in ("bert-4x256", "bert-2x64"):
        for sampler in ("info_gain", "confidence"):
            cases.append(BenchCase(f"overhead/{model}/{sampler}", model, 16, 48, _config(sampler, 32, 8)))
    prompt = 256 if quick else 512
    for cache in ("none", "prefix", "dual"):
        cases.append(BenchCase(f"cache/{cache}", "llada-4x256", 4, prompt, _config("info_gain", 64, 8, cache)))
    return adapters, cases


def grid_suite(adapter: MDMAdapter, name: str, samplers: Sequence[str], batch_sizes: Sequence[int],
               caches: Sequence[str], prompt_length: int, gen_length: int, block: int) -> list[BenchCase]:
    """Every sampler × batch size × cache mode on one model."""
    return [
        BenchCase(f"grid/{name}/{sampler}/B{b}/{cache}", name, b, prompt_length, _config(sampler, gen_length, block, cache))
        for sampler in samplers for b in batch_sizes for cache in caches
        if cache == "none" or cache in adapter.cache_modes
    ]


def ratio_lines(rows: list[dict[str, Any]]) -> list[str]:
    """The target ratios, from rows measured in the same run."""
    by_label = {row["label"]: row for row in rows}
    lines = []
    for model, target in (("bert-4x256", 1.05), ("bert-2x64", 1.25)):
        ig = by_label.get(f"overhead/{model}/info_gain")
        conf = by_label.get(f"overhead/{model}/confidence")
        if ig:
            verdict = "ok" if ig["overhead"] <= target else "MISSED"
            lines.append(f"overhead {model}: info_gain wall/forward = {ig['overhead']:.3f} (target ≤ {target}) {verdict}")
        if ig and conf:
            lines.append(
                f"cost {model}: info_gain/confidence wall = {ig['wall_s'] / conf['wall_s']:.2f}x, "
                f"rows forwarded = {ig['rows_forwarded'] / conf['rows_forwarded']:.2f}x (floor)"
            )
    none = by_label.get("cache/none")
    for cache, target in (("prefix", 3.0), ("dual", 5.0)):
        row = by_label.get(f"cache/{cache}")
        if none and row:
            speedup = none["wall_s"] / row["wall_s"]
            verdict = "ok" if speedup >= target else "MISSED"
            lines.append(
                f"cache {cache}: none/{cache} wall = {speedup:.2f}x (target ≥ {target}x) {verdict}; "
                f"tokens forwarded {none['tokens_forwarded'] / row['tokens_forwarded']:.1f}x fewer"
            )
    return lines


def format_table(rows: list[dict[str, Any]]) -> str:
    header = ("case", "wall s", "fwd s", "wall/fwd", "tok/s", "calls", "rows", "tokens", "peak MB")
    lines = [" | ".join(header), " | ".join("---" for _ in header)]
    for r in rows:
        lines.append(" | ".join([
            r["label"], f"{r['wall_s']:.3f}", f"{r['forward_s']:.3f}", f"{r['overhead']:.3f}",
            f"{r['tokens_per_s']:.1f}", f"{r['model_calls']:.0f}", f"{r['rows_forwarded']:.0f}",
            f"{r['tokens_forwarded']:.0f}", f"{r['peak_memory_bytes'] / 2**20:.0f}",
        ]))
    return "\n".join(lines)


def _environment(device: str, dtype: torch.dtype) -> dict[str, Any]:
    info: dict[str, Any] = {"device": device, "dtype": str(dtype), "torch": torch.__version__,
                            "python": platform.python_version(), "threads": torch.get_num_threads()}
    if device.startswith("cuda") and torch.cuda.is_available():
        info["device_name"] = torch.cuda.get_device_name(device)
    else:
        info["device_name"] = platform.processor() or platform.machine()
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lm-eval-infogain bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="smaller cache case (256-token prompts)")
    parser.add_argument("--pretrained", help="benchmark this model (load_mdm) on a sampler × B × cache grid")
    parser.add_argument("--llada-shape", help="random LLaDA of LAYERSxWIDTH[xHEADS[xMLP[xVOCAB]]], e.g. 32x4096x32x12288x126464")
    parser.add_argument("--samplers", default="confidence,info_gain")
    parser.add_argument("--batch-sizes", default="1,4,16")
    parser.add_argument("--caches", default="none,prefix,dual")
    parser.add_argument("--prompt-length", type=int, default=256)
    parser.add_argument("--gen-length", type=int, default=256)
    parser.add_argument("--block-size", type=int, default=32)
    parser.add_argument("--json", help="write the rows and environment here")
    args = parser.parse_args(argv)

    dtype = getattr(torch, args.dtype)
    if args.pretrained or args.llada_shape:
        if args.pretrained:
            from .models.loader import load_mdm

            adapter, name = load_mdm(args.pretrained, device=args.device, dtype=dtype), args.pretrained
        else:
            dims = [int(v) for v in args.llada_shape.lower().split("x")]
            layers, width = dims[0], dims[1]
            heads = dims[2] if len(dims) > 2 else max(1, width // 128)
            mlp = dims[3] if len(dims) > 3 else None
            vocab = dims[4] if len(dims) > 4 else 126464
            adapter = llada_adapter(layers, width, heads, vocab, device=args.device, dtype=dtype, mlp=mlp)
            name = f"llada-{args.llada_shape}"
        adapters = {name: adapter}
        cases = grid_suite(adapter, name, args.samplers.split(","), [int(b) for b in args.batch_sizes.split(",")],
                           args.caches.split(","), args.prompt_length, args.gen_length, args.block_size)
    else:
        adapters, cases = target_suite(args.device, dtype, args.quick)
    rows = run_cases(adapters, cases, repeats=args.repeats, warmup=args.warmup)
    env = _environment(args.device, dtype)
    print(f"# bench on {env['device_name']} ({env['device']}, {env['dtype']}, torch {env['torch']}); "
          f"medians of {args.repeats} interleaved repeats after {args.warmup} warm-up")
    print(format_table(rows))
    for line in ratio_lines(rows):
        print(line)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"environment": env, "rows": rows, "ratios": ratio_lines(rows)}, handle, indent=2)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
