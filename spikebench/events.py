"""The event batch (`data.format=events`): a batch's input as the list of its non-zero bins, the form the
datamodule hands to algorithms that consume events (EventProp, BPTT; `configs/algorithms.py` declares which).

Both sides need the type, and neither may import the other (DESIGN.md), so it lives here, beside `errors.py`, and
imports torch alone. What it holds is exactly what the frames (batch, steps, channels) hold, after binning, pooling,
clipping and the delay line, without the zeros:

    row[k]     = t·batch + b     the step t and sample b of bin k (int32), non-decreasing in k: time-major,
                                 so that a block of steps is one slice (EventProp's `InputSpikes` reads it so)
    channel[k] = c               int32, increasing within a row
    count[k]   = x[b, t, c] > 0  float32 (spikes in the bin; 1 with data.binary)

12 bytes per non-zero bin against 4 per bin of the frames: on SHD-like input (~1 % of bins non-zero at dt = 1 ms)
about 30× smaller (`nbytes`). `frames()` gives the dense tensor back (tests: equal to the frames path exactly).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class EventBatch:
    """Non-zero bins of a (batch, steps, channels) input, time-major (module docstring)."""

    row: torch.Tensor
    channel: torch.Tensor
    count: torch.Tensor
    batch: int
    steps: int
    channels: int

    @classmethod
    def from_frames(cls, x: torch.Tensor) -> "EventBatch":
        """The non-zero bins of frames x (batch, steps, channels) (for measurements and tests; the datamodule bins
        spikes straight into an EventBatch, `datamodules.binning.bin_event_list`)."""
        batch, steps, channels = x.shape
        t, b, c = x.transpose(0, 1).nonzero(as_tuple=True)  # time-major, channels increasing within a row
        return cls((t * batch + b).int(), c.int(), x[b, t, c], batch, steps, channels)

    @property
    def shape(self) -> tuple[int, int, int]:
        """The shape of the frames this batch stands for: (batch, steps, channels)."""
        return (self.batch, self.steps, self.channels)

    @property
    def device(self) -> torch.device:
        return self.count.device

    @property
    def dtype(self) -> torch.dtype:
        return self.count.dtype

    @property
    def nbytes(self) -> int:
        """Bytes of the batch's tensors (what a step receives)."""
        return sum(t.numel() * t.element_size() for t in (self.row, self.channel, self.count))

    def __len__(self) -> int:
        return self.batch

    def __getitem__(self, samples: slice) -> "EventBatch":
        """The first samples, `x[:n]` (as the frames' `x[:n]`); other indexing is the frames' (`frames()`)."""
        if not (isinstance(samples, slice) and samples.start in (None, 0) and samples.step in (None, 1)):
            raise TypeError("an EventBatch takes x[:n] (its first n samples) only; index its frames() otherwise")
        n = min(self.batch, self.batch if samples.stop is None else max(0, samples.stop))
        b, t = self.sample_step()
        keep = b < n
        row = (t[keep] * n + b[keep]).to(self.row.dtype)
        return EventBatch(row, self.channel[keep], self.count[keep], n, self.steps, self.channels)

    def to(self, device=None, dtype: torch.dtype | None = None) -> "EventBatch":
        """On `device` (Lightning moves batches with `.to(device)`), the counts in `dtype` if given (`.to(dtype)`
        as for a tensor)."""
        if isinstance(device, torch.dtype):
            device, dtype = None, device
        count = self.count.to(device)
        return EventBatch(self.row.to(device), self.channel.to(device), count if dtype is None else count.to(dtype),
                          self.batch, self.steps, self.channels)

    def sample_step(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(sample, step) of every bin, int64."""
        row = self.row.long()
        return row % self.batch, torch.div(row, self.batch, rounding_mode="floor")

    def step_range(self, t0: int, t1: int) -> tuple[int, int]:
        """(lo, hi): the bins of steps [t0, t1) are [lo, hi) (the rows are time-major)."""
        bounds = torch.tensor([t0 * self.batch, t1 * self.batch], dtype=self.row.dtype, device=self.row.device)
        lo, hi = torch.searchsorted(self.row, bounds).tolist()
        return lo, hi

    def frames(self, t0: int = 0, t1: int | None = None) -> torch.Tensor:
        """The dense frames (batch, t1 − t0, channels) of steps [t0, t1) (all steps by default)."""
        t1 = self.steps if t1 is None else t1
        lo, hi = self.step_range(t0, t1)
        row = self.row[lo:hi].long()
        b, t = row % self.batch, torch.div(row, self.batch, rounding_mode="floor")
        out = self.count.new_zeros(self.batch, t1 - t0, self.channels)
        out[b, t - t0, self.channel[lo:hi].long()] = self.count[lo:hi]
        return out

    def input_product(self, w: torch.Tensor) -> torch.Tensor:
        """x @ w for every step, (batch, steps, w.shape[1]), summed over the non-zero bins only (one
        `embedding_bag`, differentiable in w): the sparse form of the frames' `x @ w`. Measured at hidden 256,
        T = 1000, batch 32, SHD-like input, one core: forward and backward 0.13 s against 0.48 s dense."""
        b, t = self.sample_step()
        return bag_product(b, t, self.channel, self.count.to(w.dtype), self.batch, self.steps, w)


def bag_product(sample: torch.Tensor, step: torch.Tensor, channel: torch.Tensor, value: torch.Tensor, batch: int,
                steps: int, w: torch.Tensor) -> torch.Tensor:
    """Σ over the listed events (sample, step, channel, value) of value · w[channel], per (sample, step):
    (batch, steps, w.shape[1]); steps outside [0, steps) must have been dropped. One `embedding_bag` (differentiable
    in w and in value), its bags sample-major so that the output needs no transpose."""
    key = sample * steps + step
    order = torch.argsort(key, stable=True)
    offsets = bag_offsets(key, batch * steps)
    out = torch.nn.functional.embedding_bag(channel.index_select(0, order), w, offsets, mode="sum",
                                            per_sample_weights=value.index_select(0, order))
    return out.view(batch, steps, w.shape[1])


def bag_offsets(key: torch.Tensor, n: int) -> torch.Tensor:
    """The start of each of n bags (`embedding_bag`'s offsets) in a list sorted by key, key[i] in [0, n)."""
    offsets = torch.zeros(n, dtype=torch.long, device=key.device)
    offsets[1:] = torch.bincount(key, minlength=n).cumsum(0)[:-1]
    return offsets


def as_frames(x: "torch.Tensor | EventBatch") -> torch.Tensor:
    """The dense frames of either form."""
    return x.frames() if isinstance(x, EventBatch) else x


def batch_nbytes(x: "torch.Tensor | EventBatch") -> int:
    """Bytes of a batch's input as an algorithm receives it (frames or events)."""
    return x.nbytes if isinstance(x, EventBatch) else x.numel() * x.element_size()
