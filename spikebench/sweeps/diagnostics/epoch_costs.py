"""Time per training epoch and step memory of each algorithm on real data, one fresh process at a time.

    OMP_NUM_THREADS=1 python -m spikebench.sweeps.diagnostics.epoch_costs                      # FSDD, shared setting
    python -m spikebench.sweeps.diagnostics.epoch_costs --algorithms bptt eprop --formats events frames --epochs 3
    python -m spikebench.sweeps.diagnostics.epoch_costs -- data.dt=1e-3                          # extra overrides

Each (algorithm, data.format) trains `--epochs` epochs of `experiment=fsdd` (the shared setting: dt 4 ms, 256
recurrent, batch 32) in its own process, one after the other, with `--threads` threads, no test, no checkpoint
kept; the figures are the run's own (algorithms/base.py): the last epoch's training wall seconds (`train/epoch_s`:
the training batches of one epoch, data loading included, validation excluded; the first epoch also pays the
libraries' warm-up, so take ≥ 2), the step memory of its first step (`train/step_mem_bytes`, algorithms/measure.py)
and the bytes of that step's batch as the algorithm received it (`train/batch_bytes`). The machine's load average
(1 min) is printed before and after each case: timings are only comparable when it stays at about the number of
processes running (one here), i.e. the other cores idle.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

ALGORITHMS = ("bptt", "eventprop", "eprop", "paralif", "lstm")


def one(algorithm: str, fmt: str, epochs: int, threads: int, extra: list[str]) -> dict:
    """Train in this process; the run's cost figures."""
    import torch

    from spikebench.configs import compose_config
    from spikebench.train import run

    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = compose_config(["experiment=fsdd", f"algorithm={algorithm}", f"data.format={fmt}",
                              f"trainer.max_epochs={epochs}", "test=false", "plots=false", "logger=csv",
                              f"output_dir={tmp}/run", *extra])
        results = run(cfg)
        return {"format": str(cfg.data.format), "epoch_s": results["train/epoch_s"],
                "step_mem_bytes": results["train/step_mem_bytes"], "batch_bytes": results["train/batch_bytes"]}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--algorithms", nargs="+", default=list(ALGORITHMS))
    ap.add_argument("--formats", nargs="+", default=["auto"], choices=("auto", "frames", "events"))
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--one", nargs=2, metavar=("ALGORITHM", "FORMAT"), help=argparse.SUPPRESS)
    ap.add_argument("overrides", nargs="*", help="extra config overrides (after --)")
    a = ap.parse_args(argv)
    if a.one:
        print(json.dumps(one(a.one[0], a.one[1], a.epochs, a.threads, a.overrides)))
        return
    from spikebench.configs import compose_config

    for algorithm in a.algorithms:  # every case's config checked before the first runs
        for fmt in a.formats:
            compose_config(["experiment=fsdd", f"algorithm={algorithm}", f"data.format={fmt}", *a.overrides])
    print(f"experiment=fsdd {' '.join(a.overrides)}, {a.epochs} epochs per case, {a.threads} thread(s), one case at a "
          f"time; MB = 1e6 bytes. Command: python -m spikebench.sweeps.diagnostics.epoch_costs "
          + " ".join(argv if argv is not None else sys.argv[1:]))
    print("\n| algorithm | data.format | time / epoch (s) | step memory (MB) | batch (MB) | load avg before / after |")
    print("|---|---|---|---|---|---|")
    for algorithm in a.algorithms:
        for fmt in a.formats:
            before = os.getloadavg()[0]
            cmd = [sys.executable, "-m", "spikebench.sweeps.diagnostics.epoch_costs", "--one", algorithm, fmt,
                   "--epochs", str(a.epochs), "--threads", str(a.threads), "--", *a.overrides]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                sys.exit(f"{algorithm} ({fmt}) failed:\n{proc.stderr[-3000:]}")
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            print(f"| {algorithm} | {r['format']} | {r['epoch_s']:.2f} | {r['step_mem_bytes'] / 1e6:.1f} | "
                  f"{r['batch_bytes'] / 1e6:.2f} | {before:.2f} / {os.getloadavg()[0]:.2f} |", flush=True)


if __name__ == "__main__":
    main()
