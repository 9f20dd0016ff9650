"""The suite's one cost measure of a training step: its memory, its time, and the process-level cross-check.

- `step_memory(fn, device)`: the peak of live tensor memory allocated while `fn()` runs, beyond what was live
  before it. This is the figure every table and log of the suite reports as memory ("step memory").
- `peak_rss_growth(fn)`: how far the process's peak resident set size rose during `fn()`; a cross-check of
  the above that sees every byte the process touches, tensors or not, but only in a fresh process.
- `step_time(fn, threads=...)`: the median wall (or CPU) seconds of `fn()`, by `torch.utils.benchmark.Timer`.

Why not the bytes that saved-tensor hooks see (`algorithms.base.SavedTensorMeter`): those are bookkeeping of
what autograd keeps, not memory. They miss every tensor an algorithm allocates outside `ctx.save_for_backward`
(the dense buffers of a custom backward pass, the temporaries of the forward pass) and count the input batch for
some algorithms (BPTT's `x @ W_in` saves x) but not for others. `step_memory` counts allocations themselves.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

import torch


@dataclass
class StepMemory:
    """What `step_memory` measured: the peak in bytes, the value `fn()` returned, and how it was measured."""

    peak_bytes: int
    value: Any = None
    method: str = ""  # "cpu profiler" | "cuda allocator"


@dataclass
class StepTime:
    """What `step_time` measured: the median seconds of one call, the seconds per call of every timed block
    (a block is one call for anything slower than a few milliseconds), the threads and the clock."""

    median_s: float
    times_s: list[float] = field(default_factory=list)
    threads: int = 1
    clock: str = "wall"

    @property
    def runs(self) -> int:
        return len(self.times_s)


# ----------------------------------------------------------------------------------------------
# Step memory
# ----------------------------------------------------------------------------------------------


def step_memory(fn: Callable[[], Any], device: torch.device | str | None = None) -> StepMemory:
    """Peak bytes of tensor memory live at any moment during `fn()`, counted from zero at its start.

    Measured: every allocation and free of tensor storage that `fn()` makes on `device`, in time order; the
    result is the maximum of the running sum (bytes allocated minus bytes freed so far). So a temporary that is
    allocated and freed inside `fn()` counts toward the peak, and the gradients `fn()` leaves behind count as
    long as they are alive at the peak. Tensors that were live before `fn()` (parameters, optimiser state, the
    input batch) are not counted, for every algorithm alike, and freeing one of them inside `fn()` does not
    lower the count either (it was not counted).

    - CPU: taken from PyTorch's own allocation events, `torch.profiler.profile(activities=[CPU],
      profile_memory=True)`. Each event carries the address of the block, so frees are paired with the
      allocations seen in the window; a free whose allocation was not seen (the block existed before `fn()`,
      e.g. an old `.grad` set to None) is ignored. Only storage from PyTorch's CPU allocator is seen: memory a
      library allocates by itself (oneDNN scratch space, NumPy arrays) is not. `fn()` runs under the profiler,
      so it must not start a profiler of its own, and runs slower than usual (time it with `step_time`).
    - CUDA: the caching allocator's statistics: `max_memory_allocated() - memory_allocated()` across `fn()`,
      after a synchronize and `reset_peak_memory_stats` (which resets the process-wide peak). The allocator
      keeps one total, so here a block from before `fn()` that `fn()` frees before its peak does lower the
      figure: set the grads to None before the window (as the suite's callers do), not inside it.
    """
    device = torch.device(device if device is not None else "cpu")
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        value = fn()
        torch.cuda.synchronize(device)
        return StepMemory(int(torch.cuda.max_memory_allocated(device) - base), value, "cuda allocator")
    if device.type != "cpu":
        raise ValueError(f"step_memory: device '{device}' not supported; use cpu or cuda")
    from torch.profiler import ProfilerActivity, profile

    prof = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
    with quiet_stderr():  # the profiler's C++ start/stop lines ("USDT: … profiler_start"), not the step's output
        prof.start()
    try:
        value = fn()
    finally:
        with quiet_stderr():
            prof.stop()
    return StepMemory(peak_live_bytes(allocation_events(prof)), value, "cpu profiler")


@contextmanager
def quiet_stderr() -> Iterator[None]:
    """File descriptor 2 to /dev/null inside the block (C++ libraries write there directly)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def peak_live_bytes(events: Iterable[tuple[int, int, int]]) -> int:
    """Maximum running sum of (time_ns, address, bytes) events, + allocation / − free, in time order.

    A free is counted only if the allocation of that address was seen before it (and not yet freed); other
    frees belong to blocks allocated before the window and are ignored. The running sum starts at 0, so the
    result is >= 0.
    """
    live: dict[int, int] = {}
    total = peak = 0
    for _, addr, nbytes in sorted(events, key=lambda e: e[0]):  # stable: same-time events keep their order
        if nbytes > 0:
            if addr in live:  # an allocation the window saw no free of: count the block once, at its new size
                total -= live[addr]
            live[addr] = nbytes
            total += nbytes
            peak = max(peak, total)
        elif nbytes < 0 and addr in live:
            total -= live.pop(addr)
    return peak


def allocation_events(prof: Any) -> list[tuple[int, int, int]]:
    """The CPU allocation events (time_ns, address, ±bytes) of a finished `torch.profiler.profile` session.

    Read from the profiler's event tree (`kineto_results.experimental_event_tree()`, whose allocation records
    carry the block's address); if that is unavailable, from the exported Chrome trace's `[memory]` events
    (fields `Addr`, `Bytes`).
    """
    try:
        from torch._C._profiler import _EventType

        roots = prof.profiler.kineto_results.experimental_event_tree()
    except (AttributeError, ImportError):
        return chrome_trace_allocation_events(prof)
    events, stack = [], list(reversed(roots))
    while stack:  # depth first, in the tree's order: events of equal time keep the order they happened in
        e = stack.pop()
        stack.extend(reversed(e.children))
        if e.tag == _EventType.Allocation:
            f = e.extra_fields
            if f.device.type == "cpu":
                events.append((int(e.start_time_ns), int(f.ptr), int(f.alloc_size)))
    return events


def chrome_trace_allocation_events(prof: Any) -> list[tuple[int, int, int]]:
    """`allocation_events` from the Chrome trace the profiler exports (time in µs, so ns = µs × 1000)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "trace.json")
        prof.export_chrome_trace(path)
        with open(path) as f:
            trace = json.load(f)
    events = []
    for ev in trace.get("traceEvents", []):
        args = ev.get("args", {})
        if ev.get("name") == "[memory]" and args.get("Device Type", 0) == 0:  # 0: CPU
            events.append((int(round(float(ev["ts"]) * 1000)), int(args["Addr"]), int(args["Bytes"])))
    return events


# ----------------------------------------------------------------------------------------------
# Peak RSS growth (the cross-check)
# ----------------------------------------------------------------------------------------------


def peak_rss_bytes() -> int:
    """The process's peak resident set size: Linux `VmHWM` (/proc/self/status), else `ru_maxrss`.

    Not `ru_maxrss` on Linux: it also holds the peak of the memory image the process replaced at `exec`, which
    for a child started by a large parent is the parent's RSS (a floor that hides the child's own growth), and
    `reset_peak_rss` does not lower that part.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return int(peak if sys.platform == "darwin" else peak * 1024)


def reset_peak_rss() -> bool:
    """Lower the process's peak-RSS mark to its current RSS (Linux: write 5 to /proc/self/clear_refs).

    Returns False where that is not possible (other systems, a read-only /proc); the mark then keeps the
    process's whole history.
    """
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_growth(fn: Callable[[], Any]) -> int:
    """Bytes by which the process's peak RSS (its resident-memory high-water mark) rose while `fn()` ran.

    The cross-check of `step_memory`: it sees every page the process touches, tensor or not (library scratch
    space, allocator overhead, the Python objects of a graph). The mark is first lowered to the current RSS where
    the system allows it (`reset_peak_rss`), so the figure is the step's peak above the RSS at its start. Its
    limits: it has a floor (where the mark cannot be lowered it rises only above the highest RSS the process ever
    had); it cannot see memory reserved but never written (pages become resident when touched); and memory that
    the allocators kept from earlier frees is reused without raising RSS, so it depends on the process's history.
    It is only meaningful as the first large thing a fresh process does: one process per measurement.
    """
    reset_peak_rss()
    before = peak_rss_bytes()
    fn()
    return max(0, peak_rss_bytes() - before)


# ----------------------------------------------------------------------------------------------
# Step time
# ----------------------------------------------------------------------------------------------


def step_time(
    fn: Callable[[], Any],
    *,
    threads: int = 1,
    runs: int | None = None,
    min_run_time: float = 1.0,
    warmup: int = 1,
    clock: str = "wall",
) -> StepTime:
    """Median seconds of one call of `fn()`, with `threads` torch threads, by `torch.utils.benchmark.Timer`.

    `warmup` untimed calls first (lazy initialisation, kernel compilation, allocator growth); then
    `Timer.blocked_autorange`, which runs `fn()` once more untimed to size its blocks and then times calls
    until `min_run_time` seconds have been spent (at least one). With `runs`, `min_run_time` is set from the
    last warm-up call so that about `runs` calls are timed. Each timed block's seconds are divided by its
    number of calls; the median over blocks is reported. `clock="wall"` is the Timer's wall clock (which
    synchronises CUDA); `clock="cpu"` is `time.process_time` (all threads of this process: steadier than wall
    time on a machine shared with other jobs, but blind to time spent waiting for a GPU).
    """
    from torch.utils.benchmark import Timer

    if clock not in ("wall", "cpu"):
        raise ValueError(f"step_time: clock='{clock}'; choose wall or cpu")
    kwargs = {"timer": time.process_time} if clock == "cpu" else {}
    timer = Timer(stmt="fn()", globals={"fn": fn}, num_threads=threads, **kwargs)
    tick = time.process_time if clock == "cpu" else time.perf_counter
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        last = 0.0
        for _ in range(warmup):
            t0 = tick()
            fn()
            last = tick() - t0
    finally:
        torch.set_num_threads(previous)
    if runs is not None:
        min_run_time = runs * last * 0.95 if warmup else 0.0
    m = timer.blocked_autorange(min_run_time=min_run_time)
    return StepTime(float(statistics.median(m.times)), [float(t) for t in m.times], threads, clock)
