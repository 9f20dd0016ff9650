"""Training-time augmentations, shared by all algorithms, off by default (`data.augment.*`).

They act on the events of a batch before binning:
- shift: every spike of a sample moves by the same random number of channels in [−shift, shift]
  (Cramer et al. 2020; Nowotny et al. 2025 use ±40); spikes pushed outside the channels are dropped.
- dropout: each input spike is deleted with probability `dropout`.
- blend: with probability `blend_prob`, a sample is replaced by a blend of itself and a random sample of
  the same class (after Nowotny et al. 2025): the partner is moved in time so that both have the same mean
  spike time, then each spike of the first is kept with probability `blend_mix`, each of the partner with
  probability 1 − `blend_mix`.
"""

from __future__ import annotations

import numpy as np
import torch


def channel_shift(
    units: torch.Tensor, sample: torch.Tensor, batch: int, max_shift: int, gen: torch.Generator | None = None
) -> torch.Tensor:
    """units + r[sample], r uniform in [−max_shift, max_shift] per sample."""
    r = torch.randint(-max_shift, max_shift + 1, (batch,), generator=gen)
    return units + r[sample]


def spike_dropout(n: int, p: float, gen: torch.Generator | None = None) -> torch.Tensor:
    """Boolean keep-mask (n,) with P(keep) = 1 − p."""
    return torch.rand(n, generator=gen) >= p


def blend(
    t_a: np.ndarray, u_a: np.ndarray, t_b: np.ndarray, u_b: np.ndarray, mix: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Blend two samples' events (times, units) of the same class; see the module docstring."""
    if len(t_a) and len(t_b):
        t_b = t_b + (t_a.mean() - t_b.mean())
    keep_a = rng.random(len(t_a)) < mix
    keep_b = (rng.random(len(t_b)) >= mix) & (t_b >= 0)
    times = np.concatenate([t_a[keep_a], t_b[keep_b]])
    units = np.concatenate([u_a[keep_a], u_b[keep_b]])
    return times.astype(np.float32), units
