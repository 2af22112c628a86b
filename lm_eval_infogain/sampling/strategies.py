"""Baseline decoders: one small rule per strategy, one shared step that runs them.

A rule sees the current step of the active rows (:class:`StepView`: fp32 log-probs of the block,
entropies, chosen tokens and their confidences, which positions are masked and the scheduled K per
row) and returns which block positions to commit. Scores are ``[rows, block_len]`` tensors and the
top-K is vectorised with a per-row K, so a batch of prompts is one set of tensor ops per step.
:class:`BaselineStepper` does everything else the same way for every rule: the forward, the token
choice, the commit, the EOS fill, the cumulative entropy and the one host sync per step.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch

from ..models.base import MDMAdapter
from .blocks import BlockSlots
from .config import DecodingConfig, DecodingConfigError
from .forward import BlockForward
from .ops import sample_tokens, topk_mask, uniform
from .state import DecodeState

__all__ = [
    "StepView",
    "Rule",
    "Confidence",
    "Margin",
    "Entropy",
    "Random",
    "LeftToRight",
    "EntropyBounded",
    "FastDLLM",
    "PCSampler",
    "KLASS",
    "make_rule",
    "BaselineStepper",
    "schedule_k",
]


def schedule_k(
    masked_left: torch.Tensor, remaining_steps: int | torch.Tensor, tokens_per_step: int | None
) -> torch.Tensor:
    """Tokens to commit per row this step.

    ``ceil(m / r)`` with m masks left in the row's block and r of its planned steps left (an int for
    every row, or one per row) reproduces LLaDA's linear schedule exactly and adapts when a bypass
    or the EOS fill committed extra; an explicit ``tokens_per_step`` overrides it.
    """
    if tokens_per_step is not None:
        return masked_left.clamp(max=tokens_per_step)
    if isinstance(remaining_steps, torch.Tensor):
        r = remaining_steps.clamp(min=1)
    else:
        r = max(int(remaining_steps), 1)
    return (masked_left + r - 1) // r


@dataclass
class StepView:
    """What a rule may look at; every tensor is over the active rows and the block's positions."""

    rows: torch.Tensor  # [n] canvas rows
    logp: torch.Tensor  # [n, L, V] fp32 log-probs (after the EOS penalty)
    entropy: torch.Tensor  # [n, L]
    tokens: torch.Tensor  # [n, L] chosen token per position (argmax or sampled)
    conf: torch.Tensor  # [n, L] untempered probability of the chosen token
    masked: torch.Tensor  # [n, L] bool
    k: torch.Tensor  # [n] scheduled tokens this step
    generators: Sequence[torch.Generator]  # one per active row
    step: int

    @property
    def probs(self) -> torch.Tensor:
        return self.logp.exp()


class Rule:
    """Commit the top-K masked positions by :meth:`score`; adaptive rules override :meth:`select`."""

    name = ""
    adaptive = False

    def start_block(self, n_rows: int, block_len: int) -> None:
        """Reset per-block state (only stateful rules need it)."""

    def score(self, v: StepView) -> torch.Tensor:
        raise NotImplementedError

    def select(self, v: StepView) -> torch.Tensor:
        return topk_mask(self.score(v), v.k, v.masked)


class Confidence(Rule):
    """LLaDA's ``low_confidence`` remasking: most probable chosen tokens first."""

    name = "confidence"

    def score(self, v):
        return v.conf


class Margin(Rule):
    """Largest gap between the two most probable tokens first."""

    name = "margin"

    def score(self, v):
        top2 = v.logp.topk(2, dim=-1).values.exp()
        return top2[..., 0] - top2[..., 1]


class Entropy(Rule):
    """Lowest predictive entropy first."""

    name = "entropy"

    def score(self, v):
        return -v.entropy


class Random(Rule):
    """Uniformly random order (``uniform``), drawn from each row's own generator."""

    name = "random"

    def score(self, v):
        return uniform((v.masked.shape[1],), v.generators, v.masked.device)


class LeftToRight(Rule):
    """Leftmost masks first (autoregressive order inside the block: slots are in canvas order)."""

    name = "left_to_right"

    def score(self, v):
        L = v.masked.shape[1]
        return -torch.arange(L, device=v.masked.device, dtype=torch.float32).expand(v.masked.shape[0], L)


class EntropyBounded(Rule):
    """EB-sampler (Ben-Hamu et al., 2025): the largest low-entropy prefix U with Σ_U H − max_U H ≤ γ."""

    name = "eb"
    adaptive = True

    def __init__(self, gamma: float):
        self.gamma = gamma

    def select(self, v):
        h = torch.where(v.masked, v.entropy, torch.full_like(v.entropy, 1e30))
        h_sorted = h.sort(dim=-1, stable=True).values
        before = h_sorted.cumsum(-1) - h_sorted  # Σ_U H − max_U H for U = the j+1 smallest
        n_masked = v.masked.sum(-1, keepdim=True)
        rank = torch.arange(h.shape[1], device=h.device)
        count = ((before <= self.gamma) & (rank < n_masked)).sum(-1).clamp(min=1)
        return topk_mask(-v.entropy, count, v.masked)


class FastDLLM(Rule):
    """Fast-dLLM parallel decoding (Wu et al., 2025): threshold or factor rule, at least one per step."""

    name = "fast_dllm"
    adaptive = True

    def __init__(self, threshold: float | None, factor: float | None):
        self.threshold, self.factor = threshold, factor

    def select(self, v):
        if self.factor is None:
            count = (v.masked & (v.conf >= self.threshold)).sum(-1)
        else:
            c = torch.where(v.masked, v.conf, torch.full_like(v.conf, -1.0)).sort(dim=-1, descending=True).values
            n = torch.arange(1, c.shape[1] + 1, device=c.device, dtype=torch.float32)
            count = (((n + 1) * (1 - c) < self.factor) & (c >= 0)).sum(-1)
        return topk_mask(v.conf, count.clamp(min=1), v.masked)


class PCSampler(Rule):
    """PC-Sampler: exp(−λ · offset in block) · min(α, −p · log f_bg(token)); uniform f_bg when no file."""

    name = "pc"

    def __init__(self, lam: float, alpha: float, log_freq: torch.Tensor):
        self.lam, self.alpha, self.log_freq = lam, alpha, log_freq

    def score(self, v):
        L = v.masked.shape[1]
        offset = torch.arange(L, device=v.masked.device, dtype=torch.float32)
        calibrated = (-v.conf * self.log_freq.to(v.conf.device)[v.tokens]).clamp(max=self.alpha)
        return torch.exp(-self.lam * offset) * calibrated


class KLASS(Rule):
    """KL-adaptive stability sampling: commit confident positions whose distribution stopped moving.

    A position is ready when its confidence is ≥ τ and KL(p_t ‖ p_{t−1}) ≤ ε held for ``history``
    consecutive steps; a step with no ready position falls back to confidence top-K (≥ 1).
    """

    name = "klass"
    adaptive = True

    def __init__(self, threshold: float, kl_threshold: float, history: int):
        self.threshold, self.kl_threshold, self.history = threshold, kl_threshold, history
        self._rows_total = 0
        self._prev: torch.Tensor | None = None
        self._stable: torch.Tensor | None = None
        self._seen: torch.Tensor | None = None

    def start_block(self, n_rows, block_len):
        self._rows_total = n_rows
        self._prev = self._stable = self._seen = None

    def select(self, v):
        if self._prev is None:
            R = self._rows_total
            self._prev = torch.zeros((R, *v.logp.shape[1:]), device=v.logp.device)
            self._stable = torch.zeros((R, v.logp.shape[1]), dtype=torch.long, device=v.logp.device)
            self._seen = torch.zeros(R, dtype=torch.bool, device=v.logp.device)
        prev, seen = self._prev[v.rows], self._seen[v.rows]
        p = v.logp.exp()
        kl = torch.where(p > 0, p * (v.logp - prev), torch.zeros_like(p)).sum(-1)
        calm = seen[:, None] & (kl <= self.kl_threshold)
        stable = torch.where(calm, self._stable[v.rows] + 1, torch.zeros_like(kl, dtype=torch.long))
        self._stable[v.rows], self._prev[v.rows], self._seen[v.rows] = stable, v.logp, True
        ready = v.masked & (v.conf >= self.threshold) & (stable >= self.history)
        fallback = topk_mask(v.conf, v.k.clamp(min=1), v.masked)
        return torch.where(ready.any(-1, keepdim=True), ready, fallback)


def _load_log_frequencies(path: str | None, vocab_size: int) -> torch.Tensor:
    """log f_bg over the vocabulary from a JSON list / {id: freq} dict or a saved 1-D tensor."""
    if path is None:
        return torch.full((vocab_size,), -math.log(max(vocab_size, 1)))
    file = Path(path)
    if not file.is_file():
        raise DecodingConfigError("pc_frequency_file", path, "must be an existing JSON or torch file")
    try:
        if file.suffix in (".pt", ".pth", ".bin"):
            freq = torch.as_tensor(torch.load(file, map_location="cpu", weights_only=True), dtype=torch.float64)
        else:
            data = json.loads(file.read_text())
            if isinstance(data, dict):
                freq = torch.zeros(vocab_size, dtype=torch.float64)
                for key, value in data.items():
                    if 0 <= int(key) < vocab_size:
                        freq[int(key)] = float(value)
            else:
                freq = torch.as_tensor([float(v) for v in data], dtype=torch.float64)
    except (ValueError, TypeError, OSError, RuntimeError) as err:
        raise DecodingConfigError("pc_frequency_file", path, f"could not be read as token frequencies ({err})")
    if freq.dim() != 1 or freq.numel() == 0 or bool((freq < 0).any()) or float(freq.sum()) <= 0:
        raise DecodingConfigError("pc_frequency_file", path, "must hold non-negative frequencies, not all zero")
    freq = torch.nn.functional.pad(freq[:vocab_size], (0, max(0, vocab_size - freq.numel())))
    freq = freq / freq.sum()
    return freq.clamp(min=1e-30).log().float()


def make_rule(config: DecodingConfig, adapter: MDMAdapter) -> Rule:
    """The baseline rule named by ``config.sampler``."""
    name = config.sampler
    simple: dict[str, Callable[[], Rule]] = {
        "confidence": Confidence,
        "margin": Margin,
        "entropy": Entropy,
        "random": Random,
        "left_to_right": LeftToRight,
        "eb": lambda: EntropyBounded(config.eb_gamma),
        "fast_dllm": lambda: FastDLLM(config.threshold, config.fast_dllm_factor),
        "klass": lambda: KLASS(config.threshold, config.klass_kl_threshold, config.klass_history),
        "pc": lambda: PCSampler(
            config.pc_lambda, config.pc_alpha, _load_log_frequencies(config.pc_frequency_file, adapter.vocab_size)
        ),
    }
    if name not in simple:
        raise ValueError(f"{name!r} is not a baseline rule")
    return simple[name]()


class BaselineStepper:
    """One denoising step of a baseline rule for every active row of the batch."""

    def __init__(self, rule: Rule, config: DecodingConfig, state: DecodeState, trace: Callable | None = None):
        self.rule, self.config, self.state, self.trace = rule, config, state, trace
        self.adaptive = rule.adaptive

    def window_end(self, slots: BlockSlots, T: int) -> int:
        """Logits beyond the block are only read to measure EOS-filled positions."""
        return T if self.state.eos_ids is not None else slots.hi

    def start_block(self, fwd: BlockForward, block_index: int, rows: list[int]) -> None:
        self.fwd, self.block_index, self.active, self.entered = fwd, block_index, rows, False
        self.rule.start_block(self.state.n_rows, fwd.slots.width)

    def step(self, step: int, remaining_steps: torch.Tensor) -> bool:
        """Run one step; returns whether any row still has masks in the block (the step's one sync)."""
        st, rows = self.state, self.active
        if not rows:
            return False
        lo = self.fwd.lo
        logits = self.fwd.current(rows) if self.entered else self.fwd.enter(rows)
        self.entered = True
        idx = torch.tensor(rows, dtype=torch.long, device=st.x.device)
        slots = self.fwd.slots.rows(idx)
        h_window = st.prep.entropies(logits)
        st.flag_nonfinite(h_window, idx, st.last_call)
        logp = st.prep.log_probs(slots.take(logits, lo))
        gens = st.generators.for_step(self.block_index, step, [st.row_prompt[r] for r in rows])
        tokens = sample_tokens(logp, self.config.temperature, gens)[:, 0]
        before = st.x[idx]
        masked = slots.masked(before, st.mask_id)
        view = StepView(
            rows=idx,
            logp=logp,
            entropy=slots.take(h_window, lo),
            tokens=tokens,
            conf=logp.gather(-1, tokens.unsqueeze(-1)).squeeze(-1).exp(),
            masked=masked,
            k=schedule_k(masked.sum(-1), remaining_steps[idx], self.config.tokens_per_step),
            generators=gens,
            step=step,
        )
        commit = self.rule.select(view) & masked
        # Safety net: a row with masks always commits at least its most confident one.
        stuck = masked.any(-1) & ~commit.any(-1)
        commit |= topk_mask(view.conf, stuck.long(), masked)
        after = st.fill(slots.put(before, tokens, commit), idx)
        st.cum_entropy[idx] += st.commit_entropy(before, after, h_window, lo)
        st.steps[idx] += 1
        st.x[idx] = after
        if self.trace is not None:
            self.trace({"block": self.block_index, "step": step, "rows": rows, "before": before,
                        "after": after.clone(), "commit": commit, "k": view.k, "slots": slots.pos})
        codes = (2 * slots.masked(after, st.mask_id).sum(-1) + st.nonfinite.long()).tolist()  # the one sync
        if any(code & 1 for code in codes):
            raise st.nonfinite_error(f"block {self.block_index}, step {step}")
        self.active = [r for r, code in zip(rows, codes) if code >> 1 > 0]
        return bool(self.active)
