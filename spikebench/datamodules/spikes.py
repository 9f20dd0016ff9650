"""One LightningDataModule for every SHD-format data set: SHD, SSC, the generated one, FSDD-spikes, yours.

Batches are `(frames, labels)` with frames float32 (batch, time, inputs), binned at `data.dt` over
`data.duration`, channels pooled by `data.pool`, optionally widened by an input delay line; with
`data.format=events` (resolved from the algorithm's declaration when `auto`) the same bins without the zeros, an
`EventBatch` (spikebench/events.py), made without the dense tensor.
"""

from __future__ import annotations


import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from spikebench.events import EventBatch

from . import augment
from .binning import bin_event_list, bin_events, delay_line
from .files import DataError, SpikeData, load_split, locate
from .synthetic import ensure_synthetic


class EpochShuffle(Sampler):
    """A new random order every epoch, drawn from (seed, epoch) alone, and the random generators of that epoch's
    augmentations (`torch_gen`, `np_gen`). Lightning calls `set_epoch` before each training epoch, so epoch k
    is the same whatever ran before it: a run resumed from the checkpoint of epoch k − 1 repeats it exactly
    (with data.num_workers=0; worker processes would each get a copy of the generators).

    On `world` processes, process `rank` takes every world-th sample of the epoch's order, after cutting the order
    to a multiple of `world` (so that every process has as many batches: the training step communicates). With a
    per-process batch B, batch j of the processes together holds the samples of batch j of one process with batch
    world·B: the same global batches, in the same order. The augmentations' generators also draw from the rank."""

    def __init__(self, n: int, seed: int, rank: int = 0, world: int = 1) -> None:
        self.n, self.seed, self.rank, self.world = n, int(seed), int(rank), int(world)
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        more = [self.rank] if self.world > 1 else []  # one process: the seeds of earlier versions
        self.torch_gen = torch.Generator().manual_seed(hash_seed(self.seed, self.epoch, 1, *more))
        self.np_gen = np.random.default_rng([self.seed, self.epoch, 2, *more])

    def __len__(self) -> int:
        return self.n // self.world

    def __iter__(self):
        order = torch.Generator().manual_seed(hash_seed(self.seed, self.epoch, 0))
        perm = torch.randperm(self.n, generator=order)
        return iter(perm[: len(self) * self.world][self.rank :: self.world].tolist())


def hash_seed(*parts: int) -> int:
    """One 63-bit torch seed from several integers (NumPy's SeedSequence mixes them)."""
    return int(np.random.SeedSequence(list(parts)).generate_state(1, dtype=np.uint64)[0] >> 1)


class SpikeDataset(Dataset):
    """Samples of a SpikeData as (times, units, label); optional same-class blending (training only), drawing from
    `self.rng` (an EpochShuffle's generators when training; NumPy's global state otherwise)."""

    def __init__(self, data: SpikeData, blend_prob: float = 0.0, blend_mix: float = 0.5) -> None:
        self.data, self.blend_prob, self.blend_mix = data, blend_prob, blend_mix
        self.randomness: EpochShuffle | None = None
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
        rng = self.randomness.np_gen if self.randomness is not None else np.random.default_rng()
        if self.blend_prob > 0 and rng.random() < self.blend_prob:
            partner = rng.choice(self.by_class[label])
            times, units = augment.blend(times, units, *self.events(partner), self.blend_mix, rng)
        return times, units, label


class Collate:
    """Concatenate a list of samples' events, augment (training), bin into frames (or the event batch, with
    `data.format=events`), add the delay line."""

    def __init__(self, cfg_data, train: bool, randomness: EpochShuffle | None = None) -> None:
        self.d, self.train, self.randomness = cfg_data, train, randomness
        self.steps = int(round(cfg_data.duration / cfg_data.dt))
        self.delay_steps = int(round(cfg_data.delay.spacing / cfg_data.dt))

    def generator(self) -> torch.Generator | None:
        return self.randomness.torch_gen if self.randomness is not None else None

    def __call__(self, samples) -> tuple["torch.Tensor | EventBatch", torch.Tensor]:
        d, a = self.d, self.d.augment
        lengths = torch.tensor([len(s[0]) for s in samples])
        times = torch.from_numpy(np.concatenate([s[0] for s in samples]).astype(np.float32))
        units = torch.from_numpy(np.concatenate([s[1] for s in samples]).astype(np.int64))
        sample = torch.repeat_interleave(torch.arange(len(samples)), lengths)
        if self.train and a.shift > 0:
            units = augment.channel_shift(units, sample, len(samples), int(a.shift), self.generator())
        if self.train and a.dropout > 0:
            keep = augment.spike_dropout(len(times), float(a.dropout), self.generator())
            times, units, sample = times[keep], units[keep], sample[keep]
        binning = bin_event_list if d.get("format") == "events" else bin_events
        frames = binning(times, units, sample, len(samples), self.steps, d.channels, d.dt, d.pool, d.binary)
        frames = delay_line(frames, d.delay.copies, self.delay_steps)
        return frames, torch.tensor([s[2] for s in samples], dtype=torch.long)


def speaker_view(data: SpikeData, cfg_data, left_out: bool) -> SpikeData:
    """The samples a run may use of one file: the speakers of `data.speakers` (all when null), then without the
    speaker `data.leave_out` (`left_out=False`: training and validation) or with that speaker alone (`left_out=True`:
    the test of a leave-one-speaker-out fold, which reads it from every file)."""
    keep, out = cfg_data.get("speakers"), cfg_data.get("leave_out")
    if keep is not None:
        data = data.of_speakers(list(keep), "data.speakers")
    if out is None:
        return data
    if data.speakers is None:
        raise DataError("data.leave_out is set but the file has no extra/speaker: speaker splits need it")
    present = sorted(set(data.speakers.tolist()))
    if out not in present:
        raise DataError(f"data.leave_out={out} is not a speaker of this data; speakers: {present}")
    is_out = data.speakers == out
    return data.subset(np.flatnonzero(is_out if left_out else ~is_out))


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

    def __init__(self, cfg_data, test: bool = True, seed: int = 0, fit: bool = True) -> None:
        super().__init__()
        self.d, self.seed = cfg_data, seed
        self.test = test  # False: the test file is neither needed nor opened (tuning trials)
        self.fit = fit  # False: only the test file is needed (evaluating a trained run)
        self.train_set = self.val_set = self.test_set = None
        self.class_names: list[str] | None = None  # the training file's `extra/keys`, once set up

    @property
    def n_steps(self) -> int:
        return int(round(self.d.duration / self.d.dt))

    def prepare_data(self) -> None:
        """Generate (data=synthetic) or find every file the run will read, downloading when `data.download`
        allows: train.run calls it before it writes anything, so a missing file leaves no run folder behind."""
        if self.d.name == "synthetic":
            self.root = ensure_synthetic(self.d)
            return
        splits = ["train", *(["valid"] if self.d.files.get("valid") else [])]
        splits = splits if self.fit or self.d.get("leave_out") is not None else []  # a fold's test reads them too
        splits += ["test"] if self.test else []
        for split in splits:
            locate(self.d, split)

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
            if d.get("leave_out") is not None and d.val.speakers and d.leave_out in d.val.speakers:
                raise DataError(f"data.leave_out={d.leave_out} is also in data.val.speakers; the left-out speaker is "
                                "the test set's alone")
            train = speaker_view(load_split(d, "train"), d, left_out=False)
            if d.files.get("valid"):
                val = speaker_view(load_split(d, "valid"), d, left_out=False)
            else:
                tr_idx, va_idx = split_validation(train, d.val)
                train, val = train.subset(tr_idx), train.subset(va_idx)
            a = d.augment
            keys = train.keys
            self.class_names = keys[: d.n_classes] if keys and len(keys) >= d.n_classes else None
            self.train_set = SpikeDataset(train, a.blend_prob, a.blend_mix)
            self.val_set = SpikeDataset(val)
        if stage in (None, "test", "predict") and self.test_set is None:
            test = speaker_view(load_split(d, "test"), d, left_out=d.get("leave_out") is not None)
            if d.get("leave_out") is not None:  # every recording of the left-out speaker: test file, then the others
                for split in ["train", *(["valid"] if d.files.get("valid") else [])]:
                    test = test.concat(speaker_view(load_split(d, split), d, left_out=True))
            if not len(test):
                raise DataError(f"the test set is empty for data.speakers={d.get('speakers')}, "
                                f"data.leave_out={d.get('leave_out')}")
            self.test_set = SpikeDataset(test)

    def eval_order(self, n: int, rank: int = 0, world: int = 1) -> list[int]:
        """The order in which validation and test samples are loaded (dataset indices): one fixed mixed order, so
        that trainer.limit_val/test_batches sees every class (files may be sorted); on several processes every
        sample once (no padding: evaluation steps do not communicate)."""
        return np.random.default_rng([self.seed, 3]).permutation(n)[rank::world].tolist()

    def _loader(self, ds: Dataset, train: bool) -> DataLoader:
        # several processes (trainer.devices=N): each loads its share, the Trainer's distributed sampler is off
        rank, world = (self.trainer.global_rank, self.trainer.world_size) if self.trainer is not None else (0, 1)
        if train:
            order = ds.randomness = EpochShuffle(len(ds), self.seed, rank, world)
        else:
            order = self.eval_order(len(ds), rank, world)
        return DataLoader(
            ds,
            batch_size=self.d.batch_size,
            sampler=order,
            collate_fn=Collate(self.d, train, order if train else None),
            generator=torch.Generator().manual_seed(self.seed),  # worker seeds; the global RNG stays the model's
            num_workers=self.d.num_workers,
            persistent_workers=self.d.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, False)

    def statistics_dataloader(self) -> DataLoader | None:
        """The training recordings as they are (no augmentation, no blending), in one fixed order, for statistics of
        a trained network over its training set (ann2snn's normalisation); None when the training file is not loaded
        (a trained run being evaluated). Every process reads the same recordings (statistics equal on all)."""
        if self.train_set is None:
            return None
        ds = SpikeDataset(self.train_set.data)
        return DataLoader(ds, batch_size=self.d.batch_size, sampler=self.eval_order(len(ds)),
                          collate_fn=Collate(self.d, False), num_workers=0)
