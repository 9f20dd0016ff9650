"""How far EventProp's `discrete` gradient is from the `exact` one, on the finite-difference test networks.

    python -m spikebench.sweeps.diagnostics.eventprop_modes                       # dt = 1 ms and 0.1 ms, seeds 0–24, every loss
    python -m spikebench.sweeps.diagnostics.eventprop_modes --dt 1e-3 --seeds 0 2 3
    python -m spikebench.sweeps.diagnostics.eventprop_modes --run runs/<an EventProp run> --samples 32   # real data

With `--run`, the comparison is made on what trained: that run's weights (its tested checkpoint), its dt,
integration, loss and regulariser form, on the first `--samples` recordings of its test set (in batches of
`--batch`, float64; the exact mode needs far more memory than the discrete one); with `model.delays` the delays'
gradient is compared too (the last per-tensor cosine).

The networks are those of tests/test_eventprop.py (`networks.small_network`: 2 trials, 5 inputs, 4 recurrent hidden,
3 outputs, 100 ms, 8 input spikes per channel; seeds 0, 2, 3 are the ones whose exact gradient the tests check
against finite differences). For each network and loss both modes compute dL/dW_in, dL/dW_rec, dL/dW_out from
the same weights; printed per dt and loss:

- per tensor: the cosine between the two gradients of each weight tensor (median, minimum, share ≥ 0.9);
- whole: the cosine between the concatenated gradients (all weights);
- same spikes: the networks on which both modes fire the same number of spikes per neuron and trial.

Why they differ: with `model.integration=exact` the per-step update is the continuous model sampled at the step
ends, but `discrete` puts each spike at the end of its step and resets there, so every spike lags the continuous
one by up to dt, and the lag accumulates along a neuron's spike train (each reset starts later); the two modes
then fire different spike trains, and the gradients are taken along different trajectories.
"""

from __future__ import annotations

import argparse
import statistics
from dataclasses import replace

import torch
import torch.nn.functional as F

from spikebench.algorithms.event_sim import InputSpikes, discrete_spikes, exact_spikes
from spikebench.algorithms.eventprop import Setup

from .networks import LOSSES, eventprop_grads, params, small_network


def compare(seed: int, kind: str, dt: float, duration: float, integration: str) -> tuple[list[float], float, bool]:
    """(per-tensor cosines, whole-gradient cosine, same spike counts) of one network and loss."""
    x, ws = small_network(seed, dt, duration, kind)
    p = replace(params(dt), integration=integration)
    y = torch.tensor([0, 1])
    exact, _ = eventprop_grads(x, ws, Setup(p, p, kind, True, 0.0), y)
    grid, _ = eventprop_grads(x, ws, Setup(p, p, kind, False, 0.0), y)
    per = [float(F.cosine_similarity(a.flatten(), b.flatten(), 0)) for a, b in zip(exact, grid)]
    whole = float(F.cosine_similarity(torch.cat([a.flatten() for a in exact]), torch.cat([b.flatten() for b in grid]), 0))
    inp = InputSpikes.from_frames(x, 64)
    se, _ = exact_spikes(inp, ws[0], ws[1], p)
    sd = discrete_spikes(inp, ws[0], ws[1], p)
    same = torch.equal(se.counts(x.shape[0], x.dtype), sd.counts(x.shape[0], x.dtype))
    return per, whole, same


def compare_run(run: str, samples: int, batch: int, checkpoint: str) -> None:
    """Per batch of a trained EventProp run's test recordings: per-tensor and whole cosines of discrete vs exact."""
    from pathlib import Path

    from spikebench.algorithms import get_algorithm
    from spikebench.algorithms.checkpoint import checkpoint_path
    from spikebench.configs import load_run_config
    from spikebench.datamodules import build_datamodule

    cfg = load_run_config(run)
    module = get_algorithm(cfg.algorithm.name).load_from_checkpoint(checkpoint_path(Path(run), checkpoint),
                                                                     map_location="cpu").double()
    grid = module.setup_
    exact = replace(grid, exact=True)
    dm = build_datamodule(cfg)
    dm.prepare_data()
    dm.setup("test")
    order = dm.eval_order(len(dm.test_set))[:samples]
    collate = dm.test_dataloader().collate_fn
    print(f"{run}: {cfg.algorithm.name}, dt {cfg.data.dt * 1e3:g} ms, integration {cfg.model.integration}, "
          f"loss {cfg.loss.kind}, trained in mode {cfg.algorithm.time_mode}; {len(order)} test recordings")
    per, whole = [], []
    for i in range(0, len(order), batch):
        x, y = collate([dm.test_set[j] for j in order[i:i + batch]])
        grads = []
        for setup in (exact, grid):
            module.setup_ = setup
            module.zero_grad(set_to_none=True)
            module.forward_backward(x.to(torch.float64), y)  # frames or the event batch
            delay = module.net.delays.delay if module.net.delays is not None else None  # model.delays: compared too
            grads.append([p.grad.detach().clone() for p in (module.net.w_in, module.net.w_rec, module.net.w_out, delay)
                          if p is not None and p.grad is not None])
        per += [float(F.cosine_similarity(a.flatten(), b.flatten(), 0)) for a, b in zip(*grads)]
        whole.append(float(F.cosine_similarity(torch.cat([a.flatten() for a in grads[0]]),
                                               torch.cat([b.flatten() for b in grads[1]]), 0)))
        print(f"  batch {i // batch}: whole {whole[-1]:+.3f}, per tensor "
              f"{', '.join(f'{c:+.3f}' for c in per[-len(grads[0]):])}",
              flush=True)
    module.setup_ = grid
    print(f"per tensor: {summary(per)} | whole: {summary(whole)}")


def summary(values: list[float]) -> str:
    share = sum(v >= 0.9 for v in values) / len(values)
    return f"median {statistics.median(values):.3f}  min {min(values):+.3f}  ≥0.9: {share:4.0%}"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dt", type=float, nargs="+", default=[1e-3, 1e-4], help="steps in seconds")
    ap.add_argument("--seeds", type=int, nargs="+", default=list(range(25)), help="small_network seeds")
    ap.add_argument("--duration", type=float, default=0.1, help="trial length in seconds")
    ap.add_argument("--losses", nargs="+", default=list(LOSSES), choices=LOSSES)
    ap.add_argument("--integration", nargs="+", default=["held", "exact"], choices=["held", "exact"], help="model.integration")
    ap.add_argument("--run", help="a trained EventProp run folder: compare on its weights and test recordings")
    ap.add_argument("--samples", type=int, default=32, help="--run: test recordings")
    ap.add_argument("--batch", type=int, default=4, help="--run: recordings per gradient")
    ap.add_argument("--checkpoint", default="last", help="--run: best | last")
    args = ap.parse_args(argv)
    if args.run:
        compare_run(args.run, args.samples, args.batch, args.checkpoint)
        return
    print(f"discrete vs exact EventProp gradients; networks {args.seeds[0]}…{args.seeds[-1]} ({len(args.seeds)}), "
          f"{args.duration * 1e3:g} ms")
    for integration, dt in ((i, dt) for i in args.integration for dt in args.dt):
        for kind in args.losses:
            rows = [compare(s, kind, dt, args.duration, integration) for s in args.seeds]
            per = [c for r in rows for c in r[0]]
            whole = [r[1] for r in rows]
            same = [r for r in rows if r[2]]
            same_whole = f"whole on those: {summary([r[1] for r in same])}" if same else ""
            print(f"{integration:5s} dt {dt * 1e3:g} ms  {kind:11s} per tensor: {summary(per)} | whole: {summary(whole)} | "
                  f"same spikes: {len(same)}/{len(rows)} {same_whole}", flush=True)


if __name__ == "__main__":
    main()
