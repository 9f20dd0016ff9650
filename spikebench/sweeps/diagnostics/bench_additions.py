"""What the network additions cost: learnable input delays (model.delays) and adaptive neurons (model.neuron=adlif),
against the same algorithm without them, in one run.

    OMP_NUM_THREADS=1 python -m spikebench.sweeps.diagnostics.bench_additions                   # T = 250, 1000
    python -m spikebench.sweeps.diagnostics.bench_additions --steps 250 --no-time                # memory only

The input is bench_eventprop's SHD-like batch (32 trials, 700 channels, Poisson spikes over the whole trial,
dt = 1 ms), binned as each module receives it (`--format`; auto: each algorithm's own form, the event batch for all three),
hidden 256, recurrent; every case starts from the same seed. Figures (algorithms/measure.py, the
suite's one measure): step memory, the allocator's peak during one training step beyond what existed before it;
step time, the median of `torch.utils.benchmark` timings with `--threads` threads. Ratios are to the plain
network of the same algorithm, measured in this run; the last line of each T compares EventProp with delays to BPTT
with delays (BPTT ÷ EventProp: how many times less memory and time EventProp's step takes). Delays:
`model.delays.max=0.1` (up to 100 steps). EventProp runs its default discrete mode.
"""

from __future__ import annotations

import argparse

import torch

from .bench_eventprop import BATCH, CLASSES, DT, N_IN, make_batch, one_step, spike_lists, trials

CASES = [  # (algorithm, label, overrides)
    ("bptt", "plain", []),
    ("bptt", "delays", ["model.delays.enabled=true", "model.delays.max=0.1"]),
    ("bptt", "adlif", ["model.neuron=adlif"]),
    ("bptt", "adlif + delays", ["model.neuron=adlif", "model.delays.enabled=true", "model.delays.max=0.1"]),
    ("paralif", "plain", []),
    ("paralif", "delays", ["model.delays.enabled=true", "model.delays.max=0.1"]),
    ("eventprop", "plain", []),
    ("eventprop", "delays", ["model.delays.enabled=true", "model.delays.max=0.1"]),
]


def build(algorithm: str, steps: int, hidden: int, in_mean: float, extra: list[str], fmt: str = "auto"):
    from spikebench.algorithms import build_module
    from spikebench.configs import compose_config
    from spikebench.datamodules import data_shape

    torch.manual_seed(0)
    cfg = compose_config([
        f"algorithm={algorithm}", f"model.hidden={hidden}", f"data.channels={N_IN}", f"data.duration={steps * DT}",
        f"data.dt={DT}", f"data.n_classes={CLASSES}", "model.recurrent=true", f"model.init.in_mean={in_mean}",
        f"data.format={fmt}", *extra,
    ])
    return build_module(cfg, data_shape(cfg))


def measure(algorithm: str, extra: list[str], steps: int, a) -> dict:
    from spikebench.algorithms.measure import step_memory, step_time
    from spikebench.events import batch_nbytes

    y = torch.arange(BATCH) % CLASSES
    module = build(algorithm, steps, a.hidden, a.in_mean, extra, a.format)
    x = make_batch(module, spike_lists(trials(steps, a.input_rate, None)), steps)  # as the module receives it
    one_step(module, x, y)  # warm-up
    mem = step_memory(lambda: one_step(module, x, y))
    row = {"mem": mem.peak_bytes, "rate": float(mem.value.hidden_counts.sum()) / (BATCH * a.hidden * steps * DT),
           "batch": batch_nbytes(x), "format": module.cfg.data.format}
    if not a.no_time:
        row["s"] = step_time(lambda: one_step(module, x, y), threads=a.threads, min_run_time=a.min_run_time).median_s
    return row


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, nargs="+", default=[250, 1000])
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--input-rate", type=float, default=8000.0, help="input spikes per second per trial")
    ap.add_argument("--in-mean", type=float, default=0.8, help="model.init.in_mean (sets the hidden rate)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--min-run-time", type=float, default=2.0, help="seconds of timed steps per cell")
    ap.add_argument("--no-time", action="store_true", help="memory only")
    ap.add_argument("--format", default="auto", choices=("auto", "frames", "events"),
                    help="data.format of every case (auto: each algorithm's own)")
    a = ap.parse_args(argv)
    torch.set_flush_denormal(True)
    torch.set_num_threads(a.threads)
    print(f"hidden {a.hidden}, recurrent, batch {BATCH}, {N_IN} inputs at {a.input_rate:g} spikes/s/trial, dt 1 ms; "
          f"{a.threads} thread(s); MB = 1e6 bytes")
    head = ("| T | algorithm | network | batch as | batch MB | hidden rate (Hz) | step MB | × plain |"
            + ("" if a.no_time else " step s | × plain |"))
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for steps in a.steps:
        base: dict[str, dict] = {}
        rows: dict[tuple[str, str], dict] = {}
        for algorithm, label, extra in CASES:
            row = rows[algorithm, label] = measure(algorithm, extra, steps, a)
            ref = base.setdefault(algorithm, row)
            line = (f"| {steps} | {algorithm} | {label} | {row['format']} | {row['batch'] / 1e6:.1f} | {row['rate']:.1f} | "
                    f"{row['mem'] / 1e6:.1f} | "
                    f"{row['mem'] / ref['mem']:.2f} |")
            if not a.no_time:
                line += f" {row['s']:.3f} | {row['s'] / ref['s']:.2f} |"
            print(line, flush=True)
        bp, ev = rows["bptt", "delays"], rows["eventprop", "delays"]
        whole = (bp["mem"] + bp["batch"]) / (ev["mem"] + ev["batch"])
        print(f"T = {steps}: with delays, BPTT / EventProp step memory {bp['mem'] / ev['mem']:.1f}× (with the batch "
              f"{whole:.1f}×)"
              + ("" if a.no_time else f", step time {bp['s'] / ev['s']:.2f}×"), flush=True)


if __name__ == "__main__":
    main()
