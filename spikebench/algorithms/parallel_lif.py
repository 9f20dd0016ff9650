"""The LIF membrane without reset, computed for all time steps at once (Yarga & Wood 2025, Eq. 15): the
parallel core of ParaLIF (algorithms/paralif.py), also its readout's filter.

Drop the reset from the suite's LIF equations (algorithms/neuron.py):

       I[t] = β I[t−1] + a[t],    V[t] = α V[t−1] + (1 − α) I[t],    a = x W,

   a linear time-invariant filter, V = k ∗ a with the causal kernels β^t (synapse) and (1 − α) α^t
   (membrane), computed for all steps at once, with no loop over time, by either
     fft   the paper's form: V = irfft(rfft(a) · rfft(k))[:T], zero-padded to 2T so that the circular
           convolution equals the linear one;
     scan  (default) the same two first-order filters as a blocked parallel scan: inside blocks of
           `chunk` steps a product with the Toeplitz matrix d^(i−j), across blocks one more such product.
           The same numbers; on CPU it is several times faster than the FFT, whose transforms of
           (batch, 2T, hidden) cost as much as the input projection itself.
   Decays are built as exp(−t·dt/τ), so τ_mem and τ_syn (per neuron) can be learnt. (This is why ParaLIF
   cannot use `neuron.lif_sequence`: with the reset the recurrence is nonlinear and sequential.)

Tensors are neuron-major here: (neurons, batch, time), time last, so that time is the contiguous axis of the
filters and every projection is one matrix product without copies.
"""

from __future__ import annotations


from spikebench.errors import ConfigError
import torch
import torch.nn.functional as F

from .neuron import input_gain

def neuron_major(x: torch.Tensor) -> torch.Tensor:
    """(batch, time, n) → (n, batch, time), a view (the transposed (batch·time, n) matrix): no copy."""
    b, t, n = x.shape
    return x.reshape(b * t, n).t().view(n, b, t)


def project(w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Synaptic input a = x W for x (n_in, batch, time) and W (n_in, n_out): (n_out, batch, time), one GEMM."""
    n_in, b, t = x.shape
    return (w.t() @ x.reshape(n_in, b * t)).view(-1, b, t)


def block_length(steps: int, chunk: int) -> int:
    """Steps per block of the scan: the largest divisor of `steps` in (chunk/2, chunk] (no padding), else chunk."""
    for c in range(min(chunk, steps), chunk // 2, -1):
        if steps % c == 0:
            return c
    return min(chunk, steps)


def decay_matrix(rate: torch.Tensor, size: int, reverse: bool = False) -> torch.Tensor:
    """M (len(rate), size, size) with (x M)[i] = Σ_j d^|i−j| x[j], d = e^−rate, summed over j ≤ i (causal)
    or over j ≥ i (reverse)."""
    k = torch.arange(size, dtype=rate.dtype, device=rate.device)
    lag = k[None, :] - k[:, None]  # lag[j, i] = i − j
    lag = -lag if reverse else lag
    return torch.where(lag >= 0, torch.exp(-rate[:, None, None] * lag.clamp(min=0)), rate.new_zeros(()))


def times(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """x M along the last axis, x (n, …, size), M (n, size, size) per neuron or (1, size, size) for all: one (b)mm."""
    size = x.shape[-1]
    if m.shape[0] == 1:
        return (x.reshape(-1, size) @ m[0]).view(x.shape)
    return torch.bmm(x.reshape(x.shape[0], -1, size), m).view(x.shape)


@torch.no_grad()
def blocked_scan(
    x: torch.Tensor, rate: torch.Tensor, reverse: bool = False, scale: torch.Tensor | None = None
) -> torch.Tensor:
    """y[t] = d y[t−1] + c x[t] (or, reverse, y[t] = d y[t+1] + c x[t]), d = e^−rate, for all t at once.

    x: (n, batch, blocks, block) contiguous, time = blocks × block; rate and the optional input gain c = scale
    are (n,) per neuron or (1,). The blocked form of a parallel scan, no loop over time: inside each block
    the recurrence is a product with the triangular Toeplitz matrix d^|i−j|; the block-end values are carried
    across blocks by the same kind of matrix in d^block, and added to each step with its decay d^(steps since
    the block start).
    """
    block, blocks = x.shape[-1], x.shape[-2]
    within = decay_matrix(rate, block, reverse)
    y = times(x, within if scale is None else within * scale[:, None, None])
    ends = (y[..., 0] if reverse else y[..., -1]).contiguous()  # (n, batch, blocks)
    totals = times(ends, decay_matrix(rate * block, blocks, reverse))
    carried = F.pad(totals, (0, 1))[..., 1:] if reverse else F.pad(totals, (1, 0))[..., :-1]
    k = torch.arange(block, dtype=rate.dtype, device=rate.device)
    gain = torch.exp(-rate[:, None] * ((block - k) if reverse else (k + 1)))  # (n | 1, block)
    return y.addcmul_(carried[..., None], gain[:, None, None, :])


def in_blocks(x: torch.Tensor, block: int) -> torch.Tensor:
    """(n, batch, time) → (n, batch, blocks, block), zero-padded at the end of time if needed."""
    n, b, steps = x.shape
    blocks = -(-steps // block)
    x = F.pad(x, (0, blocks * block - steps)) if blocks * block != steps else x.contiguous()
    return x.view(n, b, blocks, block)


class LIFFilter(torch.autograd.Function):
    """V = (1 − α)·α-filter(β-filter(a)) along time for a (n, batch, time), by `blocked_scan`.

    Backward is the adjoint: the same filters run backward in time, λ_U = rev-α-filter((1 − α) g),
    λ_I = rev-β-filter(λ_U) = ∂L/∂a, and for the decay rates r (d = e^−r)
        ∂L/∂r_mem = −α (Σ_t λ_U[t] U[t−1] − Σ_t g[t] U[t]),    ∂L/∂r_syn = −β Σ_t λ_I[t] I[t−1],
    summed per neuron (or over all, for a shared rate), U = V/(1 − α). Only learnable rates keep I and V.
    """

    @staticmethod
    def forward(ctx, a, rate_mem, rate_syn, chunk):  # type: ignore[override]
        steps = a.shape[-1]
        block = block_length(steps, chunk)
        i = blocked_scan(in_blocks(a, block), rate_syn)
        v = blocked_scan(i, rate_mem, scale=1.0 - torch.exp(-rate_mem))
        learn = ctx.needs_input_grad[1] or ctx.needs_input_grad[2]
        ctx.block, ctx.steps, ctx.learn = block, steps, learn
        ctx.save_for_backward(rate_mem, rate_syn, *((i, v) if learn else ()))
        return v.flatten(2)[..., :steps]

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        rate_mem, rate_syn, *saved = ctx.saved_tensors
        alpha, beta = torch.exp(-rate_mem), torch.exp(-rate_syn)
        g = in_blocks(g, ctx.block)
        lam_u = blocked_scan(g, rate_mem, reverse=True, scale=1.0 - alpha)
        lam_i = blocked_scan(lam_u, rate_syn, reverse=True)
        g_a = lam_i.flatten(2)[..., : ctx.steps]
        if not ctx.learn:
            return g_a, None, None, None
        i, v = (x.flatten(2) for x in saved)
        u = v / (1.0 - alpha)[:, None, None]
        lam_u, lam_i, g = lam_u.flatten(2), lam_i.flatten(2), g.flatten(2)

        def per_rate(x: torch.Tensor, rate: torch.Tensor) -> torch.Tensor:
            return x.sum((1, 2)) if rate.numel() > 1 else x.sum().reshape(1)

        g_mem = -alpha * (per_rate(lam_u[..., 1:] * u[..., :-1], rate_mem) - per_rate(g * u, rate_mem))
        g_syn = -beta * per_rate(lam_i[..., 1:] * i[..., :-1], rate_syn)
        return g_a, g_mem, g_syn, None


def lif_transfer(tau_mem: torch.Tensor, tau_syn: torch.Tensor, dt: float, steps: int) -> torch.Tensor:
    """Frequency response (length-2·steps rfft) of the reset-free LIF's impulse response k = β^t ∗ (1 − α) α^t.

    k is formed by FFT and cut to `steps` samples before its own transform: the full k has 2·steps − 1
    samples, and convolving it untruncated with a `steps`-long input would wrap around the 2·steps period.
    Returns (n, steps + 1) complex, for τ_mem, τ_syn of shape (n,) (or (1,) for one value for all).
    """
    n_fft = 2 * steps
    t = torch.arange(steps, dtype=tau_mem.dtype, device=tau_mem.device)
    alpha = torch.exp(-dt / tau_mem)[:, None]
    synapse = torch.fft.rfft(torch.exp(-t * (dt / tau_syn)[:, None]), n=n_fft)
    membrane = torch.fft.rfft((1.0 - alpha) * torch.exp(-t * (dt / tau_mem)[:, None]), n=n_fft)
    kernel = torch.fft.irfft(synapse * membrane, n=n_fft)[..., :steps]
    return torch.fft.rfft(kernel, n=n_fft)


def fft_filter(a: torch.Tensor, transfer: torch.Tensor) -> torch.Tensor:
    """k ∗ a along the last axis of a (n, batch, time), for transfer = rfft(k) (n | 1, time + 1) from lif_transfer."""
    steps = a.shape[-1]
    spectrum = torch.fft.rfft(a, n=2 * steps) * transfer[:, None, :]
    return torch.fft.irfft(spectrum, n=2 * steps)[..., :steps]


def gain_ratio(tau_mem: torch.Tensor, tau_syn: torch.Tensor, dt: float, integration: str) -> torch.Tensor:
    """γ / (1 − α): the membrane of `lif_membrane` (gain 1 − α, the paper's) rescaled to the suite's input gain γ
    (the filter is linear, so this is exact); differentiable in learnable τ, (n,)."""
    return input_gain(tau_mem, tau_syn, dt, integration) / (1.0 - torch.exp(-dt / tau_mem))


def lif_membrane(
    a: torch.Tensor, tau_mem: torch.Tensor, tau_syn: torch.Tensor, dt: float, method: str = "scan", chunk: int = 32
) -> torch.Tensor:
    """V for synaptic input a (n, batch, time), all steps at once: I = β-filter of a, V = (1 − α)·α-filter of I.

    method "fft": the paper's Eq. 15 (convolution by FFT, zero-padded to 2T); "scan": `blocked_scan`,
    the same numbers (to float round-off) and several times faster on CPU. τ: (n,) or (1,), in seconds.
    """
    if method == "fft":
        return fft_filter(a, lif_transfer(tau_mem, tau_syn, dt, a.shape[-1]))
    if method == "scan":
        return LIFFilter.apply(a, dt / tau_mem, dt / tau_syn, chunk)
    raise ConfigError(f"unknown algorithm.membrane '{method}'; choose one of: scan, fft")


def previous_step_time_last(v: torch.Tensor) -> torch.Tensor:
    """v[t−1] for every t along the last axis, with v[−1] = 0."""
    return F.pad(v, (1, 0))[..., :-1]
