"""Scheduling: skip finished cells, run the rest in child processes (one at a time or `workers` at once), relay
their progress lines, print each result with tqdm's progress meter."""

from __future__ import annotations

import multiprocessing as mp
import time
from dataclasses import asdict
from pathlib import Path

import yaml
from tqdm import tqdm

from .cells import Cell, only_added_keys_differ
from .work import EpochProgress, cell_entry

CELL_FILE = "cell.yaml"
RELAYED = (EpochProgress.PREFIX, "[trial ", "study ")  # the child's log lines the parent prints


def isolation(choice: str) -> str:
    if choice != "auto":
        return choice
    return "spawn"  # forking a parent whose OpenMP pool has threads deadlocks the child (GNU libgomp)


def cell_dir(out: Path, cell: Cell) -> Path:
    """Where a cell writes: cells/<name>/ (accuracy, scaling), studies/<name>/ (a study: journal, trials)."""
    return out / ("studies" if cell.kind == "tune" else "cells") / cell.name


def done_file(out: Path, cell: Cell) -> Path:
    return out / "scaling" / f"{cell.name}.yaml" if cell.kind == "scaling" else cell_dir(out, cell) / CELL_FILE


def is_done(out: Path, cell: Cell) -> bool:
    """A cell is done when its done file records today's config hash, or (an accuracy cell) a config that differs
    from today's only by keys added since at their defaults (cells.only_added_keys_differ)."""
    path = done_file(out, cell)
    if not path.is_file():
        return False
    try:
        recorded = yaml.safe_load(path.read_text())["cell"]["config_hash"]
    except (KeyError, TypeError, yaml.YAMLError):
        return False
    if recorded == cell.config_hash:
        return True
    saved = cell_dir(out, cell) / "config.yaml"
    return cell.kind == "accuracy" and saved.is_file() and only_added_keys_differ(
        str(saved), saved.stat().st_mtime_ns, recorded, tuple(cell.overrides), cell.info.get("neurobench_samples"))


def run_cell(out: Path, cell: Cell, mode: str, tag: str = "") -> tuple[bool, str]:
    """(finished, error line) for one cell, run as `mode` (fork | spawn | none)."""
    where = cell_dir(out, cell)
    log = out / "logs" / f"{cell.name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    done = done_file(out, cell)
    done.unlink(missing_ok=True)
    args = (asdict(cell), str(where), str(log), str(done))
    if mode == "none":
        try:
            cell_entry(asdict(cell), str(where), None, str(done))
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
                if line.startswith(RELAYED):
                    print("   " + tag + line, flush=True)
        if proc.exitcode is not None:
            return


def run_all(out: Path, cells: list[Cell], mode: str, after_each=None, workers: int = 1) -> dict[str, str]:
    """Run the cells that are not done, printing progress and an ETA; returns {cell name: error} of failures.

    workers > 1: that many cells at once (not the scaling cells, which time one step and run alone),
    each in a spawned process (forking a parent that runs threads is unsafe).
    """
    if workers > 1 and cells and cells[0].kind != "scaling":
        return run_parallel(out, cells, workers, after_each)
    todo = [c for c in cells if not is_done(out, c)]
    skipped = len(cells) - len(todo)
    if skipped:
        print(f"{skipped} of {len(cells)} cells already done (skipped)", flush=True)
    failures: dict[str, str] = {}
    t0 = time.perf_counter()
    for i, cell in enumerate(todo):
        print(f"[{i + 1}/{len(todo)}] {cell.kind:8s} {cell.name} ...", flush=True)
        start = time.perf_counter()
        ok, err = run_cell(out, cell, mode)
        report_cell(out, cell, ok, err, time.perf_counter() - start, progress(i + 1, len(todo), t0), failures, after_each)
    return failures


def progress(done: int, total: int, t0: float) -> str:
    """'3/15 cells, 02:05 elapsed, ETA 08:20': tqdm's meter (its rate and ETA), as one line for the log."""
    return tqdm.format_meter(done, total, time.perf_counter() - t0, unit="cell",
                             bar_format="{n_fmt}/{total_fmt} cells, {elapsed} elapsed, ETA {remaining}")


def report_cell(out: Path, cell: Cell, ok: bool, err: str, took: float, meter: str, failures: dict, after_each,
                name: str = "") -> None:
    """Print a finished cell's figure (or its error, recorded in failures) with the progress; refresh the reports."""
    if ok:
        row = yaml.safe_load(done_file(out, cell).read_text())["row"]
        what = {"accuracy": lambda: f"test acc {row['test_acc']:.4f}", "scaling": lambda: f"step {row['step_s']:.3g} s",
                "tune": lambda: f"best val acc {row['best_val_acc']:.4f} (trial {row['best_trial']})"}[cell.kind]()
        print(f"    {name}done in {took:.1f} s: {what}   [{meter}]", flush=True)
    else:
        failures[cell.name] = err
        print(f"    {name}FAILED after {took:.1f} s: {err}   [{meter}]", flush=True)
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
            report_cell(out, cell, ok, err, took, progress(finished, len(todo), t0), failures, after_each,
                        name=f"{cell.name} ")
    return failures


