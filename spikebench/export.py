"""Export a trained network to NIR, the Neuromorphic Intermediate Representation (https://neuroir.org).

    python export.py runs/<run>                          # writes runs/<run>/network.nir, from the best checkpoint
    python export.py runs/<run> checkpoint=last out=net.nir
    python export.py runs/<run> form=euler               # for simulators that step NIR forward-Euler (Norse)

Needs the `nir` package (`pip install 'spikebench[nir]'`). From Python: `to_nir(module)` for a trained module
(or an `algorithms.network.SNN`), `nir.write(path, graph)`. ParaLIF, the LSTM and e-prop's ALIF cannot be exported.

The graph (times in seconds; weights as trained, a Linear node's weight is Wᵀ, (out, in)):

    input ─► w_in (Linear) ─► hidden (CubaLIF) ─► w_out (Linear) ─► readout (CubaLI) ─► output
                                 ▲         │
                                 └─ w_rec ◄┘      (Linear; recurrent networks only)

NIR's CubaLIF, per neuron:   τ_syn İ = −I + w_in S,   τ_mem V̇ = (v_leak − V) + r I,   a spike when V > v_threshold,
then V ← v_reset; CubaLI is the same without threshold (the readout's leaky integrators). S is the input after
its Linear node, W x, each spike counted as simulators count it: 1 in the step of width dt that holds it, an
impulse of area dt. So w_in = τ_syn/dt makes a spike raise I by its weight, as in algorithms/neuron.py, in
both forms below.

Form `continuous` (default): the suite's model itself. Solved exactly from the start of step t (where the spikes
of the step arrive and I jumps by (w_in dt/τ_syn) W x[t]) to its end, with V[t-1] and I[t-1] the values at its start:

    I[t] = β I[t-1] + (w_in dt/τ_syn) W x[t],     β = exp(−dt/τ_syn)
    V[t] = α V[t-1] + r γ_e I[t],                  α = exp(−dt/τ_mem),   γ_e = τ_syn/(τ_syn − τ_mem) (β − α)

(γ_e is V(dt) for I(0) = 1, V(0) = 0; v_leak = 0). That is neuron.py's recurrence
I[t] = β I[t-1] + W_in x[t] + W_rec s[t-1],  U[t] = α V[t-1] + γ I[t],  with

    tau_syn = τ_syn, tau_mem = τ_mem, v_leak = 0, w_in = τ_syn/dt, v_threshold = ϑ, v_reset = V_reset,
    r = γ/γ_e:  1 for model.integration=exact;  (1 − α)/γ_e for `held`.

So the default `held` gain is exported exactly too, with the weights as trained: its γ = 1 − α is the continuous
model's γ_e times r = (1 − α)/γ_e (1.104 at dt = 1 ms, 1.47 at dt = 4 ms, for τ 20/5 ms), a membrane resistance
raised by that factor. (Read the other way, held is the exponential-Euler step of the r = 1 model: the current held
at I[t] over the step, the membrane decaying exactly.) The readout is the same with τ_syn_out, τ_mem_out, its own γ.

What a graph cannot hold, and a simulator may do differently: the suite compares U with ϑ only at step ends, so a
spike is emitted at the end of the step in which V crossed, and its recurrent input arrives at the start of the
next (the same instant); a simulator that integrates continuously fires at the crossing, up to dt earlier
(EventProp's exact time mode does that: its spikes are the continuous model's). NIR fires on V > ϑ, the suite on
U ≥ ϑ: they differ only where U lands on ϑ exactly.

Form `euler`: the model whose forward-Euler step of dt, current first,
    I[t] = I[t-1] + dt/τ_syn (−I[t-1] + w_in S[t]),   V[t] = V[t-1] + dt/τ_mem (v_leak − V[t-1] + r I[t]),
is the suite's recurrence step for step (Norse's `from_nir(graph, dt=dt)` steps CubaLIF so): 1 − dt/τ = e^{−dt/τ}, so

    tau_syn = dt/(1 − β), tau_mem = dt/(1 − α)   (≈ τ + dt/2),   w_in = tau_syn/dt = 1/(1 − β),   r = γ/(1 − α)

(r = 1 for held). Its time constants are not the trained model's; use it only with a simulator that steps so, at dt.

Checked (tests/test_export.py) with Norse 1.1: `norse.torch.from_nir(graph, dt=dt)` of form=euler gives the suite's
hidden spikes exactly and its readout to float32 rounding (within 1e-5 of the largest |V_out|). Norse imports no
CubaLI (hand it the readout as a CubaLIF with v_threshold = inf and read V from its state) and resets to 0 whatever
v_reset says (the suite's default). The continuous form in Norse's Euler steps is another network (in the test's
random networks about a quarter of the hidden spikes differ at dt = 1 ms). snnTorch 1.0's importer steps at its own dt = 0.1 ms and requires r = tau_mem/dt, so it
cannot run either form at the suite's dt.
"""

from __future__ import annotations

from spikebench.errors import UserError
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from spikebench.configs import load_run_config, spec_of
from spikebench.algorithms.checkpoint import check_checkpoint, checkpoint_path

if TYPE_CHECKING:
    import nir

    from spikebench.algorithms.neuron import LIFParams

FORMS = ("continuous", "euler")
INSTALL = "pip install 'spikebench[nir]'"
class ExportError(UserError):
    """A network or run that cannot be exported, or a missing `nir` package; the message is one line."""


def refusal(cfg) -> str | None:
    """Why the network of this run config cannot be exported, or None if it can."""
    name = str(cfg.algorithm.name)
    why = spec_of(name).export  # the algorithm's declaration (configs/algorithms.py) says whether it has a NIR form
    if why is not None:
        return f"algorithm={name} cannot be exported: {why}"
    if str(cfg.model.get("neuron", "lif")) != "lif":
        return (f"model.neuron={cfg.model.neuron} cannot be exported: NIR has no node for a LIF neuron with an "
                "adaptation current (CubaLIF is the plain LIF)")
    if cfg.model.get("delays") is not None and cfg.model.delays.enabled:
        return ("model.delays cannot be exported yet: the input channels' delays would need NIR's Delay node, which "
                "export.py does not write")
    if float(cfg.algorithm.get("alif_beta", 0.0) or 0.0) > 0:
        return (f"algorithm={name} with algorithm.alif_beta={cfg.algorithm.alif_beta} cannot be exported: its "
                "adaptive threshold (ALIF) has no NIR node; alif_beta=0 is the suite's plain LIF neuron")
    return None


def spiking_network(module):
    """The suite's LIF network (`algorithms.network.SNN`) of a trained module, or the SNN itself; ExportError if
    the module has none that NIR can hold."""
    from spikebench.algorithms.network import SNN

    if isinstance(module, SNN):
        return module
    cfg = getattr(module, "cfg", None)
    reason = refusal(cfg) if cfg is not None else None
    if reason:
        raise ExportError(reason)
    net = getattr(module, "net", None)
    if not isinstance(net, SNN):
        raise ExportError(f"{type(module).__name__} cannot be exported: its network is not the suite's LIF network "
                          "(algorithms.network.SNN)")
    return net


def cuba_parameters(p: LIFParams, form: str = "continuous") -> dict[str, float]:
    """tau_syn, tau_mem, r, w_in (and v_leak) of the CubaLIF/CubaLI whose step of p.dt in `form` is p's recurrence
    (derivation: module docstring)."""
    alpha, beta, gain = p.alpha, p.beta, p.gain
    if checked_form(form) == "continuous":
        tau_syn, tau_mem, r = p.tau_syn, p.tau_mem, gain / replace(p, integration="exact").gain
    else:
        tau_syn, tau_mem, r = p.dt / (1.0 - beta), p.dt / (1.0 - alpha), gain / (1.0 - alpha)
    return {"tau_syn": tau_syn, "tau_mem": tau_mem, "r": r, "w_in": tau_syn / p.dt, "v_leak": 0.0}


def to_nir(module, form: str = "continuous") -> nir.NIRGraph:
    """The NIR graph of a trained spiking module (or an `algorithms.network.SNN`): Input → Linear (W_in) → CubaLIF
    (+ Linear W_rec back into it) → Linear (W_out) → CubaLI → Output, parameters as the module docstring derives."""
    net = spiking_network(module)
    nir = nir_package()
    hidden, readout = net.hidden, net.readout_params
    if hidden.dt != readout.dt:
        raise ExportError(f"the hidden layer steps {hidden.dt} s, the readout {readout.dt} s: one clock is needed")

    def full(value: float, n: int):
        return nir_array(value, n, "float64")

    def weight(w):  # (fan_in, fan_out) as stored → NIR's (out, in)
        return w.detach().cpu().float().T.contiguous().numpy()

    h, o = cuba_parameters(hidden, form), cuba_parameters(readout, form)
    n_hidden, n_out = net.n_hidden, net.n_out
    nodes = {
        "input": nir.Input(input_type={"input": nir_array(net.n_in, 1, "int64")}),
        "w_in": nir.Linear(weight=weight(net.w_in)),
        "hidden": nir.CubaLIF(**{k: full(v, n_hidden) for k, v in h.items()},
                              v_threshold=full(hidden.threshold, n_hidden), v_reset=full(hidden.v_reset, n_hidden)),
        **({"w_rec": nir.Linear(weight=weight(net.w_rec))} if net.w_rec is not None else {}),
        "w_out": nir.Linear(weight=weight(net.w_out)),
        "readout": nir.CubaLI(**{k: full(v, n_out) for k, v in o.items()}),
        "output": nir.Output(output_type={"output": nir_array(n_out, 1, "int64")}),
    }
    edges = [("input", "w_in"), ("w_in", "hidden"), ("hidden", "w_out"), ("w_out", "readout"), ("readout", "output")]
    if net.w_rec is not None:  # the hidden spikes of a step enter its current at the next step
        edges += [("hidden", "w_rec"), ("w_rec", "hidden")]
    metadata = {"source": "spikebench", "form": form, "dt": float(hidden.dt), "time_unit": "s",
                "integration": hidden.integration,
                "spike_rule": "U >= v_threshold at the end of each step of dt; recurrent spikes enter at the next step"}
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata)


def checked_form(form: str) -> str:
    if form not in FORMS:
        raise ExportError(f"form={form}: choose one of {', '.join(FORMS)}")
    return form


def nir_package():
    """The `nir` module, or ExportError saying how to install it."""
    try:
        import nir
    except ImportError:
        raise ExportError(f"the `nir` package is not installed: {INSTALL}") from None
    return nir


def nir_array(value, n: int, dtype: str):
    import numpy as np

    return np.full(n, value, dtype=dtype)


def describe(graph: nir.NIRGraph) -> list[str]:
    """One line per node: name, type, size, and the neuron parameters (one value where all neurons share it)."""
    import numpy as np

    def value(key: str, a) -> str:  # time constants in ms
        a, unit = (np.asarray(a, dtype=float) * 1e3, " ms") if key.startswith("tau") else (np.asarray(a, dtype=float), "")
        return (f"{a.flat[0]:.6g}" if np.all(a == a.flat[0]) else f"{a.min():.4g}…{a.max():.4g}") + unit

    lines = []
    for name, node in graph.nodes.items():
        kind = type(node).__name__
        if hasattr(node, "weight"):
            size = f"{node.weight.shape[1]} → {node.weight.shape[0]}"
        else:
            size = str(int(np.prod(next(iter((node.output_type or node.input_type).values())))))
        keys = [k for k in ("tau_syn", "tau_mem", "r", "w_in", "v_leak", "v_threshold", "v_reset") if hasattr(node, k)]
        lines.append(f"{name:8} {kind:8} {size:10} " + "  ".join(f"{k} {value(k, getattr(node, k))}" for k in keys))
    return [line.rstrip() for line in lines]


def export(run_dir: str | Path, checkpoint: str = "best", out: str | Path | None = None,
           form: str = "continuous") -> tuple[Path, nir.NIRGraph]:
    """Write the graph of the run's checkpoint to `out` (default <run>/network.nir); returns the path and graph."""
    from spikebench.algorithms import get_algorithm
    from spikebench.datamodules import data_shape

    checked_form(form)
    run = Path(run_dir).expanduser().resolve()
    cfg = load_run_config(run)
    reason = refusal(cfg)
    if reason:
        raise ExportError(reason)
    nir = nir_package()
    ckpt = checkpoint_path(run, checkpoint)
    check_checkpoint(cfg, ckpt, data_shape(cfg))
    module = get_algorithm(cfg.algorithm.name).load_from_checkpoint(ckpt, map_location="cpu").eval()
    graph = to_nir(module, form)
    path = run / "network.nir" if out is None else Path(out).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    nir.write(str(path), graph)
    return path, graph


def main(argv: list[str] | None = None) -> int:

    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    run, options = argv[0], {"checkpoint": "best", "out": None, "form": "continuous"}
    for arg in argv[1:]:
        key, eq, value = arg.partition("=")
        if not eq or key not in options:
            print(f"error: {arg}: expected one of checkpoint=best|last|<file>, out=<file.nir>, "
                  f"form={'|'.join(FORMS)}", file=sys.stderr)
            return 2
        options[key] = value
    try:
        path, graph = export(run, options["checkpoint"], options["out"], options["form"])
    except (UserError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print("\n".join(describe(graph)))
    meta = graph.metadata
    print(f"-> {path} (form {meta['form']}, dt {meta['dt'] * 1e3:g} ms, model.integration={meta['integration']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
