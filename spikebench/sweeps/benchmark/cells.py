"""The benchmark's units of work (cells) and the plan: which cells the config asks for."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

from spikebench.configs import compose_config

from .config import variant



@dataclass
class Cell:
    """One unit of work: an accuracy run, one scaling measurement or one study; `overrides` compose its train
    config."""

    kind: str  # accuracy | scaling | tune
    name: str
    algorithm: str
    overrides: list[str]
    info: dict[str, Any] = field(default_factory=dict)
    config_hash: str = ""


@dataclass
class Plan:
    """The cells of each phase, and each algorithm's resolved train config at the shared setting."""

    table: list[Cell] = field(default_factory=list)
    scaling: list[Cell] = field(default_factory=list)
    arch: list[Cell] = field(default_factory=list)
    tune: list[Cell] = field(default_factory=list)
    tuned: list[Cell] = field(default_factory=list)
    loso: list[Cell] = field(default_factory=list)
    configs: dict[str, DictConfig] = field(default_factory=dict)


def comparable(cfg: DictConfig) -> dict:
    """The resolved config without where it is written (a cell resumed from its last checkpoint is the same cell)."""
    c = OmegaConf.to_container(cfg, resolve=True)
    c.pop("output_dir", None)
    c.pop("ckpt_path", None)
    c["trainer"].pop("enable_progress_bar", None)
    return c


def config_hash(cfg: DictConfig, extra: dict | None = None) -> str:
    """Hash of the resolved config without where it is written: a cell is the same cell iff this is equal."""
    text = yaml.safe_dump({"cfg": comparable(cfg), "extra": extra or {}}, sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


@functools.lru_cache(maxsize=None)  # composes two configs: once per cell and process, not at every report
def only_added_keys_differ(saved_file: str, mtime_ns: int, recorded_hash: str, overrides: tuple[str, ...],
                           neurobench_samples: Any) -> bool:
    """Whether a finished accuracy cell, whose recorded hash differs from today's, ran today's config but for keys
    that an update added since: each key that its saved config.yaml lacks must hold the value that the schema and
    the cell's config groups give it (not one set by its experiment or overrides), the behaviour the cell had
    before the key existed. Without this, every update that adds a config key would retrain every finished cell
    and replace its folder. (A change of code is not a change of config; each cell records its commit.)
    `mtime_ns` keys the cache: a rewritten config.yaml is read again."""
    saved = OmegaConf.load(saved_file)
    if recorded_hash != config_hash(saved, {"nb": neurobench_samples}):
        return False  # the saved file is not the config that the recorded hash was taken of
    groups = [o for o in overrides if o.split("=", 1)[0] in ("algorithm", "data", "logger")]
    now, base = comparable(compose_config(list(overrides))), comparable(compose_config(groups))

    def without_added(now: dict, then: dict, base: dict) -> dict | None:
        kept = {}
        for k, v in now.items():
            if k not in then:
                if k not in base or base[k] != v:
                    return None  # a new key set away from its default: another config
            elif isinstance(v, dict) and isinstance(then[k], dict):
                sub = without_added(v, then[k], base.get(k) if isinstance(base.get(k), dict) else {})
                if sub is None:
                    return None
                kept[k] = sub
            else:
                kept[k] = v
        return kept

    return without_added(now, comparable(saved), base) == comparable(saved)


def algorithm_overrides(b: DictConfig, user: list[str], algorithm: str) -> list[str]:
    """The train.py overrides every cell of `algorithm` (a declared name or a `benchmark.variants` label) starts
    from: the algorithm's own overrides, then the variant's."""
    base, extra = variant(b, algorithm)
    own = list((b.algorithm_overrides or {}).get(base, []) or [])
    return [*b.overrides, f"algorithm={base}", "logger=csv", *own, *extra, *user, "trainer.enable_progress_bar=false"]


def accuracy_cell(b: DictConfig, base: list[str], algorithm: str, hidden: int, recurrent: bool, seed: int,
                  prefix: str = "", extra: list[str] | None = None, info: dict | None = None) -> Cell:
    """Train, test the best checkpoint, NeuroBench metrics. `extra` overrides (a study's best parameters) come last."""
    kind = "rec" if recurrent else "ff"
    name = f"{prefix}{algorithm}-h{hidden}-{kind}-s{seed}"
    ov = [*base, f"model.hidden={hidden}", f"model.recurrent={str(recurrent).lower()}", *(extra or []), f"seed={seed}"]
    info = {"hidden": hidden, "recurrent": recurrent, "seed": seed, "neurobench_samples": b.neurobench_samples,
            "setting": "tuned" if prefix else "shared", **(info or {})}
    return Cell("accuracy", name, algorithm, ov, info, config_hash(compose_config(ov), {"nb": b.neurobench_samples}))


def plan(b: DictConfig, user: list[str], algorithms: list[str]) -> Plan:
    """The shared-setting cells (table, scaling, architecture); the study cells are added by tuning.tune_cells, and the
    retraining cells once the studies have finished."""
    table, scaling, arch, configs = [], [], [], {}
    for a in algorithms:
        configs[a] = compose_config(algorithm_overrides(b, user, a))
    for seed in b.seeds if "table" in b.phases else []:  # seed-major: the table fills evenly while it runs
        for a in algorithms:
            m = configs[a].model
            table.append(accuracy_cell(b, algorithm_overrides(b, user, a), a, int(m.hidden), bool(m.recurrent), seed))
    if "scaling" in b.phases:
        for a in algorithms:
            cfg = configs[a]
            steps0 = int(round(cfg.data.duration / cfg.data.dt))
            points = [(s, int(cfg.model.hidden)) for s in b.scaling.steps]
            points += [(steps0, h) for h in b.scaling.hidden if (steps0, h) not in points]
            for steps, hidden in points:
                scaling.append(scaling_cell(b, algorithm_overrides(b, user, a), a, steps, hidden, cfg))
    if "architecture" in b.phases:
        known = {c.name for c in table}
        for seed in b.architecture.seeds:
            for hidden in b.architecture.hidden:
                for recurrent in b.architecture.recurrent:
                    for a in algorithms:
                        c = accuracy_cell(b, algorithm_overrides(b, user, a), a, hidden, bool(recurrent), seed)
                        if c.name not in known:
                            arch.append(c)
                            known.add(c.name)
    return Plan(table, scaling, arch, configs=configs)


def scaling_cell(b: DictConfig, base: list[str], algorithm: str, steps: int, hidden: int, cfg: DictConfig) -> Cell:
    s = b.scaling
    batch = int(s.batch_size or cfg.data.batch_size)
    duration = round(steps * float(cfg.data.dt), 12)
    ov = [*base, f"model.hidden={hidden}", f"data.duration={duration}", f"data.batch_size={batch}", f"seed={b.seeds[0]}"]
    info = {
        "steps": steps, "hidden": hidden, "batch": batch, "repeats": int(s.repeats), "input_rate_hz": float(s.input_rate_hz),
        "table_steps": int(round(cfg.data.duration / cfg.data.dt)), "table_hidden": int(cfg.model.hidden),
    }
    return Cell("scaling", f"{algorithm}-T{steps}-h{hidden}", algorithm, ov, info, config_hash(compose_config(ov), info))


