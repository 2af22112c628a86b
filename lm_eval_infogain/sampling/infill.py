"""Infilling helpers: where the gaps of a prompt are, and what the decoder wrote into them.

The engine decodes every mask token of a prompt (see ``canvas.py``); these helpers turn its output
(:attr:`~.engine.GenerationOutput.canvases`) back into per-gap token lists, the form infilling
benchmarks score.
"""

from __future__ import annotations

from typing import Sequence

from .canvas import gap_spans

__all__ = ["gap_spans", "filled_gaps", "trim_at"]


def filled_gaps(prompt_ids: Sequence[int], canvas_ids: Sequence[int], mask_id: int) -> list[list[int]]:
    """Tokens written into each gap of ``prompt_ids`` (plus the appended region), left to right.

    ``canvas_ids`` is the decoded row (``prompt_len + gen_length`` ids, no padding); the gaps are
    the maximal runs of ``mask_id`` in ``prompt_ids`` followed by ``gen_length`` masks, so masks that
    end the prompt and the appended region form one gap.
    """
    canvas = [int(t) for t in canvas_ids]
    prompt = [int(t) for t in prompt_ids]
    if len(canvas) < len(prompt):
        raise ValueError(f"canvas has {len(canvas)} ids, fewer than the prompt's {len(prompt)}")
    full = prompt + [mask_id] * (len(canvas) - len(prompt))
    for i, (p, c) in enumerate(zip(full, canvas)):
        if p != mask_id and p != c:
            raise ValueError(f"canvas differs from the prompt at position {i} ({c} != {p}): not this prompt's output")
    return [canvas[start:end] for start, end in gap_spans(full, mask_id)]


def trim_at(tokens: Sequence[int], stop_ids: Sequence[int]) -> list[int]:
    """``tokens`` up to (excluding) the first of ``stop_ids`` — a gap's text ends at its first EOS."""
    stops = set(int(t) for t in stop_ids)
    out: list[int] = []
    for t in tokens:
        if int(t) in stops:
            break
        out.append(int(t))
    return out
