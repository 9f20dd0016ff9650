"""EventProp against BPTT: bytes kept for the backward pass, and training-step time, as the step count T grows.

    python -m sweeps.bench_eventprop                         # T = 100, 500, 1000 (memory), 200, 1000 (speed)
    python -m sweeps.bench_eventprop --modes discrete exact --memory-steps 100 --speed-steps 200   # exact: slow

Protocol: one batch of SHD-like input (Poisson spikes, `--input-rate` Hz on each of `--inputs` channels
during the first `--active` seconds) is generated once; trials of T steps at dt = 1 ms hold that same input
followed by silence. So every T sees the same spikes, and only the number of steps grows: what
"memory grows with spikes, not with steps" is about. Both algorithms start from the same weights.
(With the default `--active 0.1`, T = 100 is all input; at T = 1000 the input fills the first tenth,
as a short word does in a 1-s SHD trial.)

- held: the bytes autograd keeps between forward and backward (the base class's SavedTensorMeter,
  parameters excluded). BPTT keeps the pre-reset membrane U (batch, T, hidden) and the frames x
  (batch, T, inputs); EventProp keeps its event lists (input and hidden spikes) and two small summaries.
- step time: median wall time of `loss_and_grads` (forward + backward) over `--repeats` runs after a warm-up,
  on `--threads` CPU threads.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from algorithms import build_module  # noqa: E402
from train import compose_config  # noqa: E402


def trial_spikes(batch: int, n_in: int, rate: float, duration: float, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Poisson spike times: (sample, channel, time in s) of one batch."""
    g = torch.Generator().manual_seed(seed)
    counts = torch.poisson(torch.full((batch, n_in), rate * duration), generator=g).long()
    sample = torch.repeat_interleave(torch.arange(batch), counts.sum(1))
    channel = torch.cat([torch.repeat_interleave(torch.arange(n_in), c) for c in counts])
    times = torch.rand(len(channel), generator=g) * duration
    return sample, channel, times


def frames(spikes: tuple[torch.Tensor, ...], batch: int, n_in: int, steps: int, dt: float) -> torch.Tensor:
    """Bin spike times into (batch, steps, inputs) counts at dt."""
    sample, channel, times = spikes
    step = (times / dt).long()
    keep = step < steps
    x = torch.zeros(batch, steps, n_in)
    x.index_put_((sample[keep], step[keep], channel[keep]), torch.ones(int(keep.sum())), accumulate=True)
    return x


def build(algorithm: str, args, steps: int, mode: str | None):
    over = [
        f"algorithm={algorithm}", f"model.hidden={args.hidden}", f"data.channels={args.inputs}",
        f"data.duration={steps * args.dt}", f"data.dt={args.dt}", f"data.n_classes={args.classes}",
        f"model.init.in_mean={args.in_mean}", f"model.init.in_std={args.in_std}",
    ]
    if mode:
        over.append(f"algorithm.time_mode={mode}")
    torch.manual_seed(0)
    return build_module(compose_config(over))


def measure(module, x: torch.Tensor, y: torch.Tensor, repeats: int) -> dict:
    module.loss_and_grads(x[:2], y[:2])  # warm-up
    out = module._measured_step(x, y)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        module.loss_and_grads(x, y)
        times.append(time.perf_counter() - t0)
    return {"held": int(out.saved_bytes or 0), "s": statistics.median(times), "spikes": float(out.hidden_counts.sum()) / len(y)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--memory-steps", type=int, nargs="+", default=[100, 500, 1000])
    ap.add_argument("--speed-steps", type=int, nargs="+", default=[200, 1000])
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--inputs", type=int, default=700)
    ap.add_argument("--classes", type=int, default=20)
    ap.add_argument("--dt", type=float, default=1e-3, help="seconds per step")
    ap.add_argument("--active", type=float, default=0.1, help="seconds of input at the start of every trial")
    ap.add_argument("--input-rate", type=float, default=50.0, help="Hz per input channel")
    ap.add_argument("--in-mean", type=float, default=0.7, help="model.init.in_mean (sets the hidden activity)")
    ap.add_argument("--in-std", type=float, default=1.0, help="model.init.in_std")
    ap.add_argument("--modes", nargs="+", default=["discrete"], help="EventProp time modes to run")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    spikes = trial_spikes(a.batch, a.inputs, a.input_rate, a.active)
    y = torch.randint(0, a.classes, (a.batch,), generator=torch.Generator().manual_seed(1))
    rows: dict[tuple[str, int], dict] = {}
    algos = [("bptt", None)] + [("eventprop", m) for m in a.modes]
    for steps in sorted(set(a.memory_steps) | set(a.speed_steps)):
        x = frames(spikes, a.batch, a.inputs, steps, a.dt)
        for algorithm, mode in algos:
            rows[algorithm + (f"-{mode}" if mode else ""), steps] = measure(build(algorithm, a, steps, mode), x, y, a.repeats)
    names = [alg + (f"-{m}" if m else "") for alg, m in algos]
    mb = 1e6
    print(f"T steps of {a.dt * 1e3:g} ms, the same input in the first {a.active:g} s: hidden {a.hidden}, batch {a.batch}, "
          f"{a.inputs} inputs at {a.input_rate:g} Hz ({len(spikes[0]) / a.batch:.0f} input spikes per trial), "
          f"{a.threads} thread(s); MB = 1e6 bytes")
    print("\nbytes kept for backward")
    print(f"{'T':>6} | " + " ".join(f"{n:>20}" for n in names) + " | " + " ".join(f"{'BPTT/' + n[10:]:>16}" for n in names[1:]))
    for steps in a.memory_steps:
        held = [rows[n, steps]["held"] for n in names]
        print(f"{steps:>6} | " + " ".join(f"{h / mb:>17.2f} MB" for h in held) + " | "
              + " ".join(f"{held[0] / max(h, 1):>16.1f}" for h in held[1:]))
    print("\ntraining step (forward + backward), median seconds")
    print(f"{'T':>6} | " + " ".join(f"{n:>20}" for n in names) + " | " + " ".join(f"{n[10:] + '/BPTT':>16}" for n in names[1:])
          + " | hidden spikes/trial")
    for steps in a.speed_steps:
        s = [rows[n, steps]["s"] for n in names]
        print(f"{steps:>6} | " + " ".join(f"{v:>19.3f}s" for v in s) + " | "
              + " ".join(f"{v / s[0]:>16.2f}" for v in s[1:]) + " | "
              + " ".join(f"{rows[n, steps]['spikes']:.0f}" for n in names))


if __name__ == "__main__":
    main()
