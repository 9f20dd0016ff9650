"""algorithms/adlif.py: the adaptive LIF neuron (model.neuron=adlif), its equations (Baronig et al. 2025, Eqs.
6a, 6b with the suite's synapse), its gradient, its ranges, and the algorithms that train it or refuse it."""

from __future__ import annotations

import math

import pytest
import torch

from spikebench import export
from spikebench.algorithms.adlif import AdaptiveNeurons, AdLIFRanges, adlif_reference, adlif_sequence
from spikebench.algorithms.neuron import LIFParams, lif_reference
from spikebench.configs import ALGORITHMS, compose_config
from spikebench.errors import ConfigError
from conftest import module_for

TINY = ["model.neuron=adlif", "model.hidden=6", "data.channels=12", "data.duration=0.04", "data.dt=1e-3"]


def population(n: int, seed: int = 0, **ranges) -> AdaptiveNeurons:
    torch.manual_seed(seed)
    return AdaptiveNeurons(n, AdLIFRanges(**ranges)).double()


def equations(a_drive, w_rec, p: LIFParams, nrn: AdaptiveNeurons):
    """The module docstring's equations, written out with Python floats, one neuron and one sample at a time."""
    batch, steps, hidden = a_drive.shape
    spikes = torch.zeros(batch, steps, hidden, dtype=torch.float64)
    us = torch.zeros_like(spikes)
    q = nrn.ranges.coupling
    for b in range(batch):
        i, v, w, s = [0.0] * hidden, [0.0] * hidden, [0.0] * hidden, [0.0] * hidden
        for t in range(steps):
            s_prev = list(s)
            for j in range(hidden):
                tau_u, tau_w = float(nrn.tau_u[j].detach()), float(nrn.tau_w[j].detach())
                alpha, beta = math.exp(-p.dt / tau_u), math.exp(-p.dt / tau_w)
                rec = sum(s_prev[k] * float(w_rec[k, j]) for k in range(hidden)) if w_rec is not None else 0.0
                i[j] = p.beta * i[j] + float(a_drive[b, t, j]) + rec                       # the synapse
                u = alpha * v[j] + (1 - alpha) * i[j] - (1 - alpha) * w[j]                # (6a), held
                s[j] = 1.0 if u >= p.threshold else 0.0
                v[j] = u - (u - p.v_reset) * s[j]
                w[j] = beta * w[j] + (1 - beta) * q * (float(nrn.a[j].detach()) * v[j] + float(nrn.b[j].detach()) * s[j])  # (6b)
                spikes[b, t, j], us[b, t, j] = s[j], u
    return spikes, us


@pytest.mark.parametrize("recurrent", [False, True])
def test_adlif_forward_equals_its_equations_step_by_step(recurrent):
    torch.manual_seed(1)
    p = LIFParams(dt=1e-3, tau_syn=5e-3, threshold=1.0)
    nrn = population(5)
    drive = 3.0 * torch.rand(2, 60, 5, dtype=torch.float64)
    w_rec = 0.5 * torch.randn(5, 5, dtype=torch.float64) if recurrent else None
    with torch.no_grad():
        spikes, us = adlif_sequence(drive, w_rec, p, nrn)
    ref_s, ref_u = equations(drive, w_rec, p, nrn)
    assert spikes.sum() > 5 and torch.equal(spikes, ref_s)  # the case spikes, and every spike is where it should be
    torch.testing.assert_close(us, ref_u, rtol=1e-12, atol=1e-12)


def test_with_no_adaptation_and_one_membrane_constant_adlif_is_the_suites_lif():
    torch.manual_seed(2)
    p = LIFParams(dt=1e-3, tau_mem=15e-3, tau_syn=5e-3)
    nrn = population(4, tau_u=(15e-3, 15e-3), a=(0.0, 0.0), b=(0.0, 0.0))
    nrn.tau_u.data.fill_(15e-3)  # the float64 constant (the population was drawn in float32)
    drive = 2.0 * torch.rand(3, 80, 4, dtype=torch.float64)
    w_rec = 0.4 * torch.randn(4, 4, dtype=torch.float64)
    with torch.no_grad():
        s_ad, u_ad = adlif_sequence(drive, w_rec, p, nrn)
        s_lif, u_lif = lif_reference(drive, w_rec, p)
    assert s_lif.sum() > 5 and torch.equal(s_ad, s_lif)
    torch.testing.assert_close(u_ad, u_lif, rtol=1e-12, atol=1e-12)


def test_sub_threshold_coupling_makes_the_membrane_ring_below_rest_after_a_pulse():
    """a > 0: a damped oscillator (the paper's "resonator"); a = 0: the LIF's decay, never below rest."""
    p = LIFParams(dt=1e-3, tau_syn=5e-3, threshold=1e9)  # no spikes: the sub-threshold response
    pulse = torch.zeros(1, 300, 1, dtype=torch.float64)
    pulse[0, 0, 0] = 1.0
    low = {}
    for a in (0.0, 1.0):
        nrn = population(1, tau_u=(20e-3, 20e-3), tau_w=(100e-3, 100e-3), a=(a, a), b=(0.0, 0.0))
        with torch.no_grad():
            _, u = adlif_sequence(pulse, None, p, nrn)
        low[a] = float(u.min())
    assert low[0.0] >= 0.0 and low[1.0] < -1e-3


def test_without_spikes_the_gradient_in_weights_and_every_neuron_parameter_equals_central_differences():
    """Sub-threshold (no spike, so no surrogate): autograd of the unrolled equations is the exact derivative of a
    smooth function, checked against float64 central differences."""
    torch.manual_seed(3)
    p = LIFParams(dt=1e-3, tau_syn=5e-3, threshold=1e9, integration="exact")
    nrn = population(3)
    x = torch.rand(2, 40, 4, dtype=torch.float64)
    w_in = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    target = torch.randn(2, 40, 3, dtype=torch.float64)

    def loss() -> torch.Tensor:
        _, u = adlif_reference(x @ w_in, None, p, nrn)
        return ((u - target) ** 2).mean()

    loss().backward()
    for name, param in [("w_in", w_in), *nrn.named_parameters()]:
        grad = param.grad.clone()
        for k in range(param.numel()):
            h = 1e-6 * max(1.0, abs(float(param.detach().view(-1)[k])))
            with torch.no_grad():
                param.view(-1)[k] += h
                up = float(loss())
                param.view(-1)[k] -= 2 * h
                down = float(loss())
                param.view(-1)[k] += h
            fd = (up - down) / (2 * h)
            assert abs(grad.view(-1)[k] - fd) <= 1e-6 * max(1e-3, abs(fd)), (name, k, float(grad.view(-1)[k]), fd)


@pytest.mark.parametrize("recurrent,detach_reset,integration", [(True, True, "held"), (False, True, "exact"),
                                                                 (True, False, "held")])
def test_the_sequence_node_gives_the_unrolled_equations_spikes_and_autograd_gradient(recurrent, detach_reset,
                                                                                      integration):
    """adlif_sequence (one node, its own backward) against autograd of adlif_reference, float64, with spikes and the
    surrogate, in the drive, W_rec and every neuron parameter."""
    torch.manual_seed(4)
    p = LIFParams(dt=1e-3, tau_syn=5e-3, integration=integration)
    grads = []
    for fn in (adlif_reference, adlif_sequence):
        torch.manual_seed(5)
        nrn = population(6, seed=5)
        drive = (3.0 * torch.rand(3, 50, 6, dtype=torch.float64)).requires_grad_()
        w_rec = (0.5 * torch.randn(6, 6, dtype=torch.float64)).requires_grad_() if recurrent else None
        readout = torch.randn(6, dtype=torch.float64)
        spikes, us = fn(drive, w_rec, p, nrn, "fast_sigmoid", 5.0, detach_reset)
        ((spikes * torch.linspace(1, 2, 50, dtype=torch.float64)[None, :, None]) @ readout).pow(2).mean().backward()
        named = [drive, *([w_rec] if recurrent else []), *nrn.parameters()]
        grads.append((spikes.detach(), us.detach(), [t.grad.clone() for t in named]))
    (s_ref, u_ref, g_ref), (s_seq, u_seq, g_seq) = grads
    assert s_ref.sum() > 10 and torch.equal(s_ref, s_seq)
    torch.testing.assert_close(u_seq, u_ref, rtol=1e-12, atol=1e-12)
    for ref, seq in zip(g_ref, g_seq):
        assert ref.abs().sum() > 0
        torch.testing.assert_close(seq, ref, rtol=1e-10, atol=1e-12)


def test_bptt_trains_adlif_end_to_end_and_keeps_every_parameter_in_its_range(one_thread):
    module = module_for(["algorithm=bptt", *TINY, "optim.lr=5.0"])  # a huge step pushes parameters out of range
    x = (torch.rand(4, 40, 12) < 0.3).float()
    y = torch.tensor([0, 1, 2, 3]) % module.data_shape.n_classes
    nrn = module.net.adaptive
    out = module.forward_backward(x, y)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in nrn.parameters())
    opt = torch.optim.SGD(module.parameters(), lr=5.0)
    opt.step()
    module.after_optimizer_step()
    r = nrn.ranges
    for p, (lo, hi) in ((nrn.tau_u, r.tau_u), (nrn.tau_w, r.tau_w), (nrn.a, r.a), (nrn.b, r.b)):
        bounds = torch.tensor([lo, hi], dtype=p.dtype)  # the range in the parameter's precision
        assert bool(p.min() >= bounds[0]) and bool(p.max() <= bounds[1])
    assert torch.isfinite(out.loss)
    spikes, _ = module.simulate(x)  # evaluation runs the same neuron
    assert spikes.shape == (4, 40, 6)


@pytest.mark.parametrize("name", [n for n, s in ALGORITHMS.items() if "adlif" not in s.neurons])
def test_algorithms_without_adlif_refuse_it_in_one_line_and_the_export_refuses_it(name):
    with pytest.raises(ConfigError, match=f"model.neuron=adlif is not implemented by algorithm={name}"):
        compose_config([f"algorithm={name}", "model.neuron=adlif", "loss.kind=sum_exp"])
    cfg = compose_config(["algorithm=bptt", "model.neuron=adlif"])
    assert "NIR has no node" in export.refusal(cfg)
