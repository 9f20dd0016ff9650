"""Training algorithms for the shared spiking network, registered by name (`algorithm=<name>`).

Each algorithm lives in its own module and is imported only when asked for, so the registry maps
names to "module:Class". Algorithms never import each other.
"""

from __future__ import annotations

from spikebench.errors import ConfigError
import importlib

from omegaconf import DictConfig

from .base import ClassifierModule, DataShape, SpikingModule, StepOutput

REGISTRY: dict[str, str] = {
    "bptt": "spikebench.algorithms.bptt:BPTT",
    "eventprop": "spikebench.algorithms.eventprop:EventProp",
    "eprop": "spikebench.algorithms.eprop:EProp",
    "paralif": "spikebench.algorithms.paralif:ParaLIF",
    "lstm": "spikebench.algorithms.lstm:LSTMReference",
}


def get_algorithm(name: str) -> type[ClassifierModule]:
    """The LightningModule class registered under `name`."""
    if name not in REGISTRY:
        raise ConfigError(f"unknown algorithm '{name}'; choose one of: {', '.join(sorted(REGISTRY))}")
    module, cls = REGISTRY[name].split(":")
    return getattr(importlib.import_module(module), cls)


def build_module(cfg: DictConfig, data: DataShape | dict) -> ClassifierModule:
    """The LightningModule for a resolved config (`configs.compose_config`) and the shape of its data
    (`datamodules.data_shape(cfg)`: n_in, n_classes, dt, duration)."""
    return get_algorithm(cfg.algorithm.name)(cfg, data)


__all__ = ["REGISTRY", "ClassifierModule", "DataShape", "SpikingModule", "StepOutput", "build_module", "get_algorithm"]
