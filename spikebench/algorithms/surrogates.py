"""Surrogate derivatives of the Heaviside spike function Θ(V − ϑ).

The forward pass of every spiking algorithm uses the exact step function; BPTT (and the autograd
reference models of the tests) replace its derivative by a smooth pseudo-derivative σ'(u) of the
distance to threshold u = V − ϑ (Neftci, Mostafa & Zenke 2019, "Surrogate gradient learning in
spiking neural networks"). Each function here maps (u, slope) to σ'(u).
"""

from __future__ import annotations

from spikebench.errors import ConfigError
import math
from typing import Callable

import torch

SurrogateFn = Callable[[torch.Tensor, float], torch.Tensor]


def fast_sigmoid(u: torch.Tensor, slope: float) -> torch.Tensor:
    """SuperSpike (Zenke & Ganguli 2018): σ'(u) = 1 / (1 + slope·|u|)²."""
    return 1.0 / (1.0 + slope * u.abs()) ** 2


def arctan(u: torch.Tensor, slope: float) -> torch.Tensor:
    """Arctan (Fang et al. 2021): σ'(u) = 1 / (1 + (π/2 · slope · u)²)."""
    return 1.0 / (1.0 + (0.5 * math.pi * slope * u) ** 2)


def sigmoid(u: torch.Tensor, slope: float) -> torch.Tensor:
    """Derivative of the logistic sigmoid: σ'(u) = slope · sig(slope·u) · (1 − sig(slope·u))."""
    s = torch.sigmoid(slope * u)
    return slope * s * (1.0 - s)


def triangle(u: torch.Tensor, slope: float) -> torch.Tensor:
    """Piecewise linear (Bellec et al. 2018): σ'(u) = max(0, 1 − slope·|u|)."""
    return torch.clamp(1.0 - slope * u.abs(), min=0.0)


SURROGATES: dict[str, SurrogateFn] = {
    "fast_sigmoid": fast_sigmoid,
    "superspike": fast_sigmoid,
    "arctan": arctan,
    "sigmoid": sigmoid,
    "triangle": triangle,
}


def get_surrogate(name: str) -> SurrogateFn:
    """Look a surrogate up by its config name; a one-line error lists the valid names."""
    try:
        return SURROGATES[name]
    except KeyError:
        raise ConfigError(
            f"unknown surrogate '{name}'; choose one of: {', '.join(sorted(SURROGATES))}"
        ) from None


class SpikeFunction(torch.autograd.Function):
    """s = Θ(u) in the forward pass, ds/du = σ'(u) in the backward pass (per element)."""

    @staticmethod
    def forward(ctx, u: torch.Tensor, name: str, slope: float) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(u)
        ctx.name, ctx.slope = name, slope
        return (u >= 0).to(u.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        (u,) = ctx.saved_tensors
        return grad * get_surrogate(ctx.name)(u, ctx.slope), None, None


def spike(u: torch.Tensor, name: str = "fast_sigmoid", slope: float = 10.0) -> torch.Tensor:
    """Heaviside of u with the named surrogate derivative."""
    return SpikeFunction.apply(u, name, slope)
