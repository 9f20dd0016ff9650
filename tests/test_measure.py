"""algorithms/measure.py: what the suite's cost measure counts, and what it does not.

Sizes are float32 tensors of whole megabytes (MB = 1e6 bytes). Tolerance: the profiler also sees the small
blocks PyTorch allocates around an operation (a few hundred bytes to a few kB, e.g. a scalar or a shape
buffer), so figures are checked to within 64 kB of the exact tensor sizes.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest
import torch

from spikebench.algorithms import build_module
from spikebench.datamodules import data_shape
from spikebench.algorithms.base import SavedTensorMeter
from spikebench.algorithms.measure import (
    allocation_events,
    chrome_trace_allocation_events,
    peak_live_bytes,
    step_memory,
    step_time,
)
from spikebench.train import compose_config

MB = 1_000_000
SLACK = 64_000  # bytes: the small bookkeeping blocks around operations (see the module docstring)


def megabytes(n: float) -> torch.Tensor:
    """A float32 tensor of n MB, written (so its pages are touched)."""
    return torch.ones(int(n * MB) // 4)


def assert_about(measured: int, expected: int) -> None:
    assert expected - SLACK <= measured <= expected + SLACK, (measured, expected)


# ----------------------------------------------------------------------------------------------
# step_memory: the peak of live tensor memory during the step, from zero at its start
# ----------------------------------------------------------------------------------------------


def test_step_memory_counts_a_tensor_allocated_and_freed_inside_the_step():
    """8 MB allocated and freed, then 2 MB allocated: the peak is the 8 MB, though only 2 MB remain at the end."""

    def step():
        a = megabytes(8)
        del a
        return megabytes(2)

    m = step_memory(step)
    assert_about(m.peak_bytes, 8 * MB)
    assert m.value.numel() * 4 == 2 * MB and m.method == "cpu profiler"


def test_step_memory_adds_tensors_alive_at_the_same_time():
    """Two tensors alive together (3 MB + 5 MB) peak at their sum."""

    def step():
        a, b = megabytes(3), megabytes(5)
        return float(a.sum() + b.sum())

    assert_about(step_memory(step).peak_bytes, 8 * MB)


def test_step_memory_excludes_tensors_that_existed_before_the_step():
    """A 50 MB tensor made before the step and used in it adds nothing; only the step's own 1 MB result counts."""
    big = megabytes(50)
    assert_about(step_memory(lambda: big[: MB // 4] * 2).peak_bytes, 1 * MB)


def test_step_memory_is_not_lowered_by_freeing_a_tensor_made_before_the_step():
    """Freeing a 20 MB tensor from before the step (an old .grad set to None) neither lowers nor raises the peak."""
    holder = {}
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True):
        holder["old"] = megabytes(20)  # allocated under an earlier profiler: its free is reported later

    def step():
        del holder["old"]  # the profiler reports this free (-20 MB) though the window never saw the allocation
        return megabytes(4)

    assert_about(step_memory(step).peak_bytes, 4 * MB)


def test_peak_live_bytes_pairs_frees_with_allocations_by_address():
    """Synthetic events: an unseen block's free is ignored, a reused address is counted per allocation."""
    events = [
        (1, 0xA, 100), (2, 0xB, 50),  # 150 live
        (3, 0xF, -1000),  # free of a block from before the window: ignored
        (4, 0xA, -100),  # 50 live
        (5, 0xA, 300),  # the address is reused: 350 live
        (6, 0xB, -50), (7, 0xA, -300),
    ]
    assert peak_live_bytes(events) == 350
    assert peak_live_bytes(reversed(events)) == 350  # order comes from the times, not from the list
    assert peak_live_bytes([(1, 0xF, -10)]) == 0


def test_both_sources_of_allocation_events_agree():
    """The profiler's event tree and its exported Chrome trace give the same allocations."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True) as prof:
        a = megabytes(3)
        del a
        b = megabytes(1)  # noqa: F841
    tree, trace = allocation_events(prof), chrome_trace_allocation_events(prof)
    assert sorted((addr, n) for _, addr, n in tree) == sorted((addr, n) for _, addr, n in trace)
    assert_about(peak_live_bytes(tree), 3 * MB)


class DenseBackward(torch.autograd.Function):
    """y = 2x, saving nothing for backward, whose backward builds a (rows, rows) float32 temporary."""

    @staticmethod
    def forward(ctx, x):  # type: ignore[override]
        return 2 * x

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        n = g.shape[0]
        dense = torch.ones(n, n)  # a dense buffer no saved-tensor hook sees
        return 2 * g + dense.sum() * 0


def test_step_memory_sees_a_dense_buffer_that_saved_tensor_hooks_miss():
    """A backward pass's 16 MB temporary is in the step memory; saved-tensor hooks count 0 bytes for it."""
    x = torch.ones(2000, requires_grad=True)
    meter = SavedTensorMeter(exclude=[x])

    def step():
        x.grad = None
        with meter:
            DenseBackward.apply(x).sum().backward()

    m = step_memory(step)
    assert meter.bytes == 0
    assert_about(m.peak_bytes, 2000 * 2000 * 4)


def test_the_saved_tensor_meter_lets_a_graph_that_is_never_back_propagated_be_freed():
    """An operation that saves its own output (exp) under the meter, no backward: dropping the output frees it at once
    (no reference cycle through its grad_fn; before the fix every such step of STDP's plastic epochs stayed alive)."""
    import weakref

    w = torch.randn(5, requires_grad=True)
    meter = SavedTensorMeter(exclude=[w])
    with meter:
        out = torch.exp(w * 2)
    assert meter.bytes == out.untyped_storage().nbytes()  # still counted (w * 2 is not saved by exp: its output is)
    ref = weakref.ref(out)
    del out
    assert ref() is None


def test_step_memory_of_a_training_step_counts_the_gradients_it_leaves():
    """BPTT's step memory is at least its gradients' bytes and at least what autograd saved for backward."""
    cfg = compose_config(["algorithm=bptt", "model.hidden=32", "data.channels=40", "data.duration=0.05"])
    module = build_module(cfg, data_shape(cfg))
    x = (torch.rand(8, 50, 40) < 0.05).float()
    y = torch.randint(0, cfg.data.n_classes, (8,))
    for p in module.parameters():
        p.grad = None
    out = module.measured_step(x, y, memory=True)
    grads = sum(p.numel() * p.element_size() for p in module.parameters())
    assert out.step_mem_bytes >= grads and out.step_mem_bytes >= out.saved_bytes - x.nbytes
    assert all(p.grad is not None for p in module.parameters())


# ----------------------------------------------------------------------------------------------
# peak_rss_growth: the cross-check, in a fresh process
# ----------------------------------------------------------------------------------------------


def test_peak_rss_growth_of_a_fresh_process_sees_200_mb_written():
    """200 MB written in a fresh child of this (large) process raise the child's peak RSS by at least 150 MB."""
    code = textwrap.dedent("""
        import torch
        from spikebench.algorithms.measure import peak_rss_growth
        print(peak_rss_growth(lambda: torch.ones(50_000_000).sum()))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    growth = int(out.stdout.strip().splitlines()[-1])
    assert 150 * MB <= growth <= 400 * MB, growth


# ----------------------------------------------------------------------------------------------
# step_time
# ----------------------------------------------------------------------------------------------


def test_step_time_reports_the_median_of_timed_calls_after_warm_up():
    """A 20 ms sleep measures at least 20 ms; warm-up calls and the Timer's sizing call are not timed."""
    calls = []

    def fn():
        calls.append(1)
        time.sleep(0.02)

    t = step_time(fn, runs=3, warmup=1)
    # the upper bound is loose: a sleep overshoots on a loaded machine
    assert 0.018 <= t.median_s <= 0.2 and t.runs >= 2 and t.threads == 1 and t.clock == "wall"
    assert len(calls) >= t.runs + 2


def test_step_time_on_the_cpu_clock_does_not_count_sleep():
    """clock='cpu' counts CPU seconds of this process: sleeping costs (almost) none."""
    assert step_time(lambda: time.sleep(0.02), runs=2, clock="cpu").median_s < 0.01


def test_step_time_rejects_an_unknown_clock():
    """Only wall and cpu clocks exist."""
    with pytest.raises(ValueError, match="clock"):
        step_time(lambda: None, clock="gpu")
