"""The one GPU check of the fused Triton LIF kernels: correctness, then speed, as Markdown tables.

    python -m spikebench.sweeps.diagnostics.gpu_check                 # on a machine with a CUDA GPU; about 5 minutes on an H200
    python -m spikebench.sweeps.diagnostics.gpu_check --skip-epochs   # kernels only
    TRITON_INTERPRET=1 python -m spikebench.sweeps.diagnostics.gpu_check --device cpu --smoke   # dry run of the script on a CPU

1. Correctness: `spikebench.sweeps.diagnostics.kernel_check.compare` for the test suite's cases plus two at training
   size (float32): spikes identical, U and gradients within 1e-5 of the reference loops (relative to
   the largest value). At training size a spike can flip where the two summation orders of s W_rec round
   differently right at threshold; the table then shows the fraction of differing spikes.
2. Forward + backward time of the recurrent LIF layer (drive a and W_rec requiring gradients; loss Σ g·s),
   T = 100/500/1000 × hidden 256/1024 × batch 32/256: fused Triton (`model.backend=triton`), the reference
   per-step loops of `LIFSequence` (`model.backend=reference`), and the plainly unrolled network under
   autograd (eager PyTorch, every per-step operation recorded).
3. Training time per epoch at SHD scale for every registered algorithm that imports: synthetic input
   spikes of SHD's shape (700 channels, 1000 steps of 1 ms, 8156 training samples, batch 32, hidden 256,
   recurrent), with `model.backend=auto` and `=reference`. Each run times whole training steps (loss,
   gradients, Adam update) for up to --batches batches or --budget seconds, and scales to the epoch's
   ceil(8156/32) = 255 batches (the table says how many were measured).
4. With --sweep-layouts: the fused time for other tile sizes of the recurrent kernels (`triton_lif.TUNING`).
Exit status 1 if a correctness check fails.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time

import torch

from spikebench.algorithms import ALGORITHMS, build_module, get_algorithm
from spikebench.datamodules import data_shape
from spikebench.algorithms.measure import step_time
from spikebench.algorithms.neuron import LIFParams, lif_reference, lif_sequence
from spikebench.configs import compose_config

from .kernel_check import compare, default_cases

TOL = 1e-5


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def best_time(fn, device: str, repeats: int) -> float:
    """Median seconds of one call over about `repeats` timed calls after one warm-up call (which compiles the
    kernels), by torch.utils.benchmark's Timer (it synchronises CUDA) through measure.step_time."""
    return step_time(fn, threads=torch.get_num_threads(), warmup=1, runs=repeats).median_s


# ----------------------------------------------------------------------------------------------
# 1. Correctness
# ----------------------------------------------------------------------------------------------


def check_correctness(device: str, smoke: bool) -> bool:
    cases = default_cases("triton")
    if not smoke:
        cases += [dict(batch=32, steps=200, hidden=256, recurrent=True, seed=3),
                  dict(batch=64, steps=100, hidden=1024, recurrent=True, seed=4)]
    print("\n### Correctness: fused Triton kernels against the reference loops (float32)\n")
    print("| layer | surrogate | reset grad | batch×T×hidden | spike rate | spikes equal (differ) | U | dL/da | dL/dW_rec | readout | ok |")
    print("| --- | --- | --- | --- | ---: | --- | ---: | ---: | ---: | ---: | --- |")
    all_ok = True
    for i, case in enumerate(cases):
        r = compare("triton", device, **case)
        small = i < len(default_cases("triton"))
        errs_ok = max(r["u_err"], r["grad_a_err"], r["grad_w_err"], r["filter_err"]) <= TOL
        ok = errs_ok and r["spikes_equal"]
        if small:  # the test suite's cases must match exactly like under the interpreter
            all_ok &= ok
        print(f"| {'rec' if r['recurrent'] else 'ff'} | {r['surrogate']} | {not r['detach_reset']} | "
              f"{r['batch']}×{r['steps']}×{r['hidden']} | {r['spike_rate']:.3f} | {r['spikes_equal']} "
              f"({r['spike_mismatch_frac']:.1e}) | {r['u_err']:.1e} | {r['grad_a_err']:.1e} | {r['grad_w_err']:.1e} | "
              f"{r['filter_err']:.1e} | {'yes' if ok else ('NO' if small else 'see note')} |")
    return all_ok


# ----------------------------------------------------------------------------------------------
# 2. Forward + backward of the LIF layer
# ----------------------------------------------------------------------------------------------


def layer_times(
    device: str, steps: int, hidden: int, batch: int, repeats: int, kinds: tuple[str, ...] = ("triton", "reference", "eager")
) -> dict[str, float]:
    torch.manual_seed(0)
    a = (torch.rand(batch, steps, hidden, device=device) * 2.2 - 0.6).requires_grad_()
    w = (torch.randn(hidden, hidden, device=device) * 0.4 / math.sqrt(hidden)).requires_grad_()
    g = torch.randn(batch, steps, hidden, device=device)
    p = LIFParams()

    def run(kind: str):
        def fn():
            a.grad = w.grad = None
            if kind == "eager":
                s, _ = lif_reference(a, w, p)
            else:
                s = lif_sequence(a, w, dataclasses.replace(p, backend=kind))
            s.backward(g)
        return fn

    return {kind: best_time(run(kind), device, 1 if kind == "eager" else repeats) for kind in kinds}


def layer_table(device: str, args: argparse.Namespace) -> None:
    print("\n### Forward + backward of the recurrent LIF layer (float32; ms, best of runs)\n")
    print("| T | hidden | batch | fused Triton | reference loop | eager autograd | loop / fused | eager / fused |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for steps in args.steps:
        for hidden in args.hidden:
            for batch in args.batch:
                try:
                    t = layer_times(device, steps, hidden, batch, args.repeats)
                except Exception as err:  # out of memory, a kernel that fails to build: report and go on
                    print(f"| {steps} | {hidden} | {batch} | failed: {type(err).__name__}: {str(err)[:80]} | | | | |")
                    continue
                print(f"| {steps} | {hidden} | {batch} | {1e3 * t['triton']:.1f} | {1e3 * t['reference']:.1f} | "
                      f"{1e3 * t['eager']:.1f} | {t['reference'] / t['triton']:.1f} | {t['eager'] / t['triton']:.1f} |",
                      flush=True)


# ----------------------------------------------------------------------------------------------
# 3. Epoch time per algorithm at SHD scale
# ----------------------------------------------------------------------------------------------


def epoch_time(name: str, backend: str, device: str, args: argparse.Namespace) -> tuple[float, float, int]:
    """(seconds per training step, seconds per epoch scaled from the measured steps, steps measured)."""
    cfg = compose_config([
        f"algorithm={name}", f"model.hidden={args.epoch_hidden}", "model.recurrent=true", "data.channels=700",
        "data.dt=1e-3", f"data.duration={args.epoch_steps * 1e-3}", f"data.batch_size={args.epoch_batch}",
        f"model.backend={backend}", "model.init.in_mean=1.0", "model.init.in_std=3.0",
    ])
    torch.manual_seed(0)
    module = build_module(cfg, data_shape(cfg)).to(device)
    opt = module.configure_optimizers()
    opt = opt["optimizer"] if isinstance(opt, dict) else opt
    n_batches = math.ceil(args.samples / args.epoch_batch)
    gen = torch.Generator(device=device).manual_seed(0)
    x = (torch.rand(args.epoch_batch, args.epoch_steps, 700, device=device, generator=gen) < args.density).float()
    y = torch.randint(0, cfg.data.n_classes, (args.epoch_batch,), device=device, generator=gen)

    def step():
        module.loss_and_grads(x, y)
        opt.step()

    step()  # warm-up: kernel compilation, allocator
    sync(device)
    t0, done = time.perf_counter(), 0
    while done < min(args.batches, n_batches) and (done == 0 or time.perf_counter() - t0 < args.budget):
        step()
        sync(device)
        done += 1
    per = (time.perf_counter() - t0) / done
    return per, per * n_batches, done


def epoch_table(device: str, args: argparse.Namespace) -> None:
    n_batches = math.ceil(args.samples / args.epoch_batch)
    print(f"\n### Training epoch at SHD scale ({args.samples} samples, batch {args.epoch_batch} = {n_batches} steps, "
          f"T = {args.epoch_steps}, 700 inputs, hidden {args.epoch_hidden}, recurrent; synthetic spikes)\n")
    print("| algorithm | model.backend | s / step | epoch s | steps measured |")
    print("| --- | --- | ---: | ---: | ---: |")
    skipped = []
    for name in ALGORITHMS:
        try:
            get_algorithm(name)
        except Exception as err:  # not landed yet, or broken: say so and go on
            skipped.append(f"{name} ({type(err).__name__}: {str(err).splitlines()[0][:80]})")
            continue
        for backend in ("auto", "reference"):
            try:
                per, epoch, done = epoch_time(name, backend, device, args)
            except Exception as err:
                print(f"| {name} | {backend} | failed: {type(err).__name__}: {str(err).splitlines()[0][:80]} | | |")
                continue
            print(f"| {name} | {backend} | {per:.3f} | {epoch:.1f} | {done} |", flush=True)
    if skipped:
        print("\nSkipped (import failed): " + "; ".join(skipped))


# ----------------------------------------------------------------------------------------------
# 4. (optional) Tile sizes of the recurrent kernels
# ----------------------------------------------------------------------------------------------


def layout_sweep(device: str, args: argparse.Namespace) -> None:
    """Fused forward+backward time for other recurrent layouts (triton_lif.TUNING), to pick `_layout`'s."""
    from spikebench.algorithms.kernels import triton_lif

    steps = args.steps[0] if args.smoke else 500
    problems = ((args.batch[0], args.hidden[0]),) if args.smoke else ((32, 256), (256, 1024))
    print(f"\n### Recurrent kernel layouts: fused forward + backward, T = {steps} (ms)\n")
    print("| batch | hidden | block_b | block_k | stages | ms |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for batch, hidden in problems:
        default = triton_lif._layout(batch, hidden, True)
        for block_b in (2, 4, 8):
            for block_k in (4, 8):
                for stages in sorted({1, default["STAGES"]}):
                    triton_lif.TUNING.update(block_b=block_b, block_k=block_k, stages=stages)
                    try:
                        ms = 1e3 * layer_times(device, steps, hidden, batch, args.repeats, kinds=("triton",))["triton"]
                        cell = f"{ms:.1f}"
                    except Exception as err:  # e.g. out of registers / shared memory
                        cell = f"failed: {type(err).__name__}"
                    finally:
                        triton_lif.TUNING.clear()
                    print(f"| {batch} | {hidden} | {block_b} | {block_k} | {stages} | {cell} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--steps", type=int, nargs="+", default=[100, 500, 1000])
    ap.add_argument("--hidden", type=int, nargs="+", default=[256, 1024])
    ap.add_argument("--batch", type=int, nargs="+", default=[32, 256])
    ap.add_argument("--repeats", type=int, default=3, help="timed runs of fused and reference (eager: 1)")
    ap.add_argument("--samples", type=int, default=8156, help="training samples per epoch (SHD: 8156)")
    ap.add_argument("--epoch-steps", type=int, default=1000)
    ap.add_argument("--epoch-hidden", type=int, default=256)
    ap.add_argument("--epoch-batch", type=int, default=32)
    ap.add_argument("--density", type=float, default=0.01, help="input spikes per channel and step")
    ap.add_argument("--batches", type=int, default=30, help="most training steps timed per algorithm and backend")
    ap.add_argument("--budget", type=float, default=15.0, help="seconds of timed steps per algorithm and backend")
    ap.add_argument("--skip-epochs", action="store_true")
    ap.add_argument("--sweep-layouts", action="store_true", help="also time other tile sizes of the recurrent kernels")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: check that the script runs (CPU, interpreter)")
    args = ap.parse_args()
    if args.smoke:
        args.steps, args.hidden, args.batch, args.repeats = [20], [16, 32], [2, 4], 1
        args.samples, args.epoch_steps, args.epoch_hidden, args.epoch_batch, args.batches = 8, 20, 16, 4, 2
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("no CUDA device: run on a GPU machine (or --device cpu --smoke with TRITON_INTERPRET=1)")
    import triton

    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU (Triton interpreter)"
    print(f"## LIF kernels on {name} (torch {torch.__version__}, triton {triton.__version__})")
    ok = check_correctness(args.device, args.smoke)
    layer_table(args.device, args)
    if not args.skip_epochs:
        epoch_table(args.device, args)
    if args.sweep_layouts:
        layout_sweep(args.device, args)
    print(f"\ncorrectness: {'PASS' if ok else 'FAIL'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
