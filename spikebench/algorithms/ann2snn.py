"""ANN-to-SNN conversion (`algorithm=ann2snn`): train a ReLU network on the binned input, convert it by data-based
normalisation, and run (validate, test, count) the converted spiking network.

Trained network (non-spiking, by autograd through time): on the frames x[t] of the suite's data path,

    h[t] = ReLU(W_in x[t] + W_rec h[t-1] + b)                        (W_rec absent when model.recurrent=false)

and the suite's leaky readout (`neuron.leaky_readout`) driven by h[t] W_out, the suite's `Objective`. A ReLU
recurrent network is the form conversion can handle (Diehl, Zarrella, Cassidy, Pedroni & Neftci 2016, "Conversion
of artificial recurrent neural networks to spiking neural networks for low-power neuromorphic hardware"): its
units are rates that integrate-and-fire neurons can carry; an LSTM's gates (products, sigmoids) are not.

Conversion (Rueckauer, Lungu, Hu, Pfeiffer & Liu 2017, "Conversion of continuous-valued deep networks to efficient
event-driven networks for image classification", Front. Neurosci. 11:682, §2.2; Diehl et al. 2015, "Fast-
classifying, high-accuracy spiking deep networks through weight and threshold balancing", IJCNN): the scale λ of the
hidden layer is the `algorithm.percentile`-th percentile of its positive activations h over the training recordings
(the first `algorithm.norm_recordings` in a fixed order, as they are, no augmentation; 100 is Diehl et al.'s max-norm).
With the input layer's scale 1 (the frames are given as currents), the normalised network is

    c[t] = (W_in x[t] + b) / λ,     W_rec unchanged (λ/λ),      the readout's drive λ · r[t] W_out,

whose activations a[t] = h[t]/λ the spiking network carries as rates r[t] ∈ [0, 1].

The converted network: each input frame is held for S = `algorithm.steps` simulation steps of dt/S; the hidden
neurons integrate and fire without leak, threshold 1, reset by subtraction (Rueckauer et al.'s "reset by
subtraction", their Eq. 3 with the leak off), their membrane set to 0 at the start of every frame (each frame is one
presentation, as each image is in Rueckauer et al.'s evaluation; it gives the bound below frame by frame):

    V[k] = V[k-1] + c[t] + s_prev[k] W_rec,   s[k] = Θ(V[k] − 1),   V[k] ← V[k] − s[k],     k = 1 … S,

where s_prev[k] is the spike of the previous frame's k-th step: the recurrent synapses have a delay of one frame,
so that the recurrent current over a frame averages to r[t-1] W_rec, the ANN's W_rec h[t-1]/λ. r[t] = (spikes in
frame t)/S. The readout, non-spiking as in every suite network (and as Rueckauer et al. read the output layer),
integrates each frame's λ · r[t] W_out once per frame. This is not the suite's LIF (`neuron.py`): that neuron
resets to V_reset and filters its input through a synapse, and conversion needs reset by subtraction and no leak.

Bound (tested, `tests/test_ann2snn.py`): in a frame with constant input c, the count is N = clamp(⌊S c⌋, 0, S)
(V stays in [0, 1) after each reset), so r ∈ (clip(c, 0, 1) − 1/S, clip(c, 0, 1)]: for the feed-forward network
|r[t] − clip(a[t], 0, 1)| < 1/S exactly. With recurrence the error feeds forward through W_rec; with
L = max_j Σ_i |W_rec,ij|, |r[t] − ā[t]|_∞ ≤ (1/S) Σ_{k=0..t} L^k against the clipped normalised ANN
ā[t] = clip(c[t] + ā[t-1] W_rec, 0, 1). Percentiles below 100 clip the largest activations (rate at most 1).

Costs, counted as for every suite network (`trace`): the input frame's W_in x[t] once per frame (the current is
held, so computed once: multiply-accumulates of the non-zero input bins, as for the LIF networks' frames); each
hidden spike's fan-out to W_rec and W_out (accumulates). Training-time statistics (train/rate_hz) are the ANN's
non-zero activations, as for the LSTM; validation and test run the converted network at `algorithm.steps`: a study
selects on what is delivered. The conversion (λ) is redone at the start of every validation and test epoch from the
current weights and stored in the checkpoint (`net.scale`), which a test without the training file uses.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from omegaconf import DictConfig
from torch import nn

from spikebench.errors import ConfigError

from .base import SpikingModule, StepOutput, lif_params_from_config
from .losses import Objective
from .neuron import LIFParams, leaky_readout
from .trace import Connection, Trace


def integrate_and_fire(c: torch.Tensor, w_rec: torch.Tensor | None, steps: int, keep: bool = False
                       ) -> torch.Tensor:
    """The converted hidden layer (module docstring) on normalised frame currents c (batch, frames, hidden): spike
    counts per frame (batch, frames, hidden), or with `keep` every step's spikes (batch, frames · steps, hidden)."""
    batch, frames, hidden = c.shape
    counts = c.new_zeros(batch, frames, hidden)
    kept = c.new_zeros(batch, frames, steps, hidden) if keep else None
    prev = c.new_zeros(batch, steps, hidden)  # the previous frame's spikes, step by step
    for t in range(frames):
        rec = prev @ w_rec if w_rec is not None else None  # (batch, steps, hidden): one frame's delayed currents
        v = c.new_zeros(batch, hidden)
        now = c.new_zeros(batch, steps, hidden)
        for k in range(steps):
            v = v + c[:, t] if rec is None else v + c[:, t] + rec[:, k]
            s = (v >= 1.0).to(c.dtype)
            v = v - s
            now[:, k] = s
        counts[:, t] = now.sum(1)
        if kept is not None:
            kept[:, t] = now
        prev = now
    return kept.reshape(batch, frames * steps, hidden) if keep else counts


def percentile_scale(activations: list[torch.Tensor], percentile: float) -> float:
    """λ: the `percentile`-th percentile of the positive entries of `activations`; 1.0 if there are none.
    (NumPy: torch.quantile refuses inputs of more than 2^24 elements.)"""
    positive = torch.cat([a[a > 0].flatten().double().cpu() for a in activations])
    return float(np.percentile(positive.numpy(), percentile)) if positive.numel() else 1.0


class ReluRNN(nn.Module):
    """700 inputs → `n_hidden` ReLU units (recurrent or not) → leaky readout: the network that is trained; and its
    converted spiking form (`simulate`, `spikes`) once `scale` (λ) is set."""

    def __init__(self, n_in: int, n_hidden: int, n_out: int, recurrent: bool, readout: LIFParams, steps: int,
                 out_std: float = 1.0) -> None:
        super().__init__()
        self.n_in, self.n_hidden, self.n_out, self.recurrent = n_in, n_hidden, n_out, recurrent
        self.readout_params, self.steps = readout, steps
        # He et al. 2015 for the ReLU layer; the recurrent weights with spectral radius about 0.5 (stable at start)
        self.w_in = nn.Parameter(torch.randn(n_in, n_hidden) * math.sqrt(2.0 / n_in))
        self.b_in = nn.Parameter(torch.zeros(n_hidden))
        self.w_rec = nn.Parameter(0.5 * torch.randn(n_hidden, n_hidden) / math.sqrt(n_hidden)) if recurrent else None
        self.w_out = nn.Parameter(out_std * torch.randn(n_hidden, n_out) / math.sqrt(n_hidden))
        self.register_buffer("scale", torch.tensor(float("nan"), dtype=torch.float64))  # λ; NaN: not converted

    def constrain(self) -> None:
        """Nothing lives in a range."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The ANN: activations h (batch, frames, hidden) and readout voltages (batch, frames, classes)."""
        drive = x.to(self.w_in.dtype) @ self.w_in + self.b_in
        if self.w_rec is None:
            h = torch.relu(drive)
        else:
            hs, prev = [], drive.new_zeros(drive.shape[0], self.n_hidden)
            for t in range(drive.shape[1]):
                prev = torch.relu(drive[:, t] + prev @ self.w_rec)
                hs.append(prev)
            h = torch.stack(hs, 1)
        return h, leaky_readout(h @ self.w_out, self.readout_params)

    def currents(self, x: torch.Tensor) -> tuple[torch.Tensor, float]:
        """The normalised frame currents c = (W_in x + b)/λ and λ; an error if the network was never converted."""
        lam = float(self.scale)
        if not math.isfinite(lam):
            raise RuntimeError("the ReLU network has not been converted yet (no scale λ): run a validation or test "
                               "epoch with the training recordings available, or load a checkpoint that has one")
        return (x.to(self.w_in.dtype) @ self.w_in + self.b_in) / lam, lam

    @torch.no_grad()
    def spikes(self, x: torch.Tensor) -> torch.Tensor:
        """Every simulation step's hidden spikes (batch, frames · steps, hidden) of the converted network."""
        c, _ = self.currents(x)
        return integrate_and_fire(c, self.w_rec, self.steps, keep=True)

    @torch.no_grad()
    def simulate(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The converted network: hidden spike counts per frame (batch, frames, hidden), readout voltages."""
        c, lam = self.currents(x)
        counts = integrate_and_fire(c, self.w_rec, self.steps)
        return counts, leaky_readout((lam / self.steps) * counts @ self.w_out, self.readout_params)

    def synops_per_spike(self) -> tuple[int, int]:
        """Fan-out of an input event and of a hidden spike (readout, plus the recurrent synapses)."""
        return self.n_hidden, self.n_out + (self.n_hidden if self.recurrent else 0)


class ANN2SNN(SpikingModule):
    """A ReLU network trained by autograd, converted to integrate-and-fire neurons for validation and test."""

    def heuristics(self) -> list[str]:
        a = self.cfg.algorithm
        return [f"trained as a ReLU network; converted (percentile {a.percentile} normalisation, IF neurons with "
                f"reset by subtraction, {a.steps} steps per frame)"]

    def __init__(self, cfg, data) -> None:
        super().__init__(cfg, data)
        self.objective = Objective(self.cfg.loss.kind, 0.0, 0.0)  # no spikes in training for the spike regulariser
        if not 0.0 < float(self.cfg.algorithm.percentile) <= 100.0:
            raise ConfigError(f"algorithm.percentile must be in (0, 100], got {self.cfg.algorithm.percentile}")

    def build_network(self, cfg: DictConfig) -> ReluRNN:
        _, readout = lif_params_from_config(cfg, self.data_shape.dt)
        return ReluRNN(self.data_shape.n_in, cfg.model.hidden, self.data_shape.n_classes, bool(cfg.model.recurrent),
                       readout, int(cfg.algorithm.steps), float(cfg.model.init.out_std))

    def forward_backward(self, x: torch.Tensor, y: torch.Tensor) -> StepOutput:
        h, v_out = self.net(x)
        loss, logits = self.objective(v_out, h, y)
        loss.backward()
        return StepOutput(loss.detach(), logits.detach(), (h.detach() > 0).sum(1).to(x.dtype))

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> StepOutput:
        counts, v_out = self.net.simulate(x)
        loss, logits = self.objective(v_out, counts, y)
        return StepOutput(loss, logits, counts.sum(1))

    # -- the conversion ---------------------------------------------------------------------------

    @torch.no_grad()
    def convert(self, batches) -> float:
        """Set λ from the ANN's activations on `batches` (frames, labels) of training recordings (the first
        `algorithm.norm_recordings`, whatever the batch size; every process is given the same ones, so λ is equal on
        all). Returns λ."""
        acts, left = [], int(self.cfg.algorithm.norm_recordings)
        for x, _ in batches:
            if left <= 0:
                break
            acts.append(self.net(x[:left].to(self.device))[0])
            left -= len(x)
        if not acts:
            raise RuntimeError("no training recordings to normalise the converted network on")
        self.net.scale.fill_(percentile_scale(acts, float(self.cfg.algorithm.percentile)))
        return float(self.net.scale)

    def _convert_if_possible(self) -> None:
        dm = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        batches = dm.statistics_dataloader() if dm is not None and hasattr(dm, "statistics_dataloader") else None
        if batches is not None:
            self.convert(batches)
        elif not math.isfinite(float(self.net.scale)):
            raise ConfigError("ann2snn: the training recordings are not loaded and the checkpoint holds no "
                              "conversion scale; test the run's own checkpoint or train it first")

    def on_validation_epoch_start(self) -> None:
        super().on_validation_epoch_start()
        self._convert_if_possible()

    def on_test_epoch_start(self) -> None:
        super().on_test_epoch_start()
        self._convert_if_possible()

    @torch.no_grad()
    def trace(self, x: torch.Tensor) -> Trace:
        """x → W_in once per frame (the current is held over the frame's steps); every step's spikes → W_out, and
        → W_rec one frame (S steps) later; activations: every step's spikes."""
        net = self.net
        spikes = net.spikes(x)
        out = Trace(activations=[spikes])
        out.connections.append(Connection("w_in", net.w_in, x))
        if net.w_rec is not None:
            delayed = torch.cat([torch.zeros_like(spikes[:, :net.steps]), spikes[:, :-net.steps]], 1)
            out.connections.append(Connection("w_rec", net.w_rec, delayed))
        out.connections.append(Connection("w_out", net.w_out, spikes))
        return out
