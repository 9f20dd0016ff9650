"""The LIF equations (algorithms/neuron.py) against plain Python, and BPTT's adjoint against autograd."""

from __future__ import annotations

from spikebench.errors import UserError
import math

import pytest
import torch

from spikebench.algorithms.neuron import LIFParams, leaky_readout, lif_forward, lif_reference, lif_sequence


def python_loop_lif(a, w_rec, p):
    """The issue's equations written out with Python floats, one neuron and one step at a time."""
    batch, steps, hidden = len(a), len(a[0]), len(a[0][0])
    alpha, beta = math.exp(-p.dt / p.tau_mem), math.exp(-p.dt / p.tau_syn)
    # input gain: current held over the step, or its decay within the step integrated exactly
    gain = 1 - alpha if p.integration == "held" else p.tau_syn / (p.tau_syn - p.tau_mem) * (beta - alpha)
    spikes = [[[0.0] * hidden for _ in range(steps)] for _ in range(batch)]
    for b in range(batch):
        i, v, s = [0.0] * hidden, [0.0] * hidden, [0.0] * hidden
        for t in range(steps):
            rec = [sum(s[k] * w_rec[k][j] for k in range(hidden)) if w_rec else 0.0 for j in range(hidden)]
            i = [beta * i[j] + a[b][t][j] + rec[j] for j in range(hidden)]
            u = [alpha * v[j] + gain * i[j] for j in range(hidden)]
            s = [1.0 if u[j] >= p.threshold else 0.0 for j in range(hidden)]
            v = [p.v_reset if s[j] else u[j] for j in range(hidden)]
            spikes[b][t] = s
    return torch.tensor(spikes, dtype=torch.float64)


def rk4_membrane_after_one_step(p: LIFParams, i0: float, v0: float, substeps: int = 2000) -> float:
    """τ_mem V̇ = −V + I, τ_syn İ = −I from (V, I) = (v0, i0), integrated over dt by classical Runge-Kutta."""
    h, v, i = p.dt / substeps, v0, i0
    f = lambda v, i: ((-v + i) / p.tau_mem, -i / p.tau_syn)  # noqa: E731
    for _ in range(substeps):
        k1 = f(v, i)
        k2 = f(v + h / 2 * k1[0], i + h / 2 * k1[1])
        k3 = f(v + h / 2 * k2[0], i + h / 2 * k2[1])
        k4 = f(v + h * k3[0], i + h * k3[1])
        v += h / 6 * (k1[0] + 2 * k2[0] + 2 * k3[0] + k4[0])
        i += h / 6 * (k1[1] + 2 * k2[1] + 2 * k3[1] + k4[1])
    return v


@pytest.mark.parametrize("taus", [(20e-3, 5e-3), (10e-3, 4e-3), (5e-3, 10e-3), (8e-3, 8e-3)])
def test_exact_gain_is_the_continuous_membrane_response_over_one_step(taus):
    """U[t] = α V[t−1] + γ I[t] is the continuous model's V after dt when I decays within the step."""
    p = LIFParams(dt=1e-3, tau_mem=taus[0], tau_syn=taus[1], integration="exact")
    assert p.gain == pytest.approx(rk4_membrane_after_one_step(p, 1.0, 0.0), rel=1e-10)
    assert p.alpha * 0.3 + p.gain * 2.0 == pytest.approx(rk4_membrane_after_one_step(p, 2.0, 0.3), rel=1e-10)
    held = LIFParams(dt=1e-3, tau_mem=taus[0], tau_syn=taus[1], integration="held")
    assert held.gain == 1 - held.alpha


def test_per_step_membrane_equals_the_continuous_model_at_the_step_ends_without_spikes():
    """Input spikes of bin t arrive at its start; sampled at the step ends, the per-step recurrence (exact
    integration) and the continuous model agree to round-off (threshold out of reach: no spikes)."""
    p = LIFParams(dt=1e-3, tau_mem=20e-3, tau_syn=5e-3, threshold=1e9, backend="reference", integration="exact")
    a = torch.rand(2, 30, 3, dtype=torch.float64) * (torch.rand(2, 30, 3) < 0.3)
    _, u = lif_forward(a, None, p)
    v, i = [[0.0] * 3 for _ in range(2)], [[0.0] * 3 for _ in range(2)]
    for t in range(30):
        for b in range(2):
            for j in range(3):
                i[b][j] += float(a[b, t, j])
                v[b][j] = rk4_membrane_after_one_step(p, i[b][j], v[b][j], substeps=50)
                i[b][j] *= p.beta
                assert float(u[b, t, j]) == pytest.approx(v[b][j], rel=1e-8, abs=1e-12)


def test_integration_choice_is_validated_with_the_config_key_in_the_message():
    with pytest.raises(UserError, match="model.integration"):
        LIFParams(integration="euler")


@pytest.mark.parametrize("integration", ["held", "exact"])
@pytest.mark.parametrize("recurrent", [False, True])
def test_lif_forward_equals_python_loop_of_the_equations(recurrent, integration):
    p = LIFParams(dt=1e-3, tau_mem=10e-3, tau_syn=4e-3, threshold=1.0, v_reset=-0.2, integration=integration)
    a = torch.rand(2, 60, 5, dtype=torch.float64) * 3
    w = torch.randn(5, 5, dtype=torch.float64) * 0.5 if recurrent else None
    spikes, _ = lif_forward(a, w, p)
    expect = python_loop_lif(a.tolist(), w.tolist() if w is not None else None, p)
    assert spikes.sum() > 10
    assert torch.equal(spikes, expect)


def test_readout_is_the_lif_membrane_without_threshold():
    p = LIFParams(dt=1e-3, tau_mem=20e-3, tau_syn=5e-3)
    h = torch.randn(3, 40, 4, dtype=torch.float64)
    i = torch.zeros(3, 4, dtype=torch.float64)
    v = torch.zeros(3, 4, dtype=torch.float64)
    expect = []
    for t in range(40):
        i = p.beta * i + h[:, t]
        v = p.alpha * v + p.gain * i
        expect.append(v)
    torch.testing.assert_close(leaky_readout(h, p), torch.stack(expect, 1))


@pytest.mark.parametrize("recurrent", [False, True])
@pytest.mark.parametrize("detach_reset", [True, False])
@pytest.mark.parametrize("surrogate", ["fast_sigmoid", "arctan", "sigmoid", "triangle"])
def test_bptt_adjoint_equals_autograd_through_unrolled_network_float64(recurrent, detach_reset, surrogate):
    torch.manual_seed(1)
    p = LIFParams(dt=1e-3, tau_mem=15e-3, tau_syn=5e-3, v_reset=0.1)
    a = (torch.rand(3, 50, 6, dtype=torch.float64) * 4).requires_grad_()
    w = (torch.randn(6, 6, dtype=torch.float64) * 0.4).requires_grad_() if recurrent else None
    g = torch.randn(3, 50, 6, dtype=torch.float64)
    ref, _ = lif_reference(a, w, p, surrogate, 2.0, detach_reset)
    ours = lif_sequence(a, w, p, surrogate, 2.0, detach_reset)
    assert torch.equal(ref, ours) and ours.sum() > 20
    params = [a] + ([w] if recurrent else [])
    g_ref = torch.autograd.grad((ref * g).sum(), params)
    g_ours = torch.autograd.grad((ours * g).sum(), params)
    for x, y in zip(g_ours, g_ref):
        torch.testing.assert_close(x, y, rtol=1e-10, atol=1e-12)


def test_readout_gradient_equals_autograd_of_the_recurrence():
    p = LIFParams(dt=1e-3, tau_mem=20e-3, tau_syn=5e-3)
    h = torch.randn(2, 30, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: leaky_readout(x, p), (h,))
