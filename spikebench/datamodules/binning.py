"""Events → dense frames (batch, time, channels), and the input delay line. Vectorised, no loop over spikes."""

from __future__ import annotations

import torch


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
    step = torch.floor(times.double() / dt).long()
    keep = (step >= 0) & (step < steps) & (units >= 0) & (units < channels)
    flat = (sample[keep] * steps + step[keep]) * out_ch + units[keep].long() // pool
    frames = torch.bincount(flat, minlength=batch * steps * out_ch).view(batch, steps, out_ch).float()
    return frames.clamp_(max=1.0) if binary else frames


def pooled_channels(channels: int, pool: int) -> int:
    """Channels after summing groups of `pool` neighbours: ⌈channels / pool⌉."""
    return -(-channels // pool)


def delay_line(frames: torch.Tensor, copies: int, spacing: int) -> torch.Tensor:
    """Concatenate `copies` versions of frames (batch, time, ch), copy k delayed by k·spacing steps."""
    if copies <= 1:
        return frames
    steps = frames.shape[1]
    out = frames.new_zeros(frames.shape[0], steps, frames.shape[2] * copies)
    ch = frames.shape[2]
    for k in range(copies):  # a handful of copies, each one slice assignment
        d = k * spacing
        if d < steps:
            out[:, d:, k * ch : (k + 1) * ch] = frames[:, : steps - d]
    return out
