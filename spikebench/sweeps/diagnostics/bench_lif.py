"""CPU speed of BPTT's training step: the fast LIF path against the eager loops and the matrix products alone.

    python -m spikebench.sweeps.diagnostics.bench_lif                      # recurrent, hidden 256, batch 32, T = 1000, 700 inputs
    python -m spikebench.sweeps.diagnostics.bench_lif --steps 500 --hidden 512 --feedforward

Four timings of one training step (loss and every parameter's gradient; no optimiser update), each the
median of about --repeats timed runs after a warm-up (algorithms/measure.step_time), on the wall clock and on
the CPU clock of this process (on a shared machine the CPU time of a single-threaded run, --threads 1, is the
steadier number):

- fast: BPTT with `model.backend=auto` (on CPU the compiled C++ loop, algorithms/kernels/cpu_lif.py).
- loop: BPTT with `model.backend=reference`: `neuron.LIFSequence` with its eager per-step loops
  (no-grad forward, discrete-adjoint backward, both stepping in Python).
- eager: BPTT through the plainly unrolled network, autograd recording every per-step operation
  (`neuron.lif_reference`; readout filters on the reference loop too).
- products: the step's matrix products alone: input projection x W_in and its weight gradient, the T
  per-step recurrent products s[t-1] W_rec (forward) and g_I[t+1] W_recᵀ (backward), and the W_rec
  gradient Σ_t s[t-1]ᵀ g_I[t].

The issue's bar: fast ≤ 3 × products and eager ≥ 3 × fast.
"""

from __future__ import annotations

import argparse

import torch

from spikebench.algorithms import build_module
from spikebench.datamodules import data_shape
from spikebench.algorithms.measure import step_time
from spikebench.algorithms.neuron import lif_reference
from spikebench.configs import compose_config


def make_module(backend: str, args: argparse.Namespace):
    cfg = compose_config([
        "algorithm=bptt", f"model.hidden={args.hidden}", f"model.recurrent={not args.feedforward}",
        f"data.channels={args.inputs}", "data.dt=1e-3", f"data.duration={args.steps * 1e-3}",
        f"model.backend={backend}", "model.init.in_mean=1.0", "model.init.in_std=3.0",
    ])
    torch.manual_seed(0)
    return build_module(cfg, data_shape(cfg))


def eager_step(module, x: torch.Tensor, y: torch.Tensor) -> None:
    """BPTT's forward_backward with the hidden layer unrolled step by step under autograd."""
    net = module.net
    spikes, _ = lif_reference(net.drive(x), net.w_rec, net.hidden, module.surrogate, module.slope, module.detach_reset)
    loss, _ = module.objective(net.readout(spikes), spikes, y)
    loss.backward()


@torch.no_grad()
def products_step(x: torch.Tensor, w_in: torch.Tensor, w_rec: torch.Tensor | None, rate: float) -> None:
    """The matrix products of one BPTT step, on stand-in spikes and gradients of the right shapes."""
    batch, steps, _ = x.shape
    hidden = w_in.shape[1]
    a = x @ w_in  # input projection
    if w_rec is not None:
        s = (torch.rand(batch, hidden) < rate).float()
        i = torch.empty(batch, hidden)
        for t in range(1, steps):  # forward: I[t] += s[t-1] W_rec
            torch.addmm(a[:, t], s, w_rec, out=i)
        g = torch.randn(batch, hidden)
        back = torch.empty(batch, hidden)
        for t in range(steps - 1):  # backward: g_s[t] += g_I[t+1] W_recᵀ
            torch.mm(g, w_rec.T, out=back)
        s_all = (torch.rand(batch * (steps - 1), hidden) < rate).float()
        s_all.T @ a[:, 1:].reshape(-1, hidden)  # dL/dW_rec = Σ_t s[t-1]ᵀ g_I[t]
    x.reshape(-1, x.shape[2]).T @ a.reshape(-1, hidden)  # dL/dW_in = xᵀ g_I


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--inputs", type=int, default=700)
    ap.add_argument("--density", type=float, default=0.01, help="input spikes per channel and step")
    ap.add_argument("--feedforward", action="store_true", help="no recurrent weights")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs of fast, loop and products (median kept)")
    ap.add_argument("--eager-repeats", type=int, default=1, help="timed runs of the unrolled autograd step (slow)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    fast, loop = make_module("auto", args), make_module("reference", args)
    torch.manual_seed(1)
    x = (torch.rand(args.batch, args.steps, args.inputs) < args.density).float()
    y = torch.randint(0, fast.cfg.data.n_classes, (args.batch,))
    small = x[:, :20]
    fast.loss_and_grads(small, y)  # compile/load the C++ loop, warm the libraries
    loop.loss_and_grads(small, y)
    with torch.no_grad():
        rate = float(loop.simulate(x)[0].mean())
    w_rec = None if args.feedforward else fast.net.w_rec.detach()

    runs = {
        "fast": lambda: fast.loss_and_grads(x, y),
        "loop": lambda: loop.loss_and_grads(x, y),
        "products": lambda: products_step(x, fast.net.w_in.detach(), w_rec, rate),
        "eager": lambda: eager_step(loop, x, y),
    }
    wall, cpu = {}, {}
    threads = torch.get_num_threads()
    for name, fn in runs.items():
        n = args.eager_repeats if name == "eager" else args.repeats
        wall[name] = step_time(fn, threads=threads, runs=n, clock="wall").median_s
        cpu[name] = step_time(fn, threads=threads, runs=n, clock="cpu").median_s

    kind = "feed-forward" if args.feedforward else "recurrent"
    print(f"BPTT training step, {kind}, hidden {args.hidden}, batch {args.batch}, T = {args.steps}, "
          f"{args.inputs} inputs, {torch.get_num_threads()} threads, hidden rate {rate:.3f} spikes/step")
    print("| what | wall s | CPU s | × products (wall) | × products (CPU) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    labels = {
        "products": "matrix products alone",
        "fast": "fast path (model.backend=auto → compiled C++ loop)",
        "loop": "LIFSequence eager per-step loops (model.backend=reference)",
        "eager": "unrolled network under autograd (eager per-step ops)",
    }
    for name in ("products", "fast", "loop", "eager"):
        print(f"| {labels[name]} | {wall[name]:.3f} | {cpu[name]:.3f} | {wall[name] / wall['products']:.2f} | "
              f"{cpu[name] / cpu['products']:.2f} |")
    for what, t in (("wall", wall), ("CPU", cpu)):
        print(f"{what}: fast / products = {t['fast'] / t['products']:.2f} (bar: ≤ 3)   "
              f"eager / fast = {t['eager'] / t['fast']:.1f} (bar: ≥ 3)   loop / fast = {t['loop'] / t['fast']:.2f}")


if __name__ == "__main__":
    main()
