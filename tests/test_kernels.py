"""The fast LIF backends (algorithms/kernels/) against the reference loops of algorithms/neuron.py.

- cpu: the compiled C++ loop; spikes and U bitwise equal, gradients within float32 round-off (rel ≤ 1e-5),
  float64 too, and exact against autograd through the unrolled network in float64.
- triton: the fused kernels run under TRITON_INTERPRET=1 (NumPy on the CPU) in a subprocess, since the
  variable must be set before the kernels are defined: spikes identical, U and gradients rel ≤ 1e-5.
- dispatch: `model.backend` reaches the neuron, `auto` picks the fast path, bad values fail clearly,
  and a failed compile falls back to the reference loop with a warning.
"""

from __future__ import annotations

from spikebench.errors import UserError
import dataclasses
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from spikebench.algorithms import build_module
from spikebench.algorithms.base import lif_params_from_config
from spikebench.algorithms.kernels import compile as compile_
from spikebench.algorithms.kernels import cpu_lif, select_backend
from spikebench.algorithms.neuron import LIFParams, lif_forward, lif_reference, lif_sequence
from spikebench.datamodules import data_shape
from spikebench.sweeps.diagnostics.kernel_check import compare, default_cases, rel_err
from tests.conftest import module_for
from spikebench.train import compose_config

ROOT = Path(__file__).resolve().parents[1]
TOL = 1e-5  # the bar: relative error in float32

pytestmark = pytest.mark.usefixtures("one_thread")


needs_compiler = pytest.mark.skipif(not cpu_lif.available(), reason="the C++ loop did not compile here")


def _case_id(case: dict) -> str:
    return "-".join(
        [("rec" if case.get("recurrent", True) else "ff"), case.get("surrogate", "fast_sigmoid"),
         "detach" if case.get("detach_reset", True) else "reset-grad", str(case.get("dtype", torch.float32))[6:],
         f"{case.get('batch', 3)}x{case.get('steps', 30)}x{case.get('hidden', 24)}"]
    )


def _assert_matches_reference(r: dict) -> None:
    assert 0.02 < r["spike_rate"] < 0.8, "the problem must spike, but not everywhere"
    assert r["spikes_equal"], f"{r['spike_mismatch_frac']:.2e} of the spikes differ"
    for key in ("u_err", "grad_a_err", "grad_w_err", "filter_err"):
        assert r[key] <= TOL, f"{key} = {r[key]:.2e}"


# ----------------------------------------------------------------------------------------------
# CPU: the compiled loop
# ----------------------------------------------------------------------------------------------


@needs_compiler
@pytest.mark.parametrize("case", default_cases("cpu"), ids=_case_id)
def test_cpu_loop_spikes_identical_and_gradients_within_1e5_of_reference_loop(case):
    _assert_matches_reference(compare("cpu", "cpu", **case))


@needs_compiler
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("recurrent", [False, True])
def test_cpu_loop_forward_is_bitwise_the_reference_loop_over_1000_steps(dtype, recurrent):
    torch.manual_seed(3)
    p = LIFParams(tau_mem=10e-3, tau_syn=4e-3, v_reset=-0.2, backend="reference")
    a = torch.rand(4, 1000, 48, dtype=dtype) * 3
    w = torch.randn(48, 48, dtype=dtype) * 0.3 if recurrent else None
    s_ref, u_ref = lif_forward(a, w, p)
    s, u = lif_forward(a, w, dataclasses.replace(p, backend="cpu"))
    assert 0.05 < s_ref.mean() < 0.6
    assert torch.equal(s, s_ref) and torch.equal(u, u_ref)


@needs_compiler
@pytest.mark.parametrize("recurrent", [False, True])
@pytest.mark.parametrize("detach_reset", [True, False])
def test_cpu_loop_gradient_equals_autograd_through_unrolled_network_float64(recurrent, detach_reset):
    torch.manual_seed(1)
    p = LIFParams(dt=1e-3, tau_mem=15e-3, tau_syn=5e-3, v_reset=0.1, backend="cpu")
    a = (torch.rand(3, 50, 6, dtype=torch.float64) * 4).requires_grad_()
    w = (torch.randn(6, 6, dtype=torch.float64) * 0.4).requires_grad_() if recurrent else None
    g = torch.randn(3, 50, 6, dtype=torch.float64)
    ref, _ = lif_reference(a, w, p, "arctan", 2.0, detach_reset)
    ours = lif_sequence(a, w, p, "arctan", 2.0, detach_reset)
    assert torch.equal(ref, ours) and ours.sum() > 20
    params = [a] + ([w] if recurrent else [])
    for x, y in zip(torch.autograd.grad((ours * g).sum(), params), torch.autograd.grad((ref * g).sum(), params)):
        torch.testing.assert_close(x, y, rtol=1e-10, atol=1e-12)


# ----------------------------------------------------------------------------------------------
# Triton: the fused kernels, interpreted on the CPU
# ----------------------------------------------------------------------------------------------

TRITON_CASES = default_cases("triton")


@pytest.fixture(scope="module")
def triton_results() -> list[dict]:
    """Run every Triton case once, in a subprocess with TRITON_INTERPRET=1; one JSON line per case."""
    pytest.importorskip("triton")
    env = dict(os.environ, TRITON_INTERPRET="1", OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-m", "spikebench.sweeps.diagnostics.kernel_check", "--backend", "triton", "--device", "cpu"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert len(results) == len(TRITON_CASES), proc.stdout[-2000:]
    return results


@pytest.mark.parametrize("index", range(len(TRITON_CASES)), ids=[_case_id(c) for c in TRITON_CASES])
def test_triton_kernels_interpreted_spikes_identical_and_gradients_within_1e5_of_reference(triton_results, index):
    r = triton_results[index]
    assert r["backend"] == "triton"
    _assert_matches_reference(r)


# ----------------------------------------------------------------------------------------------
# Dispatch and configuration
# ----------------------------------------------------------------------------------------------


@needs_compiler
def test_auto_backend_is_the_compiled_loop_for_cpu_float_tensors_and_reference_otherwise():
    assert select_backend("auto", torch.zeros(2, 3, 4)) == "cpu"
    assert select_backend("auto", torch.zeros(2, 3, 4, dtype=torch.float64)) == "cpu"
    assert select_backend("auto", torch.zeros(2, 3, 4, dtype=torch.bfloat16)) == "reference"
    assert select_backend("reference", torch.zeros(2, 3, 4)) == "reference"
    assert select_backend("auto", torch.zeros(2, 3, 4), surrogate="no_such_surrogate") == "reference"


def test_backend_errors_name_the_config_key():
    with pytest.raises(UserError, match="model.backend must be one of auto, reference, triton, cpu"):
        LIFParams(backend="fast")
    if os.environ.get("TRITON_INTERPRET", "0") in ("", "0"):
        with pytest.raises(UserError, match="model.backend=triton cannot run here"):
            select_backend("triton", torch.zeros(2, 3, 4))
    with pytest.raises(UserError, match="model.backend=cpu"):
        select_backend("cpu", torch.zeros(2, 3, 4, dtype=torch.float16))


def test_model_backend_config_key_reaches_hidden_and_readout_neurons():
    hidden, readout = lif_params_from_config(compose_config(["model.backend=reference"]), 1e-3)
    assert hidden.backend == readout.backend == "reference"
    assert lif_params_from_config(compose_config([]), 1e-3)[0].backend == "auto"
    with pytest.raises(UserError, match="model.backend"):
        module_for(["model.backend=gpu"])


def test_failed_compile_falls_back_to_reference_loop_with_one_warning(monkeypatch):
    import torch.utils.cpp_extension as ext

    def broken(*args, **kwargs):
        raise RuntimeError("Error building extension: no compiler")

    monkeypatch.setattr(ext, "load_inline", broken)
    monkeypatch.setattr(compile_, "_LOADED", {})
    a = torch.rand(2, 30, 5) * 3
    with pytest.warns(UserWarning, match="compiled CPU LIF loop unavailable"):
        spikes, _ = lif_forward(a, None, LIFParams())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # only once
        assert select_backend("auto", a) == "reference"
    assert torch.equal(spikes, lif_forward(a, None, LIFParams(backend="reference"))[0])
    with pytest.raises(UserError, match="model.backend=cpu cannot run here"):
        select_backend("cpu", a)


@needs_compiler
def test_bptt_training_step_same_loss_and_gradients_with_fast_and_reference_backends():
    x = (torch.rand(4, 200, 40) < 0.05).float()
    y = torch.tensor([0, 1, 2, 3])
    grads = {}
    for backend in ("auto", "reference"):
        torch.manual_seed(0)
        cfg = compose_config([f"model.backend={backend}", "model.hidden=32", "data.channels=40",
                              "data.duration=0.2", "model.init.in_mean=2.0", "model.init.in_std=4.0"])
        module = build_module(cfg, data_shape(cfg))
        loss = module.loss_and_grads(x, y)
        grads[backend] = [loss] + [prm.grad for prm in module.parameters()]
    assert module.simulate(x)[0].sum() > 0
    for fast, ref in zip(grads["auto"], grads["reference"]):
        assert rel_err(fast, ref) <= TOL


def test_triton_kernel_that_fails_to_build_falls_back_under_auto_and_raises_when_forced(monkeypatch):
    triton = pytest.importorskip("triton")
    from spikebench.algorithms import kernels
    from spikebench.algorithms.kernels import triton_lif

    def no_registers(*args, **kwargs):
        raise triton.runtime.errors.OutOfResources(300000, 232448, "shared memory")

    monkeypatch.setattr(triton_lif, "lif_forward", no_registers)
    monkeypatch.setattr(kernels, "_TRITON_OK", [True])
    a, p = torch.rand(2, 10, 4), LIFParams()
    with pytest.raises(triton.runtime.errors.OutOfResources):
        kernels.lif_forward("triton", "triton", a, None, p)
    with pytest.warns(UserWarning, match="Triton LIF kernel failed to build, using the reference loop"):
        assert kernels.lif_forward("triton", "auto", a, None, p) is None
    assert not kernels.triton_available()  # auto does not try again


@pytest.mark.parametrize("recurrent,hidden", [(False, 256), (True, 16), (True, 100), (True, 256), (True, 1024)])
def test_triton_kernels_compile_for_hopper_sm90_within_its_shared_memory(recurrent, hidden):
    """Ahead-of-time compile of the real launch configurations to sm_90 machine code (no GPU needed):
    catches what the interpreter does not (types, layouts, resources)."""
    triton = pytest.importorskip("triton")
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from spikebench.algorithms.kernels import triton_lif

    launch = triton_lif._layout(32, hidden, recurrent)
    launch.pop("grid")
    options = {k: launch.pop(k) for k in ("num_warps", "enable_fp_fusion")}
    common = {"B": "i32", "T": "i32", "H": "i32", "alpha": "fp32", "gain": "fp32", "beta": "fp32",
              "theta": "fp32", "v_reset": "fp32"}
    kernels = [
        (triton_lif._lif_forward_kernel, {"a_ptr": "*fp32", "w_ptr": "*fp32", "s_ptr": "*fp32", "u_ptr": "*fp32"},
         dict(HAS_REC=recurrent, STORE_U=True)),
        (triton_lif._lif_backward_kernel, {"gs_ptr": "*fp32", "u_ptr": "*fp32", "wt_ptr": "*fp32", "gi_ptr": "*fp32",
                                           "k": "fp32"}, dict(HAS_REC=recurrent, DETACH_RESET=False, SURROGATE=2)),
    ]
    for fn, pointers, flags in kernels:
        consts = dict(flags, **launch)
        signature = {**pointers, **common, **{name: "constexpr" for name in consts}}
        signature = {name: signature[name] for name in fn.arg_names}
        compiled = triton.compile(ASTSource(fn=fn, signature=signature, constexprs=consts),
                                  target=GPUTarget("cuda", 90, 32), options=options)
        assert "cubin" in compiled.asm
        assert compiled.metadata.shared <= 232448  # H100/H200: 227 KiB of shared memory per block
