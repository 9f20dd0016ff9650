"""ANN-to-SNN conversion (algorithms/ann2snn.py): the integrate-and-fire rates approach the normalised ANN within the
stated bounds, the scale is the stated percentile of the training activations, and the run path converts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spikebench.algorithms.ann2snn import ReluRNN, integrate_and_fire, percentile_scale
from spikebench.algorithms.neuron import LIFParams, leaky_readout

STEPS = (1, 2, 3, 4, 8, 16, 64)


def clipped_ann(c: torch.Tensor, w_rec: torch.Tensor | None) -> torch.Tensor:
    """ā[t] = clip(c[t] + ā[t-1] W_rec, 0, 1): the normalised ANN with the rates' ceiling."""
    out, prev = [], torch.zeros_like(c[:, 0])
    for t in range(c.shape[1]):
        prev = (c[:, t] + (prev @ w_rec if w_rec is not None else 0)).clamp(0, 1)
        out.append(prev)
    return torch.stack(out, 1)


@pytest.mark.parametrize("steps", STEPS)
def test_feed_forward_rates_are_within_one_over_steps_below_the_clipped_activation(steps):
    torch.manual_seed(steps)
    c = torch.empty(4, 6, 50, dtype=torch.float64).uniform_(-0.5, 1.5)
    r = integrate_and_fire(c, None, steps) / steps
    target = c.clamp(0, 1)
    assert (r <= target + 1e-12).all() and (r > target - 1.0 / steps - 1e-12).all()
    # the count is clamp(floor(S c), 0, S), the closed form of the module docstring
    expected = torch.clamp(torch.floor(steps * c + 1e-9), 0, steps)
    assert torch.equal(integrate_and_fire(c, None, steps), expected)


@pytest.mark.parametrize("steps", STEPS)
def test_recurrent_rates_stay_within_the_geometric_bound_of_the_clipped_ann(steps):
    torch.manual_seed(10 + steps)
    hidden, frames = 30, 12
    c = torch.empty(3, frames, hidden, dtype=torch.float64).uniform_(-0.3, 0.9)
    w_rec = 0.6 * torch.randn(hidden, hidden, dtype=torch.float64) / hidden ** 0.5
    r = integrate_and_fire(c, w_rec, steps) / steps
    err = (r - clipped_ann(c, w_rec)).abs().amax(dim=(0, 2))  # per frame
    lip = float(w_rec.abs().sum(0).max())  # L = max_j Σ_i |W_ij|: |(e W)_j| ≤ L |e|_∞
    bound = torch.tensor([sum(lip ** k for k in range(t + 1)) / steps for t in range(frames)], dtype=torch.float64)
    assert (err <= bound + 1e-12).all()


def test_the_recurrent_error_shrinks_as_steps_grow():
    torch.manual_seed(3)
    c = torch.empty(3, 20, 40, dtype=torch.float64).uniform_(-0.3, 0.9)
    w_rec = 0.5 * torch.randn(40, 40, dtype=torch.float64) / 40 ** 0.5
    ann = clipped_ann(c, w_rec)
    errs = [float((integrate_and_fire(c, w_rec, s) / s - ann).abs().mean()) for s in (2, 8, 32, 128)]
    assert all(b < a for a, b in zip(errs, errs[1:]))


def test_kept_spikes_sum_to_the_counts_and_are_binary():
    torch.manual_seed(0)
    c = torch.rand(2, 5, 7)
    w = 0.3 * torch.randn(7, 7)
    kept = integrate_and_fire(c, w, 4, keep=True)
    assert kept.shape == (2, 20, 7) and ((kept == 0) | (kept == 1)).all()
    assert torch.equal(kept.view(2, 5, 4, 7).sum(2), integrate_and_fire(c, w, 4))


def test_the_scale_is_the_percentile_of_the_positive_activations():
    torch.manual_seed(1)
    acts = [torch.relu(torch.randn(4, 10, 8)) for _ in range(3)]
    positive = torch.cat([a[a > 0] for a in acts]).numpy()
    assert percentile_scale(acts, 100.0) == pytest.approx(float(positive.max()))
    assert percentile_scale(acts, 99.0) == pytest.approx(float(np.percentile(positive, 99.0)))
    assert percentile_scale([torch.zeros(3, 4)], 99.0) == 1.0


@pytest.mark.parametrize("recurrent", [False, True])
def test_converted_readout_approaches_the_ann_within_the_filtered_bound(recurrent):
    """With max-norm on the same recordings (nothing clipped), |V_snn − V_ann| ≤ the leaky readout applied to the
    per-frame bound λ · e_t · Σ_i |W_out,ij| (the readout filter's impulse response is non-negative)."""
    torch.manual_seed(5)
    readout = LIFParams(dt=4e-3, tau_mem=20e-3, tau_syn=5e-3)
    net = ReluRNN(40, 16, 3, recurrent, readout, steps=64).double()
    with torch.no_grad():
        net.w_in.mul_(3.0)
        if recurrent:
            net.w_rec.mul_(0.5)
    x = (torch.rand(2, 15, 40, dtype=torch.float64) < 0.2).double()
    h, v_ann = net(x)
    net.scale.fill_(percentile_scale([h.detach()], 100.0))
    lam = float(net.scale)
    _, v_snn = net.simulate(x)
    frames = x.shape[1]
    lip = float(net.w_rec.detach().abs().sum(0).max()) if recurrent else 0.0
    e = torch.tensor([sum(lip ** k for k in range(t + 1)) / net.steps for t in range(frames)], dtype=torch.float64)
    per_frame = lam * e[None, :, None] * net.w_out.detach().abs().sum(0)[None, None, :]
    bound = leaky_readout(per_frame.expand(2, frames, 3).contiguous(), readout)
    assert ((v_snn - v_ann.detach()).abs() <= bound + 1e-9).all()
    assert float((v_snn - v_ann.detach()).abs().max()) > 0  # the spiking network is not the ANN itself


def test_simulating_before_conversion_is_an_error_that_says_what_to_do():
    net = ReluRNN(5, 4, 2, False, LIFParams(), steps=2)
    with pytest.raises(RuntimeError, match="not been converted"):
        net.simulate(torch.zeros(1, 3, 5))


def test_training_converts_at_validation_and_the_checkpoint_keeps_the_scale(tmp_path):
    from conftest import overrides_for
    from spikebench.algorithms import get_algorithm
    from spikebench.configs import compose_config
    from spikebench.train import run

    cfg = compose_config(overrides_for(tmp_path, "algorithm=ann2snn", "model.hidden=8", "trainer.max_epochs=1",
                                       "trainer.limit_train_batches=2", "algorithm.steps=2"))
    results = run(cfg)
    assert 0.0 <= results["test/acc"] <= 1.0
    module = get_algorithm("ann2snn").load_from_checkpoint(next((tmp_path / "run").rglob("last.ckpt")),
                                                           map_location="cpu")
    assert np.isfinite(float(module.net.scale)) and float(module.net.scale) > 0


def test_the_latency_curve_has_the_ann_row_then_more_spikes_and_accumulates_with_more_steps(tmp_path):
    from conftest import overrides_for
    from spikebench.configs import compose_config
    from spikebench.sweeps.benchmark.conversion import curve, markdown
    from spikebench.train import run

    run(compose_config(overrides_for(tmp_path, "algorithm=ann2snn", "model.hidden=8", "trainer.max_epochs=1",
                                     "trainer.limit_train_batches=2", "model.recurrent=false")))  # counts ⌊S c⌋: monotone in S
    rows = curve(tmp_path / "run", steps=[1, 4, 16], checkpoint="last")
    assert [r["steps"] for r in rows] == [0, 1, 4, 16] and rows[0]["synops_acs"] == 0
    assert all(0.0 <= r["accuracy"] <= 1.0 for r in rows)
    spikes = [r["hidden_spikes"] for r in rows[1:]]
    acs = [r["synops_acs"] for r in rows[1:]]
    assert spikes[0] <= spikes[1] <= spikes[2] and spikes[2] > 0 and acs[0] <= acs[1] <= acs[2]
    assert rows[1]["synops_macs"] == rows[3]["synops_macs"] > 0  # the input frames: once per frame, whatever S
    assert markdown(rows).count("\n") == len(rows) + 1
