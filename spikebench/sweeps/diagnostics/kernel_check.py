"""Compare a backend with the reference loops on random inputs: the check behind the tests and sweeps/diagnostics/gpu_check.

`compare(backend, ...)` runs forward (spikes, U), the surrogate-gradient backward (dL/da, dL/dW_rec) and the
readout filter once with `backend` and once with `reference`, and reports how far apart they are.
Run as a script it prints one JSON line per case (the test suite runs it in a subprocess with
TRITON_INTERPRET=1, so that the Triton kernels execute on the CPU):

    TRITON_INTERPRET=1 python -m spikebench.sweeps.diagnostics.kernel_check --backend triton --device cpu
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math

import torch

from spikebench.algorithms.neuron import LIFParams, exp_filter, lif_forward, lif_sequence


def rel_err(x: torch.Tensor, ref: torch.Tensor) -> float:
    """max |x − ref| / max |ref| (0 when both are zero)."""
    scale = ref.abs().max().item()
    diff = (x - ref).abs().max().item()
    return diff / scale if scale > 0 else diff


def compare(
    backend: str,
    device: str = "cpu",
    dtype: torch.dtype = torch.float32,
    batch: int = 3,
    steps: int = 30,
    hidden: int = 24,
    recurrent: bool = True,
    surrogate: str = "fast_sigmoid",
    detach_reset: bool = True,
    v_reset: float = 0.1,
    seed: int = 0,
) -> dict:
    """Errors of `backend` against `reference` on one random problem (drive large enough to spike often)."""
    gen = torch.Generator().manual_seed(seed)
    ref_p = LIFParams(dt=1e-3, tau_mem=12e-3, tau_syn=4e-3, v_reset=v_reset, backend="reference")
    p = dataclasses.replace(ref_p, backend=backend)
    a = (torch.rand(batch, steps, hidden, generator=gen, dtype=torch.float64) * 4 - 0.8).to(device, dtype)
    w_std = 2.0 / math.sqrt(hidden)
    w = (torch.randn(hidden, hidden, generator=gen, dtype=torch.float64) * w_std).to(device, dtype) if recurrent else None
    g = torch.randn(batch, steps, hidden, generator=gen, dtype=torch.float64).to(device, dtype)
    out: dict = {"backend": backend, "dtype": str(dtype).replace("torch.", ""), "batch": batch, "steps": steps,
                 "hidden": hidden, "recurrent": recurrent, "surrogate": surrogate, "detach_reset": detach_reset}

    s_ref, u_ref = lif_forward(a, w, ref_p)
    s, u = lif_forward(a, w, p)
    out["spike_rate"] = s_ref.mean().item()
    out["spikes_equal"] = bool(torch.equal(s, s_ref))
    out["spike_mismatch_frac"] = (s != s_ref).float().mean().item()
    out["u_err"] = rel_err(u, u_ref)

    grads = {}
    for name, params in (("ref", ref_p), ("fast", p)):
        a_ = a.clone().requires_grad_()
        w_ = w.clone().requires_grad_() if recurrent else None
        spikes = lif_sequence(a_, w_, params, surrogate, 3.0, detach_reset)
        spikes.backward(g)
        grads[name] = (a_.grad, w_.grad if recurrent else None)
    out["grad_a_err"] = rel_err(grads["fast"][0], grads["ref"][0])
    out["grad_w_err"] = rel_err(grads["fast"][1], grads["ref"][1]) if recurrent else 0.0

    filt = [rel_err(exp_filter(a, 0.9, rev, backend=backend), exp_filter(a, 0.9, rev, backend="reference"))
            for rev in (False, True)]
    out["filter_err"] = max(filt)
    return out


def default_cases(backend: str) -> list[dict]:
    """Both layer kinds × every surrogate, each with one reset mode (float32); odd sizes; float64 for `cpu`.

    Small on purpose: under TRITON_INTERPRET=1 the Triton kernels run in NumPy, one program at a time.
    """
    surrogates = ("fast_sigmoid", "arctan", "sigmoid", "triangle")
    cases = [dict(recurrent=r, surrogate=s, detach_reset=(j + r) % 2 == 0)
             for r in (False, True) for j, s in enumerate(surrogates)]
    if backend == "cpu":  # cheap: every combination
        cases += [dict(c, detach_reset=not c["detach_reset"]) for c in cases]
    else:  # interpreted: the feed-forward kernels share `_surrogate` with the recurrent ones; two suffice
        cases = [c for c in cases if c["recurrent"] or c["surrogate"] in ("arctan", "sigmoid")]
    cases += [dict(batch=9, steps=20, hidden=20, recurrent=True, seed=1),  # rows over 3 programs, H not 2^k
              dict(batch=2, steps=25, hidden=130, recurrent=False, seed=2)]  # H over two feed-forward blocks
    if backend == "cpu":
        cases += [dict(c, dtype=torch.float64) for c in cases]
    return cases


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backend", default="triton", choices=["triton", "cpu"])
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    for case in default_cases(args.backend):
        print(json.dumps(compare(args.backend, args.device, **case)), flush=True)


if __name__ == "__main__":
    main()
