"""Train one spiking network with one algorithm: compose the config, fit with validation, test the best.

    python train.py                                   # BPTT on the generated data set
    python train.py algorithm=eventprop data=shd data.root=~/data/shd model.hidden=512
    python train.py experiment=fsdd_bptt trainer.max_epochs=5 logger=wandb
    python train.py --model.hidden=128 --optim.lr=0.002  # the form W&B sweep agents pass

Programmatic use builds the same objects: `compose_config(overrides)`, then `run(cfg)`, or
`algorithms.build_module(cfg)` and `datamodules.build_datamodule(cfg)` yourself.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import yaml
from omegaconf import DictConfig, OmegaConf

from configs import GROUPS, ConfigError, choices, compose_config

ROOT = Path(__file__).resolve().parent
__all__ = ["ConfigError", "compose_config", "run", "main"]


# ----------------------------------------------------------------------------------------------
# Running
# ----------------------------------------------------------------------------------------------


LOGGERS = ("csv", "wandb")
WANDB_MODES = ("auto", "online", "offline", "disabled")


def check_logger(cfg: DictConfig) -> str | None:
    """The W&B mode the run will use (None for CSV only); ConfigError for a logger that cannot start."""
    if cfg.logger.name not in LOGGERS:
        raise ConfigError(f"unknown logger '{cfg.logger.name}'; choose one of: {', '.join(LOGGERS)}")
    if cfg.logger.name != "wandb":
        return None
    mode = cfg.logger.mode
    if mode not in WANDB_MODES:
        raise ConfigError(f"logger.mode={mode}: choose one of: {', '.join(WANDB_MODES)}")
    if mode == "auto":
        mode = "online" if wandb_api_key() else "offline"
    if mode == "online" and not wandb_api_key():
        raise ConfigError("logger.mode=online needs a W&B API key (WANDB_API_KEY or `wandb login`); "
                          "or use logger.mode=offline and `wandb sync` later")
    return mode


def make_logger(cfg: DictConfig, out: Path):
    """The experiment loggers: CSV always, W&B when `logger=wandb` (offline without an API key)."""
    from lightning.pytorch.loggers import CSVLogger

    loggers = [CSVLogger(save_dir=str(out), name="", version="")]
    mode = check_logger(cfg)
    if mode is not None:
        from lightning.pytorch.loggers import WandbLogger

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

    Everything that can fail on the config (the module and datamodule are built, which checks every named
    choice; the logger; the checkpoint to resume) is checked before the output folder is made. The folder
    then receives config.yaml (resolved), metrics.csv, checkpoints/, results.yaml and confusion.csv (the test
    set's confusion matrix: rows the true class, columns the predicted one). The `trainer:` block is
    passed whole to lightning.Trainer.
    """
    import lightning as L
    import torch
    from lightning.pytorch.callbacks import ModelCheckpoint

    from algorithms import build_module
    from datamodules import build_datamodule

    if cfg.ckpt_path is not None and not Path(cfg.ckpt_path).expanduser().is_file():
        raise ConfigError(f"ckpt_path={cfg.ckpt_path}: no such checkpoint file")
    check_logger(cfg)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    torch.set_float32_matmul_precision("high")
    torch.set_flush_denormal(bool(cfg.flush_denormal))
    dm = build_datamodule(cfg)
    module = build_module(cfg)
    out = output_dir(cfg)
    out.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, out / "config.yaml", resolve=True)
    ckpt = ModelCheckpoint(dirpath=out / "checkpoints", monitor="val/acc", mode="max", save_last=True, filename="best")
    trainer = L.Trainer(default_root_dir=str(out), logger=make_logger(cfg, out), callbacks=[ckpt, *(callbacks or [])],
                        **OmegaConf.to_container(cfg.trainer, resolve=True))
    trainer.fit(module, datamodule=dm, ckpt_path=cfg.ckpt_path)
    fit_metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("train/") and v.numel() == 1}
    best = ckpt.best_model_path or None
    results = {}
    if cfg.test:
        results = {k: float(v) for k, v in trainer.test(module, datamodule=dm, ckpt_path=best, verbose=False)[0].items()}
        confusion = getattr(module, "confusion", None)
        if confusion is not None:  # rows: true class, columns: predicted class, on the test set
            lines = [",".join(str(int(v)) for v in row) for row in confusion.tolist()]
            (out / "confusion.csv").write_text("\n".join(lines) + "\n")
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
        print("groups:", "; ".join(f"{g}: {', '.join(choices(g))}" for g in GROUPS))
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
