"""Reading SHD-format files: `spikes/times`, `spikes/units`, `labels` (+ `extra/speaker`, `extra/keys`).

The Heidelberg spiking data sets (Cramer et al. 2020) are distributed as `shd_train.h5.zip` /
`.h5.gz`; the same layout serves SSC and any data set written in it (the generated one, FSDD through
the SHD cochlea model). A file is found in `root` as `.h5`, `.h5.gz` or `.h5.zip`; compressed files are
unpacked once into a cache folder. All samples are loaded into flat arrays (`SpikeData`) so that a batch
is cut out by index arithmetic, never by a loop over spikes.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from spikebench.errors import DataError

SUFFIXES = (".h5", ".h5.gz", ".h5.zip")




@dataclass
class SpikeData:
    """All samples of one file as flat arrays: sample n's spikes are [offsets[n], offsets[n+1])."""

    times: np.ndarray  # float32 seconds, (n_spikes,)
    units: np.ndarray  # int32 channel, (n_spikes,)
    offsets: np.ndarray  # int64, (n_samples + 1,)
    labels: np.ndarray  # int64, (n_samples,)
    speakers: np.ndarray | None = None  # int64, (n_samples,)
    keys: list[str] | None = None  # class names (`extra/keys`), index = label

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: np.ndarray) -> "SpikeData":
        """The samples at `index`, as a new SpikeData (vectorised gather)."""
        index = np.asarray(index, dtype=np.int64)
        lengths = self.offsets[index + 1] - self.offsets[index]
        offsets = np.zeros(len(index) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        spike_idx = np.repeat(self.offsets[index] - offsets[:-1], lengths) + np.arange(offsets[-1])
        return SpikeData(
            self.times[spike_idx],
            self.units[spike_idx],
            offsets,
            self.labels[index],
            None if self.speakers is None else self.speakers[index],
            self.keys,
        )

    def concat(self, other: "SpikeData") -> "SpikeData":
        """This file's samples followed by `other`'s (same layout; speakers kept only if both have them)."""
        speakers = None if self.speakers is None or other.speakers is None else np.concatenate([self.speakers, other.speakers])
        return SpikeData(
            np.concatenate([self.times, other.times]),
            np.concatenate([self.units, other.units]),
            np.concatenate([self.offsets, other.offsets[1:] + self.offsets[-1]]),
            np.concatenate([self.labels, other.labels]),
            speakers,
            self.keys or other.keys,
        )

    def of_speakers(self, keep: list[int] | np.ndarray, what: str) -> "SpikeData":
        """The samples of the speakers `keep` (ids of `extra/speaker`); `what` names the setting in the error
        raised when the file has no speakers."""
        if self.speakers is None:
            raise DataError(f"{what} is set but the file has no extra/speaker: speaker splits need it")
        return self.subset(np.flatnonzero(np.isin(self.speakers, np.asarray(keep, dtype=np.int64))))


def find_file(root: str | Path, stem: str) -> Path | None:
    """`root/stem.h5`, `.h5.gz` or `.h5.zip`, whichever exists first; `stem` may carry a suffix already."""
    root = Path(root).expanduser()
    for suffix in SUFFIXES:
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
    for suffix in SUFFIXES:
        if (root / (stem + suffix)).is_file():
            return root / (stem + suffix)
    return None


def unpack(path: Path, cache_dir: str | Path) -> Path:
    """The path of a plain .h5 for `path`, unpacking .gz / .zip once into `cache_dir`."""
    if path.suffix == ".h5":
        return path
    cache = Path(cache_dir).expanduser()
    cache.mkdir(parents=True, exist_ok=True)
    stat = path.stat()
    key = hashlib.sha1(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:10]
    out = cache / f"{path.name.split('.h5')[0]}-{key}.h5"
    if out.is_file():
        return out
    tmp = out.with_suffix(f".tmp{os.getpid()}")
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst, length=1 << 22)
        else:
            with zipfile.ZipFile(path) as zf:
                members = [m for m in zf.namelist() if m.endswith(".h5")]
                if not members:
                    raise DataError(f"{path} holds no .h5 file; download it again")
                with zf.open(members[0]) as src, open(tmp, "wb") as dst:
                    shutil.copyfileobj(src, dst, length=1 << 22)
        os.replace(tmp, out)
    except (OSError, EOFError, zipfile.BadZipFile) as err:
        tmp.unlink(missing_ok=True)
        raise DataError(f"{path} is corrupt ({err}); delete it and download it again") from None
    return out


def read_spike_file(path: str | Path) -> SpikeData:
    """Load an SHD-format HDF5 file into flat arrays; a clear DataError if it is not one."""
    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            times = f["spikes/times"][:]
            units = f["spikes/units"][:]
            labels = f["labels"][:].astype(np.int64)
            speakers = f["extra/speaker"][:].astype(np.int64) if "extra/speaker" in f else None
            keys = [k.decode() if isinstance(k, bytes) else str(k) for k in f["extra/keys"][:]] if "extra/keys" in f else None
    except (OSError, KeyError) as err:
        raise DataError(
            f"{path} is not a readable SHD-format file ({err}); delete it and download it again"
        ) from None
    if not (len(times) == len(units) == len(labels)):
        raise DataError(f"{path}: spikes/times, spikes/units and labels differ in length; the file is corrupt")
    lengths = np.fromiter((len(t) for t in times), dtype=np.int64, count=len(times))
    offsets = np.zeros(len(times) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    flat_t = np.concatenate(times).astype(np.float32) if len(times) else np.zeros(0, np.float32)
    flat_u = np.concatenate(units).astype(np.int32) if len(units) else np.zeros(0, np.int32)
    return SpikeData(flat_t, flat_u, offsets, labels, speakers, keys)


def download(name: str, root: Path, stem: str) -> Path | None:
    """Fetch `stem` of the SHD / SSC data set from its official address (via tonic); None when offline."""
    try:
        from tonic.datasets import SHD, SSC
        from tonic.download_utils import download_url
    except ImportError:
        return None
    source = {"shd": SHD, "ssc": SSC}.get(name)
    if source is None:
        return None
    filename = f"{stem}.h5.zip"
    made = [] if root.exists() else [root, *(q for q in root.parents if not q.exists())]  # folders a download makes
    md5 = getattr(source, {"train": "train_md5", "test": "test_md5", "valid": "valid_md5"}[stem.split("_")[-1]], None)
    try:
        download_url(source.base_url + filename, str(root), filename=filename, md5=md5)
    except Exception:  # offline, refused, or a broken transfer: the caller says what to do
        for folder in made:  # deepest first: leave no empty data folder behind
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        return None
    return find_file(root, stem)


def locate(cfg_data, split: str) -> Path:
    """The file of `split` (train / valid / test) as the data config names it, downloaded first when it is
    missing and `data.download` allows; a DataError saying what to do when it cannot be had."""
    stem = cfg_data.files[split]
    root = Path(cfg_data.root).expanduser()
    path = find_file(root, stem)
    tried = path is None and cfg_data.get("download", False)
    if tried:
        path = download(cfg_data.name, root, stem)
    if path is None:
        where = f" (download from {cfg_data.url})" if cfg_data.get("url") else ""
        fetch = "; downloading it failed (offline?)" if tried else ""
        raise DataError(
            f"data file '{stem}.h5' (or .h5.gz / .h5.zip) not found in {root}{fetch}; put it there{where} "
            "or point data.root to its folder"
        )
    return path


def load_split(cfg_data, split: str) -> SpikeData:
    """The SpikeData of `split` (train / valid / test) as the data config names it, checked against the config:
    labels below data.n_classes, channels below data.channels, finite non-negative spike times, not empty."""
    path = locate(cfg_data, split)
    return checked(read_spike_file(unpack(path, cfg_data.cache_dir)), cfg_data, path)


def checked(data: SpikeData, cfg_data, path: Path, labels: bool = True) -> SpikeData:
    """`data` if it fits the data config: not empty, labels below data.n_classes (unless `labels` is False: files
    to classify), channels below data.channels, finite non-negative spike times; else a one-line DataError."""
    if not len(data):
        raise DataError(f"{path} holds no samples; the file must not be empty")
    if labels and (data.labels.max() >= cfg_data.n_classes or data.labels.min() < 0):
        raise DataError(f"{path} has label {data.labels.max()} but data.n_classes={cfg_data.n_classes}; set data.n_classes")
    if len(data.units) and (data.units.max() >= cfg_data.channels or data.units.min() < 0):
        raise DataError(f"{path} has input channel {data.units.max()} but data.channels={cfg_data.channels}; "
                        "set data.channels to the file's channel count")
    if len(data.times) and not (np.isfinite(data.times).all() and data.times.min() >= 0):
        raise DataError(f"{path} has NaN, infinite or negative spike times; the file is corrupt")
    return data
