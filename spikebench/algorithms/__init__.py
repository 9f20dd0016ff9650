"""Training algorithms for the shared spiking network, built by name (`algorithm=<name>`).

Which algorithms exist, and the class of each, is declared once, in `configs/algorithms.py` (`AlgorithmSpec`);
this registry imports a declared class only when it is asked for. Algorithms never import each other.
"""

from __future__ import annotations

import importlib

from omegaconf import DictConfig

from spikebench.configs.algorithms import ALGORITHMS, check_capabilities, spec_of
from spikebench.errors import ConfigError

from .base import ClassifierModule, DataShape, SpikingModule, StepOutput


def get_algorithm(name: str) -> type[ClassifierModule]:
    """The LightningModule class declared for `name` (ConfigError for an unknown name)."""
    spec = spec_of(name)
    module, cls = spec.module.split(":")
    found = getattr(importlib.import_module(module), cls)
    if not (isinstance(found, type) and issubclass(found, ClassifierModule)):
        raise TypeError(f"algorithm '{name}': {spec.module} is not a ClassifierModule")
    if issubclass(found, SpikingModule) != spec.spiking:
        raise TypeError(f"algorithm '{name}' is declared spiking={spec.spiking} but {spec.module} "
                        f"{'is not' if spec.spiking else 'is'} a SpikingModule")
    return found


def build_module(cfg: DictConfig, data: DataShape | dict) -> ClassifierModule:
    """The LightningModule for a resolved config (`configs.compose_config`) and the shape of its data
    (`datamodules.data_shape(cfg)`: n_in, n_classes, dt, duration)."""
    check_capabilities(cfg)
    return get_algorithm(cfg.algorithm.name)(cfg, data)


__all__ = ["ALGORITHMS", "ClassifierModule", "ConfigError", "DataShape", "SpikingModule", "StepOutput", "build_module",
           "get_algorithm"]
