"""Data: SHD-format files (SHD, SSC, generated, FSDD-spikes) → frames (batch, time, channels)."""

from __future__ import annotations

from omegaconf import DictConfig

from .binning import pooled_channels
from .files import DataError, SpikeData, read_spike_file


def __getattr__(name: str):
    """`SpikeDataModule` imported on first use: it needs Lightning, which the audio converter does not (its start)."""
    if name == "SpikeDataModule":
        from .spikes import SpikeDataModule

        return SpikeDataModule
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def build_datamodule(cfg: DictConfig, fit: bool = True):
    """The datamodule (a SpikeDataModule) for a resolved config (as returned by `configs.compose_config`);
    fit=False: the test file alone (evaluation)."""
    from .spikes import SpikeDataModule

    return SpikeDataModule(cfg.data, test=bool(cfg.get("test", True)), seed=int(cfg.get("seed", 0)), fit=fit)


def data_shape(cfg: DictConfig) -> dict[str, float | int]:
    """What a network needs to know of the frames this config's datamodule yields, without opening a file:
    n_in (channels after pooling, times the copies of the delay line), n_classes, dt (s per step, the network's
    clock) and duration (s per sample). `algorithms.build_module(cfg, data_shape(cfg))`."""
    d = cfg.data
    return {"n_in": pooled_channels(d.channels, d.pool) * max(1, d.delay.copies), "n_classes": int(d.n_classes),
            "dt": float(d.dt), "duration": float(d.duration)}


__all__ = ["DataError", "SpikeData", "SpikeDataModule", "build_datamodule", "data_shape", "read_spike_file"]
