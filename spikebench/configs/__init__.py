"""The suite's configs: YAML files (the values) in this folder, their schema (`schema.py`: keys, types, ranges) and
the one parser that train.py, the Optuna study and the benchmark share (`parse.py`), and every algorithm's one
declaration (`algorithms.py`)."""

from .algorithms import ALGORITHMS, AlgorithmSpec, declare, spec_of, undeclare
from .parse import (CONFIG_DIR, GROUPS, ConfigError, choices, compose_config, compose_resumed, did_you_mean,
                    load_run_config, load_structured, set_key)

__all__ = ["ALGORITHMS", "AlgorithmSpec", "declare", "spec_of", "undeclare", "CONFIG_DIR", "GROUPS", "ConfigError", "choices", "compose_config", "compose_resumed", "did_you_mean",
           "load_run_config", "load_structured", "set_key"]
