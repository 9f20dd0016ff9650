"""The network every algorithm trains: inputs → LIF hidden layer (feed-forward or recurrent) → leaky readout.

Parameters are stored (fan_in, fan_out) so that a layer is `x @ W` on (batch, time, neurons) tensors.
Initialisation: normal weights with standard deviation `std / sqrt(fan_in)` (and mean `mean / sqrt(fan_in)`
for the input layer), so that the config numbers do not change with the layer sizes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .neuron import LIFParams, leaky_readout, lif_forward


@dataclass(frozen=True)
class InitParams:
    in_mean: float = 0.0
    in_std: float = 1.0
    rec_std: float = 1.0
    out_std: float = 1.0


class SNN(nn.Module):
    """700 inputs → `n_hidden` LIF neurons with exponential synapses → `n_out` leaky integrators."""

    def __init__(
        self,
        n_in: int,
        n_hidden: int,
        n_out: int,
        recurrent: bool,
        hidden: LIFParams,
        readout: LIFParams,
        init: InitParams = InitParams(),
    ) -> None:
        super().__init__()
        self.n_in, self.n_hidden, self.n_out, self.recurrent = n_in, n_hidden, n_out, recurrent
        self.hidden, self.readout_params = hidden, readout
        self.w_in = nn.Parameter(
            (init.in_mean + init.in_std * torch.randn(n_in, n_hidden)) / math.sqrt(n_in)
        )
        self.w_rec = (
            nn.Parameter(init.rec_std * torch.randn(n_hidden, n_hidden) / math.sqrt(n_hidden))
            if recurrent
            else None
        )
        self.w_out = nn.Parameter(init.out_std * torch.randn(n_hidden, n_out) / math.sqrt(n_hidden))

    def drive(self, x: torch.Tensor) -> torch.Tensor:
        """Feed-forward synaptic input W_in x[t] for all steps at once: (batch, time, hidden)."""
        return x @ self.w_in

    def readout(self, spikes: torch.Tensor) -> torch.Tensor:
        """Readout membrane V_out (batch, time, classes) for hidden spikes (batch, time, hidden)."""
        return leaky_readout(spikes @ self.w_out, self.readout_params)

    @torch.no_grad()
    def simulate(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward pass without gradients: hidden spikes and readout voltages, (batch, time, ·)."""
        spikes, _ = lif_forward(self.drive(x), self.w_rec, self.hidden)
        return spikes, self.readout(spikes)

    def synops_per_spike(self) -> tuple[int, int]:
        """Fan-out of an input spike and of a hidden spike (synaptic operations each causes)."""
        return self.n_hidden, self.n_out + (self.n_hidden if self.recurrent else 0)
