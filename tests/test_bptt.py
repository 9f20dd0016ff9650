"""BPTT (algorithms/bptt.py): the module's gradients equal autograd through the plainly unrolled network."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from spikebench.algorithms import build_module
from spikebench.datamodules import data_shape
from spikebench.algorithms.neuron import lif_reference
from spikebench.algorithms.losses import readout_logits
from spikebench.train import compose_config


def unrolled_loss(net, x, y, kind, surrogate, slope, reg_strength, reg_target):
    """The network written out step by step (autograd records every operation)."""
    spikes, _ = lif_reference(x @ net.w_in, net.w_rec, net.hidden, surrogate, slope, detach_reset=True)
    h = spikes @ net.w_out
    p = net.readout_params
    i = torch.zeros_like(h[:, 0])
    v = torch.zeros_like(h[:, 0])
    vs = []
    for t in range(h.shape[1]):
        i = p.beta * i + h[:, t]
        v = p.alpha * v + p.gain * i
        vs.append(v)
    logits = readout_logits(torch.stack(vs, 1), kind)
    counts = spikes.sum(1).mean(0)
    return F.cross_entropy(logits, y) + reg_strength * ((counts - reg_target) ** 2).mean()


@pytest.mark.parametrize("kind", ["sum_exp", "sum", "max"])
@pytest.mark.parametrize("recurrent", [True, False])
def test_bptt_loss_and_grads_equal_autograd_through_unrolled_network_float64(kind, recurrent):
    torch.manual_seed(0)
    cfg = compose_config(["model.hidden=12", f"model.recurrent={str(recurrent).lower()}", f"loss.kind={kind}",
                          "loss.reg_strength=0.01", "loss.reg_target=2.0", "data.channels=20", "data.n_classes=4",
                          "model.init.in_mean=3.0", "model.init.in_std=4.0", "algorithm.slope=5.0"])
    module = build_module(cfg, data_shape(cfg)).double()
    x = (torch.rand(3, 40, 20) < 0.2).double()
    y = torch.tensor([0, 3, 1])
    loss = module.loss_and_grads(x, y)
    ours = [p.grad.clone() for p in module.parameters()]
    ref_loss = unrolled_loss(module.net, x, y, kind, "fast_sigmoid", 5.0, 0.01, 2.0)
    ref = torch.autograd.grad(ref_loss, list(module.parameters()))
    assert torch.isclose(loss, ref_loss.detach())
    assert module.simulate(x)[0].sum() > 10
    for a, b in zip(ours, ref):
        assert b.abs().sum() > 0
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_the_recurrent_weight_gradient_one_sample_at_a_time_equals_the_flattened_product_float64():
    from spikebench.algorithms.neuron import recurrent_weight_grad

    torch.manual_seed(0)
    u = torch.randn(5, 40, 7, dtype=torch.float64) + 0.8
    g_i = torch.randn(5, 40, 7, dtype=torch.float64)
    s_prev = (u[:, :-1] >= 1.0).to(u.dtype)
    flat = s_prev.flatten(0, 1).T @ g_i[:, 1:].flatten(0, 1)
    torch.testing.assert_close(recurrent_weight_grad(u, g_i, 1.0), flat, rtol=1e-10, atol=1e-12)


def test_a_bptt_step_holds_at_most_four_batch_by_time_by_hidden_maps_at_its_peak(one_thread):
    """U (saved by the sequence node), the spikes (kept by the readout's product), their gradient and dL/dI: the
    four maps the recurrence and its readout need. No shifted or float copy of the spike map (which made it six)."""
    from spikebench.algorithms.measure import step_memory

    batch, steps, hidden, n_in = 8, 500, 128, 20
    cfg = compose_config(["algorithm=bptt", f"model.hidden={hidden}", f"data.channels={n_in}",
                          f"data.duration={steps * 1e-3}", "data.dt=1e-3", "model.recurrent=true"])
    module = build_module(cfg, data_shape(cfg))
    x = (torch.rand(batch, steps, n_in) < 0.1).float()
    y = torch.arange(batch) % 10

    def step():
        for prm in module.parameters():
            prm.grad = None
        return module.forward_backward(x, y)

    step()  # warm-up
    maps = step_memory(step).peak_bytes / (batch * steps * hidden * 4)
    assert 4.0 <= maps <= 4.5, maps  # 4 maps + one sample's spikes (1/8 of a map) + the small rest
