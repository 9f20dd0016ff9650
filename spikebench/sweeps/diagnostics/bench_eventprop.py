"""EventProp against BPTT as trials and layers grow: step memory, step time, and what they grow with.

    OMP_NUM_THREADS=1 python -m spikebench.sweeps.diagnostics.bench_eventprop                 # the tables of the README (~10 min)
    python -m spikebench.sweeps.diagnostics.bench_eventprop --steps 100 1000 --hidden 256 --no-rss   # a quick look
    python -m spikebench.sweeps.diagnostics.bench_eventprop --one eventprop 1000 256 shd      # one RSS cell in this process (JSON)

Input like SHD's: Poisson spikes at `--input-rate` spikes per second per trial (default 8000, SHD's mean),
spread over the 700 channels and over the whole trial, binned at dt = 1 ms; the hidden layer (recurrent, batch
32) fires at 20–60 Hz (input weights' mean `--in-mean`; the rates are printed). Per case both algorithms start
from the same weights and see the same batch. Figures (algorithms/measure.py):

- batch: the bytes of the input batch in the form the algorithm receives it (`data.format=auto`: events for both,
  frames with `--format frames`), made from the trials' spike lists by the datamodule's own binning.
- step memory: the peak of tensor memory allocated during one training step (forward and backward) beyond what
  existed before it, from PyTorch's allocation events; the suite's one memory measure. "Whole" = batch + step.
- RSS growth (cross-check): how far the peak resident set of a fresh process rose while it binned the batch from
  the spike lists and ran one step (`--one`); it has a floor of a few MB and also sees memory that is not a tensor.
- step time: median wall seconds of a training step, `torch.utils.benchmark.Timer`, `--threads` threads; BPTT
  runs its compiled C++ loop (model.backend=auto), EventProp its compiled event loops (kernels/cpu_events.py).

Denormal floats are flushed to zero (`torch.set_flush_denormal`): in long silent stretches the decaying
currents and adjoints of every algorithm reach denormal range, where x86 arithmetic is ~10× slower.

Three series: (1) T = 100 … 2000 at hidden 256 with SHD-like activity over the whole trial; (2) hidden 256, 512,
1024 at T = 1000; (3) the input of the first 100 ms only, then silence, T = 100 … 2000: the same spikes in ever
longer trials. A least-squares fit over series (1) and (3) gives EventProp's memory as a fixed part plus bytes
per spike (input and hidden); a part that grew with T × hidden would show in series (3).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import torch

N_IN, BATCH, CLASSES, DT = 700, 32, 20, 1e-3


def trials(steps: int, rate: float, active_steps: int | None, seed: int = 0) -> torch.Tensor:
    """(batch, steps, 700) spike counts: `rate` input spikes per second per trial, uniform over channels and over
    the first `active_steps` steps (all steps if None)."""
    g = torch.Generator().manual_seed(seed)
    active = steps if active_steps is None else min(steps, active_steps)
    x = torch.zeros(BATCH, steps, N_IN)
    x[:, :active] = torch.poisson(torch.full((BATCH, active, N_IN), rate * DT / N_IN), generator=g)
    return x


def spike_lists(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The spikes of frames x as the datamodule's lists (times at the bins' centres, units, samples)."""
    b, t, c = x.nonzero(as_tuple=True)
    n = x[b, t, c].long()
    b, t, c = (v.repeat_interleave(n) for v in (b, t, c))
    return ((t.double() + 0.5) * DT).float(), c, b


def make_batch(module, lists, steps: int):
    """The batch as `module` receives it (its config's data.format), binned from the spike lists as the
    datamodule's Collate does."""
    from spikebench.datamodules.binning import bin_event_list, bin_events

    binning = bin_event_list if module.cfg.data.format == "events" else bin_events
    return binning(*lists, BATCH, steps, N_IN, DT)


def build(algorithm: str, steps: int, hidden: int, in_mean: float, fmt: str = "auto"):
    from spikebench.algorithms import build_module
    from spikebench.datamodules import data_shape
    from spikebench.configs import compose_config

    torch.manual_seed(0)
    cfg = compose_config([
        f"algorithm={algorithm}", f"model.hidden={hidden}", f"data.channels={N_IN}", f"data.duration={steps * DT}",
        f"data.dt={DT}", f"data.n_classes={CLASSES}", "model.recurrent=true", f"model.init.in_mean={in_mean}",
        f"data.format={fmt}",
    ])
    return build_module(cfg, data_shape(cfg))


def one_step(module, x, y):
    for prm in module.parameters():
        prm.grad = None
    return module.forward_backward(x, y)


def cell(algorithm: str, steps: int, hidden: int, pattern: str, a) -> dict:
    """Step memory and time of one (algorithm, case), in this process."""
    from spikebench.algorithms.measure import step_memory, step_time
    from spikebench.events import batch_nbytes

    frames = trials(steps, a.input_rate, 100 if pattern == "early" else None)
    y = torch.arange(BATCH) % CLASSES
    module = build(algorithm, steps, hidden, a.in_mean, a.format)
    x = make_batch(module, spike_lists(frames), steps)
    one_step(module, x, y)  # warm-up: compiled loops, allocator
    mem = step_memory(lambda: one_step(module, x, y))
    out = mem.value
    row = {"mem": mem.peak_bytes, "batch": batch_nbytes(x), "hidden_spikes": float(out.hidden_counts.sum()),
           "input_spikes": float(frames.sum())}
    if not a.no_time:
        row["s"] = step_time(lambda: one_step(module, x, y), threads=a.threads, min_run_time=a.min_run_time).median_s
    return row


def rss_cell(algorithm: str, steps: int, hidden: int, pattern: str, a) -> float:
    """Peak RSS growth of one step in a fresh process (bytes)."""
    cmd = [sys.executable, "-m", "spikebench.sweeps.diagnostics.bench_eventprop", "--one", algorithm, str(steps), str(hidden), pattern,
           "--in-mean", str(a.in_mean), "--input-rate", str(a.input_rate), "--format", a.format]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])["rss"]


def fit(rows: list[dict]) -> tuple[list[float], float]:
    """mem = fixed + β · (input + hidden spikes) (least squares); returns (fixed, β) and the largest |residual|
    relative to the measured value. (Input and hidden spikes grow together in these series, so one β for both.)"""
    a = torch.tensor([[1.0, r["input_spikes"] + r["hidden_spikes"]] for r in rows], dtype=torch.float64)
    b = torch.tensor([float(r["mem"]) for r in rows], dtype=torch.float64)
    coef = torch.linalg.lstsq(a, b[:, None]).solution.flatten()
    resid = ((a @ coef - b).abs() / b).max()
    return coef.tolist(), float(resid)


def table(title: str, key: str, cases: list, rows: dict, a) -> None:
    mb = 1e6
    print(f"\n{title}")
    head = (f"| {key} | input spikes/trial | hidden rate (Hz) | EventProp MB | BPTT MB | BPTT/EventProp | batch MB "
            "EventProp / BPTT | whole MB EventProp / BPTT | whole BPTT/EventProp |")
    sep = "|---|---|---|---|---|---|---|---|---|"
    if not a.no_rss:
        head += " RSS growth (binning + step) EventProp / BPTT (MB) |"
        sep += "---|"
    if not a.no_time:
        head += " EventProp s | BPTT s | EventProp/BPTT time |"
        sep += "---|---|---|"
    print(head)
    print(sep)
    for case in cases:
        e, b = rows["eventprop", case], rows["bptt", case]
        steps, hidden = case[0], case[1]
        rate = e["hidden_spikes"] / (BATCH * hidden * steps * DT)
        line = (f"| {case[0] if key == 'T' else case[1]} | {e['input_spikes'] / BATCH:.0f} | {rate:.1f} | "
                f"{e['mem'] / mb:.1f} | {b['mem'] / mb:.1f} | {b['mem'] / e['mem']:.1f}× | {e['batch'] / mb:.1f} / "
                f"{b['batch'] / mb:.1f} | {(e['mem'] + e['batch']) / mb:.1f} / {(b['mem'] + b['batch']) / mb:.1f} | "
                f"{(b['mem'] + b['batch']) / (e['mem'] + e['batch']):.1f}× |")
        if not a.no_rss:
            line += f" {e['rss'] / mb:.1f} / {b['rss'] / mb:.1f} |"
        if not a.no_time:
            line += f" {e['s']:.3f} | {b['s']:.3f} | {e['s'] / b['s']:.2f} |"
        print(line)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, nargs="+", default=[100, 200, 500, 1000, 2000])
    ap.add_argument("--hidden", type=int, nargs="+", default=[256, 512, 1024], help="series (2), at T = 1000")
    ap.add_argument("--input-rate", type=float, default=8000.0, help="input spikes per second per trial")
    ap.add_argument("--in-mean", type=float, default=0.8, help="model.init.in_mean (sets the hidden rate)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--min-run-time", type=float, default=2.0, help="seconds of timed steps per cell")
    ap.add_argument("--no-rss", action="store_true", help="skip the fresh-process RSS cross-check")
    ap.add_argument("--no-time", action="store_true", help="skip the timing")
    ap.add_argument("--format", default="auto", choices=("auto", "frames", "events"),
                    help="data.format of both (auto: each algorithm's own, events for both)")
    ap.add_argument("--one", nargs=4, metavar=("ALGORITHM", "T", "HIDDEN", "PATTERN"), help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    torch.set_flush_denormal(True)  # silent stretches decay I and V into denormal floats, slow for every algorithm
    if a.one:
        from spikebench.algorithms.measure import peak_rss_growth

        algorithm, steps, hidden, pattern = a.one[0], int(a.one[1]), int(a.one[2]), a.one[3]
        lists = spike_lists(trials(steps, a.input_rate, 100 if pattern == "early" else None))
        y = torch.arange(BATCH) % CLASSES
        module = build(algorithm, steps, hidden, a.in_mean, a.format)
        one_step(module, make_batch(module, spike_lists(trials(10, a.input_rate, None)), 10), y)  # warm-up
        print(json.dumps({"rss": peak_rss_growth(lambda: one_step(module, make_batch(module, lists, steps), y))}))
        return

    series = {
        "shd": [(t, 256) for t in a.steps],
        "hidden": [(1000, h) for h in a.hidden if h != 256 or 1000 not in a.steps],
        "early": [(t, 256) for t in a.steps],
    }
    rows: dict = {}
    for pattern, cases in series.items():
        for case in cases:
            for algorithm in ("eventprop", "bptt"):
                r = cell(algorithm, case[0], case[1], "early" if pattern == "early" else "shd", a)
                if not a.no_rss:
                    r["rss"] = rss_cell(algorithm, case[0], case[1], "early" if pattern == "early" else "shd", a)
                rows[algorithm, (case[0], case[1], pattern)] = r
                print(f"  {pattern} T={case[0]} hidden={case[1]} {algorithm}: "
                      + ", ".join(f"{k} {v:.4g}" for k, v in r.items()), file=sys.stderr, flush=True)

    def key(cases, pattern):
        return [(t, h, pattern) for t, h in cases]

    print(f"Batch {BATCH}, {N_IN} inputs at {a.input_rate:g} spikes/s per trial, recurrent, dt 1 ms, "
          f"{a.threads} thread(s); MB = 1e6 bytes. Command: python -m spikebench.sweeps.diagnostics.bench_eventprop "
          + " ".join(argv if argv is not None else sys.argv[1:]))
    table("(1) SHD-like activity over the whole trial, hidden 256", "T", key(series["shd"], "shd"), rows, a)
    hid = key(series["hidden"], "hidden")
    if 1000 in a.steps and 256 in a.hidden:
        rows["eventprop", (1000, 256, "hidden")] = rows["eventprop", (1000, 256, "shd")]
        rows["bptt", (1000, 256, "hidden")] = rows["bptt", (1000, 256, "shd")]
        hid = [(1000, 256, "hidden")] + hid
    table("(2) hidden size at T = 1000", "hidden", hid, rows, a)
    table("(3) the same input in the first 100 ms, then silence, hidden 256", "T", key(series["early"], "early"),
          rows, a)
    fit_rows = [rows["eventprop", c] for c in key(series["shd"], "shd") + key(series["early"], "early")]
    (fixed, per_spike), resid = fit(fit_rows)
    print(f"\nEventProp step memory ≈ {fixed / 1e6:.2f} MB + {per_spike:.1f} B × spikes (input + hidden), least squares "
          f"over (1) and (3) at hidden 256; largest residual {100 * resid:.1f} % of a measured value")


if __name__ == "__main__":
    main()
