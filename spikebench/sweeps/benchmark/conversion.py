"""The accuracy–latency curve of a converted network (`algorithm=ann2snn`): the trained ReLU network and its spiking
conversion at 1, 2, 4, … simulation steps per input frame, on the run's test set.

    python -m spikebench.sweeps.benchmark.conversion runs/<an ann2snn run>                    # steps 1 … 64
    python -m spikebench.sweeps.benchmark.conversion runs/<run> --steps 1 4 16 --out curve.csv --checkpoint last

The run's own configuration and checkpoint (best by default), with the conversion scale λ it holds (set from the
training recordings when the run validated it; algorithms/ann2snn.py). Per row: test accuracy, synaptic operations
per sample counted as the benchmark counts them (sweeps/benchmark/neurobench.py: accumulates for spikes, multiply-
accumulates for the input frames and the ANN's activations), hidden spikes per sample, and the inference time per
sample (the forward pass over the whole test set, no gradient, this process's threads; `--threads`, default 1).
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import torch

DEFAULT_STEPS = (1, 2, 4, 8, 16, 32, 64)


def ann_trace(net, x: torch.Tensor):
    """The trained ReLU network's operations: x → W_in, h[t-1] → W_rec, h → W_out (activations are not binary:
    multiply-accumulates)."""
    from spikebench.algorithms.trace import Connection, Trace, previous_step

    h, _ = net(x)
    out = Trace(activations=[h])
    out.connections.append(Connection("w_in", net.w_in, x))
    if net.w_rec is not None:
        out.connections.append(Connection("w_rec", net.w_rec, previous_step(h)))
    out.connections.append(Connection("w_out", net.w_out, h))
    return out


def measure(module, batches: list[tuple[torch.Tensor, torch.Tensor]], steps: int | None) -> dict[str, float]:
    """Accuracy, SynOps and time per sample of the ANN (steps None) or the conversion at `steps` per frame."""
    from spikebench.sweeps.benchmark.neurobench import synaptic_operations

    net = module.net
    correct = samples = 0
    ops = {"Effective_ACs": 0.0, "Effective_MACs": 0.0}
    spikes = wall = 0.0
    with torch.no_grad():
        for x, y in batches:
            t0 = time.perf_counter()
            if steps is None:
                h, v_out = net(x)
            else:
                net.steps = steps
                h, v_out = net.simulate(x)
            wall += time.perf_counter() - t0
            _, logits = module.objective(v_out, h, y)
            correct += int((logits.argmax(-1) == y).sum())
            samples += len(y)
            spikes += float(h.sum()) if steps is not None else float("nan")
            tr = ann_trace(net, x) if steps is None else module.trace(x)
            for k, v in synaptic_operations(tr).items():
                if k in ops:
                    ops[k] += v
    return {"steps": steps if steps is not None else 0, "accuracy": correct / samples,
            "synops_acs": ops["Effective_ACs"] / samples, "synops_macs": ops["Effective_MACs"] / samples,
            "hidden_spikes": spikes / samples, "ms_per_sample": 1e3 * wall / samples}


def curve(run: str | Path, steps=DEFAULT_STEPS, checkpoint: str = "best") -> list[dict[str, float]]:
    """The ANN's row (steps 0) and one row per number of steps."""
    from spikebench.algorithms import get_algorithm
    from spikebench.algorithms.checkpoint import checkpoint_path
    from spikebench.configs import load_run_config
    from spikebench.datamodules import build_datamodule
    from spikebench.errors import UserError

    cfg = load_run_config(Path(run))
    if cfg.algorithm.name != "ann2snn":
        raise UserError(f"{run} trained algorithm={cfg.algorithm.name}; this curve is for algorithm=ann2snn runs")
    module = get_algorithm("ann2snn").load_from_checkpoint(checkpoint_path(Path(run), checkpoint), map_location="cpu")
    module.eval()
    dm = build_datamodule(cfg, fit=False)
    dm.prepare_data()
    dm.setup("test")
    batches = list(dm.test_dataloader())
    rows = [measure(module, batches, None)]
    rows += [measure(module, batches, s) for s in steps]
    return rows


def markdown(rows: list[dict[str, float]]) -> str:
    lines = ["| Steps per frame | Test acc. (%) | SynOps ACs / sample | SynOps MACs / sample | Hidden spikes / sample "
             "| Inference ms / sample |", "|---|---|---|---|---|---|"]
    for r in rows:
        name = "ANN (trained)" if r["steps"] == 0 else str(int(r["steps"]))
        spikes = "–" if r["steps"] == 0 else f"{r['hidden_spikes']:.4g}"
        lines.append(f"| {name} | {100 * r['accuracy']:.1f} | {r['synops_acs']:.3g} | {r['synops_macs']:.3g} | "
                     f"{spikes} | {r['ms_per_sample']:.3g} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from spikebench.errors import UserError

    p = argparse.ArgumentParser(prog="python -m spikebench.sweeps.benchmark.conversion", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", help="the folder of an algorithm=ann2snn run")
    p.add_argument("--steps", type=int, nargs="+", default=list(DEFAULT_STEPS), help="simulation steps per frame")
    p.add_argument("--checkpoint", default="best", help="best | last | a .ckpt file")
    p.add_argument("--out", help="also write the rows to this CSV file")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = p.parse_args(argv)
    if any(s < 1 for s in args.steps):
        p.error("--steps must be >= 1")
    torch.set_num_threads(args.threads)
    try:
        rows = curve(args.run, args.steps, args.checkpoint)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(markdown(rows))
    if args.out:
        with open(args.out, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
