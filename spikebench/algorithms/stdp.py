"""STDP: the hidden layer's input weights learn by a local spike-timing rule, with no gradient and no label
(`algorithm=stdp`); the readout is trained afterwards on the hidden spikes, by gradient on W_out only.

The network is the suite's (input → LIF hidden layer with exponential synapses → leaky readouts), as in the
unsupervised digit networks of Diehl & Cook 2015 ("Unsupervised learning of digit recognition using
spike-timing-dependent plasticity", Front. Comput. Neurosci. 9:99): excitatory input weights in [w_min, w_max],
lateral inhibition (every hidden spike inhibits the other hidden neurons with weight −`inhibition`, the fixed
recurrent weights; `model.recurrent` is ignored), optionally the normalisation of each neuron's input weights to a
fixed sum (`weight_sum`, after every update, as Diehl & Cook do) and homeostasis of a per-neuron threshold ϑ_j ≥ ϑ
(`model.threshold`), updated once per training batch, by `algorithm.homeostasis`:
  rate   towards a target rate: ϑ_j ← max(ϑ, ϑ_j + η_ϑ (r_j − r_target) / r_target), r_j the neuron's rate in the batch
         (Hz). A neuron firing below the target only falls back to ϑ: one that never fires is never helped.
  spike  Diehl & Cook's adaptive threshold: every spike of neuron j raises ϑ_j by ϑ₊ (`theta_plus`), and ϑ_j − ϑ decays
         with τ_ϑ (`theta_tau`; theirs 10⁷ ms): ϑ_j ← ϑ + (ϑ_j − ϑ) e^{−B·T/τ_ϑ} + ϑ₊ n_j, n_j the neuron's spikes in
         the batch of B samples of T seconds. There is no target: a neuron that keeps winning keeps becoming harder
         to fire, until the others win; so every neuron gets its turn to learn. Batched, the samples of one batch share
         one threshold (they are not presented one after another as in the paper) and their spikes are added at its end.

The rule (pair-based STDP with traces, Song, Miller & Abbott 2000; Morrison, Diesmann & Gerstner 2008): a pre
trace per input channel and a post trace per hidden neuron,

    x̂[t] = e^{−dt/τ₊} x̂[t−1] + x[t],        ŷ[t] = e^{−dt/τ₋} ŷ[t−1] + s[t],

potentiation at each post spike by the pre trace (the input spikes of the same step count as before it: they
arrive at the step's start, the hidden spike at its end), depression at each pre spike by the post trace of the
steps before:

    Δw_cj = η₊ f₊(w_cj) Σ_t x̂_c[t] s_j[t]  −  η₋ f₋(w_cj) Σ_t x_c[t] ŷ_j[t−1]       (summed over the batch, / batch)

with the weight dependence `algorithm.rule`:
  additive        f₊ = f₋ = 1, then w clipped to [w_min, w_max] (Song et al. 2000);
  multiplicative  f₊ = (w_max − w)/(w_max − w_min), f₋ = (w − w_min)/(w_max − w_min): soft bounds (van Rossum,
                  Bi & Turrigiano 2000);
  memristor       f₊ = exp(−β₊ (w − w_min)/(w_max − w_min)), f₋ = exp(−β₋ (w_max − w)/(w_max − w_min)): the
                  bounded, state-dependent conductance steps of a memristive synapse (the device model of
                  Querlioz, Bichler, Dollfus & Gamrat 2013, IEEE Trans. Nanotechnol. 12:288), then clipped.

Two readouts (`algorithm.readout`), named as such in the tables: `gradient`, the suite's leaky readout with W_out
trained by gradient on the hidden spikes; `assignment`, Diehl & Cook's label assignment by response: over each
training epoch the hidden spike counts are summed per class, at its end every neuron is assigned to the class it
answered most on average, and a recording's score for class k is the mean count of the neurons assigned to k
(W_out unused).

Schedule (`algorithm.plastic_epochs`, Diehl & Cook's): null, W_in, the thresholds and the readout learn together;
N, W_in and the thresholds learn in the first N epochs with the readout untouched (its labels unread), then the
layer is frozen and only the readout learns (gradient on W_out, or the assignment from the frozen layer's responses);
0, the layer never learns: the readout on the random initial layer, the control that tells what STDP adds.

A local rule is not an optimiser step: `forward_backward` applies the batch's Δw to W_in itself (averaged over the
processes, so that replicas stay equal) and leaves W_in without a gradient, which the optimiser then skips; W_out
gets the gradient of the objective on the leaky readout of the (detached) hidden spikes. The rule reads no label.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from spikebench.errors import ConfigError

from .base import SpikingModule, StepOutput
from .distributed import mean_over_processes
from .neuron import exp_filter
from .trace import Connection, Trace, previous_step

RULES = ("additive", "multiplicative", "memristor")


def weight_dependence(w: torch.Tensor, rule: str, w_min: float, w_max: float, beta_plus: float, beta_minus: float
                      ) -> tuple[torch.Tensor | float, torch.Tensor | float]:
    """(f₊(w), f₋(w)) of `rule` (module docstring)."""
    if rule == "additive":
        return 1.0, 1.0
    z = (w - w_min) / (w_max - w_min)
    if rule == "multiplicative":
        return 1.0 - z, z
    if rule == "memristor":
        return torch.exp(-beta_plus * z), torch.exp(-beta_minus * (1.0 - z))
    raise ConfigError(f"unknown algorithm.rule '{rule}'; choose one of: {', '.join(RULES)}")


def stdp_update(x: torch.Tensor, s: torch.Tensor, w: torch.Tensor, a, dt: float) -> torch.Tensor:
    """Δw (inputs, hidden) of one batch: x input counts, s hidden spikes, both (batch, time, ·)."""
    pre = exp_filter(x, math.exp(-dt / a.tau_plus))  # x̂[t], including x[t]
    post = exp_filter(s, math.exp(-dt / a.tau_minus))
    post_before = torch.cat([torch.zeros_like(post[:, :1]), post[:, :-1]], dim=1)  # ŷ[t−1]
    batch = x.shape[0]
    potentiation = torch.einsum("btc,btj->cj", pre, s) / batch
    depression = torch.einsum("btc,btj->cj", x, post_before) / batch
    f_plus, f_minus = weight_dependence(w, a.rule, a.w_min, a.w_max, a.beta_plus, a.beta_minus)
    return a.eta_plus * f_plus * potentiation - a.eta_minus * f_minus * depression


def normalise_columns(w: torch.Tensor, total: float, w_min: float, w_max: float) -> None:
    """In place: each hidden neuron's input weights (a column) scaled to sum to `total`, then clipped to the bounds
    (the competition between a neuron's synapses of Diehl & Cook's networks)."""
    w.mul_(total / w.sum(0, keepdim=True).clamp(min=1e-12)).clamp_(w_min, w_max)


class STDP(SpikingModule):
    """Local spike-timing-dependent plasticity of W_in; the readout W_out by gradient on the hidden spikes."""

    def heuristics(self) -> list[str]:
        a = self.cfg.algorithm
        readout = ("readout by label assignment (Diehl & Cook 2015)" if a.readout == "assignment"
                   else "readout trained by gradient on W_out only")
        homeostasis = ("adaptive threshold (+ϑ₊ per spike, Diehl & Cook 2015)" if a.homeostasis == "spike"
                       else "threshold homeostasis towards a target rate")
        out = [f"{a.rule} STDP of W_in (no gradient, no label)", "lateral inhibition", homeostasis, readout]
        if a.plastic_epochs is not None:
            out.append(f"plasticity in the first {a.plastic_epochs} epoch(s), then the readout on the frozen layer")
        return out

    def __init__(self, cfg, data) -> None:
        super().__init__(cfg, data)
        a = self.cfg.algorithm
        weight_dependence(torch.zeros(1), a.rule, 0.0, 1.0, 1.0, 1.0)  # a bad rule name fails here
        if not a.w_max > a.w_min:
            raise ConfigError(f"algorithm.w_max={a.w_max} must be above algorithm.w_min={a.w_min}")
        if self.cfg.optim.grad_clip > 0:
            raise ConfigError("optim.grad_clip: STDP's weight change is not a gradient; set optim.grad_clip=0")
        net = self.net
        with torch.no_grad():  # excitatory input weights inside the bounds
            net.w_in.copy_(a.w_min + (a.w_max - a.w_min) * a.init_fraction * torch.rand_like(net.w_in))
            if a.weight_sum is not None:
                normalise_columns(net.w_in, float(a.weight_sum), a.w_min, a.w_max)
        net.w_rec, net.recurrent = None, False  # the recurrence is the fixed lateral inhibition below
        n = net.n_hidden
        self.register_buffer("lateral", -float(a.inhibition) * (1.0 - torch.eye(n)))
        self.register_buffer("theta", torch.full((n,), float(self.cfg.model.threshold)))
        k = self.data_shape.n_classes
        self.register_buffer("responses", torch.zeros(n, k))  # assignment readout: this epoch's counts per class
        self.register_buffer("seen", torch.zeros(k))  # and the recordings per class
        self.register_buffer("assigned", torch.full((n,), -1, dtype=torch.long))  # each neuron's class (−1: none)

    @torch.no_grad()
    def hidden_spikes(self, x: torch.Tensor) -> torch.Tensor:
        """Hidden spikes (batch, time, hidden): the LIF neurons with per-neuron thresholds ϑ_j and lateral
        inhibition through the previous step's spikes; with `wta_k`, at most k spikes per step and sample (the
        k most depolarised above threshold), a competition within the step."""
        net, p = self.net, self.net.hidden
        wta = self.cfg.algorithm.wta_k
        drive = x.to(net.w_in.dtype) @ net.w_in
        i = drive.new_zeros(drive.shape[0], net.n_hidden)
        v, s = torch.zeros_like(i), torch.zeros_like(i)
        out = torch.empty_like(drive)
        for t in range(drive.shape[1]):
            i = p.beta * i + drive[:, t] + s @ self.lateral
            u = p.alpha * v + p.gain * i
            s = (u >= self.theta).to(u.dtype)
            if wta is not None:  # only the k most depolarised of the crossing neurons spike in this step
                over = torch.where(s > 0, u - self.theta, torch.full_like(u, -float("inf")))
                keep = torch.zeros_like(s).scatter_(1, over.topk(min(wta, over.shape[1]), dim=1).indices, 1.0)
                s = s * keep
            v = u - (u - p.v_reset) * s
            out[:, t] = s
        return out

    def adapt_thresholds(self, spikes: torch.Tensor) -> None:
        """One batch's homeostasis of ϑ_j (module docstring, `algorithm.homeostasis`); spikes (batch, time, hidden)."""
        a, theta0 = self.cfg.algorithm, float(self.cfg.model.threshold)  # ϑ_j never goes under the neuron's own ϑ
        batch, steps = spikes.shape[0], spikes.shape[1]
        if a.homeostasis == "spike":
            counts = mean_over_processes(spikes.sum((0, 1)))  # n_j
            decay = math.exp(-batch * steps * self.net.hidden.dt / a.theta_tau)
            self.theta.sub_(theta0).mul_(decay).add_(theta0 + a.theta_plus * counts)
        else:
            rate = mean_over_processes(spikes.sum((0, 1)) / (batch * steps * self.net.hidden.dt))  # Hz
            self.theta.add_(a.theta_lr * (rate - a.target_rate) / a.target_rate).clamp_(min=theta0)

    def plastic(self) -> bool:
        """Whether W_in and the thresholds learn in this epoch: always, or (`algorithm.plastic_epochs`) in the first
        epochs only, after which the layer is frozen and only the readout learns (Diehl & Cook 2015's schedule)."""
        n = self.cfg.algorithm.plastic_epochs
        return n is None or self.current_epoch < n

    def forward_backward(self, x: torch.Tensor, y: torch.Tensor) -> StepOutput:
        net, a = self.net, self.cfg.algorithm
        spikes = self.hidden_spikes(x)
        plastic, scheduled = self.plastic(), a.plastic_epochs is not None
        if self.training and plastic:  # the local rule and the homeostasis learn during training steps only
            with torch.no_grad():
                dw = mean_over_processes(stdp_update(x.to(spikes.dtype), spikes, net.w_in, a, net.hidden.dt))
                net.w_in.add_(dw).clamp_(a.w_min, a.w_max)
                if a.weight_sum is not None:  # every neuron's input weights sum to weight_sum (Diehl & Cook 2015)
                    normalise_columns(net.w_in, float(a.weight_sum), a.w_min, a.w_max)
                self.adapt_thresholds(spikes)
        net.w_in.grad = None
        counts = spikes.sum(1)
        if a.readout == "assignment":
            if self.training and not (scheduled and plastic):  # the readout (not the rule) reads the labels
                onehot = F.one_hot(y, self.data_shape.n_classes).to(counts.dtype)
                self.responses += counts.T @ onehot
                self.seen += onehot.sum(0)
            logits = self.assignment_scores(counts)
            return StepOutput(F.cross_entropy(logits, y).detach(), logits, counts)
        learn_readout = not (scheduled and plastic)  # with a schedule, the readout learns on the frozen layer only
        with torch.set_grad_enabled(learn_readout):  # no graph where no backward follows
            loss, logits = self.objective(net.readout(spikes), spikes, y)  # a gradient for W_out only
        if learn_readout:
            loss.backward()
        return StepOutput(loss.detach(), logits.detach(), counts)

    def assignment_scores(self, counts: torch.Tensor) -> torch.Tensor:
        """(batch, classes): the mean count of the neurons assigned to each class (0 where none is)."""
        onehot = F.one_hot(self.assigned.clamp(min=0), self.data_shape.n_classes).to(counts.dtype)
        onehot[self.assigned < 0] = 0
        return counts @ onehot / onehot.sum(0).clamp(min=1)

    def after_training_epoch(self, hidden_counts: torch.Tensor) -> None:
        if self.cfg.algorithm.readout == "assignment" and float(self.seen.sum()) > 0:
            responses = mean_over_processes(self.responses.clone())  # every process: the same assignment
            seen = mean_over_processes(self.seen.clone())
            self.assigned.copy_((responses / seen.clamp(min=1)).argmax(1))
            self.responses.zero_()
            self.seen.zero_()

    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> StepOutput:
        if self.cfg.algorithm.readout != "assignment":
            return super().evaluate(x, y)
        counts = self.hidden_spikes(x).sum(1)
        logits = self.assignment_scores(counts)
        return StepOutput(F.cross_entropy(logits, y).detach(), logits, counts)

    def trace(self, x: torch.Tensor) -> Trace:
        """The network's connections, the lateral inhibition in place of W_rec."""
        spikes, _ = self.simulate(x)
        out = Trace(activations=[spikes])
        out.connections += [Connection("w_in", self.net.w_in, x), Connection("lateral", self.lateral, previous_step(spikes)),
                            Connection("w_out", self.net.w_out, spikes)]
        return out

    @torch.no_grad()
    def simulate(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        spikes = self.hidden_spikes(x)
        return spikes, self.net.readout(spikes)

