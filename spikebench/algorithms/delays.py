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
        steps = self.delay.to(x.dtype) / self.dt
        whole = steps.detach().floor()
        frac = steps - whole  # carries the gradient
        n = whole.long()
        lo = shift_channels(x, n)
        hi = shift_channels(x, n + 1)
        return lo + frac * (hi - lo)


def shift_channels(x: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """y[:, t, c] = x[:, t − shifts[c], c] (0 before the start), for whole shifts >= 0 per channel."""
    out = torch.zeros_like(x)
    steps = x.shape[1]
    for k in torch.unique(shifts).tolist():  # one strided copy per distinct shift (at most max_steps + 2 of them)
        if k >= steps:
            continue
        cols = (shifts == k).nonzero().squeeze(1)
        out[:, k:, cols] = x[:, : steps - k, cols] if k > 0 else x[:, :, cols]
    return out
