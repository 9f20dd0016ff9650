"""What a network did on one batch, for the NeuroBench workload metrics (sweeps/benchmark/neurobench.py).

The suite's networks multiply raw parameter matrices rather than calling nn.Linear, so NeuroBench's module hooks
see nothing; instead every module describes one execution itself (`ClassifierModule.trace(x)`): each connection
layer with the activations arriving at it, the neuron activations, and element-wise products (LSTM cells).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class Connection:
    """A weight matrix (fan_in, fan_out) and the activations arriving at it, (batch, time, fan_in)."""

    name: str
    weight: torch.Tensor
    inputs: torch.Tensor


@dataclass
class Trace:
    """One execution of a network on a batch: its connections, neuron activations (batch, time, n), and
    element-wise products (name, effective count, dense count) summed over the batch."""

    connections: list[Connection] = field(default_factory=list)
    activations: list[torch.Tensor] = field(default_factory=list)
    elementwise: list[tuple[str, float, float]] = field(default_factory=list)


def previous_step(s: torch.Tensor) -> torch.Tensor:
    """s[t-1] for every t of (batch, time, n), zeros at t = 0: what a recurrent connection receives at t."""
    return torch.cat([torch.zeros_like(s[:, :1]), s[:, :-1]], 1)
