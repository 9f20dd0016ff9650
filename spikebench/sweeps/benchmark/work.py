"""Running one cell, in its child process: an accuracy run (train, test, NeuroBench metrics), one scaling
measurement, or one study (tuning.py). The result goes into the cell's done file (YAML)."""

from __future__ import annotations

import csv
import math
import os
import shutil
import socket
import sys
import time
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from lightning.pytorch.callbacks import Callback
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from spikebench.configs import compose_config, spec_of

from .cells import Cell, config_hash
from .tuning import run_tune


def read_curve(metrics_csv: Path) -> dict[str, list[float]]:
    """Per-epoch val/acc, train/epoch_s, train/samples_per_s from Lightning's metrics.csv."""
    keys = {"val/acc": "val_acc", "train/epoch_s": "epoch_s", "train/samples_per_s": "samples_per_s"}
    per_epoch: dict[int, dict[str, float]] = {}
    with open(metrics_csv, newline="") as f:
        for row in csv.DictReader(f):
            if not row.get("epoch"):
                continue
            e = int(float(row["epoch"]))
            for k, short in keys.items():
                if row.get(k):
                    per_epoch.setdefault(e, {})[short] = float(row[k])
    epochs = sorted(e for e in per_epoch if "epoch_s" in per_epoch[e])
    return {short: [per_epoch[e].get(short, float("nan")) for e in epochs] for short in keys.values()}


def test_set_frames(cfg: DictConfig, limit: int | None):
    """Test-set frames (batch, time, channels), at most `limit` samples (the test loader's fixed order)."""
    from spikebench.datamodules import build_datamodule

    dm = build_datamodule(cfg)
    dm.prepare_data()
    dm.setup("test")
    batches, n = [], 0
    for x, _ in dm.test_dataloader():
        if limit is not None and n >= limit:
            break
        x = x if limit is None else x[: limit - n]
        batches.append(x)
        n += x.shape[0]
    return batches


class EpochProgress(Callback):
    """One line per epoch in the cell's log (the parent relays it): val acc, seconds per epoch, the cell's ETA."""

    PREFIX = "  epoch "

    def on_train_epoch_start(self, trainer, module) -> None:
        if not hasattr(self, "t0"):
            self.t0, self.first = time.perf_counter(), trainer.current_epoch  # a resumed fit starts later

    def on_validation_end(self, trainer, module) -> None:
        # not on_validation_epoch_end: the callbacks' run before the module's, which logs this epoch's val/acc (the
        # line then showed the previous epoch's value, and nan after the first)
        if trainer.sanity_checking:
            return
        done, total = trainer.current_epoch + 1, trainer.max_epochs
        acc = float(trainer.callback_metrics.get("val/acc", float("nan")))
        meter = tqdm.format_meter(done - self.first, total - self.first, time.perf_counter() - self.t0, unit="epoch",
                                  bar_format="{rate_inv_fmt}, cell ETA {remaining}")
        print(f"{self.PREFIX}{done}/{total}: val acc {acc:.4f}, {meter}", flush=True)


def run_accuracy(cell: Cell, cell_dir: Path) -> dict[str, Any]:
    """Train (unless results.yaml of the same config exists), then NeuroBench's metrics of the best checkpoint."""
    import torch

    from spikebench import train
    from spikebench.algorithms import build_module
    from spikebench.algorithms.measure import peak_rss_bytes
    from spikebench.datamodules import data_shape
    from . import neurobench

    cfg = compose_config([*cell.overrides, f"output_dir={cell_dir}"])
    saved_cfg = cell_dir / "config.yaml"
    reuse = (
        (cell_dir / "results.yaml").is_file()
        and saved_cfg.is_file()
        and config_hash(OmegaConf.load(saved_cfg), {"nb": cell.info.get("neurobench_samples")}) == cell.config_hash
    )
    last_ckpt = cell_dir / "checkpoints" / "last.ckpt"
    resume = (  # a cell stopped mid-training (the session ended, the machine went down) goes on from its last epoch;
        # one whose training had finished is trained again (its test and figures are what was missing)
        not reuse and last_ckpt.is_file() and saved_cfg.is_file()
        and config_hash(OmegaConf.load(saved_cfg), {"nb": cell.info.get("neurobench_samples")}) == cell.config_hash
        and torch.load(last_ckpt, map_location="cpu", weights_only=False).get("epoch", 0) + 1 < int(cfg.trainer.max_epochs)
    )
    t0 = time.perf_counter()
    if reuse:
        results = yaml.safe_load((cell_dir / "results.yaml").read_text())
        wall = float("nan")
    else:
        if cell_dir.exists() and not resume:
            shutil.rmtree(cell_dir)
        if resume:
            cfg.ckpt_path = str(last_ckpt)
            print(f"resuming from {last_ckpt}", flush=True)
        c0 = time.process_time()
        results = train.run(cfg, callbacks=[EpochProgress()], command=["train.py", *cell.overrides, f"output_dir={cell_dir}"])
        wall = time.perf_counter() - t0 if not resume else float("nan")  # a resumed cell's own wall time is partial
        results["cpu_s"] = time.process_time() - c0 if not resume else float("nan")
    rss = float(peak_rss_bytes())  # the cell process's, imports and data included: not an algorithm figure
    curve = read_curve(cell_dir / "metrics.csv")
    module = build_module(cfg, data_shape(cfg))
    ckpt = cell_dir / "checkpoints" / ("best.ckpt" if cfg.test_checkpoint == "best" else "last.ckpt")
    if not ckpt.is_file():
        ckpt = cell_dir / "checkpoints" / "last.ckpt"
    module.load_state_dict(torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"])
    cuda = torch.cuda.is_available() and cfg.trainer.accelerator in ("auto", "gpu", "cuda")
    device = torch.device("cuda" if cuda else "cpu")
    module.to(device).eval()
    torch.manual_seed(int(cfg.seed))
    batches = [x.to(device) for x in test_set_frames(cfg, cell.info.get("neurobench_samples"))]
    nb = {**neurobench.static_metrics(module), **neurobench.workload_metrics(module, batches)}
    spiking = spec_of(cfg.algorithm.name).spiking  # the non-spiking reference reports activations, not spikes
    finite = [s for s in curve["epoch_s"] if math.isfinite(s)]
    row = {
        "test_acc": float(results["test/acc"]),
        "best_val_acc": float(results["best_val_acc"]),
        "last_val_acc": float(results.get("last_val_acc", float("nan"))),
        "train_acc": float(results.get("train/acc_epoch", float("nan"))),  # the last epoch's (underfitting shows here)
        "tested_checkpoint": str(results.get("tested_checkpoint", "best")),
        "epochs": int(results["epochs"]),
        "epoch_s": float(np.mean(finite)) if finite else float(results.get("train/epoch_s", float("nan"))),
        "samples_per_s": float(np.nanmean(curve["samples_per_s"])) if curve["samples_per_s"] else float("nan"),
        "train_wall_s": wall if math.isfinite(wall) else float(np.nansum(curve["epoch_s"])),
        "train_cpu_s": float(results.get("cpu_s", float("nan"))),
        "step_mem_bytes": float(results.get("train/step_mem_bytes", float("nan"))),  # the run's first step
        "batch_bytes": float(results.get("train/batch_bytes", float("nan"))),  # its batch, as received
        "saved_bytes": float(results.get("train/saved_bytes", float("nan"))),  # saved for backward (hooks)
        "process_peak_rss_bytes": rss if not reuse else float("nan"),
        "process_gpu_peak_bytes": float(results.get("train/gpu_peak_bytes", float("nan"))),
        "rate_hz": float(results.get("test/rate_hz", float("nan"))) if spiking else float("nan"),
        "heuristics": "; ".join(module.heuristics()) or "none",
        **nb,
    }
    return {"row": row, "curve": curve}


def run_scaling(cell: Cell, cell_dir: Path) -> dict[str, Any]:
    """Step time, step memory and the cross-checks of one training step at (steps, hidden) (algorithms/measure.py)."""
    import lightning as L
    import torch

    from spikebench.algorithms import build_module
    from spikebench.algorithms.measure import peak_rss_growth, step_time
    from spikebench.datamodules import data_shape
    from spikebench.events import EventBatch, batch_nbytes

    cfg = compose_config(cell.overrides)
    L.seed_everything(int(cfg.seed), verbose=False)
    torch.set_flush_denormal(bool(cfg.flush_denormal))
    cuda = torch.cuda.is_available() and cfg.trainer.accelerator in ("auto", "gpu", "cuda")
    device = torch.device("cuda" if cuda else "cpu")
    module = build_module(cfg, data_shape(cfg)).to(device).train()
    info = cell.info
    g = torch.Generator().manual_seed(int(cfg.seed))
    p = info["input_rate_hz"] * float(cfg.data.dt)
    x = (torch.rand(info["batch"], info["steps"], data_shape(cfg)["n_in"], generator=g) < p).float().to(device)
    y = torch.randint(int(cfg.data.n_classes), (info["batch"],), generator=g).to(device)
    as_received = EventBatch.from_frames if cfg.data.format == "events" else (lambda f: f)  # data.format
    x_full = as_received(x)

    def step(memory: bool = False, frames=x):
        for prm in module.parameters():
            prm.grad = None
        return module.measured_step(frames, y, memory=memory)

    step(frames=as_received(x[:, : min(10, info["steps"])].contiguous()))  # warm-up: libraries, thread pools, kernels
    x = x_full
    rss = peak_rss_growth(lambda: step(frames=x))  # the process's first full step: the cross-check (meaningful in a fresh process)
    out = step(memory=True, frames=x)
    timed = step_time(lambda: step(frames=x), threads=torch.get_num_threads(), runs=info["repeats"])
    row = {
        "step_s": timed.median_s,
        "samples_per_s": info["batch"] / timed.median_s,
        "step_mem_bytes": float(out.step_mem_bytes),
        "batch_bytes": float(batch_nbytes(x)),  # the batch as the algorithm receives it (data.format)
        "saved_bytes": float(out.saved_bytes),
        "step_rss_growth_bytes": float(rss) if not cuda else float("nan"),
    }
    return {"row": row}


def cell_entry(cell_dict: dict, cell_dir: str, log_path: str | None, done_path: str) -> None:
    """Child-process target: run the cell with its output in the log file, write cell.yaml (or exit 1)."""
    cell = Cell(**cell_dict)
    if log_path:
        log = open(log_path, "a", buffering=1)
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        sys.stdout = sys.stderr = log
    try:
        t0 = time.perf_counter()
        out = RUNNERS[cell.kind](cell, Path(cell_dir))
        out.update({"cell": asdict(cell), "cell_s": time.perf_counter() - t0, "host": socket.gethostname(), **git_commit(),
                    "finished": time.strftime("%Y-%m-%d %H:%M:%S")})
        Path(done_path).parent.mkdir(parents=True, exist_ok=True)
        Path(done_path).write_text(yaml.safe_dump(_plain(out), sort_keys=False))
    except BaseException:
        traceback.print_exc()
        sys.stdout.flush()
        if log_path:
            os._exit(1)
        raise


def _plain(obj: Any) -> Any:
    """YAML-safe: floats (nan kept as .nan), lists, dicts."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    return obj


RUNNERS = {"accuracy": run_accuracy, "scaling": run_scaling, "tune": run_tune}


def git_commit() -> dict[str, Any]:
    """The checkout's commit and whether it has uncommitted changes (the code a cell ran)."""
    import subprocess

    from spikebench.train import ROOT

    try:
        def git(*args: str) -> str:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()

        return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}
