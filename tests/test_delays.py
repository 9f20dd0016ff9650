"""algorithms/delays.py: the input channels' axonal delays (model.delays): the shift on the grid, the linear
interpolation between whole delays and its gradient, BPTT learning them, and the algorithms that refuse them."""

from __future__ import annotations

import pytest
import torch

from spikebench import export
from spikebench.algorithms.delays import InputDelays
from spikebench.algorithms.neuron import LIFParams, lif_reference
from spikebench.configs import ALGORITHMS, compose_config
from spikebench.errors import ConfigError
from conftest import module_for

DT = 1e-3


def shift_channels(x: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """The reference: y[:, t, c] = x[:, t − shifts[c], c] (0 before the start), one channel at a time."""
    y = torch.zeros_like(x)
    for c, k in enumerate(shifts.tolist()):
        if k < x.shape[1]:
            y[:, k:, c] = x[:, : x.shape[1] - k, c]
    return y


def delays_of(values, dt: float = DT) -> InputDelays:
    d = InputDelays(len(values), max_delay=0.05, dt=dt).double()
    with torch.no_grad():
        d.delay.copy_(torch.tensor(values, dtype=torch.float64))
    return d


def test_whole_delays_shift_each_channel_by_its_own_steps_with_zeros_before_the_start():
    x = torch.arange(1.0, 1.0 + 2 * 6 * 3, dtype=torch.float64).view(2, 6, 3)
    y = shift_channels(x, torch.tensor([0, 2, 7]))
    assert torch.equal(y[:, :, 0], x[:, :, 0])
    assert torch.equal(y[:, :2, 1], torch.zeros(2, 2, dtype=torch.float64)) and torch.equal(y[:, 2:, 1], x[:, :4, 1])
    assert torch.equal(y[:, :, 2], torch.zeros(2, 6, dtype=torch.float64))  # longer than the trial: nothing arrives
    with torch.no_grad():
        z = delays_of([0.0, 2 * DT, 7 * DT])(x)
    torch.testing.assert_close(z, y, rtol=0, atol=1e-12)


def test_a_fractional_delay_splits_a_spike_between_the_two_neighbouring_steps():
    x = torch.zeros(1, 10, 1, dtype=torch.float64)
    x[0, 2, 0] = 1.0
    with torch.no_grad():
        y = delays_of([3.25 * DT])(x)
    expected = torch.zeros(10, dtype=torch.float64)
    expected[5], expected[6] = 0.75, 0.25  # spike at step 2, delay 3.25 steps: 3/4 at step 5, 1/4 at step 6
    torch.testing.assert_close(y[0, :, 0], expected, rtol=0, atol=1e-12)


def test_the_delay_gradient_through_a_neuron_equals_central_differences_within_a_step():
    """A smooth case (sub-threshold LIF membrane, no spikes): the loss is piecewise smooth in d, with kinks only at
    whole steps, so central differences inside a step are the derivative."""
    torch.manual_seed(0)
    x = (torch.rand(2, 40, 5) < 0.3).double()
    w = torch.randn(5, 3, dtype=torch.float64)
    target = torch.randn(2, 40, 3, dtype=torch.float64)
    p = LIFParams(dt=DT, threshold=1e9, backend="reference")
    d = delays_of([0.3 * DT, 1.6 * DT, 4.45 * DT, 10.7 * DT, 0.0 + 0.5 * DT])

    def loss() -> torch.Tensor:
        _, u = lif_reference(d(x) @ w, None, p)
        return ((u - target) ** 2).mean()

    loss().backward()
    grad = d.delay.grad.clone()
    h = 1e-4 * DT  # far from a whole step for every delay above
    for c in range(5):
        with torch.no_grad():
            d.delay[c] += h
            up = float(loss())
            d.delay[c] -= 2 * h
            down = float(loss())
            d.delay[c] += h
        fd = (up - down) / (2 * h)
        assert abs(float(grad[c]) - fd) <= 1e-6 * max(1.0, abs(fd)), (c, float(grad[c]), fd)
    assert grad.abs().min() > 0


def test_bptt_learns_the_delays_keeps_them_in_range_and_evaluates_with_them(one_thread):
    overrides = ["algorithm=bptt", "model.delays.enabled=true", "model.delays.max=0.01", "model.hidden=6",
                 "data.channels=12", "data.duration=0.04"]
    module = module_for(overrides)
    x = (torch.rand(4, 40, 12) < 0.3).float()
    y = torch.tensor([0, 1, 2, 3]) % module.data_shape.n_classes
    module.forward_backward(x, y)
    delay = module.net.delays.delay
    assert delay.grad is not None and delay.grad.abs().sum() > 0
    torch.optim.SGD([delay], lr=10.0).step()
    module.after_optimizer_step()
    assert float(delay.detach().min()) >= 0.0 and float(delay.detach().max()) <= 0.01
    with torch.no_grad():
        delay.zero_()
    plain = module_for([o for o in overrides if not o.startswith("model.delays")])
    plain.load_state_dict({k: v for k, v in module.state_dict().items() if not k.startswith("net.delays")})
    torch.testing.assert_close(module.simulate(x)[1], plain.simulate(x)[1])  # zero delays: the plain network
    fixed = module_for([*overrides, "model.delays.learn=false"])
    fixed.forward_backward(x, y)
    assert fixed.net.delays.delay.grad is None


@pytest.mark.parametrize("name", [n for n, s in ALGORITHMS.items() if "learned" not in s.delays])
def test_algorithms_without_delays_refuse_them_in_one_line_and_the_export_refuses_them(name):
    with pytest.raises(ConfigError, match=f"model.delays .* is not implemented by algorithm={name}"):
        compose_config([f"algorithm={name}", "model.delays.enabled=true", "loss.kind=sum_exp"])
    assert "Delay node" in export.refusal(compose_config(["algorithm=bptt", "model.delays.enabled=true"]))


def test_paralif_learns_the_delays_and_eprop_runs_with_fixed_ones(one_thread):
    tiny = ["model.delays.enabled=true", "model.delays.max=0.01", "model.hidden=6", "data.channels=12",
            "data.duration=0.04"]
    x = (torch.rand(4, 40, 12) < 0.3).float()
    para = module_for(["algorithm=paralif", *tiny])
    para.forward_backward(x, torch.tensor([0, 1, 2, 3]) % para.data_shape.n_classes)
    assert para.net.delays.delay.grad is not None and para.net.delays.delay.grad.abs().sum() > 0
    eprop = module_for(["algorithm=eprop", *tiny, "model.delays.learn=false", "loss.kind=sum_exp"])
    with torch.no_grad():  # all delays on one whole step: e-prop's step sees the input one step late
        eprop.net.delays.delay.fill_(1e-3)
    out = eprop.forward_backward(x, torch.tensor([0, 1, 2, 3]) % eprop.data_shape.n_classes)
    late = module_for(["algorithm=eprop", *tiny[2:], "loss.kind=sum_exp"])
    late.load_state_dict({k: v for k, v in eprop.state_dict().items() if not k.startswith("net.delays")})
    shifted = torch.cat([torch.zeros(4, 1, 12), x[:, :-1]], dim=1)
    y = torch.tensor([0, 1, 2, 3]) % late.data_shape.n_classes
    torch.testing.assert_close(out.loss, late.forward_backward(shifted, y).loss)


def test_synops_count_each_input_spike_once_whatever_its_delay(one_thread):
    """The trace's input connection is the undelayed frames: a delayed spike is one event (not one per
    interpolation tap), so W_in's synaptic operations equal those of the network without delays."""
    from spikebench.sweeps.benchmark.neurobench import synaptic_operations
    from spikebench.algorithms.trace import Trace

    tiny = ["algorithm=bptt", "model.hidden=6", "data.channels=12", "data.duration=0.04"]
    x = (torch.rand(2, 40, 12, generator=torch.Generator().manual_seed(1)) < 0.2).float()
    counts = []
    for extra in ([], ["model.delays.enabled=true", "model.delays.max=0.01"]):
        module = module_for([*tiny, *extra])
        w_in = [c for c in module.trace(x).connections if c.name == "w_in"]
        counts.append(synaptic_operations(Trace(connections=w_in))["Effective_ACs"])
    assert counts[0] == counts[1] == float((x != 0).sum()) * 6
