"""Time per training epoch and step memory of each algorithm on real data, one fresh process at a time.

    OMP_NUM_THREADS=1 python -m spikebench.sweeps.diagnostics.epoch_costs                      # FSDD, shared setting
    python -m spikebench.sweeps.diagnostics.epoch_costs --algorithms bptt eprop --formats events frames --epochs 3
    python -m spikebench.sweeps.diagnostics.epoch_costs -- data.dt=1e-3                          # extra overrides
    python -m spikebench.sweeps.diagnostics.epoch_costs --runs results/fsdd_verdict/cells/tuned-*-s0  # their configs

Each (algorithm, data.format) trains `--epochs` epochs of `experiment=fsdd` (the shared setting: dt 4 ms, 256
recurrent, batch 32) in its own process, one after the other, with `--threads` threads, no test, no checkpoint
kept; the figures are the run's own (algorithms/base.py): the last epoch's training wall seconds (`train/epoch_s`:
the training batches of one epoch, data loading included, validation excluded; the first epoch also pays the
libraries' warm-up, so take ≥ 2), the step memory of its first step (`train/step_mem_bytes`, algorithms/measure.py)
and the bytes of that step's batch as the algorithm received it (`train/batch_bytes`). The machine's load average
(1 min) is printed before and after each case: timings are only comparable when it stays at about the number of
processes running (one here), i.e. the other cores idle.

`--runs`: instead, each named run folder's own configuration (its config.yaml: a tuned cell's dt, integration,
hyperparameters and data format) is trained again for `--epochs` epochs, with the overrides on top: the quiet
re-timing of a benchmark whose cells ran two at a time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

ALGORITHMS = ("bptt", "eventprop", "eprop", "paralif", "lstm")


def case_config(algorithm: str | None, fmt: str | None, saved: str | None, epochs: int, extra: list[str], out: str):
    """The config of one case: `saved` (a run folder) with its own settings, else experiment=fsdd with `algorithm`."""
    from spikebench.configs import compose_config, load_run_config

    common = [f"trainer.max_epochs={epochs}", "test=false", "plots=false", f"output_dir={out}"]
    if saved:
        return load_run_config(saved, [*common, "ckpt_path=null", *extra])
    return compose_config(["experiment=fsdd", f"algorithm={algorithm}", f"data.format={fmt}", "logger=csv", *common,
                           *extra])


def one(algorithm: str | None, fmt: str | None, saved: str | None, epochs: int, threads: int, extra: list[str]) -> dict:
    """Train in this process; the run's cost figures."""
    import torch

    from spikebench.train import run

    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = case_config(algorithm, fmt, saved, epochs, extra, f"{tmp}/run")
        results = run(cfg)
        return {"algorithm": str(cfg.algorithm.name), "format": str(cfg.data.format), "epoch_s": results["train/epoch_s"],
                "step_mem_bytes": results["train/step_mem_bytes"], "batch_bytes": results["train/batch_bytes"]}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--algorithms", nargs="+", default=list(ALGORITHMS))
    ap.add_argument("--formats", nargs="+", default=["auto"], choices=("auto", "frames", "events"))
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", nargs="+", metavar="RUN", help="re-time these run folders' own configurations instead")
    ap.add_argument("--one", nargs=3, metavar=("ALGORITHM", "FORMAT", "RUN"), help=argparse.SUPPRESS)
    ap.add_argument("overrides", nargs="*", help="extra config overrides (after --)")
    a = ap.parse_args(argv)
    if a.one:
        algorithm, fmt, saved = (x if x != "-" else None for x in a.one)
        print(json.dumps(one(algorithm, fmt, saved, a.epochs, a.threads, a.overrides)))
        return
    from spikebench.configs import ConfigError

    cases = ([(None, None, r) for r in a.runs] if a.runs else
             [(algorithm, fmt, None) for algorithm in a.algorithms for fmt in a.formats])
    for case in cases:  # every case's config checked before the first runs
        try:
            case_config(*case, a.epochs, a.overrides, "unused")
        except ConfigError as err:
            ap.error(str(err))
    setting = "each run's own configuration" if a.runs else "experiment=fsdd"
    print(f"{setting} {' '.join(a.overrides)}, {a.epochs} epochs per case, {a.threads} thread(s), one case at a "
          f"time; MB = 1e6 bytes. Command: python -m spikebench.sweeps.diagnostics.epoch_costs "
          + " ".join(argv if argv is not None else sys.argv[1:]))
    first = "| run | algorithm " if a.runs else "| algorithm "
    print(f"\n{first}| data.format | time / epoch (s) | step memory (MB) | batch (MB) | load avg before / after |")
    print("|---" * (7 if a.runs else 6) + "|")
    for algorithm, fmt, saved in cases:
        before = os.getloadavg()[0]
        cmd = [sys.executable, "-m", "spikebench.sweeps.diagnostics.epoch_costs", "--one",
               *(x or "-" for x in (algorithm, fmt, saved)),  # "-": not given
               "--epochs", str(a.epochs), "--threads", str(a.threads), "--", *a.overrides]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"{saved if a.runs else f'{algorithm} ({fmt})'} failed:\n{proc.stderr[-3000:]}")
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        name = f"| {os.path.basename(os.path.normpath(saved))} " if a.runs else ""
        print(f"{name}| {r['algorithm']} | {r['format']} | {r['epoch_s']:.2f} | {r['step_mem_bytes'] / 1e6:.1f} | "
              f"{r['batch_bytes'] / 1e6:.2f} | {before:.2f} / {os.getloadavg()[0]:.2f} |", flush=True)


if __name__ == "__main__":
    main()
