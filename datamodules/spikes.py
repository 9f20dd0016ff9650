"""One LightningDataModule for every SHD-format data set: SHD, SSC, the generated one, FSDD-spikes, yours.

Batches are `(frames, labels)` with frames float32 (batch, time, inputs), binned at `data.dt` over
`data.duration`, channels pooled by `data.pool`, optionally widened by an input delay line.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from . import augment
from .binning import bin_events, delay_line
from .files import DataError, SpikeData, load_split
from .synthetic import ensure_synthetic


class SpikeDataset(Dataset):
    """Samples of a SpikeData as (times, units, label); optional same-class blending (training only)."""

    def __init__(self, data: SpikeData, blend_prob: float = 0.0, blend_mix: float = 0.5) -> None:
        self.data, self.blend_prob, self.blend_mix = data, blend_prob, blend_mix
        if blend_prob > 0:
            self.by_class = {c: np.flatnonzero(data.labels == c) for c in np.unique(data.labels)}

    def __len__(self) -> int:
        return len(self.data)

    def events(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = self.data.offsets[i], self.data.offsets[i + 1]
        return self.data.times[lo:hi], self.data.units[lo:hi]

    def __getitem__(self, i: int):
        times, units = self.events(i)
        label = int(self.data.labels[i])
        if self.blend_prob > 0 and np.random.random() < self.blend_prob:
            partner = np.random.choice(self.by_class[label])
            times, units = augment.blend(times, units, *self.events(partner), self.blend_mix, np.random.default_rng(np.random.randint(2**31)))
        return times, units, label


class Collate:
    """Concatenate a list of samples' events, augment (training), bin into frames, add the delay line."""

    def __init__(self, cfg_data, train: bool) -> None:
        self.d, self.train = cfg_data, train
        self.steps = int(round(cfg_data.duration / cfg_data.dt))
        self.delay_steps = int(round(cfg_data.delay.spacing / cfg_data.dt))

    def __call__(self, samples) -> tuple[torch.Tensor, torch.Tensor]:
        d, a = self.d, self.d.augment
        lengths = torch.tensor([len(s[0]) for s in samples])
        times = torch.from_numpy(np.concatenate([s[0] for s in samples]).astype(np.float32))
        units = torch.from_numpy(np.concatenate([s[1] for s in samples]).astype(np.int64))
        sample = torch.repeat_interleave(torch.arange(len(samples)), lengths)
        if self.train and a.shift > 0:
            units = augment.channel_shift(units, sample, len(samples), int(a.shift))
        if self.train and a.dropout > 0:
            keep = augment.spike_dropout(len(times), float(a.dropout))
            times, units, sample = times[keep], units[keep], sample[keep]
        frames = bin_events(times, units, sample, len(samples), self.steps, d.channels, d.dt, d.pool, d.binary)
        frames = delay_line(frames, d.delay.copies, self.delay_steps)
        return frames, torch.tensor([s[2] for s in samples], dtype=torch.long)


def split_validation(data: SpikeData, cfg_val) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val): held-out speakers if `val.speakers` is set, else a seeded random fraction."""
    n = len(data)
    if cfg_val.speakers:
        if data.speakers is None:
            raise DataError("data.val.speakers is set but the file has no extra/speaker; use data.val.fraction")
        is_val = np.isin(data.speakers, list(cfg_val.speakers))
        if not is_val.any() or is_val.all():
            raise DataError(f"data.val.speakers={list(cfg_val.speakers)} leaves an empty split; speakers in the file: {sorted(set(data.speakers.tolist()))}")
        return np.flatnonzero(~is_val), np.flatnonzero(is_val)
    if not 0 < cfg_val.fraction < 1:
        raise DataError(f"data.val.fraction must be in (0, 1), got {cfg_val.fraction}")
    perm = np.random.default_rng(cfg_val.seed).permutation(n)
    n_val = max(1, int(round(cfg_val.fraction * n)))
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


class SpikeDataModule(L.LightningDataModule):
    """Train / validation / test loaders for one SHD-format data set described by the `data` config."""

    def __init__(self, cfg_data) -> None:
        super().__init__()
        self.d = cfg_data
        self.train_set = self.val_set = self.test_set = None

    @property
    def n_steps(self) -> int:
        return int(round(self.d.duration / self.d.dt))

    def prepare_data(self) -> None:
        if self.d.name == "synthetic":
            self.root = ensure_synthetic(self.d)

    def setup(self, stage: str | None = None) -> None:
        """Train and validation sets for fit/validate, the test set for test/predict: fitting alone (a tuning
        trial) never opens the test file."""
        d = self.d
        if d.name == "synthetic" and not getattr(self, "root", None):
            self.prepare_data()
        if d.name == "synthetic":
            d = self.d = self.d.copy()
            d.root = str(self.root)
        if stage in (None, "fit", "validate") and self.train_set is None:
            train = load_split(d, "train")
            if d.files.get("valid"):
                val = load_split(d, "valid")
            else:
                tr_idx, va_idx = split_validation(train, d.val)
                train, val = train.subset(tr_idx), train.subset(va_idx)
            a = d.augment
            self.train_set = SpikeDataset(train, a.blend_prob, a.blend_mix)
            self.val_set = SpikeDataset(val)
        if stage in (None, "test", "predict") and self.test_set is None:
            self.test_set = SpikeDataset(load_split(d, "test"))

    def _loader(self, ds: Dataset, train: bool) -> DataLoader:
        return DataLoader(
            ds,
            batch_size=self.d.batch_size,
            shuffle=train,
            collate_fn=Collate(self.d, train),
            num_workers=self.d.num_workers,
            persistent_workers=self.d.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, False)
