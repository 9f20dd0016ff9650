"""Events → dense frames (batch, time, channels) or the event batch (`spikebench.events.EventBatch`: the frames'
non-zero bins), and the input delay line for both. Vectorised, no loop over spikes."""

from __future__ import annotations

import torch

from spikebench.events import EventBatch


def bin_events(
    times: torch.Tensor,
    units: torch.Tensor,
    sample: torch.Tensor,
    batch: int,
    steps: int,
    channels: int,
    dt: float,
    pool: int = 1,
    binary: bool = False,
) -> torch.Tensor:
    """Count spikes per (sample, step, pooled channel).

    times: seconds (n,), units: channel (n,), sample: index in the batch (n,). A spike at time t falls in
    step ⌊t/dt⌋; spikes at or after `steps·dt` and units outside [0, channels) are dropped. Channels are
    pooled in groups of `pool` (summed). Returns float32 (batch, steps, ⌈channels/pool⌉); with `binary`,
    counts are clipped to 1.
    """
    out_ch = pooled_channels(channels, pool)
    sample, step, unit = _kept(times, units, sample, steps, channels, dt)
    flat = (sample * steps + step) * out_ch + unit // pool
    frames = torch.zeros(batch * steps * out_ch)  # counted in float32 directly: bincount's int64 would be 2× the frames
    frames = frames.index_add_(0, flat, torch.ones(len(flat))).view(batch, steps, out_ch)
    return frames.clamp_(max=1.0) if binary else frames


def bin_event_list(
    times: torch.Tensor,
    units: torch.Tensor,
    sample: torch.Tensor,
    batch: int,
    steps: int,
    channels: int,
    dt: float,
    pool: int = 1,
    binary: bool = False,
) -> EventBatch:
    """`bin_events` without the zeros: the same counts, as an EventBatch (time-major rows t·batch + b, channels
    increasing within a row). Never makes the dense tensor: one sort of the spikes' bin keys."""
    out_ch = pooled_channels(channels, pool)
    sample, step, unit = _kept(times, units, sample, steps, channels, dt)
    key, count = torch.unique((step * batch + sample) * out_ch + unit // pool, sorted=True, return_counts=True)
    count = count.float()
    return EventBatch(torch.div(key, out_ch, rounding_mode="floor").int(), (key % out_ch).int(),
                      count.clamp_(max=1.0) if binary else count, batch, steps, out_ch)


def _kept(times, units, sample, steps: int, channels: int, dt: float):
    """(sample, step, unit) of the spikes inside the trial's steps and channels, int64."""
    step = torch.floor(times.double() / dt).long()
    keep = (step >= 0) & (step < steps) & (units >= 0) & (units < channels)
    return sample[keep].long(), step[keep], units[keep].long()


def pooled_channels(channels: int, pool: int) -> int:
    """Channels after summing groups of `pool` neighbours: ⌈channels / pool⌉."""
    return -(-channels // pool)


def delay_line(frames: "torch.Tensor | EventBatch", copies: int, spacing: int) -> "torch.Tensor | EventBatch":
    """Concatenate `copies` versions of frames (batch, time, ch), copy k delayed by k·spacing steps."""
    if copies <= 1:
        return frames
    if isinstance(frames, EventBatch):
        return _delay_events(frames, copies, spacing)
    steps = frames.shape[1]
    out = frames.new_zeros(frames.shape[0], steps, frames.shape[2] * copies)
    ch = frames.shape[2]
    for k in range(copies):  # a handful of copies, each one slice assignment
        d = k * spacing
        if d < steps:
            out[:, d:, k * ch : (k + 1) * ch] = frames[:, : steps - d]
    return out


def _delay_events(x: EventBatch, copies: int, spacing: int) -> EventBatch:
    """`delay_line` of an event batch: copy k of bin (t, b, c) is bin (t + k·spacing, b, k·ch + c), dropped past the
    last step; rows re-sorted time-major, channels increasing within a row."""
    rows, chans, counts = [], [], []
    for k in range(copies):
        row = x.row.long() + k * spacing * x.batch
        keep = row < x.steps * x.batch
        rows.append(row[keep])
        chans.append(x.channel[keep].long() + k * x.channels)
        counts.append(x.count[keep])
    n_ch = x.channels * copies
    key = torch.cat(rows) * n_ch + torch.cat(chans)
    key, order = torch.sort(key)
    return EventBatch(torch.div(key, n_ch, rounding_mode="floor").int(), (key % n_ch).int(),
                      torch.cat(counts)[order], x.batch, x.steps, n_ch)
