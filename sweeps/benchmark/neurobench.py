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
and the activations they receive come from a `Trace` of one execution instead of NeuroBench's module hooks:
  - a module's own `neurobench_trace(x)` if it has one;
  - the LSTM reference (a network with `cell_trace`): per layer x → W_ih, h[t-1] → W_hh, then h → W_out;
    activations h; and the cell's element-wise products counted as NeuroBench counts them for LSTMCell;
  - networks with the shared SNN layout (net.w_in, optional net.w_rec, net.w_out: BPTT, EventProp, e-prop):
    the algorithm's own `simulate(x)` gives the hidden spikes s; connections x → W_in, s[t-1] → W_rec,
    s[t] → W_out; activations s;
  - otherwise a module-level `project(W, x)` of the network's module, through which every connection of
    ParaLIF passes (neuron-major x (n_in, batch, time)): its calls are recorded, like NeuroBench's pre-hooks
    on connection layers; activations are the inputs of every connection except the data input and W_rec.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import torch
from torch import nn


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


def shift_one_step(s: torch.Tensor) -> torch.Tensor:
    """s[t-1] for every t of (batch, time, n), zeros at t = 0."""
    return torch.cat([torch.zeros_like(s[:, :1]), s[:, :-1]], 1)


@contextmanager
def recording(module_name: str, fn_name: str, calls: list) -> Iterator[None]:
    """Record (args) of every call of `module_name.fn_name` inside the block."""
    mod = sys.modules[module_name]
    original = getattr(mod, fn_name)

    def recorder(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    setattr(mod, fn_name, recorder)
    try:
        yield
    finally:
        setattr(mod, fn_name, original)


@torch.no_grad()
def trace(module: nn.Module, x: torch.Tensor) -> Trace:
    """The connections and activations of one execution of `module` (a SpikingModule) on x (batch, time, in)."""
    if hasattr(module, "neurobench_trace"):
        return module.neurobench_trace(x)
    net = module.net
    if hasattr(net, "cell_trace"):
        return lstm_trace(net, x)
    if all(hasattr(net, k) for k in ("w_in", "w_out")):
        spikes, _ = module.simulate(x)
        out = Trace(activations=[spikes])
        out.connections.append(Connection("w_in", net.w_in, x))
        if getattr(net, "w_rec", None) is not None:
            out.connections.append(Connection("w_rec", net.w_rec, shift_one_step(spikes)))
        out.connections.append(Connection("w_out", net.w_out, spikes))
        return out
    net_module = type(net).__module__
    if callable(getattr(sys.modules.get(net_module), "project", None)):
        calls: list = []
        with recording(net_module, "project", calls):
            module.simulate(x)
        names = {p.data_ptr(): name for name, p in net.named_parameters()}
        x_ptr = x.data_ptr()
        out = Trace()
        for w, inp in calls:
            name = names.get(w.data_ptr(), "?")
            seen = inp.permute(1, 2, 0)  # neuron-major (n_in, batch, time) → (batch, time, n_in)
            out.connections.append(Connection(name, w, seen))
            if inp.data_ptr() != x_ptr and not name.endswith("w_rec"):
                out.activations.append(seen)
        return out
    raise ValueError(f"{type(module).__name__}: no way to trace its connections (give it a neurobench_trace(x) method)")


def lstm_trace(net: nn.Module, x: torch.Tensor) -> Trace:
    """The LSTM reference's execution (algorithms/lstm.py, `cell_trace`: its equations stepped explicitly).

    Element-wise products per step as NeuroBench counts them for an LSTMCell (gates binarised at their
    pre-activations): c = f⊙c[t-1] + i⊙g counts the products whose factors are both non-zero, h = o⊙tanh(c)
    counts where o and c are; dense: 3 per hidden unit and step.
    """
    out = Trace()
    layers = net.cell_trace(x)
    for k, layer in enumerate(layers):
        w_ih = getattr(net.lstm, f"weight_ih_l{k}").T
        w_hh = getattr(net.lstm, f"weight_hh_l{k}").T
        out.connections.append(Connection(f"lstm.ih{k}", w_ih, layer["input"]))
        out.connections.append(Connection(f"lstm.hh{k}", w_hh, shift_one_step(layer["h"])))
        i, f, g, o = (layer["gates"] != 0).unbind(2)
        c1 = (f & (shift_one_step(layer["c"]) != 0)).float() + (i & g).float()
        effective = c1.sum() + (o & (c1 != 0)).sum()
        out.elementwise.append((f"lstm.cell{k}", float(effective), 3.0 * c1.numel()))
        out.activations.append(layer["h"])
    out.connections.append(Connection("w_out", net.w_out, layers[-1]["h"]))
    return out


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
