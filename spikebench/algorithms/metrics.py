"""The per-epoch metrics every module logs, as torchmetrics: summed over batches, and over processes when
training runs on several (their states are reduced before `compute`, so N processes report what one process
would on the whole data).

- accuracy: torchmetrics' MulticlassAccuracy (micro: the fraction of samples classified right); the loss: MeanMetric
  weighted by batch size;
- the confusion matrix of the test set: MulticlassConfusionMatrix (rows: true class, columns: predicted);
- `Activity`: hidden spike counts per neuron, input spikes and samples, from which the epoch's spike rate, the
  fraction of silent neurons and the synaptic operations per sample follow (`activity_stats`).
"""

from __future__ import annotations

import torch
from torchmetrics import MeanMetric, Metric
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from spikebench.events import EventBatch

__all__ = ["Activity", "MeanMetric", "MulticlassAccuracy", "MulticlassConfusionMatrix", "activity_stats"]


class Activity(Metric):
    """Sums of hidden spike counts per neuron (hidden,), input spikes and samples over an epoch."""

    full_state_update = False

    def __init__(self, n_hidden: int) -> None:
        super().__init__()
        self.add_state("counts", default=torch.zeros(n_hidden, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("in_spikes", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("samples", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, hidden_counts: torch.Tensor, x: "torch.Tensor | EventBatch") -> None:
        """hidden_counts: (batch, hidden) spikes per neuron and sample; x: the batch's input (batch, time, inputs),
        frames or events."""
        self.counts += hidden_counts.detach().sum(0).to(self.counts.dtype)
        spikes = x.count if isinstance(x, EventBatch) else x.detach()
        self.in_spikes += spikes.sum().to(self.in_spikes.dtype)
        self.samples += x.shape[0]

    def compute(self) -> dict[str, torch.Tensor]:
        return {"counts": self.counts, "in_spikes": self.in_spikes, "samples": self.samples}


def activity_stats(totals: dict[str, torch.Tensor], duration: float, synops_per_spike: tuple[int, int]) -> dict[str, float]:
    """rate_hz (spikes per neuron per second), silent_frac (neurons that never spiked), synops (synaptic operations
    per sample: each input spike reaches `synops_per_spike[0]` targets, each hidden spike `[1]`)."""
    counts, n = totals["counts"], float(totals["samples"])
    if n == 0:
        return {}
    fan_in, fan_hidden = synops_per_spike
    total = float(counts.sum())
    return {
        "rate_hz": total / (n * counts.numel() * duration),
        "silent_frac": float((counts == 0).double().mean()),
        "synops": (float(totals["in_spikes"]) * fan_in + total * fan_hidden) / n,
    }
