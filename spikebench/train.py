"""Train one spiking network with one algorithm: compose the config, fit with validation, test the best.

    python train.py                                   # BPTT on the generated data set
    python train.py algorithm=eventprop data=shd data.root=~/data/shd model.hidden=512
    python train.py experiment=fsdd algorithm=eprop trainer.max_epochs=5 logger=wandb
    python train.py --model.hidden=128 --optim.lr=0.002  # the form W&B sweep agents pass
    python train.py resume=runs/<run>                 # continue an interrupted run in its own folder

Programmatic use builds the same objects: `compose_config(overrides)`, then `run(cfg)`, or
`algorithms.build_module(cfg, datamodules.data_shape(cfg))` and `datamodules.build_datamodule(cfg)` yourself.
"""

from __future__ import annotations

from spikebench.errors import UserError
import csv
import os
import re
import signal
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

from spikebench.configs import GROUPS, ConfigError, choices, compose_config, compose_resumed

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


def make_logger(cfg: DictConfig, out: Path, command: list[str] | None = None):
    """The experiment loggers: CSV always, W&B when `logger=wandb` (offline without an API key). `command`: the
    train.py command line of a run that a study or a benchmark starts in its own process, recorded in the W&B run's
    config in place of W&B's record of the process's command line (W&B reads `sys.argv`, with no setting to give it
    other arguments, and theirs may carry a database URL), which is then turned off."""
    from lightning.pytorch.loggers import CSVLogger

    loggers = [CSVLogger(save_dir=str(out), name="", version="")]
    mode = check_logger(cfg)
    if mode is not None:
        import wandb
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
                config={**OmegaConf.to_container(cfg, resolve=True), **({"command": command} if command else {})},
                **({"settings": wandb.Settings(x_disable_meta=True)} if command is not None else {}),
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


# The run folder of a multi-process run (trainer.devices=N), for the processes that Lightning's DDP launcher starts:
# it re-runs this process's command line in each, with this process's environment, the only channel it offers. The
# launched command's entry point (`main`) turns it into an explicit `output_dir=` override; nothing else reads it.
RUN_DIR_ENV = "SPIKEBENCH_RUN_DIR"


def output_dir(cfg: DictConfig) -> Path:
    """`output_dir`, or runs/<algorithm>-<data>-<date>-<time> in the working folder. The processes of one
    multi-process run share the folder: those that Lightning starts (trainer.devices=N) are given it (RUN_DIR_ENV);
    processes started by torchrun or srun need an explicit `output_dir`."""
    if cfg.output_dir:
        return Path(cfg.output_dir).expanduser()
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 or int(os.environ.get("SLURM_NTASKS", "1")) > 1:
        raise ConfigError("several processes were launched (WORLD_SIZE or SLURM_NTASKS > 1): give every one "
                          "the same output_dir=<folder>")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("runs").resolve() / f"{cfg.algorithm.name}-{cfg.data.name}-{stamp}"  # in the working folder


class Interrupted(Exception):
    """Training stopped by SIGTERM or SIGINT; the run folder keeps the last completed epoch's checkpoint."""

    def __init__(self, signum: int, out: Path) -> None:
        super().__init__(f"interrupted by {signal.Signals(signum).name}; resume with: python train.py resume={out}")
        self.signum = signum


def interruption_callback():
    """A Lightning callback that stops training at the end of the current batch once SIGTERM or SIGINT has
    arrived (a second SIGINT stops at once), raising `Interrupted`. Nothing of the unfinished epoch is saved:
    `checkpoints/last.ckpt` is the last completed epoch, and with `EpochSeed` a resumed run repeats the
    interrupted epoch exactly. (Lightning's own SIGTERM handler runs beside this one and may stop first, at an
    epoch's end; `run` turns its SIGTERMException into the same `Interrupted`.)"""
    from lightning.pytorch.callbacks import Callback

    class Interruption(Callback):
        def __init__(self) -> None:
            self.signum: int | None = None
            self.previous: dict[int, Any] = {}

        def _handler(self, signum, frame) -> None:
            if signum == signal.SIGINT and self.signum == signal.SIGINT:
                raise KeyboardInterrupt
            self.signum = signum

        def on_fit_start(self, trainer, module) -> None:
            for sig in (signal.SIGTERM, signal.SIGINT):
                self.previous[sig] = signal.signal(sig, self._handler)

        def on_fit_end(self, trainer, module) -> None:
            self.restore()

        def on_exception(self, trainer, module, exception) -> None:
            self.restore()

        def restore(self) -> None:
            for sig, handler in self.previous.items():
                signal.signal(sig, handler)
            self.previous = {}

        def on_train_batch_end(self, trainer, module, *args) -> None:
            stop = self.signum is not None
            if trainer.world_size > 1:  # every process stops at the same batch (training steps communicate)
                stop = trainer.strategy.reduce_boolean_decision(stop, all=False)
            if stop:
                raise Interrupted(self.signum or signal.SIGTERM, Path(trainer.default_root_dir))

        def on_validation_batch_end(self, trainer, module, *args) -> None:
            if self.signum is not None and trainer.world_size == 1:  # several: at the next training batch
                raise Interrupted(self.signum, Path(trainer.default_root_dir))

    return Interruption()


def epoch_seed_callback(seed: int):
    """Reseed torch, NumPy and Python at the start of every training epoch from (seed, epoch), so that what a
    model samples in an epoch (ParaLIF's stochastic spikes) does not depend on what ran before it; the data order
    and augmentations have their own per-epoch generators (datamodules.spikes.EpochShuffle). Together: a run
    resumed from the checkpoint of epoch k trains epoch k + 1 as the uninterrupted run did. On several processes
    the seed also depends on the rank (so that stochastic spikes are drawn independently per process)."""
    import random

    import numpy as np
    import torch
    from lightning.pytorch.callbacks import Callback

    from spikebench.datamodules.spikes import hash_seed

    class EpochSeed(Callback):
        def on_train_epoch_start(self, trainer, module) -> None:
            rank = [trainer.global_rank] if trainer.world_size > 1 else []
            s = hash_seed(int(seed), trainer.current_epoch, 3, *rank)  # streams 0–2 are the data's, see EpochShuffle
            torch.manual_seed(s)
            np.random.seed(s % 2**32)
            random.seed(s)

    return EpochSeed()


def keep_metrics_before(out: Path, last_epoch: int | None):
    """Resuming into a run folder: Lightning's CSV logger deletes metrics.csv when it starts, so the rows of the
    epochs up to the checkpoint's (`last_epoch`) are first saved to metrics.kept.csv, and the returned function puts
    them back in front of the resumed run's rows and removes that file (no-op when not resuming). The rows are kept
    on disk, not only in memory, because a run can end without the function being called (a killed process, a
    machine that stops): the next resume then finds metrics.kept.csv and takes its rows, and the killed run's rows
    after them, up to its own checkpoint's epoch."""

    metrics, kept = out / "metrics.csv", out / "metrics.kept.csv"
    if last_epoch is None:
        kept.unlink(missing_ok=True)  # a fresh fit in this folder: nothing to keep
        return lambda: None

    def rows(path: Path) -> list[dict]:  # Lightning numbers every row with its epoch
        if not path.is_file():
            return []
        with path.open(newline="") as f:
            return [r for r in csv.DictReader(f) if r.get("epoch", "") != ""]

    def write(path: Path, table: list[dict]) -> None:
        columns = list(dict.fromkeys(k for r in table for k in r))
        tmp = path.with_name(path.name + ".tmp")
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns, restval="")
            writer.writeheader()
            writer.writerows(table)
        tmp.replace(path)  # never half a file, whenever the process stops

    old = rows(kept)
    newest = max((int(r["epoch"]) for r in old), default=-1)
    old += [r for r in rows(metrics) if int(r["epoch"]) > newest]  # a killed resumed run's own rows
    old = [r for r in old if int(r["epoch"]) <= last_epoch]
    if not old:
        kept.unlink(missing_ok=True)
        return lambda: None
    write(kept, old)

    def merge() -> None:
        new = [r for r in rows(metrics) if int(r["epoch"]) > last_epoch]  # none if the fit stopped at once
        write(metrics, old + new)
        kept.unlink(missing_ok=True)

    return merge


def write_predictions(path: Path, rows: list, dm) -> None:
    """predictions.csv: each tested recording's index in the test set, speaker, label and predicted class (the rows
    that paired comparisons of two runs on the same recordings need). `rows`: the module's (label, predicted) pairs
    in the test loader's order."""
    import torch

    if not rows:
        return
    pairs = torch.cat(rows).numpy()
    data = dm.test_set.data
    order = dm.eval_order(len(data))[: len(pairs)]  # trainer.limit_test_batches may have cut the test short
    if (data.labels[order] != pairs[:, 0]).any():
        raise RuntimeError("the test predictions do not follow the test loader's order")  # a bug, not a user error
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["index", "speaker", "label", "predicted"])
        speakers = data.speakers if data.speakers is not None else [-1] * len(data)
        for i, (label, pred) in sorted(zip(order, pairs.tolist())):
            writer.writerow([i, int(speakers[i]), label, pred])


# What Lightning prints that says nothing to a user of this suite: its INFO lines (device summary, tips, the
# "limit_*_batches=1.0 was configured" lines, checkpoint restoring), the CSV logger's warning that the run folder
# (which train.run has just made and filled with config.yaml) is not empty, a deprecation warning raised by
# Lightning's own call into torch, and, on several processes, the advice to sync epoch figures that the module has
# already reduced itself (algorithms/base.py: _log_epoch).
QUIET_WARNINGS = ("exists and is not empty", "LeafSpec", "smaller than the logging interval",
                  "does not have many workers", "recommended to use `self.log(")


def quiet_lightning() -> None:
    """Lightning's INFO lines and the warnings of QUIET_WARNINGS off for this process (its warnings stay)."""
    import logging
    import warnings

    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for message in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=f".*{re.escape(message)}.*")


def run(cfg: DictConfig, callbacks: list | None = None, command: list[str] | None = None) -> dict[str, float]:
    """Fit with validation every epoch, test the best checkpoint (unless `test=false`); returns the final metrics.
    `command`: the train.py command line of this run when a study or a benchmark starts it (see make_logger).

    Everything that can fail on the config (the module and datamodule are built, which checks every named
    choice; the logger; the checkpoint to resume) is checked before the output folder is made. The folder
    then receives config.yaml (resolved), metrics.csv, checkpoints/, results.yaml, confusion.csv (the test
    set's confusion matrix: rows the true class, columns the predicted one) and, with `plots=true`, curves.png,
    confusion.png and samples.png (evaluate.plot_run). The `trainer:` block is
    passed whole to lightning.Trainer.
    """
    import lightning as L
    import torch
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.utilities.exceptions import SIGTERMException
    from lightning.pytorch.utilities import rank_zero_only

    from spikebench.algorithms import build_module
    from spikebench.algorithms.checkpoint import check_checkpoint
    from spikebench.datamodules import build_datamodule, data_shape

    quiet_lightning()
    check_logger(cfg)
    if str(cfg.trainer.get("accelerator", "auto")) in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ConfigError(f"trainer.accelerator={cfg.trainer.accelerator} but no CUDA GPU is visible here; "
                          "use trainer.accelerator=auto (or cpu)")
    ckpt_epoch = None
    if cfg.ckpt_path is not None:
        ckpt_epoch = check_checkpoint(cfg, Path(cfg.ckpt_path).expanduser(), data_shape(cfg))  # algorithms.checkpoint
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    torch.set_float32_matmul_precision("high")
    torch.set_flush_denormal(bool(cfg.flush_denormal))
    dm = build_datamodule(cfg)
    dm.prepare_data()  # every data file found (or generated, or downloaded) and read before the run folder exists
    dm.setup("fit")
    if cfg.test:
        dm.setup("test")
    module = build_module(cfg, {**data_shape(cfg), "class_names": dm.class_names})  # names: for predict.py
    out = output_dir(cfg)
    first = rank_zero_only.rank == 0  # the process that writes the run's files (of several: rank 0)
    out.mkdir(parents=True, exist_ok=True)
    if first:
        OmegaConf.save(cfg, out / "config.yaml", resolve=True)
    # best.ckpt: the best validation accuracy so far. last.ckpt: every completed epoch, by a second callback,
    # because ModelCheckpoint(save_last=True) writes last.ckpt only when the monitored metric improved (Lightning
    # >= 2.6), which would make a resumed run repeat epochs that it had already trained.
    ckpt = ModelCheckpoint(dirpath=out / "checkpoints", monitor="val/acc", mode="max", filename="best")
    last = ModelCheckpoint(dirpath=out / "checkpoints", filename="last", save_top_k=1, enable_version_counter=False)
    callbacks = [ckpt, last, epoch_seed_callback(cfg.seed), interruption_callback(), *(callbacks or [])]
    trainer = L.Trainer(default_root_dir=str(out), logger=make_logger(cfg, out, command), callbacks=callbacks,
                        use_distributed_sampler=False, **OmegaConf.to_container(cfg.trainer, resolve=True))
    merge_metrics = keep_metrics_before(out, ckpt_epoch) if first else (lambda: None)  # rank 0 writes the files
    launched = os.environ.get(RUN_DIR_ENV)
    os.environ[RUN_DIR_ENV] = str(out)  # for the processes that trainer.devices=N starts (see RUN_DIR_ENV)
    try:
        trainer.fit(module, datamodule=dm, ckpt_path=cfg.ckpt_path)
    except SIGTERMException as stop:  # Lightning's own SIGTERM handler runs beside ours, and its check at an epoch's
        raise Interrupted(signal.SIGTERM, out) from stop  # end can come first: a SystemExit whose status would be 0
    finally:
        merge_metrics()
        if launched is None:
            os.environ.pop(RUN_DIR_ENV, None)
    fit_metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("train/") and v.numel() == 1}
    last_val_acc = float(trainer.callback_metrics.get("val/acc", float("nan")))  # before trainer.test resets them
    tested = (ckpt.best_model_path if cfg.test_checkpoint == "best" else last.best_model_path) or None
    results = {}
    if cfg.test:
        results = {k: float(v) for k, v in trainer.test(module, datamodule=dm, ckpt_path=tested, verbose=False)[0].items()}
        confusion = getattr(module, "confusion", None)
        if confusion is not None and first:  # rows: true class, columns: predicted class, on the test set
            lines = [",".join(str(int(v)) for v in row) for row in confusion.tolist()]
            (out / "confusion.csv").write_text("\n".join(lines) + "\n")
        if first and trainer.world_size == 1:
            write_predictions(out / "predictions.csv", module.test_predictions, dm)
    if cfg.plots and first:  # curves.png, confusion.png, samples.png (and W&B images)
        from spikebench.evaluate import plot_run

        plot_run(out, module, dm, trainer.loggers)
    results["best_val_acc"] = float(ckpt.best_model_score) if ckpt.best_model_score is not None else float("nan")
    results["last_val_acc"] = last_val_acc
    results["tested_checkpoint"] = cfg.test_checkpoint if cfg.test else "none"  # type: ignore[assignment]
    results["epochs"] = trainer.current_epoch
    results.update(fit_metrics)
    if first:
        (out / "results.yaml").write_text(yaml.safe_dump(results, sort_keys=True))
    results["output_dir"] = str(out)  # type: ignore[assignment]
    for lg in trainer.loggers:
        if type(lg).__name__ == "WandbLogger":
            lg.experiment.summary.update({k: v for k, v in results.items() if isinstance(v, float)})
            lg.experiment.finish()
    return results


def main(argv: list[str] | None = None) -> int:

    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        print("groups:", "; ".join(f"{g}: {', '.join(choices(g))}" for g in GROUPS))
        return 0
    resume = [a for a in argv if a.lstrip("-").startswith("resume=")]
    if os.environ.get(RUN_DIR_ENV) and not resume:  # a process that Lightning's DDP launcher started: its run's folder
        argv = [*argv, f"output_dir={os.environ[RUN_DIR_ENV]}"]
    try:
        if len(resume) > 1:
            raise ConfigError("give resume= once")
        if resume:
            rest = [a for a in argv if a not in resume]
            cfg = compose_resumed(resume[0].lstrip("-").split("=", 1)[1], rest)
        else:
            cfg = compose_config(argv)
        results = run(cfg)
    except (UserError, FloatingPointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except Interrupted as stop:
        from lightning.pytorch.utilities import rank_zero_only

        if rank_zero_only.rank == 0:  # one line per run, not per process
            print(f"stopped: {stop}", file=sys.stderr)
        return 128 + stop.signum
    from lightning.pytorch.utilities import rank_zero_only

    if rank_zero_only.rank != 0:  # one line per run, not per process
        return 0
    test = f"test accuracy {results['test/acc']:.4f}  " if "test/acc" in results else "not tested (test=false)  "
    print(f"{test}(best val {results['best_val_acc']:.4f})  -> {results['output_dir']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
