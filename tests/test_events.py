"""The event batch (spikebench/events.py, data.format=events): the same bins as the frames, and every algorithm that
takes it computes on it what it computes on the frames."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spikebench.algorithms import build_module
from spikebench.configs import compose_config
from spikebench.datamodules import data_shape
from spikebench.datamodules.binning import bin_event_list, bin_events, delay_line
from spikebench.datamodules.files import SpikeData
from spikebench.datamodules.spikes import Collate, EpochShuffle, SpikeDataset
from spikebench.errors import ConfigError
from spikebench.events import EventBatch, batch_nbytes


def raw_events(n: int = 6000, batch: int = 5, channels: int = 40, seed: int = 0):
    """Spike times (some past the trial's end), units (some outside the channels) and samples."""
    g = torch.Generator().manual_seed(seed)
    times = torch.rand(n, generator=g) * 0.22
    units = torch.randint(-2, channels + 3, (n,), generator=g)
    sample = torch.randint(0, batch, (n,), generator=g)
    return times, units, sample


@pytest.mark.parametrize("pool,binary", [(1, False), (3, False), (2, True)])
def test_the_event_batch_holds_exactly_the_non_zero_bins_of_the_frames(pool, binary):
    times, units, sample = raw_events()
    frames = bin_events(times, units, sample, 5, 200, 40, 1e-3, pool, binary)
    events = bin_event_list(times, units, sample, 5, 200, 40, 1e-3, pool, binary)
    assert torch.equal(events.frames(), frames)
    assert len(events.count) == int((frames > 0).sum())  # no zero bin is listed
    assert bool((events.row[1:] >= events.row[:-1]).all())  # time-major rows (EventProp reads blocks as slices)
    assert torch.equal(events.frames(50, 120), frames[:, 50:120])
    for n in (0, 2, 5, 9):
        assert torch.equal(events[:n].frames(), frames[:n])
    assert torch.equal(delay_line(events, 3, 17).frames(), delay_line(frames, 3, 17))
    assert batch_nbytes(events) == 12 * len(events.count) < batch_nbytes(frames)


def test_the_sparse_input_product_equals_the_dense_one_and_its_gradient():
    times, units, sample = raw_events()
    events = bin_event_list(times, units, sample, 5, 200, 40, 1e-3).to(torch.float64)
    w = torch.randn(40, 7, dtype=torch.float64, requires_grad=True)
    g = torch.randn(5, 200, 7, dtype=torch.float64)
    (sparse,) = torch.autograd.grad((events.input_product(w) * g).sum(), w)
    (dense,) = torch.autograd.grad((events.frames() @ w * g).sum(), w)
    assert torch.allclose(events.input_product(w), events.frames() @ w, rtol=0, atol=1e-12)
    assert torch.allclose(sparse, dense, rtol=1e-12, atol=1e-12)


def test_training_batches_get_the_same_augmentations_in_either_form():
    rng = np.random.default_rng(0)
    offsets = np.arange(0, 30 * 200 + 1, 200)
    data = SpikeData(times=rng.random(30 * 200).astype(np.float32) * 0.2, units=rng.integers(0, 40, 30 * 200),
                     offsets=offsets, labels=np.arange(30) % 3, speakers=None, keys=None)
    cfg = compose_config(["data=synthetic", "data.channels=40", "data.duration=0.2", "data.augment.shift=5",
                          "data.augment.dropout=0.2", "data.augment.blend_prob=0.5", "data.delay.copies=2"])
    batches = {}
    for fmt in ("frames", "events"):
        d = cfg.data.copy()
        d.format = fmt
        order = EpochShuffle(30, seed=3)
        ds = SpikeDataset(data, 0.5, 0.5)
        ds.randomness = order
        collate = Collate(d, train=True, randomness=order)
        batches[fmt] = [collate([ds[i] for i in chunk]) for chunk in np.array_split(list(order), 3)]
    for (x, y), (e, ye) in zip(batches["frames"], batches["events"]):
        assert isinstance(e, EventBatch) and torch.equal(ye, y)
        assert torch.equal(e.frames(), x)


def module_and_batches(algorithm: str, *overrides: str, steps: int = 60, n_in: int = 12):
    cfg = compose_config([f"algorithm={algorithm}", "data=synthetic", f"data.channels={n_in}", "data.n_classes=3",
                          f"data.duration={steps * 1e-3}", "model.hidden=9", "model.init.in_mean=2.0",
                          "model.init.in_std=3.0", *overrides])
    torch.manual_seed(0)
    module = build_module(cfg, data_shape(cfg)).double()
    g = torch.Generator().manual_seed(1)
    n = 900
    times, units = torch.rand(n, generator=g) * steps * 1e-3, torch.randint(0, n_in, (n,), generator=g)
    sample = torch.randint(0, 4, (n,), generator=g)
    frames = bin_events(times, units, sample, 4, steps, n_in, 1e-3).double()
    events = bin_event_list(times, units, sample, 4, steps, n_in, 1e-3).to(torch.float64)
    return module, frames, events, torch.tensor([0, 1, 2, 1])


@pytest.mark.parametrize("algorithm,overrides", [
    ("bptt", ()), ("bptt", ("model.recurrent=false",)), ("bptt", ("model.delays.enabled=true",)),
    ("eventprop", ()), ("eventprop", ("algorithm.time_mode=exact",)),
    ("eventprop", ("model.delays.enabled=true", "model.delays.init=uniform")),
    ("eprop", ()), ("eprop", ("algorithm.chunk=7",)),
    ("paralif", ()), ("paralif", ("algorithm.layers=2",)), ("paralif", ("model.delays.enabled=true",)),
])
def test_a_training_step_on_the_event_batch_equals_the_step_on_the_frames(algorithm, overrides):
    """float64: loss, logits, spike counts and every gradient within 1e-10 (relative to the largest entry)."""
    module, frames, events, y = module_and_batches(algorithm, *overrides)
    results = []
    for x in (frames, events):
        for prm in module.parameters():
            prm.grad = None
        out = module.forward_backward(x, y)
        results.append((out, {k: p.grad.clone() for k, p in module.named_parameters() if p.grad is not None}))
    (a, ga), (b, gb) = results
    assert torch.allclose(a.loss, b.loss, rtol=1e-10, atol=0) and torch.equal(a.hidden_counts, b.hidden_counts)
    assert torch.allclose(a.logits, b.logits, rtol=1e-10, atol=1e-12)
    assert ga.keys() == gb.keys() and ga
    for k in ga:
        assert (ga[k] - gb[k]).abs().max() <= 1e-10 * ga[k].abs().max().clamp(min=1e-30), k


@pytest.mark.parametrize("algorithm,expect", [("bptt", "events"), ("eventprop", "events"), ("eprop", "events"),
                                              ("paralif", "events"), ("lstm", "frames"), ("stdp", "frames")])
def test_data_format_auto_gives_each_algorithm_the_first_form_it_declares(algorithm, expect):
    assert compose_config([f"algorithm={algorithm}"]).data.format == expect
    assert compose_config([f"algorithm={algorithm}", "data.format=frames"]).data.format == "frames"


def test_an_algorithm_that_takes_no_events_refuses_data_format_events_in_one_line():
    with pytest.raises(ConfigError, match="data.format=events is not taken by algorithm=lstm"):
        compose_config(["algorithm=lstm", "data.format=events"])


@pytest.mark.parametrize("max_delay", [0.0105, 0.05])
def test_delayed_events_give_the_delayed_frames_product_and_its_gradients(max_delay):
    """InputDelays.input_product (two events per bin) = DelayShift's x̃ @ W_in: value, dW_in and d(delay), float64."""
    from spikebench.algorithms.delays import InputDelays

    times, units, sample = raw_events()
    events = bin_event_list(times, units, sample, 5, 200, 40, 1e-3).to(torch.float64)
    torch.manual_seed(3)
    delays = InputDelays(40, max_delay, 1e-3).double()
    w = torch.randn(40, 7, dtype=torch.float64, requires_grad=True)
    g = torch.randn(5, 200, 7, dtype=torch.float64)
    out = []
    for product in (lambda: delays.input_product(events, w), lambda: delays(events.frames()) @ w):
        y = product()
        out.append((y.detach(), *torch.autograd.grad((y * g).sum(), (w, delays.delay))))
    for a, b in zip(*out):
        assert (a - b).abs().max() <= 1e-10 * b.abs().max()
