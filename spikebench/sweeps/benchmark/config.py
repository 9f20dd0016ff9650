"""The benchmark config: a schema (OmegaConf structured config: types and keys checked by OmegaConf), the
shipped files configs/benchmark/<name>.yaml merged onto it, and `benchmark.key=value` items on top."""

from __future__ import annotations

import re

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from omegaconf import DictConfig, OmegaConf

from spikebench.configs import ALGORITHMS, CONFIG_DIR, ConfigError, did_you_mean, load_structured

BENCH_DIR = CONFIG_DIR / "benchmark"
ISOLATION = ("auto", "fork", "spawn", "none")
PHASES = ("tune", "tuned", "loso", "table", "scaling", "architecture")
SAMPLERS = ("tpe", "random")
PRUNERS = ("median", "hyperband", "none")


@dataclass
class Scaling:
    steps: List[int] = field(default_factory=lambda: [100, 200, 500, 1000])
    hidden: List[int] = field(default_factory=lambda: [64, 128, 256, 512, 1024])
    batch_size: Optional[int] = None
    repeats: int = 3
    input_rate_hz: float = 20.0


@dataclass
class Architecture:
    hidden: List[int] = field(default_factory=lambda: [64, 128, 256, 512, 1024])
    recurrent: List[bool] = field(default_factory=lambda: [False, True])
    seeds: List[int] = field(default_factory=lambda: [0])


@dataclass
class Tuning:
    """One Optuna study per algorithm, the same budget for each (phase `tune`); the best configuration retrained
    for `epochs` epochs with every seed of `seeds` (phase `tuned`)."""

    trials: int = 24                 # finished (complete + pruned) trials per study
    max_epochs: int = 12             # per trial
    sampler: str = "tpe"             # tpe (multivariate) | random
    n_startup_trials: int = 8        # tpe: random trials before the density model is used
    pruner: str = "median"           # median | hyperband | none, on each epoch's val/acc
    reduction_factor: int = 3        # hyperband: 1 in this many trials of a rung goes on to the next
    objective: str = "best"          # a trial's value: best | last epoch's val/acc (last: as test_checkpoint=last tests)
    enqueue: List[str] = field(default_factory=list)  # each study's first trials, "key=value …" (sweep.enqueue)
    trial_overrides: List[str] = field(default_factory=list)  # train.py overrides of the trials only (e.g. the
                                     # validation speakers: data.val.speakers=[4]), not of the retraining
    prune_startup_trials: int = 4    # median: prune nothing until this many trials have finished
    prune_warmup_epochs: int = 3     # never prune a trial in its first epochs
    fixed: List[str] = field(default_factory=lambda: ["model.hidden", "model.recurrent", "data.batch_size", "data.dt",
                                                      "algorithm.layers"])  # keys an algorithm lacks are skipped
    random_search: List[str] = field(default_factory=list)  # algorithms that also get a random-search study
    space_dir: Optional[str] = None  # search spaces <dir>/<algorithm>.yaml; null: sweeps/spaces
    storage: Optional[str] = None    # null: a journal file per study; or postgresql://user@host/db (shared)
    seed: int = 0                    # sampler seed
    epochs: int = 30                 # retraining of each best configuration


@dataclass
class Loso:
    """Phase `loso`: each tuned configuration retrained once per left-out speaker (`data.leave_out`) and seed, and
    tested on every recording of that speaker."""

    speakers: List[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])
    seeds: List[int] = field(default_factory=lambda: [0])


@dataclass
class BenchmarkConfig:
    name: str = "benchmark"
    out_dir: Optional[str] = None    # default: results/<name>
    overrides: List[str] = field(default_factory=list)  # train.py overrides of every cell
    algorithms: List[str] = field(default_factory=lambda: list(ALGORITHMS))  # default: every declared one
    algorithm_overrides: Dict[str, List[str]] = field(default_factory=dict)
    # named variants of an algorithm, usable in `algorithms` like an algorithm's name: label → train.py overrides,
    # one of them `algorithm=<declared name>` (e.g. {bptt_delays: [algorithm=bptt, model.delays.enabled=true]})
    variants: Dict[str, List[str]] = field(default_factory=dict)
    seeds: List[int] = field(default_factory=lambda: [0, 1, 2])
    neurobench_samples: Optional[int] = None
    isolate: str = "auto"
    workers: int = 1
    plots: bool = True
    phases: List[str] = field(default_factory=lambda: ["table", "scaling", "architecture"])
    only: Optional[List[str]] = None  # run only the cells with these names (shell patterns); reports gather all
    dry_run: bool = False  # list each chosen cell as done / changed (would be trained again) / to run; write nothing
    scaling: Scaling = field(default_factory=Scaling)
    architecture: Architecture = field(default_factory=Architecture)
    tuning: Tuning = field(default_factory=Tuning)
    loso: Loso = field(default_factory=Loso)


def split_args(argv: list[str]) -> tuple[str, list[str], list[str]]:
    """(benchmark choice, benchmark.* items, train.py overrides)."""
    choice, items, overrides = "fsdd", [], []
    for arg in argv:
        a = arg.lstrip("-")
        if a.startswith("benchmark="):
            choice = a.split("=", 1)[1]
        elif a.startswith("benchmark."):
            items.append(a)
        else:
            overrides.append(arg)
    return choice, items, overrides


def load_benchmark_config(choice: str, items: list[str] | None = None) -> DictConfig:
    """configs/benchmark/<choice>.yaml (or the YAML file `choice`) on the schema, with `benchmark.key=value` items."""
    path = Path(choice).expanduser() if choice.endswith((".yaml", ".yml")) else BENCH_DIR / f"{choice}.yaml"
    if not path.is_file():
        names = sorted(p.stem for p in BENCH_DIR.glob("*.yaml"))
        raise ConfigError(f"unknown benchmark '{choice}'; {did_you_mean(choice, names)}choose one of: "
                          f"{', '.join(names)} (or a .yaml path)")
    bcfg = load_structured(BenchmarkConfig, path, list(items or []), "benchmark.")
    check_benchmark_config(bcfg)
    return bcfg


def variant(b: DictConfig, name: str) -> tuple[str, list[str]]:
    """(the declared algorithm, the variant's other overrides) of a name of `benchmark.algorithms`."""
    items = [str(i) for i in (b.get("variants") or {}).get(name, [])]
    if not items:
        return name, []
    base = next(i.split("=", 1)[1] for i in items if i.startswith("algorithm="))
    return base, [i for i in items if not i.startswith("algorithm=")]


def check_benchmark_config(b: DictConfig) -> None:
    """One-line ValueErrors for values the schema's types cannot catch."""
    def choice(key: str, value: Any, options: tuple) -> None:
        if value not in options:
            raise ConfigError(f"benchmark.{key}={value}; choose one of: {', '.join(options)}")

    for label, items in (b.variants or {}).items():
        if label in ALGORITHMS or not re.fullmatch(r"[a-z0-9_]+", label):
            raise ConfigError(f"benchmark.variants: '{label}' must be a new name of lower-case letters, digits and _ "
                              "(not an algorithm's)")
        named = [str(i).split("=", 1)[1] for i in items or [] if str(i).startswith("algorithm=")]
        if len(named) != 1 or named[0] not in ALGORITHMS:
            raise ConfigError(f"benchmark.variants.{label}: needs exactly one algorithm=<name> among its overrides, "
                              f"the name one of: {', '.join(ALGORITHMS)}")
    names = [*ALGORITHMS, *(b.variants or {})]
    for key in ("algorithms", "tuning.random_search"):
        for a in OmegaConf.select(b, key):
            if a not in names:
                hint = did_you_mean(a, names)
                raise ConfigError(f"benchmark.{key}: unknown algorithm '{a}'; {hint}choose from: {', '.join(names)} "
                                  "(or declare it in benchmark.variants)")
    for key in ("seeds", "architecture.seeds", "loso.speakers", "loso.seeds"):
        if not OmegaConf.select(b, key):
            raise ConfigError(f"benchmark.{key} must be a non-empty list of integers")
    bad = [p for p in b.phases if p not in PHASES]
    if bad:
        raise ConfigError(f"benchmark.phases: unknown phase(s) {', '.join(map(str, bad))}; choose from: {', '.join(PHASES)}")
    choice("isolate", b.isolate, ISOLATION)
    choice("tuning.sampler", b.tuning.sampler, SAMPLERS)
    choice("tuning.pruner", b.tuning.pruner, PRUNERS)
    choice("tuning.objective", b.tuning.objective, ("best", "last"))
    if b.tuning.reduction_factor < 2:
        raise ConfigError(f"benchmark.tuning.reduction_factor={b.tuning.reduction_factor}: must be at least 2")
    if b.workers < 1:
        raise ConfigError(f"benchmark.workers={b.workers}: must be an integer >= 1")
    if b.workers > 1 and b.isolate == "none":
        raise ConfigError("benchmark.workers > 1 needs cells in child processes: set benchmark.isolate=auto")
    for key in ("scaling.steps", "scaling.hidden", "architecture.hidden"):
        sizes = OmegaConf.select(b, key)
        if not sizes or not all(s > 0 for s in sizes):
            raise ConfigError(f"benchmark.{key} must be a non-empty list of positive integers, got {list(sizes or [])}")
    positive = ("scaling.repeats", "tuning.trials", "tuning.max_epochs", "tuning.epochs")
    for key in positive:
        if OmegaConf.select(b, key) < 1:
            raise ConfigError(f"benchmark.{key}={OmegaConf.select(b, key)}: must be at least 1")
    t = b.tuning
    if t.sampler == "tpe" and not 0 <= t.n_startup_trials < t.trials:
        raise ConfigError(f"benchmark.tuning.n_startup_trials={t.n_startup_trials}: must be below tuning.trials={t.trials}, "
                         "or TPE never uses its model")
    if b.neurobench_samples is not None and b.neurobench_samples < 1:
        raise ConfigError(f"benchmark.neurobench_samples={b.neurobench_samples}: must be >= 1 or null (whole test set)")
    unknown = set(b.algorithm_overrides or {}) - set(ALGORITHMS)
    if unknown:
        raise ConfigError(f"benchmark.algorithm_overrides: unknown algorithm(s) {', '.join(sorted(unknown))}")
