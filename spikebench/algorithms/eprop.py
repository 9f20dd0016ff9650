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

The last block (`eprop_traces.py`). Once its forward has run, every spike of the trial is known, and so are δ, L
and r: its sums are contracted with them directly (Σ_b L_bj Σ_k M_bj[k] ε^I_bi[k] is one batch-summed event sum),
and neither its trace update nor a per-sample accumulator is needed. A trial of at most `chunk` steps is one block
and makes no (batch, post, pre) tensor at all; a longer one keeps A and X per sample between blocks, which costs time
(several passes over batch × synapses per block) and memory (2–3 such tensors) against the block's buffers
(~8 (batch, K, hidden) maps): `algorithm.chunk` trades the two, never the gradient (results/costs/README.md).
On CPU the block's steps and its scans run as compiled loops (kernels/cpu_eprop.py; model.backend=reference: the
torch loops `EProp._forward_block` and `PostBlock`'s scans, which they are tested against; auto: the compiled
loops where they compile, else the torch loops; cpu: the compiled loops or a one-line refusal).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from spikebench.errors import ConfigError
from spikebench.events import EventBatch, as_frames, bag_offsets

from .base import SpikingModule, StepOutput
from .eprop_traces import Eligibility, InputEligibility, PostBlock
from .kernels import cpu_eprop
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


def block_events(x: "torch.Tensor | EventBatch", t0: int, k_steps: int) -> tuple:
    """The input events of steps [t0, t0 + K): (sample · K + step, sample, channel, value), int64 indices; read from
    the event batch's time-major rows, or found in the frames."""
    if isinstance(x, EventBatch):
        lo, hi = x.step_range(t0, t0 + k_steps)
        row = x.row[lo:hi].long()
        b, s = row % x.batch, torch.div(row, x.batch, rounding_mode="floor") - t0
        return b * k_steps + s, b, x.channel[lo:hi].long(), x.count[lo:hi]
    n_in = x.shape[2]
    flat = x[:, t0 : t0 + k_steps].reshape(-1)  # flat index (b·K + s)·inputs + c
    idx = flat.nonzero().squeeze(1)
    bs = torch.div(idx, n_in, rounding_mode="floor")
    return bs, torch.div(bs, k_steps, rounding_mode="floor"), idx % n_in, flat.index_select(0, idx)


def block_drive(events, batch: int, k_steps: int, w_in: torch.Tensor) -> torch.Tensor:
    """x @ W_in for a block of the event batch, (batch, K, hidden): one `embedding_bag` over its events, whose
    time-major order (step, sample) is already the order of the bags (no sort, unlike `events.bag_product`)."""
    bs, b, ch, v = events
    offsets = bag_offsets((bs - b * k_steps) * batch + b, k_steps * batch)
    out = F.embedding_bag(ch, w_in, offsets, mode="sum", per_sample_weights=v.to(w_in.dtype))
    return out.view(k_steps, batch, -1).transpose(0, 1).contiguous()


def input_trace(carry, events, batch: int, n_in: int, k_steps: int, beta: float, like) -> torch.Tensor:
    """ε^I of the inputs after a block, ε^I[t] = β ε^I[t-1] + x[t]: β^K times the trace at its start plus each
    event's value times β^(K−1−step), summed per (sample, channel)."""
    bs, b, ch, v = events
    out = like.new_zeros(batch, n_in) if carry is None else carry * beta**k_steps
    powers = beta ** torch.arange(k_steps - 1, -1, -1, dtype=like.dtype, device=like.device)
    out.view(-1).index_add_(0, b * n_in + ch, v.to(like.dtype) * powers[bs - b * k_steps])
    return out


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
        if self.net.hidden.backend == "cpu" and cpu_eprop.load() is None:  # asked for explicitly: no silent fallback
            raise ConfigError("model.backend=cpu cannot run here: e-prop's C++ loop failed to compile (see the warning "
                              "above); use model.backend=auto or reference")
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
        """x: frames, or the event batch (data.format=events), read one block of steps at a time."""
        net, p = self.net, self.net.hidden
        if net.delays is not None:  # fixed input delays (model.delays.learn=false): e-prop's input is x̃
            x = net.delays(as_frames(x))
        batch, steps, n_in = x.shape
        n_hidden, with_reg, adaptive = net.n_hidden, bool(self.objective.reg_strength), bool(self.beta_a)
        c = readout_time_kernel(steps, self.objective.kind, net.readout_params, x.dtype, x.device)
        like = torch.empty(0, dtype=x.dtype, device=x.device)
        ops = cpu_eprop.load() if p.backend in ("auto", "cpu") and cpu_eprop.usable(like) else None
        if ops is None and p.backend == "cpu":
            raise ConfigError(f"model.backend=cpu runs e-prop on CPU float32/float64 tensors, got {x.device.type} "
                              f"{x.dtype}; use model.backend=auto")
        w_rec = net.w_rec.detach().contiguous() if net.recurrent else None

        # state carried from block to block: i, v, s, adapt, ψ[t-1], ε^I_rec, Σ c_t s[t], Σ s[t]
        state = [like.new_zeros(batch, n_hidden) for _ in range(8)]
        carry = None  # ε^I of the inputs at the block's start (None: zero, the first block)
        elig = [InputEligibility(batch, n_hidden, n_in, adaptive, with_reg, like, p.gain, p.beta)]
        if net.recurrent:
            elig.append(Eligibility(batch, n_hidden, n_hidden, adaptive, with_reg, like, p.gain))
        held = 0

        for t0 in range(0, steps, self.chunk):
            k_steps = min(self.chunk, steps - t0)
            events = block_events(x, t0, k_steps)
            drive = block_drive(events, batch, k_steps, net.w_in) if isinstance(x, EventBatch) else \
                x[:, t0 : t0 + k_steps] @ net.w_in
            c_blk = c[t0 : t0 + k_steps]
            if ops is not None:
                psi, psi_prev, decay, pre_rec = ops.forward_block(drive, w_rec, *state, c_blk, p.alpha, p.gain, p.beta,
                                                                  p.threshold, p.v_reset, self.beta_a, self.rho, self.gamma)
            else:
                psi, psi_prev, decay, pre_rec = self._forward_block(drive, w_rec, state, c_blk)
            last = t0 + k_steps == steps
            blk = PostBlock(psi, psi_prev, decay, c_blk, self.beta_a, self.rho, with_reg, ops, last)
            pre = [elig[0].with_bags(carry, events), *([pre_rec] if net.recurrent else [])]
            if not last:
                for e, pr in zip(elig, pre):
                    e.absorb(pr, blk)
            else:  # the trial's last block: the error is known, the learning signals are applied once
                weighted_counts, counts = state[6], state[7]
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
                for e, pr, w in zip(elig, pre, (net.w_in, net.w_rec)):
                    self._add_grad(w, e.finish(pr, blk, signal, rate_signal))
            if not last:
                carry = input_trace(carry, events, batch, n_in, k_steps, p.beta, like)
            block = [drive, psi, psi_prev, decay, *pre[1:], *events]
            held = max(held, sum(t.nbytes for t in block) + blk.nbytes())
            del drive, psi, psi_prev, decay, pre_rec, pre, blk, block, events  # one block's buffers at a time

        held += sum(t.nbytes for t in [*state, c] + ([carry] if carry is not None else [])) + sum(e.nbytes() for e in elig)
        return StepOutput(loss, logits, counts, saved_bytes=held)

    def _forward_block(self, drive, w_rec, state: list, c_blk: torch.Tensor):
        """The block's steps, the torch loop (the specification of kernels/cpu_eprop.forward_block): ψ, ψ[t-1],
        a = α(1 − s[t-1]) and ε^I_rec (batch, K, hidden); `state` updated in place."""
        p, (i, v, s, adapt, psi_last, pre_rec, weighted_counts, counts) = self.net.hidden, state
        psi, psi_prev, decay = torch.empty_like(drive), torch.empty_like(drive), torch.empty_like(drive)
        pre_blk = torch.empty_like(drive) if w_rec is not None else drive.new_zeros(0)
        for k, ck in enumerate(c_blk.tolist()):
            decay[:, k] = p.alpha * (1.0 - s)
            psi_prev[:, k] = psi_last
            d = drive[:, k]
            if w_rec is not None:
                pre_rec = torch.add(s, pre_rec, alpha=p.beta)
                pre_blk[:, k] = pre_rec
                d = d + s @ w_rec
            i, u_eff, v, s, adapt = hidden_step(i, v, s, adapt, d, p, self.beta_a, self.rho)
            psi_last = pseudo_derivative(u_eff, p.threshold, self.gamma)
            psi[:, k] = psi_last
            weighted_counts.add_(s, alpha=ck)
            counts.add_(s)
        for old, new in zip(state[:6], (i, v, s, adapt, psi_last, pre_rec)):
            old.copy_(new)
        return psi, psi_prev, decay, pre_blk

    @staticmethod
    def _add_grad(param: torch.Tensor, g: torch.Tensor) -> None:
        param.grad = g.to(param.dtype) if param.grad is None else param.grad + g
