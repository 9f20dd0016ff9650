"""Benchmark: ParaLIF's training step against its own input projection and against BPTT-LIF.

    python -m spikebench.sweeps.diagnostics.bench_paralif                       # hidden 256, batch 32, T = 100 500 1000
    python -m spikebench.sweeps.diagnostics.bench_paralif --recurrent --steps 1000

For each sequence length T, measured in this one run on this machine (median wall seconds of about --repeats
timed calls after a warm-up, algorithms/measure.step_time):
  paralif   one training step of algorithm=paralif: forward + backward (`loss_and_grads`), no optimiser update
  proj      its input projection alone: forward + backward (weight gradient) of the (batch·T, inputs) × (inputs,
            hidden) product, the part of the step that no neuron model can avoid
  bptt      the same step of algorithm=bptt (LIF with reset, sequential in time), for each `model.backend`
            in --bptt-backends (auto: the compiled C++ loop on CPU; reference: the eager per-step loop)
and the ratios paralif/proj (the cost of the parallel neuron on top of the product) and bptt/paralif.
"""

from __future__ import annotations

import argparse

import torch

from spikebench.algorithms import build_module
from spikebench.datamodules import data_shape
from spikebench.algorithms.measure import step_time
from spikebench.configs import compose_config


def median_seconds(fn, repeats: int) -> float:
    """Median wall seconds of fn() at this process's torch threads (warm-up first: allocations, FFT plans)."""
    return step_time(fn, threads=torch.get_num_threads(), runs=repeats).median_s


def training_step_time(
    algorithm: str, args: argparse.Namespace, x: torch.Tensor, y: torch.Tensor, *extra: str
) -> float:
    cfg = compose_config(
        [
            *extra,
            f"algorithm={algorithm}",
            f"model.hidden={args.hidden}",
            f"model.recurrent={str(args.recurrent).lower()}",
            f"data.channels={args.inputs}",
            *([f"algorithm.spike_mode={args.spike_mode}"] if algorithm == "paralif" and args.spike_mode else []),
        ]
    )
    module = build_module(cfg, data_shape(cfg))
    return median_seconds(lambda: module.loss_and_grads(x, y), args.repeats)


def projection_time(args: argparse.Namespace, x: torch.Tensor) -> float:
    w = torch.randn(args.inputs, args.hidden, requires_grad=True)
    g = torch.randn(x.shape[0], x.shape[1], args.hidden)

    def fwd_bwd() -> None:
        w.grad = None
        (x @ w).backward(g)

    return median_seconds(fwd_bwd, args.repeats)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, nargs="+", default=[100, 500, 1000])
    ap.add_argument("--inputs", type=int, default=700)
    ap.add_argument("--rate", type=float, default=0.02, help="input spike probability per channel and step")
    ap.add_argument("--recurrent", action="store_true", help="recurrent hidden layer (both algorithms)")
    ap.add_argument("--spike-mode", default=None, help="ParaLIF spike_mode (default: configs/algorithm/paralif.yaml)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--bptt-backends", nargs="*", default=["auto", "reference"], help="model.backend values for BPTT")
    ap.add_argument("--threads", type=int, default=0, help="torch threads; 0: torch's default")
    args = ap.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(
        f"# CPU, {torch.get_num_threads()} threads, torch {torch.__version__}; "
        f"hidden {args.hidden}, batch {args.batch}, "
        f"inputs {args.inputs}, {'recurrent' if args.recurrent else 'feed-forward'}, "
        f"ParaLIF-{args.spike_mode or compose_config(['algorithm=paralif']).algorithm.spike_mode}"
    )
    backends = args.bptt_backends
    head = "".join(f" {'bptt_' + b + '_s':>16} {'bptt_' + b + '/paralif':>22}" for b in backends)
    print(f"{'T':>6} {'paralif_s':>10} {'proj_s':>10} {'paralif/proj':>13}{head}")
    for steps in args.steps:
        x = (torch.rand(args.batch, steps, args.inputs) < args.rate).float()
        y = torch.randint(0, 20, (args.batch,))
        t_para = training_step_time("paralif", args, x, y)
        t_proj = projection_time(args, x)
        row = f"{steps:>6} {t_para:>10.4f} {t_proj:>10.4f} {t_para / t_proj:>13.2f}"
        for b in backends:
            t_bptt = training_step_time("bptt", args, x, y, f"model.backend={b}")
            row += f" {t_bptt:>16.4f} {t_bptt / t_para:>22.2f}"
        print(row, flush=True)


if __name__ == "__main__":
    main()
