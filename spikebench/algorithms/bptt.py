"""BPTT with surrogate gradients (Neftci, Mostafa & Zenke 2019; Zenke & Vogels 2021).

The loss is differentiated through the unrolled network by autograd; the spike's derivative Θ'
is replaced by a surrogate σ' (`algorithm.surrogate`, `algorithm.slope`). To keep the step free of
Python overhead at 1000 steps, the input projection W_in x is one matrix product over all steps and the
LIF recurrence is one autograd node over the whole sequence (`neuron.lif_sequence`), which keeps only the
pre-reset membrane U for its backward pass (the discrete adjoint, see `neuron.lif_backward`). With adaptive
neurons (`model.neuron=adlif`) the recurrence is `adlif.adlif_sequence`, one node with its discrete adjoint (also
in τ_u, τ_w, a and b of every neuron).
"""

from __future__ import annotations

import torch

from .adlif import adlif_sequence
from .base import SpikingModule, StepOutput
from .neuron import lif_sequence
from .surrogates import get_surrogate


class BPTT(SpikingModule):
    """Backpropagation through time with a surrogate spike derivative."""

    def heuristics(self) -> list[str]:
        a = self.cfg.algorithm
        return [f"surrogate gradient ({a.surrogate}, slope {a.slope:g})"]

    def __init__(self, cfg, data) -> None:
        super().__init__(cfg, data)
        a = self.cfg.algorithm
        get_surrogate(a.surrogate)  # fail early on a bad name
        self.surrogate, self.slope, self.detach_reset = a.surrogate, float(a.slope), bool(a.detach_reset)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Differentiable hidden spikes and readout voltages for x (batch, time, inputs)."""
        net = self.net
        if net.adaptive is not None:  # model.neuron=adlif: the unrolled equations, differentiated by autograd
            spikes, _ = adlif_sequence(net.drive(x), net.w_rec, net.hidden, net.adaptive, self.surrogate, self.slope,
                                       self.detach_reset)
        else:
            spikes = lif_sequence(net.drive(x), net.w_rec, net.hidden, self.surrogate, self.slope, self.detach_reset)
        return spikes, net.readout(spikes)

    def forward_backward(self, x: torch.Tensor, y: torch.Tensor) -> StepOutput:
        spikes, v_out = self(x)
        loss, logits = self.objective(v_out, spikes, y)
        loss.backward()
        return StepOutput(loss.detach(), logits.detach(), spikes.detach().sum(1))
