"""e-prop (algorithms/eprop.py) against autograd through the same network with e-prop's cuts made explicit."""

from __future__ import annotations

from spikebench.errors import UserError
import pytest
import torch
import torch.nn.functional as F

from spikebench.algorithms import build_module
from spikebench.datamodules import data_shape
from spikebench.algorithms.eprop import pseudo_derivative
from spikebench.algorithms.losses import readout_time_kernel
from spikebench.algorithms.losses import readout_logits, time_weights
from spikebench.algorithms.neuron import LIFParams, exp_filter, leaky_readout, lif_sequence, lif_step, reset
from spikebench.train import compose_config


def make_eprop(*overrides: str, hidden: int = 7, n_in: int = 5, steps: int = 40):
    """A small float64 e-prop module on the generated-data config, with channels = n_in."""
    cfg = compose_config(
        [
            "algorithm=eprop",
            f"model.hidden={hidden}",
            f"data.channels={n_in}",
            "data.n_classes=3",
            f"data.duration={steps * 1e-3}",
            "model.init.in_std=3.0",
            "model.init.in_mean=1.0",
            *overrides,
        ]
    )
    return build_module(cfg, data_shape(cfg)).double()


def random_batch(module, batch: int = 4, steps: int = 40, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = (torch.rand(batch, steps, module.net.n_in, generator=gen, dtype=torch.float64) < 0.3).double()
    y = torch.randint(0, module.net.n_out, (batch,), generator=gen)
    return x, y


class PsiSpike(torch.autograd.Function):
    """Θ(U − ϑ) forward; ψ = γ max(0, 1 − |(U − ϑ)/ϑ|) as its derivative."""

    @staticmethod
    def forward(ctx, u, threshold, gamma):  # type: ignore[override]
        ctx.save_for_backward(u)
        ctx.threshold, ctx.gamma = threshold, gamma
        return (u >= threshold).to(u.dtype)

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        (u,) = ctx.saved_tensors
        return g * pseudo_derivative(u, ctx.threshold, ctx.gamma), None, None


def cut_network_loss(module, x, y, feedback: torch.Tensor | None = None):
    """The loss of the unrolled network, differentiable by autograd, with the paths e-prop leaves out cut:
    the recurrent spikes s[t-1] → I[t] and the spike in the reset are stop-gradient, Θ' := ψ.
    With ALIF (β_a > 0) the spike's path into its own threshold, a[t] = ρ a[t-1] + s[t-1], is kept.
    With `feedback`, the readout's gradient to the spikes goes through feedback instead of W_out."""
    net, p = module.net, module.net.hidden
    batch, steps, _ = x.shape
    i = x.new_zeros(batch, net.n_hidden)
    v, s, adapt = torch.zeros_like(i), torch.zeros_like(i), torch.zeros_like(i)
    spikes = []
    for t in range(steps):
        drive = x[:, t] @ net.w_in
        if net.recurrent:
            drive = drive + s.detach() @ net.w_rec
        i, u = lif_step(i, v, drive, p)
        adapt = module.rho * adapt + s
        s = PsiSpike.apply(u - module.beta_a * adapt, p.threshold, module.gamma)
        v = reset(u, s.detach(), p)
        spikes.append(s)
    spikes = torch.stack(spikes, 1)
    h = spikes @ net.w_out
    if feedback is not None:  # same value, gradient to the spikes through B instead of W_out
        h = spikes.detach() @ net.w_out + spikes @ feedback - (spikes @ feedback).detach()
    v_out = leaky_readout(h, net.readout_params)
    loss, _ = module.objective(v_out, spikes, y)
    return loss


def autograd_grads(module, loss):
    params = [prm for prm in (module.net.w_in, module.net.w_rec, module.net.w_out) if prm is not None]
    return torch.autograd.grad(loss, params)


def eprop_grads(module, x, y):
    loss = module.loss_and_grads(x, y)
    return loss, [prm.grad for prm in (module.net.w_in, module.net.w_rec, module.net.w_out) if prm is not None]


def assert_rel_close(ours, ref, rel=1e-9):
    err = (ours - ref).norm() / ref.norm()
    assert ref.norm() > 0 and err <= rel, f"relative error {err:.2e}"


# ----------------------------------------------------------------------------------------------
# Correctness
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind, recurrent, chunk, reg",
    [(k, r, 7, c) for k in ("sum_exp", "sum") for r in (True, False) for c in (0.0, 0.05)]
    + [("sum_exp", True, 1, 0.05), ("sum_exp", True, 64, 0.05)],  # one step per block; the trial in one block
)
def test_symmetric_eprop_equals_autograd_of_network_with_recurrent_and_reset_paths_cut(kind, recurrent, chunk, reg):
    torch.manual_seed(3)
    module = make_eprop(
        f"loss.kind={kind}",
        f"model.recurrent={str(recurrent).lower()}",
        f"algorithm.chunk={chunk}",
        f"loss.reg_strength={reg}",
        "loss.reg_target=2.0",
        "model.v_reset=-0.1",
    )
    x, y = random_batch(module)
    loss, ours = eprop_grads(module, x, y)
    ref_loss = cut_network_loss(module, x, y)
    torch.testing.assert_close(loss, ref_loss.detach(), rtol=1e-12, atol=0)
    refs = autograd_grads(module, ref_loss)
    spikes, _ = module.simulate(x)
    assert 0.05 < spikes.mean() < 0.6  # neither silent nor saturated: ψ and the resets all matter
    for g, r in zip(ours, refs):
        assert_rel_close(g, r)


@pytest.mark.parametrize("recurrent", [True, False])
@pytest.mark.parametrize("reg", [0.0, 0.05])
def test_alif_eprop_equals_autograd_with_two_component_trace_through_adaptive_threshold(recurrent, reg):
    torch.manual_seed(7)
    module = make_eprop(
        "algorithm.alif_beta=0.4",
        "algorithm.alif_tau=0.03",
        "algorithm.chunk=9",
        f"model.recurrent={str(recurrent).lower()}",
        f"loss.reg_strength={reg}",
        "loss.reg_target=2.0",
    )
    x, y = random_batch(module, steps=50)
    loss, ours = eprop_grads(module, x, y)
    ref_loss = cut_network_loss(module, x, y)
    torch.testing.assert_close(loss, ref_loss.detach(), rtol=1e-12, atol=0)
    for g, r in zip(ours, autograd_grads(module, ref_loss)):
        assert_rel_close(g, r)
    # the adaptation is active: fewer spikes than the same network without it
    lif = make_eprop(f"model.recurrent={str(recurrent).lower()}")
    lif.load_state_dict(module.state_dict())
    assert module.simulate(x)[0].sum() < 0.9 * lif.simulate(x)[0].sum()


def test_random_feedback_eprop_equals_autograd_with_feedback_matrix_in_place_of_w_out():
    torch.manual_seed(4)
    module = make_eprop("algorithm.feedback=random", "algorithm.chunk=9")
    x, y = random_batch(module, seed=1)
    _, ours = eprop_grads(module, x, y)
    refs = autograd_grads(module, cut_network_loss(module, x, y, feedback=module.feedback_matrix))
    for g, r in zip(ours, refs):
        assert_rel_close(g, r)


def test_random_feedback_is_a_fixed_matrix_that_is_not_w_out_transposed():
    module = make_eprop("algorithm.feedback=random", "algorithm.feedback_seed=5")
    b0 = module.feedback_matrix.clone()
    assert b0.shape == module.net.w_out.shape
    assert not torch.allclose(b0, module.net.w_out) and (b0 - module.net.w_out).abs().max() > 0.1
    # training changes W_out but never B
    opt = torch.optim.SGD(module.parameters(), lr=0.5)
    x, y = random_batch(module)
    w_out0 = module.net.w_out.detach().clone()
    for _ in range(3):
        module.loss_and_grads(x, y)
        opt.step()
    assert not torch.equal(module.net.w_out, w_out0)
    assert torch.equal(module.feedback_matrix, b0)
    assert "feedback_matrix" not in dict(module.named_parameters())
    # the same seed gives the same matrix in a fresh module, another seed another one
    assert torch.equal(make_eprop("algorithm.feedback=random", "algorithm.feedback_seed=5").feedback_matrix, b0)
    assert not torch.equal(make_eprop("algorithm.feedback=random", "algorithm.feedback_seed=6").feedback_matrix, b0)
    # and it changes the hidden gradients, not the readout's
    sym = make_eprop("algorithm.feedback=symmetric")
    sym.load_state_dict({k: v for k, v in module.state_dict().items() if k != "feedback_matrix"})
    _, g_rand = eprop_grads(module, x, y)
    _, g_sym = eprop_grads(sym, x, y)
    torch.testing.assert_close(g_rand[-1], g_sym[-1])
    assert not torch.allclose(g_rand[0], g_sym[0])


def test_feedforward_eprop_equals_bptt_with_triangle_surrogate_and_detached_reset():
    """Without recurrence nothing is cut: e-prop is BPTT with σ' = ψ (γ = 1, slope 1/ϑ)."""
    torch.manual_seed(5)
    module = make_eprop("model.recurrent=false", "algorithm.gamma=1.0", "model.threshold=0.8")
    x, y = random_batch(module, seed=2)
    _, ours = eprop_grads(module, x, y)
    net = module.net
    spikes = lif_sequence(net.drive(x), None, net.hidden, "triangle", 1.0 / 0.8, detach_reset=True)
    loss, _ = module.objective(net.readout(spikes), spikes, y)
    for g, r in zip(ours, autograd_grads(module, loss)):
        assert_rel_close(g, r)


def test_recurrent_eprop_differs_from_full_bptt_gradient():
    """The cut paths matter in a recurrent network: e-prop is an approximation there, not BPTT."""
    torch.manual_seed(6)
    module = make_eprop("model.recurrent=true", "model.init.rec_std=2.0", "algorithm.gamma=1.0")
    x, y = random_batch(module, seed=3)
    _, ours = eprop_grads(module, x, y)
    net = module.net
    spikes = lif_sequence(net.drive(x), net.w_rec, net.hidden, "triangle", 1.0, detach_reset=True)
    loss, _ = module.objective(net.readout(spikes), spikes, y)
    full = autograd_grads(module, loss)
    assert (ours[0] - full[0]).norm() / full[0].norm() > 1e-3
    torch.testing.assert_close(ours[-1], full[-1])  # the readout gradient is exact in both


@pytest.mark.parametrize("kind", ["sum_exp", "sum"])
def test_readout_kernel_moves_the_readout_filter_from_traces_to_time_weights(kind):
    """Σ_t w_t (κ * e)[t] = Σ_t c_t e[t]: filtering each trace by the readout (ē = F_κ(e)) = weighting by c."""
    p = LIFParams(dt=1e-3, tau_mem=15e-3, tau_syn=4e-3)
    e = torch.randn(3, 80, 5, dtype=torch.float64)
    w = time_weights(80, kind, torch.float64, torch.device("cpu"))
    e_bar = p.gain * exp_filter(exp_filter(e, p.beta), p.alpha)
    c = readout_time_kernel(80, kind, p, torch.float64, torch.device("cpu"))
    filtered, weighted = torch.einsum("btn,t->bn", e_bar, w), torch.einsum("btn,t->bn", e, c)
    torch.testing.assert_close(filtered, weighted, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("alif_beta", [0.0, 0.3])
def test_logits_from_weighted_spike_counts_equal_the_readout_logits_of_simulate(alif_beta):
    module = make_eprop(f"algorithm.alif_beta={alif_beta}", steps=60)
    x, y = random_batch(module, steps=60)
    out = module.measured_step(x, y)
    _, v_out = module.simulate(x)
    torch.testing.assert_close(out.logits, readout_logits(v_out, "sum_exp"), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out.loss, F.cross_entropy(out.logits, y))


def test_pseudo_derivative_is_triangle_of_height_gamma_and_half_width_threshold():
    u = torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0, 2.5, -1.0], dtype=torch.float64)
    expect = 0.3 * torch.tensor([0.0, 0.5, 1.0, 0.5, 0.0, 0.0, 0.0], dtype=torch.float64)
    torch.testing.assert_close(pseudo_derivative(u, 1.0, 0.3), expect)


# ----------------------------------------------------------------------------------------------
# Online: memory independent of the trial length, no autograd graph
# ----------------------------------------------------------------------------------------------


def test_training_memory_does_not_grow_with_trial_length():
    """Step memory (algorithms/measure.py) at T = 50 and 400: e-prop's traces are per synapse and neuron and its
    time loop runs in chunks of 25 steps, so only O(T) scalars may grow (the readout kernel c: 4 B per step, plus
    its temporaries), never a (batch, T, hidden) map."""
    sizes, saved = {}, {}
    for steps in (50, 400):
        module = make_eprop("algorithm.chunk=25", steps=steps).float()
        x, y = random_batch(module, steps=25)
        x = x.repeat(1, steps // 25, 1)  # every block the same events: the block buffers' size does not vary
        for prm in module.parameters():
            prm.grad = None
        out = module.measured_step(x.float(), y, memory=True)
        sizes[steps], saved[steps] = out.step_mem_bytes, out.saved_bytes
    batch, hidden = x.shape[0], module.net.n_hidden
    assert sizes[400] - sizes[50] < batch * (400 - 50) * hidden * 4, sizes  # less than one (batch, ΔT, hidden) map
    assert saved[400] - saved[50] == 4 * (400 - 50)  # the saved-tensor bookkeeping: only the T scalars of c
    assert saved[50] > 4 * 7 * (5 + 7) * 2  # traces and accumulators of both matrices are counted


def test_no_autograd_graph_is_built():
    module = make_eprop()
    x, y = random_batch(module)
    loss = module.loss_and_grads(x, y)
    assert not loss.requires_grad and loss.grad_fn is None


# ----------------------------------------------------------------------------------------------
# Config
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "override, key",
    [
        ("algorithm.feedback=mirror", "algorithm.feedback"),
        ("loss.kind=max", "loss.kind"),
        ("algorithm.gamma=0.0", "algorithm.gamma"),
        ("algorithm.chunk=0", "algorithm.chunk"),
        ("algorithm.alif_beta=-0.1", "algorithm.alif_beta"),
        ("algorithm.alif_tau=0.0", "algorithm.alif_tau"),
    ],
)
def test_bad_config_values_raise_value_error_naming_the_key(override, key):
    with pytest.raises(UserError, match=key.replace(".", r"\.")):
        make_eprop(override)


@pytest.mark.parametrize("adaptive", [False, True])
def test_input_traces_from_the_input_events_equal_the_dense_block_sums_within_1e_10(adaptive):
    """InputEligibility (β G[0] P + one row of G per input event) against Eligibility's dense block products, on
    random blocks of sparse input, float64: after two absorbed blocks the accumulators, regulariser sums and traces;
    after a third, finished block the gradients (the last block contracted with the learning signals)."""
    from spikebench.algorithms.eprop_traces import Eligibility, InputEligibility, PostBlock

    g = torch.Generator().manual_seed(7)
    batch, hidden, n_in, k_steps, beta, gain = 3, 5, 40, 12, 0.8, 0.3
    beta_a, rho = (0.2, 0.95) if adaptive else (0.0, 0.0)
    dense = Eligibility(batch, hidden, n_in, adaptive, True, torch.zeros(1, dtype=torch.float64), gain)
    events = InputEligibility(batch, hidden, n_in, adaptive, True, torch.zeros(1, dtype=torch.float64), gain, beta)
    pre_in, carry = torch.zeros(batch, n_in, dtype=torch.float64), None
    signal, rate = torch.randn(batch, hidden, dtype=torch.float64), torch.randn(hidden, dtype=torch.float64)
    for block in range(3):
        x = (torch.rand(batch, k_steps, n_in, generator=g) < 0.05).double() * torch.randint(
            1, 3, (batch, k_steps, n_in), generator=g).double()
        pre = torch.empty(batch, k_steps, n_in, dtype=torch.float64)
        for k in range(k_steps):
            pre_in = x[:, k] + beta * pre_in
            pre[:, k] = pre_in
        r = lambda: torch.rand(batch, k_steps, hidden, generator=g, dtype=torch.float64)  # noqa: E731
        blk = PostBlock(r(), r(), r(), torch.rand(k_steps, generator=g, dtype=torch.float64), beta_a, rho, True)
        b, s, c = x.nonzero(as_tuple=True)
        ev_pre = events.with_bags(carry, (b * k_steps + s, b, c, x[b, s, c]))
        if block == 2:
            ga, ge = dense.finish(pre, blk, signal, rate), events.finish(ev_pre, blk, signal, rate)
            assert float((ga - ge).norm() / ga.norm()) <= 1e-10
            break
        dense.absorb(pre, blk)
        events.absorb(ev_pre, blk)
        carry = pre_in.clone()
        pairs = [(dense.acc, events.acc), (dense.eps, events.eps), (dense.reg.T, events.reg.T)]
        if adaptive:
            pairs.append((dense.eps_a, events.eps_a))
        for a, e in pairs:  # events' layout: (pre, batch, post) and (pre, post)
            e = e.permute(1, 2, 0) if e.dim() == 3 else e.T
            assert float((a - e).norm() / a.norm()) <= 1e-10


@pytest.mark.parametrize("adaptive", [False, True])
def test_compiled_block_loop_equals_the_torch_loop(adaptive):
    """kernels/cpu_eprop (forward and scans) against the torch loops it replaces (model.backend=reference), on a
    recurrent network with the regulariser, float64, several blocks: gradients, loss and counts."""
    from spikebench.algorithms.kernels import cpu_eprop

    if cpu_eprop.load() is None:
        pytest.skip("the C++ loop did not compile here")
    overrides = ["model.recurrent=true", "algorithm.chunk=9", "loss.reg_strength=0.05", "loss.reg_target=2.0",
                 "model.v_reset=-0.1", *(["algorithm.alif_beta=0.3"] if adaptive else [])]
    out = {}
    for backend in ("cpu", "reference"):
        torch.manual_seed(3)
        module = make_eprop(*overrides, f"model.backend={backend}")
        x, y = random_batch(module)
        loss, grads = eprop_grads(module, x, y)
        out[backend] = (loss, grads)
    assert float(out["cpu"][0]) == float(out["reference"][0])
    for a, b in zip(out["cpu"][1], out["reference"][1]):
        assert_rel_close(a, b, rel=1e-12)


def test_an_explicit_cpu_backend_that_cannot_compile_is_refused_and_auto_falls_back(monkeypatch):
    """model.backend=cpu never silently runs the torch loop: a failed compile is a one-line error at construction;
    model.backend=auto takes the torch loop instead."""
    from spikebench.algorithms.kernels import cpu_eprop
    from spikebench.errors import ConfigError

    monkeypatch.setattr(cpu_eprop, "load", lambda: None)
    with pytest.raises(ConfigError, match="model.backend=cpu cannot run here"):
        make_eprop("model.backend=cpu")
    module = make_eprop("model.backend=auto")
    x, y = random_batch(module)
    loss, _ = eprop_grads(module, x, y)
    assert torch.isfinite(loss)
