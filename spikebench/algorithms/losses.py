"""Losses on the readout voltage V_out (batch, time, classes) and the hidden spike-count regulariser.

Readout to logits (Nowotny, Turner & Knight 2025, "Loss shaping enhances exact gradient learning with
EventProp in spiking neural networks"), with T the trial length and the integrals taken as means over steps:

    sum      z_k = (1/T) ∫₀ᵀ V_k(t) dt
    sum_exp  z_k = (1/T) ∫₀ᵀ e^{−t/T} V_k(t) dt     (default: early evidence counts more)
    max      z_k = max_t V_k(t)
    first_spike  from the first threshold crossing of each V_k (needs spike times: algorithm=eventprop only)

then cross-entropy of softmax(z) against the label. The regulariser on the hidden layer is
c · mean_j (N̄_j − ν)², with N̄_j the batch-mean spike count of hidden neuron j in a trial.
"""

from __future__ import annotations

from spikebench.errors import ConfigError
import torch
import torch.nn.functional as F

from .distributed import BatchMean
from .neuron import LIFParams, exp_filter

LOSS_KINDS = ("sum_exp", "sum", "max", "first_spike")


def time_weights(steps: int, kind: str, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Per-step weights w_t with z_k = Σ_t w_t V_k[t] for the linear readouts: (time,)."""
    if kind == "sum":
        return torch.full((steps,), 1.0 / steps, dtype=dtype, device=device)
    if kind == "sum_exp":
        t = torch.arange(steps, dtype=dtype, device=device)
        return torch.exp(-t / steps) / steps
    raise ConfigError(f"readout '{kind}' has no time weights; linear readouts are sum, sum_exp")


def readout_time_kernel(steps: int, kind: str, readout: LIFParams, dtype: torch.dtype, device: torch.device
                        ) -> torch.Tensor:
    """c_t = ∂z/∂h[t], (time,): for a linear readout z = Σ_t w_t V_out[t] (sum, sum_exp) whose input is h[t] (the
    readout's synaptic input, neuron.leaky_readout), z = Σ_t c_t h[t] with c = γ F_βᵀ F_αᵀ w: the synapse (β) and
    membrane (α, gain γ) filters run backward over the T time weights. e-prop weights its eligibility traces with
    it (eprop.py's c_t), EventProp's discrete mode drives its adjoint with it."""
    w = time_weights(steps, kind, dtype, device).view(1, steps, 1)
    return readout.gain * exp_filter(exp_filter(w, readout.alpha, reverse=True), readout.beta, reverse=True).view(steps)


def readout_logits(v_out: torch.Tensor, kind: str) -> torch.Tensor:
    """Logits (batch, classes) from readout voltages (batch, time, classes)."""
    if kind == "max":
        return v_out.amax(dim=1)
    if kind == "first_spike":
        raise ConfigError("loss.kind=first_spike needs output spike times; only algorithm=eventprop supports it")
    if kind in ("sum", "sum_exp"):
        w = time_weights(v_out.shape[1], kind, v_out.dtype, v_out.device)
        return torch.einsum("btk,t->bk", v_out, w)
    raise ConfigError(f"unknown loss.kind '{kind}'; choose one of: {', '.join(LOSS_KINDS)}")


def spike_count_regulariser(spikes: torch.Tensor, strength: float, target: float, batch_mean: BatchMean
                             ) -> torch.Tensor:
    """c · mean_j (N̄_j − ν)² for hidden spikes (batch, time, hidden); N̄ is the mean over the global batch when
    training on several processes (`distributed.BatchMean`)."""
    counts = batch_mean(spikes.sum(dim=1))
    return strength * ((counts - target) ** 2).mean()


class Objective:
    """Loss = cross-entropy of the readout logits + the spike-count regulariser."""

    def __init__(self, kind: str = "sum_exp", reg_strength: float = 0.0, reg_target: float = 0.0,
                 batch_mean: BatchMean | None = None) -> None:
        if kind not in LOSS_KINDS:
            raise ConfigError(f"unknown loss.kind '{kind}'; choose one of: {', '.join(LOSS_KINDS)}")
        self.kind, self.reg_strength, self.reg_target = kind, reg_strength, reg_target
        self.batch_mean = batch_mean or BatchMean()  # the module's: global over processes in its training step

    def regulariser(self, spikes: torch.Tensor) -> torch.Tensor:
        """The spike-count regulariser of hidden spikes (batch, time, hidden) (counts: time of length 1)."""
        return spike_count_regulariser(spikes, self.reg_strength, self.reg_target, self.batch_mean)

    def __call__(
        self, v_out: torch.Tensor, spikes: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (loss, logits)."""
        logits = readout_logits(v_out, self.kind)
        loss = F.cross_entropy(logits, y)
        if self.reg_strength:
            loss = loss + self.regulariser(spikes)
        return loss, logits
