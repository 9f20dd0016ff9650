"""Training memory of e-prop against BPTT as the trial grows: one training step per (algorithm, T).

    python -m sweeps.bench_eprop                       # T = 100, 500, 1000; hidden 256, batch 32, 700 inputs
    python -m sweeps.bench_eprop --steps 100 2000 --hidden 128

Two numbers per run, each from its own fresh process:
- held: the bytes kept for computing the gradient. BPTT: what autograd saves for its backward pass
  (the base class's SavedTensorMeter). e-prop builds no graph (that meter reads 0); it reports the tensors it
  holds itself (traces, accumulators, the current block's buffers, the neuron state; `StepOutput.saved_bytes`).
- peak RSS: growth of the process's resident memory high-water mark during the step (Linux VmHWM, reset
  just before the step), which counts everything, temporaries included. It excludes the batch x itself.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def measure_one(
    algorithm: str, steps: int, hidden: int, batch: int, n_in: int, density: float, threads: int, chunk: int | None
) -> dict:
    """One training step in this process; returns held bytes, peak RSS growth and wall time."""
    import torch

    sys.path.insert(0, str(ROOT))
    from algorithms import build_module
    from train import compose_config

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cfg = compose_config(
        [f"algorithm={algorithm}", f"model.hidden={hidden}", f"data.channels={n_in}", f"data.duration={steps * 1e-3}",
         "data.dt=1e-3", "model.init.in_mean=1.0", "model.init.in_std=3.0"]
        + ([f"algorithm.chunk={chunk}"] if chunk and algorithm == "eprop" else [])
    )
    module = build_module(cfg)
    y = torch.randint(0, cfg.data.n_classes, (batch,))
    module.loss_and_grads((torch.rand(batch, 10, n_in) < density).float(), y)  # warm-up: libraries, threads
    x = torch.rand(batch, steps, n_in).lt_(density).float()
    Path("/proc/self/clear_refs").write_text("5")  # reset the high-water mark VmHWM to the current RSS
    rss0 = _rss_kib("VmRSS")
    t0 = time.perf_counter()
    for prm in module.parameters():
        prm.grad = None
    out = module._measured_step(x, y)
    wall = time.perf_counter() - t0
    return {
        "held": int(out.saved_bytes or 0),
        "peak_rss": 1024 * (_rss_kib("VmHWM") - rss0),
        "wall_s": wall,
        "rate": float(out.hidden_counts.sum()) / (batch * hidden * steps * 1e-3),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, nargs="+", default=[100, 500, 1000], help="trial lengths T (dt = 1 ms)")
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--inputs", type=int, default=700)
    ap.add_argument("--density", type=float, default=0.02, help="input spike probability per channel and step")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--chunk", type=int, default=None, help="e-prop's algorithm.chunk (default: its config)")
    ap.add_argument("--child", nargs=2, metavar=("ALGORITHM", "T"), help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        r = measure_one(a.child[0], int(a.child[1]), a.hidden, a.batch, a.inputs, a.density, a.threads, a.chunk)
        print(json.dumps(r))
        return
    rows = {}
    for steps in a.steps:
        for algorithm in ("bptt", "eprop"):
            cmd = [sys.executable, "-m", "sweeps.bench_eprop", "--child", algorithm, str(steps),
                   "--hidden", str(a.hidden), "--batch", str(a.batch), "--inputs", str(a.inputs),
                   "--density", str(a.density), "--threads", str(a.threads)]
            cmd += ["--chunk", str(a.chunk)] if a.chunk else []
            res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True)
            rows[algorithm, steps] = json.loads(res.stdout.strip().splitlines()[-1])
    mb = 1e6
    print(f"training memory per step: hidden {a.hidden}, batch {a.batch}, {a.inputs} inputs, dt 1 ms, "
          f"{a.threads} thread(s), e-prop chunk {a.chunk or 'from config'}; MB = 1e6 bytes")
    head = (f"{'T':>6} | {'BPTT held':>10} {'e-prop held':>12} {'BPTT/e-prop':>11} | "
            f"{'BPTT peak RSS':>13} {'e-prop peak RSS':>15} | {'BPTT s':>7} {'e-prop s':>8} | {'rate Hz':>7}")
    print(head)
    print("-" * len(head))
    for steps in a.steps:
        b, e = rows["bptt", steps], rows["eprop", steps]
        print(f"{steps:>6} | {b['held'] / mb:>10.1f} {e['held'] / mb:>12.1f} {b['held'] / e['held']:>11.2f} | "
              f"{b['peak_rss'] / mb:>13.1f} {e['peak_rss'] / mb:>15.1f} | {b['wall_s']:>7.2f} {e['wall_s']:>8.2f} | "
              f"{e['rate']:>7.1f}")
    first, last = a.steps[0], a.steps[-1]
    for algorithm, name in (("bptt", "BPTT"), ("eprop", "e-prop")):
        r0, r1 = rows[algorithm, first], rows[algorithm, last]
        print(f"{name:>6}: T={last} / T={first}: held ×{r1['held'] / r0['held']:.3f}, "
              f"peak RSS ×{r1['peak_rss'] / max(r0['peak_rss'], 1):.3f}")


if __name__ == "__main__":
    main()
