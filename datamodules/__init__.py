"""Data: SHD-format files (SHD, SSC, generated, FSDD-spikes) → frames (batch, time, channels)."""

from __future__ import annotations

from omegaconf import DictConfig

from .files import DataError, SpikeData, read_spike_file
from .spikes import SpikeDataModule


def build_datamodule(cfg: DictConfig) -> SpikeDataModule:
    """The datamodule for a resolved config (as returned by `train.compose_config`)."""
    return SpikeDataModule(cfg.data)


__all__ = ["DataError", "SpikeData", "SpikeDataModule", "build_datamodule", "read_spike_file"]
