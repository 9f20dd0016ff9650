"""algorithms/stdp.py: the pair-based STDP rule's closed form on hand-made spike trains (pre before post, post
before pre, the bounds), that it reads no label, and an STDP run end to end."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from spikebench import train
from spikebench.algorithms.stdp import stdp_update, weight_dependence
from conftest import module_for, overrides_for

DT, TAU = 1e-3, 20e-3


def rule(name: str = "additive", **kw) -> SimpleNamespace:
    base = dict(rule=name, eta_plus=0.1, eta_minus=0.2, tau_plus=TAU, tau_minus=TAU, w_min=0.0, w_max=1.0,
                beta_plus=3.0, beta_minus=2.0)
    return SimpleNamespace(**{**base, **kw})


def trains(pre_step: int | None, post_step: int | None, steps: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    x, s = torch.zeros(1, steps, 1, dtype=torch.float64), torch.zeros(1, steps, 1, dtype=torch.float64)
    if pre_step is not None:
        x[0, pre_step, 0] = 1.0
    if post_step is not None:
        s[0, post_step, 0] = 1.0
    return x, s


def test_pre_before_post_potentiates_by_the_pre_trace_at_the_post_spike():
    x, s = trains(2, 5)
    dw = stdp_update(x, s, torch.tensor([[0.5]], dtype=torch.float64), rule(), DT)
    assert float(dw) == pytest.approx(0.1 * math.exp(-3 * DT / TAU), rel=1e-12)


def test_post_before_pre_depresses_by_the_post_trace_of_the_steps_before_the_pre_spike():
    x, s = trains(5, 2)
    dw = stdp_update(x, s, torch.tensor([[0.5]], dtype=torch.float64), rule(), DT)
    assert float(dw) == pytest.approx(-0.2 * math.exp(-2 * DT / TAU), rel=1e-12)


def test_input_of_the_post_spikes_own_step_counts_as_before_it_and_a_lone_spike_changes_nothing():
    x, s = trains(4, 4)
    assert float(stdp_update(x, s, torch.tensor([[0.5]], dtype=torch.float64), rule(), DT)) == pytest.approx(0.1)
    for pre, post in ((3, None), (None, 3)):
        x, s = trains(pre, post)
        assert float(stdp_update(x, s, torch.tensor([[0.5]], dtype=torch.float64), rule(), DT)) == 0.0


@pytest.mark.parametrize("name", ["multiplicative", "memristor"])
def test_soft_bounded_and_memristor_steps_shrink_towards_the_bound_they_approach(name):
    x_pp, s_pp = trains(2, 5)  # potentiating pair
    x_dp, s_dp = trains(5, 2)  # depressing pair
    a = rule(name)
    w = torch.tensor([[0.0], [0.5], [1.0]], dtype=torch.float64).view(1, 3).T.contiguous()  # three weights
    ups = [float(stdp_update(x_pp, s_pp, wi.view(1, 1), a, DT)) for wi in w.view(-1)]
    downs = [float(stdp_update(x_dp, s_dp, wi.view(1, 1), a, DT)) for wi in w.view(-1)]
    assert ups[0] > ups[1] > ups[2] >= 0 and downs[2] < downs[1] < downs[0] <= 0
    f_plus, _ = weight_dependence(torch.tensor(1.0, dtype=torch.float64), name, 0.0, 1.0, 3.0, 2.0)
    assert ups[2] == pytest.approx(0.1 * math.exp(-3 * DT / TAU) * float(f_plus), rel=1e-12)
    if name == "multiplicative":
        assert ups[2] == 0.0 and downs[0] == 0.0  # soft bounds: no step beyond w_max or below w_min
    else:
        assert ups[2] == pytest.approx(0.1 * math.exp(-3 * DT / TAU) * math.exp(-3.0), rel=1e-12)
        assert downs[0] == pytest.approx(-0.2 * math.exp(-2 * DT / TAU) * math.exp(-2.0), rel=1e-12)


def test_the_rule_reads_no_label_and_keeps_the_input_weights_in_bounds(one_thread):
    overrides = ["algorithm=stdp", "model.hidden=8", "data.channels=12", "data.duration=0.05",
                 "algorithm.rule=additive", "algorithm.eta_plus=0.5"]
    x = (torch.rand(4, 50, 12) < 0.3).float()
    after = []
    for labels in ([0, 1, 2, 3], [3, 3, 0, 1]):
        torch.manual_seed(0)
        module = module_for(overrides)
        module.forward_backward(x, torch.tensor(labels))
        after.append((module.net.w_in.detach().clone(), module.theta.clone()))
        assert module.net.w_in.grad is None and module.net.w_out.grad.abs().sum() > 0
        a = module.cfg.algorithm
        assert float(module.net.w_in.detach().min()) >= a.w_min and float(module.net.w_in.detach().max()) <= a.w_max
    assert torch.equal(after[0][0], after[1][0]) and torch.equal(after[0][1], after[1][1])


@pytest.mark.parametrize("readout", ["gradient", "assignment"])
def test_an_stdp_run_trains_and_tests_end_to_end(tmp_path, one_thread, readout):
    cfg = train.compose_config(overrides_for(tmp_path, "algorithm=stdp", f"algorithm.readout={readout}",
                                             "model.hidden=16", "trainer.max_epochs=2",
                                             "trainer.limit_train_batches=2", "trainer.limit_val_batches=2",
                                             "trainer.limit_test_batches=2"))
    results = train.run(cfg)
    assert 0.0 <= results["test/acc"] <= 1.0 and (tmp_path / "run" / "results.yaml").is_file()


def test_assignment_readout_labels_each_neuron_by_its_mean_response_and_scores_by_assigned_neurons(one_thread):
    module = module_for(["algorithm=stdp", "algorithm.readout=assignment", "model.hidden=3", "data.channels=12",
                         "data.duration=0.05", "data.n_classes=2"])
    module.responses.copy_(torch.tensor([[4.0, 0.0], [0.0, 6.0], [3.0, 3.0]]))  # sums over an epoch
    module.seen.copy_(torch.tensor([2.0, 3.0]))  # recordings per class: means [[2, 0], [0, 2], [1.5, 1]]
    module.after_training_epoch(torch.ones(3))
    assert module.assigned.tolist() == [0, 1, 0] and float(module.responses.sum()) == 0.0
    scores = module.assignment_scores(torch.tensor([[2.0, 5.0, 4.0]]))
    assert scores.tolist() == [[3.0, 5.0]]  # class 0: mean of neurons 0 and 2; class 1: neuron 1


def test_weight_normalisation_gives_every_neuron_the_same_input_weight_sum_after_an_update(one_thread):
    module = module_for(["algorithm=stdp", "model.hidden=8", "data.channels=12", "data.duration=0.05",
                         "algorithm.weight_sum=2.0", "algorithm.eta_plus=0.05"])
    torch.testing.assert_close(module.net.w_in.detach().sum(0), torch.full((8,), 2.0))
    x = (torch.rand(4, 50, 12) < 0.3).float()
    before = module.net.w_in.detach().clone()
    module.forward_backward(x, torch.tensor([0, 1, 2, 3]))
    assert not torch.equal(before, module.net.w_in.detach())
    torch.testing.assert_close(module.net.w_in.detach().sum(0), torch.full((8,), 2.0))


def test_winner_take_all_lets_at_most_k_neurons_spike_per_step_and_sample(one_thread):
    module = module_for(["algorithm=stdp", "model.hidden=8", "data.channels=12", "data.duration=0.05",
                         "algorithm.init_fraction=1.0", "algorithm.inhibition=0.0", "algorithm.wta_k=2"])
    spikes = module.hidden_spikes((torch.rand(3, 50, 12) < 0.5).float())
    per_step = spikes.sum(2)
    assert float(per_step.max()) == 2.0 and float(spikes.sum()) > 0


def test_with_a_schedule_the_layer_learns_first_then_only_the_readout_on_the_frozen_layer(one_thread, monkeypatch):
    from spikebench.algorithms.stdp import STDP

    overrides = ["algorithm=stdp", "model.hidden=8", "data.channels=12", "data.duration=0.05",
                 "algorithm.rule=additive", "algorithm.eta_plus=0.5", "algorithm.plastic_epochs=2"]
    x = (torch.rand(4, 50, 12, generator=torch.Generator().manual_seed(0)) < 0.3).float()
    y = torch.tensor([0, 1, 2, 3])
    module = module_for(overrides)
    w0, theta0 = module.net.w_in.detach().clone(), module.theta.clone()
    monkeypatch.setattr(STDP, "current_epoch", property(lambda self: 1))  # a plastic epoch
    module.forward_backward(x, y)
    assert not torch.equal(module.net.w_in.detach(), w0) and module.net.w_out.grad is None
    w1, theta1 = module.net.w_in.detach().clone(), module.theta.clone()
    monkeypatch.setattr(STDP, "current_epoch", property(lambda self: 2))  # frozen from epoch 2
    module.forward_backward(x, y)
    assert torch.equal(module.net.w_in.detach(), w1) and torch.equal(module.theta, theta1)
    assert module.net.w_out.grad is not None and module.net.w_out.grad.abs().sum() > 0
    assert "plasticity in the first 2 epoch(s)" in module.heuristics()[-1]


def test_with_zero_plastic_epochs_the_layer_never_learns_and_the_readout_learns_from_the_first_epoch(one_thread):
    """plastic_epochs=0: the control without STDP, the readout on the random initial layer."""
    overrides = ["algorithm=stdp", "model.hidden=8", "data.channels=12", "data.duration=0.05",
                 "algorithm.rule=additive", "algorithm.eta_plus=0.5", "algorithm.homeostasis=spike",
                 "algorithm.plastic_epochs=0"]
    x = (torch.rand(4, 50, 12, generator=torch.Generator().manual_seed(0)) < 0.3).float()
    module = module_for(overrides)
    w0, theta0 = module.net.w_in.detach().clone(), module.theta.clone()
    module.forward_backward(x, torch.tensor([0, 1, 2, 3]))  # epoch 0
    assert torch.equal(module.net.w_in.detach(), w0) and torch.equal(module.theta, theta0)
    assert module.net.w_out.grad is not None and module.net.w_out.grad.abs().sum() > 0


def test_the_adaptive_threshold_rises_by_theta_plus_per_spike_and_decays_towards_the_threshold(one_thread):
    """homeostasis=spike (Diehl & Cook): ϑ_j ← ϑ + (ϑ_j − ϑ) e^{−B·T/τ_ϑ} + ϑ₊ n_j after a training batch, n_j the
    neuron's spikes in it (under the thresholds before the update); a silent neuron only decays."""
    module = module_for(["algorithm=stdp", "model.hidden=8", "data.channels=12", "data.duration=0.05",
                         "algorithm.init_fraction=1.0", "algorithm.inhibition=0.0", "algorithm.homeostasis=spike",
                         "algorithm.theta_plus=0.01", "algorithm.theta_tau=0.5"])
    theta0 = float(module.cfg.model.threshold)
    module.theta.fill_(theta0 + 0.2)  # an earlier rise
    module.theta[0] = 1e6  # a neuron that cannot fire
    x = (torch.rand(4, 50, 12, generator=torch.Generator().manual_seed(1)) < 0.4).float()
    counts = module.hidden_spikes(x).sum((0, 1))
    assert counts[0] == 0 and counts[1:].sum() > 0
    module.forward_backward(x, torch.tensor([0, 1, 2, 3]))
    decay = math.exp(-4 * 50 * module.net.hidden.dt / 0.5)
    expected = theta0 + (torch.tensor([1e6] + [theta0 + 0.2] * 7) - theta0) * decay + 0.01 * counts
    torch.testing.assert_close(module.theta, expected.to(module.theta.dtype))
    assert "adaptive threshold" in " ".join(module.heuristics())
