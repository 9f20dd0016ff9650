"""Learnable axonal delays of the input channels (`model.delays`): input channel c reaches every hidden neuron
d_c seconds after its spike.

Why one delay per input channel (axonal), not one per synapse: a per-synapse delay d_cj turns the input product
W_in x[t] into Σ_k x[t − k] W_k over every delay value k (Hammouamri, Khalfaoui-Hassani & Masquelier 2023, DCLS:
a convolution over time with a kernel per synapse), whose cost grows with inputs × hidden × the longest delay, and
would make each input spike of an event-driven algorithm one event per synapse. A delay per channel costs one
shift of the input (O(batch × time × channels)), keeps an input spike one event (at t + d_c), and is the form with
which learnable delays were first shown to help on SHD (Sun, Zeng & Bohte 2023, "Learnable axonal delay in spiking
neural networks improves spoken word recognition"). The data side's fixed delay line (`data.delay`, copies of
every channel at fixed lags) is a different thing and composes with it.

On the step grid a delay of d = n + f steps (n whole, 0 <= f < 1) is the linear interpolation between the two
neighbouring whole delays,

    x̃_c[t] = (1 − f_c) x_c[t − n_c] + f_c x_c[t − n_c − 1]          (x_c[t] = 0 for t < 0)

— DCLS's kernel with its triangle interpolation (two taps per channel), so that ∂x̃_c[t]/∂d_c =
x_c[t − n_c − 1] − x_c[t − n_c] (per step; divided by dt per second) and a gradient reaches d through the product
W_in x̃. Algorithms that differentiate their drive by autograd learn d (BPTT); the others may use fixed delays or
refuse them (configs/algorithms.py, `delays`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from spikebench.events import EventBatch, bag_product


class InputDelays(nn.Module):
    """Per-channel delays d (seconds), in [0, max_delay]; `learn=False` keeps them at their initial values."""

    def __init__(self, n_in: int, max_delay: float, dt: float, init: str = "uniform", learn: bool = True) -> None:
        super().__init__()
        self.max_delay, self.dt = float(max_delay), float(dt)
        start = max_delay * torch.rand(n_in) if init == "uniform" else torch.zeros(n_in)
        self.delay = nn.Parameter(start, requires_grad=learn)

    @property
    def max_steps(self) -> int:
        """The longest shift on the grid, in whole steps (the interpolation reaches one step further)."""
        return int(math.ceil(self.max_delay / self.dt))

    @torch.no_grad()
    def constrain(self) -> None:
        self.delay.clamp_(0.0, self.max_delay)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x̃ (batch, time, channels) for x of the same shape: every channel shifted by its delay."""
        return DelayShift.apply(x, self.delay, self.dt)

    def input_product(self, x: EventBatch, w: torch.Tensor) -> torch.Tensor:
        """x̃ @ w for an event batch, (batch, time, w.shape[1]), without x̃: each non-zero bin (t, c, v) becomes the
        two events of the interpolation above, (1 − f_c) v at step t + n_c and f_c v at t + n_c + 1 (those past the
        last step dropped), summed into the product by `bag_product`; autograd reaches d through the events' values
        (∂/∂d_c = ∓v/dt), as `DelayShift` computes it (tests: equal to x̃ @ w and its gradients). Memory: two events
        per bin, nothing of size (batch, time, channels)."""
        steps = self.delay.to(w.dtype) / self.dt
        whole = steps.detach().floor()
        frac = steps - whole  # differentiable in d; the whole part is not
        b, t = x.sample_step()
        c = x.channel.long()
        first = t + whole.long()[c]
        v, f = x.count.to(w.dtype), frac[c]
        k1, k2 = first < x.steps, first + 1 < x.steps
        return bag_product(torch.cat([b[k1], b[k2]]), torch.cat([first[k1], first[k2] + 1]), torch.cat([c[k1], c[k2]]),
                           torch.cat([((1.0 - f) * v)[k1], (f * v)[k2]]), x.batch, x.steps, w)


class DelayShift(torch.autograd.Function):
    """x̃ = (1 − f) x[t − n] + f x[t − n − 1] per channel, and ∂L/∂d_c = Σ_{b,t} ∂L/∂x̃ (x[t − n − 1] − x[t − n]) / dt.

    One node, so that the backward pass keeps nothing but the input batch (which lives anyway) and the delays:
    autograd of the formula above would keep the two shifted copies and their difference, (batch, time, channels)
    each. The input gets no gradient (it is data). Channels are processed in groups of equal whole shift, gathered
    by `index_select` and written back by `index_copy_` (advanced indexing `out[:, k:, cols] += …` made BPTT's step
    with delays 17× its plain step at T = 1000: 10.3 s against 0.60 s)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, delay: torch.Tensor, dt: float) -> torch.Tensor:  # type: ignore[override]
        steps = delay.detach().to(x.dtype) / dt
        whole = steps.floor()
        frac, n = steps - whole, whole.long()
        out = torch.zeros_like(x)
        span = x.shape[1]
        for k, cols, f in groups(n, frac):  # the channels of one whole shift k: gathered, shifted, added back
            xs, shifted = x.index_select(2, cols), x.new_zeros(x.shape[0], span, len(cols))
            if k < span:
                shifted[:, k:] += (1.0 - f) * xs[:, : span - k]
            if k + 1 < span:
                shifted[:, k + 1:] += f * xs[:, : span - k - 1]
            out.index_copy_(2, cols, shifted)
        ctx.save_for_backward(x, n, frac)
        ctx.dt = dt
        return out

    @staticmethod
    def backward(ctx, g: torch.Tensor):  # type: ignore[override]
        x, n, frac = ctx.saved_tensors
        grad = torch.zeros(len(n), dtype=g.dtype, device=g.device)
        span = x.shape[1]
        for k, cols, _ in groups(n, frac):
            xs, gs = x.index_select(2, cols), g.index_select(2, cols)
            if k + 1 < span:  # the later tap: + x[t − n − 1]
                grad[cols] += (gs[:, k + 1:] * xs[:, : span - k - 1]).sum((0, 1))
            if k < span:  # the earlier tap: − x[t − n]
                grad[cols] -= (gs[:, k:] * xs[:, : span - k]).sum((0, 1))
        return None, grad / ctx.dt, None


def groups(n: torch.Tensor, frac: torch.Tensor):
    """(whole shift k, the channels shifted by k, their fractions as a (1, 1, channels) tensor) per distinct k."""
    for k in torch.unique(n).tolist():
        cols = (n == k).nonzero().squeeze(1)
        yield k, cols, frac[cols].view(1, 1, -1)
