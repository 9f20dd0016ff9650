"""ParaLIF (algorithms/paralif.py) against the step-by-step equations it parallelises.

The specification here is the sequential form: the suite's LIF recurrence without reset, one step at a
time, with Eqs. 22–23 (recurrent ParaLIF) and Eq. 24 (spike functions) written per step. The parallel
network (blocked scan, and the paper's FFT form) must give the same potentials (float64, relative error
<= 1e-10), the same spikes, and the same gradients as autograd through that loop, for learnable time
constants and thresholds too.
"""

from __future__ import annotations

from spikebench.errors import UserError
import math

import pytest
import torch

from spikebench.algorithms.network import InitParams
from spikebench.algorithms.neuron import LIFParams, leaky_readout
from spikebench.algorithms.parallel_lif import lif_membrane, neuron_major
from spikebench.algorithms.paralif import SPIKE_MODES, ParaLIFLayer, ParaLIFNet, ParaLIFSpikes
from spikebench.algorithms.surrogates import get_surrogate, spike
from tests.conftest import module_for, overrides_for

F64 = torch.float64


pytestmark = pytest.mark.usefixtures("one_thread")


NORM = {"": lambda v: v, "S": torch.sigmoid, "T": torch.tanh, "TR": lambda v: torch.relu(torch.tanh(v))}


# ----------------------------------------------------------------------------------------------
# The sequential specification
# ----------------------------------------------------------------------------------------------


def sequential_membrane(a, tau_mem, tau_syn, dt):
    """I[t] = β I[t−1] + a[t];  V[t] = α V[t−1] + (1 − α) I[t]  (neuron.py without reset), one step at a time."""
    alpha, beta = torch.exp(-dt / tau_mem), torch.exp(-dt / tau_syn)
    i = torch.zeros_like(a[:, 0])
    v = torch.zeros_like(a[:, 0])
    out = []
    for t in range(a.shape[1]):
        i = beta * i + a[:, t]
        v = alpha * v + (1 - alpha) * i
        out.append(v)
    return torch.stack(out, 1)


def step_spike(mode, v, v_prev, theta, u, slope=2.0, tau_gs=0.7):
    """Eq. 24 for one step, written out: v, v_prev = V[t], V[t−1]; u: the uniform draw of this step."""
    if mode == "GS":
        z = 2 * v + torch.log(u) - torch.log(1 - u)
        soft = torch.sigmoid(z / tau_gs)
        return soft + ((z > 0).to(v.dtype) - soft).detach()
    n = NORM[mode[:-1]]
    if mode[-1] == "B":
        p = n(v)
        half_p2 = p * p / 2  # d(half_p2)/dp = p: the straight-through gradient ∂s/∂p := p
        return (u < p).to(v.dtype) + (half_p2 - half_p2.detach())
    if mode[-1] == "D":
        return spike(n(v) - n(v_prev) - theta, "fast_sigmoid", slope)
    return spike(n(v) - theta, "fast_sigmoid", slope)


def sequential_layer(x, layer, mode, noise_h, noise_s):
    """One ParaLIF layer step by step: Eq. 15 (membrane), Eq. 22 (recurrent spikes from V_ff[t−1]),
    Eq. 23 (second integration of input + recurrent drive), Eq. 24 (output spikes)."""
    tau_mem, tau_syn, theta, dt = layer.log_tau_mem.exp(), layer.log_tau_syn.exp(), layer.threshold, layer.dt
    alpha, beta = torch.exp(-dt / tau_mem), torch.exp(-dt / tau_syn)
    # the suite's input gain γ (neuron.py): held 1 − α, or exact integration of the current's decay
    gain = 1 - alpha if layer.integration == "held" else tau_syn / (tau_syn - tau_mem) * (beta - alpha)
    a = x @ layer.w_in
    zero = torch.zeros_like(a[:, 0])
    i_ff, v_ff, i_2, v_2 = zero, zero, zero, zero
    v_ff_prev, v_ff_prev2, v_prev = zero, zero, zero
    spikes, vs = [], []
    for t in range(a.shape[1]):
        drive = a[:, t]
        i_ff = beta * i_ff + drive
        v_ff_prev2, v_ff_prev = v_ff_prev, v_ff
        v_ff = alpha * v_ff + gain * i_ff
        v = v_ff
        if layer.w_rec is not None:
            h = step_spike(mode, v_ff_prev, v_ff_prev2, theta, noise_h[:, t])
            i_2 = beta * i_2 + drive + h @ layer.w_rec
            v_2 = alpha * v_2 + gain * i_2
            v = v_ff + v_2
        spikes.append(step_spike(mode, v, v_prev, theta, noise_s[:, t]))
        vs.append(v)
        v_prev = v
    return torch.stack(spikes, 1), torch.stack(vs, 1)


def make_layer(mode, recurrent, n_in=5, n_out=6, threshold=None, learn=True, membrane="scan", integration="held"):
    spike_fn = ParaLIFSpikes(mode, "fast_sigmoid", 2.0, 0.7)
    if threshold is None:
        threshold = {"D": 0.2, "T": 1.0}[mode[-1]] if len(mode) == 1 else {"D": 0.03, "T": 0.4}.get(mode[-1], 1.0)
    p = LIFParams(dt=1e-3, tau_mem=12e-3, tau_syn=4e-3, threshold=threshold, integration=integration)
    layer = ParaLIFLayer(n_in, n_out, recurrent, p, spike_fn, learn, learn, 1.0, 4.0, 1.0, membrane, 16).double()
    with torch.no_grad():  # per-neuron time constants and thresholds, all different
        layer.log_tau_mem.add_(0.5 * torch.randn(n_out, dtype=F64))
        layer.log_tau_syn.add_(0.5 * torch.randn(n_out, dtype=F64))
        layer.threshold.add_(0.1 * torch.rand(n_out, dtype=F64))
    return layer


@torch.no_grad()
def rel_err(x, ref):
    return float((x - ref).abs().max() / ref.abs().max()) if ref.numel() else 0.0


# ----------------------------------------------------------------------------------------------
# Eq. 15: the parallel membrane
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["scan", "fft"])
def test_parallel_membrane_equals_sequential_recurrence_float64_random_lengths_and_time_constants(method):
    gen = torch.Generator().manual_seed(5)
    for trial in range(12):
        steps = int(torch.randint(1, 400, (1,), generator=gen))
        chunk = int(torch.randint(1, 70, (1,), generator=gen))
        n = 4 if trial % 2 else 1  # per-neuron time constants, or one for all
        dt = 1e-3
        tau_mem = torch.exp(torch.empty(n, dtype=F64).uniform_(math.log(0.5e-3), math.log(0.5), generator=gen))
        tau_syn = torch.exp(torch.empty(n, dtype=F64).uniform_(math.log(0.5e-3), math.log(0.2), generator=gen))
        a = torch.randn(3, steps, 4, dtype=F64, generator=gen)
        ours = lif_membrane(neuron_major(a), tau_mem, tau_syn, dt, method, chunk).permute(1, 2, 0)
        ref = sequential_membrane(a, tau_mem, tau_syn, dt)
        assert rel_err(ours, ref) <= 1e-10, (trial, steps, chunk)


@pytest.mark.parametrize("per_neuron", [True, False])
@pytest.mark.parametrize("method", ["scan", "fft"])
def test_parallel_membrane_gradients_in_input_and_learnable_time_constants_equal_autograd_of_recurrence(
    method, per_neuron
):
    steps, n, dt = 90, 5, 1e-3
    a = torch.randn(2, steps, n, dtype=F64, requires_grad=True)
    tau_mem = torch.tensor([3e-3, 10e-3, 20e-3, 50e-3, 0.3] if per_neuron else [15e-3], dtype=F64, requires_grad=True)
    tau_syn = torch.tensor([1e-3, 5e-3, 2e-3, 30e-3, 8e-3] if per_neuron else [4e-3], dtype=F64, requires_grad=True)
    g = torch.randn(2, steps, n, dtype=F64)
    v = lif_membrane(neuron_major(a), tau_mem, tau_syn, dt, method, 16).permute(1, 2, 0)
    ours = torch.autograd.grad((v * g).sum(), (a, tau_mem, tau_syn))
    ref = torch.autograd.grad((sequential_membrane(a, tau_mem, tau_syn, dt) * g).sum(), (a, tau_mem, tau_syn))
    for x, y in zip(ours, ref):
        assert rel_err(x, y) <= 1e-10


@pytest.mark.parametrize("integration", ["held", "exact"])
@pytest.mark.parametrize("method", ["scan", "fft"])
def test_parallel_readout_equals_the_suites_leaky_readout(method, integration):
    p = LIFParams(dt=1e-3, tau_mem=20e-3, tau_syn=5e-3, integration=integration)
    net = ParaLIFNet(4, 7, 3, 1, False, p, p, ParaLIFSpikes("T"), membrane=method, chunk=20).double()
    s = (torch.rand(2, 150, 7, dtype=F64) < 0.2).to(F64)
    assert rel_err(net.readout(neuron_major(s)).permute(1, 2, 0), leaky_readout(s @ net.w_out, p)) <= 1e-10


# ----------------------------------------------------------------------------------------------
# Eq. 24: the spike functions
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["SB", "TRB"])
def test_bernoulli_spikes_have_rate_normalised_potential_and_straight_through_gradient_p_times_dN(mode):
    v = torch.linspace(-2, 2, 9, dtype=F64).repeat(20000, 1).requires_grad_()
    s = ParaLIFSpikes(mode)(v, torch.tensor(0.0, dtype=F64))
    p = NORM[mode[:-1]](v.detach())
    assert set(s.detach().unique().tolist()) <= {0.0, 1.0}
    rate = s.detach().mean(0)
    sd = (p[0] * (1 - p[0]) / v.shape[0]).sqrt()
    assert ((rate - p[0]).abs() <= 5 * sd + 1e-12).all()
    (grad,) = torch.autograd.grad(s.sum(), v)
    vv = v.detach().requires_grad_()
    (dn,) = torch.autograd.grad(NORM[mode[:-1]](vv).sum(), vv)
    torch.testing.assert_close(grad, p * dn)


def test_gumbel_softmax_spikes_with_probability_sigmoid_2v_and_soft_sample_gradient():
    tau = 0.5
    fn = ParaLIFSpikes("GS", gs_temperature=tau)
    v = torch.linspace(-1.5, 1.5, 7, dtype=F64).repeat(40000, 1).requires_grad_()
    u = torch.rand_like(v)
    s = fn(v, torch.tensor(0.0, dtype=F64), u)
    rate = s.detach().mean(0)
    p = torch.sigmoid(2 * v.detach()[0])  # P(2V + L > 0) for logistic L
    assert ((rate - p).abs() <= 5 * (p * (1 - p) / v.shape[0]).sqrt()).all()
    (grad,) = torch.autograd.grad(s.sum(), v)
    soft = torch.sigmoid((2 * v.detach() + torch.log(u) - torch.log1p(-u)) / tau)
    torch.testing.assert_close(grad, 2 / tau * soft * (1 - soft))


@pytest.mark.parametrize("mode", ["D", "SD", "TD", "TRD"])
def test_delta_spikes_when_increase_of_normalised_potential_exceeds_threshold(mode):
    theta = torch.tensor(0.3, dtype=F64)
    v = torch.randn(3, 2, 50, dtype=F64).cumsum(-1)  # (neurons, batch, time)
    n = NORM[mode[:-1]]
    prev = torch.cat([torch.zeros_like(v[..., :1]), v[..., :-1]], -1)
    expect = (n(v) - n(prev) >= theta).to(F64)
    s = ParaLIFSpikes(mode)(v, theta)
    assert torch.equal(s, expect) and 0 < expect.sum() < expect.numel()


@pytest.mark.parametrize("surrogate", ["fast_sigmoid", "arctan"])
@pytest.mark.parametrize("mode", ["T", "ST", "TT", "TRT"])
def test_threshold_spikes_and_surrogate_gradient_of_normalised_potential(mode, surrogate):
    theta = torch.tensor(0.4, dtype=F64, requires_grad=True)
    v = (2 * torch.randn(3, 40, 4, dtype=F64)).requires_grad_()
    fn = ParaLIFSpikes(mode, surrogate, 3.0)
    s = fn(v, theta)
    n = NORM[mode[:-1]]
    u = n(v.detach()) - 0.4
    assert torch.equal(s.detach(), (u >= 0).to(F64))
    g_v, g_theta = torch.autograd.grad(s.sum(), (v, theta))
    vv = v.detach().requires_grad_()
    (dn,) = torch.autograd.grad(n(vv).sum(), vv)
    sigma = get_surrogate(surrogate)(u, 3.0)
    torch.testing.assert_close(g_v, sigma * dn)
    torch.testing.assert_close(g_theta, -sigma.sum())


# ----------------------------------------------------------------------------------------------
# Eqs. 15, 22–24: whole layers and networks against the step-by-step form
# ----------------------------------------------------------------------------------------------


LAYER_CASES = (
    [(m, r, "scan", "held") for m in SPIKE_MODES for r in (False, True)]
    + [(m, True, "fft", "held") for m in ("T", "SB")]
    + [(m, True, membrane, "exact") for m in ("D", "T") for membrane in ("scan", "fft")]  # learnable τ in γ too
)


@pytest.mark.parametrize("mode,recurrent,membrane,integration", LAYER_CASES)
def test_layer_eqs_22_23_24_equal_step_by_step_form_and_its_autograd_gradients(mode, recurrent, membrane, integration):
    torch.manual_seed(2)
    layer = make_layer(mode, recurrent, membrane=membrane, integration=integration)
    x = (torch.rand(3, 70, 5) < 0.3).to(F64)
    noise = (torch.rand(3, 70, 6, dtype=F64), torch.rand(3, 70, 6, dtype=F64))
    s, v = (y.permute(1, 2, 0) for y in layer(neuron_major(x), tuple(u.permute(2, 0, 1) for u in noise)))
    s_ref, v_ref = sequential_layer(x, layer, mode, *noise)
    assert rel_err(v, v_ref) <= 1e-10
    assert torch.equal(s, s_ref) and 0 < s.sum() < s.numel()
    g_s, g_v = torch.randn_like(s), torch.randn_like(v)
    params = [p for p in layer.parameters()]
    assert len(params) == 4 + recurrent  # w_in, (w_rec), log τ_mem, log τ_syn, ϑ
    ours = torch.autograd.grad((s * g_s).sum() + (v * g_v).sum(), params, allow_unused=True)
    ref = torch.autograd.grad((s_ref * g_s).sum() + (v_ref * g_v).sum(), params, allow_unused=True)
    for name, x_, y_ in zip([n for n, _ in layer.named_parameters()], ours, ref):
        if y_ is None:  # ϑ has no gradient in the stochastic modes
            assert x_ is None or not x_.abs().sum(), name
            continue
        torch.testing.assert_close(x_, y_, rtol=1e-9, atol=1e-11, msg=name)


def test_two_layer_stack_with_readout_equals_step_by_step_layers_and_leaky_readout():
    torch.manual_seed(3)
    p = LIFParams(dt=1e-3, tau_mem=15e-3, tau_syn=5e-3, threshold=0.3)
    spike_fn = ParaLIFSpikes("D", "fast_sigmoid", 2.0)
    net = ParaLIFNet(5, 8, 3, 2, True, p, p, spike_fn, init=InitParams(0.5, 3.0, 1.0, 1.0), chunk=16).double()
    x = (torch.rand(2, 60, 5) < 0.3).to(F64)
    s, v_out = net(x)
    h = x
    for layer in net.layers:
        no_noise = torch.zeros(2, 60, 8, dtype=F64)  # D is deterministic
        h, _ = sequential_layer(h, layer, "D", no_noise, no_noise)
    assert torch.equal(s, h) and s.sum() > 0
    assert rel_err(v_out, leaky_readout(h @ net.w_out, p)) <= 1e-10


# ----------------------------------------------------------------------------------------------
# Config and training
# ----------------------------------------------------------------------------------------------


def test_bad_spike_mode_and_unreachable_threshold_raise_value_error_naming_the_key():
    with pytest.raises(UserError, match="algorithm.spike_mode"):
        module_for(["algorithm=paralif", "algorithm.spike_mode=XB"])
    with pytest.raises(UserError, match="algorithm.threshold"):
        module_for(["algorithm=paralif", "algorithm.spike_mode=ST", "algorithm.threshold=1.0"])
    with pytest.raises(UserError, match="algorithm.layers"):
        module_for(["algorithm=paralif", "algorithm.layers=0"])
    with pytest.raises(UserError, match="algorithm.membrane"):
        module_for(["algorithm=paralif", "algorithm.membrane=loop"])


@pytest.mark.parametrize("mode", ["T", "SB"])
def test_loss_decreases_on_a_fixed_batch_with_learnable_tau_and_threshold(mode):
    from spikebench.train import compose_config
    from spikebench.algorithms import build_module
    from spikebench.datamodules import data_shape

    torch.manual_seed(0)
    cfg = compose_config(
        ["algorithm=paralif", f"algorithm.spike_mode={mode}", "algorithm.learn_tau=true",
         "algorithm.learn_threshold=true", "model.hidden=32", "model.init.in_std=3.0"]
    )
    module = build_module(cfg, data_shape(cfg))
    opt = torch.optim.Adam(module.parameters(), lr=5e-3)
    x = (torch.rand(16, 100, 700) < 0.03).float()
    y = torch.arange(16) % 4
    first = None
    for _ in range(30):
        loss = module.loss_and_grads(x, y)
        opt.step()
        first = first if first is not None else float(loss)
    assert float(loss) < 0.7 * first
    tau = module.net.layers[0].log_tau_mem
    assert isinstance(tau, torch.nn.Parameter) and tau.grad is not None


def test_train_run_end_to_end_on_shd_format_files(shd_dir, tmp_path):
    from spikebench.train import compose_config, run

    cfg = compose_config(
        overrides_for(
            tmp_path, "algorithm=paralif", "data=shd", f"data.root={shd_dir}", "data.download=false",
            "data.duration=0.1", "model.hidden=32", "trainer.max_epochs=1", "model.recurrent=true",
        )
    )
    results = run(cfg)
    assert 0.0 <= results["test/acc"] <= 1.0 and math.isfinite(results["test/loss"])
