"""The one config parser of the suite: `train.py`, the Optuna study and the benchmark compose their configs here.

Every config is a structured config (`configs.schema`, or a schema of its own such as the benchmark's) with a YAML
file's values merged onto it, then `key=value` items from the command line. Whatever is wrong (an unknown key or
group choice, a value of the wrong type or out of range, a Trainer argument that Lightning does not have) raises a
one-line `ConfigError` before anything is written.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import math
import re
import sys
import types
import typing
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from spikebench.errors import ConfigError, UserError  # noqa: F401 - re-exported

from .algorithms import ALGORITHMS, check_capabilities, resolve_input_format, spec_of
from .schema import TrainConfig

CONFIG_DIR = Path(__file__).resolve().parent
ROOT = CONFIG_DIR.parent
GROUPS = ("algorithm", "data", "logger", "experiment")
# Trainer arguments that train.run sets itself: the run folder, its loggers and its checkpoint callback, and
# use_distributed_sampler=False (the datamodule splits the data over processes itself: datamodules.spikes).
TRAINER_RESERVED = ("default_root_dir", "logger", "callbacks", "use_distributed_sampler")
LEGACY_TRAINER_KEYS = {"progress_bar": "enable_progress_bar"}  # saved configs of earlier versions → Trainer's names
# Trainer arguments that manual optimisation does not allow: (the value that is allowed, what to do instead)
MANUAL_OPTIMISATION_REFUSES = {
    "gradient_clip_val": (None, "training uses manual optimisation (each algorithm computes its own gradient); "
                                "clip with optim.grad_clip=<max norm> instead"),
    "gradient_clip_algorithm": (None, "training uses manual optimisation; optim.grad_clip clips the gradient's norm"),
    "accumulate_grad_batches": (1, "training uses manual optimisation; use a larger data.batch_size instead"),
}
PRECISIONS = ("32-true", "32", "64-true", "64")
TYPE_NAMES = {"Integer": "int", "Float": "float", "Boolean": "bool", "String": "str"}




def did_you_mean(word: str, valid: list[str], what: str = "") -> str:
    """'did you mean 'x'? ' when a valid word is close to `word`, else ''."""
    close = difflib.get_close_matches(word, valid, n=1)
    return f"did you mean '{what}{close[0]}'? " if close else ""


# ----------------------------------------------------------------------------------------------
# Items on the command line
# ----------------------------------------------------------------------------------------------


def parse_item(item: str) -> tuple[str, Any]:
    """`a.b=value`, `--a.b=value` or `+a.b=value` → ('a.b', the value read as YAML)."""
    arg = item[2:] if item.startswith("--") else item
    if "=" not in arg:
        raise ConfigError(f"override '{item}' is not of the form key=value")
    key, raw = arg.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw != "" else ""
    except yaml.YAMLError as err:
        if raw.lstrip().startswith(("[", "{")):  # a list or mapping the user meant, which YAML cannot read
            problem = getattr(err, "problem", None) or str(err).splitlines()[0]
            raise ConfigError(f"override '{item}': not a YAML list or mapping ({problem}); quote items that start "
                              f"with *, &, ! or contain ': ', e.g. {key}=['*bptt*']") from None
        value = raw
    return key.strip().lstrip("+"), value


def _unknown_key(cfg: DictConfig, key: str, prefix: str) -> ConfigError:
    parent_key, _, leaf = key.rpartition(".")
    try:
        parent = OmegaConf.select(cfg, parent_key) if parent_key else cfg
    except OmegaConfBaseException:
        parent = None
    if not isinstance(parent, DictConfig):
        return ConfigError(f"unknown config key '{prefix}{key}'")
    where = prefix + (parent_key + "." if parent_key else "")
    valid = [str(k) for k in parent.keys()]
    return ConfigError(f"unknown config key '{prefix}{key}'; {did_you_mean(leaf, valid, where)}"
                       f"valid keys{' under ' + where.rstrip('.') if where else ''}: {', '.join(valid)}")


def set_key(cfg: DictConfig, key: str, value: Any, prefix: str = "") -> None:
    """cfg[key] = value, the schema checking key and type. `prefix` names the config in messages ('sweep.')."""
    parent_key, _, _ = key.rpartition(".")
    parent = OmegaConf.select(cfg, parent_key, default=None) if parent_key else cfg
    free_keys = isinstance(parent, DictConfig) and OmegaConf.get_type(parent) is dict  # e.g. the trainer block
    if not free_keys and OmegaConf.select(cfg, key, default="__absent__", throw_on_missing=False) == "__absent__":
        raise _unknown_key(cfg, key, prefix)
    if isinstance(OmegaConf.select(cfg, key, default=None), bool) and not isinstance(value, bool):
        raise ConfigError(f"{prefix}{key}={value!r}: expected bool (true or false)")  # OmegaConf would read 3 as true
    try:
        OmegaConf.update(cfg, key, value, merge=False)
    except OmegaConfBaseException as err:
        msg = str(err).splitlines()[0]
        converted = re.search(r"could not be converted to (\w+)", msg)
        if converted:
            msg = f"expected {TYPE_NAMES.get(converted.group(1), converted.group(1))}"
        elif "is not a ListConfig" in msg:
            msg = f"expected a list, e.g. [{value}]"
        elif "is not a subclass of" in msg:
            msg = f"a section; set its keys ({', '.join(map(str, OmegaConf.select(cfg, key).keys()))})"
        raise ConfigError(f"{prefix}{key}={value!r}: {msg}") from None


def check_ranges(cfg: DictConfig, prefix: str = "") -> None:
    """The value ranges and choices of the schema's field metadata (`configs.schema.at_least`, `fraction`)."""
    schema = OmegaConf.get_type(cfg)
    if not dataclasses.is_dataclass(schema):
        return
    for f in dataclasses.fields(schema):
        if OmegaConf.is_missing(cfg, f.name):
            continue
        value = cfg[f.name]
        if isinstance(value, DictConfig):
            check_ranges(value, f"{prefix}{f.name}.")
            continue
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{prefix}{f.name}={value}: must be a finite number")
        meta = f.metadata
        if value is None or not meta or isinstance(value, bool):
            continue
        name = f"{prefix}{f.name}={value}"
        if "interval" in meta:  # [low, high], low < high (and > 0 for "positive")
            pair = list(value)
            if len(pair) != 2 or not all(math.isfinite(v) for v in pair) or not pair[0] <= pair[1] or (
                    meta["interval"] == "positive" and pair[0] <= 0):
                what = "positive " if meta["interval"] == "positive" else ""
                raise ConfigError(f"{prefix}{f.name}={pair}: must be [low, high], {what}finite numbers with low <= high")
            continue
        if "choices" in meta and value not in meta["choices"]:
            raise ConfigError(f"{name}: {did_you_mean(str(value), list(meta['choices']))}choose one of: "
                              f"{', '.join(meta['choices'])}")
        if "low" in meta and (value <= meta["low"] if meta.get("above") else value < meta["low"]):
            raise ConfigError(f"{name}: must be {'>' if meta['above'] else '>='} {meta['low']:g}")
        if "high" in meta and value > meta["high"]:
            raise ConfigError(f"{name}: must be <= {meta['high']:g}")


def check_trainer(trainer: DictConfig) -> None:
    """Every key of the trainer block is an argument of lightning.Trainer that train.run does not set itself and
    that manual optimisation (every algorithm's: the gradient is the algorithm's own) allows; its value's type is
    checked by constructing a Trainer with the block (it writes nothing), so that Lightning's refusals come here,
    as one line, before any run folder exists."""
    import lightning as L

    valid = [p for p in inspect.signature(L.Trainer.__init__).parameters if p not in ("self", *TRAINER_RESERVED)]
    hints = typing.get_type_hints(L.Trainer.__init__)
    for key in trainer:
        if key in TRAINER_RESERVED:
            raise ConfigError(f"trainer.{key} is set by train.py (the run folder, its loggers and checkpoints; "
                              "the data's split over processes)")
        if key not in valid:
            raise ConfigError(f"unknown config key 'trainer.{key}': not an argument of lightning.Trainer; "
                              f"{did_you_mean(str(key), valid, 'trainer.')}valid keys: {', '.join(valid)}")
        expected = hints.get(key)
        if expected is not None and not fits(trainer[key], expected):
            raise ConfigError(f"trainer.{key}={trainer[key]!r}: expected {type_name(expected)} (lightning.Trainer's "
                              f"annotation)")
        if key in MANUAL_OPTIMISATION_REFUSES and trainer[key] != MANUAL_OPTIMISATION_REFUSES[key][0]:
            raise ConfigError(f"trainer.{key}={trainer[key]}: {MANUAL_OPTIMISATION_REFUSES[key][1]}")
    precision = str(trainer.get("precision", "32-true"))
    if precision not in PRECISIONS:
        raise ConfigError(f"trainer.precision={precision}: choose one of {', '.join(PRECISIONS)} (mixed precision is not "
                          "supported: the algorithms compute their own gradients, without Lightning's loss scaling)")
    import logging
    import warnings

    quiet = [logging.getLogger(n) for n in ("lightning.pytorch", "lightning.fabric")]
    levels = [lg.level for lg in quiet]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for lg in quiet:  # the device summary and tips of a Trainer that never runs
            lg.setLevel(logging.WARNING)
        try:
            L.Trainer(logger=False, enable_checkpointing=False, **OmegaConf.to_container(trainer, resolve=True))
        except Exception as err:  # noqa: BLE001 - Lightning refuses values with AssertionError, TypeError, ValueError, its own
            line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ConfigError(f"the trainer block was refused by lightning.Trainer: {line}") from None
        finally:
            for lg, level in zip(quiet, levels):
                lg.setLevel(level)


def fits(value: Any, tp: Any) -> bool:
    """Whether a config value (YAML scalars, lists, dicts) fits a type annotation; classes a YAML value can never be
    (an Accelerator, a timedelta) are left to the Trainer's own checks."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(fits(value, a) for a in args)
    if origin is typing.Literal:
        return value in args
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is str:
        return isinstance(value, str)
    if tp is type(None):
        return value is None
    if origin in (list, tuple, typing.Sequence) or tp in (list, tuple):
        return isinstance(value, (list, tuple, ListConfig))
    if origin is dict or tp is dict:
        return isinstance(value, (dict, DictConfig))
    return not isinstance(value, (bool, int, float, str, type(None)))  # some other class: no YAML value is one


def type_name(tp: Any) -> str:
    names = []
    for a in typing.get_args(tp) if typing.get_origin(tp) in (typing.Union, types.UnionType) else (tp,):
        if a is type(None):
            names.append("null")
        elif typing.get_origin(a) is typing.Literal:
            names += [repr(v) for v in typing.get_args(a)]
        elif isinstance(a, type) and a.__module__ == "builtins":
            names.append(TYPE_NAMES.get(a.__name__.capitalize(), a.__name__))
    return " or ".join(dict.fromkeys(names)) or str(tp)


def load_structured(schema: type, path: Path, items: list[str], prefix: str) -> DictConfig:
    """The YAML file `path` on `schema`, then `<prefix>key=value` items; keys, types and ranges checked."""
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(schema), OmegaConf.load(path))
    except OmegaConfBaseException as err:
        raise ConfigError(f"{path}: {str(err).splitlines()[0]}") from None
    for item in items:
        key, value = parse_item(item)
        if not key.startswith(prefix):
            raise ConfigError(f"'{item}' is not of the form {prefix}key=value")
        set_key(cfg, key[len(prefix):], value, prefix)
    _check_complete(cfg, prefix)
    check_ranges(cfg, prefix)
    return cfg


def _check_complete(cfg: DictConfig, prefix: str = "") -> None:
    missing = OmegaConf.missing_keys(cfg)
    if missing:
        raise ConfigError(f"config keys without a value: {', '.join(prefix + k for k in sorted(missing))}; "
                          "set them on the command line")


# ----------------------------------------------------------------------------------------------
# train.py's config: configs/train.yaml and its groups
# ----------------------------------------------------------------------------------------------


def choices(group: str) -> list[str]:
    if group == "algorithm":  # the declared algorithms (configs/algorithms.py), each with its defaults file
        return list(ALGORITHMS)
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


def load_group(group: str, choice: str) -> DictConfig:
    if group == "algorithm":
        return OmegaConf.load(spec_of(choice).defaults_file)
    path = CONFIG_DIR / group / f"{choice}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown {group} '{choice}'; {did_you_mean(str(choice), choices(group))}"
                          f"choose one of: {', '.join(choices(group))}")
    return OmegaConf.load(path)


def resolve_path(p: str) -> str:
    """An absolute path. A relative one is read from the working folder if it exists there, else from the
    suite's folder (so that `data.root=../shared/data/fsdd-spikes` works from any folder of a checkout)."""
    path = Path(p).expanduser()
    if not path.is_absolute() and not path.exists() and (ROOT / path).exists():
        path = ROOT / path
    return str(path.resolve())


def compose_config(overrides: list[str] | None = None) -> DictConfig:
    """The resolved config for command-line style overrides (`group=choice`, `a.b=value`, `--a.b=value`).

    Order: configs/train.yaml → group files (experiment's own `defaults` first, then the command line's
    choices) → the experiment file → dotted overrides. An experiment's `algorithm:` block sets its own
    algorithm (the one its `defaults` name); with another algorithm chosen, the rest of the experiment applies
    and that block does not. Unknown keys, wrong types, values out of range and
    unknown Trainer arguments raise ConfigError.
    """
    pairs = [parse_item(o) for o in overrides or []]
    base = OmegaConf.load(CONFIG_DIR / "train.yaml")
    picked = {str(k): v for k, v in base.pop("defaults").items()}
    base_choice = picked["algorithm"]
    cli_choices = {k: v for k, v in pairs if k in GROUPS}
    picked.update(cli_choices)
    experiment = None
    if picked.get("experiment") not in (None, "null", "none"):
        experiment = load_group("experiment", str(picked["experiment"]))
        experiment_algorithm = dict(experiment.get("defaults", {})).get("algorithm", base_choice)
        picked.update({k: v for k, v in dict(experiment.pop("defaults", {})).items() if k not in cli_choices})
    spec = spec_of(str(picked["algorithm"]))
    cfg = OmegaConf.structured(TrainConfig)
    cfg.algorithm = OmegaConf.structured(spec.settings)
    layers = [("configs/train.yaml", base)]
    layers += [(f"configs/{g}/{picked[g]}.yaml", {g: load_group(g, str(picked[g]))}) for g in ("algorithm", "data", "logger")]
    if experiment is not None:
        own = experiment.pop("algorithm", None)  # settings of the experiment's own algorithm, not of another
        if own is not None and picked["algorithm"] == own.get("name", experiment_algorithm):
            experiment.algorithm = own
        layers.append((f"configs/experiment/{picked['experiment']}.yaml", experiment))
    for where, layer in layers:
        try:
            cfg = OmegaConf.merge(cfg, layer)
        except OmegaConfBaseException as err:
            raise ConfigError(f"{where}: {str(err).splitlines()[0]}") from None
    cfg.experiment = picked.get("experiment") if picked.get("experiment") not in ("null", "none") else None
    return finish(cfg, [(k, v) for k, v in pairs if k not in GROUPS])


def load_run_config(run_dir: str | Path, overrides: list[str] | None = None, only: tuple[str, ...] | None = None
                    ) -> DictConfig:
    """The config an earlier run saved (`<run_dir>/config.yaml`) on this version's schema, with dotted overrides on
    top; `only`: the key prefixes that may be overridden (None: any). Group choices cannot change."""
    folder = Path(run_dir).expanduser().resolve()
    saved = folder / "config.yaml"
    if not saved.is_file():
        raise ConfigError(f"{run_dir}: no config.yaml there; name a run folder (runs/<run>)")
    pairs = [parse_item(o) for o in overrides or []]
    groups = [k for k, _ in pairs if k in GROUPS]
    if groups:
        raise ConfigError(f"a saved run keeps its own {', '.join(groups)}; start a new run to change them")
    refused = [k for k, _ in pairs if only is not None and not k.startswith(only)]
    if refused:
        raise ConfigError(f"{', '.join(refused)} cannot change here; only {', '.join(p.rstrip('.') for p in only)}")
    try:
        old = OmegaConf.load(saved)
        old.pop("trial", None)  # a study's trial records its study, number and parameters there (sweeps/optimize.py)
        for before, now in LEGACY_TRAINER_KEYS.items():  # runs saved by earlier versions
            if before in old.get("trainer", {}):
                old.trainer[now] = old.trainer.pop(before)
        name, data = str(old.algorithm.name), str(old.get("data", {}).get("name", ""))
        if name not in ALGORITHMS:
            raise KeyError(f"algorithm {name}")
    except (OmegaConfBaseException, KeyError, AttributeError) as err:
        raise ConfigError(f"{saved} does not fit this version's schema ({str(err).splitlines()[0]})") from None
    # keys added to the suite since the run was saved take their defaults (of its algorithm and data set)
    cfg = compose_config([f"algorithm={name}", *([f"data={data}"] if data in choices("data") else [])])
    try:
        cfg = OmegaConf.merge(cfg, old)
    except OmegaConfBaseException as err:
        raise ConfigError(f"{saved} does not fit this version's schema ({str(err).splitlines()[0]})") from None
    return finish(cfg, pairs)


def finish(cfg: DictConfig, pairs: list[tuple[str, Any]]) -> DictConfig:
    """The dotted overrides applied, then every check of a train config; data.root made absolute."""
    for key, value in pairs:
        if key.startswith("trainer.") and key[len("trainer."):] in LEGACY_TRAINER_KEYS:  # commands of earlier versions
            now = f"trainer.{LEGACY_TRAINER_KEYS[key[len('trainer.'):]]}"
            print(f"note: {key} is now {now}", file=sys.stderr)
            key = now
        set_key(cfg, key, value)
    _check_complete(cfg)
    check_ranges(cfg)
    check_capabilities(cfg)
    resolve_input_format(cfg)
    check_trainer(cfg.trainer)
    cfg.data.root = resolve_path(cfg.data.root)
    return cfg


def compose_resumed(run_dir: str | Path, overrides: list[str] | None = None) -> DictConfig:
    """The config of an earlier run with dotted overrides on top (e.g. a larger `trainer.max_epochs`), writing into
    the same folder and continuing from its last checkpoint (`checkpoints/last.ckpt`, the last completed epoch;
    none: from the start)."""
    try:
        cfg = load_run_config(run_dir, overrides)
    except ConfigError as err:
        raise ConfigError(f"resume={err}") from None
    folder = Path(run_dir).expanduser().resolve()
    last = folder / "checkpoints" / "last.ckpt"
    cfg.output_dir = str(folder)
    cfg.ckpt_path = str(last) if last.is_file() else None
    return cfg
