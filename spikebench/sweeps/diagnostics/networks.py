"""The small float64 networks on which EventProp's gradients are checked against finite differences
(tests/test_eventprop.py) and its two time modes compared (`python -m spikebench.sweeps.diagnostics.eventprop_modes`):
2 trials, 5 inputs, 4 recurrent hidden, 3 outputs; 8 input spikes per channel at random times."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from spikebench.algorithms.eventprop import EventPropFunction
from spikebench.algorithms.neuron import LIFParams

LOSSES = ("sum_exp", "sum", "max", "first_spike")
TAU0, TAU1, ALPHA = 0.05, 0.5, 0.01


def small_network(seed: int, dt: float, duration: float, kind: str, recurrent: bool = True):
    """Input spike times (8 per channel) binned at dt, and weights; first_spike gets outputs that fire."""
    g = torch.Generator().manual_seed(seed)
    batch, n_in, hidden, n_out = 2, 5, 4, 3
    steps = int(round(duration / dt))
    times = torch.rand(batch, n_in, 8, generator=g) * duration
    x = torch.zeros(batch, steps, n_in, dtype=torch.float64)
    b = torch.arange(batch)[:, None, None].expand_as(times).flatten()
    i = torch.arange(n_in)[None, :, None].expand_as(times).flatten()
    x.index_put_((b, (times / dt).long().flatten(), i), torch.ones(times.numel(), dtype=torch.float64), accumulate=True)
    w_in = (torch.randn(n_in, hidden, generator=g) * 0.8 + 0.8).double()
    w_rec = (torch.randn(hidden, hidden, generator=g) * 0.3).double()
    w_out = (torch.randn(hidden, n_out, generator=g) * 2 + (1.5 if kind == "first_spike" else 0.0)).double()
    return x, [w_in, w_rec if recurrent else None, w_out]


def params(dt: float, v_reset: float = 0.0, integration: str = "exact") -> LIFParams:
    """Exact integration: the per-step model is then the continuous one at the step ends (neuron.py), the setting
    in which the discrete mode approximates the exact one best (sweeps/diagnostics/eventprop_modes.py)."""
    return LIFParams(dt=dt, tau_mem=20e-3, tau_syn=5e-3, threshold=1.0, v_reset=v_reset, integration=integration)


def task_loss(out: torch.Tensor, kind: str, y: torch.Tensor) -> torch.Tensor:
    """The loss of EventProp.loss_from, without the regulariser."""
    if kind == "first_spike":
        t_true = out.gather(1, y[:, None]).squeeze(1)
        return F.cross_entropy(-out / TAU0, y) + ALPHA * (torch.exp(t_true / TAU1) - 1).mean()
    return F.cross_entropy(out, y)


def eventprop_grads(x, ws, setup, y, reg=None):
    """EventProp's gradient of task loss (+ c·mean_j(N̄_j − ν)² if reg = (c, ν))."""
    wr = [w.clone().requires_grad_() if w is not None else None for w in ws]
    out, counts = EventPropFunction.apply(*wr, x, None, setup)
    loss = task_loss(out, setup.kind, y)
    if reg:
        loss = loss + reg[0] * ((counts.mean(0) - reg[1]) ** 2).mean()
    used = [w for w in wr if w is not None]
    return torch.autograd.grad(loss, used), counts.detach()
