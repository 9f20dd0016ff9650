"""e-prop: online learning with eligibility traces and a learning signal (Bellec et al. 2020,
"A solution to the learning dilemma for recurrent networks of spiking neurons", Nat. Commun. 11:3625).

The gradient of the loss E with respect to a hidden weight W_ji (presynaptic i → postsynaptic j) is
factorised into a learning signal L_j^t, which reaches neuron j from the readout, and an eligibility trace
e_ji^t, which synapse i→j computes locally, forward in time:

    dE/dW_ji ≈ Σ_t L_j^t e_ji^t,   L_j^t = ∂E/∂s_j^t (through the readout only),   e_ji^t = ds_j^t/dW_ji (local).

What is left out, compared with BPTT, is every path by which s_j^t changes the loss through the *future
hidden states of other neurons or of its own membrane*: the recurrent spikes (s[t-1] entering I[t] through
W_rec) and the spike's effect on its own reset are treated as constants (stop-gradient). What is kept is
exact.

Eligibility trace of the suite's neuron (algorithms/neuron.py), derived from its state-space form
---------------------------------------------------------------------------------------------------
Hidden state h_j^t = (I_j[t], V_j[t]); with α = exp(−dt/τ_mem), β = exp(−dt/τ_syn):

    I_j[t] = β I_j[t-1] + Σ_i W_in,ij x_i[t] + Σ_i W_rec,ij s_i[t-1]
    U_j[t] = α V_j[t-1] + g I_j[t]      (g: the input gain γ of neuron.py)
    s_j[t] = Θ(U_j[t] − ϑ)
    V_j[t] = U_j[t] − (U_j[t] − V_reset) s_j[t]

With the spikes in the reset and in the recurrent input held fixed, the Jacobians are

    ∂I[t]/∂I[t-1] = β,    ∂I[t]/∂W_ij = x_i[t]  (or s_i[t-1] for W_rec),
    ∂U[t]/∂V[t-1] = α,    ∂U[t]/∂I[t] = g,   ∂V[t]/∂U[t] = 1 − s_j[t],

so the eligibility vector ε_ji[t] = dU_j[t]/dW_ij of the synapse obeys two first-order recursions:

    ε^I_i[t]  = β ε^I_i[t-1] + x_i[t]                                (presynaptic only: the synapse kernel)
    ε_ji[t]   = a_j[t] ε_ji[t-1] + g ε^I_i[t],  a_j[t] = α (1 − s_j[t-1])
                                                       (the membrane kernel, restarted at j's spikes)
    e_ji[t]   = ψ_j[t] ε_ji[t],   ψ_j[t] = γ max(0, 1 − |(U_j[t] − ϑ)/ϑ|)
                                                       (pseudo-derivative, on the pre-reset membrane U)

(the neuron has no refractory period, so ψ is never masked). In words: the presynaptic spike train
filtered by the synapse kernel and then by the membrane kernel, where the membrane part forgets
everything before the last postsynaptic spike, times ψ_j.

Adaptive threshold (ALIF, optional: algorithm.alif_beta > 0). The threshold is A_j[t] = ϑ + β_a a_j[t]
with a_j[t] = ρ a_j[t-1] + s_j[t-1], ρ = exp(−dt/τ_a); s = Θ(U − A) and ψ = γ max(0, 1 − |(U − A)/ϑ|).
A neuron's spike → its own threshold is a path within the neuron, which e-prop keeps (Bellec et al.,
Methods), so the trace gets a second component ε^a = da_j/dW_ij:

    ε^a_ji[t] = (ρ − β_a ψ_j[t-1]) ε^a_ji[t-1] + ψ_j[t-1] ε_ji[t-1],
    e_ji[t]   = ψ_j[t] (ε_ji[t] − β_a ε^a_ji[t]).

Learning signal, leaky readout and the loss known only at the end of the trial
---------------------------------------------------------------------------
The readout is V_out = κ * (s W_out), κ the synapse+membrane kernel of the leaky integrator, and the logits
of the linear readouts (loss.kind sum, sum_exp) are z_k = Σ_t w_t V_out,k[t] (`losses.time_weights`).
Bellec et al. filter the trace with the readout's kernel, ē = F_κ(e), and multiply it by the per-step
error; here the per-step error is w_t · δ_k with δ = (softmax(z) − onehot(y)) / batch, and δ is known only
when the trial has ended. So the gradient factorises as

    dE/dW_ji = Σ_k B_jk δ_k · Σ_t w_t ē_ji[t] = Σ_k B_jk δ_k · Σ_t c_t e_ji[t],   c = F_κᵀ(w),

with B = W_outᵀ (feedback=symmetric) or a fixed random matrix (feedback=random). The identity
Σ_t w_t (κ * e)[t] = Σ_t (κ ⋆ w)[t] e[t] moves the readout filter from the traces (one filter state per
synapse) onto the time weights: c_t = Σ_{d ≥ 0} w_{t+d} κ[d] is a vector of T numbers that depends only on
the loss and the readout's time constants, not on the data, and is computed before the trial. During the
trial each synapse accumulates A_ji = Σ_t c_t e_ji[t] forward in time; at the end the learning signal
L_j = Σ_k B_jk δ_k is applied once, dE/dW_ji = Σ_batch L_j A_ji. The readout weights' gradient is exact:
dE/dW_out,jk = Σ_batch (Σ_t c_t s_j[t]) δ_k, and z itself is Σ_t c_t s[t] W_out. The firing-rate regulariser
(Bellec et al.'s E_reg, here the suite's c·mean_j (N̄_j − ν)²) acts on the spikes directly, so its learning
signal r_j = ∂E_reg/∂s_j[t] is the same at every step and multiplies the plain sum D_ji = Σ_batch Σ_t e_ji[t].
(The `max` readout has no such factorisation and is not supported.)

Chunked accumulation: forward in time, memory O(chunk), not O(T)
---------------------------------------------------------------
Updating a (batch, hidden, inputs) trace every step costs batch·hidden·inputs memory traffic per step. The
trace X = (ε, ε^a) is linear in ε^I with per-neuron coefficients: X[t] = T_j[t] X[t-1] + g ε^I[t] (1, 0),
T_j[t] = [[a_j[t], 0], [ψ_j[t-1], ρ − β_a ψ_j[t-1]]]. Over a block of K steps t0..t1 this gives, exactly,

    Σ_{t in block} u_t e_ji[t] = (M_j[t0] T_j[t0]) X_ji[t0-1] + g Σ_t M_j,0[t] ε^I_i[t],
    X_ji[t1] = (R_j[t0] T_j[t0]) X_ji[t0-1] + g Σ_t R_j,·0[t] ε^I_i[t],

with the per-neuron row vectors M[t] = u_t ψ[t] (1, −β_a) + M[t+1] T[t+1] (u = c for A, u = 1 for D) and
matrices R[t] = R[t+1] T[t+1], R[t1] = 1, found by scanning the K buffered steps of the block backward.
The sums over t are batched matrix products (batch, hidden, K) × (batch, K, inputs). The network is
simulated block by block, carrying its state and the traces; nothing of a block is kept after it, so the
memory is O(K · neurons) + O(synapses) for any trial length T (plus the T numbers c_t).

The input synapses, from the input events (`InputEligibility`). Each block sum above is Σ_k Q[k] ε^I[k] for a
per-neuron weight Q ∈ {M for A, M for D, R_·0} (batch, K, post). Within a block ε^I[k] = β^{k+1} P +
Σ_{s ≤ k} β^{k−s} x[s], P the trace at the block's start, so, with G[s] = Σ_{k ≥ s} β^{k−s} Q[k] (one backward scan
over the block, (batch, K, post)),

    Σ_k Q[k] ε^I_i[k] = β G[0] P_i + Σ_{input events (s, i, v) of the block} v G[s],

one outer product (batch, post) × (batch, inputs) per block and one row of G per input event: the work grows with
the input spikes and not with K × inputs, and the (batch, K, inputs) block of ε^I is never made. The same
algebra, summed in another order (float64: equal to 1e-10, tested). The recurrent synapses keep the dense form.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from spikebench.errors import ConfigError
from spikebench.events import EventBatch, as_frames

from .base import SpikingModule, StepOutput
from .losses import readout_time_kernel
from .neuron import LIFParams, lif_step, reset
from .surrogates import triangle

FEEDBACKS = ("symmetric", "random")


# ----------------------------------------------------------------------------------------------
# The neuron as e-prop sees it: ψ, the optional adaptive threshold, and the readout kernel c
# ----------------------------------------------------------------------------------------------


def pseudo_derivative(u: torch.Tensor, threshold: float, gamma: float) -> torch.Tensor:
    """ψ = γ · max(0, 1 − |(U − ϑ)/ϑ|) of the pre-reset membrane U (Bellec et al. 2020, Methods)."""
    return gamma * triangle(u - threshold, 1.0 / threshold)


def hidden_step(i, v, s, adapt, drive, p: LIFParams, beta_a: float, rho: float):
    """One step of the (A)LIF hidden layer; returns (I, U − β_a a, V, s, a), each (batch, hidden).

    The LIF part is neuron.lif_step / neuron.reset; the adaptive threshold (β_a > 0) is specific to e-prop's
    optional ALIF neurons: a[t] = ρ a[t-1] + s[t-1], s[t] = Θ(U[t] − ϑ − β_a a[t]).
    """
    adapt = torch.add(s, adapt, alpha=rho)
    i, u = lif_step(i, v, drive, p)
    u_eff = u - beta_a * adapt if beta_a else u
    s = (u_eff >= p.threshold).to(u.dtype)
    return i, u_eff, reset(u, s, p), s, adapt


# ----------------------------------------------------------------------------------------------
# Block coefficients (per neuron) and the eligibility of one weight matrix (per synapse)
# ----------------------------------------------------------------------------------------------


class PostBlock:
    """Postsynaptic coefficients of one block of K steps (see the module docstring), all (batch, K, post)
    or (batch, post), from ψ[t], ψ[t-1] and a[t] = α (1 − s[t-1]) of the block's steps and the weights c.

    Backward scan over the block, with T[t] = [[a[t], 0], [ψ[t-1], q[t]]], q[t] = ρ − β_a ψ[t-1]:
        M[t] = c_t ψ[t] (1, −β_a) + M[t+1] T[t+1]    → m0 = M_0 (weights of ε^I in A), m_in = M[t0] T[t0]
        Mr: the same with c_t = 1                     → for D (only with the regulariser)
        R[t] = R[t+1] T[t+1], R[t1] = 1               → r00, r10 = R_·0 (weights of ε^I in the end state),
                                                        phi = R[t0] T[t0] (weights of the incoming state)
    """

    def __init__(self, psi, psi_prev, decay, c, beta_a: float, rho: float, with_reg: bool) -> None:
        adaptive = beta_a != 0.0
        q = rho - beta_a * psi_prev
        weights = [c.view(1, -1, 1)] + ([torch.ones_like(c).view(1, -1, 1)] if with_reg else [])
        self.m0, self.m_in = [], []
        for w in weights:  # M for A, then for D
            u = w * psi
            m0 = torch.empty_like(psi)
            m1 = torch.empty_like(psi) if adaptive else None  # M_1 = 0 without adaptation
            for k in range(psi.shape[1] - 1, -1, -1):
                if k == psi.shape[1] - 1:
                    m0[:, k] = u[:, k]
                    if adaptive:
                        m1[:, k] = -beta_a * u[:, k]
                elif adaptive:  # M[k] = u_k (1, −β_a) + M[k+1] T[k+1]
                    a, sp, qq = decay[:, k + 1], psi_prev[:, k + 1], q[:, k + 1]
                    m0[:, k] = u[:, k] + a * m0[:, k + 1] + sp * m1[:, k + 1]
                    m1[:, k] = qq * m1[:, k + 1] - beta_a * u[:, k]
                else:
                    torch.addcmul(u[:, k], decay[:, k + 1], m0[:, k + 1], out=m0[:, k])
            self.m0.append(m0)
            if adaptive:
                self.m_in.append((decay[:, 0] * m0[:, 0] + psi_prev[:, 0] * m1[:, 0], q[:, 0] * m1[:, 0]))
            else:
                self.m_in.append((decay[:, 0] * m0[:, 0], None))
        self.r00 = torch.empty_like(psi)
        self.r10 = torch.empty_like(psi) if adaptive else None
        r00, r10, r11 = torch.ones_like(psi[:, 0]), torch.zeros_like(psi[:, 0]), torch.ones_like(psi[:, 0])
        for k in range(psi.shape[1] - 1, -1, -1):
            if k < psi.shape[1] - 1:  # R[k] = R[k+1] T[k+1]
                a, sp, qq = decay[:, k + 1], psi_prev[:, k + 1], q[:, k + 1]
                r00, r10, r11 = a * r00, a * r10 + sp * r11, qq * r11
            self.r00[:, k] = r00
            if adaptive:
                self.r10[:, k] = r10
        a, sp, qq = decay[:, 0], psi_prev[:, 0], q[:, 0]
        self.phi = (a * r00, a * r10 + sp * r11, qq * r11)  # (Φ00, Φ10, Φ11); Φ01 = 0

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
    """

    def __init__(
        self, batch: int, post: int, pre: int, adaptive: bool, with_reg: bool, like: torch.Tensor, gain: float
    ) -> None:
        self.eps = like.new_zeros(batch, post, pre)
        self.eps_a = like.new_zeros(batch, post, pre) if adaptive else None
        self.acc = like.new_zeros(batch, post, pre)
        self.reg = like.new_zeros(post, pre) if with_reg else None
        self.gain = gain  # g (LIFParams.gain)

    def absorb(self, pre: torch.Tensor, blk: PostBlock) -> None:
        (w0, w1), m0 = blk.m_in[0], blk.m0[0]
        self.acc.addcmul_(w0.unsqueeze(-1), self.eps)
        if self.eps_a is not None:
            self.acc.addcmul_(w1.unsqueeze(-1), self.eps_a)
        self.acc.baddbmm_(m0.transpose(1, 2), pre, alpha=self.gain)
        if self.reg is not None:
            (w0, w1), m0 = blk.m_in[1], blk.m0[1]
            self.reg.add_(torch.einsum("bj,bji->ji", w0, self.eps))
            if self.eps_a is not None:
                self.reg.add_(torch.einsum("bj,bji->ji", w1, self.eps_a))
            self.reg.addmm_(m0.flatten(0, 1).T, pre.flatten(0, 1), alpha=self.gain)
        phi00, phi10, phi11 = (f.unsqueeze(-1) for f in blk.phi)
        if self.eps_a is not None:  # uses the old ε, so before ε is advanced
            self.eps_a.mul_(phi11).addcmul_(phi10, self.eps)
            self.eps_a.baddbmm_(blk.r10.transpose(1, 2), pre, alpha=self.gain)
        self.eps.mul_(phi00)
        self.eps.baddbmm_(blk.r00.transpose(1, 2), pre, alpha=self.gain)

    def grad(self, signal: torch.Tensor, rate_signal: torch.Tensor | None) -> torch.Tensor:
        """dE/dW (pre, post) = Σ_batch L_j A_ji + r_j D_ji, for learning signal L (batch, post) and r (post,)."""
        g = torch.einsum("bj,bji->ij", signal, self.acc)
        if self.reg is not None and rate_signal is not None:
            g = g + (rate_signal.unsqueeze(-1) * self.reg).T
        return g

    def nbytes(self) -> int:
        return sum(t.nbytes for t in (self.eps, self.eps_a, self.acc, self.reg) if t is not None)


class InputEligibility(Eligibility):
    """`Eligibility` of W_in from the input events (module docstring), its tensors laid out (batch, pre, post) so
    that an event adds one contiguous row; `absorb` takes the trace P at the block's start (batch, inputs) and the
    block's events (sample · K + step, sample, channel, value)."""

    def __init__(self, batch, post, pre, adaptive, with_reg, like, gain, beta: float) -> None:
        super().__init__(batch, pre, post, adaptive, with_reg, like, gain)  # (batch, pre, post); reg (pre, post)
        self.beta = beta

    @staticmethod
    def bags(events, batch: int, pre: int) -> tuple:
        """The block's events as two CSR lists for `embedding_bag`: per (sample, input) and per input (summed over
        the batch): (rows of G, offsets, values) each."""
        bs, b, c, v = events
        out = []
        for key, n in ((b * pre + c, batch * pre), (c, pre)):
            order = torch.argsort(key, stable=True)
            offsets = torch.zeros(n, dtype=torch.long, device=key.device)
            offsets[1:] = torch.bincount(key, minlength=n).cumsum(0)[:-1]
            out.append((bs.index_select(0, order), offsets, v.index_select(0, order)))
        return tuple(out)

    def _add_block_sum(self, target: torch.Tensor, q: torch.Tensor, carry: torch.Tensor, bags,
                       summed: bool = False) -> None:
        """target += g Σ_k q[k] ⊗ ε^I[k] (per sample, or `summed` over the batch) via G (module docstring); the
        events' rows of G summed per bag by `embedding_bag` (one fused gather-scale-sum, as EventProp's input)."""
        g = q.clone()
        for k in range(q.shape[1] - 2, -1, -1):
            g[:, k].add_(g[:, k + 1], alpha=self.beta)
        rows, offsets, v = bags[1] if summed else bags[0]
        sums = F.embedding_bag(rows, g.view(-1, g.shape[2]), offsets, mode="sum", per_sample_weights=v.to(g.dtype))
        if summed:
            target.addmm_(carry.T, g[:, 0], alpha=self.gain * self.beta)
            target.add_(sums, alpha=self.gain)
        else:
            target.addcmul_(carry.unsqueeze(2), g[:, 0].unsqueeze(1), value=self.gain * self.beta)
            target.view(-1, target.shape[2]).add_(sums, alpha=self.gain)

    def absorb(self, carry: torch.Tensor, events, blk: PostBlock) -> None:  # type: ignore[override]
        events = self.bags(events, carry.shape[0], carry.shape[1])
        (w0, w1), m0 = blk.m_in[0], blk.m0[0]
        self.acc.addcmul_(w0.unsqueeze(1), self.eps)
        if self.eps_a is not None:
            self.acc.addcmul_(w1.unsqueeze(1), self.eps_a)
        self._add_block_sum(self.acc, m0, carry, events)
        if self.reg is not None:
            (w0, w1), m0 = blk.m_in[1], blk.m0[1]
            self.reg.add_(torch.einsum("bj,bij->ij", w0, self.eps))
            if self.eps_a is not None:
                self.reg.add_(torch.einsum("bj,bij->ij", w1, self.eps_a))
            self._add_block_sum(self.reg, m0, carry, events, summed=True)
        phi00, phi10, phi11 = (f.unsqueeze(1) for f in blk.phi)
        if self.eps_a is not None:  # uses the old ε, so before ε is advanced
            self.eps_a.mul_(phi11).addcmul_(phi10, self.eps)
            self._add_block_sum(self.eps_a, blk.r10, carry, events)
        self.eps.mul_(phi00)
        self._add_block_sum(self.eps, blk.r00, carry, events)

    def grad(self, signal: torch.Tensor, rate_signal: torch.Tensor | None) -> torch.Tensor:
        g = torch.einsum("bj,bij->ij", signal, self.acc)
        if self.reg is not None and rate_signal is not None:
            g = g + rate_signal.unsqueeze(0) * self.reg
        return g


# ----------------------------------------------------------------------------------------------
# The algorithm
# ----------------------------------------------------------------------------------------------


class EProp(SpikingModule):
    """e-prop with symmetric or fixed random feedback; gradients accumulated forward in time."""

    def heuristics(self) -> list[str]:
        a = self.cfg.algorithm
        out = [f"pseudo-derivative (γ {a.gamma:g})", "no gradient through time (eligibility traces)"]
        return out + (["random feedback"] if a.feedback == "random" else [])

    def __init__(self, cfg, data) -> None:
        super().__init__(cfg, data)
        a = self.cfg.algorithm
        if a.feedback not in FEEDBACKS:
            raise ConfigError(f"unknown algorithm.feedback '{a.feedback}'; choose one of: {', '.join(FEEDBACKS)}")
        if not a.gamma > 0:
            raise ConfigError(f"algorithm.gamma must be > 0, got {a.gamma}")
        if not (isinstance(a.chunk, int) and a.chunk >= 1):
            raise ConfigError(f"algorithm.chunk must be an integer >= 1 (steps per block), got {a.chunk}")
        if not a.alif_beta >= 0:
            raise ConfigError(f"algorithm.alif_beta must be >= 0 (0: plain LIF), got {a.alif_beta}")
        if not a.alif_tau > 0:
            raise ConfigError(f"algorithm.alif_tau must be > 0 seconds, got {a.alif_tau}")
        if not self.net.hidden.threshold > 0:
            raise ConfigError(f"model.threshold must be > 0 for e-prop's ψ, got {self.net.hidden.threshold}")
        self.gamma, self.chunk, self.feedback = float(a.gamma), int(a.chunk), str(a.feedback)
        self.beta_a, self.rho = float(a.alif_beta), math.exp(-self.net.hidden.dt / float(a.alif_tau))
        if self.feedback == "random":
            gen = torch.Generator().manual_seed(int(a.feedback_seed))
            n_hidden, n_out = self.net.w_out.shape
            b = float(a.feedback_std) * torch.randn(n_hidden, n_out, generator=gen) / n_hidden**0.5
            self.register_buffer("feedback_matrix", b)

    def feedback_weights(self) -> torch.Tensor:
        """B (hidden, classes): the readout's own weights (symmetric) or the fixed random matrix."""
        return self.net.w_out if self.feedback == "symmetric" else self.feedback_matrix

    @torch.no_grad()
    def simulate(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Hidden spikes and readout voltages (batch, time, ·); the suite's LIF, or ALIF if alif_beta > 0."""
        if not self.beta_a:
            return self.net.simulate(x)
        net, drive = self.net, self.net.drive(x)
        i, v, s, adapt = (drive.new_zeros(drive.shape[0], net.n_hidden) for _ in range(4))
        spikes = torch.empty_like(drive)
        for t in range(x.shape[1]):
            d = drive[:, t] + s @ net.w_rec if net.recurrent else drive[:, t]
            i, _, v, s, adapt = hidden_step(i, v, s, adapt, d, net.hidden, self.beta_a, self.rho)
            spikes[:, t] = s
        return spikes, net.readout(spikes)

    @torch.no_grad()
    def forward_backward(self, x: "torch.Tensor | EventBatch", y: torch.Tensor) -> StepOutput:
        """x: frames, or the event batch (data.format=events), densified one block of steps at a time."""
        net, p = self.net, self.net.hidden
        if net.delays is not None:  # fixed input delays (model.delays.learn=false): e-prop's input is x̃
            x = net.delays(as_frames(x))
        batch, steps, n_in = x.shape
        n_hidden, with_reg, adaptive = net.n_hidden, bool(self.objective.reg_strength), bool(self.beta_a)
        c = readout_time_kernel(steps, self.objective.kind, net.readout_params, x.dtype, x.device)
        c_steps = c.tolist()

        # state carried from block to block
        like = torch.empty(0, dtype=x.dtype, device=x.device)
        i, v, s, adapt, psi_last = (like.new_zeros(batch, n_hidden) for _ in range(5))
        pre_in, pre_rec = like.new_zeros(batch, n_in), like.new_zeros(batch, n_hidden)
        weighted_counts, counts = like.new_zeros(batch, n_hidden), like.new_zeros(batch, n_hidden)
        elig = [InputEligibility(batch, n_hidden, n_in, adaptive, with_reg, like, p.gain, p.beta)]
        if net.recurrent:
            elig.append(Eligibility(batch, n_hidden, n_hidden, adaptive, with_reg, like, p.gain))
        held = 0

        for t0 in range(0, steps, self.chunk):
            k_steps = min(self.chunk, steps - t0)
            xb = x.frames(t0, t0 + k_steps) if isinstance(x, EventBatch) else x[:, t0 : t0 + k_steps]
            drive = xb @ net.w_in
            psi, psi_prev, decay = torch.empty_like(drive), torch.empty_like(drive), torch.empty_like(drive)
            flat = xb.reshape(-1)  # the block's input events: flat index (b·K + s)·inputs + c
            idx = flat.nonzero().squeeze(1)
            events = (torch.div(idx, n_in, rounding_mode="floor"), torch.div(idx, k_steps * n_in, rounding_mode="floor"),
                      idx % n_in, flat.index_select(0, idx))
            del flat, idx
            carry = pre_in  # ε^I at the block's start (pre_in is replaced, not modified, below)
            pre_blk = [torch.empty_like(drive)] if net.recurrent else []
            for k in range(k_steps):
                # ε^I[t] = β ε^I[t-1] + x[t] (inputs) and + s[t-1] (recurrent); a[t] = α (1 − s[t-1])
                pre_in = torch.add(xb[:, k], pre_in, alpha=p.beta)
                decay[:, k] = p.alpha * (1.0 - s)
                psi_prev[:, k] = psi_last
                d = drive[:, k]
                if net.recurrent:
                    pre_rec = torch.add(s, pre_rec, alpha=p.beta)
                    pre_blk[0][:, k] = pre_rec
                    d = d + s @ net.w_rec
                i, u_eff, v, s, adapt = hidden_step(i, v, s, adapt, d, p, self.beta_a, self.rho)
                psi_last = pseudo_derivative(u_eff, p.threshold, self.gamma)
                psi[:, k] = psi_last
                weighted_counts.add_(s, alpha=c_steps[t0 + k])
                counts.add_(s)
            blk = PostBlock(psi, psi_prev, decay, c[t0 : t0 + k_steps], self.beta_a, self.rho, with_reg)
            elig[0].absorb(carry, events, blk)
            for e, pre in zip(elig[1:], pre_blk):
                e.absorb(pre, blk)
            block = [drive, psi, psi_prev, decay, *pre_blk, *events]
            held = max(held, sum(t.nbytes for t in block) + blk.nbytes())
            del xb, drive, psi, psi_prev, decay, pre_blk, blk, block, events, carry  # one block's buffers at a time

        # the end of the trial: the error is known, apply the learning signals once
        logits = weighted_counts @ net.w_out
        loss = F.cross_entropy(logits, y)
        delta = (torch.softmax(logits, -1) - F.one_hot(y, logits.shape[-1]).to(logits.dtype)) / batch
        rate_signal = None
        if with_reg:
            obj = self.objective
            loss = loss + obj.regulariser(counts.unsqueeze(1))
            rate_signal = 2.0 * obj.reg_strength * (obj.batch_mean(counts) - obj.reg_target) / (n_hidden * batch)
        signal = delta @ self.feedback_weights().T
        self._add_grad(net.w_out, weighted_counts.T @ delta)
        for e, w in zip(elig, (net.w_in, net.w_rec)):
            self._add_grad(w, e.grad(signal, rate_signal))

        state = [i, v, s, adapt, psi_last, pre_in, pre_rec, weighted_counts, counts, c]
        held += sum(t.nbytes for t in state) + sum(e.nbytes() for e in elig)
        return StepOutput(loss, logits, counts, saved_bytes=held)

    @staticmethod
    def _add_grad(param: torch.Tensor, g: torch.Tensor) -> None:
        param.grad = g.to(param.dtype) if param.grad is None else param.grad + g
