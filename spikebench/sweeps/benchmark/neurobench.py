"""NeuroBench's static and workload metrics for the suite's networks, written from their definitions.

Yik et al., "The NeuroBench framework for benchmarking neuromorphic computing algorithms and systems",
Nature Communications 16 (2025); the definitions of the harness documentation (neurobench.readthedocs.io).
Names and units are NeuroBench's:

    footprint             bytes of all parameters and buffers
    connection_sparsity   Σ_l zero weights / Σ_l weights, over the connection (weight-matrix) layers l
    activation_sparsity   Σ zero activations / Σ activations, over all neuron layers, time steps and samples
    synaptic_operations   per model execution (one sample, all its time steps), over connection layers:
        Dense            every input × every synapse: time · fan_in · fan_out (zeros included)
        Effective_ACs    Σ_t Σ_i [x_i(t) ≠ 0] · #{j : W_ij ≠ 0} for layers whose input is binary (spikes)
        Effective_MACs   the same count for layers whose input is not binary (binned counts, LSTM states),
                         plus the element-wise products of an LSTM cell (f⊙c, i⊙g, o⊙tanh c) as NeuroBench
                         counts them for LSTMCell. Biases are not synaptic operations.

The suite's networks multiply raw parameter matrices rather than calling nn.Linear, so the connection layers
and the activations they receive come from each module's own `trace(x)` of one execution (algorithms/trace.py)
instead of NeuroBench's module hooks: the shared SNN (BPTT, EventProp, e-prop; the algorithm's own `simulate`
gives the spikes s): x → W_in, s[t-1] → W_rec, s[t] → W_out, activations s; ParaLIF: the same per layer; the
LSTM reference: per layer x → W_ih, h[t-1] → W_hh, then h → W_out, activations h, and the cell's element-wise
products counted as NeuroBench counts them for LSTMCell.
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from spikebench.algorithms.trace import Trace


# ----------------------------------------------------------------------------------------------
# Static metrics
# ----------------------------------------------------------------------------------------------


def footprint(model: nn.Module) -> int:
    """Bytes of all parameters and buffers."""
    tensors = list(model.parameters()) + list(model.buffers())
    return int(sum(t.numel() * t.element_size() for t in tensors))


def weight_matrices(model: nn.Module) -> dict[str, torch.Tensor]:
    """The connection weights: every parameter of two or more dimensions (biases, time constants and
    thresholds are vectors)."""
    return {name: p for name, p in model.named_parameters() if p.dim() >= 2}


def connection_sparsity(model: nn.Module) -> float:
    """Zero weights over all weights of the connection layers."""
    weights = list(weight_matrices(model).values())
    total = sum(w.numel() for w in weights)
    return float(sum(int((w == 0).sum()) for w in weights) / total) if total else float("nan")


# ----------------------------------------------------------------------------------------------
# Tracing one execution
# ----------------------------------------------------------------------------------------------


@torch.no_grad()
def trace(module: nn.Module, x: torch.Tensor) -> Trace:
    """The connections and activations of one execution of `module` on x (batch, time, in): its own `trace`."""
    return module.trace(x)


# ----------------------------------------------------------------------------------------------
# Workload metrics
# ----------------------------------------------------------------------------------------------


def is_binary(t: torch.Tensor) -> bool:
    return bool(((t == 0) | (t == 1)).all())


def synaptic_operations(tr: Trace) -> dict[str, float]:
    """Effective_MACs, Effective_ACs and Dense summed over the batch of the trace (not yet per sample)."""
    macs = acs = dense = 0.0
    for c in tr.connections:
        fan_out_nonzero = (c.weight != 0).sum(1).to(torch.float64)  # #{j : W_ij ≠ 0} for each input i
        effective = float(((c.inputs != 0).to(torch.float64) * fan_out_nonzero).sum())
        if is_binary(c.inputs):
            acs += effective
        else:
            macs += effective
        batch, steps, fan_in = c.inputs.shape
        dense += float(batch * steps * fan_in * c.weight.shape[1])
    for _, effective, total in tr.elementwise:
        macs += effective
        dense += total
    return {"Effective_MACs": macs, "Effective_ACs": acs, "Dense": dense}


def workload_metrics(module: nn.Module, batches: Iterable[torch.Tensor]) -> dict[str, float]:
    """activation_sparsity and synaptic operations per sample (NeuroBench's names) over the input batches."""
    zeros = total = samples = 0
    ops = {"Effective_MACs": 0.0, "Effective_ACs": 0.0, "Dense": 0.0}
    for x in batches:
        tr = trace(module, x)
        for a in tr.activations:
            zeros += int((a == 0).sum())
            total += a.numel()
        for k, v in synaptic_operations(tr).items():
            ops[k] += v
        samples += x.shape[0]
    if not samples:
        raise ValueError("workload_metrics needs at least one batch")
    return {
        "activation_sparsity": zeros / total if total else float("nan"),
        **{f"synops_{k.lower()}": v / samples for k, v in ops.items()},
    }


def static_metrics(module: nn.Module) -> dict[str, float]:
    """footprint (bytes) and connection_sparsity of the network."""
    return {"footprint": float(footprint(module.net)), "connection_sparsity": connection_sparsity(module.net)}
