"""Training of the bundled demo model: data on the fly, the masked-diffusion loss, and the recipe.

Why this recipe (measured while building the demo; see the model card):

- **One LLaDA-shaped model for both tasks** (RMSNorm, SwiGLU, RoPE, bidirectional) built by
  :class:`~lm_eval_infogain.models.llada.LLaDAModel`, so the shipped folder is read by the same
  loader as a real LLaDA checkpoint.
- **Sudoku clues name their cells** (``r3c7=5``, one token each, see the tokenizer): RoPE only
  sees distances, and "same row / column / box" is not a function of distance, so a model given bare
  digits must first work out every cell's coordinates from its distance to the sequence ends. That
  is what made the earlier bare-digit recipe need ~6000 steps of batch 128 (a GPU) where this one
  needs 1400 of batch 64 on two CPU cores. The answer stays 81 plain digits; answer cell *i* reads
  its coordinates from prompt word *i*, a constant distance away — exactly what RoPE makes easy.
- **Cell words start factorised**: the embedding of ``r{r}c{c}={v}`` is initialised as the sum of
  row, column, box and value vectors (then trained freely), so attention can compare rows, columns
  and boxes from the first step instead of discovering that 810 unrelated words share structure.
- **RoPE θ = 314** instead of LLaDA's 500 000: with head dimension 32 the second rotary frequency is
  then θ^(−1/16) ≈ 0.698 ≈ 2π/9, one turn per Sudoku row, so "same column" is a plain relative-position
  pattern. With θ = 10 000 the same model learned Sudoku markedly slower.
- **Small N(0, 0.02) init for every matrix, embeddings included** (``LLaDAModel.reset_parameters``):
  a default N(0, 1) token embedding swamps what attention learns about positions.
- **Masked-diffusion objective on the answer only**: the prompt stays clean; k ~ U{1..L} of the L
  answer positions are masked and the loss is the mean cross-entropy over the masked ones (the
  1/t-weighted ELBO with t = k/L).
- **Training grids made on the fly**: digit relabeling, band/row/stack/column permutations and
  transposes of a pool of random solved grids (vectorised, a fixed generator), never the test set.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import torch
import torch.nn.functional as F

from .puzzles import ADD_WIDTH, random_solved_grid
from .tokenizer import BOS, CELL_BASE, CELL_TOKENS, EOS, MASK, TOKEN_ID, VOCAB, cell_word_id

__all__ = [
    "TrainConfig",
    "model_config",
    "grid_pool",
    "sudoku_batch",
    "addition_batch",
    "init_cell_embeddings_",
    "mdm_loss",
    "train",
    "encode_sudoku_prompt",
    "encode_addition_prompt",
]

_EQ, _PLUS = TOKEN_ID["="], TOKEN_ID["+"]
_BOS, _MASK = TOKEN_ID[BOS], TOKEN_ID[MASK]


@dataclass
class TrainConfig:
    """Every knob of the recipe; the defaults produced the shipped model."""

    seed: int = 0
    steps: int = 1400
    batch_size: int = 64
    #: Every ``addition_every``-th step is an addition batch of ``addition_batch_factor × batch_size``.
    addition_every: int = 4
    addition_batch_factor: int = 2
    lr: float = 1.5e-3
    warmup: int = 200
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    #: Random solved grids that the on-the-fly transforms start from.
    pool_size: int = 1000
    #: Blanks of a training puzzle, drawn uniformly (the test sets use 40..55).
    min_blanks: int = 20
    max_blanks: int = 62
    #: Start the cell-word embeddings as row + column + box + value vectors.
    factorised_cell_init: bool = True
    #: Probability that a batch starts with BOS (the lm-eval backend adds one; the Python API may not).
    bos_prob: float = 0.75
    d_model: int = 128
    n_heads: int = 4
    n_layers: int = 4
    mlp_hidden_size: int = 384
    rope_theta: float = 314.0
    extra: dict[str, Any] = field(default_factory=dict)


def model_config(cfg: TrainConfig) -> dict[str, Any]:
    """The LLaDA ``config.json`` content of the demo model."""
    from ..models.llada import llada_config

    return llada_config(
        d_model=cfg.d_model,
        n_heads=cfg.n_heads,
        n_kv_heads=cfg.n_heads,
        n_layers=cfg.n_layers,
        mlp_hidden_size=cfg.mlp_hidden_size,
        vocab_size=len(VOCAB),
        embedding_size=len(VOCAB),
        rope_theta=cfg.rope_theta,
        max_sequence_length=512,
        mask_token_id=_MASK,
        eos_token_id=TOKEN_ID[EOS],
        pad_token_id=TOKEN_ID[EOS],
        bos_token_id=_BOS,
    )


# ------------------------------------------------------------------------------------------ encoding
def encode_sudoku_prompt(puzzle: list[int] | tuple[int, ...]) -> list[int]:
    """Ids of the Sudoku prompt text (no BOS): 81 cell words (``r1c1=5``, ``r1c2=.``) and ``=``."""
    return [cell_word_id(cell, v) for cell, v in enumerate(puzzle)] + [_EQ]


def encode_addition_prompt(a: int, b: int, width: int = ADD_WIDTH) -> list[int]:
    return [int(c) for c in f"{a:0{width}d}"] + [_PLUS] + [int(c) for c in f"{b:0{width}d}"] + [_EQ]


# ------------------------------------------------------------------------------------------- batches
def grid_pool(n: int, seed: int) -> torch.Tensor:
    """``[n, 81]`` random solved grids (stdlib RNG, so the pool is the same everywhere)."""
    rng = random.Random(seed)
    return torch.tensor([random_solved_grid(rng) for _ in range(n)], dtype=torch.long)


def _axis_permutations(batch: int, g: torch.Generator) -> torch.Tensor:
    """``[batch, 9]`` validity-preserving row (or column) orders: shuffle bands, then rows in each."""
    bands = torch.rand(batch, 3, generator=g).argsort(1)
    inner = torch.rand(batch, 3, 3, generator=g).argsort(2)
    return (3 * bands[:, :, None] + inner).reshape(batch, 9)


def sudoku_batch(
    pool: torch.Tensor, batch: int, g: torch.Generator, min_blanks: int, max_blanks: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(prompt ids ``[B, 82]``: cell words and ``=``; answer ids ``[B, 81]``: digits) of freshly
    transformed grids."""
    grids = pool[torch.randint(len(pool), (batch,), generator=g)].view(batch, 9, 9)
    rows, cols = _axis_permutations(batch, g), _axis_permutations(batch, g)
    idx = torch.arange(batch)[:, None, None]
    grids = grids[idx, rows[:, :, None], cols[:, None, :]]
    transpose = torch.rand(batch, generator=g) < 0.5
    grids = torch.where(transpose[:, None, None], grids.transpose(1, 2), grids).reshape(batch, 81)
    relabel = torch.cat([torch.zeros(batch, 1, dtype=torch.long), torch.rand(batch, 9, generator=g).argsort(1) + 1], 1)
    solution = relabel.gather(1, grids)
    blanks = torch.randint(min_blanks, max_blanks + 1, (batch, 1), generator=g)
    hidden = torch.rand(batch, 81, generator=g).argsort(1).argsort(1) < blanks
    cells = cell_word_id(torch.arange(81)[None], torch.where(hidden, 0, solution))
    return torch.cat([cells, torch.full((batch, 1), _EQ)], 1), solution


def addition_batch(batch: int, g: torch.Generator, width: int = ADD_WIDTH) -> tuple[torch.Tensor, torch.Tensor]:
    """(prompt ids ``[B, 2·width + 2]``, answer ids ``[B, width + 1]``), digits most significant first.

    40% of the rows get a planted carry chain (a generating digit pair followed by pairs summing to
    9) of random length, because uniform operands almost never carry over more than 3 places; 20%
    get short operands (leading zeros).
    """
    a = torch.randint(0, 10, (batch, width), generator=g)  # least significant first
    b = torch.randint(0, 10, (batch, width), generator=g)
    chain = torch.rand(batch, generator=g) < 0.4
    length = torch.randint(1, width + 1, (batch,), generator=g)
    start = (torch.rand(batch, generator=g) * (width - length + 1)).long()
    pos = torch.arange(width)[None]
    gen_at = chain[:, None] & (pos == start[:, None])
    prop = chain[:, None] & (pos > start[:, None]) & (pos < (start + length)[:, None])
    a_gen = torch.randint(1, 10, (batch, width), generator=g)
    b_gen = 10 - a_gen + (torch.rand(batch, width, generator=g) * a_gen).long()  # a + b >= 10
    a = torch.where(gen_at, a_gen, a)
    b = torch.where(gen_at, b_gen.clamp(max=9), b)
    b = torch.where(prop, 9 - a, b)
    short = torch.rand(batch, generator=g) < 0.2
    keep = torch.randint(1, width + 1, (batch, 2), generator=g)
    a = torch.where(short[:, None] & (pos >= keep[:, :1]), 0, a)
    b = torch.where(short[:, None] & (pos >= keep[:, 1:]), 0, b)
    # column addition with carries, least significant first
    total = []
    carry = torch.zeros(batch, dtype=torch.long)
    for i in range(width):
        s = a[:, i] + b[:, i] + carry
        total.append(s % 10)
        carry = s // 10
    total.append(carry)
    answer = torch.stack(total[::-1], 1)
    prompt = torch.cat([a.flip(1), torch.full((batch, 1), _PLUS), b.flip(1), torch.full((batch, 1), _EQ)], 1)
    return prompt, answer


def init_cell_embeddings_(model: torch.nn.Module, g: torch.Generator, std: float) -> None:
    """Set the embedding of every cell word ``r{r}c{c}={v}`` to row + column + box + value vectors
    (each N(0, std/2), so the sum has about the scale of the other embeddings)."""
    weight = model.model.transformer["wte"].weight
    dim = weight.shape[1]
    row, col, box, value = (torch.randn(n, dim, generator=g) * (std / 2) for n in (9, 9, 9, 10))
    cell = torch.arange(81)
    r, c = cell // 9, cell % 9
    words = (row[r] + col[c] + box[3 * (r // 3) + c // 3])[:, None, :] + value[None]  # [81, 10, dim]
    with torch.no_grad():
        weight[CELL_BASE : CELL_BASE + len(CELL_TOKENS)] = words.reshape(len(CELL_TOKENS), dim).to(weight)


def mdm_loss(model: torch.nn.Module, prompt: torch.Tensor, answer: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Masked-diffusion loss on the answer: mask k ~ U{1..L} answer positions, mean CE over them."""
    batch, length = answer.shape
    k = torch.randint(1, length + 1, (batch, 1), generator=g)
    masked = torch.rand(batch, length, generator=g).argsort(1).argsort(1) < k
    device = next(model.parameters()).device
    x = torch.cat([prompt, torch.where(masked, _MASK, answer)], 1).to(device)
    logits = model(x, head_slice=slice(prompt.shape[1], None))  # the LM head on the answer only
    masked = masked.to(device)
    return F.cross_entropy(logits[masked].float(), answer.to(device)[masked])


# -------------------------------------------------------------------------------------------- train
def _lr_factor(step: int, cfg: TrainConfig) -> float:
    warm = min(1.0, (step + 1) / max(1, cfg.warmup))
    progress = min(step, cfg.steps) / max(1, cfg.steps)
    return warm * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def train(
    cfg: TrainConfig, device: str = "cpu", log: Callable[[str], None] = print, log_every: int = 250
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Train the demo model; returns the model (on CPU, float32) and a log dict.

    All randomness comes from generators seeded by ``cfg.seed`` (data on the CPU), so a run is
    reproducible on one device type; CPU and GPU runs differ only by floating-point rounding.
    """
    from ..models.llada import LLaDAModel

    torch.manual_seed(cfg.seed)
    model = LLaDAModel(model_config(cfg)).to(device)
    g = torch.Generator().manual_seed(cfg.seed)
    if cfg.factorised_cell_init:
        init_cell_embeddings_(model, g, float(model.config.get("init_std") or 0.02))
    t0 = time.time()
    pool = grid_pool(cfg.pool_size, cfg.seed + 1)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.98), weight_decay=cfg.weight_decay)
    history: list[dict[str, float]] = []
    running: dict[str, list[float]] = {"sudoku": [], "addition": []}
    model.train()
    for step in range(cfg.steps):
        for group in opt.param_groups:
            group["lr"] = cfg.lr * _lr_factor(step, cfg)
        if cfg.addition_every and step % cfg.addition_every == cfg.addition_every - 1:
            kind = "addition"
            prompt, answer = addition_batch(cfg.batch_size * cfg.addition_batch_factor, g)
        else:
            kind = "sudoku"
            prompt, answer = sudoku_batch(pool, cfg.batch_size, g, cfg.min_blanks, cfg.max_blanks)
        if torch.rand((), generator=g).item() < cfg.bos_prob:
            prompt = torch.cat([torch.full((prompt.shape[0], 1), _BOS), prompt], 1)
        loss = mdm_loss(model, prompt, answer, g)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        running[kind].append(float(loss.detach()))
        if (step + 1) % log_every == 0 or step + 1 == cfg.steps:
            row = {"step": step + 1, "seconds": round(time.time() - t0, 1)}
            for name, values in running.items():
                if values:
                    row[f"loss_{name}"] = round(sum(values) / len(values), 4)
            running = {"sudoku": [], "addition": []}
            history.append(row)
            log(str(row))
    model = model.to("cpu").float().eval()
    return model, {"config": asdict(cfg), "history": history, "train_seconds": round(time.time() - t0, 1)}
