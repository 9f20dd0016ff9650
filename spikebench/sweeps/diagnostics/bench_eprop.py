"""Training memory of e-prop against BPTT as the trial grows: one training step per (algorithm, T).

    python -m spikebench.sweeps.diagnostics.bench_eprop                       # T = 100, 500, 1000; hidden 256, batch 32, 700 inputs
    python -m spikebench.sweeps.diagnostics.bench_eprop --steps 100 2000 --hidden 128
    python -m spikebench.sweeps.diagnostics.bench_eprop --one eprop 500       # one cell in this process (prints JSON)

Each (algorithm, T) cell runs in its own fresh process (`--one`), which builds the module, takes a short warm-up
step (T = 10: libraries, threads, the compiled loop), then measures two training steps on the same batch:
- peak RSS growth (the cross-check; algorithms/measure.peak_rss_growth): how far the process's resident-memory
  high-water mark rose during the first full-length step, everything the process touched included. It has a
  floor and depends on what the allocators kept, which is why each cell has a fresh process.
- step memory (the suite's measure; algorithms/measure.step_memory): the peak of tensor memory allocated
  during the second step beyond what existed before it (parameters and the batch excluded), from PyTorch's
  allocation events. Temporaries freed within the step count toward the peak; the gradients left count too.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

def measure_one(
    algorithm: str, steps: int, hidden: int, batch: int, n_in: int, density: float, threads: int, chunk: int | None
) -> dict:
    """One cell, in this process: peak RSS growth of one step, then the step memory and wall time of another."""
    import torch

    from spikebench.algorithms import build_module
    from spikebench.datamodules import data_shape
    from spikebench.algorithms.measure import peak_rss_growth
    from spikebench.configs import compose_config

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cfg = compose_config(
        [f"algorithm={algorithm}", f"model.hidden={hidden}", f"data.channels={n_in}", f"data.duration={steps * 1e-3}",
         "data.dt=1e-3", "model.init.in_mean=1.0", "model.init.in_std=3.0"]
        + ([f"algorithm.chunk={chunk}"] if chunk and algorithm == "eprop" else [])
    )
    module = build_module(cfg, data_shape(cfg))
    y = torch.randint(0, cfg.data.n_classes, (batch,))
    module.loss_and_grads((torch.rand(batch, 10, n_in) < density).float(), y)  # warm-up: libraries, threads
    x = torch.rand(batch, steps, n_in).lt_(density).float()

    def step(memory: bool = False):
        for prm in module.parameters():
            prm.grad = None
        return module.measured_step(x, y, memory=memory)

    t0 = time.perf_counter()
    rss = peak_rss_growth(step)
    wall = time.perf_counter() - t0  # one unprofiled step: indicative (spikebench.sweeps.diagnostics.bench_lif / bench_paralif time steps)
    out = step(memory=True)
    return {
        "step_mem": int(out.step_mem_bytes),
        "peak_rss": int(rss),
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
    ap.add_argument("--one", nargs=2, metavar=("ALGORITHM", "T"), help="measure one cell in this process (JSON)")
    a = ap.parse_args(argv)
    if a.one:
        r = measure_one(a.one[0], int(a.one[1]), a.hidden, a.batch, a.inputs, a.density, a.threads, a.chunk)
        print(json.dumps(r))
        return
    rows = {}
    for steps in a.steps:
        for algorithm in ("bptt", "eprop"):
            cmd = [sys.executable, "-m", "spikebench.sweeps.diagnostics.bench_eprop", "--one", algorithm, str(steps),
                   "--hidden", str(a.hidden), "--batch", str(a.batch), "--inputs", str(a.inputs),
                   "--density", str(a.density), "--threads", str(a.threads)]
            cmd += ["--chunk", str(a.chunk)] if a.chunk else []
            res = subprocess.run(cmd, capture_output=True, text=True, check=True)
            rows[algorithm, steps] = json.loads(res.stdout.strip().splitlines()[-1])
    mb = 1e6
    print(f"training memory per step: hidden {a.hidden}, batch {a.batch}, {a.inputs} inputs, dt 1 ms, "
          f"{a.threads} thread(s), e-prop chunk {a.chunk or 'from config'}; MB = 1e6 bytes; each cell a fresh process")
    head = (f"{'T':>6} | {'BPTT step mem':>13} {'e-prop step mem':>15} {'BPTT/e-prop':>11} | "
            f"{'BPTT RSS growth':>15} {'e-prop RSS growth':>17} | {'BPTT s':>7} {'e-prop s':>8} | {'rate Hz':>7}")
    print(head)
    print("-" * len(head))
    for steps in a.steps:
        b, e = rows["bptt", steps], rows["eprop", steps]
        print(f"{steps:>6} | {b['step_mem'] / mb:>13.1f} {e['step_mem'] / mb:>15.1f} "
              f"{b['step_mem'] / max(e['step_mem'], 1):>11.2f} | {b['peak_rss'] / mb:>15.1f} {e['peak_rss'] / mb:>17.1f} | "
              f"{b['wall_s']:>7.2f} {e['wall_s']:>8.2f} | {e['rate']:>7.1f}")
    first, last = a.steps[0], a.steps[-1]
    for algorithm, name in (("bptt", "BPTT"), ("eprop", "e-prop")):
        r0, r1 = rows[algorithm, first], rows[algorithm, last]
        print(f"{name:>6}: T={last} / T={first}: step memory ×{r1['step_mem'] / max(r0['step_mem'], 1):.3f}, "
              f"peak RSS growth ×{r1['peak_rss'] / max(r0['peak_rss'], 1):.3f}")
    print("step memory: peak tensor memory allocated during the step (algorithms/measure.step_memory); "
          "RSS growth: the cross-check (measure.peak_rss_growth); s: wall seconds of the unprofiled step")

if __name__ == "__main__":
    main()
