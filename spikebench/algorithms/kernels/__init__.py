"""Fast backends of the LIF recurrence in `algorithms/neuron.py`, and the choice between them.

Backends (config key `model.backend`, carried by `LIFParams.backend`):

- `reference`: the eager per-step PyTorch loop in `neuron.py`, the specification the others are tested against.
- `cpu`: the same loop compiled as C++ (`cpu_lif.py`); spikes and U bitwise equal to the reference.
- `triton`: one fused Triton kernel per sequence for the forward and one for the backward (`triton_lif.py`);
  float32 on CUDA tensors (or CPU tensors when TRITON_INTERPRET=1, which is how the tests run it).
- `auto` (default): `triton` for float32 CUDA tensors, `cpu` for float32/float64 CPU tensors, else `reference`
  (an interpreted Triton kernel on CPU tensors is used only when asked for by name);
  a backend that cannot run here (no compiler, no Triton) falls back to `reference` with one warning.

Nothing here imports Triton or compiles C++ until a backend is first used.
"""

from __future__ import annotations

from spikebench.errors import ConfigError
import math
import os
import warnings

import torch

BACKENDS = ("auto", "reference", "triton", "cpu")

# Surrogates (algorithms/surrogates.py) that the compiled backends implement, by code; others run on `reference`.
SURROGATE_CODES = {"fast_sigmoid": 0, "superspike": 0, "arctan": 1, "sigmoid": 2, "triangle": 3}

TRITON_MAX_HIDDEN = 1024  # the recurrent Triton kernel keeps a whole hidden layer per program


def surrogate_constants(name: str, slope: float) -> tuple[int, float]:
    """(code, k) for the compiled backends: σ' evaluated with k = slope (arctan: k = π/2 · slope)."""
    code = SURROGATE_CODES[name]
    return code, (0.5 * math.pi * slope if code == 1 else float(slope))


def triton_interpreted() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def _triton_ok() -> bool:
    try:
        from . import triton_lif  # noqa: F401
    except Exception as err:  # triton missing or broken: fall back
        warnings.warn(f"Triton LIF kernels unavailable, using the reference loop ({err})", stacklevel=3)
        return False
    return True


_TRITON_OK: list[bool] = []


def triton_available() -> bool:
    if not _TRITON_OK:
        _TRITON_OK.append(_triton_ok())
    return _TRITON_OK[0]


def _triton_fits(t: torch.Tensor, w_rec: torch.Tensor | None) -> str | None:
    """Why the Triton kernels cannot run on t, or None if they can."""
    if t.dtype != torch.float32:
        return f"it runs in float32 only (got {t.dtype})"
    if not (t.is_cuda or (t.device.type == "cpu" and triton_interpreted())):
        return f"it needs CUDA tensors (got {t.device.type}; TRITON_INTERPRET=1 runs it on CPU)"
    if w_rec is not None and t.shape[-1] > TRITON_MAX_HIDDEN:
        return f"the recurrent kernel holds at most {TRITON_MAX_HIDDEN} hidden neurons (got {t.shape[-1]})"
    return None


def select_backend(
    requested: str, t: torch.Tensor, w_rec: torch.Tensor | None = None, surrogate: str | None = None
) -> str:
    """The backend that runs the recurrence on tensor t: 'reference', 'cpu' or 'triton'.

    An explicitly requested backend that cannot run raises ValueError; 'auto' falls back to 'reference'.
    """
    if requested not in BACKENDS:
        raise ConfigError(f"model.backend must be one of {', '.join(BACKENDS)}; got '{requested}'")
    if requested == "reference":
        return "reference"
    if surrogate is not None and surrogate not in SURROGATE_CODES:
        if requested != "auto":
            raise ConfigError(f"model.backend={requested} has no surrogate '{surrogate}'; use model.backend=reference")
        return "reference"
    if requested == "cpu" or (requested == "auto" and t.device.type == "cpu"):
        problem = None
        if t.device.type != "cpu":
            problem = f"it runs on CPU tensors (got {t.device.type})"
        elif t.dtype not in (torch.float32, torch.float64):
            problem = f"it runs in float32/float64 (got {t.dtype})"
        if problem is None:
            from . import cpu_lif

            if cpu_lif.available():
                return "cpu"
            problem = "the C++ loop failed to compile (see the warning above)"
        if requested == "cpu":
            raise ConfigError(f"model.backend=cpu cannot run here: {problem}")
        return "reference"
    problem = _triton_fits(t, w_rec)
    if problem is None and not triton_available():
        problem = "Triton failed to import (see the warning above)"
    if problem is None:
        return "triton"
    if requested == "triton":
        raise ConfigError(f"model.backend=triton cannot run here: {problem}")
    return "reference"


# ----------------------------------------------------------------------------------------------
# Running a compiled backend (neuron.py calls these after select_backend)
# ----------------------------------------------------------------------------------------------


def _triton_call(name: str, requested: str, *args):
    """triton_lif.<name>(*args); None if the kernel fails to build and the backend was 'auto'."""
    from triton import TritonError

    from . import triton_lif

    try:
        return getattr(triton_lif, name)(*args)
    except TritonError as err:  # compile error, too many registers/shared memory on this GPU, ...
        if requested != "auto":
            raise
        _TRITON_OK[:] = [False]
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        warnings.warn(f"Triton LIF kernel failed to build, using the reference loop ({first[:200]})", stacklevel=3)
        return None


def lif_forward(backend: str, requested: str, a: torch.Tensor, w_rec: torch.Tensor | None, p):
    """(spikes, U) from backend 'cpu' or 'triton'; None means: use the reference loop."""
    if backend == "cpu":
        from . import cpu_lif

        return cpu_lif.lif_forward(a, w_rec, p)
    return _triton_call("lif_forward", requested, a, w_rec, p)


def lif_backward(backend: str, requested: str, grad_spikes, u, w_rec, p, surrogate: str, slope: float,
                 detach_reset: bool):
    """dL/dI (batch, time, hidden) from backend 'cpu' or 'triton'; None means: use the reference loop."""
    code, k = surrogate_constants(surrogate, slope)
    if backend == "cpu":
        from . import cpu_lif

        return cpu_lif.lif_backward(grad_spikes, u, w_rec, p, code, k, detach_reset)
    return _triton_call("lif_backward", requested, grad_spikes, u, w_rec, p, code, k, detach_reset)


def exp_filter(backend: str, requested: str, x: torch.Tensor, decay: float, reverse: bool):
    """The readout filter from backend 'cpu' or 'triton'; None means: use the reference loop."""
    if backend == "cpu":
        from . import cpu_lif

        return cpu_lif.exp_filter(x, decay, reverse)
    return _triton_call("exp_filter", requested, x, decay, reverse)


__all__ = ["BACKENDS", "SURROGATE_CODES", "exp_filter", "lif_backward", "lif_forward", "select_backend",
           "surrogate_constants", "triton_available"]
