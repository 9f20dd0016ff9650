"""EventProp computed event by event equals EventProp as it was computed with dense maps (float64).

The event-driven forward and adjoint sweep (issue 12) changed *how* EventProp computes, not *what*: its
outputs, spike counts and gradients must equal those of the dense implementation that preceded it, to
‖g_new − g_old‖ / ‖g_old‖ ≤ 1e-10 per tensor. The dense implementation's results are stored in
`tests/data/eventprop_golden.pt`, written by this file's `__main__` at commit 13687b0 (the last commit with the
dense `(batch, time, hidden)` maps):

    git checkout 13687b0 -- algorithms && python -m tests.test_eventprop_golden && git checkout HEAD -- algorithms

Cases: every loss, regulariser on and off, feed-forward and recurrent, held and exact integration, reset to 0 and
below 0, a V̇ floor; tiny networks (2 trials, 4 neurons) and a medium one (6 trials, 40 neurons, 300 steps, many
spikes per step); the exact time mode on the tiny ones.
"""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from spikebench.algorithms.eventprop import EventPropFunction, Setup
from spikebench.algorithms.neuron import LIFParams

GOLDEN = Path(__file__).parent / "data" / "eventprop_golden.pt"
LOSSES = ("sum_exp", "sum", "max", "first_spike")


def network(seed: int, batch: int, n_in: int, hidden: int, n_out: int, steps: int, dt: float, rate: float, kind: str,
            recurrent: bool):
    """Poisson input counts (batch, steps, n_in) at `rate` Hz per channel, and weights that make neurons fire."""
    g = torch.Generator().manual_seed(seed)
    x = torch.poisson(torch.full((batch, steps, n_in), rate * dt, dtype=torch.float64), generator=g)
    w_in = (torch.randn(n_in, hidden, generator=g, dtype=torch.float64) * 0.8 + 0.8) * (5 / n_in) ** 0.5
    w_rec = torch.randn(hidden, hidden, generator=g, dtype=torch.float64) * 0.3 * (4 / hidden) ** 0.5
    w_out = torch.randn(hidden, n_out, generator=g, dtype=torch.float64) * 2 + (1.5 if kind == "first_spike" else 0)
    return x, [w_in, w_rec if recurrent else None, w_out]


def cases():
    """(name, x, weights, setup, y, reg) for every case of the module docstring."""
    out = []
    for seed, kind, rec, integ, reg in itertools.product((0, 2), LOSSES, (True, False), ("held", "exact"), (False, True)):
        x, ws = network(seed, 2, 5, 4, 3, 100, 1e-3, 80.0, kind, rec)
        p = LIFParams(dt=1e-3, tau_mem=20e-3, tau_syn=5e-3, v_reset=-0.2 if seed else 0.0, integration=integ)
        po = LIFParams(dt=1e-3, tau_mem=20e-3, tau_syn=5e-3, integration=integ)
        out.append((f"tiny-s{seed}-{kind}-rec{int(rec)}-{integ}-reg{int(reg)}", x, ws, Setup(p, po, kind, False, 0.0),
                    torch.tensor([0, 1]), (0.05, 2.0) if reg else None))
    for kind, rec, reg, floor in itertools.product(LOSSES, (True, False), (False, True), (0.0, 0.1)):
        x, ws = network(5, 6, 50, 40, 5, 300, 1e-3, 30.0, kind, rec)
        p = LIFParams(dt=1e-3, tau_mem=20e-3, tau_syn=5e-3)
        out.append((f"medium-{kind}-rec{int(rec)}-reg{int(reg)}-floor{floor}", x, ws, Setup(p, p, kind, False, floor),
                    torch.arange(6) % 5, (0.01, 3.0) if reg else None))
    for kind, rec, reg in itertools.product(LOSSES, (True, False), (False, True)):
        x, ws = network(0, 2, 5, 4, 3, 100, 1e-3, 80.0, kind, rec)
        p = LIFParams(dt=1e-3, tau_mem=20e-3, tau_syn=5e-3, integration="exact")
        out.append((f"exact-{kind}-rec{int(rec)}-reg{int(reg)}", x, ws, Setup(p, p, kind, True, 0.0),
                    torch.tensor([0, 1]), (0.05, 2.0) if reg else None))
    return out


def run(x, ws, setup, y, reg):
    """Outputs, spike counts and the gradients of cross-entropy (+ the regulariser) w.r.t. the weights."""
    wr = [w.clone().requires_grad_() if w is not None else None for w in ws]
    out, counts = EventPropFunction.apply(*wr, x, None, setup)
    logits = -out / 0.05 if setup.kind == "first_spike" else out
    loss = F.cross_entropy(logits, y)
    if reg:
        loss = loss + reg[0] * ((counts.mean(0) - reg[1]) ** 2).mean()
    grads = torch.autograd.grad(loss, [w for w in wr if w is not None])
    return {"out": out.detach(), "counts": counts.detach(), "grads": [g.detach() for g in grads]}


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    scale = float(b.norm())
    return float((a - b).norm()) / scale if scale else float((a - b).norm())


@pytest.fixture(scope="module")
def golden():
    return torch.load(GOLDEN)


@pytest.mark.parametrize("case", cases(), ids=lambda c: c[0])
def test_event_driven_eventprop_equals_the_dense_implementation_within_1e_10(golden, case):
    name, x, ws, setup, y, reg = case
    ref, new = golden[name], run(x, ws, setup, y, reg)
    assert torch.equal(new["counts"], ref["counts"]), "the forward fired other spikes"
    assert float(ref["counts"].sum()) > 0
    assert rel(new["out"], ref["out"]) <= 1e-10
    assert len(new["grads"]) == len(ref["grads"])
    for g_new, g_old in zip(new["grads"], ref["grads"]):
        assert rel(g_new, g_old) <= 1e-10, f"{name}: {rel(g_new, g_old):.2e}"


@pytest.mark.parametrize("case", [c for c in cases() if c[0].startswith("medium-") and c[0].endswith("floor0.0")],
                         ids=lambda c: c[0])
def test_torch_event_loops_equal_the_dense_implementation_as_the_compiled_ones_do(golden, case):
    """model.backend=reference runs the per-step torch loops (the path GPUs take) instead of kernels/cpu_events."""
    name, x, ws, setup, y, reg = case
    ref_params = dataclasses.replace(setup.hidden, backend="reference")
    new = run(x, ws, dataclasses.replace(setup, hidden=ref_params), y, reg)
    assert torch.equal(new["counts"], golden[name]["counts"])
    for g_new, g_old in zip(new["grads"], golden[name]["grads"]):
        assert rel(g_new, g_old) <= 1e-10, f"{name}: {rel(g_new, g_old):.2e}"


if __name__ == "__main__":
    GOLDEN.parent.mkdir(exist_ok=True)
    table = {c[0]: run(*c[1:]) for c in cases()}
    for name, r in table.items():
        print(f"{name:45s} spikes {int(r['counts'].sum()):6d}  |g| " + " ".join(f"{float(g.norm()):.3e}" for g in r["grads"]))
    torch.save(table, GOLDEN)
