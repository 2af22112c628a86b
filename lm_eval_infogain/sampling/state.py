"""Mutable decoding state shared by the engine and the strategies.

Rows are prompts × beams (``row = prompt * beam_size + beam``; beam_size is 1 except for Info-Gain
beam search), so row → prompt is a fixed host-side mapping and per-prompt statistics never need a
device sync. Beams of a prompt share its mask layout (which positions to decode, gaps, blocks).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch

from ..models.base import MDMAdapter
from .blocks import BlockSlots
from .canvas import Canvas, apply_eos_fill
from .config import DecodingConfig
from .ops import LogitPrep
from .rng import StepGenerators
from .stats import CallRecorder

__all__ = ["DecodeState", "NonFiniteLogitsError"]


class NonFiniteLogitsError(FloatingPointError):
    """The model returned NaN or ±inf logits: every choice made from them would be meaningless."""


@dataclass
class DecodeState:
    x: torch.Tensor  # [R, T]
    attn: torch.Tensor  # [R, T]
    gen_start: int
    #: ``[R, T]`` start of the gap of each position to decode, -1 elsewhere (see ``canvas.py``).
    gap_start: torch.Tensor
    mask_id: int
    beam_size: int
    row_prompt: list[int]  # host: prompt of each row
    cum_entropy: torch.Tensor  # [R] fp32, Σ entropy of committed positions at commit time
    steps: torch.Tensor  # [R] long, steps in which the row had masks
    alive: torch.Tensor  # [R] bool, beam rows that hold a real hypothesis
    eos_ids: torch.Tensor | None  # ids that trigger the EOS fill (None: fill disabled)
    fill_id: int
    prep: LogitPrep
    generators: StepGenerators
    recorder: CallRecorder
    #: 0-d bool tensor: some forward so far gave NaN/±inf logits. Set by tensor ops only, read at
    #: the step's existing host sync; the per-forward flags behind it explain the error.
    nonfinite: torch.Tensor
    #: (forward call, state rows, per-row "non-finite" flags) of every checked forward output.
    nonfinite_checks: list = field(default_factory=list)
    #: dtype of the model's logits (for the error message)
    logits_dtype: torch.dtype | None = None

    @classmethod
    def create(
        cls, adapter: MDMAdapter, canvas: Canvas, config: DecodingConfig, seeds: Sequence[int]
    ) -> "DecodeState":
        W, B = config.beam_size, canvas.x.shape[0]
        device = canvas.x.device
        eos = tuple(adapter.eos_ids)
        alive = torch.zeros(B, W, dtype=torch.bool, device=device)
        alive[:, 0] = True  # beams start as copies of one state; the others wake up on the first expansion
        return cls(
            x=canvas.x.repeat_interleave(W, 0),
            attn=canvas.attention_mask.repeat_interleave(W, 0),
            gen_start=canvas.gen_start,
            gap_start=canvas.gap_start.repeat_interleave(W, 0),
            mask_id=adapter.mask_id,
            beam_size=W,
            row_prompt=[r // W for r in range(B * W)],
            cum_entropy=torch.zeros(B * W, dtype=torch.float32, device=device),
            steps=torch.zeros(B * W, dtype=torch.long, device=device),
            alive=alive.view(-1),
            eos_ids=torch.tensor(eos, device=device) if (config.eos_fill and eos) else None,
            fill_id=eos[0] if eos else adapter.pad_id,
            prep=LogitPrep(adapter.penalized_ids, config.eos_penalty, forbidden=(adapter.mask_id,)),
            generators=StepGenerators(seeds, device),
            recorder=CallRecorder(B),
            nonfinite=torch.zeros((), dtype=torch.bool, device=device),
        )

    @property
    def n_rows(self) -> int:
        return self.x.shape[0]

    def rows_to_decode(self, slots: BlockSlots) -> list[int]:
        """Live rows with masks left in the block — one host sync, once per block."""
        todo = slots.masked(self.x, self.mask_id).any(1) & self.alive
        return [r for r, flag in enumerate(todo.tolist()) if flag]

    def fill(self, x: torch.Tensor, rows: torch.Tensor | None = None, repeat: int = 1) -> torch.Tensor:
        """The EOS fill of ``x`` (identity when disabled); ``x``'s rows are state rows ``rows``
        (all when ``None``), each repeated ``repeat`` times (candidate states)."""
        if self.eos_ids is None:
            return x
        gaps = self.gap_start if rows is None else self.gap_start[rows]
        if repeat > 1:
            gaps = gaps.repeat_interleave(repeat, 0)
        return apply_eos_fill(x, gaps, self.mask_id, self.eos_ids, self.fill_id)

    @property
    def last_call(self) -> int:
        """Index of the most recent forward in ``recorder.calls``."""
        return len(self.recorder.calls) - 1

    def flag_nonfinite(self, values: torch.Tensor, rows: torch.Tensor, call: int) -> None:
        """Remember, without a host sync, whether forward ``call`` gave non-finite ``values``
        (the entropies of its logits, ``[n, w]``: NaN/+inf logits make them NaN) for state rows ``rows``."""
        bad = ~torch.isfinite(values).all(-1)
        self.nonfinite_checks.append((call, rows, bad))
        self.nonfinite = self.nonfinite | bad.any()

    def nonfinite_error(self, where: str) -> NonFiniteLogitsError:
        """The error for the flagged rows (called only once a sync has shown there are some)."""
        flagged = [(int(r), call) for call, rows, bad in self.nonfinite_checks for r in rows[bad].tolist()]
        prompts = sorted({self.row_prompt[r] for r, _ in flagged})
        calls = sorted({c for _, c in flagged})
        kinds = ", ".join(f"#{c} ({self.recorder.kinds[c]}: {self.recorder.calls[c][0]} rows × "
                          f"{self.recorder.calls[c][1]} positions)" for c in calls[:5])
        dtype = str(self.logits_dtype).removeprefix("torch.") if self.logits_dtype is not None else "unknown"
        hint = (" — a float16/bfloat16 overflow is the usual cause: try dtype=float32"
                if self.logits_dtype in (torch.float16, torch.bfloat16) else
                " — check the checkpoint's weights (a broken or partly loaded model) and its inputs")
        return NonFiniteLogitsError(
            f"the model returned NaN or ±inf logits ({dtype}) for prompt(s) {prompts[:20]} in forward call(s) "
            f"{kinds} of this decode, detected at {where}; nothing was decoded from them{hint}"
        )

    def commit_entropy(self, before: torch.Tensor, after: torch.Tensor, h_window: torch.Tensor, lo: int) -> torch.Tensor:
        """Σ current entropy over window positions that went from mask to a token (any commit path).

        Positions outside the logits window (an EOS fill beyond the dual cache's block) add 0: no
        distribution was computed for them during decoding.
        """
        hi = lo + h_window.shape[-1]
        newly = (before[:, lo:hi] == self.mask_id) & (after[:, lo:hi] != self.mask_id)
        return (h_window * newly).sum(-1)
