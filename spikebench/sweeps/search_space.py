"""Search spaces: one YAML file per algorithm (sweeps/spaces/<algorithm>.yaml), keyed by train.py config keys.

    optim.lr:           {low: 3.0e-4, high: 1.0e-2, log: true}   # float, log-uniform
    data.augment.shift: {low: 0, high: 40, step: 10}             # int (both bounds are integers)
    model.hidden:       {choices: [64, 128, 256]}                # categorical
    model.tau_mem:      {low: 5.0e-3, high: 50.0e-3, log: true, grid: [10.0e-3, 20.0e-3]}

`type: float|int|categorical` may be given to override the inference. `grid:` lists the values that
`sweep.sampler=grid` tries; without it a grid uses `sweep.grid_points` values spread over the range (log-spaced
for log parameters). Values become train.py overrides (`key=value`) through `format_value`, the same text that
the best trial's ready-to-run command line shows.
"""

from __future__ import annotations

from spikebench.errors import ConfigError
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

from spikebench.configs import ALGORITHMS, spec_of

SPACES = Path(__file__).resolve().parent / "spaces"
WANDB = Path(__file__).resolve().parent / "wandb"  # the W&B sweep files, written from the spaces (wandb_sweep)
KINDS = ("float", "int", "categorical")


@dataclass(frozen=True)
class Param:
    """One dimension of the search: a config key and the values it may take."""

    key: str
    kind: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple = ()
    grid: tuple | None = None

    def suggest(self, trial) -> Any:
        """The value an Optuna trial proposes for this key."""
        if self.kind == "categorical":
            return trial.suggest_categorical(self.key, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.key, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.key, float(self.low), float(self.high), step=self.step, log=self.log)

    def grid_values(self, points: int) -> list:
        """The values a grid search tries: `grid:` if given, the choices, or `points` values over the range."""
        if self.grid is not None:
            return list(self.grid)
        if self.kind == "categorical":
            return list(self.choices)
        if points < 2:
            raise ConfigError(f"sweep.grid_points={points}: need at least 2 values per range")
        if self.log:
            ratio = (self.high / self.low) ** (1.0 / (points - 1))
            values = [self.low * ratio**i for i in range(points)]
        else:
            values = [self.low + (self.high - self.low) * i / (points - 1) for i in range(points)]
        if self.step:
            values = [self.low + round((v - self.low) / self.step) * self.step for v in values]
        if self.kind == "int":
            values = [int(round(v)) for v in values]
        else:
            values = [float(f"{v:.6g}") for v in values]
        return sorted(set(values))


def number(key: str, field: str, value: Any) -> float | int:
    """A bound as a number: YAML reads 1e-4 (no dot) as a string."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"search space entry {key}: {field}={value!r} is not a number") from None


def _param(key: str, spec: Any) -> Param:
    if not isinstance(spec, dict):
        raise ConfigError(f"search space entry {key}: expected a mapping like {{low: 1, high: 2}} or {{choices: [a, b]}}")
    unknown = set(spec) - {"type", "low", "high", "log", "step", "choices", "grid"}
    if unknown:
        raise ConfigError(f"search space entry {key}: unknown fields {sorted(unknown)}; valid: type, low, high, log, step, choices, grid")
    kind = spec.get("type")
    if kind is None:
        if "choices" in spec:
            kind = "categorical"
        elif all(isinstance(spec.get(b), int) and not isinstance(spec.get(b), bool) for b in ("low", "high")):
            kind = "int"
        else:
            kind = "float"
    if kind not in KINDS:
        raise ConfigError(f"search space entry {key}: type '{kind}'; choose one of: {', '.join(KINDS)}")
    grid = tuple(spec["grid"]) if spec.get("grid") is not None else None
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"search space entry {key}: categorical needs a non-empty `choices` list")
        return Param(key, kind, choices=tuple(choices), grid=grid)
    if "low" not in spec or "high" not in spec:
        raise ConfigError(f"search space entry {key}: a {kind} range needs `low` and `high`")
    low, high, log, step = number(key, "low", spec["low"]), number(key, "high", spec["high"]), bool(spec.get("log", False)), spec.get("step")
    if not low < high:
        raise ConfigError(f"search space entry {key}: low={low} must be below high={high}")
    if log and low <= 0:
        raise ConfigError(f"search space entry {key}: log: true needs low > 0 (got {low})")
    if log and step is not None:
        raise ConfigError(f"search space entry {key}: choose either log: true or a step, not both")
    return Param(key, kind, low, high, log, step, grid=grid)


def space_path(algorithm: str, path: str | None = None) -> Path:
    """The space file: `path` if given, else the one the algorithm's declaration names (configs/algorithms.py:
    sweeps/spaces/<algorithm>.yaml for the suite's own)."""
    if path:
        p = Path(path).expanduser()
        if not p.is_file():
            raise ConfigError(f"sweep.space={path}: no such file")
        return p
    return spec_of(algorithm).space_file


def load_space(path: str | Path) -> dict[str, Param]:
    """The parameters of a space file, in file order."""
    raw = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys to ranges")
    return {str(k): _param(str(k), v) for k, v in raw.items()}


def select(space: dict[str, Param], cfg: DictConfig, only: list[str] | None, fixed: set[str]) -> dict[str, Param]:
    """The parameters to search: those in `only` (all if None), minus the keys the user fixed on the command line.

    Every key must exist in the resolved config `cfg`; ValueError names the first that does not.
    """
    if only is not None:
        missing = [k for k in only if k not in space]
        if missing:
            raise ConfigError(f"sweep.params: {missing} not in the search space; choose from: {', '.join(space)}")
        space = {k: space[k] for k in only}
    for key in space:
        if OmegaConf.select(cfg, key, default="__absent__") == "__absent__":
            raise ConfigError(f"search space key '{key}' is not a config key of this run (algorithm={cfg.algorithm.name})")
    chosen = {k: p for k, p in space.items() if k not in fixed}
    if not chosen:
        raise ConfigError("nothing left to search: every key of the space is fixed on the command line or excluded")
    return chosen


def format_value(value: Any) -> str:
    """The override text for a value, read back to the same value by train.py (YAML)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        text = repr(value)
        if "e" in text and "." not in text.split("e")[0]:
            mantissa, exp = text.split("e")
            text = f"{mantissa}.0e{exp}"
        return text if math.isfinite(value) else str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(format_value(v) for v in value) + "]"
    return str(value)


def overrides(params: dict[str, Any]) -> list[str]:
    """`key=value` overrides for a trial's parameters."""
    return [f"{k}={format_value(v)}" for k, v in params.items()]


# ----------------------------------------------------------------------------------------------
# W&B sweep files (sweeps/wandb/<algorithm>.yaml): the same space for `wandb agent`
# ----------------------------------------------------------------------------------------------

WANDB_HEADER = """\
# W&B sweep over train.py for algorithm={name}: Bayesian optimisation of val/acc (logged every epoch) over the
# ranges of sweeps/spaces/{name}.yaml, with Hyperband early termination. From the repository root:
#   wandb sweep sweeps/wandb/{name}.yaml            # prints the sweep id
#   wandb agent <entity>/spikebench/<sweep id>     # on each machine; runs `python train.py key=value …`
# Edit the `value:` entries (data set, epochs) or add any other train.py key the same way.
# Written by `python -m spikebench.sweeps.search_space --write-wandb` from the search space; do not edit the ranges here.
name: {name}-shd
program: train.py
project: spikebench
method: bayes
metric:
  name: val/acc
  goal: maximize
early_terminate:
  type: hyperband
  min_iter: 3
command:
  - ${{env}}
  - ${{interpreter}}
  - ${{program}}
  - ${{args_no_hyphens}}
parameters:
  algorithm: {{value: {name}}}
  data: {{value: shd}}
  logger: {{value: wandb}}
  trainer.max_epochs: {{value: 30}}
  trainer.enable_progress_bar: {{value: false}}
"""


def wandb_parameter(p: Param) -> dict:
    """A space entry as a W&B sweep parameter (integer steps and categories as value lists)."""
    if p.kind == "categorical":
        return {"values": list(p.choices)}
    if p.step:
        return {"values": p.grid_values(int(round((p.high - p.low) / p.step)) + 1)}
    return {"distribution": "log_uniform_values" if p.log else "uniform", "min": p.low, "max": p.high}


def wandb_sweep(algorithm: str) -> str:
    """The text of the algorithm's W&B sweep file, from its declared search space."""
    lines = [WANDB_HEADER.format(name=algorithm).rstrip("\n")]
    for key, p in load_space(space_path(algorithm)).items():
        flow = yaml.safe_dump(wandb_parameter(p), default_flow_style=True, width=10**6, sort_keys=False).strip()
        lines.append(f"  {key}: {flow}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # python -m spikebench.sweeps.search_space --write-wandb
    import argparse

    ap = argparse.ArgumentParser(description="Write sweeps/wandb/<algorithm>.yaml for every declared algorithm.")
    ap.add_argument("--write-wandb", action="store_true", required=True)
    ap.parse_args()
    for name in ALGORITHMS:
        (WANDB / f"{name}.yaml").write_text(wandb_sweep(name))
        print(WANDB / f"{name}.yaml")
