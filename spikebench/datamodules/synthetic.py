"""A generated spoken-digit stand-in, written in the SHD file format (`data=synthetic`, the default).

Random-manifold spike-timing patterns after Zenke & Vogels 2021 ("The remarkable robustness of surrogate
gradient learning...", the Randman data set): each class c is a smooth random closed curve (or D-dimensional
surface) θ ↦ f_c(θ) in the space of firing times of its active channels. A sample draws θ uniformly, and each
active channel i fires once at

    t_i = t_0 + span · sigmoid(f_ci(θ)),   f_ci(θ) = Σ_d Σ_{k=1..K} a_cidk k^{−smoothness} sin(2π k θ_d + φ_cidk)

plus Gaussian jitter; background spikes arrive at `noise_rate` Hz on every channel. Classes share their
statistics (same channels' rates, same time range), so only the timing structure tells them apart: learnable
by a spiking network, not by counting spikes. Deterministic for a given seed and parameters.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import h5py
import numpy as np


def generate(
    n_samples: int,
    rng_manifold: np.random.Generator,
    rng_samples: np.random.Generator,
    n_classes: int = 20,
    channels: int = 700,
    active_fraction: float = 1.0,
    manifold_dim: int = 1,
    harmonics: int = 3,
    smoothness: float = 1.0,
    amplitude: float = 2.0,
    duration: float = 0.2,
    jitter: float = 2e-3,
    noise_rate: float = 2.0,
) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """Return per-sample spike times (s), units, and labels for `n_samples` samples."""
    g = rng_manifold
    k = np.arange(1, harmonics + 1)
    amp = g.normal(size=(n_classes, channels, manifold_dim, harmonics)) * k ** (-smoothness) * amplitude
    phase = g.uniform(0, 2 * np.pi, size=(n_classes, channels, manifold_dim, harmonics))
    active = g.random((n_classes, channels)) < active_fraction
    t0, span = 0.05 * duration, 0.85 * duration

    r = rng_samples
    labels = np.arange(n_samples) % n_classes
    r.shuffle(labels)
    times, units = [], []
    for c in labels:  # per sample (not per spike); vectorised over channels
        theta = r.random(manifold_dim)
        f = (amp[c] * np.sin(2 * np.pi * k * theta[None, :, None] + phase[c])).sum(axis=(1, 2))
        ch = np.flatnonzero(active[c])
        t = t0 + span / (1 + np.exp(-f[ch])) + r.normal(0, jitter, len(ch))
        n_noise = r.poisson(noise_rate * duration * channels)
        t = np.concatenate([t, r.uniform(0, duration, n_noise)])
        u = np.concatenate([ch, r.integers(0, channels, n_noise)])
        order = np.argsort(t, kind="stable")
        t, u = np.clip(t[order], 0, duration * 0.999), u[order]
        times.append(t.astype(np.float16))
        units.append(u.astype(np.uint16))
    return times, units, labels.astype(np.uint16)


def write_shd_file(path: str | Path, times, units, labels, speakers=None, keys=None, extra=None) -> None:
    """Write events in the SHD layout: vlen float16 spikes/times, vlen uint16 spikes/units, uint16 labels;
    `extra`: more datasets under extra/ by name (e.g. speaker_names, files)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # one per process: several may write the same file
    def rows(arrays, dtype) -> np.ndarray:  # a 1-D object array of rows (np.array would make equal rows 2-D)
        out = np.empty(len(arrays), dtype=object)
        out[:] = [np.asarray(a, dtype=dtype) for a in arrays]
        return out

    with h5py.File(tmp, "w") as f:
        f.create_dataset("spikes/times", data=rows(times, np.float16), dtype=h5py.vlen_dtype(np.float16))
        f.create_dataset("spikes/units", data=rows(units, np.uint16), dtype=h5py.vlen_dtype(np.uint16))
        f.create_dataset("labels", data=np.asarray(labels, dtype=np.uint16))
        n = len(labels)
        f.create_dataset("extra/speaker", data=np.asarray(speakers if speakers is not None else np.zeros(n), dtype=np.uint16))
        n_keys = int(np.max(labels)) + 1 if n else 0
        f.create_dataset("extra/keys", data=np.array(keys or [f"class-{i}".encode() for i in range(n_keys)]))
        for name, values in (extra or {}).items():
            f.create_dataset(f"extra/{name}", data=values)
    tmp.replace(path)


def synthetic_params(cfg_data) -> dict:
    """The generator's parameters from `data.synthetic` plus the data set's class and channel counts."""
    s = dict(cfg_data.synthetic)
    s.update(n_classes=cfg_data.n_classes, channels=cfg_data.channels, duration=cfg_data.duration)
    return s


def ensure_synthetic(cfg_data) -> Path:
    """Write `synthetic_{train,test}.h5` for these parameters (once) and return their folder."""
    params = synthetic_params(cfg_data)
    key = hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:10]
    folder = Path(cfg_data.root).expanduser() / key
    if all((folder / f"{cfg_data.files[s]}.h5").is_file() for s in ("train", "test")):
        return folder
    seed, n_train, n_test = params.pop("seed"), params.pop("n_train"), params.pop("n_test")
    for split, n, stream in (("train", n_train, 1), ("test", n_test, 2)):
        rng_manifold = np.random.default_rng([seed, 0])  # the classes: the same for both splits
        times, units, labels = generate(n, rng_manifold, np.random.default_rng([seed, stream]), **params)
        write_shd_file(folder / f"{cfg_data.files[split]}.h5", times, units, labels)
    (folder / "params.json").write_text(json.dumps({**params, "seed": seed, "n_train": n_train, "n_test": n_test}, indent=1))
    return folder
