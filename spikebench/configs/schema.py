"""The schema of configs/train.yaml and its groups, as OmegaConf structured configs.

The YAML files hold the values (they are what a user reads and edits); these dataclasses hold the keys, the types
and the value ranges. Fields without a default are `MISSING`: the YAML file fills them, so that every default is
written once. OmegaConf refuses unknown keys (with its own "did you mean") and converts or refuses values of the
wrong type (`1` for a float becomes 1.0; `1.5` for an int is an error). Ranges are field metadata, checked by
`configs.parse.check_ranges` after every override. Choices among named options (optimiser, surrogate, spike mode…)
are checked where the options are defined, by the module that uses them, before a run has any side effect.

The `trainer:` block is not a dataclass: it is passed whole to `lightning.Trainer`, whose signature is its schema
(`configs.parse.check_trainer`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from omegaconf import MISSING


def at_least(low: float, *, above: bool = False, default: Any = MISSING) -> Any:
    """A number >= low (> low with above=True)."""
    return field(default=default, metadata={"low": low, "above": above})


def fraction(default: Any = MISSING) -> Any:
    """A number in [0, 1]."""
    return field(default=default, metadata={"low": 0.0, "high": 1.0})


# ----------------------------------------------------------------------------------------------
# Network, loss, optimiser
# ----------------------------------------------------------------------------------------------


@dataclass
class Init:
    in_mean: float = MISSING
    in_std: float = at_least(0.0)
    rec_std: float = at_least(0.0)
    out_std: float = at_least(0.0)


@dataclass
class Adlif:  # model.neuron=adlif (algorithms/adlif.py): ranges of the per-neuron parameters, [low, high]
    tau_u: List[float] = field(default_factory=list, metadata={"interval": "positive"})
    tau_w: List[float] = field(default_factory=list, metadata={"interval": "positive"})
    a: List[float] = field(default_factory=list, metadata={"interval": "any"})
    b: List[float] = field(default_factory=list, metadata={"interval": "any"})
    coupling: float = at_least(0.0, above=True)


@dataclass
class Delays:  # model.delays (algorithms/delays.py): an axonal delay per input channel
    enabled: bool = MISSING
    max: float = at_least(0.0, above=True)
    init: str = field(default=MISSING, metadata={"choices": ("uniform", "zero")})
    learn: bool = MISSING


@dataclass
class Model:
    hidden: int = at_least(1)
    recurrent: bool = MISSING
    tau_mem: float = at_least(0.0, above=True)
    tau_syn: float = at_least(0.0, above=True)
    tau_mem_out: float = at_least(0.0, above=True)
    tau_syn_out: float = at_least(0.0, above=True)
    threshold: float = at_least(0.0, above=True)
    v_reset: float = MISSING
    backend: str = MISSING
    integration: str = MISSING
    neuron: str = field(default=MISSING, metadata={"choices": ("lif", "adlif")})
    adlif: Adlif = field(default_factory=Adlif)
    delays: Delays = field(default_factory=Delays)
    init: Init = field(default_factory=Init)


@dataclass
class Loss:
    kind: str = MISSING
    reg_strength: float = at_least(0.0)
    reg_target: float = at_least(0.0)
    reg_form: str = MISSING


@dataclass
class Optim:
    name: str = MISSING
    lr: float = at_least(0.0, above=True)
    weight_decay: float = at_least(0.0)
    grad_clip: float = at_least(0.0)
    scheduler: str = MISSING


# ----------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------


@dataclass
class Files:
    train: str = MISSING
    valid: Optional[str] = None
    test: str = MISSING


@dataclass
class Split:
    fraction: float = fraction()
    speakers: Optional[List[int]] = None
    seed: int = MISSING


@dataclass
class Augment:
    shift: int = at_least(0)
    dropout: float = fraction()
    blend_prob: float = fraction()
    blend_mix: float = fraction()


@dataclass
class Delay:
    copies: int = at_least(1)
    spacing: float = at_least(0.0)


@dataclass
class Synthetic:
    seed: int = MISSING
    n_train: int = at_least(1)
    n_test: int = at_least(1)
    active_fraction: float = fraction()
    manifold_dim: int = at_least(1)
    harmonics: int = at_least(1)
    smoothness: float = at_least(0.0)
    amplitude: float = at_least(0.0)
    jitter: float = at_least(0.0)
    noise_rate: float = at_least(0.0)


@dataclass
class Data:
    name: str = MISSING
    root: str = MISSING
    url: Optional[str] = None
    download: bool = False
    files: Files = field(default_factory=Files)
    cache_dir: str = MISSING
    n_classes: int = at_least(2)
    channels: int = at_least(1)
    dt: float = at_least(0.0, above=True)
    duration: float = at_least(0.0, above=True)
    pool: int = at_least(1)
    binary: bool = MISSING
    format: str = field(default=MISSING, metadata={"choices": ("auto", "frames", "events")})
    batch_size: int = at_least(1)
    num_workers: int = at_least(0)
    speakers: Optional[List[int]] = None
    leave_out: Optional[int] = None
    val: Split = field(default_factory=Split)
    augment: Augment = field(default_factory=Augment)
    delay: Delay = field(default_factory=Delay)
    synthetic: Optional[Synthetic] = None  # data=synthetic only


# ----------------------------------------------------------------------------------------------
# Loggers and algorithms (one schema per group choice)
# ----------------------------------------------------------------------------------------------


@dataclass
class Logger:
    name: str = MISSING
    mode: str = "auto"
    project: str = "spikebench"
    entity: Optional[str] = None
    group: Optional[str] = None
    tags: List[str] = field(default_factory=list)


@dataclass
class TrainConfig:
    seed: int = MISSING
    output_dir: Optional[str] = None
    ckpt_path: Optional[str] = None
    flush_denormal: bool = MISSING
    test: bool = MISSING
    test_checkpoint: str = field(default=MISSING, metadata={"choices": ("best", "last")})
    plots: bool = MISSING
    experiment: Optional[str] = None
    model: Model = field(default_factory=Model)
    loss: Loss = field(default_factory=Loss)
    optim: Optim = field(default_factory=Optim)
    trainer: Dict[str, Any] = field(default_factory=dict)  # lightning.Trainer's keyword arguments
    data: Data = field(default_factory=Data)
    logger: Logger = field(default_factory=Logger)
    algorithm: Any = None  # an algorithm's settings (configs/algorithms.py), set by the group choice


# ----------------------------------------------------------------------------------------------
# configs/sweep.yaml (python -m spikebench.sweeps.optimize)
# ----------------------------------------------------------------------------------------------


@dataclass
class SweepConfig:
    study_name: Optional[str] = None
    n_trials: int = at_least(1)
    timeout: Optional[float] = at_least(0.0, above=True, default=None)
    sampler: str = field(default=MISSING, metadata={"choices": ("tpe", "random", "grid")})
    seed: int = MISSING
    n_startup_trials: int = at_least(0)
    constant_liar: bool = MISSING
    grid_points: int = at_least(1)
    pruner: str = field(default=MISSING, metadata={"choices": ("median", "hyperband", "none")})
    reduction_factor: int = at_least(2)
    objective: str = field(default=MISSING, metadata={"choices": ("best", "last")})
    enqueue: List[str] = field(default_factory=list)
    prune_startup_trials: int = at_least(0)
    prune_warmup_epochs: int = at_least(0)
    space: Optional[str] = None
    params: Optional[List[str]] = None
    storage: Optional[str] = None
    heartbeat_interval: int = at_least(1)
    grace_period: int = at_least(1)
    reconnect_timeout: float = at_least(0.0)
    max_retry: int = at_least(0)
    out_dir: Optional[str] = None
    plots: bool = MISSING
