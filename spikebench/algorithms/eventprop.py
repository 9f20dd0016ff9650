"""EventProp: exact event-based gradients (Wunderlich & Pehle 2021) with loss shaping (Nowotny, Turner & Knight 2025).

Method, top-down:

1. **Forward** (`event_sim.exact_spikes` or `event_sim.discrete_spikes`, chosen by `algorithm.time_mode`):
   simulate the shared network from the input spikes (`event_sim.InputSpikes`: W_in x[t] summed over input
   spikes, a block of steps at a time) and keep for the backward pass only the events: the input spikes and each
   hidden spike (flat index b·hidden + n, τ_mem V̇⁻ = I⁻ − ϑ; exact mode also its time in the step), spikes per
   step, plus a (batch, hidden) or (batch, classes) summary of the readout. Nothing of size (batch, time, hidden)
   is made (tests/test_eventprop.py tracks every allocation of a step).
2. **Readout and loss.** The readout is linear in the hidden spike trains, so its adjoint has a closed form
   at every hidden spike time t_k: with h(d) the readout's voltage response to one unit of synaptic input,
   - `sum`, `sum_exp`:  z_c = (1/T)∫₀ᵀ ω(t) V_c(t) dt = Σ_k W_out[n_k, c] K(t_k),  K(t) = (1/T)∫_t^T ω(u) h(u − t) du,
     ω = 1 or e^{−t/T} (Nowotny et al. 2025, eqs. of L_sum and L_sum_exp); K in closed form.
   - `max`:  z_c = V_c(t*_c), t*_c the step end with the largest V_c (as in losses.py, over steps).
   - `first_spike`: t_c the first crossing of ϑ by V_c (outputs fire once; later spikes do not matter),
     L = CE(softmax(−t/τ₀), y) + α (e^{t_y/τ₁} − 1) (Wunderlich & Pehle 2021, eq. 12; outputs that do not
     fire count as t_c = T and get no gradient). A crossing is a point readout with weight
     −(∂L/∂t_c) / V̇_c(t_c), so `max` and `first_spike` share one code path.
   Then −τ_syn λ_I,out(t_k) = ∂L/∂z · K(t_k) gives dL/dW_out = −τ_syn Σ_k λ_I,out(t_k), and the readout's share
   of the hidden jump, (W_out(λ_V,out − λ_I,out))_n, is ∂L/∂z · W_out K′(t_k).
3. **Backward** (`event_adjoint.adjoint_sweep`, with the loss's and readout's terms of each jump from
   `JumpTerms`, one block of steps at a time): the hidden adjoint from λ(T) = 0 back to 0,
       τ_mem λ_V′ = −λ_V,   τ_syn λ_I′ = −λ_I + λ_V      (′ = −d/dt, closed form between events),
       (λ_V⁻)_n = (λ_V⁺)_n + [τ_mem V̇⁻]⁻¹ [(ϑ − V_reset)(λ_V⁺)_n + (W_rec(λ_V⁺ − λ_I⁺))_n + ∂l_p/∂t_k + readout share]
   (W&P eq. 19 with reset to V_reset), and the weight gradients dL/dw_ji = −τ_syn Σ_{spikes of i} (λ_I)_j:
       dL/dW_in = −τ_syn Σ_t x[t]ᵀ λ_I(t·dt),   dL/dW_rec[n] = −τ_syn Σ_{k: n_k = n} λ_I(t_k).
4. **Regulariser** (`loss.reg_form`). `gradient`: the spike-count term c·mean_j(N̄_j − ν)² has zero derivative
   almost everywhere; as in Nowotny et al. (2025) it enters the jump as ∂l_p/∂t_k: each spike counts as if its
   count fell by 1/T per unit of delay (∂N_j/∂t_k := −1/T). The gradient is the exact derivative of that
   surrogate, which the tests check. `published`: mlGeNN's rule, λ_V −= (c/B)(N̄_n − ν) at each spike of neuron n,
   outside the [τ_mem V̇⁻]⁻¹ factor — a heuristic push, not the gradient of a loss.
5. **Silent neurons.** EventProp cannot create spikes: a neuron that never fires gets no gradient. At the end
   of each training epoch, the input weights of neurons silent over the whole epoch are raised by
   `algorithm.silent_lift` (each in units of ϑ per input spike).

Time modes: `exact` integrates the continuous-time model (V(t) between events a sum of two exponentials,
spike times solved inside the step), so its gradient is the true derivative of that model (checked against
finite differences to 1e-6); `discrete` runs the per-step update of neuron.py (the model BPTT trains and every
algorithm evaluates) with spikes on the step grid, as mlGeNN does, and applies the same adjoint equations with
spike times at step ends. `discrete` is the default and the one that trains better in practice: its forward runs one vectorised (on CPU,
compiled) step per time step, while the exact forward must resolve the spikes of each trial one after the other
(a recurrent spike changes every later crossing), which makes it 20–28× slower per epoch on CPU (README); per
epoch both descend the loss alike, and the discrete gradient is taken on the very model that is tested.
Its price is an approximate gradient: with `model.integration=exact` the per-step update is the continuous model
sampled at the step ends, but a discrete spike sits at the end of its step and resets there, lagging the
continuous spike by up to dt; the lag accumulates along a spike train, so at dt = 1 ms the two modes fire
different spike trains and their gradients can disagree (`python -m spikebench.sweeps.diagnostics.eventprop_modes` measures it); where
they fire the same spikes (dt = 0.1 ms), the cosine is ≥ 0.9 (tests).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from spikebench.errors import ConfigError
from spikebench.events import EventBatch

from .base import SpikingModule, StepOutput
from .distributed import BatchMean
from .event_adjoint import adjoint_sweep
from .event_input import InputSpikes, delayed_input
from .event_sim import Spikes, discrete_spikes, exact_spikes, psp_kernel
from .losses import LOSS_KINDS, readout_time_kernel
from .neuron import LIFParams, exp_filter

TIME_MODES = ("exact", "discrete")


@dataclass(frozen=True)
class Setup:
    """Everything the autograd node needs besides tensors."""

    hidden: LIFParams
    readout: LIFParams
    kind: str
    exact: bool
    vdot_floor: float
    block: int = 64  # steps of input read (and of λ_I held) at a time: memory O(block × batch × hidden)
    published_reg: tuple[float, float] | None = None  # (c, ν) of loss.reg_form=published, applied in the adjoint
    batch_mean: BatchMean = field(default_factory=BatchMean)  # the module's (global over processes in training)


# ----------------------------------------------------------------------------------------------
# Readout kernels: z_c = Σ_k W_out[n_k, c] K(t_k) and the response h of a point readout
# ----------------------------------------------------------------------------------------------


def linear_kernel_exact(t: torch.Tensor, kind: str, total: float, p: LIFParams) -> tuple[torch.Tensor, torch.Tensor]:
    """K(t) = (1/T)∫_t^T ω(u) h(u − t) du and K′(t), closed form. With a = 1/T (sum_exp) or 0 (sum),
    E_τ(t) = ∫_t^T e^{−au} e^{−(u−t)/τ} du = e^{−at}(1 − e^{−(a+1/τ)(T−t)})/(a + 1/τ), and dE_τ/dt = E_τ/τ − ω(t):
    K = c/T (E_τm − E_τs),  K′ = c/T (E_τm/τm − E_τs/τs),  c = τs/(τm − τs)."""
    a = 1.0 / total if kind == "sum_exp" else 0.0
    c = p.tau_syn / (p.tau_mem - p.tau_syn)

    def e(tau: float) -> torch.Tensor:
        r = a + 1.0 / tau
        return torch.exp(-a * t) * (1.0 - torch.exp(-r * (total - t))) / r

    e_m, e_s = e(p.tau_mem), e(p.tau_syn)
    return c / total * (e_m - e_s), c / total * (e_m / p.tau_mem - e_s / p.tau_syn)


def linear_kernel_discrete(
    steps: int, kind: str, p: LIFParams, dtype: torch.dtype, device
) -> tuple[torch.Tensor, torch.Tensor]:
    """K_d[t] = ∂z/∂h[t] of the per-step readout (z = Σ_t w_t V[t], losses.readout_time_kernel), and its central
    difference / dt."""
    k = readout_time_kernel(steps, kind, p, dtype, device)
    padded = torch.cat([k[:1], k, k.new_zeros(1)])
    return k, (padded[2:] - padded[:-2]) / (2 * p.dt)


def impulse_response_discrete(steps: int, p: LIFParams, dtype: torch.dtype, device) -> torch.Tensor:
    """f[d]: V_out d steps after one unit of readout input, (time,)."""
    d = torch.zeros(1, steps, 1, dtype=dtype, device=device)
    d[0, 0, 0] = 1.0
    return (p.gain * exp_filter(exp_filter(d, p.beta), p.alpha)).view(steps)


def discrete_readout(spk: Spikes, batch: int, steps: int, w_out: torch.Tensor, p: LIFParams, chunk: int = 64
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """V_out and I_out of the per-step readout (neuron.leaky_readout) driven by the listed hidden spikes,
    (batch, time, classes): the readout input Σ_k W_out[n_k] is scattered per (sample, step), `chunk` steps of
    spikes at a time (temporaries O(spikes of a chunk × classes))."""
    h = w_out.new_zeros(batch * steps, w_out.shape[1])
    ptr = spk.ptr()
    for t0 in range(0, steps, chunk):
        t1 = min(steps, t0 + chunk)
        lo, hi = ptr[t0], ptr[t1]
        flat = spk.flat[lo:hi].long()
        h.index_add_(0, (flat // spk.hidden) * steps + spk.steps_of(t0, t1), w_out.index_select(0, flat % spk.hidden))
    i = exp_filter(h.view(batch, steps, -1), p.beta)
    return p.gain * exp_filter(i, p.alpha), i


# ----------------------------------------------------------------------------------------------
# The autograd node: forward keeps events, backward runs the adjoint
# ----------------------------------------------------------------------------------------------


class EventPropFunction(torch.autograd.Function):
    """(W_in, W_rec, W_out, x) → (readout output (batch, classes), spike counts (batch, hidden)), x frames or
    the event batch.

    The readout output is the logits z for sum/sum_exp/max and the first output spike times for first_spike.
    Kept for backward: the input spikes, the hidden spikes (flat index, τ_mem V̇⁻, and τ in exact mode), spikes per
    step, and a (batch, hidden) or (batch, classes) summary of the readout.
    """

    @staticmethod
    def forward(ctx, w_in, w_rec, w_out, x, delay, setup: Setup):  # type: ignore[override]
        events = InputSpikes.from_batch(x, setup.block, w_in.dtype)  # frames or the event batch
        batch, steps, n_in = events.batch, events.steps, events.n_in
        hidden = w_in.shape[1]
        p, po, kind = setup.hidden, setup.readout, setup.kind
        total = steps * p.dt
        dtype, dev = w_in.dtype, w_in.device
        inp = events if delay is None else delayed_input(
            events.row, events.ch, events.val, (batch, steps, n_in), setup.block, delay, p.dt, setup.exact, w_in,
            for_backward=False)

        if setup.exact:
            spk, trace = exact_spikes(
                inp, w_in, w_rec, p, w_out, po, track_readout=kind == "max", first_spike=kind == "first_spike"
            )
        else:
            spk = discrete_spikes(inp, w_in, w_rec, p)
        counts = spk.counts(batch, dtype)

        if kind in ("sum", "sum_exp"):
            if setup.exact:
                k, _ = linear_kernel_exact(spk.times(p.dt), kind, total, po)
            else:
                k = linear_kernel_discrete(steps, kind, po, dtype, dev)[0].repeat_interleave(spk.step_counts)
            acc = torch.zeros(batch * hidden, dtype=dtype, device=dev).index_add_(0, spk.flat, k)
            summary = acc.view(batch, hidden)  # A[b, n] = Σ_k K(t_k): z = A W_out
            out = summary @ w_out
            extra = summary.new_zeros(0)
        elif kind == "max":
            v_out = trace.v_out if setup.exact else discrete_readout(spk, batch, steps, w_out, po)[0]
            idx = v_out.argmax(1)
            out = v_out.gather(1, idx[:, None]).squeeze(1)
            summary = (idx + 1).to(dtype) * p.dt if setup.exact else idx.to(dtype)  # t* (s) or its step
            extra = summary.new_zeros(0)
        else:  # first_spike
            if setup.exact:
                first, imt = trace.first_time, trace.first_i_minus_theta
            else:
                v_out, i_out = discrete_readout(spk, batch, steps, w_out, po)
                above = v_out >= po.threshold
                idx = above.to(torch.uint8).argmax(1)
                fired = above.any(1)
                never = torch.full(fired.shape, float("inf"), dtype=dtype, device=dev)
                first = torch.where(fired, (idx + 1).to(dtype) * p.dt, never)
                imt = i_out.gather(1, idx[:, None]).squeeze(1) - po.threshold
            out = torch.where(torch.isfinite(first), first, torch.full_like(first, total))
            summary, extra = first, imt

        none = spk.i_minus_theta.new_zeros(0)
        ctx.save_for_backward(
            events.row, events.ch, events.val, none if delay is None else delay.detach(), spk.flat.int(), spk.step_counts, spk.i_minus_theta,
            none if spk.tau is None else spk.tau, none.long() if spk.groups is None else spk.groups,
            summary, extra, w_in, w_rec, w_out,
        )
        ctx.setup, ctx.shape = setup, (batch, steps, n_in, hidden)
        ctx.has_rec, ctx.has_delay = w_rec is not None, delay is not None
        return out, counts

    @staticmethod
    def backward(ctx, g_out, g_counts):  # type: ignore[override]
        row, ch, val, delay, flat, step_counts, imt, tau, groups, summary, extra, w_in, w_rec, w_out = ctx.saved_tensors
        setup = ctx.setup
        batch, steps, n_in, hidden = ctx.shape
        exact = setup.exact
        spk = Spikes(flat, hidden, step_counts, imt, tau if exact else None, groups if exact else None)
        w_rec = w_rec if ctx.has_rec else None
        terms = JumpTerms(spk, setup, steps, g_out, g_counts, summary, extra, w_out)
        shape = (batch, steps, n_in)
        inp = InputSpikes(row, ch, val, shape, setup.block) if not ctx.has_delay else delayed_input(
            row, ch, val, shape, setup.block, delay, setup.hidden.dt, exact, w_in)
        g_w_in, g_w_rec = adjoint_sweep(spk, terms, inp, w_in, w_rec, setup.hidden, exact)
        g_delay = inp.delay_grad(w_in, setup.hidden.tau_syn).to(delay.dtype) if ctx.has_delay else None
        return g_w_in, g_w_rec, terms.g_w_out, None, g_delay, None


class JumpTerms:
    """What the loss and the readout add to the jump of each hidden spike, c_k, with 1/(τ_mem V̇⁻), computed for
    the spikes of one block of steps at a time (`__call__`), and dL/dW_out (`g_w_out`).

    - sum, sum_exp: c_k = K′(t_k) (∂L/∂z W_outᵀ)[b_k, n_k];  dL/dW_out = Aᵀ ∂L/∂z (A the forward's summary).
    - max, first_spike: a point readout at t*_c with weight ω_c (max: ∂L/∂z_c; first spike: −(∂L/∂t_c)/V̇_c):
      c_k = Σ_c ω_c W_out[n_k, c] ∂h(t*_c − t_k)/∂t_k, and dL/dW_out[n_k, c] += ω_c h(t*_c − t_k).
    - regulariser, loss.reg_form=gradient: c_k −= ∂L/∂N[b_k, n_k] / T  (∂N_j/∂t_k := −1/T);
      loss.reg_form=published: λ_V⁻ −= (c/B)(N̄_n − ν) at each spike of neuron n (mlGeNN / genn_eventprop), a
      heuristic push outside the 1/(τ_mem V̇⁻) factor, not the gradient of any loss.
    """

    def __init__(self, spk: Spikes, setup: Setup, steps: int, g_out, g_counts, summary, extra, w_out) -> None:
        self.spk, self.setup, self.steps = spk, setup, steps
        p, po, kind = setup.hidden, setup.readout, setup.kind
        self.total = steps * p.dt
        self.g_counts, self.summary, self.w_out = g_counts, summary, w_out
        dtype, dev = w_out.dtype, w_out.device
        if setup.published_reg is not None:  # −(c/B)(N̄_n − ν) per spike of neuron n, N̄ the batch-mean count
            c, nu = setup.published_reg
            batch = g_counts.shape[0]
            mean = setup.batch_mean.of_sums(torch.bincount(spk.flat.long() % spk.hidden, minlength=spk.hidden).to(dtype), batch)
            self.push = -(c / batch) * (mean - nu)
        if kind in ("sum", "sum_exp"):
            self.g_w_out = summary.T @ g_out
            self.g_hidden = g_out @ w_out.T  # (batch, hidden)
            if not setup.exact:
                self.k_dot = linear_kernel_discrete(steps, kind, po, dtype, dev)[1]
        else:
            self.g_w_out = torch.zeros_like(w_out)
            if kind == "max":
                self.weight = g_out
            else:  # a crossing at t_c moves by −δV/V̇: a point readout with weight −(∂L/∂t_c)/V̇_c
                fired = torch.isfinite(summary)
                self.weight = torch.where(fired, -g_out * po.tau_mem / extra.clamp_min(1e-12), torch.zeros_like(g_out))
            if not setup.exact:
                f = impulse_response_discrete(steps, po, dtype, dev)
                self.f, self.fp = f, torch.cat([f.new_zeros(1), f, f.new_zeros(1)])

    def __call__(self, lo: int, hi: int, t0: int, t1: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(c_k, 1/(τ_mem V̇⁻)) of spikes [lo, hi), the spikes of steps [t0, t1)."""
        spk, setup, p, po = self.spk, self.setup, self.setup.hidden, self.setup.readout
        flat = spk.flat[lo:hi].long()
        step = spk.steps_of(t0, t1)
        if setup.kind in ("sum", "sum_exp"):
            if setup.exact:
                k_dot = linear_kernel_exact(spk.times(p.dt, lo, hi, step), setup.kind, self.total, po)[1]
            else:
                k_dot = self.k_dot[step]
            coef = k_dot * self.g_hidden.view(-1).take(flat)
        else:
            b, n = flat // spk.hidden, flat % spk.hidden
            if setup.exact:
                d = self.summary[b] - spk.times(p.dt, lo, hi, step)[:, None]  # spike to readout point, (K, classes)
                after = d > 0
                h, h_dot = psp_kernel(d.clamp_min(0.0), po)
                resp, resp_dt = h * after, -h_dot * after
            else:
                if setup.kind == "max":  # summary: the step of the maximum
                    d = self.summary[b].long()
                else:  # summary: first spike time (t+1)·dt, or +inf
                    d = torch.round((self.summary[b] / p.dt).nan_to_num(posinf=-1.0)).long() - 1
                d = d - step[:, None]
                after = d >= 0
                dc = d.clamp(0, self.steps - 1)
                resp = self.f[dc] * after
                resp_dt = (self.fp[dc] - self.fp[dc + 2]) / (2 * p.dt) * after
            wb = self.weight[b]
            self.g_w_out.index_add_(0, n, wb * resp)
            coef = (wb * self.w_out.index_select(0, n) * resp_dt).sum(1)
        coef = coef - self.g_counts.view(-1).take(flat) / self.total  # regulariser: ∂N_j/∂t_k := −1/T
        vdot = spk.i_minus_theta[lo:hi]
        vdot = vdot.clamp_min(setup.vdot_floor) if setup.vdot_floor > 0 else vdot
        if setup.published_reg is not None:  # added to λ_V outside the 1/(τ_mem V̇⁻) factor: push · V̇ inside it
            coef = coef + self.push[flat % spk.hidden] * vdot
        return coef, 1.0 / vdot


# ----------------------------------------------------------------------------------------------
# The LightningModule
# ----------------------------------------------------------------------------------------------


class EventProp(SpikingModule):
    """EventProp on the shared network: `forward_backward` = events forward, adjoint backward."""

    def heuristics(self) -> list[str]:
        a, loss = self.cfg.algorithm, self.cfg.loss
        out = [f"silent-neuron lift {a.silent_lift:g}"] if a.silent_lift > 0 else []
        out += [f"V̇ floor {a.vdot_floor:g}"] if a.vdot_floor > 0 else []
        if loss.reg_strength:
            out.append("published regulariser push" if loss.get("reg_form", "gradient") == "published"
                       else "regulariser through spike times (∂N/∂t := −1/T)")
        if not self.setup_.exact:
            out.append("discrete adjoint (spikes at step ends)")
        return out

    def __init__(self, cfg, data) -> None:
        super().__init__(cfg, data)
        a = self.cfg.algorithm
        if a.time_mode not in TIME_MODES:
            raise ConfigError(f"unknown algorithm.time_mode '{a.time_mode}'; choose one of: {', '.join(TIME_MODES)}")
        if self.cfg.loss.kind not in LOSS_KINDS:
            raise ConfigError(f"unknown loss.kind '{self.cfg.loss.kind}'; choose one of: {', '.join(LOSS_KINDS)}")
        for key in ("first_spike_tau0", "first_spike_tau1"):
            if not a[key] > 0:
                raise ConfigError(f"algorithm.{key} must be > 0 seconds, got {a[key]}")
        for key in ("vdot_floor", "silent_lift", "first_spike_alpha"):
            if a[key] < 0:
                raise ConfigError(f"algorithm.{key} must be >= 0, got {a[key]}")
        form = self.cfg.loss.get("reg_form", "gradient")
        published = (float(self.cfg.loss.reg_strength), float(self.cfg.loss.reg_target)) if (
            form == "published" and self.cfg.loss.reg_strength) else None
        if not a.block_steps >= 1:
            raise ConfigError(f"algorithm.block_steps must be >= 1, got {a.block_steps}")
        self.setup_ = Setup(
            self.net.hidden, self.net.readout_params, self.cfg.loss.kind, a.time_mode == "exact", float(a.vdot_floor),
            int(a.block_steps), published, self.objective.batch_mean,
        )

    # -- forward: readout output and spike counts through the EventProp node ----------------------

    def outputs(self, x: "torch.Tensor | EventBatch") -> tuple[torch.Tensor, torch.Tensor]:
        """Readout output (batch, classes) and hidden spike counts (batch, hidden), differentiable by EventProp.
        x: frames, or the event batch (data.format=events), whose lists are the input spikes as they are."""
        net = self.net
        delay = net.delays.delay if net.delays is not None else None
        return EventPropFunction.apply(net.w_in, net.w_rec, net.w_out, x, delay, self.setup_)

    def loss_from(self, out: torch.Tensor, counts: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss, logits): cross-entropy of the readout (first_spike: of −t/τ₀, plus α(e^{t_y/τ₁} − 1)),
        plus the regulariser."""
        a, o = self.cfg.algorithm, self.objective
        if o.kind == "first_spike":
            logits = -out / a.first_spike_tau0
            t_true = out.gather(1, y[:, None]).squeeze(1)
            late = (torch.exp(t_true / a.first_spike_tau1) - 1).mean()
            loss = F.cross_entropy(logits, y) + a.first_spike_alpha * late
        else:
            logits = out
            loss = F.cross_entropy(logits, y)
        if o.reg_strength and self.setup_.published_reg is None:  # published form: a push in the adjoint, no loss
            loss = loss + o.regulariser(counts.unsqueeze(1))
        return loss, logits

    def forward_backward(self, x: torch.Tensor, y: torch.Tensor) -> StepOutput:
        out, counts = self.outputs(x)
        loss, logits = self.loss_from(out, counts, y)
        loss.backward()
        return StepOutput(loss.detach(), logits.detach(), counts.detach())

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> StepOutput:
        out, counts = self.outputs(x)
        loss, logits = self.loss_from(out, counts, y)
        return StepOutput(loss, logits, counts)

    @torch.no_grad()
    def simulate(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Hidden spikes per step (batch, time, hidden) and V_out at step ends (batch, time, classes) of the
        model that this time mode trains."""
        if not self.setup_.exact:
            return self.net.simulate(x)
        net = self.net
        x = x.to(net.w_in.dtype)
        inp = InputSpikes.from_batch(x, self.setup_.block, net.w_in.dtype)
        if net.delays is not None:
            inp = delayed_input(inp.row, inp.ch, inp.val, tuple(x.shape), inp.block, net.delays.delay, net.hidden.dt,
                                True, net.w_in)
        spk, trace = exact_spikes(inp, net.w_in, net.w_rec, net.hidden, net.w_out, net.readout_params,
                                  track_readout=True)
        return spk.dense(x.shape[0], x.shape[1], x.dtype), trace.v_out

    # -- the silent-neuron remedy -----------------------------------------------------------------

    def after_training_epoch(self, hidden_counts: torch.Tensor) -> None:
        lift = float(self.cfg.algorithm.silent_lift)
        if lift > 0:
            silent = hidden_counts == 0
            if bool(silent.any()):
                with torch.no_grad():
                    self.net.w_in[:, silent] += lift
            self.log("train/lifted", float(silent.sum()))  # equal on every process (global counts): no collective
