"""The non-spiking reference: an LSTM on the same binned input, trained by backpropagation through time.

Cramer et al. 2020 ("The Heidelberg spiking data sets for the systematic evaluation of spiking neural
networks") report an LSTM next to their SNNs on SHD; this is that reference, built so that everything but
the hidden layer is the suite's: the same frames x (batch, time, channels) from the datamodule, the same
readout (`algorithm.readout`: the suite's leaky integrator, or a plain linear map per step), the same
`Objective` (readout to logits, cross-entropy), optimiser and statistics.

Hidden layer (Hochreiter & Schmidhuber 1997, PyTorch's gate order i, f, g, o):

    i, f, o = σ(W_i· x[t] + U_i· h[t-1] + b_i·)        g = tanh(W_g x[t] + U_g h[t-1] + b_g)
    c[t] = f ⊙ c[t-1] + i ⊙ g                           h[t] = o ⊙ tanh(c[t])

The LSTM's weights start from PyTorch's initialisation, U(±1/√hidden); the readout's from `model.init.out_std`.
`model.recurrent=false` removes the connections h[t-1] → gates (U = 0, not trained): the cell state c still
carries memory, as the LIF membrane does in the feed-forward SNN. The spike-count regulariser has no spikes
to act on and is not applied; the "hidden counts" this module reports are non-zero activations per neuron,
so its `rate_hz` is an activation rate (dense: about 1/dt), not a spike rate.
"""

from __future__ import annotations

from spikebench.errors import ConfigError
import math

import torch
from omegaconf import DictConfig
from torch import nn

from .base import ClassifierModule, StepOutput, lif_params_from_config
from .losses import Objective
from .trace import Connection, Trace, previous_step
from .neuron import LIFParams, leaky_readout

LSTM_READOUTS = ("leaky", "linear")


class LSTMNet(nn.Module):
    """`layers` LSTM layers of `n_hidden` units → readout of `n_out` classes; the SNN's interface
    (n_hidden, simulate, synops_per_spike) so that the base module's statistics apply."""

    def __init__(
        self,
        n_in: int,
        n_hidden: int,
        n_out: int,
        layers: int,
        recurrent: bool,
        readout: str,
        readout_params: LIFParams,
        out_std: float = 1.0,
    ) -> None:
        super().__init__()
        if layers < 1:
            raise ConfigError(f"algorithm.layers must be >= 1, got {layers}")
        if readout not in LSTM_READOUTS:
            raise ConfigError(f"unknown algorithm.readout '{readout}'; choose one of: {', '.join(LSTM_READOUTS)}")
        self.n_in, self.n_hidden, self.n_out, self.recurrent = n_in, n_hidden, n_out, recurrent
        self.readout_kind, self.readout_params = readout, readout_params
        self.lstm = nn.LSTM(n_in, n_hidden, num_layers=layers, batch_first=True)
        if not recurrent:
            for k in range(layers):
                w_hh = getattr(self.lstm, f"weight_hh_l{k}")
                w_hh.requires_grad_(False)
                with torch.no_grad():
                    w_hh.zero_()
        self.w_out = nn.Parameter(out_std * torch.randn(n_hidden, n_out) / math.sqrt(n_hidden))
        self.b_out = nn.Parameter(torch.zeros(n_out)) if readout == "linear" else None

    def readout(self, h: torch.Tensor) -> torch.Tensor:
        """Readout (batch, time, classes) for hidden activations h (batch, time, hidden)."""
        z = h @ self.w_out
        return leaky_readout(z, self.readout_params) if self.readout_kind == "leaky" else z + self.b_out

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Hidden activations h (batch, time, hidden) of the last layer and the readout (batch, time, classes)."""
        h, _ = self.lstm(x)
        return h, self.readout(h)

    @torch.no_grad()
    def simulate(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self(x)

    def synops_per_spike(self) -> tuple[int, int]:
        """Fan-out of an input event (4 gates) and of a hidden activation (readout, plus 4 gates if recurrent)."""
        return 4 * self.n_hidden, self.n_out + (4 * self.n_hidden if self.recurrent else 0)

    @torch.no_grad()
    def cell_trace(self, x: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        """The equations above stepped explicitly, layer by layer, for operation counting: per layer the
        input (batch, time, in), h and c (batch, time, hidden) and the gate pre-activations
        (batch, time, 4, hidden) in the order i, f, g, o. Its h equals `forward`'s (tested)."""
        layers, inp = [], x
        for k in range(self.lstm.num_layers):
            w_ih, w_hh = getattr(self.lstm, f"weight_ih_l{k}"), getattr(self.lstm, f"weight_hh_l{k}")
            bias = getattr(self.lstm, f"bias_ih_l{k}") + getattr(self.lstm, f"bias_hh_l{k}")
            batch, steps, _ = inp.shape
            h = inp.new_zeros(batch, self.n_hidden)
            c = inp.new_zeros(batch, self.n_hidden)
            drive = inp @ w_ih.T + bias
            hs, cs, pre = [], [], []
            for t in range(steps):
                z = drive[:, t] + h @ w_hh.T
                i, f, g, o = z.view(batch, 4, self.n_hidden).unbind(1)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                h = torch.sigmoid(o) * torch.tanh(c)
                hs.append(h)
                cs.append(c)
                pre.append(z.view(batch, 4, self.n_hidden))
            layers.append({"input": inp, "h": torch.stack(hs, 1), "c": torch.stack(cs, 1), "gates": torch.stack(pre, 1)})
            inp = layers[-1]["h"]
        return layers


class LSTMReference(ClassifierModule):
    """A non-spiking LSTM trained by autograd (BPTT), the reference the SHD paper reports."""

    def __init__(self, cfg, data) -> None:
        super().__init__(cfg, data)
        self.objective = Objective(self.cfg.loss.kind, 0.0, 0.0)  # no spikes for the spike-count regulariser

    def build_network(self, cfg: DictConfig) -> LSTMNet:
        a = cfg.algorithm
        _, readout = lif_params_from_config(cfg, self.data_shape.dt)
        return LSTMNet(
            n_in=self.data_shape.n_in,
            n_hidden=cfg.model.hidden,
            n_out=self.data_shape.n_classes,
            layers=int(a.layers),
            recurrent=bool(cfg.model.recurrent),
            readout=str(a.readout),
            readout_params=readout,
            out_std=float(cfg.model.init.out_std),
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.net(x)

    def forward_backward(self, x: torch.Tensor, y: torch.Tensor) -> StepOutput:
        h, v_out = self(x)
        loss, logits = self.objective(v_out, h, y)
        loss.backward()
        return StepOutput(loss.detach(), logits.detach(), (h.detach() != 0).sum(1).to(x.dtype))

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> StepOutput:
        h, v_out = self.simulate(x)
        loss, logits = self.objective(v_out, h, y)
        return StepOutput(loss, logits, (h != 0).sum(1).to(x.dtype))

    @torch.no_grad()
    def trace(self, x: torch.Tensor) -> Trace:
        """Per layer x → W_ih, h[t-1] → W_hh (`LSTMNet.cell_trace`: the cell's equations stepped explicitly), then
        h → W_out; activations h. The element-wise products per step as NeuroBench counts them for an LSTMCell
        (gates binarised at their pre-activations): c = f⊙c[t-1] + i⊙g counts the products whose factors are
        both non-zero, h = o⊙tanh(c) those where o and c are; dense: 3 per hidden unit and step."""
        net, out = self.net, Trace()
        layers = net.cell_trace(x)
        for k, layer in enumerate(layers):
            w_ih = getattr(net.lstm, f"weight_ih_l{k}").T
            w_hh = getattr(net.lstm, f"weight_hh_l{k}").T
            out.connections.append(Connection(f"lstm.ih{k}", w_ih, layer["input"]))
            out.connections.append(Connection(f"lstm.hh{k}", w_hh, previous_step(layer["h"])))
            i, f, g, o = (layer["gates"] != 0).unbind(2)
            c1 = (f & (previous_step(layer["c"]) != 0)).float() + (i & g).float()
            effective = c1.sum() + (o & (c1 != 0)).sum()
            out.elementwise.append((f"lstm.cell{k}", float(effective), 3.0 * c1.numel()))
            out.activations.append(layer["h"])
        out.connections.append(Connection("w_out", net.w_out, layers[-1]["h"]))
        return out
