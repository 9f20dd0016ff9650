"""ParaLIF: the LIF neuron without reset, simulated in parallel over time (Yarga & Wood 2025).

S. Y. A. Yarga and S. U. N. Wood, "Accelerating spiking neural networks with parallelizable leaky
integrate-and-fire neurons", Neuromorphic Computing and Engineering (2025). Equation numbers below are
theirs. Training is plain autograd; what is special is the neuron, so this algorithm brings its own network
(`build_network`) and keeps the suite's readout and losses.

1. Parallel membrane (Eq. 15): algorithms/parallel_lif.py.

2. Spikes (Eq. 24): s = G(N(V)), a normalisation N then a generator G, named by `spike_mode`:
       N:  none | S: sigmoid | T: tanh | TR: relu(tanh(·))
       G:  B  Bernoulli:  s ~ Bernoulli(N(V)),          ∂s/∂N := N(V)        (straight-through, scaled)
           GS Gumbel-softmax over {spike, no spike} with logits ±V, temperature τ_GS: forward the hard
              sample s = Θ(2V + L), L ~ Logistic(0, 1) (the difference of two Gumbel draws), backward the
              derivative of the soft sample sigmoid((2V + L)/τ_GS)  (straight-through Gumbel-softmax)
           D  delta:      s[t] = Θ(N(V)[t] − N(V)[t−1] − ϑ), V[−1] = 0,   Θ' := surrogate σ'
           T  threshold:  s[t] = Θ(N(V)[t] − ϑ),                          Θ' := surrogate σ'
   Modes: GS, SB, TRB, D, SD, TD, TRD, T, ST, TT, TRT. The stochastic modes (B, GS) have no threshold.

3. Recurrent ParaLIF (Eqs. 22–23): the feed-forward potential V_ff = k ∗ a, shifted one step, gives the
   recurrent spikes h = G(N(V_ff[t−1])) (all known at once); a second integration of the input plus the
   recurrent drive is added:  V = V_ff + k ∗ (a + h W_rec);  then s = G(N(V)) as in 2.

4. Layers: `algorithm.layers` ParaLIF layers in a feed-forward stack, each `model.hidden` wide; the last
   one drives the suite's non-spiking leaky readout (the filter of `neuron.leaky_readout`, fixed τ_out,
   computed the same parallel way), and the loss is the suite's `Objective`.

Shapes: (batch, time, neurons) at the interface; inside, neuron-major (neurons, batch, time), so that time is
the contiguous axis of the filters and every projection is one matrix product without copies.
"""

from __future__ import annotations

from spikebench.errors import ConfigError
import math
from dataclasses import replace

import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import nn

from spikebench.events import EventBatch, as_frames

from .base import SpikingModule, StepOutput, input_delays, lif_params_from_config
from .delays import InputDelays
from .network import InitParams
from .trace import Connection, Trace
from .parallel_lif import neuron_major, project, gain_ratio, lif_membrane, previous_step_time_last
from .neuron import LIFParams
from .surrogates import get_surrogate

NORMALISATIONS = {"": lambda v: v, "S": torch.sigmoid, "T": torch.tanh, "TR": lambda v: F.relu(torch.tanh(v))}
SPIKE_MODES = ("GS", "SB", "TRB", "D", "SD", "TD", "TRD", "T", "ST", "TT", "TRT")


# ----------------------------------------------------------------------------------------------
# 2. The spike functions (Eq. 24)
# ----------------------------------------------------------------------------------------------


class BernoulliStraightThrough(torch.autograd.Function):
    """s = 1[u < p] with u ~ U(0, 1) given, i.e. s ~ Bernoulli(p); backward ∂s/∂p := p (Yarga & Wood)."""

    @staticmethod
    def forward(ctx, p, u):  # type: ignore[override]
        ctx.save_for_backward(p)
        return (u < p).to(p.dtype)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        (p,) = ctx.saved_tensors
        return grad * p, None


class ThresholdSpike(torch.autograd.Function):
    """The D and T generators on n = N(V): s = Θ(u) with u = n − ϑ (T) or u[t] = n[t] − n[t−1] − ϑ (D,
    n[−1] = N(0)); backward Θ' := σ', the suite's surrogate. One autograd node that keeps only u."""

    @staticmethod
    def forward(ctx, n, threshold, delta, n_rest, surrogate, slope):  # type: ignore[override]
        u = n - threshold
        if delta:
            u[..., 1:].sub_(n[..., :-1])
            u[..., :1].sub_(n_rest)
        ctx.save_for_backward(u)
        ctx.cfg = (delta, surrogate, slope, threshold.shape)
        return (u >= 0).to(n.dtype)

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        (u,) = ctx.saved_tensors
        delta, surrogate, slope, theta_shape = ctx.cfg
        if surrogate in ("fast_sigmoid", "superspike"):  # surrogates.fast_sigmoid, evaluated in place
            g_u = u.abs().mul_(slope).add_(1.0).pow_(-2).mul_(g)
        else:
            g_u = get_surrogate(surrogate)(u, slope).mul_(g)
        g_n = g_u
        if delta:  # u[t] and u[t+1] both depend on n[t]
            g_n = g_u.clone()
            g_n[..., :-1].sub_(g_u[..., 1:])
        g_theta = -g_u.sum_to_size(theta_shape) if ctx.needs_input_grad[1] else None
        return g_n, g_theta, None, None, None, None


class ParaLIFSpikes:
    """s = G(N(V)) for one of SPIKE_MODES, V with time on the last axis; ϑ broadcasts against V.

    `noise` (uniform draws, V's shape) may be given to fix the random draw of the stochastic modes.
    """

    def __init__(self, mode: str, surrogate: str = "fast_sigmoid", slope: float = 10.0, gs_temperature: float = 1.0):
        if mode not in SPIKE_MODES:
            raise ConfigError(f"unknown algorithm.spike_mode '{mode}'; choose one of: {', '.join(SPIKE_MODES)}")
        get_surrogate(surrogate)
        if not gs_temperature > 0:
            raise ConfigError(f"algorithm.gs_temperature must be > 0, got {gs_temperature}")
        self.mode, self.surrogate, self.slope, self.gs_temperature = mode, surrogate, slope, gs_temperature
        self.generator = "GS" if mode == "GS" else mode[-1]
        self.normalise = NORMALISATIONS[mode[:-1] if mode != "GS" else ""]
        self.stochastic = self.generator in ("B", "GS")

    def max_drive(self) -> float:
        """The largest value N(V) (T) or N(V)[t] − N(V)[t−1] (D) can reach; a threshold must lie below it."""
        norm = self.mode[:-1]
        if norm == "":
            return math.inf
        return 2.0 if (norm == "T" and self.generator == "D") else 1.0

    def __call__(self, v: torch.Tensor, threshold: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        if self.generator == "GS":
            u = torch.rand_like(v) if noise is None else noise
            logistic = torch.log(u) - torch.log1p(-u)
            z = 2.0 * v + logistic
            soft = torch.sigmoid(z / self.gs_temperature)
            return soft + ((z > 0).to(v.dtype) - soft).detach()
        n = self.normalise(v)
        if self.generator == "B":
            return BernoulliStraightThrough.apply(n, torch.rand_like(v) if noise is None else noise)
        n_rest = float(self.normalise(torch.zeros(())))  # N(V[−1]) with V[−1] = 0
        return ThresholdSpike.apply(n, threshold, self.generator == "D", n_rest, self.surrogate, self.slope)


# ----------------------------------------------------------------------------------------------
# 3. A ParaLIF layer (Eqs. 15, 22–24) and the network
# ----------------------------------------------------------------------------------------------


class ParaLIFLayer(nn.Module):
    """x W → parallel membrane → spikes, optionally recurrent (Eqs. 22–23). Weights are (fan_in, fan_out).

    Works neuron-major: input (n_in, batch, time), output spikes and V (n_out, batch, time).
    """

    def __init__(
        self,
        n_in: int,
        n_out: int,
        recurrent: bool,
        neuron: LIFParams,
        spike_fn: ParaLIFSpikes,
        learn_tau: bool,
        learn_threshold: bool,
        in_mean: float,
        in_std: float,
        rec_std: float,
        membrane: str = "scan",
        chunk: int = 32,
    ) -> None:
        super().__init__()
        if membrane not in ("scan", "fft"):
            raise ConfigError(f"unknown algorithm.membrane '{membrane}'; choose one of: scan, fft")
        if chunk < 1:
            raise ConfigError(f"algorithm.chunk must be >= 1, got {chunk}")
        self.dt, self.spike_fn, self.membrane, self.chunk = neuron.dt, spike_fn, membrane, chunk
        self.integration = neuron.integration
        self.w_in = nn.Parameter((in_mean + in_std * torch.randn(n_in, n_out)) / math.sqrt(n_in))
        self.w_rec = nn.Parameter(rec_std * torch.randn(n_out, n_out) / math.sqrt(n_out)) if recurrent else None
        # One value for all neurons unless learnt per neuron (the shared value takes the faster path).
        n_tau = n_out if learn_tau else 1
        for name, value, learn in (
            ("log_tau_mem", torch.full((n_tau,), math.log(neuron.tau_mem)), learn_tau),
            ("log_tau_syn", torch.full((n_tau,), math.log(neuron.tau_syn)), learn_tau),
            ("threshold", torch.full((n_out,), float(neuron.threshold)), learn_threshold),
        ):
            if learn:
                self.register_parameter(name, nn.Parameter(value))
            else:
                self.register_buffer(name, value)

    def integrate(self, a: torch.Tensor) -> torch.Tensor:
        """Eq. 15: V = k ∗ a for all steps at once, a (n_out, batch, time), with the suite's input gain γ
        (neuron.py, `model.integration`) in place of the paper's 1 − α."""
        tau_mem, tau_syn = self.log_tau_mem.exp(), self.log_tau_syn.exp()
        v = lif_membrane(a, tau_mem, tau_syn, self.dt, self.membrane, self.chunk)
        return v if self.integration == "held" else v * gain_ratio(tau_mem, tau_syn, self.dt, self.integration)[:, None, None]

    def forward(self, x: torch.Tensor, noise: tuple[torch.Tensor, torch.Tensor] | None = None):
        """Spikes and membrane potential V, both (n_out, batch, time), for input x (n_in, batch, time).

        noise: optional uniform draws (recurrent spikes, output spikes) for the stochastic modes (tests).
        """
        s, v, _ = self.run(x, noise)
        return s, v

    def run(self, x: torch.Tensor | None, noise: tuple[torch.Tensor, torch.Tensor] | None = None,
            a: torch.Tensor | None = None):
        """(spikes, V, the recurrent spikes h of Eq. 22 or None), all neuron-major; `a`: the synaptic input x W
        when it was computed already (the first layer on an event batch), x is then not read."""
        theta = self.threshold[:, None, None]
        a = project(self.w_in, x) if a is None else a
        v = self.integrate(a)  # Eq. 15
        h = None
        if self.w_rec is not None:
            h = self.spike_fn(previous_step_time_last(v), theta, None if noise is None else noise[0])  # Eq. 22
            v = v + self.integrate(a + project(self.w_rec, h))  # Eq. 23
        return self.spike_fn(v, theta, None if noise is None else noise[1]), v, h  # Eq. 24


class ParaLIFNet(nn.Module):
    """`layers` ParaLIF layers of `n_hidden` neurons → leaky readout (the suite's filter) of `n_out` classes."""

    def __init__(
        self,
        n_in: int,
        n_hidden: int,
        n_out: int,
        layers: int,
        recurrent: bool,
        hidden: LIFParams,
        readout: LIFParams,
        spike_fn: ParaLIFSpikes,
        learn_tau: bool = False,
        learn_threshold: bool = False,
        init: InitParams = InitParams(),
        membrane: str = "scan",
        chunk: int = 32,
        delays: InputDelays | None = None,
    ) -> None:
        super().__init__()
        if layers < 1:
            raise ConfigError(f"algorithm.layers must be >= 1, got {layers}")
        self.n_in, self.n_hidden, self.n_out, self.recurrent = n_in, n_hidden, n_out, recurrent
        self.readout_params, self.membrane, self.chunk = readout, membrane, chunk
        self.layers = nn.ModuleList(
            ParaLIFLayer(
                n_in if i == 0 else n_hidden, n_hidden, recurrent, hidden, spike_fn, learn_tau, learn_threshold,
                init.in_mean if i == 0 else 0.0, init.in_std, init.rec_std, membrane, chunk,
            )
            for i in range(layers)
        )
        self.w_out = nn.Parameter(init.out_std * torch.randn(n_hidden, n_out) / math.sqrt(n_hidden))
        self.delays = delays  # model.delays: the input channels' delays (algorithms/delays.py), learned by autograd

    def delayed(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.delays is None else self.delays(x)

    def constrain(self) -> None:
        """The delays back into [0, max] after an optimiser step."""
        if self.delays is not None:
            self.delays.constrain()

    def readout(self, spikes: torch.Tensor) -> torch.Tensor:
        """Readout membrane V_out (classes, batch, time) for spikes (hidden, batch, time): the filter of
        `neuron.leaky_readout` (I_out = β_out-filter of s W_out, V_out = γ_out·α_out-filter of I_out)."""
        p = self.readout_params
        tau = lambda value: torch.tensor([value], dtype=spikes.dtype, device=spikes.device)  # noqa: E731
        h = project(self.w_out, spikes)
        v = lif_membrane(h, tau(p.tau_mem), tau(p.tau_syn), p.dt, self.membrane, self.chunk)
        return v if p.integration == "held" else v * (p.gain / (1.0 - p.alpha))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Spikes of the last hidden layer (batch, time, hidden) and readout voltages (batch, time, classes)
        for x (batch, time, inputs); both are views of neuron-major tensors. An event batch (data.format=events)
        reaches the first layer by the sparse input product (delayed or not), as for the other algorithms."""
        layers = list(self.layers)
        if isinstance(x, EventBatch):
            w = layers[0].w_in
            drive = x.input_product(w) if self.delays is None else self.delays.input_product(x, w)
            s, _, _ = layers.pop(0).run(None, a=neuron_major(drive))
        else:
            s = neuron_major(self.delayed(x))
        for layer in layers:
            s, _ = layer(s)
        return s.permute(1, 2, 0), self.readout(s).permute(1, 2, 0)

    @torch.no_grad()
    def simulate(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward pass without gradients (the stochastic modes sample here too)."""
        return self(x)

    def synops_per_spike(self) -> tuple[int, int]:
        """Fan-out of an input spike and of a (last-layer) hidden spike."""
        return self.n_hidden, self.n_out + (self.n_hidden if self.recurrent else 0)

    @torch.no_grad()
    def trace(self, x: torch.Tensor) -> Trace:
        """Per layer its input → W_in and, if recurrent, h → W_rec (Eq. 23); the last layer's spikes → W_out.
        Activations: each layer's spikes (h, a first guess that Eq. 23 corrects, is an input, not an output)."""
        batch_major = lambda t: t.permute(1, 2, 0)  # noqa: E731  (n, batch, time) → (batch, time, n)
        x = as_frames(x)
        out, s = Trace(), neuron_major(self.delayed(x))
        for k, layer in enumerate(self.layers):
            spikes, _, h = layer.run(s)  # an input spike is one event however it is delayed: counted on x
            out.connections.append(Connection(f"layers.{k}.w_in", layer.w_in, x if k == 0 else batch_major(s)))
            if h is not None:
                out.connections.append(Connection(f"layers.{k}.w_rec", layer.w_rec, batch_major(h)))
            out.activations.append(batch_major(spikes))
            s = spikes
        out.connections.append(Connection("w_out", self.w_out, batch_major(s)))
        return out


# ----------------------------------------------------------------------------------------------
# 4. The algorithm: autograd through the parallel network
# ----------------------------------------------------------------------------------------------


def spike_function_from_config(a: DictConfig) -> ParaLIFSpikes:
    return ParaLIFSpikes(a.spike_mode, a.surrogate, float(a.slope), float(a.gs_temperature))


class ParaLIF(SpikingModule):
    """Parallelizable LIF neurons trained by backpropagation (through parallel filters instead of through time)."""

    def heuristics(self) -> list[str]:
        a = self.cfg.algorithm
        return [f"surrogate gradient of spike function {a.spike_mode} ({a.surrogate}, slope {a.slope:g})"]

    def build_network(self, cfg: DictConfig) -> ParaLIFNet:
        a = cfg.algorithm
        spike_fn = spike_function_from_config(a)
        hidden, readout = lif_params_from_config(cfg, self.data_shape.dt)
        threshold = cfg.model.threshold if a.threshold is None else float(a.threshold)
        if not spike_fn.stochastic and not threshold < spike_fn.max_drive():
            raise ConfigError(
                f"algorithm.threshold {threshold} is never reached in spike_mode {a.spike_mode} (its drive stays "
                f"below {spike_fn.max_drive()}); set algorithm.threshold lower"
            )
        hidden = replace(hidden, threshold=threshold)
        return ParaLIFNet(
            n_in=self.data_shape.n_in,
            n_hidden=cfg.model.hidden,
            n_out=self.data_shape.n_classes,
            layers=int(a.layers),
            recurrent=cfg.model.recurrent,
            hidden=hidden,
            readout=readout,
            spike_fn=spike_fn,
            learn_tau=bool(a.learn_tau),
            learn_threshold=bool(a.learn_threshold),
            init=InitParams(**cfg.model.init),
            membrane=str(a.membrane),
            chunk=int(a.chunk),
            delays=input_delays(cfg, self.data_shape),
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.net(x)

    def forward_backward(self, x: torch.Tensor, y: torch.Tensor) -> StepOutput:
        spikes, v_out = self(x)
        loss, logits = self.objective(v_out, spikes, y)
        loss.backward()
        return StepOutput(loss.detach(), logits.detach(), spikes.detach().sum(1))

    def trace(self, x: torch.Tensor) -> Trace:
        return self.net.trace(x)
