"""e-prop's trace algebra (derived in `algorithms/eprop.py`'s docstring): the postsynaptic coefficients of one block
of steps (`PostBlock`) and the per-synapse traces and accumulators of one weight matrix (`Eligibility`, and
`InputEligibility` fed by the input events).

Every block but the trial's last is *absorbed*: the accumulators A (per sample) and D (summed over the batch) and the
traces X advance by the block. The last block is *finished*: the learning signal L (batch, post) is known once the
last block's spikes are, so its contribution is contracted with L directly,

    dE/dW_ji = Σ_b L_bj (A_bji + ΔA_bji) + r_j (D_ji + ΔD_ji),    ΔA_b = (the last block's terms of sample b),

which needs neither the traces' update after the trial's end nor a per-sample accumulator for that block: with one
block per trial (algorithm.chunk ≥ steps) no (batch, post, pre) tensor is made at all, and the input weights'
gradient is one event-driven sum summed over the batch. The same sums in another order (float64: ≤ 1e-10, tested).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from spikebench.events import bag_offsets

from .neuron import exp_filter


class PostBlock:
    """Postsynaptic coefficients of one block of K steps (see eprop.py's docstring), all (batch, K, post)
    or (batch, post), from ψ[t], ψ[t-1] and a[t] = α (1 − s[t-1]) of the block's steps and the weights c.

    Backward scan over the block, with T[t] = [[a[t], 0], [ψ[t-1], q[t]]], q[t] = ρ − β_a ψ[t-1]:
        M[t] = c_t ψ[t] (1, −β_a) + M[t+1] T[t+1]    → m0 = M_0 (weights of ε^I in A), m_in = M[t0] T[t0]
        Mr: the same with c_t = 1                     → for D (only with the regulariser)
        R[t] = R[t+1] T[t+1], R[t1] = 1               → r00, r10 = R_·0 (weights of ε^I in the end state),
                                                        phi = R[t0] T[t0] (weights of the incoming state)
    `ops`: the compiled scans (kernels/cpu_eprop.py), else the torch loops below.
    """

    def __init__(self, psi, psi_prev, decay, c, beta_a: float, rho: float, with_reg: bool, ops=None,
                 last: bool = False) -> None:
        adaptive = beta_a != 0.0
        q = rho - beta_a * psi_prev[:, 0]
        self.r00 = self.r10 = self.phi = None  # R and Φ advance the traces: not needed after the trial's last block
        if ops is not None:
            out = ops.scan_block(psi, psi_prev, decay, c, beta_a, rho, with_reg, not last)
            m_pairs = [(out[2 * w], out[2 * w + 1]) for w in range(2 if with_reg else 1)]
            if not last:
                self.r00, r10, r11 = out[-3], out[-2], out[-1]
                self.r10 = r10 if adaptive else None
                r00_0, r10_0 = self.r00[:, 0], (r10[:, 0] if adaptive else torch.zeros_like(r11))
        else:
            m_pairs = [self._scan_m(w, psi, psi_prev, decay, beta_a, rho)
                       for w in [c.view(1, -1, 1)] + ([torch.ones_like(c).view(1, -1, 1)] if with_reg else [])]
            if not last:
                r00_0, r10_0, r11 = self._scan_r(psi_prev, decay, beta_a, rho, adaptive)
        self.m0, self.m_in = [], []
        for m0, m1_0 in m_pairs:
            self.m0.append(m0)
            if adaptive:
                self.m_in.append((decay[:, 0] * m0[:, 0] + psi_prev[:, 0] * m1_0, q * m1_0))
            else:
                self.m_in.append((decay[:, 0] * m0[:, 0], None))
        if not last:
            a, sp = decay[:, 0], psi_prev[:, 0]
            self.phi = (a * r00_0, a * r10_0 + sp * r11, q * r11)  # (Φ00, Φ10, Φ11); Φ01 = 0

    @staticmethod
    def _scan_m(w, psi, psi_prev, decay, beta_a: float, rho: float):
        """(M_0 (batch, K, post), M_1[0] (batch, post)) for the time weights w: the torch loop."""
        adaptive = beta_a != 0.0
        q = rho - beta_a * psi_prev
        u = w * psi
        m0 = torch.empty_like(psi)
        m1 = torch.zeros_like(psi[:, 0])  # M_1 = 0 without adaptation
        for k in range(psi.shape[1] - 1, -1, -1):
            if k == psi.shape[1] - 1:
                m0[:, k] = u[:, k]
                if adaptive:
                    m1 = -beta_a * u[:, k]
            elif adaptive:  # M[k] = u_k (1, −β_a) + M[k+1] T[k+1]
                a, sp, qq = decay[:, k + 1], psi_prev[:, k + 1], q[:, k + 1]
                m0[:, k] = u[:, k] + a * m0[:, k + 1] + sp * m1
                m1 = qq * m1 - beta_a * u[:, k]
            else:
                torch.addcmul(u[:, k], decay[:, k + 1], m0[:, k + 1], out=m0[:, k])
        return m0, m1

    def _scan_r(self, psi_prev, decay, beta_a: float, rho: float, adaptive: bool):
        """R_00, R_10 (batch, K, post) into self; R_00[0], R_10[0], R_11[0] returned: the torch loop."""
        q = rho - beta_a * psi_prev
        self.r00 = torch.empty_like(decay)
        self.r10 = torch.empty_like(decay) if adaptive else None
        r00, r10, r11 = torch.ones_like(decay[:, 0]), torch.zeros_like(decay[:, 0]), torch.ones_like(decay[:, 0])
        for k in range(decay.shape[1] - 1, -1, -1):
            if k < decay.shape[1] - 1:  # R[k] = R[k+1] T[k+1]
                a, sp, qq = decay[:, k + 1], psi_prev[:, k + 1], q[:, k + 1]
                r00, r10, r11 = a * r00, a * r10 + sp * r11, qq * r11
            self.r00[:, k] = r00
            if adaptive:
                self.r10[:, k] = r10
        return r00, r10, r11

    def nbytes(self) -> int:
        tensors = [*self.m0, self.r00, self.r10]
        return sum(t.nbytes for t in tensors if t is not None)


class Eligibility:
    """Traces X = (ε, ε^a) (batch, post, pre) and their accumulators for one weight matrix W (pre, post).

    `absorb` takes one block: the presynaptic synapse-filtered trace ε^I (batch, K, pre) and the block's
    PostBlock, and advances
        A  = Σ_t c_t e_ji[t]              (batch, post, pre)   weighted by the readout kernel
        D  = Σ_batch Σ_t e_ji[t]          (post, pre)          for the firing-rate regulariser
        X  = the traces at the block's end
    (made by the first absorbed block from its own sums: a trial of one block never makes them). `finish` takes the
    last block and the learning signals and returns dE/dW (module docstring).
    """

    def __init__(self, batch: int, post: int, pre: int, adaptive: bool, with_reg: bool, like: torch.Tensor,
                 gain: float) -> None:
        self.adaptive, self.with_reg, self.like, self.gain = adaptive, with_reg, like, gain  # gain: g (LIFParams)
        self.syn_shape, self.bdim = (post, pre), 0  # the shape of D; the batch axis of the (batch, post, pre) tensors
        self.eps = self.eps_a = self.acc = self.reg = None

    def _post(self, t: torch.Tensor) -> torch.Tensor:
        """A per-(sample, post) tensor broadcast against the (batch, post, pre) traces."""
        return t.unsqueeze(-1)

    def _batch_sum(self, w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Σ_b w_bj x_b.. (w per sample and postsynaptic neuron), in D's layout. One multiply-add per sample:
        torch.einsum ran this as 256 batched products with a copy each (~5× slower, profiled)."""
        out, w = x.new_zeros(self.syn_shape), self._post(w)
        for b in range(x.shape[self.bdim]):
            out.addcmul_(x.select(self.bdim, b), w.select(self.bdim, b))
        return out

    @staticmethod
    def _as_grad(t: torch.Tensor) -> torch.Tensor:
        """A sum in D's layout (post, pre) as W's gradient (pre, post)."""
        return t.T

    def _incoming(self, target_acc: torch.Tensor | None, target_reg: torch.Tensor | None, blk: PostBlock,
                  signal: torch.Tensor | None = None) -> None:
        """The incoming traces' terms: into A (per sample; with `signal`: contracted, into a (pre, post) gradient)
        and into D."""
        for (w0, w1), target, summed in ((blk.m_in[0], target_acc, signal is not None),
                                         (blk.m_in[-1], target_reg, True)):
            if target is None:
                continue
            for w, x in ((w0, self.eps), (w1, self.eps_a)):
                if x is None or w is None:
                    continue
                if not summed:
                    target.addcmul_(self._post(w), x)
                elif target is target_acc:
                    target.add_(self._as_grad(self._batch_sum(w * signal, x)))
                else:
                    target.add_(self._batch_sum(w, x))

    def _block_sum(self, target: torch.Tensor | None, q: torch.Tensor, pre, summed: bool = False) -> torch.Tensor:
        """target + g Σ_k q[k] ⊗ ε^I[k], per sample (batch, post, pre) or summed over the batch (post, pre); in place,
        or a new tensor if target is None."""
        a, b = (q.flatten(0, 1).T, pre.flatten(0, 1)) if summed else (q.transpose(1, 2), pre)
        if target is None:
            return (torch.mm(a, b) if summed else torch.bmm(a, b)).mul_(self.gain)
        return target.addmm_(a, b, alpha=self.gain) if summed else target.baddbmm_(a, b, alpha=self.gain)

    def absorb(self, pre, blk: PostBlock) -> None:
        """One block that is not the trial's last: A, D and X advance."""
        if self.eps is not None:  # the incoming traces' terms, then the traces' decay over the block
            self._incoming(self.acc, self.reg, blk)
            phi00, phi10, phi11 = (self._post(f) for f in blk.phi)
            if self.adaptive:  # uses the old ε, so before ε is advanced
                self.eps_a.mul_(phi11).addcmul_(phi10, self.eps)
            self.eps.mul_(phi00)
        if self.with_reg:
            self.reg = self._block_sum(self.reg, blk.m0[1], pre, summed=True)
        self.acc = self._block_sum(self.acc, blk.m0[0], pre)
        if self.adaptive:
            self.eps_a = self._block_sum(self.eps_a, blk.r10, pre)
        self.eps = self._block_sum(self.eps, blk.r00, pre)

    def finish(self, pre, blk: PostBlock, signal: torch.Tensor, rate_signal: torch.Tensor | None) -> torch.Tensor:
        """dE/dW (pre, post) = Σ_b L_bj A_bji + r_j D_ji, the last block `blk` included, for the learning signals
        L (batch, post) and r (post,) (with the regulariser)."""
        grad = self._as_grad(self._batch_sum(signal, self.acc) if self.acc is not None else
                             self.like.new_zeros(self.syn_shape))
        reg = None
        if self.with_reg and rate_signal is not None:
            reg = self.reg.clone() if self.reg is not None else self.like.new_zeros(self.syn_shape)
        self._incoming(grad, reg, blk, signal)
        self._block_sum_grad(grad, signal.unsqueeze(1) * blk.m0[0], pre)
        if reg is not None:
            self._block_sum(reg, blk.m0[1], pre, summed=True)
            grad += self._as_grad(self._post(rate_signal.expand(1, -1)).squeeze(self.bdim) * reg)  # r_j D_ji
        return grad

    def _block_sum_grad(self, grad: torch.Tensor, q: torch.Tensor, pre) -> None:
        grad.addmm_(pre.flatten(0, 1).T, q.flatten(0, 1), alpha=self.gain)

    def nbytes(self) -> int:
        return sum(t.nbytes for t in (self.eps, self.eps_a, self.acc, self.reg) if t is not None)


class InputEligibility(Eligibility):
    """`Eligibility` of W_in from the input events (eprop.py's docstring), its tensors laid out (pre, batch, post):
    an event adds one contiguous row, and one sort of the events by (channel, sample) makes the bags of both the
    per-sample and the batch-summed sums. Its `pre` is (P, bags): the trace P at the block's start (batch, inputs;
    None when it is zero, in the first block) and the block's events as bags (`with_bags`)."""

    def __init__(self, batch, post, pre, adaptive, with_reg, like, gain, beta: float) -> None:
        super().__init__(batch, post, pre, adaptive, with_reg, like, gain)
        self.syn_shape, self.bdim, self.beta, self.batch = (pre, post), 1, beta, batch

    def _post(self, t: torch.Tensor) -> torch.Tensor:
        return t.unsqueeze(0)

    @staticmethod
    def _as_grad(t: torch.Tensor) -> torch.Tensor:
        return t

    def with_bags(self, carry, events) -> tuple:
        """The `pre` argument of absorb/finish for a block with the input events (sample · K + step, sample, channel,
        value): the carry and the events sorted by (channel, sample), as rows of G, values, and the offsets of the
        per-(channel, sample) bags and of the per-channel bags."""
        bs, b, c, v = events
        n_in = self.syn_shape[0]
        key = c * self.batch + b
        order = torch.argsort(key, stable=True)
        offsets = bag_offsets(key, n_in * self.batch)
        return carry, (bs.index_select(0, order), v.index_select(0, order), offsets,
                       offsets.view(n_in, self.batch)[:, 0].contiguous())

    def _block_sum(self, target: torch.Tensor | None, q: torch.Tensor, pre, summed: bool = False) -> torch.Tensor:
        """target + g Σ_k q[k] ⊗ ε^I[k] (per sample, or `summed` over the batch; a None target: a new tensor) via G
        (eprop.py's docstring): the events' rows of G summed per bag by `embedding_bag` (one fused gather-scale-sum,
        as EventProp's input)."""
        carry, (rows, v, offsets, channel_offsets) = pre
        g = exp_filter(q * self.gain, self.beta, reverse=True)  # g·G[s], G[s] = Σ_{k ≥ s} β^(k−s) q[k]
        sums = F.embedding_bag(rows, g.view(-1, g.shape[2]), channel_offsets if summed else offsets, mode="sum",
                               per_sample_weights=v.to(g.dtype))
        sums = sums if summed else sums.view(-1, self.batch, g.shape[2])
        target = sums if target is None else target.add_(sums)
        if carry is not None:
            if summed:
                target.addmm_(carry.T, g[:, 0], alpha=self.beta)
            else:
                target.addcmul_(carry.T.unsqueeze(2), g[:, 0].unsqueeze(0), value=self.beta)
        return target

    def _block_sum_grad(self, grad: torch.Tensor, q: torch.Tensor, pre) -> None:
        self._block_sum(grad, q, pre, summed=True)
