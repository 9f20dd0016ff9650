"""The input spikes of a batch as events, for EventProp: `InputSpikes` (the frames' non-zero bins, read a block of
steps at a time) and, with input delays (`model.delays`, algorithms/delays.py), the delayed arrivals and the delay
gradient (`delayed_input`).

Delays (one per input channel, d_c = (n_c + f_c) dt): channel c's spike of bin t (at t·dt) reaches every hidden
neuron at t·dt + d_c.

- `exact` mode (`ExactDelayedInput`): the continuous-time model. The arrival is an event inside step t + n_c, at
  offset f_c dt; `event_sim.exact_spikes` cuts the step into segments at the arrivals and integrates each in closed
  form, and the adjoint sweep (`event_adjoint`) stops at each arrival. The gradient (Mészáros, Knight & Nowotny 2025,
  "Efficient event-based delay learning in spiking neural networks", the delay gradient of their EventProp with
  delays; derived here in the suite's conventions): moving an arrival of value v later by δ leaves I_j higher by
  w_cj v δ/τ_syn (the jump has had no time to decay) and V_j lower by w_cj v δ/τ_mem (the current was missing for δ).
  Wunderlich & Pehle's adjoint gives the sensitivities ∂L/∂I = −τ_syn λ_I (their eq. 14 is its first use) and
  ∂L/∂V = −τ_mem λ_V (the same adjoint equations, ′ = −d/dt: τ_mem λ_V′ = −λ_V, τ_syn λ_I′ = −λ_I + λ_V), so

      dL/dd_c = Σ_{arrivals a of c} v_a Σ_j W_in[c, j] (λ_V,j − λ_I,j)(t_a),     dL/dW_in = −τ_syn Σ_a v_a λ_I(t_a),

  λ taken where the sweep passes the arrival (input arrivals cause no jump of the adjoint).
- `discrete` mode (`DiscreteDelayedInput`): the per-step model with DCLS's interpolation (delays.py): the spike
  becomes two weighted events, (1 − f_c) v at step t + n_c and f_c v at t + n_c + 1, exactly the x̃ of
  `delays.DelayShift` that BPTT trains on; the drive and dL/dW_in are those of the two events, and the delay
  gradient is the discrete adjoint's own input sensitivity chained through ∂x̃/∂d (±v/dt at the two events):
      dL/dd_c = −τ_syn Σ_j W_in[c, j] Σ_events (∂w_e/∂d_c) λ_I,j(step_e).
  It is as approximate as the discrete adjoint itself (spike times at step ends; tests compare it with the exact
  gradient where both modes fire the same spikes).

Arrivals beyond the trial's end are dropped (they change nothing). Memory: the delayed lists are O(input spikes)
(two events each in discrete mode); nothing of size (batch, time, hidden).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from spikebench.errors import ConfigError
from spikebench.events import EventBatch

from .kernels import cpu_events

# ----------------------------------------------------------------------------------------------
# Input spikes, a block of steps at a time
# ----------------------------------------------------------------------------------------------


class InputSpikes:
    """The input x (batch, time, inputs) as a list of input spikes, read `block` steps at a time.

    The list is the event batch's own (data.format=events: `from_batch` takes its lists as they are) or made once per
    batch from frames (one pass over x); kept for the backward pass: O(input spikes) int32 indices:
    row r = t·batch + b, channel, count, ordered by row. Block [t0, t1) holds rows t0·batch … t1·batch − 1. Both
    products below are CSR products by `embedding_bag` (mode sum, per-sample weights = spike counts): rows of W_in
    summed per (step, sample) for the drive, rows of λ_I summed per channel for the gradient. Memory beyond the
    list: O(block × batch × hidden) outputs.
    """

    def __init__(self, row: torch.Tensor, ch: torch.Tensor, val: torch.Tensor, shape: tuple[int, int, int],
                 block: int) -> None:
        if block < 1:
            raise ConfigError(f"algorithm.block_steps must be >= 1, got {block}")
        self.row, self.ch, self.val, self.block = row, ch, val, block
        self.batch, self.steps, self.n_in = shape
        counts = torch.bincount(row, minlength=self.steps * self.batch)
        self.row_ptr = torch.cat([counts.new_zeros(1), counts.cumsum(0)])  # events of row r: [ptr[r], ptr[r + 1])
        self._cached: tuple[int, int, torch.Tensor] | None = None  # step_arrivals' current block: (t0, t1, drive)

    @classmethod
    def from_batch(cls, x: "torch.Tensor | EventBatch", block: int, dtype: torch.dtype) -> "InputSpikes":
        """The input spikes of a batch in either form: an event batch's lists as they are (already time-major;
        no pass over frames), frames by `from_frames`; values in `dtype`."""
        if isinstance(x, EventBatch):
            return cls(x.row, x.channel, x.count.to(dtype), x.shape, block)
        return cls.from_frames(x.to(dtype), block)

    @classmethod
    def from_frames(cls, x: torch.Tensor, block: int) -> "InputSpikes":
        """The list of x's nonzero bins (compiled single pass on CPU, else `nonzero` and a stable sort)."""
        batch, steps, n_in = x.shape
        ops = cpu_events.load() if cpu_events.usable(x, "auto") and x.is_contiguous() else None
        if ops is not None:
            row, ch, val = ops.input_events(x)
        else:
            flat = x.reshape(-1)
            idx = flat.nonzero().squeeze(1)
            c, bt = idx % n_in, idx // n_in
            row = (bt % steps) * batch + bt // steps
            order = torch.argsort(row, stable=True)
            row, ch, val = row[order].int(), c[order].int(), flat.take(idx[order])
        return cls(row, ch, val, (batch, steps, n_in), block)

    @property
    def count(self) -> int:
        return len(self.row)

    def spans(self, reverse: bool = False) -> list[tuple[int, int]]:
        """The blocks [t0, t1) covering 0 … steps − 1, in time order or reversed."""
        out = [(t0, min(self.steps, t0 + self.block)) for t0 in range(0, self.steps, self.block)]
        return out[::-1] if reverse else out

    def _events(self, t0: int, t1: int) -> tuple[slice, torch.Tensor]:
        """The slice of the list holding steps [t0, t1), and the offsets of its rows within that slice."""
        ptr = self.row_ptr[t0 * self.batch: t1 * self.batch + 1]
        lo, hi = int(ptr[0]), int(ptr[-1])
        return slice(lo, hi), (ptr[:-1] - lo).int()

    def drive(self, w_in: torch.Tensor, t0: int, t1: int) -> torch.Tensor:
        """W_in x[t] for t in [t0, t1): (t1 − t0, batch, hidden), summed over the input spikes only."""
        sl, offsets = self._events(t0, t1)
        out = F.embedding_bag(self.ch[sl], w_in, offsets, mode="sum", per_sample_weights=self.val[sl].to(w_in.dtype))
        return out.view(t1 - t0, self.batch, -1)

    def step_arrivals(self, w_in: torch.Tensor, t: int) -> list[tuple[float, torch.Tensor]]:
        """The input current's jumps inside step t as (offset in the step, W_in x (batch, hidden)), by offset: here
        one, at the step start (the drive of t's block, made once per block; `event_delays` has later offsets)."""
        cached = self._cached
        if cached is None or not cached[0] <= t < cached[1]:
            t0 = (t // self.block) * self.block
            t1 = min(self.steps, t0 + self.block)
            cached = self._cached = (t0, t1, self.drive(w_in, t0, t1))
        return [(0.0, cached[2][t - cached[0]])]

    def arrival_offsets(self, t: int) -> list[float]:
        """Offsets of the arrivals inside step t that the adjoint sweep must stop at (those it does not handle by
        `add_weight_grad` at the step start): none here."""
        return []

    def add_arrival_grad(self, g: torch.Tensor, lv: torch.Tensor, li: torch.Tensor, t: int, m: int) -> None:
        """At the m-th of `arrival_offsets(t)`, with (λ_V, λ_I) there: add that arrival's terms (none here)."""

    def add_weight_grad(self, g: torch.Tensor, li: torch.Tensor, t0: int, t1: int,
                        val: torch.Tensor | None = None) -> None:
        """g += Σ_{t ∈ [t0, t1), b} x[b, t]ᵀ li[t − t0, b] for li (t1 − t0, batch, hidden): per channel, the sum of
        λ rows over that channel's spikes (weighted by `val` instead of the counts if given)."""
        sl, _ = self._events(t0, t1)
        if sl.stop == sl.start:
            return
        row = self.row[sl] - t0 * self.batch
        c = self.ch[sl]
        order = torch.argsort(c * ((t1 - t0) * self.batch) + row)
        offsets = torch.cat([c.new_zeros(1), torch.bincount(c, minlength=self.n_in).cumsum(0)[:-1].int()])
        flat = li.reshape((t1 - t0) * self.batch, -1)
        val = self.val if val is None else val
        g += F.embedding_bag(row[order], flat, offsets, mode="sum", per_sample_weights=val[sl][order].to(li.dtype))




# ----------------------------------------------------------------------------------------------
# Delayed input spikes (model.delays)
# ----------------------------------------------------------------------------------------------


class DiscreteDelayedInput(InputSpikes):
    """Discrete mode: every input spike as its two interpolation events (module docstring); `dval` holds ∂w_e/∂d
    of each event. `add_weight_grad` also sums Σ_e (∂w_e/∂d) λ_I per (channel, hidden) into `g_shift`."""

    def __init__(self, row, ch, val, dval, shape, block) -> None:
        super().__init__(row, ch, val, shape, block)
        self.dval = dval
        self.g_shift: torch.Tensor | None = None

    def add_weight_grad(self, g, li, t0, t1, val=None) -> None:
        super().add_weight_grad(g, li, t0, t1, val)
        if self.g_shift is None:
            self.g_shift = torch.zeros_like(g)
        super().add_weight_grad(self.g_shift, li, t0, t1, self.dval)

    def delay_grad(self, w_in: torch.Tensor, tau_syn: float) -> torch.Tensor:
        """dL/dd (inputs,), after the sweep: −τ_syn Σ_j W_in[c, j] g_shift[c, j]."""
        if self.g_shift is None:
            return torch.zeros(w_in.shape[0], dtype=w_in.dtype, device=w_in.device)
        return -tau_syn * (w_in * self.g_shift).sum(1)


class ExactDelayedInput(InputSpikes):
    """Exact mode: the arrivals (step, offset in the step, sample, channel, value), sorted by time; the step-start
    list of the base class is empty (every arrival, offset 0 included, is handed over by `step_arrivals` and read
    back by `add_arrival_grad`)."""

    def __init__(self, step, offset, b, ch, val, shape, block, w_in: torch.Tensor) -> None:
        empty = torch.zeros(0, dtype=torch.int32, device=ch.device)
        super().__init__(empty, empty, val[:0], shape, block)
        by_offset = torch.argsort(offset, stable=True)
        order = by_offset[torch.argsort(step[by_offset], stable=True)]  # by step, then by offset
        self.a_step, self.a_off, self.a_b = step[order], offset[order], b[order]
        self.a_ch, self.a_val = ch[order].long(), val[order]
        counts = torch.bincount(self.a_step, minlength=self.steps)
        self.step_ptr = [0] + counts.cumsum(0).tolist()
        self.w_in = w_in
        self.g_delay = torch.zeros(shape[2], dtype=w_in.dtype, device=w_in.device)
        self._groups: dict[int, list[tuple[float, slice]]] = {}

    def groups(self, t: int) -> list[tuple[float, slice]]:
        """The arrivals of step t grouped by offset: [(offset, slice of the sorted lists)], by offset."""
        if t not in self._groups:
            lo, hi = self.step_ptr[t], self.step_ptr[t + 1]
            out = []
            if hi > lo:
                offs, counts = torch.unique_consecutive(self.a_off[lo:hi], return_counts=True)
                start = lo
                for o, c in zip(offs.tolist(), counts.tolist()):
                    out.append((float(o), slice(start, start + c)))
                    start += c
            self._groups[t] = out
        return self._groups[t]

    def step_arrivals(self, w_in, t):
        out = []
        for off, sl in self.groups(t):
            drive = w_in.new_zeros(self.batch, w_in.shape[1])
            drive.index_add_(0, self.a_b[sl], self.a_val[sl].to(w_in.dtype)[:, None] * w_in[self.a_ch[sl]])
            out.append((off, drive))
        return out

    def arrival_offsets(self, t):
        return [off for off, _ in self.groups(t)]

    def add_arrival_grad(self, g, lv, li, t, m) -> None:
        """Σ v λ_I into W_in's sum (−τ_syn applied by the sweep) and Σ v W_in[c]·(λ_V − λ_I) into dL/dd_c."""
        _, sl = self.groups(t)[m]
        b, c, v = self.a_b[sl], self.a_ch[sl], self.a_val[sl].to(g.dtype)
        li_b = li.index_select(0, b)
        g.index_add_(0, c, v[:, None] * li_b)
        self.g_delay.index_add_(0, c, v * (self.w_in.index_select(0, c) * (lv.index_select(0, b) - li_b)).sum(1))

    def delay_grad(self, w_in: torch.Tensor, tau_syn: float) -> torch.Tensor:
        """dL/dd (inputs,), after the sweep."""
        return self.g_delay


def delayed_input(row, ch, val, shape: tuple[int, int, int], block: int, delay: torch.Tensor, dt: float,
                  exact: bool, w_in: torch.Tensor, for_backward: bool = True) -> InputSpikes:
    """The input spikes (row = t·batch + b, channel, value: `InputSpikes`' lists) delayed by `delay` (seconds, per
    channel): the exact mode's arrivals or the discrete mode's interpolation events (module docstring). The discrete
    lists stay int32 / the values' dtype, and ∂w/∂d is made only `for_backward`: the forward needs none of it."""
    batch, steps, _ = shape
    d = delay.detach().to(torch.float64) / dt  # per channel: whole steps n_c and the fraction f_c
    whole = d.floor()
    n_c, f_c = whole.to(torch.int32), (d - whole).to(val.dtype)
    t = torch.div(row, batch, rounding_mode="floor")
    b = row - t * batch
    if exact:
        step = t + n_c[ch]
        keep = step < steps
        return ExactDelayedInput(step[keep].long(), (f_c[ch] * dt).to(w_in.dtype)[keep], b[keep].long(), ch[keep],
                                 val[keep], shape, block, w_in)
    first = ((t + n_c[ch]) * batch + b).to(torch.int32)  # the earlier event's row; the later one is a row-step on
    del t, b
    k1, k2 = first < steps * batch, first < (steps - 1) * batch
    f = f_c[ch]
    rows = torch.cat([first[k1], first[k2] + batch])
    order = torch.argsort(rows, stable=True)
    rows, chs = rows[order], torch.cat([ch[k1], ch[k2]])[order]
    weight = torch.cat([((1.0 - f) * val)[k1], (f * val)[k2]])[order]
    dweight = torch.cat([val[k1] * (-1.0 / dt), val[k2] * (1.0 / dt)])[order] if for_backward else None
    return DiscreteDelayedInput(rows, chs, weight, dweight, shape, block)
