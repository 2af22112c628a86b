"""Speed and memory benchmark of the samplers: ``lm-eval-infogain bench`` / ``python scripts/bench.py``.

Measures, per case (model × sampler × batch size × cache mode): wall time, time spent inside model
forwards, generated tokens/s, model calls, rows and tokens forwarded, peak memory. Warm-up runs are
excluded, repeats are interleaved across cases (so drift on a noisy machine hits every case alike)
and medians are reported. On CUDA every timer synchronises the device.

The printed ratios are the project's speed targets, each measured side by side in one run:

- overhead  = wall time / time inside model forwards (Info-Gain, N = 8, K = 1, B = 16);
- cache     = wall time of ``none`` / wall time of ``prefix`` and ``dual`` (512-token prompts);
- cost      = Info-Gain wall time / confidence wall time, next to the ratio of rows forwarded;
- reference = with ``--reference-sampler FILE`` (a Python file defining the paper repository's
  standalone ``InfoGainSampler``; it is not a dependency), that sampler run prompt by prompt against
  ours batched (16 prompts) and prompt by prompt, on the same random model, prompts and settings:
  wall time, rows forwarded and overhead, side by side.

Rows forwarded are shown per sample next to their floor: the distinct candidate actions the
lookahead had to score plus the state forwards (block entries, refreshes after a commit without
lookahead) — what any implementation of the same decisions must run through the model.
"""

from __future__ import annotations

import argparse
import importlib.util
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
    """One measured configuration; ``adapter`` is built once and shared by cases that name it.

    ``mode``: ``batched`` (all prompts in one ``generate`` call), ``each`` (one call per prompt) or
    ``reference`` (the reference sampler class ``reference``, prompt by prompt, same model).
    """

    label: str
    model: str
    batch_size: int
    prompt_length: int
    config: DecodingConfig
    samples: list[dict[str, float]] = field(default_factory=list)
    mode: str = "batched"
    reference: Any = None


def _prompts(batch_size: int, prompt_length: int, vocab: int, seed: int = 0) -> list[list[int]]:
    generator = torch.Generator().manual_seed(seed)
    # Ordinary ids only: stay clear of the special tokens at both ends of the vocabulary.
    margin = min(200, vocab // 4)
    ids = torch.randint(margin, vocab - margin, (batch_size, prompt_length), generator=generator)
    return ids.tolist()


class CountingModel(torch.nn.Module):
    """An HF-style model for the reference sampler: counts calls and rows, times its forwards."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model
        self.calls = self.rows = self.tokens = 0
        self.seconds = 0.0

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> Any:
        device = input_ids.device
        _sync(device)
        start = time.perf_counter()
        out = self.model(input_ids=input_ids, attention_mask=attention_mask)
        _sync(device)
        self.seconds += time.perf_counter() - start
        self.calls += 1
        self.rows += input_ids.shape[0]
        self.tokens += input_ids.numel()
        return out


def load_reference_sampler(path: str) -> type:
    """The ``InfoGainSampler`` class defined in the Python file ``path`` (the paper's standalone one)."""
    spec = importlib.util.spec_from_file_location("reference_info_gain_sampler", path)
    if spec is None or spec.loader is None:
        raise ValueError(f"{path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "InfoGainSampler"):
        raise ValueError(f"{path} defines no InfoGainSampler class")
    return module.InfoGainSampler


def _run_reference(adapter: MDMAdapter, case: BenchCase, prompts: list[list[int]]) -> tuple[dict[str, float], int]:
    model = CountingModel(getattr(adapter, "model"))
    sampler = case.reference(model, None, mask_id=adapter.mask_id)
    cfg = case.config
    torch.manual_seed(cfg.seed)  # the reference draws from the global generator
    device = adapter.device
    _sync(device)
    start = time.perf_counter()
    for prompt in prompts:
        sampler.sample(torch.tensor([prompt], device=device), max_new_tokens=cfg.gen_length,
                       steps=cfg.steps or cfg.gen_length, block_size=cfg.block_size,
                       candidate_number=cfg.candidate_number, position_temperature=cfg.position_temperature,
                       threshold=cfg.threshold or 0.0, temperature=cfg.temperature, variant=cfg.sampler)
    _sync(device)
    wall = time.perf_counter() - start
    stats = {"wall_s": wall, "forward_s": model.seconds, "model_calls": float(model.calls),
             "rows_forwarded": float(model.rows), "tokens_forwarded": float(model.tokens)}
    return stats, cfg.gen_length * len(prompts)


def _measure(adapter: MDMAdapter, case: BenchCase) -> dict[str, float]:
    device = adapter.device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    prompts = _prompts(case.batch_size, case.prompt_length, adapter.vocab_size)
    if case.mode == "reference":
        result, generated = _run_reference(adapter, case, prompts)
    else:
        timed = TimedAdapter(adapter)
        batches = [prompts] if case.mode == "batched" else [[p] for p in prompts]
        _sync(device)
        start = time.perf_counter()
        stats = [s for batch in batches for s in generate(timed, batch, case.config).stats]
        _sync(device)
        wall = time.perf_counter() - start
        generated = sum(s.generated_tokens for s in stats)
        result = {
            "wall_s": wall,
            "forward_s": timed.forward_seconds,
            "model_calls": float(max(s.model_calls for s in stats) if case.mode == "batched"
                                 else sum(s.model_calls for s in stats)),
            "rows_forwarded": float(sum(s.rows_forwarded for s in stats)),
            "tokens_forwarded": float(sum(s.tokens_forwarded for s in stats)),
        }
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else _cpu_peak_rss()
    wall = result["wall_s"]
    return {**result, "tokens_per_s": generated / wall if wall > 0 else float("nan"), "peak_memory_bytes": float(peak)}


def rows_floor(adapter: MDMAdapter, case: BenchCase) -> float | None:
    """Rows a run of ``case`` must forward: state forwards plus the distinct actions it scored.

    Measured in a separate, untimed run (the trace syncs every step); ``None`` for the reference.
    """
    if case.mode == "reference":
        return None
    prompts = _prompts(case.batch_size, case.prompt_length, adapter.vocab_size)
    batches = [prompts] if case.mode == "batched" else [[p] for p in prompts]
    total = 0
    for batch in batches:
        distinct: list[int] = []

        def trace(record: dict[str, Any]) -> None:
            need = record.get("need_rows")
            if need:
                distinct.append(int(record["valid"][need].sum()))

        out = generate(adapter, batch, case.config, trace=trace)
        total += sum(rows for (rows, _), kind in zip(out.calls, out.call_kinds) if kind != "lookahead")
        total += sum(distinct)
    return float(total)


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
        floors = [rows_floor(adapters[case.model], case) for case in cases]
    rows = []
    for case, floor in zip(cases, floors):
        median = {key: statistics.median(s[key] for s in case.samples) for key in case.samples[0]}
        median["overhead"] = median["wall_s"] / median["forward_s"] if median["forward_s"] else float("nan")
        rows.append({"label": case.label, "model": case.model, "batch_size": case.batch_size,
                     "prompt_length": case.prompt_length, "sampler": case.config.sampler,
                     "cache": case.config.cache, "mode": case.mode, "repeats": len(case.samples),
                     "rows_floor": floor, **median})
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


#: The setting of the side-by-side comparison with the paper's standalone sampler.
REFERENCE_MODEL = "bert-4x256-v512"


def reference_suite(device: str, dtype: torch.dtype, reference: type, *, layers: int = 4, width: int = 256,
                    prompts: int = 16, prompt_length: int = 48, gen_length: int = 32,
                    block: int = 8) -> tuple[dict[str, MDMAdapter], list[BenchCase]]:
    """16 prompts of 48 tokens, 32 new tokens, block 8, K = 1, N = 8, position temperature 0.2,
    threshold 0.8, greedy tokens, no EOS handling (the reference has none), random BERT 4×256 with a
    512-token vocabulary: ours batched and prompt by prompt, and the reference prompt by prompt."""
    adapters = {REFERENCE_MODEL: bert_adapter(layers, width, vocab=512, device=device, dtype=dtype)}
    cfg = DecodingConfig(sampler="info_gain", gen_length=gen_length, steps=gen_length, block_size=block,
                         candidate_number=8, position_temperature=0.2, threshold=0.8, temperature=0.0,
                         eos_penalty=0.0, eos_fill=False)
    cases = [
        BenchCase(f"reference/ours/B{prompts}", REFERENCE_MODEL, prompts, prompt_length, cfg),
        BenchCase("reference/ours/B1", REFERENCE_MODEL, prompts, prompt_length, cfg, mode="each"),
        BenchCase("reference/paper", REFERENCE_MODEL, prompts, prompt_length, cfg, mode="reference", reference=reference),
    ]
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
    batched = [row for label, row in by_label.items() if label.startswith("reference/ours/B") and row["mode"] == "batched"]
    ours = batched[0] if batched else None
    each, paper = by_label.get("reference/ours/B1"), by_label.get("reference/paper")
    if ours and paper:
        n = ours["batch_size"]
        ratio = ours["rows_forwarded"] / paper["rows_forwarded"]
        lines.append(
            f"reference rows: ours {ours['rows_forwarded'] / n:.1f}/sample (floor {ours['rows_floor'] / n:.1f}) vs "
            f"paper {paper['rows_forwarded'] / n:.1f}/sample = {ratio:.3f}x (target ≤ 1.05) {'ok' if ratio <= 1.05 else 'MISSED'}"
        )
        speed = paper["wall_s"] / ours["wall_s"]
        lines.append(f"reference wall, {n} prompts batched: paper/ours = {speed:.2f}x faster (target ≥ 1.1) "
                     f"{'ok' if speed >= 1.1 else 'MISSED'}")
        lines.append(f"reference overhead (wall/forward): ours {ours['overhead']:.3f}, paper {paper['overhead']:.3f}")
    if each and paper:
        speed = paper["wall_s"] / each["wall_s"]
        lines.append(f"reference wall, prompt by prompt: paper/ours = {speed:.2f}x (target ≥ 1.0, not slower) "
                     f"{'ok' if speed >= 1.0 else 'MISSED'}")
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
    header = ("case", "wall s", "fwd s", "wall/fwd", "tok/s", "calls", "rows", "rows/sample", "floor/sample",
              "tokens", "peak MB")
    lines = [" | ".join(header), " | ".join("---" for _ in header)]
    for r in rows:
        n = r["batch_size"]
        floor = "–" if r.get("rows_floor") is None else f"{r['rows_floor'] / n:.1f}"
        lines.append(" | ".join([
            r["label"], f"{r['wall_s']:.3f}", f"{r['forward_s']:.3f}", f"{r['overhead']:.3f}",
            f"{r['tokens_per_s']:.1f}", f"{r['model_calls']:.0f}", f"{r['rows_forwarded']:.0f}",
            f"{r['rows_forwarded'] / n:.1f}", floor, f"{r['tokens_forwarded']:.0f}",
            f"{r['peak_memory_bytes'] / 2**20:.0f}",
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


def _integer(text: str, least: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"{value} must be ≥ {least}")
    return value


def _positive(text: str) -> int:
    return _integer(text, 1)


def _non_negative(text: str) -> int:
    return _integer(text, 0)


def _positive_list(text: str) -> list[int]:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise argparse.ArgumentTypeError("needs at least one value")
    return [_positive(p) for p in parts]


def _llada_shape(text: str) -> list[int]:
    parts = text.lower().split("x")
    if not 2 <= len(parts) <= 5:
        raise argparse.ArgumentTypeError(f"{text!r}: expected LAYERSxWIDTH[xHEADS[xMLP[xVOCAB]]]")
    try:
        dims = [_positive(p) for p in parts]
    except argparse.ArgumentTypeError as err:
        raise argparse.ArgumentTypeError(f"{text!r}: {err}; expected LAYERSxWIDTH[xHEADS[xMLP[xVOCAB]]]") from None
    if len(dims) > 2 and dims[1] % dims[2]:
        raise argparse.ArgumentTypeError(f"{text!r}: width {dims[1]} is not a multiple of {dims[2]} heads")
    return dims


def _choices_list(allowed: Sequence[str]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        values = [p.strip() for p in text.split(",") if p.strip()]
        bad = [v for v in values if v not in allowed]
        if not values or bad:
            raise argparse.ArgumentTypeError(f"{text!r}: choose from {', '.join(allowed)}")
        return values

    return parse


def main(argv: list[str] | None = None) -> int:
    from .sampling.config import CACHE_MODES, SAMPLER_NAMES

    parser = argparse.ArgumentParser(prog="lm-eval-infogain bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    parser.add_argument("--repeats", type=_positive, default=3)
    parser.add_argument("--warmup", type=_non_negative, default=1)
    parser.add_argument("--quick", action="store_true", help="smaller cache case (256-token prompts)")
    parser.add_argument("--reference-sampler", metavar="FILE",
                        help="also compare with the InfoGainSampler class defined in FILE (the paper's standalone one)")
    parser.add_argument("--pretrained", help="benchmark this model (load_mdm) on a sampler × B × cache grid")
    parser.add_argument("--llada-shape", type=_llada_shape,
                        help="random LLaDA of LAYERSxWIDTH[xHEADS[xMLP[xVOCAB]]], e.g. 32x4096x32x12288x126464")
    parser.add_argument("--samplers", type=_choices_list(SAMPLER_NAMES), default="confidence,info_gain")
    parser.add_argument("--batch-sizes", type=_positive_list, default="1,4,16")
    parser.add_argument("--caches", type=_choices_list(CACHE_MODES), default="none,prefix,dual")
    parser.add_argument("--prompt-length", type=_positive, default=256)
    parser.add_argument("--gen-length", type=_positive, default=256)
    parser.add_argument("--block-size", type=_positive, default=32)
    parser.add_argument("--only", type=_choices_list(("overhead", "cache", "reference")),
                        help="run only these groups of the target cases (comma-separated)")
    parser.add_argument("--json", help="write the rows and environment here")
    args = parser.parse_args(argv)
    if args.only and "reference" in args.only and not args.reference_sampler:
        parser.error("--only reference needs --reference-sampler FILE")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: CUDA is not available here")
    reference = None
    if args.reference_sampler:
        try:
            reference = load_reference_sampler(args.reference_sampler)
        except (OSError, ValueError, SyntaxError, ImportError) as err:
            parser.error(f"--reference-sampler: {err}")

    dtype = getattr(torch, args.dtype)
    if args.pretrained or args.llada_shape:
        if args.pretrained:
            from .models.loader import load_mdm

            adapter, name = load_mdm(args.pretrained, device=args.device, dtype=dtype), args.pretrained
        else:
            dims = args.llada_shape
            layers, width = dims[0], dims[1]
            heads = dims[2] if len(dims) > 2 else max(1, width // 128)
            mlp = dims[3] if len(dims) > 3 else None
            vocab = dims[4] if len(dims) > 4 else 126464
            adapter = llada_adapter(layers, width, heads, vocab, device=args.device, dtype=dtype, mlp=mlp)
            name = "llada-" + "x".join(map(str, dims))
        adapters = {name: adapter}
        cases = grid_suite(adapter, name, args.samplers, args.batch_sizes, args.caches, args.prompt_length,
                           args.gen_length, args.block_size)
    else:
        adapters, cases = target_suite(args.device, dtype, args.quick)
    if reference is not None:
        more_adapters, more_cases = reference_suite(args.device, dtype, reference)
        adapters.update(more_adapters)
        cases += more_cases
    if args.only:
        cases = [case for case in cases if case.label.split("/")[0] in args.only]
        adapters = {name: adapters[name] for name in {case.model for case in cases}}
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
