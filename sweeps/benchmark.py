"""Which training algorithm wins, at what cost: every algorithm under the same data, network, budget and seeds.

    python -m sweeps.benchmark benchmark=fsdd                       # the FSDD table on this machine
    python -m sweeps.benchmark benchmark=fsdd benchmark.phases=[table,scaling] benchmark.seeds=[0,1,2,3,4]
    python -m sweeps.benchmark benchmark=shd data.root=~/data/shd   # SHD, the published EventProp settings
    python -m sweeps.benchmark benchmark=tiny                       # a minute: checks the machinery

`benchmark=<name>` picks configs/benchmark/<name>.yaml (or a YAML path); `benchmark.<key>=value` changes one of
its keys; every other argument is a train.py override applied to every cell after the benchmark's own
`overrides` (`trainer.max_epochs=5`, `data.root=…`). The benchmark consists of cells (`benchmark.phases`):

  table         train.run (fit with validation, test the best checkpoint) of each algorithm at the experiment's
                network for each seed; then NeuroBench's metrics (sweeps/neurobench.py) of the best checkpoint
                on the test set. Folder results/<name>/cells/<algorithm>-h<hidden>-<ff|rec>-s<seed>/.
  scaling       one training step (the algorithm's `forward_backward`, gradients included) on random input
                spikes at each number of time steps (hidden size fixed) and at each hidden size (steps fixed):
                median wall seconds (measure.step_time), step memory (measure.step_memory), and as cross-checks
                the peak RSS growth of the cell process's first full-length step and the bytes saved for backward.
  architecture  the table's accuracy cell over hidden sizes × feed-forward / recurrent (cells that coincide
                with the table's are shared).

Each cell runs in its own child process (`benchmark.isolate`: spawn by default — a forked child of a parent
whose OpenMP pool has started threads can deadlock —, fork on request, none = in this process), so that process-level figures are the cell's own and a crash or out-of-memory kill loses only
that cell;
the parent prints each cell, each epoch's validation accuracy and an ETA. A cell whose cell.yaml holds the same
resolved config is skipped: rerunning the command resumes (a cell whose training finished but whose metrics
did not is not retrained). Every cell is seeded (`seed`, through L.seed_everything in train.run): on CPU the
same command reproduces the accuracy figures exactly.

Output in results/<name>/: table.md and table.png, results.csv (one row per table cell), scaling.csv,
architecture.md, architecture.csv, accuracy_vs_time.png, scaling_steps.png, scaling_hidden.png, architecture.png,
environment.yaml (command, commit, versions, device, load), benchmark.yaml (the resolved benchmark config),
configs/<algorithm>.yaml (each algorithm's resolved train config), logs/<cell>.log.
"""

from __future__ import annotations

import csv
import hashlib
import math
import multiprocessing as mp
import os
import platform
import shutil
import subprocess
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from lightning.pytorch.callbacks import Callback
from omegaconf import DictConfig, OmegaConf

from train import ROOT, ConfigError, _check_type, compose_config

BENCH_DIR = ROOT / "configs" / "benchmark"
ISOLATION = ("auto", "fork", "spawn", "none")
PHASES = ("table", "scaling", "architecture")
CELL_FILE = "cell.yaml"


# ----------------------------------------------------------------------------------------------
# The benchmark config
# ----------------------------------------------------------------------------------------------


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
    """configs/benchmark/<choice>.yaml (or the YAML file `choice`) with `benchmark.key=value` items applied."""
    path = Path(choice).expanduser() if choice.endswith((".yaml", ".yml")) else BENCH_DIR / f"{choice}.yaml"
    if not path.is_file():
        names = ", ".join(sorted(p.stem for p in BENCH_DIR.glob("*.yaml")))
        raise ValueError(f"unknown benchmark '{choice}'; choose one of: {names} (or a .yaml path)")
    bcfg = OmegaConf.load(path)
    OmegaConf.set_struct(bcfg, True)
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"'{item}' is not of the form benchmark.key=value")
        key, raw = item[len("benchmark.") :].split("=", 1)
        missing = "__absent__"
        old = OmegaConf.select(bcfg, key, default=missing)
        if old == missing:
            raise ValueError(f"unknown key 'benchmark.{key}'; valid keys: {', '.join(_leaf_keys(bcfg))}")
        try:
            value = _check_type(f"benchmark.{key}", old, yaml.safe_load(raw) if raw else None)
        except ConfigError as err:
            raise ValueError(str(err)) from None
        OmegaConf.update(bcfg, key, value, merge=False)
    check_benchmark_config(bcfg)
    return bcfg


def _leaf_keys(cfg: DictConfig, prefix: str = "benchmark.") -> list[str]:
    keys = []
    for k, v in cfg.items():
        keys += _leaf_keys(v, f"{prefix}{k}.") if isinstance(v, DictConfig) else [f"{prefix}{k}"]
    return keys


def check_benchmark_config(b: DictConfig) -> None:
    """One-line ValueErrors for bad values."""
    from algorithms import REGISTRY

    for a in b.algorithms:
        if a not in REGISTRY:
            raise ValueError(f"benchmark.algorithms: unknown algorithm '{a}'; choose from: {', '.join(sorted(REGISTRY))}")
    for key in ("seeds", "architecture.seeds"):
        seeds = OmegaConf.select(b, key)
        if not seeds or not all(isinstance(s, int) for s in seeds):
            raise ValueError(f"benchmark.{key} must be a non-empty list of integers, got {seeds}")
    bad = [p for p in b.phases if p not in PHASES]
    if bad:
        raise ValueError(f"benchmark.phases: unknown phase(s) {', '.join(map(str, bad))}; choose from: {', '.join(PHASES)}")
    if b.isolate not in ISOLATION:
        raise ValueError(f"benchmark.isolate={b.isolate}; choose one of: {', '.join(ISOLATION)}")
    if not (isinstance(b.get("workers", 1), int) and b.get("workers", 1) >= 1):
        raise ValueError(f"benchmark.workers={b.get('workers')}: must be an integer >= 1")
    if b.get("workers", 1) > 1 and b.isolate == "none":
        raise ValueError("benchmark.workers > 1 needs cells in child processes: set benchmark.isolate=auto")
    for key in ("scaling.steps", "scaling.hidden", "architecture.hidden"):
        sizes = OmegaConf.select(b, key)
        if not sizes or not all(isinstance(s, int) and s > 0 for s in sizes):
            raise ValueError(f"benchmark.{key} must be a non-empty list of positive integers, got {sizes}")
    if b.scaling.repeats < 1:
        raise ValueError(f"benchmark.scaling.repeats={b.scaling.repeats}: must be at least 1")
    if b.neurobench_samples is not None and b.neurobench_samples < 1:
        raise ValueError(f"benchmark.neurobench_samples={b.neurobench_samples}: must be >= 1 or null (whole test set)")
    unknown = set(b.algorithm_overrides or {}) - set(REGISTRY)
    if unknown:
        raise ValueError(f"benchmark.algorithm_overrides: unknown algorithm(s) {', '.join(sorted(unknown))}")


# ----------------------------------------------------------------------------------------------
# Cells
# ----------------------------------------------------------------------------------------------


@dataclass
class Cell:
    """One unit of work: an accuracy run or one scaling measurement; `overrides` compose its train config."""

    kind: str  # accuracy | scaling
    name: str
    algorithm: str
    overrides: list[str]
    info: dict[str, Any] = field(default_factory=dict)
    config_hash: str = ""


def config_hash(cfg: DictConfig, extra: dict | None = None) -> str:
    """Hash of the resolved config without where it is written: a cell is the same cell iff this is equal."""
    c = OmegaConf.to_container(cfg, resolve=True)
    c.pop("output_dir", None)
    c["trainer"].pop("progress_bar", None)
    text = yaml.safe_dump({"cfg": c, "extra": extra or {}}, sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def algorithm_overrides(b: DictConfig, user: list[str], algorithm: str) -> list[str]:
    """The train.py overrides every cell of `algorithm` starts from."""
    own = list((b.algorithm_overrides or {}).get(algorithm, []) or [])
    return [*b.overrides, f"algorithm={algorithm}", "logger=csv", *own, *user, "trainer.progress_bar=false"]


def accuracy_cell(b: DictConfig, base: list[str], algorithm: str, hidden: int, recurrent: bool, seed: int) -> Cell:
    kind = "rec" if recurrent else "ff"
    name = f"{algorithm}-h{hidden}-{kind}-s{seed}"
    ov = [*base, f"model.hidden={hidden}", f"model.recurrent={str(recurrent).lower()}", f"seed={seed}"]
    info = {"hidden": hidden, "recurrent": recurrent, "seed": seed, "neurobench_samples": b.neurobench_samples}
    return Cell("accuracy", name, algorithm, ov, info, config_hash(compose_config(ov), {"nb": b.neurobench_samples}))


def plan(
    b: DictConfig, user: list[str], algorithms: list[str]
) -> tuple[list[Cell], list[Cell], list[Cell], dict[str, DictConfig]]:
    """(table cells, scaling cells, architecture cells, each algorithm's resolved table config)."""
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
    return table, scaling, arch, configs


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


# ----------------------------------------------------------------------------------------------
# Running one cell (in its child process)
# ----------------------------------------------------------------------------------------------


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
    """Test-set frames (batch, time, channels), at most `limit` samples (the loader's order: not shuffled)."""
    from datamodules import build_datamodule

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
            self.t0 = time.perf_counter()

    def on_validation_epoch_end(self, trainer, module) -> None:
        if trainer.sanity_checking:
            return
        done, total = trainer.current_epoch + 1, trainer.max_epochs
        per_epoch = (time.perf_counter() - self.t0) / done
        acc = float(trainer.callback_metrics.get("val/acc", float("nan")))
        print(f"{self.PREFIX}{done}/{total}: val acc {acc:.4f}, {per_epoch:.1f} s/epoch, "
              f"cell ETA {fmt_s(per_epoch * (total - done))}", flush=True)


def run_accuracy(cell: Cell, cell_dir: Path) -> dict[str, Any]:
    """Train (unless results.yaml of the same config exists), then NeuroBench's metrics of the best checkpoint."""
    import torch

    import train
    from algorithms import build_module, get_algorithm
    from algorithms.measure import peak_rss_bytes
    from sweeps import neurobench

    cfg = compose_config([*cell.overrides, f"output_dir={cell_dir}"])
    saved_cfg = cell_dir / "config.yaml"
    reuse = (
        (cell_dir / "results.yaml").is_file()
        and saved_cfg.is_file()
        and config_hash(OmegaConf.load(saved_cfg), {"nb": cell.info.get("neurobench_samples")}) == cell.config_hash
    )
    t0 = time.perf_counter()
    if reuse:
        results = yaml.safe_load((cell_dir / "results.yaml").read_text())
        wall = float("nan")
    else:
        if cell_dir.exists():
            shutil.rmtree(cell_dir)
        c0 = time.process_time()
        results = train.run(cfg, callbacks=[EpochProgress()])
        wall = time.perf_counter() - t0
        results["cpu_s"] = time.process_time() - c0
    rss = float(peak_rss_bytes())  # the cell process's, imports and data included: not an algorithm figure
    curve = read_curve(cell_dir / "metrics.csv")
    module = build_module(cfg)
    ckpt = cell_dir / "checkpoints" / "best.ckpt"
    if not ckpt.is_file():
        ckpt = cell_dir / "checkpoints" / "last.ckpt"
    module.load_state_dict(torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"])
    cuda = torch.cuda.is_available() and cfg.trainer.accelerator in ("auto", "gpu", "cuda")
    device = torch.device("cuda" if cuda else "cpu")
    module.to(device).eval()
    torch.manual_seed(int(cfg.seed))
    batches = [x.to(device) for x in test_set_frames(cfg, cell.info.get("neurobench_samples"))]
    nb = {**neurobench.static_metrics(module), **neurobench.workload_metrics(module, batches)}
    spiking = getattr(get_algorithm(cell.algorithm), "spiking", True)
    finite = [s for s in curve["epoch_s"] if math.isfinite(s)]
    row = {
        "test_acc": float(results["test/acc"]),
        "best_val_acc": float(results["best_val_acc"]),
        "epochs": int(results["epochs"]),
        "epoch_s": float(np.mean(finite)) if finite else float(results.get("train/epoch_s", float("nan"))),
        "samples_per_s": float(np.nanmean(curve["samples_per_s"])) if curve["samples_per_s"] else float("nan"),
        "train_wall_s": wall if math.isfinite(wall) else float(np.nansum(curve["epoch_s"])),
        "train_cpu_s": float(results.get("cpu_s", float("nan"))),
        "step_mem_bytes": float(results.get("train/step_mem_bytes", float("nan"))),  # the run's first step
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

    from algorithms import build_module
    from algorithms.base import input_size
    from algorithms.measure import peak_rss_growth, step_time

    cfg = compose_config(cell.overrides)
    L.seed_everything(int(cfg.seed), verbose=False)
    cuda = torch.cuda.is_available() and cfg.trainer.accelerator in ("auto", "gpu", "cuda")
    device = torch.device("cuda" if cuda else "cpu")
    module = build_module(cfg).to(device).train()
    info = cell.info
    g = torch.Generator().manual_seed(int(cfg.seed))
    p = info["input_rate_hz"] * float(cfg.data.dt)
    x = (torch.rand(info["batch"], info["steps"], input_size(cfg), generator=g) < p).float().to(device)
    y = torch.randint(int(cfg.data.n_classes), (info["batch"],), generator=g).to(device)

    def step(memory: bool = False, frames=x):
        for prm in module.parameters():
            prm.grad = None
        return module.measured_step(frames, y, memory=memory)

    step(frames=x[:, : min(10, info["steps"])].contiguous())  # small warm-up: libraries, thread pools, kernels
    rss = peak_rss_growth(step)  # the process's first full step: the cross-check (meaningful in a fresh process)
    out = step(memory=True)
    timed = step_time(step, threads=torch.get_num_threads(), runs=info["repeats"])
    row = {
        "step_s": timed.median_s,
        "samples_per_s": info["batch"] / timed.median_s,
        "step_mem_bytes": float(out.step_mem_bytes),
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
        runner = run_accuracy if cell.kind == "accuracy" else run_scaling
        out = runner(cell, Path(cell_dir))
        out.update({"cell": asdict(cell), "cell_s": time.perf_counter() - t0})
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


# ----------------------------------------------------------------------------------------------
# Scheduling: skip finished cells, run the rest in child processes, show progress
# ----------------------------------------------------------------------------------------------


def isolation(choice: str) -> str:
    if choice != "auto":
        return choice
    return "spawn"  # forking a parent whose OpenMP pool has threads deadlocks the child (GNU libgomp)


def done_file(out: Path, cell: Cell) -> Path:
    return out / "cells" / cell.name / CELL_FILE if cell.kind == "accuracy" else out / "scaling" / f"{cell.name}.yaml"


def is_done(out: Path, cell: Cell) -> bool:
    path = done_file(out, cell)
    if not path.is_file():
        return False
    try:
        return yaml.safe_load(path.read_text())["cell"]["config_hash"] == cell.config_hash
    except (KeyError, TypeError, yaml.YAMLError):
        return False


def run_cell(out: Path, cell: Cell, mode: str, tag: str = "") -> tuple[bool, str]:
    """(finished, error line) for one cell, run as `mode` (fork | spawn | none)."""
    cell_dir = out / "cells" / cell.name
    log = out / "logs" / f"{cell.name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    done = done_file(out, cell)
    done.unlink(missing_ok=True)
    args = (asdict(cell), str(cell_dir), str(log), str(done))
    if mode == "none":
        try:
            cell_entry(asdict(cell), str(cell_dir), None, str(done))
        except Exception as err:  # noqa: BLE001 - one failed cell must not stop the benchmark
            return False, f"{type(err).__name__}: {err}"
        return True, ""
    with open(log, "a") as f:
        f.write(f"==== {time.strftime('%Y-%m-%d %H:%M:%S')} cell {cell.name}\n")
    offset = log.stat().st_size  # earlier runs' lines stay in the log, and are not relayed
    proc = mp.get_context(mode).Process(target=cell_entry, args=args)
    proc.start()
    relay_progress(proc, log, offset, tag=tag)
    if proc.exitcode == 0 and done.is_file():
        return True, ""
    lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()] if log.is_file() else []
    reason = lines[-1] if lines else f"exit code {proc.exitcode}"
    if proc.exitcode and proc.exitcode < 0:
        reason = f"killed by signal {-proc.exitcode} (out of memory?)"
    return False, f"{reason}  (log: {log})"


def relay_progress(proc, log: Path, offset: int = 0, every: float = 2.0, tag: str = "") -> None:
    """Wait for the child, printing the per-epoch lines its log gets after byte `offset` as they appear."""
    while True:
        proc.join(every)
        if log.is_file():
            with open(log, "rb") as f:
                f.seek(offset)
                chunk = f.read()
            complete = chunk[: chunk.rfind(b"\n") + 1]
            offset += len(complete)
            for line in complete.decode(errors="replace").splitlines():
                if line.startswith(EpochProgress.PREFIX):
                    print("   " + tag + line, flush=True)
        if proc.exitcode is not None:
            return


def fmt_s(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def run_all(out: Path, cells: list[Cell], mode: str, after_each=None, workers: int = 1) -> dict[str, str]:
    """Run the cells that are not done, printing progress and an ETA; returns {cell name: error} of failures.

    workers > 1: that many cells at once (accuracy cells only; the scaling cells time one step and run alone),
    each in a spawned process (forking a parent that runs threads is unsafe).
    """
    if workers > 1 and cells and cells[0].kind == "accuracy":
        return run_parallel(out, cells, workers, after_each)
    todo = [c for c in cells if not is_done(out, c)]
    skipped = len(cells) - len(todo)
    if skipped:
        print(f"{skipped} of {len(cells)} cells already done (skipped)", flush=True)
    durations: dict[tuple[str, str], list[float]] = {}
    failures: dict[str, str] = {}

    def estimate(c: Cell) -> float | None:
        same = durations.get((c.kind, c.algorithm))
        if same:
            return float(np.mean(same))
        kind = [d for (k, _), ds in durations.items() if k == c.kind for d in ds]
        return float(np.mean(kind)) if kind else None

    for i, cell in enumerate(todo):
        print(f"[{i + 1}/{len(todo)}] {cell.kind:8s} {cell.name} ...", flush=True)
        t0 = time.perf_counter()
        ok, err = run_cell(out, cell, mode)
        took = time.perf_counter() - t0
        durations.setdefault((cell.kind, cell.algorithm), []).append(took)
        rest = [estimate(c) for c in todo[i + 1 :]]
        eta = None if any(r is None for r in rest) else sum(rest)
        report_cell(out, cell, ok, err, took, eta, failures, after_each)
    return failures


def report_cell(out: Path, cell: Cell, ok: bool, err: str, took: float, eta, failures: dict, after_each, name="") -> None:
    """Print a finished cell's figure (or its error, recorded in failures) with the ETA; refresh the reports."""
    if ok:
        row = yaml.safe_load(done_file(out, cell).read_text())["row"]
        what = f"test acc {row['test_acc']:.4f}" if cell.kind == "accuracy" else f"step {row['step_s']:.3g} s"
        print(f"    {name}done in {took:.1f} s: {what}   ETA {fmt_s(eta)}", flush=True)
    else:
        failures[cell.name] = err
        print(f"    {name}FAILED after {took:.1f} s: {err}   ETA {fmt_s(eta)}", flush=True)
    if after_each:
        after_each()


def run_parallel(out: Path, cells: list[Cell], workers: int, after_each=None) -> dict[str, str]:
    """`run_all` with `workers` cells at once: threads that each start one spawned cell process and wait."""
    from concurrent.futures import ThreadPoolExecutor, as_completed

    todo = [c for c in cells if not is_done(out, c)]
    if len(todo) < len(cells):
        print(f"{len(cells) - len(todo)} of {len(cells)} cells already done (skipped)", flush=True)
    failures: dict[str, str] = {}
    t0, finished = time.perf_counter(), 0

    def one(i: int, cell: Cell) -> tuple[Cell, bool, str, float]:
        print(f"[{i + 1}/{len(todo)}] {cell.kind:8s} {cell.name} ... (worker pool of {workers})", flush=True)
        start = time.perf_counter()
        ok, err = run_cell(out, cell, "spawn", tag=f"{cell.name}: ")
        return cell, ok, err, time.perf_counter() - start

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for fut in as_completed([pool.submit(one, i, c) for i, c in enumerate(todo)]):
            cell, ok, err, took = fut.result()
            finished += 1
            eta = (time.perf_counter() - t0) / finished * (len(todo) - finished)
            report_cell(out, cell, ok, err, took, eta, failures, after_each, name=f"{cell.name} ")
    return failures


# ----------------------------------------------------------------------------------------------
# Reports: CSV, Markdown tables, environment
# ----------------------------------------------------------------------------------------------

TABLE_COLUMNS = [  # (csv key, header, scale, format)
    ("test_acc", "Test acc. (%)", 100.0, ".1f"),
    ("best_val_acc", "Best val. acc. (%)", 100.0, ".1f"),
    ("epochs", "Epochs", 1.0, ".0f"),
    ("epoch_s", "Time / epoch (s)", 1.0, ".3g"),
    ("samples_per_s", "Samples / s", 1.0, ".3g"),
    ("step_mem_bytes", "Step memory (MB)", 1e-6, ".3g"),
    ("rate_hz", "Hidden rate (Hz)", 1.0, ".3g"),
    ("activation_sparsity", "Activation sparsity", 1.0, ".3f"),
    ("synops_effective_acs", "SynOps Effective_ACs", 1.0, ".3g"),
    ("synops_effective_macs", "SynOps Effective_MACs", 1.0, ".3g"),
    ("synops_dense", "SynOps Dense", 1.0, ".3g"),
    ("footprint", "Footprint (kB)", 1e-3, ".4g"),
    ("connection_sparsity", "Connection sparsity", 1.0, ".3f"),
]
ID_COLUMNS = ["algorithm", "hidden", "recurrent", "seed"]
EXTRA_COLUMNS = ["train_wall_s", "train_cpu_s", "saved_bytes", "process_peak_rss_bytes", "process_gpu_peak_bytes",
                 "heuristics"]
IDENTITY = ("hidden", "recurrent", "seed", "steps", "batch", "table_steps", "table_hidden")  # copied from a cell's info
SCALING_COLUMNS = ["algorithm", "steps", "hidden", "batch", "step_s", "samples_per_s", "step_mem_bytes", "saved_bytes",
                   "step_rss_growth_bytes"]


MEMORY_NOTE = (
    "Accuracies: mean ± sample standard deviation over seeds; other columns: means. Step memory: the peak of tensor "
    "memory allocated during the run's first training step (untrained weights, a real batch) beyond what existed "
    "before it (parameters, optimiser state and the batch excluded alike; algorithms/measure.py: PyTorch's "
    "allocation events on CPU, the allocator's peak on CUDA). results.csv also holds the bytes saved for backward "
    "(saved-tensor hooks; bookkeeping, not memory) and the cell process's peak RSS (imports and data included; not "
    "an algorithm figure). SynOps: per sample, NeuroBench's definitions (sweeps/neurobench.py), on the test set."
)


def collect(out: Path, cells: list[Cell]) -> list[dict[str, Any]]:
    """The finished cells' rows, in the cells' order, with their identifying columns."""
    rows = []
    for c in cells:
        if is_done(out, c):
            data = yaml.safe_load(done_file(out, c).read_text())
            ident = {"algorithm": c.algorithm, **{k: c.info[k] for k in IDENTITY if k in c.info}}
            rows.append({**ident, **data["row"], "_curve": data.get("curve")})
    return rows


def write_csv(path: Path, rows: list[dict[str, Any]], columns: list[str]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in columns})


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n − 1; 0 for one value) of the finite values."""
    v = np.array([x for x in values if x is not None and math.isfinite(x)], dtype=float)
    if not len(v):
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def summary(rows: list[dict[str, Any]], algorithms: list[str]) -> list[dict[str, Any]]:
    """Per algorithm: n seeds and (mean, std) of every table column."""
    out = []
    for a in algorithms:
        mine = [r for r in rows if r["algorithm"] == a]
        if mine:
            out.append({"algorithm": a, "n": len(mine), **{k: mean_std([r.get(k) for r in mine]) for k, *_ in TABLE_COLUMNS},
                        "heuristics": next((str(r["heuristics"]) for r in mine if r.get("heuristics")), "")})
    return out


def fmt_cell(mean: float, std: float, scale: float, spec: str, with_std: bool) -> str:
    if not math.isfinite(mean):
        return "–"
    text = format(mean * scale, spec)
    return f"{text} ± {format(std * scale, spec)}" if with_std and math.isfinite(std) else text


def markdown_table(summ: list[dict[str, Any]]) -> str:
    """The table: mean ± std over seeds for accuracies, means elsewhere; columns without any value left out."""
    cols = [c for c in TABLE_COLUMNS if any(math.isfinite(s[c[0]][0]) for s in summ)]
    heur = any(s.get("heuristics") for s in summ)
    lines = ["| Algorithm | Seeds | " + " | ".join(h for _, h, *_ in cols) + (" | Heuristics (not the loss gradient)" if heur
             else "") + " |", "|" + "---|" * (len(cols) + 2 + heur)]
    for s in summ:
        with_std = s["n"] > 1
        cells = [fmt_cell(*s[k], scale, spec, with_std and k in ("test_acc", "best_val_acc")) for k, _, scale, spec in cols]
        cells += [s.get("heuristics") or "–"] if heur else []
        lines.append(f"| {s['algorithm']} | {s['n']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def architecture_table(rows: list[dict[str, Any]], algorithms: list[str], b: DictConfig) -> str:
    kinds = [("ff", False), ("rec", True)]
    kinds = [k for k in kinds if k[1] in list(b.architecture.recurrent)]
    header = [f"{h} {name}" for h in b.architecture.hidden for name, _ in kinds]
    lines = ["| Algorithm | " + " | ".join(header) + " |", "|" + "---|" * (len(header) + 1)]
    for a in algorithms:
        vals = []
        for h in b.architecture.hidden:
            for _, rec in kinds:
                accs = [r["test_acc"] for r in rows if r["algorithm"] == a and r["hidden"] == h and r["recurrent"] == rec]
                m, s = mean_std(accs)
                vals.append(fmt_cell(m, s, 100.0, ".1f", len(accs) > 1))
        lines.append(f"| {a} | " + " | ".join(vals) + " |")
    return "\n".join(lines)


def git_commit() -> dict[str, Any]:
    try:
        def git(*args: str) -> str:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()

        commit, dirty = git("rev-parse", "HEAD"), git("status", "--porcelain")
        return {"commit": commit, "dirty": bool(dirty)}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}


def environment(argv: list[str], mode: str) -> dict[str, Any]:
    """Versions, device, commit and command of this run."""
    import importlib.metadata as md

    import torch

    versions = {}
    for pkg in ("torch", "lightning", "numpy", "omegaconf", "h5py", "matplotlib", "triton"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    cuda = torch.cuda.is_available()
    return {
        "command": "python -m sweeps.benchmark " + " ".join(argv),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        **git_commit(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "cuda": torch.version.cuda if cuda else None,
        "isolation": mode,
        "versions": versions,
    }


def write_reports(out: Path, b: DictConfig, algorithms: list[str], table: list[Cell], scaling: list[Cell], arch: list[Cell],
                  failures: dict[str, str], header: str, plots: bool = False) -> None:
    rows = collect(out, table)
    summ = summary(rows, algorithms)
    if "table" in b.phases:
        write_csv(out / "results.csv", rows, ID_COLUMNS + [k for k, *_ in TABLE_COLUMNS] + EXTRA_COLUMNS)
        text = [f"# Benchmark `{b.name}`", "", header, "", markdown_table(summ), ""]
        text.append(MEMORY_NOTE)
        if failures:
            text += ["", "Failed cells:", ""] + [f"- `{k}`: {v}" for k, v in failures.items()]
        (out / "table.md").write_text("\n".join(text) + "\n")
    srows = collect(out, scaling)
    if "scaling" in b.phases:
        write_csv(out / "scaling.csv", srows, SCALING_COLUMNS)
    arows = [r for r in collect(out, table + arch) if r["seed"] in list(b.architecture.seeds)]
    if "architecture" in b.phases:
        write_csv(out / "architecture.csv", arows, ID_COLUMNS + ["test_acc", "best_val_acc", "epochs", "epoch_s"])
        (out / "architecture.md").write_text(f"# Architecture study `{b.name}`: test accuracy (%)\n\n"
                                             + architecture_table(arows, algorithms, b) + "\n")
    if plots and b.plots:
        from sweeps import plots as P

        P.write_all(out, rows, srows, arows, summ, algorithms, b)


# ----------------------------------------------------------------------------------------------
# The command
# ----------------------------------------------------------------------------------------------


def importable(algorithms: list[str]) -> list[str]:
    """The algorithms whose module imports; the others are skipped with the reason printed."""
    from algorithms import get_algorithm

    ok = []
    for a in algorithms:
        try:
            get_algorithm(a)
            ok.append(a)
        except Exception as err:  # noqa: BLE001 - any import failure skips the algorithm
            print(f"skipping {a}: cannot import it ({type(err).__name__}: {err})", flush=True)
    return ok


def benchmark(argv: list[str]) -> tuple[Path, dict[str, str]]:
    """Run the benchmark described by the command line; returns (output folder, failed cells)."""
    choice, items, user = split_args(argv)
    b = load_benchmark_config(choice, items)
    out = Path(b.out_dir).expanduser() if b.out_dir else ROOT / "results" / b.name
    out.mkdir(parents=True, exist_ok=True)
    algorithms = importable(list(b.algorithms))
    if not algorithms:
        raise ValueError("no algorithm of benchmark.algorithms can be imported")
    table, scaling, arch, configs = plan(b, user, algorithms)
    OmegaConf.save(b, out / "benchmark.yaml", resolve=True)
    (out / "configs").mkdir(exist_ok=True)
    for a, cfg in configs.items():
        OmegaConf.save(cfg, out / "configs" / f"{a}.yaml", resolve=True)
    mode = isolation(b.isolate)
    cfg0 = configs[algorithms[0]]
    steps = int(round(cfg0.data.duration / cfg0.data.dt))
    header = (f"Command: `python -m sweeps.benchmark {' '.join(argv)}`  \nData: {cfg0.data.name} ({cfg0.data.root}), "
              f"{steps} steps of {cfg0.data.dt * 1e3:g} ms; network: {cfg0.model.hidden} hidden, "
              f"{'recurrent' if cfg0.model.recurrent else 'feed-forward'}; {cfg0.trainer.max_epochs} epochs; "
              f"seeds {list(b.seeds)}. Environment: environment.yaml.")
    print(f"benchmark {b.name}: {len(algorithms)} algorithms, {len(table)} table cells, {len(scaling)} scaling cells, "
          f"{len(arch)} architecture cells -> {out}  (cells in child processes: {mode}"
          + (f"; accuracy cells {b.workers} at once, spawned" if b.get("workers", 1) > 1 else "") + ")", flush=True)
    failures: dict[str, str] = {}

    def refresh() -> None:
        write_reports(out, b, algorithms, table, scaling, arch, failures, header)

    for phase, cells in (("table", table), ("scaling", scaling), ("architecture", arch)):
        if cells:
            print(f"-- {phase}: {len(cells)} cells", flush=True)
            failures.update(run_all(out, cells, mode, refresh, int(b.get("workers", 1))))
    write_reports(out, b, algorithms, table, scaling, arch, failures, header, plots=True)
    (out / "environment.yaml").write_text(yaml.safe_dump(environment(argv, mode), sort_keys=False))
    print(f"table: {out / 'table.md'}" + (f"   ({len(failures)} cells failed)" if failures else ""), flush=True)
    return out, failures


def main(argv: list[str] | None = None) -> int:
    from datamodules import DataError

    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        print("benchmarks:", ", ".join(sorted(p.stem for p in BENCH_DIR.glob("*.yaml"))))
        return 0
    try:
        _, failures = benchmark(argv)
    except (ConfigError, DataError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
