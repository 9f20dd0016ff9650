"""The neuron model, once: leaky integrate-and-fire (LIF) with exponential synapses.

Every algorithm of the suite simulates this model, the continuous-time LIF neuron

    τ_mem V̇ = −V + I,   τ_syn İ = −I,   I jumps by w at every input spike,   V ← V_reset when V ≥ ϑ,

sampled on a grid of step dt, with the spikes of bin t arriving at the start of the bin:

    I[t] = β I[t-1] + W_in x[t] + W_rec s[t-1]            (synaptic current at the start of step t)
    U[t] = α V[t-1] + γ I[t]                              (membrane at the end of step t, before reset)
    s[t] = Θ(U[t] − ϑ)                                     (spike)
    V[t] = U[t] − (U[t] − V_reset) s[t]                   (reset to V_reset)

with α = exp(−dt/τ_mem), β = exp(−dt/τ_syn) and the input gain γ (`LIFParams.gain`, config key
`model.integration`):
  held (default)   γ = 1 − α — the current is held at I[t] over the step (as in Zenke & Vogels 2021); it drives
                   the membrane harder than the continuous model (by 10 % at dt = 1 ms, 47 % at dt = 4 ms, for
                   τ 20/5 ms), and the configs' initial weights were chosen with it.
  exact            γ = τ_syn / (τ_syn − τ_mem) · (β − α) — the current decays within the step, so between
                   spikes U[t] is the continuous model's V at the end of the step, exactly ("exact
                   integration", Rotter & Diesmann 1999, Biol. Cybern. 81:381); γ = (dt/τ) e^{−dt/τ} when
                   τ_mem = τ_syn. Only the spike times are rounded up to the end of their step, so EventProp's
                   discrete gradient agrees better with the exact one (sweeps/diagnostics/eventprop_modes.py).
The readout is the same synapse and membrane without threshold (a leaky integrator):
V_out[t] = α_out V_out[t-1] + γ_out I_out[t].

Shapes: inputs and spikes are (batch, time, neurons). `lif_sequence` is the one entry point that
simulates a whole sequence for training with surrogate gradients; its backward is the exact
adjoint of the recurrence above with Θ' replaced by a surrogate.

Backends (`LIFParams.backend`, config key `model.backend`): the eager per-step loops below
(`lif_forward_reference`, `lif_backward_reference`, `exp_filter_reference`) are the specification;
`lif_forward`, `lif_backward` and `exp_filter` run them, or with `auto` (default) a fused Triton kernel
on CUDA tensors and a compiled C++ loop on CPU tensors (algorithms/kernels/), tested against them.
"""

from __future__ import annotations

from spikebench.errors import ConfigError
import math
from dataclasses import dataclass
from functools import cached_property

import torch

from . import kernels
from .surrogates import get_surrogate, spike

INTEGRATIONS = ("held", "exact")


@dataclass(frozen=True)
class LIFParams:
    """Time constants and threshold of a LIF population; times in seconds."""

    dt: float = 1e-3
    tau_mem: float = 20e-3
    tau_syn: float = 5e-3
    threshold: float = 1.0
    v_reset: float = 0.0
    backend: str = "auto"  # how the recurrence is computed: auto | reference | triton | cpu (algorithms/kernels)
    integration: str = "held"  # input gain γ per step: held (current held over the step) | exact (decays within it)

    def __post_init__(self) -> None:
        for name in ("dt", "tau_mem", "tau_syn"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"model.{name} must be > 0 seconds, got {getattr(self, name)}")
        if self.integration not in INTEGRATIONS:
            raise ConfigError(
                f"model.integration must be one of {', '.join(INTEGRATIONS)}; got '{self.integration}'"
            )
        if self.backend not in kernels.BACKENDS:
            raise ConfigError(f"model.backend must be one of {', '.join(kernels.BACKENDS)}; got '{self.backend}'")

    @property
    def alpha(self) -> float:
        """Membrane decay per step, α = exp(−dt/τ_mem)."""
        return math.exp(-self.dt / self.tau_mem)

    @property
    def beta(self) -> float:
        """Synaptic decay per step, β = exp(−dt/τ_syn)."""
        return math.exp(-self.dt / self.tau_syn)

    @cached_property
    def gain(self) -> float:
        """Input gain γ per step: U[t] = α V[t-1] + γ I[t] (see the module docstring).

        exact: V(dt) of τ_mem V̇ = −V + I₀ e^{−t/τ_syn}, V(0) = 0, I₀ = 1, i.e. τ_syn/(τ_syn − τ_mem) (β − α);
        held: 1 − α.
        """
        if self.integration == "held":
            return 1.0 - self.alpha  # the same float as 1 − α everywhere else (the tensor path may differ by an ulp)
        t = torch.tensor
        return float(input_gain(t(self.tau_mem, dtype=torch.float64), t(self.tau_syn, dtype=torch.float64),
                                self.dt, self.integration))


def input_gain(tau_mem: torch.Tensor, tau_syn: torch.Tensor, dt: float, integration: str = "held") -> torch.Tensor:
    """γ of `LIFParams.gain` for (learnable, per-neuron) time-constant tensors, differentiable in both.

    exact: τ_syn/(τ_syn − τ_mem) (e^{−dt/τ_syn} − e^{−dt/τ_mem}), with its limit (dt/τ) e^{−dt/τ} where τ_mem = τ_syn;
    held: 1 − e^{−dt/τ_mem}.
    """
    alpha = torch.exp(-dt / tau_mem)
    if integration == "held":
        return 1.0 - alpha
    if integration != "exact":
        raise ConfigError(f"model.integration must be one of {', '.join(INTEGRATIONS)}; got '{integration}'")
    diff = tau_syn - tau_mem
    near = diff.abs() <= 1e-6 * tau_mem
    safe = torch.where(near, torch.ones_like(diff), diff)
    tau = 0.5 * (tau_mem + tau_syn)
    limit = dt / tau * torch.exp(-dt / tau)
    return torch.where(near, limit, tau_syn / safe * (torch.exp(-dt / tau_syn) - alpha))


# ----------------------------------------------------------------------------------------------
# One step of the equations (used by the reference loop and the tests)
# ----------------------------------------------------------------------------------------------


def lif_step(
    i_prev: torch.Tensor, v_prev: torch.Tensor, drive: torch.Tensor, p: LIFParams
) -> tuple[torch.Tensor, torch.Tensor]:
    """I[t] = β I[t-1] + drive[t];  U[t] = α V[t-1] + γ I[t].  Returns (I[t], U[t])."""
    i = p.beta * i_prev + drive
    u = p.alpha * v_prev + p.gain * i
    return i, u


def reset(u: torch.Tensor, s: torch.Tensor, p: LIFParams) -> torch.Tensor:
    """V[t] = U[t] − (U[t] − V_reset) s[t]."""
    return u - (u - p.v_reset) * s


def lif_reference(
    a: torch.Tensor,
    w_rec: torch.Tensor | None,
    p: LIFParams,
    surrogate: str = "fast_sigmoid",
    slope: float = 10.0,
    detach_reset: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The plainly unrolled network, differentiated by autograd: the specification of `lif_sequence`.

    a: feed-forward drive W_in x, (batch, time, hidden). Returns spikes and pre-reset membrane U,
    both (batch, time, hidden). Slow (one autograd node per operation and step); tests only.
    """
    batch, steps, hidden = a.shape
    i = a.new_zeros(batch, hidden)
    v = a.new_zeros(batch, hidden)
    s = a.new_zeros(batch, hidden)
    spikes, us = [], []
    for t in range(steps):
        drive = a[:, t] if w_rec is None else a[:, t] + s @ w_rec
        i, u = lif_step(i, v, drive, p)
        s = spike(u - p.threshold, surrogate, slope)
        v = reset(u, s.detach() if detach_reset else s, p)
        spikes.append(s)
        us.append(u)
    return torch.stack(spikes, 1), torch.stack(us, 1)


# ----------------------------------------------------------------------------------------------
# The whole sequence at once: forward without a graph, backward by the discrete adjoint
# ----------------------------------------------------------------------------------------------


@torch.no_grad()
def lif_forward(
    a: torch.Tensor, w_rec: torch.Tensor | None, p: LIFParams
) -> tuple[torch.Tensor, torch.Tensor]:
    """Simulate the hidden layer without autograd. Returns spikes and pre-reset U, (batch, time, hidden).

    Runs on the backend `p.backend` selects for a (see module docstring): the equations of
    `lif_forward_reference`, bitwise on CPU, to float32 round-off in the per-step product s W_rec on GPU.
    It is what EventProp's discrete mode, e-prop and inference use as their forward pass too.
    """
    backend = kernels.select_backend(p.backend, a, w_rec)
    out = None if backend == "reference" else kernels.lif_forward(backend, p.backend, a, w_rec, p)
    return out if out is not None else lif_forward_reference(a, w_rec, p)


@torch.no_grad()
def lif_forward_reference(
    a: torch.Tensor, w_rec: torch.Tensor | None, p: LIFParams
) -> tuple[torch.Tensor, torch.Tensor]:
    """The eager per-step loop ('reference' backend): spikes and pre-reset U, (batch, time, hidden)."""
    batch, steps, hidden = a.shape
    alpha, beta, gain, theta, v_reset = p.alpha, p.beta, p.gain, p.threshold, p.v_reset
    spikes = torch.empty_like(a)
    us = torch.empty_like(a)
    i = a.new_zeros(batch, hidden)
    v = a.new_zeros(batch, hidden)
    s = a.new_zeros(batch, hidden)
    for t in range(steps):
        i = beta * i + a[:, t]
        if w_rec is not None and t > 0:
            i.addmm_(s, w_rec)
        u = alpha * v + gain * i
        s = (u >= theta).to(a.dtype)
        v = torch.where(s > 0, torch.full_like(u, v_reset), u)
        spikes[:, t] = s
        us[:, t] = u
    return spikes, us


@torch.no_grad()
def lif_backward(
    grad_spikes: torch.Tensor,
    u: torch.Tensor,
    w_rec: torch.Tensor | None,
    p: LIFParams,
    surrogate: str,
    slope: float,
    detach_reset: bool,
) -> torch.Tensor:
    """Adjoint of `lif_forward` with Θ' := σ'. Returns dL/dI[t] for all t, (batch, time, hidden).

    Runs on the backend `p.backend` selects for u; the equations are those of `lif_backward_reference`.
    """
    backend = kernels.select_backend(p.backend, u, w_rec, surrogate)
    args = (grad_spikes, u, w_rec, p, surrogate, slope, detach_reset)
    out = None if backend == "reference" else kernels.lif_backward(backend, p.backend, *args)
    return out if out is not None else lif_backward_reference(*args)


@torch.no_grad()
def lif_backward_reference(
    grad_spikes: torch.Tensor,
    u: torch.Tensor,
    w_rec: torch.Tensor | None,
    p: LIFParams,
    surrogate: str,
    slope: float,
    detach_reset: bool,
) -> torch.Tensor:
    """The eager per-step adjoint loop ('reference' backend): dL/dI[t] for all t, (batch, time, hidden).

    Backward in time, with g_X[t] = dL/dX[t] and s[t] = Θ(U[t] − ϑ):
        g_s[t] = ∂L/∂s[t] + g_I[t+1] W_recᵀ (+ g_V[t] (V_reset − U[t]) if the reset is not detached)
        g_V[t] = α g_U[t+1]
        g_U[t] = g_V[t] (1 − s[t]) + g_s[t] σ'(U[t] − ϑ)
        g_I[t] = γ g_U[t] + β g_I[t+1]
    dL/d(drive)[t] = g_I[t]; so dL/dW_in = xᵀ g_I and dL/dW_rec = Σ_t s[t-1]ᵀ g_I[t].
    """
    sigma = get_surrogate(surrogate)
    batch, steps, hidden = u.shape
    alpha, beta, gain, theta = p.alpha, p.beta, p.gain, p.threshold
    g_i_all = torch.empty_like(u)
    g_u_next = u.new_zeros(batch, hidden)
    g_i_next = u.new_zeros(batch, hidden)
    for t in range(steps - 1, -1, -1):
        u_t = u[:, t]
        s_t = (u_t >= theta).to(u.dtype)
        g_s = grad_spikes[:, t]
        if w_rec is not None and t < steps - 1:
            g_s = g_s + g_i_next @ w_rec.T
        g_v = alpha * g_u_next
        if not detach_reset:
            g_s = g_s + g_v * (p.v_reset - u_t)
        g_u = g_v * (1.0 - s_t) + g_s * sigma(u_t - theta, slope)
        g_i = gain * g_u + beta * g_i_next
        g_i_all[:, t] = g_i
        g_u_next, g_i_next = g_u, g_i
    return g_i_all


class LIFSequence(torch.autograd.Function):
    """Autograd node for the whole hidden-layer sequence; saves only U (batch, time, hidden). In BPTT's step the
    peak holds four (batch, time, hidden) maps: U, the spikes (kept by the readout's product), their gradient and
    dL/dI (tests/test_bptt.py measures it)."""

    @staticmethod
    def forward(ctx, a, w_rec, p, surrogate, slope, detach_reset):  # type: ignore[override]
        spikes, u = lif_forward(a, w_rec, p)
        ctx.save_for_backward(u, w_rec)
        ctx.cfg = (p, surrogate, slope, detach_reset)
        ctx.has_rec = w_rec is not None
        return spikes

    @staticmethod
    def backward(ctx, grad_spikes):  # type: ignore[override]
        u, w_rec = ctx.saved_tensors
        p, surrogate, slope, detach_reset = ctx.cfg
        g_i = lif_backward(grad_spikes, u, w_rec if ctx.has_rec else None, p, surrogate, slope, detach_reset)
        g_w_rec = None
        if ctx.has_rec and ctx.needs_input_grad[1]:
            g_w_rec = recurrent_weight_grad(u, g_i, p.threshold)
        return g_i, g_w_rec, None, None, None, None


def recurrent_weight_grad(u: torch.Tensor, g_i: torch.Tensor, threshold: float) -> torch.Tensor:
    """dL/dW_rec = Σ_t s[t-1]ᵀ g_I[t], with s = Θ(U − ϑ), one sample at a time: each sample's (time, hidden)
    slices are contiguous, so no shifted or flattened copy of a (batch, time, hidden) map is made, and the spikes
    exist as floats for one sample only."""
    g = u.new_zeros(u.shape[2], u.shape[2])
    for b in range(u.shape[0]):
        g.addmm_((u[b, :-1] >= threshold).to(u.dtype).T, g_i[b, 1:])
    return g


def lif_sequence(
    a: torch.Tensor,
    w_rec: torch.Tensor | None,
    p: LIFParams,
    surrogate: str = "fast_sigmoid",
    slope: float = 10.0,
    detach_reset: bool = True,
) -> torch.Tensor:
    """Hidden spikes (batch, time, hidden) for drive a = W_in x, differentiable with surrogate gradients."""
    return LIFSequence.apply(a, w_rec, p, surrogate, slope, detach_reset)


# ----------------------------------------------------------------------------------------------
# The readout: the same synapse and membrane, no threshold (a linear filter)
# ----------------------------------------------------------------------------------------------


@torch.no_grad()
def exp_filter(x: torch.Tensor, decay: float, reverse: bool = False, backend: str = "auto") -> torch.Tensor:
    """y[t] = decay · y[t-1] + x[t] along dim 1 of (batch, time, n); anti-causal if reverse."""
    chosen = kernels.select_backend(backend, x) if x.dim() == 3 else "reference"
    out = None if chosen == "reference" else kernels.exp_filter(chosen, backend, x, decay, reverse)
    return out if out is not None else exp_filter_reference(x, decay, reverse)


@torch.no_grad()
def exp_filter_reference(x: torch.Tensor, decay: float, reverse: bool = False) -> torch.Tensor:
    """The eager per-step loop of `exp_filter` ('reference' backend)."""
    y = torch.empty_like(x)
    acc = x.new_zeros(x.shape[0], x.shape[2])
    steps = range(x.shape[1] - 1, -1, -1) if reverse else range(x.shape[1])
    for t in steps:
        acc = decay * acc + x[:, t]
        y[:, t] = acc
    return y


class ExpFilter(torch.autograd.Function):
    """Causal first-order filter; its adjoint is the same filter run backward in time."""

    @staticmethod
    def forward(ctx, x, decay, backend="auto"):  # type: ignore[override]
        ctx.decay, ctx.backend = decay, backend
        return exp_filter(x, decay, backend=backend)

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        return exp_filter(g, ctx.decay, reverse=True, backend=ctx.backend), None, None


def leaky_readout(h: torch.Tensor, p: LIFParams) -> torch.Tensor:
    """Readout membrane V_out (batch, time, classes) for synaptic input h = s W_out.

    I_out[t] = β I_out[t-1] + h[t];  V_out[t] = α V_out[t-1] + γ I_out[t].
    """
    i = ExpFilter.apply(h, p.beta, p.backend)
    return p.gain * ExpFilter.apply(i, p.alpha, p.backend)
