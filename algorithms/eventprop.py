"""EventProp: exact event-based gradients (Wunderlich & Pehle 2021) with loss shaping (Nowotny, Turner & Knight 2025).

Method, top-down:

1. **Forward** (`event_sim.exact_spikes` or `event_sim.discrete_spikes`, chosen by `algorithm.time_mode`):
   simulate the shared network and keep for the backward pass only the events: each input spike
   (bin, channel, count) and each hidden spike (sample, neuron, time, τ_mem V̇⁻ = I⁻ − ϑ), plus a
   (batch, hidden) or (batch, classes) summary of the readout. This grows with the number of spikes,
   not with the number of steps.
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
3. **Backward** (`event_sim.adjoint_sweep`): the hidden adjoint from λ(T) = 0 back to 0,
       τ_mem λ_V′ = −λ_V,   τ_syn λ_I′ = −λ_I + λ_V      (′ = −d/dt, closed form between events),
       (λ_V⁻)_n = (λ_V⁺)_n + [τ_mem V̇⁻]⁻¹ [(ϑ − V_reset)(λ_V⁺)_n + (W_rec(λ_V⁺ − λ_I⁺))_n + ∂l_p/∂t_k + readout share]
   (W&P eq. 19 with reset to V_reset), and the weight gradients dL/dw_ji = −τ_syn Σ_{spikes of i} (λ_I)_j:
       dL/dW_in = −τ_syn Σ_t x[t]ᵀ λ_I(t·dt),   dL/dW_rec[n] = −τ_syn Σ_{k: n_k = n} λ_I(t_k).
4. **Regulariser.** The spike-count term c·mean_j(N̄_j − ν)² has zero derivative almost everywhere; as in
   Nowotny et al. (2025) it enters the jump as ∂l_p/∂t_k: each spike counts as if its count fell by 1/T per
   unit of delay (∂N_j/∂t_k := −1/T), so neurons above target push their spikes later (and out), those below
   pull them earlier. The gradient is the exact derivative of that surrogate, which the tests check.
5. **Silent neurons.** EventProp cannot create spikes: a neuron that never fires gets no gradient. At the end
   of each training epoch, the input weights of neurons silent over the whole epoch are raised by
   `algorithm.silent_lift` (each in units of ϑ per input spike).

Time modes: `exact` integrates the continuous-time model (V(t) between events a sum of two exponentials,
spike times solved inside the step), so its gradient is the true derivative of that model (checked against
finite differences to 1e-6); `discrete` runs the per-step update of neuron.py (the model BPTT trains and every
algorithm evaluates) with spikes on the step grid, as mlGeNN does, and applies the same adjoint equations with
spike times at step ends. `discrete` is the default and the one that trains better in practice: its forward is
one vectorised step per time step, while the exact forward must resolve the spikes of each trial one after the
other (a recurrent spike changes every later crossing), which makes it 20–100× slower on CPU at SHD activity;
per epoch both descend the loss alike, and the discrete gradient is taken on the very model that is tested.
Its price is an approximate gradient: with `model.integration=exact` the per-step update is the continuous model
sampled at the step ends, but a discrete spike sits at the end of its step and resets there, lagging the
continuous spike by up to dt; the lag accumulates along a spike train, so at dt = 1 ms the two modes fire
different spike trains and their gradients can disagree (`python -m sweeps.eventprop_modes` measures it); where
they fire the same spikes (dt = 0.1 ms), the cosine is ≥ 0.9 (tests).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .base import SpikingModule, StepOutput
from .event_sim import Spikes, adjoint_sweep, discrete_spikes, exact_spikes, psp_kernel
from .losses import READOUTS, spike_count_regulariser, time_weights
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
    """K_d[t] = ∂z/∂h[t] of the per-step readout (z = Σ_t w_t V[t], losses.py), and its central difference / dt."""
    w = time_weights(steps, kind, dtype, device).view(1, steps, 1) * p.gain
    k = exp_filter(exp_filter(w, p.alpha, reverse=True), p.beta, reverse=True).view(steps)
    padded = torch.cat([k[:1], k, k.new_zeros(1)])
    return k, (padded[2:] - padded[:-2]) / (2 * p.dt)


def impulse_response_discrete(steps: int, p: LIFParams, dtype: torch.dtype, device) -> torch.Tensor:
    """f[d]: V_out d steps after one unit of readout input, (time,)."""
    d = torch.zeros(1, steps, 1, dtype=dtype, device=device)
    d[0, 0, 0] = 1.0
    return (p.gain * exp_filter(exp_filter(d, p.beta), p.alpha)).view(steps)


def discrete_readout(spikes: torch.Tensor, w_out: torch.Tensor, p: LIFParams) -> tuple[torch.Tensor, torch.Tensor]:
    """V_out and I_out of the per-step readout (neuron.leaky_readout), (batch, time, classes)."""
    i = exp_filter(spikes @ w_out, p.beta)
    return p.gain * exp_filter(i, p.alpha), i


# ----------------------------------------------------------------------------------------------
# The autograd node: forward keeps events, backward runs the adjoint
# ----------------------------------------------------------------------------------------------


class EventPropFunction(torch.autograd.Function):
    """(W_in, W_rec, W_out, x) → (readout output (batch, classes), spike counts (batch, hidden)).

    The readout output is the logits z for sum/sum_exp/max and the first output spike times for first_spike.
    Everything kept for backward goes through `ctx.save_for_backward` (so the base class's meter sees it).
    """

    @staticmethod
    def forward(ctx, w_in, w_rec, w_out, x, setup: Setup):  # type: ignore[override]
        batch, steps, n_in = x.shape
        hidden, n_out = w_in.shape[1], w_out.shape[1]
        p, po, kind = setup.hidden, setup.readout, setup.kind
        total = steps * p.dt
        flat = x.reshape(batch * steps, n_in)
        x_idx = flat.nonzero().T
        x_val = flat[x_idx[0], x_idx[1]]
        x_sp = torch.sparse_coo_tensor(
            x_idx, x_val, (batch * steps, n_in), check_invariants=False, is_coalesced=True
        )
        a = torch.sparse.mm(x_sp, w_in).view(batch, steps, hidden)  # W_in x[t], input spikes only

        if setup.exact:
            spk, trace = exact_spikes(
                a, w_rec, p, w_out, po, track_readout=kind == "max", first_spike=kind == "first_spike"
            )
        else:
            spk, dense = discrete_spikes(a, w_rec, p)
        counts = spk.counts(batch, hidden, a.dtype)

        if kind in ("sum", "sum_exp"):
            if setup.exact:
                k, _ = linear_kernel_exact(spk.times(p.dt), kind, total, po)
            else:
                k = linear_kernel_discrete(steps, kind, po, a.dtype, a.device)[0][spk.step]
            acc = torch.zeros(batch * hidden, dtype=a.dtype, device=a.device)
            acc.index_add_(0, spk.b * hidden + spk.n, k)
            summary = acc.view(batch, hidden)  # A[b, n] = Σ_k K(t_k): z = A W_out
            out = summary @ w_out
            extra = summary.new_zeros(0)
        elif kind == "max":
            v_out = trace.v_out if setup.exact else discrete_readout(dense, w_out, po)[0]
            idx = v_out.argmax(1)
            out = v_out.gather(1, idx[:, None]).squeeze(1)
            summary = (idx + 1).to(a.dtype) * p.dt if setup.exact else idx.to(a.dtype)  # t* (s) or its step
            extra = summary.new_zeros(0)
        else:  # first_spike
            if setup.exact:
                first, imt = trace.first_time, trace.first_i_minus_theta
            else:
                v_out, i_out = discrete_readout(dense, w_out, po)
                above = v_out >= po.threshold
                idx = above.to(torch.uint8).argmax(1)
                fired = above.any(1)
                never = torch.full(fired.shape, float("inf"), dtype=a.dtype, device=a.device)
                first = torch.where(fired, (idx + 1).to(a.dtype) * p.dt, never)
                imt = i_out.gather(1, idx[:, None]).squeeze(1) - po.threshold
            out = torch.where(torch.isfinite(first), first, torch.full_like(first, total))
            summary, extra = first, imt

        i32 = torch.int32
        ctx.save_for_backward(
            x_idx.to(i32), x_val, spk.b.to(i32), spk.n.to(i32), spk.step.to(i32),
            spk.tau if setup.exact else spk.tau.new_zeros(0), spk.i_minus_theta,  # discrete: every tau is dt
            spk.groups.to(i32) if setup.exact else spk.groups.new_zeros(0, 3), summary, extra, w_rec, w_out,
        )
        ctx.setup, ctx.shape = setup, (batch, steps, n_in, hidden)
        ctx.has_rec = w_rec is not None
        return out, counts

    @staticmethod
    def backward(ctx, g_out, g_counts):  # type: ignore[override]
        x_idx, x_val, b, n, step, tau, imt, groups, summary, extra, w_rec, w_out = ctx.saved_tensors
        setup = ctx.setup
        batch, steps, n_in, hidden = ctx.shape
        p, po, kind = setup.hidden, setup.readout, setup.kind
        total = steps * p.dt
        b, n, step = b.long(), n.long(), step.long()
        tau = tau if setup.exact else torch.full_like(imt, p.dt)
        spk = Spikes(b, n, step, tau, imt, groups.long())
        t_k = spk.times(p.dt)
        w_rec = w_rec if ctx.has_rec else None

        # readout: dL/dW_out and its share c_k of each hidden jump
        if kind in ("sum", "sum_exp"):
            if setup.exact:
                _, k_dot = linear_kernel_exact(t_k, kind, total, po)
            else:
                k_dot = linear_kernel_discrete(steps, kind, po, tau.dtype, tau.device)[1][step]
            g_w_out = summary.T @ g_out
            coef = k_dot * (g_out @ w_out.T)[b, n]
        else:
            if kind == "max":
                weight = g_out
            else:  # a crossing at t_c moves by −δV/V̇: a point readout with weight −(∂L/∂t_c)/V̇_c
                fired = torch.isfinite(summary)
                weight = torch.where(fired, -g_out * po.tau_mem / extra.clamp_min(1e-12), torch.zeros_like(g_out))
            if setup.exact:
                d = summary[b] - t_k[:, None]  # time from spike to readout point, (K, classes)
                after = d > 0
                h, h_dot = psp_kernel(d.clamp_min(0.0), po)
                resp, resp_dt = h * after, -h_dot * after
            else:
                f = impulse_response_discrete(steps, po, tau.dtype, tau.device)
                fp = torch.cat([f.new_zeros(1), f, f.new_zeros(1)])
                if kind == "max":  # summary: the step of the maximum
                    d = summary[b].long()
                else:  # summary: first spike time (t+1)·dt, or +inf
                    d = torch.round((summary[b] / p.dt).nan_to_num(posinf=-1.0)).long() - 1
                d = d - step[:, None]
                after = d >= 0
                dc = d.clamp(0, steps - 1)
                resp = f[dc] * after
                resp_dt = (fp[dc] - fp[dc + 2]) / (2 * p.dt) * after
            wk = weight[b] * resp
            g_w_out = torch.zeros_like(w_out).index_add_(0, n, wk)
            coef = (weight[b] * w_out[n] * resp_dt).sum(1)
        coef = coef - g_counts[b, n] / total  # regulariser: ∂N_j/∂t_k := −1/T

        vdot = imt.clamp_min(setup.vdot_floor) if setup.vdot_floor > 0 else imt
        li_steps, li_at_spikes = adjoint_sweep(spk, coef, 1.0 / vdot, w_rec, p, batch, steps, hidden, setup.exact)

        x_sp = torch.sparse_coo_tensor(
            x_idx.long(), x_val, (batch * steps, n_in), check_invariants=False, is_coalesced=True
        )
        g_w_in = -p.tau_syn * torch.sparse.mm(x_sp.t(), li_steps.view(batch * steps, hidden))
        g_w_rec = None
        if w_rec is not None:
            g_w_rec = -p.tau_syn * li_at_spikes
        return g_w_in, g_w_rec, g_w_out, None, None


# ----------------------------------------------------------------------------------------------
# The LightningModule
# ----------------------------------------------------------------------------------------------


class EventProp(SpikingModule):
    """EventProp on the shared network: `forward_backward` = events forward, adjoint backward."""

    def __init__(self, cfg) -> None:
        super().__init__(cfg)
        a = self.cfg.algorithm
        if a.time_mode not in TIME_MODES:
            raise ValueError(f"unknown algorithm.time_mode '{a.time_mode}'; choose one of: {', '.join(TIME_MODES)}")
        if self.cfg.loss.kind not in READOUTS:
            raise ValueError(f"unknown loss.kind '{self.cfg.loss.kind}'; choose one of: {', '.join(READOUTS)}")
        for key in ("first_spike_tau0", "first_spike_tau1"):
            if not a[key] > 0:
                raise ValueError(f"algorithm.{key} must be > 0 seconds, got {a[key]}")
        for key in ("vdot_floor", "silent_lift", "first_spike_alpha"):
            if a[key] < 0:
                raise ValueError(f"algorithm.{key} must be >= 0, got {a[key]}")
        self.setup_ = Setup(
            self.net.hidden, self.net.readout_params, self.cfg.loss.kind, a.time_mode == "exact", float(a.vdot_floor)
        )

    # -- forward: readout output and spike counts through the EventProp node ----------------------

    def outputs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Readout output (batch, classes) and hidden spike counts (batch, hidden), differentiable by EventProp."""
        net = self.net
        return EventPropFunction.apply(net.w_in, net.w_rec, net.w_out, x.to(net.w_in.dtype), self.setup_)

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
        if o.reg_strength:
            loss = loss + spike_count_regulariser(counts.unsqueeze(1), o.reg_strength, o.reg_target)
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
        spk, trace = exact_spikes(
            net.drive(x), net.w_rec, net.hidden, net.w_out, net.readout_params, track_readout=True
        )
        return spk.dense(x.shape[0], x.shape[1], net.n_hidden, x.dtype), trace.v_out

    # -- the silent-neuron remedy -----------------------------------------------------------------

    def on_train_epoch_end(self) -> None:
        super().on_train_epoch_end()
        lift = float(self.cfg.algorithm.silent_lift)
        counts = getattr(self, "epoch_hidden_counts", None)
        if lift > 0 and counts is not None:
            silent = counts == 0
            if bool(silent.any()):
                with torch.no_grad():
                    self.net.w_in[:, silent] += lift
            self.log("train/lifted", float(silent.sum()))
