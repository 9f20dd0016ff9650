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

from spikebench.events import EventBatch

from .adlif import AdaptiveNeurons, AdLIFRanges, adlif_sequence
from .delays import InputDelays
from .neuron import LIFParams, leaky_readout, lif_forward


@dataclass(frozen=True)
class InitParams:
    in_mean: float = 0.0
    in_std: float = 1.0
    rec_std: float = 1.0
    out_std: float = 1.0


class SNN(nn.Module):
    """700 inputs → `n_hidden` LIF (or adLIF) neurons with exponential synapses → `n_out` leaky integrators."""

    def __init__(
        self,
        n_in: int,
        n_hidden: int,
        n_out: int,
        recurrent: bool,
        hidden: LIFParams,
        readout: LIFParams,
        init: InitParams = InitParams(),
        adaptive: AdLIFRanges | None = None,
        delays: InputDelays | None = None,
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
        # model.neuron=adlif: the hidden neurons' learned adaptation (algorithms/adlif.py); None: the plain LIF
        self.adaptive = AdaptiveNeurons(n_hidden, adaptive) if adaptive is not None else None
        self.delays = delays  # model.delays: the input channels' axonal delays (algorithms/delays.py); None: none

    @property
    def neuron(self) -> str:
        return "lif" if self.adaptive is None else "adlif"

    def constrain(self) -> None:
        """Parameters that live in ranges back into them (after an optimiser step): adLIF's τ_u, τ_w, a, b; delays."""
        if self.adaptive is not None:
            self.adaptive.constrain()
        if self.delays is not None:
            self.delays.constrain()

    def drive(self, x: "torch.Tensor | EventBatch") -> torch.Tensor:
        """Feed-forward synaptic input W_in x[t] for all steps at once (x̃, delayed, with model.delays):
        (batch, time, hidden). An event batch (data.format=events) by its sparse product, delayed or not (delays.py)."""
        if isinstance(x, EventBatch):
            return x.input_product(self.w_in) if self.delays is None else self.delays.input_product(x, self.w_in)
        return (x if self.delays is None else self.delays(x)) @ self.w_in

    def readout(self, spikes: torch.Tensor) -> torch.Tensor:
        """Readout membrane V_out (batch, time, classes) for hidden spikes (batch, time, hidden)."""
        return leaky_readout(spikes @ self.w_out, self.readout_params)

    @torch.no_grad()
    def simulate(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward pass without gradients: hidden spikes and readout voltages, (batch, time, ·)."""
        if self.adaptive is not None:
            spikes, _ = adlif_sequence(self.drive(x), self.w_rec, self.hidden, self.adaptive)
        else:
            spikes, _ = lif_forward(self.drive(x), self.w_rec, self.hidden)
        return spikes, self.readout(spikes)

    def synops_per_spike(self) -> tuple[int, int]:
        """Fan-out of an input spike and of a hidden spike (synaptic operations each causes)."""
        return self.n_hidden, self.n_out + (self.n_hidden if self.recurrent else 0)
