"""export.py: the NIR graph of a trained network, its parameters, and a round trip through a simulator this suite
did not write (Norse's `from_nir`), which must give the suite's hidden spikes and readout voltages.

The round trip needs Norse (optional; see `norse_or_skip`). Its CubaLIF is a forward-Euler step of dt, so it runs
the graph of form=euler; the default form (the continuous model) is checked against its exact solution over a step.
"""

from __future__ import annotations

import math
import sys
import tomllib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from spikebench import export
from spikebench.algorithms.network import SNN, InitParams
from spikebench.algorithms.neuron import LIFParams
from conftest import module_for

ROOT = Path(__file__).resolve().parents[1]
# the configs' initial weights, large enough that the hidden neurons fire (rates of 5-20 % of the steps)
STRONG = InitParams(in_mean=1.5, in_std=4.0, rec_std=0.5, out_std=4.0)
# Readout tolerance of the round trip, relative to the largest |V_out|: float32 rounding. Norse steps
# v + dt/τ (r I − v) with coefficients it computes in float32 from the graph's τ, the suite α v + γ I with
# coefficients from float64; each step rounds differently by a few ulps (2^-23 = 1.2e-7 relative), and the leak
# sums ~1/(1 − α) = 20 steps of them. Measured: at most 7.5e-7 (6 ulps); the bound is 1e-5 (84 ulps).
READOUT_RTOL = 1e-5


def snn(recurrent: bool, integration: str, dt: float = 1e-3, n_in: int = 700, hidden: int = 32, out: int = 10) -> SNN:
    p = LIFParams(dt=dt, integration=integration, backend="reference")  # the specification's loop: no compile
    return SNN(n_in, hidden, out, recurrent, p, replace(p, tau_mem=30e-3, tau_syn=8e-3), STRONG)


def norse_or_skip():
    return pytest.importorskip(
        "norse.torch", reason="the round trip needs Norse: `pip install nir nirtorch && pip install --no-deps norse` "
        "(norse requires torchvision: unpinned, pip replaces torch 2.13 for the newest; PyPI's torchvision for torch 2.13 "
        "fails to import with its CPU build; norse itself imports without it)")


# -- the graph -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("recurrent", [False, True], ids=["feed-forward", "recurrent"])
def test_the_graph_is_input_linear_cubalif_linear_cubali_output_with_the_trained_weights(recurrent):
    pytest.importorskip("nir")
    net = snn(recurrent, "exact", n_in=12, hidden=6, out=3)
    graph = export.to_nir(net)
    kinds = {name: type(node).__name__ for name, node in graph.nodes.items()}
    assert kinds == {"input": "Input", "w_in": "Linear", "hidden": "CubaLIF", "w_out": "Linear", "readout": "CubaLI",
                     "output": "Output", **({"w_rec": "Linear"} if recurrent else {})}
    loop = {("hidden", "w_rec"), ("w_rec", "hidden")}
    assert set(graph.edges) == {("input", "w_in"), ("w_in", "hidden"), ("hidden", "w_out"), ("w_out", "readout"),
                                ("readout", "output")} | (loop if recurrent else set())
    assert list(graph.nodes["input"].input_type["input"]) == [12] and list(graph.nodes["output"].output_type["output"]) == [3]
    for name, w in (("w_in", net.w_in), ("w_out", net.w_out), ("w_rec", net.w_rec)):
        if w is not None:  # NIR's Linear: y = W x with W (out, in); the suite stores (in, out)
            assert np.array_equal(graph.nodes[name].weight, w.detach().numpy().T)
    hidden = graph.nodes["hidden"]
    assert hidden.v_threshold.shape == hidden.tau_syn.shape == (6,) and graph.nodes["readout"].tau_mem.shape == (3,)
    assert np.all(hidden.v_threshold == 1.0) and np.all(hidden.v_reset == 0.0) and np.all(hidden.v_leak == 0.0)
    assert graph.metadata["form"] == "continuous" and graph.metadata["dt"] == 1e-3 and graph.metadata["time_unit"] == "s"


@pytest.mark.parametrize("integration", ["exact", "held"])
@pytest.mark.parametrize("dt", [1e-3, 4e-3])
def test_the_continuous_graph_solved_exactly_over_a_step_is_the_suites_recurrence(integration, dt):
    """From the graph's fields alone: I decays by e^{−dt/τ_syn}, a spike raises I by its weight (w_in·dt/τ_syn),
    and V(dt) for I(0) = 1 is r·τ_syn/(τ_syn − τ_mem)·(e^{−dt/τ_syn} − e^{−dt/τ_mem}): β, 1 and γ of neuron.py."""
    pytest.importorskip("nir")
    net = snn(True, integration, dt)
    graph = export.to_nir(net)
    for name, p in (("hidden", net.hidden), ("readout", net.readout_params)):
        node = graph.nodes[name]
        ts, tm, r, w_in = (float(getattr(node, k)[0]) for k in ("tau_syn", "tau_mem", "r", "w_in"))
        assert (ts, tm) == (p.tau_syn, p.tau_mem)  # the trained model's own time constants
        beta, alpha = math.exp(-dt / ts), math.exp(-dt / tm)
        assert beta == pytest.approx(p.beta, rel=1e-12) and alpha == pytest.approx(p.alpha, rel=1e-12)
        assert w_in * dt / ts == pytest.approx(1.0, rel=1e-12)
        assert r * ts / (ts - tm) * (beta - alpha) == pytest.approx(p.gain, rel=1e-12)
        assert (r == pytest.approx(1.0, rel=1e-12)) == (integration == "exact")  # held: r = (1 − α)/γ_exact > 1
    if integration == "held" and dt == 1e-3:
        assert float(graph.nodes["hidden"].r[0]) == pytest.approx(1.104, abs=1e-3)  # the 10 % neuron.py names


@pytest.mark.parametrize("integration", ["exact", "held"])
def test_the_euler_graph_stepped_by_forward_euler_is_the_suites_recurrence(integration):
    pytest.importorskip("nir")
    dt = 4e-3
    net = snn(False, integration, dt)
    graph = export.to_nir(net, form="euler")
    for name, p in (("hidden", net.hidden), ("readout", net.readout_params)):
        node = graph.nodes[name]
        ts, tm, r, w_in = (float(getattr(node, k)[0]) for k in ("tau_syn", "tau_mem", "r", "w_in"))
        assert 1 - dt / ts == pytest.approx(p.beta, rel=1e-12) and 1 - dt / tm == pytest.approx(p.alpha, rel=1e-12)
        assert dt / ts * w_in == pytest.approx(1.0, rel=1e-12) and dt / tm * r == pytest.approx(p.gain, rel=1e-12)
    assert graph.metadata["form"] == "euler"


# -- the round trip ----------------------------------------------------------------------------------------------


def run_norse(graph, x: torch.Tensor, dt: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Hidden spikes and readout voltages (batch, time, ·) of the graph imported by Norse, stepped at dt.

    Norse imports no CubaLI (nor LI), so the readout enters as the CubaLIF with the same parameters and an
    unreachable threshold (V > inf never holds: no spike, no reset); its V is read from Norse's state."""
    import nir

    nt = norse_or_skip()
    ro = graph.nodes["readout"]
    graph.nodes["readout"] = nir.CubaLIF(tau_syn=ro.tau_syn, tau_mem=ro.tau_mem, r=ro.r, v_leak=ro.v_leak, w_in=ro.w_in,
                                         v_threshold=np.full_like(ro.r, np.inf))
    model = nt.from_nir(graph, dt=dt)
    spikes, v_out, state = [], [], None
    with torch.no_grad():
        for t in range(x.shape[1]):
            _, state = model(x[:, t], state)
            spikes.append(state.cache["hidden"])
            v_out.append(state.state["readout"][0][1].v)  # (synapse state, membrane state) of the CubaLIF
    return torch.stack(spikes, 1), torch.stack(v_out, 1)


@pytest.mark.parametrize("integration,recurrent,dt", [("exact", True, 1e-3), ("held", True, 1e-3), ("held", False, 4e-3),
                                                       ("exact", False, 4e-3)])
def test_norse_running_the_written_graph_gives_the_suites_spikes_exactly_and_its_readout_to_float32_rounding(
        tmp_path, one_thread, integration, recurrent, dt):
    norse_or_skip()
    import nir

    net = snn(recurrent, integration, dt)
    path = tmp_path / "network.nir"
    nir.write(str(path), export.to_nir(net, form="euler"))
    x = (torch.rand(4, 80, 700) < 0.02).float()  # 4 random input spike trains, 80 steps
    spikes, v_out = net.simulate(x)
    assert 0.02 < spikes.mean() < 0.5  # the neurons do fire
    their_spikes, their_v = run_norse(nir.read(str(path)), x, dt)
    assert torch.equal(their_spikes, spikes)
    assert (their_v - v_out).abs().max() <= READOUT_RTOL * v_out.abs().max()


def test_the_continuous_graph_in_norses_euler_steps_is_not_the_suites_network():
    """Why form=euler exists: Norse steps the default graph forward-Euler (decay 1 − dt/τ, not e^{−dt/τ})."""
    norse_or_skip()
    net = snn(True, "exact")
    x = (torch.rand(2, 60, 700) < 0.02).float()
    spikes, _ = net.simulate(x)
    their_spikes, _ = run_norse(export.to_nir(net), x, 1e-3)
    assert not torch.equal(their_spikes, spikes)


# -- what cannot be exported, and the command ------------------------------------------------------------------


@pytest.mark.parametrize("overrides,says", [(["algorithm=paralif"], "ParaLIF's neuron"), (["algorithm=lstm"], "LSTM"),
                                            (["algorithm=eprop", "algorithm.alif_beta=0.5"], "adaptive threshold")])
def test_paralif_the_lstm_and_alif_say_they_cannot_be_exported(overrides, says):
    module = module_for([*overrides, "model.hidden=8"])
    with pytest.raises(export.ExportError, match=f"cannot be exported: .*{says}"):
        export.to_nir(module)


def write_run(tmp_path: Path, *overrides: str):
    """A run folder as train.py leaves it (config.yaml, checkpoints/best.ckpt), for an untrained module."""
    import lightning
    from omegaconf import OmegaConf

    from spikebench.algorithms import build_module
    from spikebench.configs import compose_config
    from spikebench.datamodules import data_shape

    cfg = compose_config(["model.hidden=8", f"data.cache_dir={tmp_path / 'cache'}", *overrides])
    module = build_module(cfg, data_shape(cfg))
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    OmegaConf.save(cfg, run / "config.yaml", resolve=True)
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams), "epoch": 0,
                "global_step": 0, "pytorch-lightning_version": lightning.__version__}, run / "checkpoints" / "best.ckpt")
    return run, module


def test_the_command_writes_the_runs_graph_and_prints_one_line_per_node(tmp_path, capsys):
    nir = pytest.importorskip("nir")
    run, module = write_run(tmp_path, "model.integration=held")
    assert export.main([str(run)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in lines[:-1]] == [["input", "Input"], ["w_in", "Linear"], ["hidden", "CubaLIF"],
                                                         ["w_rec", "Linear"], ["w_out", "Linear"], ["readout", "CubaLI"],
                                                         ["output", "Output"]]
    assert "r 1.10" in lines[2] and lines[-1].startswith(f"-> {run / 'network.nir'} (form continuous")
    graph = nir.read(str(run / "network.nir"))
    assert np.array_equal(graph.nodes["w_rec"].weight, module.net.w_rec.detach().numpy().T)
    out = tmp_path / "elsewhere" / "euler.nir"
    assert export.main([str(run), "checkpoint=best", f"out={out}", "form=euler"]) == 0
    assert nir.read(str(out)).metadata["form"] == "euler"


@pytest.mark.parametrize("case,says", [
    ("no run folder", "no config.yaml there"),
    ("lstm run", "algorithm=lstm cannot be exported: "),
    ("no checkpoint", "checkpoint=last: no file"),
    ("bad option", "expected one of checkpoint="),
    ("bad form", "form=rk4: choose one of continuous, euler"),
    ("no nir package", "pip install 'spikebench[nir]'"),
])
def test_the_command_says_what_is_wrong_in_one_line_and_exits_2(tmp_path, capsys, monkeypatch, case, says):
    args = [str(tmp_path)]
    if case != "no run folder":
        run, _ = write_run(tmp_path, *(["algorithm=lstm"] if case == "lstm run" else []))
        args = [str(run), {"no checkpoint": "checkpoint=last", "bad option": "format=h5", "bad form": "form=rk4"}.get(
            case, "checkpoint=best")]
    if case == "no nir package":
        monkeypatch.setitem(sys.modules, "nir", None)  # `import nir` raises ImportError
    assert export.main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and says in err and err.count("\n") == 1


def test_export_is_packaged_with_its_command_and_the_nir_extra():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["scripts"]["spikebench-export"] == "spikebench.export:main"
    assert any(r.startswith("nir") for r in project["project"]["optional-dependencies"]["nir"])
