"""Train one spiking network with one algorithm: compose the config, fit with validation, test the best.

    python train.py                                   # BPTT on the generated data set
    python train.py algorithm=eventprop data=shd data.root=~/data/shd model.hidden=512
    python train.py experiment=fsdd_bptt trainer.max_epochs=5 logger=wandb
    python train.py --model.hidden=128 --optim.lr=0.002  # the form W&B sweep agents pass

Programmatic use builds the same objects: `compose_config(overrides)`, then `run(cfg)`, or
`algorithms.build_module(cfg)` and `datamodules.build_datamodule(cfg)` yourself.
"""

from __future__ import annotations

import difflib
import os
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf

ROOT = Path(__file__).resolve().parent
CONFIG_DIR = ROOT / "configs"
GROUPS = ("algorithm", "data", "logger", "experiment")


class ConfigError(Exception):
    """A bad override: unknown key, unknown group choice, or a value of the wrong type."""


# ----------------------------------------------------------------------------------------------
# Composing the config
# ----------------------------------------------------------------------------------------------


def _choices(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


def _load_group(group: str, choice: str) -> DictConfig:
    path = CONFIG_DIR / group / f"{choice}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown {group} '{choice}'; choose one of: {', '.join(_choices(group))}")
    return OmegaConf.load(path)


def _parse_override(item: str) -> tuple[str, str]:
    arg = item[2:] if item.startswith("--") else item
    if "=" not in arg:
        raise ConfigError(f"override '{item}' is not of the form key=value")
    key, value = arg.split("=", 1)
    return key.strip(), value


def _check_type(key: str, old: Any, new: Any) -> Any:
    """The new value if it fits the type of the default, else a ConfigError naming the key."""
    if old is None or new is None:
        return new
    if isinstance(new, str) and isinstance(old, (int, float)) and not isinstance(old, bool):
        try:  # YAML 1.1 reads "2e-3" as a string
            new = float(new) if isinstance(old, float) or not new.lstrip("-").isdigit() else int(new)
        except ValueError:
            pass
    ok = {
        bool: lambda v: isinstance(v, bool),
        int: lambda v: isinstance(v, int) and not isinstance(v, bool),
        float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        str: lambda v: isinstance(v, (str, int, float)) and not isinstance(v, bool),
    }
    for typ, test in ok.items():
        if isinstance(old, typ):
            if not test(new):
                raise ConfigError(f"{key}={new!r}: expected {typ.__name__} (default {old!r})")
            return float(new) if typ is float else (str(new) if typ is str else new)
    if isinstance(old, (ListConfig, list)) and not isinstance(new, list):
        raise ConfigError(f"{key}={new!r}: expected a list like [a,b]")
    if isinstance(old, DictConfig) and not isinstance(new, dict):
        raise ConfigError(f"{key} is a section; set its keys ({', '.join(old.keys())})")
    return new


def _unknown_key(cfg: DictConfig, key: str) -> ConfigError:
    parent_key, _, leaf = key.rpartition(".")
    parent = OmegaConf.select(cfg, parent_key) if parent_key else cfg
    if not isinstance(parent, DictConfig):
        return ConfigError(f"unknown config key '{key}'")
    valid = [str(k) for k in parent.keys()]
    close = difflib.get_close_matches(leaf, valid, n=1)
    hint = f"did you mean '{(parent_key + '.' if parent_key else '') + close[0]}'? " if close else ""
    return ConfigError(f"unknown config key '{key}'; {hint}valid keys{' under ' + parent_key if parent_key else ''}: {', '.join(valid)}")


def _resolve_path(p: str) -> str:
    """Relative paths: from the working folder if they exist there, else from the suite's folder."""
    path = Path(p).expanduser()
    if path.is_absolute() or path.exists() or not (ROOT / path).exists():
        return str(path)
    return str(ROOT / path)


def compose_config(overrides: list[str] | None = None) -> DictConfig:
    """The resolved config for command-line style overrides (`group=choice`, `a.b=value`, `--a.b=value`).

    Order: configs/train.yaml → group files (experiment's own `defaults` first, then the command line's
    choices) → the experiment file → dotted overrides. Unknown keys and wrong types raise ConfigError.
    """
    pairs = [_parse_override(o) for o in overrides or []]
    base = OmegaConf.load(CONFIG_DIR / "train.yaml")
    choices = dict(base.pop("defaults"))
    cli_choices = {k.lstrip("+"): v for k, v in pairs if k.lstrip("+") in GROUPS}
    choices.update(cli_choices)
    experiment = None
    if choices.get("experiment") not in (None, "null", "none"):
        experiment = _load_group("experiment", choices["experiment"])
        choices.update({k: v for k, v in dict(experiment.pop("defaults", {})).items() if k not in cli_choices})
    cfg = base
    for group in ("algorithm", "data", "logger"):
        cfg = OmegaConf.merge(cfg, {group: _load_group(group, str(choices[group]))})
    if experiment is not None:
        cfg = OmegaConf.merge(cfg, experiment)
    cfg.experiment = choices.get("experiment")
    OmegaConf.set_struct(cfg, True)
    for key, raw in pairs:
        if key.lstrip("+") in GROUPS:
            continue
        value = yaml.safe_load(raw) if raw != "" else ""
        if key.startswith("+"):
            with_flag = key[1:]
            OmegaConf.set_struct(cfg, False)
            OmegaConf.update(cfg, with_flag, value, force_add=True)
            OmegaConf.set_struct(cfg, True)
            continue
        try:
            old = OmegaConf.select(cfg, key, throw_on_missing=False)
            exists = OmegaConf.select(cfg, key, default="__absent__", throw_on_missing=False) != "__absent__"
        except Exception:
            exists = False
        if not exists:
            raise _unknown_key(cfg, key)
        OmegaConf.update(cfg, key, _check_type(key, old, value), merge=False)
    missing = OmegaConf.missing_keys(cfg)
    if missing:
        raise ConfigError(f"config keys without a value: {', '.join(sorted(missing))}; set them on the command line")
    cfg.data.root = _resolve_path(cfg.data.root)
    return cfg


# ----------------------------------------------------------------------------------------------
# Running
# ----------------------------------------------------------------------------------------------


def make_logger(cfg: DictConfig, out: Path):
    """The experiment loggers: CSV always, W&B when `logger=wandb` (offline without an API key)."""
    from lightning.pytorch.loggers import CSVLogger

    loggers = [CSVLogger(save_dir=str(out), name="", version="")]
    if cfg.logger.name == "wandb":
        from lightning.pytorch.loggers import WandbLogger

        mode = cfg.logger.mode
        if mode == "auto":
            mode = "online" if wandb_api_key() else "offline"
        os.environ.setdefault("WANDB_SILENT", "true")
        loggers.append(
            WandbLogger(
                project=cfg.logger.project,
                entity=cfg.logger.entity,
                group=cfg.logger.group,
                tags=list(cfg.logger.tags),
                save_dir=str(out),
                mode=mode,
                config=OmegaConf.to_container(cfg, resolve=True),
            )
        )
    elif cfg.logger.name != "csv":
        raise ConfigError(f"unknown logger '{cfg.logger.name}'; choose one of: csv, wandb")
    return loggers


def wandb_api_key() -> str | None:
    """The W&B API key from WANDB_API_KEY or ~/.netrc (what `wandb login` writes), if any."""
    if os.environ.get("WANDB_API_KEY"):
        return os.environ["WANDB_API_KEY"]
    try:
        import netrc

        auth = netrc.netrc().authenticators("api.wandb.ai")
        return auth[2] if auth else None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return None


def output_dir(cfg: DictConfig) -> Path:
    if cfg.output_dir:
        return Path(cfg.output_dir).expanduser()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return ROOT / "runs" / f"{cfg.algorithm.name}-{cfg.data.name}-{stamp}"


def run(cfg: DictConfig, callbacks: list | None = None) -> dict[str, float]:
    """Fit with validation every epoch, test the best checkpoint (unless `test=false`); returns the final metrics.

    Writes into the output folder: config.yaml (resolved), metrics.csv, checkpoints/, results.yaml.
    """
    import lightning as L
    import torch
    from lightning.pytorch.callbacks import ModelCheckpoint

    from algorithms import build_module
    from datamodules import build_datamodule

    out = output_dir(cfg)
    out.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, out / "config.yaml", resolve=True)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    torch.set_float32_matmul_precision("high")
    torch.set_flush_denormal(bool(cfg.flush_denormal))
    dm = build_datamodule(cfg)
    module = build_module(cfg)
    ckpt = ModelCheckpoint(dirpath=out / "checkpoints", monitor="val/acc", mode="max", save_last=True, filename="best")
    t = cfg.trainer
    trainer = L.Trainer(
        default_root_dir=str(out),
        max_epochs=t.max_epochs,
        accelerator=t.accelerator,
        devices=t.devices,
        precision=t.precision,
        limit_train_batches=t.limit_train_batches,
        limit_val_batches=t.limit_val_batches,
        limit_test_batches=t.limit_test_batches,
        enable_progress_bar=t.progress_bar,
        deterministic=t.deterministic,
        logger=make_logger(cfg, out),
        callbacks=[ckpt, *(callbacks or [])],
        log_every_n_steps=10,
        num_sanity_val_steps=0,
        enable_model_summary=False,
    )
    trainer.fit(module, datamodule=dm, ckpt_path=cfg.ckpt_path)
    fit_metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("train/") and v.numel() == 1}
    best = ckpt.best_model_path or None
    results = {}
    if cfg.test:
        results = {k: float(v) for k, v in trainer.test(module, datamodule=dm, ckpt_path=best, verbose=False)[0].items()}
    results["best_val_acc"] = float(ckpt.best_model_score) if ckpt.best_model_score is not None else float("nan")
    results["epochs"] = trainer.current_epoch
    results.update(fit_metrics)
    (out / "results.yaml").write_text(yaml.safe_dump(results, sort_keys=True))
    results["output_dir"] = str(out)  # type: ignore[assignment]
    for lg in trainer.loggers:
        if type(lg).__name__ == "WandbLogger":
            lg.experiment.summary.update({k: v for k, v in results.items() if isinstance(v, float)})
            lg.experiment.finish()
    return results


def main(argv: list[str] | None = None) -> int:
    from datamodules import DataError

    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        print("groups:", "; ".join(f"{g}: {', '.join(_choices(g))}" for g in GROUPS))
        return 0
    try:
        cfg = compose_config(argv)
        results = run(cfg)
    except (ConfigError, DataError, ValueError, FloatingPointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    test = f"test accuracy {results['test/acc']:.4f}  " if "test/acc" in results else "not tested (test=false)  "
    print(f"{test}(best val {results['best_val_acc']:.4f})  -> {results['output_dir']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
