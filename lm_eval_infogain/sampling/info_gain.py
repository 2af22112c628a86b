"""The Info-Gain and LookUM steps (Yang et al., 2026), vectorised over every row of the batch.

One step, for all rows at once:

1. **Current logits**: reused from the previous step's winning lookahead (the forward of exactly this
   state in no-cache mode); only rows that committed without a lookahead get a fresh forward.
2. **Bypass**: masked block positions whose top-1 probability is ≥ ``threshold`` are fixed into the
   action with their argmax token — at most K of them, the most confident (the action has K slots;
   the reference code caps the same way). A row with ≥ K of them commits those K and skips the
   lookahead; otherwise the remaining ``K − n`` slots are still chosen by Info-Gain (paper
   semantics — the reference code's shortcut, which commits only the confident ones and can leave
   masks when K > 1, is not reproduced).
3. **Candidates** (``candidate_number`` N per row): candidate 0 is greedy (top-K confidence, argmax
   tokens); the others sample tokens from ``softmax(logits / temperature)`` (argmax at 0) and draw K
   positions by Gumbel-top-K over ``confidence / position_temperature`` (confidence = untempered
   probability of the sampled token). Candidates with a position set seen earlier in the row are
   dropped. A row with one distinct action commits it without lookahead.
4. **Lookahead**: ONE batched forward of the next states of every row that needs it — only its
   *distinct* actions, so a step forwards Σ over rows of their distinct candidates (packed without
   a loop over candidates). Finding those rows and their counts is the step's single host sync (a
   ``.tolist()`` of a per-row status code, which also tells which rows will need a fresh forward
   and whether the block has masks left).
5. **Objective**: ``J_info_gain = −C(a) − H̄(x ⊕ a)`` or ``J_lookum = −H̄(x ⊕ a)``, with ``C`` the sum of
   the current entropies at the action's positions and ``H̄`` the mean next-state entropy over the
   masks left in scope (``ig_scope``: the rest of the sequence, or only the block; 0 when none is
   left). Dropped candidates score −∞.
6. **Transition**: commit ``argmax J`` and keep its lookahead logits.

The next state ``x ⊕ a`` includes the EOS fill when it is enabled: the lookahead scores — and its
logits then exactly describe — the state the sampler actually moves to.

Beam search (``beam_size`` W > 1, the paper's ablation): every live beam is expanded with its N
candidates in the same batched forward; a child scores ``J(a) − H̃(parent)`` (= −H̃(child) − H̄(child)
for info_gain), the W best children per prompt survive, and the beam with the lowest cumulative
entropy H̃ is returned. A beam whose block is already full survives as itself with ``J = −H̄`` of its
current state. W = 1 reduces to the plain sampler.
"""

from __future__ import annotations

from typing import Callable

import torch

from .blocks import BlockSlots
from .config import DecodingConfig
from .forward import BlockForward
from .ops import gumbel, sample_tokens, topk_mask
from .state import DecodeState
from .strategies import schedule_k

__all__ = ["InfoGainStepper"]


class InfoGainStepper:
    adaptive = False
    #: Tests only: run the beam transition even for beam_size 1 (it must equal the plain one).
    force_beam = False

    def __init__(self, config: DecodingConfig, state: DecodeState, trace: Callable | None = None):
        self.config, self.state, self.trace = config, state, trace
        self.N = config.candidate_number
        self.W = config.beam_size
        self.beam = self.W > 1 or self.force_beam
        self.lookum = config.sampler == "lookum"
        self.cur: torch.Tensor | None = None
        self.stale: list[int] = []

    def window_end(self, slots: BlockSlots, T: int) -> int:
        return T if (self.config.ig_scope == "sequence" or self.state.eos_ids is not None) else slots.hi

    def start_block(self, fwd: BlockForward, block_index: int, rows: list[int]) -> None:
        self.fwd, self.block_index, self.stale = fwd, block_index, []
        self.slots = fwd.slots
        lo, hi = fwd.window
        # Which window positions the ``block`` scope averages over (the block's slots).
        self.in_block = self.slots.window_mask(lo, hi - lo) if self.config.ig_scope == "block" else None
        logits = fwd.enter(rows)
        idx = torch.tensor(rows, dtype=torch.long, device=logits.device)
        self.cur = logits.new_zeros((self.state.n_rows, *logits.shape[1:]))
        self.cur[idx] = logits
        #: entropies of ``cur`` [R, w]: computed once per forward output, right after it
        self.h = logits.new_zeros((self.state.n_rows, logits.shape[1]), dtype=torch.float32)
        self.h[idx] = self._entropies(logits, idx)

    # ------------------------------------------------------------------ one step
    def step(self, step: int, remaining_steps: torch.Tensor) -> bool:
        st, fwd, N, slots = self.state, self.fwd, self.N, self.slots
        lo = fwd.lo
        if self.stale:  # rows that committed without a lookahead last step
            idx = torch.tensor(self.stale, dtype=torch.long, device=st.x.device)
            logits = fwd.current(self.stale)
            self.cur[idx] = logits
            self.h = self.h.index_copy(0, idx, self._entropies(logits, idx))
            self.stale = []

        # 1-2. current state, schedule and bypass
        h_cur = self.h  # [R, w]
        h_blk = slots.take(h_cur, lo)  # [R, L]
        logp = st.prep.log_probs(slots.take(self.cur, lo))  # [R, L, V]
        top1_logp, greedy = logp.max(-1)
        top1 = top1_logp.exp()
        masked = slots.masked(st.x, st.mask_id) & st.alive[:, None]
        m = masked.sum(-1)
        K = schedule_k(m, remaining_steps, self.config.tokens_per_step)
        if self.config.threshold is None:
            bypass = torch.zeros_like(masked)
        else:  # the action has K slots: at most the K most confident of them are fixed
            bypass = topk_mask(top1, K, masked & (top1 >= self.config.threshold))
        n_bypass = bypass.sum(-1)
        k_free = (K - n_bypass).clamp(min=0)
        avail = masked & ~bypass

        # 3. candidate actions [R, N, L] and their tokens
        action, tokens, valid = self._candidates(step, logp, top1, greedy, avail, k_free, bypass)
        C = (action * h_blk[:, None, :]).sum(-1)  # [R, N]
        greedy_next = self._apply(st.x, slots, action[:, 0], tokens[:, 0])
        if self.beam:
            need = masked.any(-1)
        else:
            need = (k_free > 0) & (valid.sum(-1) > 1)
        left = torch.where(need, m - action[:, 0].sum(-1), slots.masked(greedy_next, st.mask_id).sum(-1))
        distinct = valid.sum(-1)
        flags = need.long() + 2 * (left > 0).long() + 4 * (K > 0).long() + 8 * st.nonfinite.long()
        status = (flags + 16 * distinct).tolist()  # the one sync
        if any(code & 8 for code in status):
            raise st.nonfinite_error(f"block {self.block_index}, step {step}")
        need_rows = [r for r, code in enumerate(status) if code & 1]

        # 4-5. one batched lookahead of the distinct actions of every row that needs it
        la = x_cand = J = packed = h_next = None
        if need_rows:
            nidx = torch.tensor(need_rows, dtype=torch.long, device=st.x.device)
            x_cand = self._apply(
                st.x[nidx].unsqueeze(1).expand(-1, N, -1), slots.rows(nidx), action[nidx], tokens[nidx], nidx
            )  # [n, N, T]
            n, T = len(need_rows), st.x.shape[1]
            counts = [status[r] >> 4 for r in need_rows]
            packed = torch.nonzero_static(valid[nidx].reshape(-1), size=sum(counts)).squeeze(-1)  # no sync
            la = fwd.lookahead(x_cand.reshape(n * N, T)[packed], need_rows, counts)  # [Σ distinct, w, V]
            J, h_next = self._objective(x_cand, la, packed, C[nidx], nidx)

        # 6. transition
        before = st.x
        if self.beam:
            self._beam_transition(need_rows, x_cand, la, h_next, packed, J, greedy_next, h_cur, masked)
        else:
            self._plain_transition(need_rows, x_cand, la, h_next, packed, J, greedy_next, h_cur, K)
            # committed, masks left, no lookahead
            self.stale = [r for r, code in enumerate(status) if code & 7 == 6]
        if self.trace is not None:
            self.trace({
                "block": self.block_index, "step": step, "before": before, "after": st.x.clone(),
                "masked": masked, "k": K, "bypass": bypass, "action": action, "tokens": tokens,
                "valid": valid, "need_rows": need_rows, "J": J, "h_cur": h_cur, "window": fwd.window,
            })
        return any(code & 1 and code & 2 for code in status) if self.beam else any(code & 2 for code in status)

    # ------------------------------------------------------------------ pieces
    def _candidates(self, step, logp, top1, greedy, avail, k_free, bypass):
        """Positions (``[R, N, L]`` bool, bypass included), tokens and validity of every candidate."""
        st, N = self.state, self.N
        R, L, _ = logp.shape
        sel = [topk_mask(top1, k_free, avail).unsqueeze(1)]
        tok = [greedy.unsqueeze(1)]
        if N > 1:
            gens = st.generators.for_step(self.block_index, step, st.row_prompt)
            sampled = sample_tokens(logp, self.config.temperature, gens, N - 1)  # [R, N-1, L]
            conf = logp.gather(-1, sampled.transpose(1, 2)).transpose(1, 2).exp()
            score = conf / self.config.position_temperature + gumbel((N - 1, L), gens, logp.device)
            rest = topk_mask(
                score.reshape(R * (N - 1), L),
                k_free.repeat_interleave(N - 1),
                avail.repeat_interleave(N - 1, 0),
            ).view(R, N - 1, L)
            sel.append(rest)
            tok.append(sampled)
        sel_t, tok_t = torch.cat(sel, 1), torch.cat(tok, 1)
        tok_t = torch.where(bypass.unsqueeze(1), greedy.unsqueeze(1), tok_t)
        same = (sel_t.unsqueeze(2) == sel_t.unsqueeze(1)).all(-1)  # [R, N, N]
        earlier = torch.ones(N, N, dtype=torch.bool, device=logp.device).tril(-1)
        valid = ~(same & earlier).any(-1)  # first of each distinct position set wins
        return sel_t | bypass.unsqueeze(1), tok_t, valid

    def _apply(self, x, slots, action, tokens, rows=None):
        """States ``x`` (state rows ``rows``, all when None; ``[rows, T]`` or ``[rows, N, T]``) with
        ``tokens`` written at the ``action`` slots of the block, EOS fill applied."""
        out = slots.put(x, tokens, action)
        shape = out.shape
        repeat = shape[1] if out.dim() == 3 else 1
        return self.state.fill(out.reshape(-1, shape[-1]), rows, repeat).view(shape)

    def _scope(self, x_window, rows=None):
        """Masks the mean next-state entropy averages over: all in the window (``sequence``), or
        those in the block (``block``); ``x_window`` is ``[rows, (N,) w]``."""
        scope = x_window == self.state.mask_id
        if self.in_block is None:
            return scope
        in_block = self.in_block if rows is None else self.in_block[rows]
        return scope & (in_block.unsqueeze(1) if scope.dim() == 3 else in_block)

    def _objective(self, x_cand, la, packed, C, rows):
        """J per candidate ``[n, N]`` from the lookahead logits ``la`` of the ``packed`` (flat
        ``n × N`` indices of the distinct) candidates; dropped candidates get −∞."""
        lo, hi = self.fwd.window
        n, N = C.shape
        parents = rows[packed // N]  # the state row of each packed candidate
        h_next = self._entropies(la, parents)  # [Σ distinct, w]
        scope = self._scope(x_cand.reshape(n * N, -1)[packed, lo:hi], parents)
        mean = (h_next * scope).sum(-1) / scope.sum(-1).clamp(min=1)
        J_packed = -mean if self.lookum else -C.reshape(-1)[packed] - mean
        J = torch.full((n * N,), float("-inf"), dtype=J_packed.dtype, device=J_packed.device)
        return J.index_copy_(0, packed, J_packed).view(n, N), h_next

    def _entropies(self, logits, rows):
        """Entropies of a forward's output (state rows ``rows``), flagged when non-finite."""
        h = self.state.prep.entropies(logits)
        self.state.flag_nonfinite(h, rows, self.state.last_call)
        return h

    @staticmethod
    def _packed_index(packed, n, N):
        """``[n, N]``: row of ``la`` holding each candidate (-1 for dropped ones)."""
        where = torch.full((n * N,), -1, dtype=torch.long, device=packed.device)
        return where.index_copy_(0, packed, torch.arange(packed.numel(), device=packed.device)).view(n, N)

    def _plain_transition(self, need_rows, x_cand, la, h_next, packed, J, greedy_next, h_cur, K):
        st = self.state
        x_new = greedy_next
        if need_rows:
            nidx = torch.tensor(need_rows, dtype=torch.long, device=st.x.device)
            n, N = J.shape
            win = J.argmax(-1)
            ar = torch.arange(n, device=st.x.device)
            x_new[nidx] = x_cand[ar, win]
            winner = self._packed_index(packed, n, N)[ar, win]
            self.cur[nidx] = la[winner]
            self.h = self.h.index_copy(0, nidx, h_next[winner])  # the winner's state is the next state
        st.cum_entropy += st.commit_entropy(st.x, x_new, h_cur, self.fwd.lo)
        st.steps += (K > 0).long()
        st.x = x_new

    def _beam_transition(self, need_rows, x_cand, la, h_next, packed, J, greedy_next, h_cur, masked):
        st, fwd, N, W = self.state, self.fwd, self.N, self.W
        lo, hi = fwd.window
        R, T = st.x.shape
        B = R // W
        device = st.x.device
        # Beams with nothing to decode in this block stay as they are, scored by their own H̄.
        scope = self._scope(st.x[:, lo:hi])
        h_here = (h_cur * scope).sum(-1) / scope.sum(-1).clamp(min=1)
        score = torch.full((R, N), float("-inf"), device=device)
        keep = st.alive & ~masked.any(-1)
        score[:, 0] = torch.where(keep, -h_here - st.cum_entropy, score[:, 0])
        x_pool, cur_pool, h_pool, steps_pool, ent_pool = st.x, self.cur, st.cum_entropy, st.steps, self.h
        need_pos = torch.full((R,), -1, dtype=torch.long, device=device)
        la_row = torch.full((1, N), -1, dtype=torch.long, device=device)
        if need_rows:
            nidx = torch.tensor(need_rows, dtype=torch.long, device=device)
            n = len(need_rows)
            need_pos[nidx] = torch.arange(n, device=device)
            parent_x = st.x[nidx].unsqueeze(1).expand(-1, N, -1).reshape(n * N, T)
            h_child = st.cum_entropy[nidx].repeat_interleave(N) + st.commit_entropy(
                parent_x, x_cand.reshape(n * N, T), h_cur[nidx].repeat_interleave(N, 0), lo
            )
            score[nidx] = J - st.cum_entropy[nidx].unsqueeze(1)
            x_pool = torch.cat([st.x, x_cand.reshape(n * N, T)])
            cur_pool, ent_pool = torch.cat([self.cur, la]), torch.cat([self.h, h_next])
            la_row = self._packed_index(packed, n, N)
            h_pool = torch.cat([st.cum_entropy, h_child])
            steps_pool = torch.cat([st.steps, st.steps[nidx].repeat_interleave(N) + 1])
        order = score.view(B, W * N).sort(dim=-1, descending=True, stable=True)
        best, pick = order.values[:, :W], order.indices[:, :W]
        parent = (torch.arange(B, device=device).unsqueeze(1) * W + pick // N).reshape(-1)
        cand = (pick % N).reshape(-1)
        from_la = need_pos[parent] >= 0
        source = torch.where(from_la, R + need_pos[parent].clamp(min=0) * N + cand, parent)
        # A dropped candidate is only ever picked with score −∞ (a dead beam): any logits do there.
        la_source = la_row[need_pos[parent].clamp(min=0), cand]
        cur_source = torch.where(from_la & (la_source >= 0), R + la_source, parent)
        st.x, self.cur, self.h = x_pool[source], cur_pool[cur_source], ent_pool[cur_source]
        st.cum_entropy, st.steps = h_pool[source], steps_pool[source]
        st.alive = torch.isfinite(best).reshape(-1)
        fwd.reorder(parent)
