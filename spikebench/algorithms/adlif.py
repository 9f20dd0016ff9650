"""The adaptive LIF neuron (adLIF), `model.neuron=adlif`: the suite's exponential synapse driving a membrane that
is coupled to an adaptation current, written once (as neuron.py writes the LIF neuron once).

The model (Baronig, Ferrand, Sabathiel & Legenstein 2025, "Advancing spatio-temporal processing in spiking neural
networks through adaptation"; the adLIF of Bittar & Garner 2022), with the suite's synapse: between spikes

    τ_syn İ = −I,    τ_u u̇ = −u + I − w,    τ_w ẇ = −w + q a u,

a per-neuron adaptation current w fed by the membrane (a: the sub-threshold coupling, which makes the neuron a
damped oscillator, a "resonator") and, at each of the neuron's spikes, a jump of w (b: spike-frequency
adaptation); q scales both (`model.adlif.coupling`, 60 in the released SE-adLIF models). Discretised by the
symplectic Euler method of that paper (their Eqs. 6a, 6b: the membrane is updated with the previous w, then w with
the new membrane, after its reset), which keeps the oscillation stable where forward Euler does not; these
discrete equations are the definition the suite trains:

    I[t] = β_syn I[t−1] + W_in x[t] + W_rec s[t−1]                 (the suite's synapse, neuron.py)
    U[t] = α V[t−1] + γ I[t] − (1 − α) W[t−1]                       (6a; γ = 1 − α with model.integration=held)
    s[t] = Θ(U[t] − ϑ),   V[t] = U[t] − (U[t] − V_reset) s[t]        (spike and reset)
    W[t] = β W[t−1] + (1 − β) q (a V[t] + b s[t])                    (6b)

with α = exp(−dt/τ_u), β = exp(−dt/τ_w) per neuron. With `model.integration=exact` the synaptic current decays
within the step (γ of neuron.LIFParams.gain with τ_u in place of τ_mem) while w is held over it, as in 6a.

τ_u, τ_w, a and b are learned per neuron, drawn uniformly from the ranges `model.adlif.{tau_u,tau_w,a,b}` and
clamped back into them after every optimiser step (`AdaptiveNeurons.constrain`), as the paper trains them. The
ranges are the suite's defaults (configs/train.yaml), not a published recipe for every data set: tune them.

Training: BPTT trains through `adlif_sequence`, one autograd node whose backward is the discrete adjoint of these
equations (Θ' replaced by the surrogate), tested against autograd of the unrolled loop `adlif_reference`; no other
algorithm implements adLIF yet (configs/algorithms.py declares which neurons each one trains, and refuses the
others in one line).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .neuron import LIFParams, input_gain
from .surrogates import get_surrogate, spike


@dataclass(frozen=True)
class AdLIFRanges:
    """The per-neuron parameters' ranges (initialisation and clamping); times in seconds."""

    tau_u: tuple[float, float] = (5e-3, 25e-3)
    tau_w: tuple[float, float] = (60e-3, 300e-3)
    a: tuple[float, float] = (0.0, 1.0)
    b: tuple[float, float] = (0.0, 2.0)
    coupling: float = 60.0


class AdaptiveNeurons(nn.Module):
    """The learned per-neuron parameters of an adLIF population: τ_u, τ_w (seconds), a, b."""

    def __init__(self, n: int, ranges: AdLIFRanges) -> None:
        super().__init__()
        self.ranges = ranges

        def uniform(lo_hi: tuple[float, float]) -> nn.Parameter:
            lo, hi = lo_hi
            return nn.Parameter(lo + (hi - lo) * torch.rand(n))

        self.tau_u, self.tau_w = uniform(ranges.tau_u), uniform(ranges.tau_w)
        self.a, self.b = uniform(ranges.a), uniform(ranges.b)

    @torch.no_grad()
    def constrain(self) -> None:
        """Clamp every parameter back into its range (after an optimiser step)."""
        r = self.ranges
        for p, (lo, hi) in ((self.tau_u, r.tau_u), (self.tau_w, r.tau_w), (self.a, r.a), (self.b, r.b)):
            p.clamp_(lo, hi)


def adlif_coefficients(neurons: AdaptiveNeurons, p: LIFParams) -> tuple[torch.Tensor, ...]:
    """(α, β, γ, 1 − β) per neuron for step dt: α = e^{−dt/τ_u}, β = e^{−dt/τ_w}, γ the synaptic input gain."""
    alpha = torch.exp(-p.dt / neurons.tau_u)
    beta = torch.exp(-p.dt / neurons.tau_w)
    gamma = input_gain(neurons.tau_u, torch.full_like(neurons.tau_u, p.tau_syn), p.dt, p.integration)
    return alpha, beta, gamma, 1.0 - beta


def adlif_step(i: torch.Tensor, v: torch.Tensor, w: torch.Tensor, drive: torch.Tensor, p: LIFParams,
               coeffs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """The synapse and Eq. 6a: (I[t], U[t]) from I[t−1], V[t−1], W[t−1] and the step's drive."""
    alpha, _, gamma, _ = coeffs
    i = p.beta * i + drive
    return i, alpha * v + gamma * i - (1.0 - alpha) * w


def adaptation_step(w: torch.Tensor, v: torch.Tensor, s: torch.Tensor, neurons: AdaptiveNeurons,
                    coeffs: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Eq. 6b: W[t] from W[t−1], the membrane after reset V[t] and the spikes s[t]."""
    _, beta, _, one_minus_beta = coeffs
    return beta * w + one_minus_beta * neurons.ranges.coupling * (neurons.a * v + neurons.b * s)


def adlif_reference(a: torch.Tensor, w_rec: torch.Tensor | None, p: LIFParams, neurons: AdaptiveNeurons,
                    surrogate: str = "fast_sigmoid", slope: float = 10.0, detach_reset: bool = True
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Hidden spikes and pre-reset membranes U, (batch, time, hidden), for the drive a = W_in x: the equations
    above unrolled, differentiable by autograd (Θ' replaced by the surrogate) in the weights and in τ_u, τ_w, a, b.
    `detach_reset`: no gradient through the reset (as neuron.lif_reference). The specification of
    `adlif_sequence`; slow, and its graph of ~20 nodes per step is too large for long trials: tests only."""
    batch, steps, hidden = a.shape
    coeffs = adlif_coefficients(neurons, p)
    i = a.new_zeros(batch, hidden)
    v = a.new_zeros(batch, hidden)
    w = a.new_zeros(batch, hidden)
    s = a.new_zeros(batch, hidden)
    spikes, us = [], []
    for t in range(steps):
        drive = a[:, t] if w_rec is None else a[:, t] + s @ w_rec
        i, u = adlif_step(i, v, w, drive, p, coeffs)
        s = spike(u - p.threshold, surrogate, slope)
        gate = s.detach() if detach_reset else s
        v = u - (u - p.v_reset) * gate
        w = adaptation_step(w, v, s, neurons, coeffs)
        spikes.append(s)
        us.append(u)
    return torch.stack(spikes, 1), torch.stack(us, 1)


# ----------------------------------------------------------------------------------------------
# The whole sequence as one autograd node: forward without a graph, backward by the discrete adjoint
# ----------------------------------------------------------------------------------------------


def adlif_sequence(a: torch.Tensor, w_rec: torch.Tensor | None, p: LIFParams, neurons: AdaptiveNeurons,
                   surrogate: str = "fast_sigmoid", slope: float = 10.0, detach_reset: bool = True
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """`adlif_reference`'s spikes and U as one autograd node (what BPTT trains with): the same numbers, the
    gradient of the same unrolled equations (tests/test_adlif.py), with three (batch, time, hidden) maps kept for
    the backward pass (U, I, W) instead of a graph of every step's operations."""
    alpha, beta, gamma, _ = adlif_coefficients(neurons, p)
    q = neurons.ranges.coupling
    w = w_rec if w_rec is not None else a.new_zeros(0)
    return AdLIFSequence.apply(a, w, alpha, beta, gamma, neurons.a * q, neurons.b * q, p, surrogate, slope,
                               detach_reset)


class AdLIFSequence(torch.autograd.Function):
    """Inputs: drive a (B, T, H), W_rec (or an empty tensor), per-neuron α, β, γ, qa, qb. Outputs: spikes, U."""

    @staticmethod
    def forward(ctx, a, w_rec, alpha, beta, gamma, qa, qb, p: LIFParams, surrogate: str, slope: float,
                detach_reset: bool):  # type: ignore[override]
        batch, steps, hidden = a.shape
        rec = w_rec.numel() > 0
        i = a.new_zeros(batch, hidden)
        v, w, s = torch.zeros_like(i), torch.zeros_like(i), torch.zeros_like(i)
        us, cur, ws = torch.empty_like(a), torch.empty_like(a), torch.empty_like(a)
        spikes = torch.empty_like(a)
        for t in range(steps):
            i = p.beta * i + (a[:, t] + s @ w_rec if rec else a[:, t])
            u = alpha * v + gamma * i - (1.0 - alpha) * w
            s = (u >= p.threshold).to(u.dtype)
            v = u - (u - p.v_reset) * s
            w = beta * w + (1.0 - beta) * (qa * v + qb * s)
            us[:, t], cur[:, t], ws[:, t], spikes[:, t] = u, i, w, s
        ctx.save_for_backward(us, cur, ws, spikes, w_rec, alpha, beta, gamma, qa, qb)
        ctx.p, ctx.surrogate, ctx.slope, ctx.detach_reset = p, surrogate, slope, detach_reset
        ctx.mark_non_differentiable(us)
        return spikes, us

    @staticmethod
    def backward(ctx, g_spikes, _g_us):  # type: ignore[override]
        """Reverse through the steps (notation of the module docstring; g· = ∂L/∂·):
        gW[t] = β gW[t+1] − (1 − α) gU[t+1];   gV[t] = α gU[t+1] + (1 − β) qa gW[t];
        gs[t] = ∂L/∂s[t] + gI[t+1] W_recᵀ + (1 − β) qb gW[t] (− (U[t] − V_r) gV[t] without detach_reset);
        gU[t] = (1 − s[t]) gV[t] + σ'(U[t] − ϑ) gs[t];   gI[t] = β_syn gI[t+1] + γ gU[t];   ∂L/∂a[t] = gI[t]."""
        us, cur, ws, spikes, w_rec, alpha, beta, gamma, qa, qb = ctx.saved_tensors
        p, sigma = ctx.p, get_surrogate(ctx.surrogate)
        batch, steps, hidden = us.shape
        rec = w_rec.numel() > 0
        g_a = torch.empty_like(us)
        g_rec = torch.zeros_like(w_rec) if rec else None
        g_alpha, g_beta, g_gamma, g_qa, g_qb = (torch.zeros_like(alpha) for _ in range(5))
        g_i_next, g_u_next, g_w_next = (us.new_zeros(batch, hidden) for _ in range(3))
        for t in range(steps - 1, -1, -1):
            u, s = us[:, t], spikes[:, t]
            v = u - (u - p.v_reset) * s
            w_prev = ws[:, t - 1] if t > 0 else torch.zeros_like(u)
            v_prev = (us[:, t - 1] - (us[:, t - 1] - p.v_reset) * spikes[:, t - 1]) if t > 0 else torch.zeros_like(u)
            g_w = beta * g_w_next - (1.0 - alpha) * g_u_next
            g_v = alpha * g_u_next + (1.0 - beta) * qa * g_w
            g_s = g_spikes[:, t] + (1.0 - beta) * qb * g_w
            if rec:
                g_s = g_s + g_i_next @ w_rec.T
            if not ctx.detach_reset:
                g_s = g_s - (u - p.v_reset) * g_v
            g_u = (1.0 - s) * g_v + sigma(u - p.threshold, ctx.slope) * g_s
            g_i = p.beta * g_i_next + gamma * g_u
            g_a[:, t] = g_i
            if rec and t > 0:
                g_rec += spikes[:, t - 1].T @ g_i
            g_alpha += (g_u * (v_prev + w_prev)).sum(0)
            g_gamma += (g_u * cur[:, t]).sum(0)
            g_beta += (g_w * (w_prev - (qa * v + qb * s))).sum(0)
            g_qa += (g_w * (1.0 - beta) * v).sum(0)
            g_qb += (g_w * (1.0 - beta) * s).sum(0)
            g_i_next, g_u_next, g_w_next = g_i, g_u, g_w
        return g_a, g_rec, g_alpha, g_beta, g_gamma, g_qa, g_qb, None, None, None, None
