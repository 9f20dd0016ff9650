"""Every training algorithm's one declaration: its name, its class, the keys of its `algorithm:` block, where its
defaults and its search space live, and what it can do.

Adding an algorithm is one `AlgorithmSpec` in `DECLARED` below (or `declare(spec)` from outside the package), its
class in `algorithms/<name>.py`, its defaults in `configs/algorithm/<name>.yaml` and its search space in
`sweeps/spaces/<name>.yaml`. Everything that depends on which algorithms exist reads this table and nothing else:
the parser (`configs.parse`: `algorithm=<name>`, the block's keys and types, the losses and regulariser forms it
accepts, all refused in one line before anything is written), the registry (`algorithms.get_algorithm` imports
`module`), the search spaces and W&B sweep files (`sweeps.search_space`), the benchmark (`benchmark.algorithms`,
spiking or not in its tables) and the NIR export (`export.refusal`). `tests/test_declarations.py` checks that the
class, the files and the declaration agree, and that a throwaway algorithm declared here is seen by all of them.

This module imports no torch (the parser reads it for every command, one-line errors included); the class is
imported only when a run builds it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from omegaconf import MISSING

from spikebench.errors import ConfigError

from .schema import at_least

PACKAGE = Path(__file__).resolve().parents[1]
LOSSES = ("sum_exp", "sum", "max", "first_spike")  # loss.kind values of the suite (algorithms/losses.py)
READOUT_LOSSES = ("sum_exp", "sum", "max")  # those computed from the readout voltages alone
REG_FORMS = ("gradient", "published")  # loss.reg_form values of the suite (algorithms/base.py, eventprop.py)
NEURONS = ("lif", "adlif")  # model.neuron values of the suite (algorithms/neuron.py, adlif.py)


@dataclass(frozen=True)
class AlgorithmSpec:
    """One algorithm, declared once.

    name       `algorithm=<name>`; also the `name` key of its block
    module     "importable.module:Class", the LightningModule (a `ClassifierModule`), imported when a run builds it
    settings   the dataclass of its `algorithm:` block: keys, types, ranges (every default is in `defaults`)
    summary    one line: the method and its paper
    spiking    a spiking network (a `SpikingModule`): spike counts, SynOps in accumulates, the neuron's dt and
               integration in its search space; False: the non-spiking reference (activations, MACs)
    export     None if the network has a NIR form (`export.py`); else why not, one line
    losses     the `loss.kind` values it trains with
    reg_forms  the `loss.reg_form` values it implements
    neurons    the `model.neuron` values it trains (lif: the suite's LIF, neuron.py; adlif: algorithms/adlif.py)
    delays     the input delays it can use (`model.delays`, algorithms/delays.py): "fixed" and/or "learned"
    inputs     the batch forms its steps take (`data.format`: "frames" (batch, time, channels) and/or "events", the
               non-zero bins, spikebench/events.py); `data.format=auto` gives it the first
    defaults   the YAML of its block's defaults (None: configs/algorithm/<name>.yaml)
    space      its search space (None: sweeps/spaces/<name>.yaml)
    """

    name: str
    module: str
    settings: type
    summary: str
    spiking: bool = True
    export: Optional[str] = None
    losses: tuple[str, ...] = READOUT_LOSSES
    reg_forms: tuple[str, ...] = ("gradient",)
    neurons: tuple[str, ...] = ("lif",)
    delays: tuple[str, ...] = ()
    inputs: tuple[str, ...] = ("frames",)
    defaults: Optional[Path] = None
    space: Optional[Path] = None

    @property
    def defaults_file(self) -> Path:
        return self.defaults or PACKAGE / "configs" / "algorithm" / f"{self.name}.yaml"

    @property
    def space_file(self) -> Path:
        return self.space or PACKAGE / "sweeps" / "spaces" / f"{self.name}.yaml"


# ----------------------------------------------------------------------------------------------
# The algorithm: blocks (keys, types, ranges; values in configs/algorithm/<name>.yaml)
# ----------------------------------------------------------------------------------------------


@dataclass
class Bptt:
    name: str = "bptt"
    surrogate: str = MISSING
    slope: float = at_least(0.0, above=True)
    detach_reset: bool = MISSING


@dataclass
class Eprop:
    name: str = "eprop"
    gamma: float = at_least(0.0, above=True)
    feedback: str = MISSING
    feedback_std: float = at_least(0.0, above=True)
    feedback_seed: int = MISSING
    chunk: int = at_least(1)
    alif_beta: float = at_least(0.0)
    alif_tau: float = at_least(0.0, above=True)


@dataclass
class Eventprop:
    name: str = "eventprop"
    time_mode: str = field(default=MISSING, metadata={"choices": ("discrete", "exact")})
    block_steps: int = at_least(1)
    vdot_floor: float = at_least(0.0)
    silent_lift: float = at_least(0.0)
    first_spike_tau0: float = at_least(0.0, above=True)
    first_spike_tau1: float = at_least(0.0, above=True)
    first_spike_alpha: float = at_least(0.0)


@dataclass
class Lstm:
    name: str = "lstm"
    layers: int = at_least(1)
    readout: str = MISSING


@dataclass
class Paralif:
    name: str = "paralif"
    spike_mode: str = MISSING
    threshold: Optional[float] = at_least(0.0, above=True)
    surrogate: str = MISSING
    slope: float = at_least(0.0, above=True)
    gs_temperature: float = at_least(0.0, above=True)
    layers: int = at_least(1)
    learn_tau: bool = MISSING
    learn_threshold: bool = MISSING
    membrane: str = MISSING
    chunk: int = at_least(1)


@dataclass
class Stdp:
    name: str = "stdp"
    rule: str = field(default=MISSING, metadata={"choices": ("additive", "multiplicative", "memristor")})
    eta_plus: float = at_least(0.0)
    eta_minus: float = at_least(0.0)
    tau_plus: float = at_least(0.0, above=True)
    tau_minus: float = at_least(0.0, above=True)
    w_min: float = MISSING
    w_max: float = MISSING
    beta_plus: float = at_least(0.0)
    beta_minus: float = at_least(0.0)
    init_fraction: float = at_least(0.0)
    inhibition: float = at_least(0.0)
    target_rate: float = at_least(0.0, above=True)
    theta_lr: float = at_least(0.0)
    homeostasis: str = field(default=MISSING, metadata={"choices": ("rate", "spike")})
    theta_plus: float = at_least(0.0)
    theta_tau: float = at_least(0.0, above=True)
    readout: str = field(default=MISSING, metadata={"choices": ("gradient", "assignment")})
    weight_sum: Optional[float] = at_least(0.0, above=True, default=None)
    wta_k: Optional[int] = at_least(1, default=None)
    plastic_epochs: Optional[int] = at_least(0, default=None)


@dataclass
class Ann2snn:
    name: str = "ann2snn"
    steps: int = at_least(1)
    percentile: float = at_least(0.0, above=True)
    norm_recordings: int = at_least(1)


EVENTS_FIRST = ("events", "frames")  # the step reads the input through sparse products (spikebench/events.py)
DECLARED = (  # the tables' order
    AlgorithmSpec(
        "bptt", "spikebench.algorithms.bptt:BPTT", Bptt,
        "backpropagation through time with a surrogate derivative of the spike (Neftci, Mostafa & Zenke 2019)",
        neurons=NEURONS, delays=("fixed", "learned"), inputs=EVENTS_FIRST),
    AlgorithmSpec(
        "eventprop", "spikebench.algorithms.eventprop:EventProp", Eventprop,
        "the exact gradient from adjoint dynamics and jumps at the spike times (Wunderlich & Pehle 2021)",
        losses=LOSSES, reg_forms=REG_FORMS, delays=("fixed", "learned"), inputs=EVENTS_FIRST),
    AlgorithmSpec(
        "eprop", "spikebench.algorithms.eprop:EProp", Eprop,
        "eligibility traces and a learning signal, forward in time (Bellec et al. 2020)",
        losses=("sum_exp", "sum"), delays=("fixed",), inputs=EVENTS_FIRST),
    AlgorithmSpec(
        "paralif", "spikebench.algorithms.paralif:ParaLIF", Paralif,
        "a reset-free LIF computed for all steps at once, spikes from the normalised membrane (Yarga & Wood 2025)",
        delays=("fixed", "learned"), inputs=EVENTS_FIRST,
        export="ParaLIF's neuron (no reset; spikes drawn from a normalised membrane, stochastic in some modes, "
               "recurrence through the feed-forward potential) has no NIR node"),
    AlgorithmSpec(
        "stdp", "spikebench.algorithms.stdp:STDP", Stdp,
        "a local spike-timing rule on W_in, no gradient and no label (Song et al. 2000; Diehl & Cook 2015); the "
        "readout by gradient on W_out only",
        export="its lateral inhibition and per-neuron homeostatic thresholds are not written by export.py"),
    AlgorithmSpec(
        "ann2snn", "spikebench.algorithms.ann2snn:ANN2SNN", Ann2snn,
        "a ReLU network trained by autograd, converted to integrate-and-fire neurons by data-based normalisation "
        "(Rueckauer et al. 2017; Diehl et al. 2015)",
        export="its integrate-and-fire neurons reset by subtraction and its one-frame recurrent delay are not "
               "written by export.py"),
    AlgorithmSpec(
        "lstm", "spikebench.algorithms.lstm:LSTMReference", Lstm,
        "the non-spiking reference: an LSTM on the same binned input (Cramer et al. 2020)",
        spiking=False, export="the LSTM reference is not a spiking network, and NIR has no LSTM node", neurons=()),
)
ALGORITHMS: dict[str, AlgorithmSpec] = {s.name: s for s in DECLARED}


def declare(spec: AlgorithmSpec) -> AlgorithmSpec:
    """Add an algorithm declared outside the package (its class importable by `spec.module`); returns it.
    ConfigError if the name is taken or a file it names is missing."""
    if spec.name in ALGORITHMS:
        raise ConfigError(f"algorithm '{spec.name}' is already declared ({ALGORITHMS[spec.name].module})")
    for what, path in (("defaults", spec.defaults_file), ("space", spec.space_file)):
        if not path.is_file():
            raise ConfigError(f"algorithm '{spec.name}': its {what} file {path} does not exist")
    if ":" not in spec.module:
        raise ConfigError(f"algorithm '{spec.name}': module must read 'package.module:Class', got '{spec.module}'")
    ALGORITHMS[spec.name] = spec
    return spec


def undeclare(name: str) -> None:
    """Remove an algorithm added by `declare` (the package's own cannot be removed)."""
    if any(s.name == name for s in DECLARED):
        raise ConfigError(f"algorithm '{name}' is one of the suite's own")
    ALGORITHMS.pop(name, None)


def spec_of(name: str) -> AlgorithmSpec:
    """The declaration of `algorithm=<name>`; ConfigError with the choices if there is none."""
    if name not in ALGORITHMS:
        from .parse import did_you_mean

        raise ConfigError(f"unknown algorithm '{name}'; {did_you_mean(name, list(ALGORITHMS))}"
                          f"choose one of: {', '.join(ALGORITHMS)}")
    return ALGORITHMS[name]


def check_capabilities(cfg) -> None:
    """The run's loss, regulariser form, neuron, delays and batch form are among those its algorithm declares
    (one-line ConfigError)."""
    spec = spec_of(str(cfg.algorithm.name))
    kind, form = str(cfg.loss.kind), str(cfg.loss.reg_form)
    if kind not in spec.losses:
        others = [s.name for s in ALGORITHMS.values() if kind in s.losses]
        where = f" (algorithm={' | '.join(others)} trains with it)" if others else ""
        raise ConfigError(f"loss.kind={kind} is not supported by algorithm={spec.name}; choose one of: "
                          f"{', '.join(spec.losses)}{where}")
    neuron = str(cfg.model.get("neuron", "lif"))
    if neuron not in spec.neurons and (spec.spiking or neuron != "lif"):  # the LSTM: no spiking neurons to choose
        others = [s.name for s in ALGORITHMS.values() if neuron in s.neurons]
        where = f" (algorithm={' | '.join(others)} trains it)" if others else ""
        raise ConfigError(f"model.neuron={neuron} is not implemented by algorithm={spec.name}{where}")
    delays = cfg.model.get("delays")
    if delays is not None and delays.enabled:
        mode = "learned" if delays.learn else "fixed"
        if mode not in spec.delays:
            others = [s.name for s in ALGORITHMS.values() if mode in s.delays]
            where = f" (algorithm={' | '.join(others)} does)" if others else ""
            raise ConfigError(f"model.delays ({mode}) is not implemented by algorithm={spec.name}{where}")
    fmt = str(cfg.data.get("format", "auto"))
    if fmt != "auto" and fmt not in spec.inputs:
        raise ConfigError(f"data.format={fmt} is not taken by algorithm={spec.name}; it takes: {', '.join(spec.inputs)}")
    if form not in spec.reg_forms:
        others = [s.name for s in ALGORITHMS.values() if form in s.reg_forms]
        where = f" (algorithm={' | '.join(others)} implements it)" if others else ""
        raise ConfigError(f"loss.reg_form={form} is not implemented by algorithm={spec.name}; choose one of: "
                          f"{', '.join(spec.reg_forms)}{where}")


def resolve_input_format(cfg) -> None:
    """`data.format=auto` → the first batch form the run's algorithm declares (`inputs`), written into the config so
    that the run's saved config says what its steps received."""
    if cfg.data.get("format", "auto") == "auto":
        cfg.data.format = spec_of(str(cfg.algorithm.name)).inputs[0]
