"""The event-based view of the shared LIF network: input and hidden spikes as events, and closed-form flows.

EventProp (Wunderlich & Pehle 2021, "Event-based backpropagation can compute exact gradients for
spiking neural networks") needs from the network, here, its forward pass as events:

1. **Input events** (`event_input.InputSpikes`). The frames x (batch, time, inputs) are the batch; they are read a block of
   `block` steps at a time, each block's spikes listed by `nonzero`, so the input current W_in x[t] is a sum over
   input spikes (`drive`, a CSR product: `embedding_bag`), and the backward pass turns λ_I into the W_in gradient
   the same way (`add_weight_grad`). On SHD-like input (~1 % of the (step, channel) bins hold a spike) both are
   ~15× faster on one CPU core than the dense products, and nothing of size (batch, time, hidden) is ever made.
2. **Spike lists** (`Spikes`). The forward pass keeps, per hidden spike k, the sample b_k, neuron n_k, step and
   offset inside the step (so t_k = step·dt + τ_k), and τ_mem V̇⁻ = I⁻ − ϑ at the spike, plus O(batch × hidden)
   running state. Two time modes:
   - `exact` (`exact_spikes`): the continuous-time model whose values at the step ends the per-step update of
     `neuron.py` reproduces between spikes (`model.integration=exact`; `held` only approximates it),
         τ_mem V̇ = −V + I,   τ_syn İ = −I,
     input spikes of bin t arrive at t·dt, a hidden spike resets V to V_reset and adds W_rec[n, :] to I
     at once. Between events the flow is closed form (`flow`), V(s) = A e^{−s/τ_mem} − B e^{−s/τ_syn};
     threshold crossings are located inside the step (`crossing_time`), one spike at a time per sample.
   - `discrete` (`discrete_spikes`): the per-step update of `neuron.lif_forward_reference` (spikes on the step
     grid, as in mlGeNN), with the recurrent input of the previous step's spikes gathered from their rows of
     W_rec; a spike of step t is placed at t_k = (t+1)·dt, where its recurrent input arrives.
3. **The flow of the adjoint** between events, again closed form (`adjoint_flow`): with ′ = −d/dt,
         τ_mem λ_V′ = −λ_V,   τ_syn λ_I′ = −λ_I + λ_V        (hidden layer, ∂l_V/∂V = 0).
   The sweep with the jumps at the hidden spikes is in `event_adjoint.py`.

Shapes: frames (batch, time, inputs); per-block drive (steps, batch, hidden); spike lists flat (spikes,).
"""

from __future__ import annotations

from spikebench.errors import ConfigError
import math
from dataclasses import dataclass

import torch

from .event_input import InputSpikes
from .kernels import cpu_events
from .neuron import LIFParams

# ----------------------------------------------------------------------------------------------
# Closed-form flows between events
# ----------------------------------------------------------------------------------------------


def _check_taus(p: LIFParams, what: str) -> None:
    if abs(p.tau_mem - p.tau_syn) < 1e-12:
        raise ConfigError(
            f"{what}: tau_mem must differ from tau_syn for the closed-form flow of algorithm.time_mode=exact"
        )


def flow(v: torch.Tensor, i: torch.Tensor, s: torch.Tensor, p: LIFParams) -> tuple[torch.Tensor, torch.Tensor]:
    """(V, I) after time s without events: V(s) = V₀e^{−s/τm} + c I₀ (e^{−s/τm} − e^{−s/τs}), I(s) = I₀e^{−s/τs},
    c = τs / (τm − τs). s broadcasts against v (e.g. (batch, 1))."""
    em, es = torch.exp(-s / p.tau_mem), torch.exp(-s / p.tau_syn)
    c = p.tau_syn / (p.tau_mem - p.tau_syn)
    return v * em + c * i * (em - es), i * es


def adjoint_flow(
    lv: torch.Tensor, li: torch.Tensor, s: torch.Tensor | float, p: LIFParams
) -> tuple[torch.Tensor, torch.Tensor]:
    """(λ_V, λ_I) a time s earlier, without events: λ_V ← e^{−s/τm} λ_V,
    λ_I ← e^{−s/τs} λ_I + τm/(τm − τs) (e^{−s/τm} − e^{−s/τs}) λ_V (the solution of the adjoint ODEs)."""
    s = torch.as_tensor(s, dtype=lv.dtype)
    em, es = torch.exp(-s / p.tau_mem), torch.exp(-s / p.tau_syn)
    k = p.tau_mem / (p.tau_mem - p.tau_syn) * (em - es)
    return lv * em, li * es + k * lv


def psp_kernel(d: torch.Tensor, p: LIFParams) -> tuple[torch.Tensor, torch.Tensor]:
    """V response h(d) to a unit jump of I at d = 0, and dh/dd: h(d) = c (e^{−d/τm} − e^{−d/τs}) for d ≥ 0."""
    c = p.tau_syn / (p.tau_mem - p.tau_syn)
    em, es = torch.exp(-d / p.tau_mem), torch.exp(-d / p.tau_syn)
    return c * (em - es), c * (es / p.tau_syn - em / p.tau_mem)


def crossing_time(
    v0: torch.Tensor, i0: torch.Tensor, span: torch.Tensor, theta: float, p: LIFParams, max_iter: int = 60
) -> tuple[torch.Tensor, torch.Tensor]:
    """First s in (0, span] with V(s) = ϑ for flat tensors of states (V₀ < ϑ); returns (hit, s).

    V(s) = A e^{−s/τm} − B e^{−s/τs} (A = V₀ + cI₀, B = cI₀) has at most one extremum, at
    s* = ln(Aτs / (Bτm)) / (1/τm − 1/τs). The rising branch that ends at the maximum over (0, span]
    brackets the crossing; a bracketed Newton iteration finds it to machine precision.
    """
    tm, ts = p.tau_mem, p.tau_syn
    c = ts / (tm - ts)
    a_, b_ = v0 + c * i0, c * i0

    def value(s):
        return a_ * torch.exp(-s / tm) - b_ * torch.exp(-s / ts)

    ratio = a_ * ts / (b_ * tm)
    valid = ratio > 0
    s_ext = torch.where(valid, torch.log(ratio.clamp_min(1e-300)) / (1.0 / tm - 1.0 / ts), torch.zeros_like(v0))
    rising = i0 > v0
    interior = valid & (s_ext > 0)
    hi = torch.where(rising & interior, torch.minimum(s_ext, span), span)
    lo = torch.where(rising | ~interior, torch.zeros_like(v0), torch.minimum(s_ext, span))
    hit = value(hi) >= theta
    if not bool(hit.any()):
        return hit, hi
    lo, hi = lo[hit], hi[hit]
    a_, b_ = a_[hit], b_[hit]
    f_lo, f_hi = value(lo) - theta, value(hi) - theta
    s = lo - f_lo * (hi - lo) / (f_hi - f_lo)  # regula falsi start
    tol = 16 * torch.finfo(v0.dtype).eps * float(span.max())
    for _ in range(max_iter):
        em, es = torch.exp(-s / tm), torch.exp(-s / ts)
        f = a_ * em - b_ * es - theta
        d = b_ / ts * es - a_ / tm * em  # V'(s)
        below = f < 0
        lo = torch.where(below, s, lo)
        hi = torch.where(below, hi, s)
        s_new = s - f / d
        bad = (d <= 0) | (s_new <= lo) | (s_new >= hi) | ~torch.isfinite(s_new)
        s_new = torch.where(bad, 0.5 * (lo + hi), s_new)
        done = bool(((s_new - s).abs() <= tol).all())
        s = s_new
        if done:
            break
    out = torch.zeros_like(v0)
    out[hit] = s
    return hit, out


# ----------------------------------------------------------------------------------------------
# Spike lists
# ----------------------------------------------------------------------------------------------


@dataclass
class Spikes:
    """Hidden spikes of a batch, ordered by step: per spike the flat index b·hidden + n and τ_mem V̇⁻ = I⁻ − ϑ
    (8 bytes with int32 indices), per step the number of spikes. Exact mode adds the offset τ inside the step and
    the groups (step, start, end) that the adjoint handles together (at most one spike per sample, in time order);
    in discrete mode every spike sits at the end of its step (τ = dt) and a step is one group."""

    flat: torch.Tensor  # (K,) b·hidden + n
    hidden: int
    step_counts: torch.Tensor  # (steps,) spikes per step
    i_minus_theta: torch.Tensor  # (K,) τ_mem V̇⁻ = I⁻ − ϑ
    tau: torch.Tensor | None = None  # (K,) exact mode: offset in the step, in (0, dt]; t_k = t·dt + τ
    groups: torch.Tensor | None = None  # (G, 3) exact mode: rows (step, start, end)

    def ptr(self) -> list[int]:
        """Spikes of step t are [ptr[t], ptr[t + 1])."""
        return [0] + self.step_counts.cumsum(0).tolist()

    @property
    def b(self) -> torch.Tensor:
        return torch.div(self.flat, self.hidden, rounding_mode="floor").long()

    @property
    def n(self) -> torch.Tensor:
        return (self.flat % self.hidden).long()

    def steps_of(self, t0: int = 0, t1: int | None = None) -> torch.Tensor:
        """Step index of each spike of steps [t0, t1), (K',) int64."""
        t1 = len(self.step_counts) if t1 is None else t1
        ar = torch.arange(t0, t1, device=self.flat.device)
        return torch.repeat_interleave(ar, self.step_counts[t0:t1])

    @property
    def step(self) -> torch.Tensor:
        return self.steps_of()

    def times(self, dt: float, lo: int = 0, hi: int | None = None, step: torch.Tensor | None = None) -> torch.Tensor:
        """t_k = step·dt + τ_k of spikes [lo, hi) (their steps may be given)."""
        step = self.step[lo:hi] if step is None else step
        if self.tau is None:
            return (step + 1).to(self.i_minus_theta.dtype) * dt
        return step.to(self.tau.dtype) * dt + self.tau[lo:hi]

    def counts(self, batch: int, dtype: torch.dtype) -> torch.Tensor:
        """Spikes per neuron and trial, (batch, hidden)."""
        c = torch.bincount(self.flat, minlength=batch * self.hidden)
        return c.to(dtype).view(batch, self.hidden)

    def dense(self, batch: int, steps: int, dtype: torch.dtype) -> torch.Tensor:
        """Spike counts per step, (batch, time, hidden): for inspection (`simulate`), never in training."""
        s = torch.zeros(batch * steps * self.hidden, dtype=dtype, device=self.flat.device)
        idx = (self.b * steps + self.step) * self.hidden + self.n
        s.index_add_(0, idx, torch.ones(len(idx), dtype=dtype, device=s.device))
        return s.view(batch, steps, self.hidden)


def _spike_lists(lists: dict[str, list[torch.Tensor]], groups: list[tuple[int, int, int]], hidden: int, steps: int,
                 dtype, dev) -> Spikes:
    """Exact mode's per-group lists as Spikes."""
    def cat(key: str, like: torch.Tensor) -> torch.Tensor:
        return torch.cat(lists[key]) if lists[key] else like

    empty_i = torch.zeros(0, dtype=torch.long, device=dev)
    empty_f = torch.zeros(0, dtype=dtype, device=dev)
    g = torch.tensor(groups, dtype=torch.long, device=dev).view(-1, 3)
    per_step = torch.zeros(steps, dtype=torch.long, device=dev).index_add_(0, g[:, 0], g[:, 2] - g[:, 1])
    flat = cat("b", empty_i) * hidden + cat("n", empty_i)
    return Spikes(flat, hidden, per_step, cat("imt", empty_f), cat("tau", empty_f), g)


@torch.no_grad()
def discrete_spikes(inp: InputSpikes, w_in: torch.Tensor, w_rec: torch.Tensor | None, p: LIFParams) -> Spikes:
    """Discrete mode: the equations of `neuron.lif_forward_reference`, step by step, keeping only the spikes.

        I[t] = β I[t−1] + W_in x[t] + Σ_{spikes (b, n) of step t−1} W_rec[n],   U[t] = α V[t−1] + γ I[t],
        spike where U[t] ≥ ϑ, V[t] = V_reset there and U[t] elsewhere;   τ_mem V̇⁻ of a spike = I[t] − ϑ.

    The recurrent input gathers the rows of W_rec of the previous step's spikes (O(spikes × hidden) per step,
    not a (batch, hidden) × (hidden, hidden) product); the state is (I, V), (batch, hidden).
    """
    batch, hidden = inp.batch, w_in.shape[1]
    alpha, beta, gain, theta = p.alpha, p.beta, p.gain, p.threshold
    i = w_in.new_zeros(batch, hidden)
    v = w_in.new_zeros(batch, hidden)
    flats: list[torch.Tensor] = []
    imts: list[torch.Tensor] = []
    per_step: list[torch.Tensor] = []
    ops = cpu_events.load() if cpu_events.usable(w_in, p.backend) else None
    prev = torch.zeros(0, dtype=torch.long, device=w_in.device)  # flat indices b·H + n of the last step's spikes
    for t0, t1 in inp.spans():
        a = inp.drive(w_in, t0, t1)
        if ops is not None:  # the same loop, compiled (kernels/cpu_events.py)
            flat, cnt, imt = ops.forward_block(a.contiguous(), w_rec, i, v, prev, alpha, gain, beta, theta, p.v_reset)
            flats.append(flat)
            imts.append(imt)
            per_step.append(cnt)
            prev = flat[len(flat) - int(cnt[-1]):].long()
            continue
        for t in range(t0, t1):
            i.mul_(beta).add_(a[t - t0])
            if len(prev) and w_rec is not None:
                i.index_add_(0, prev // hidden, w_rec.index_select(0, prev % hidden))
            u = torch.add(v.mul_(alpha), i, alpha=gain)
            s = u >= theta
            prev = s.view(-1).nonzero().squeeze(1)  # index_select / take / index_add_: the fast CPU gathers
            v = u.masked_fill_(s, p.v_reset)
            flats.append(prev.int())
            imts.append(i.view(-1).take(prev) - theta)
            per_step.append(prev.new_full((1,), len(prev)))
    return Spikes(torch.cat(flats), hidden, torch.cat(per_step), torch.cat(imts))


@dataclass
class ReadoutTrace:
    """What the exact forward records of the leaky readout: V_out at the end of every step, and the first
    threshold crossing of each output (time, τ_mem V̇⁻); `first_time` is +inf where there is none."""

    v_out: torch.Tensor | None  # (batch, time, classes)
    first_time: torch.Tensor | None  # (batch, classes)
    first_i_minus_theta: torch.Tensor | None


@torch.no_grad()
def exact_spikes(
    inp: InputSpikes,
    w_in: torch.Tensor,
    w_rec: torch.Tensor | None,
    p: LIFParams,
    w_out: torch.Tensor | None = None,
    p_out: LIFParams | None = None,
    track_readout: bool = False,
    first_spike: bool = False,
) -> tuple[Spikes, ReadoutTrace]:
    """Exact mode: event-driven integration of the continuous-time network, vectorised over the batch.

    Per step: inputs jump I at their arrival (the step start; with input delays, `event_delays`, the step is cut
    into segments at the later arrivals, each integrated as a step is); then repeatedly, per sample, the earliest
    threshold crossing inside the rest of the segment is found, every neuron of that sample flows to it in closed form, and the
    spike is applied (V_n ← V_reset, I ← I + W_rec[n]); then all flow to the step end. Optionally the
    readout (V_out, I_out) flows along, recording its values at step ends and its first crossings of ϑ.
    """
    _check_taus(p, "model")
    batch, steps, hidden = inp.batch, inp.steps, w_in.shape[1]
    dt, theta = p.dt, p.threshold
    dev, dtype = w_in.device, w_in.dtype
    a = w_in  # for new_zeros / new_empty
    v = a.new_zeros(batch, hidden)
    i = a.new_zeros(batch, hidden)
    lists: dict[str, list[torch.Tensor]] = {k: [] for k in ("b", "n", "step", "tau", "imt")}
    groups: list[tuple[int, int, int]] = []
    k_total = 0
    track = track_readout or first_spike
    if track:
        _check_taus(p_out, "model (readout)")
        n_out = w_out.shape[1]
        vo, io = a.new_zeros(batch, n_out), a.new_zeros(batch, n_out)
        v_out = a.new_empty(batch, steps, n_out) if track_readout else None
        first_t = torch.full((batch, n_out), float("inf"), dtype=dtype, device=dev)
        first_imt = a.new_zeros(batch, n_out)

    def readout_flow(t: int, tau: torch.Tensor, s: torch.Tensor) -> None:
        nonlocal vo, io
        if first_spike:
            open_ = ~torch.isfinite(first_t) & (io >= theta)
            if bool(open_.any()):
                bb, cc = open_.nonzero(as_tuple=True)
                hit, sc = crossing_time(vo[bb, cc], io[bb, cc], s[bb], theta, p_out)
                if bool(hit.any()):
                    bb, cc, sc = bb[hit], cc[hit], sc[hit]
                    first_t[bb, cc] = t * dt + tau[bb] + sc
                    first_imt[bb, cc] = io[bb, cc] * torch.exp(-sc / p_out.tau_syn) - theta
        vo, io = flow(vo, io, s[:, None], p_out)

    em, es = math.exp(-dt / p.tau_mem), math.exp(-dt / p.tau_syn)
    c_step = p.tau_syn / (p.tau_mem - p.tau_syn) * (em - es)
    for t in range(steps):
        arrivals = inp.step_arrivals(w_in, t)  # [(offset, W_in x)]: at the step start, or later with delays
        start = 1 if arrivals and arrivals[0][0] == 0.0 else 0
        if start:
            i = i + arrivals[0][1]
        tau = None  # time already integrated inside this step, per sample (None: nothing yet)
        for m in range(start, len(arrivals) + 1):  # segments of the step between arrivals; the last ends at dt
            end = arrivals[m][0] if m < len(arrivals) else dt
            while True:
                cand = i >= theta  # V rises above ϑ within a segment only if I ≥ ϑ
                if not bool(cand.any()):
                    break
                bb, nn = cand.nonzero(as_tuple=True)
                if tau is None:
                    tau = a.new_zeros(batch)
                hit, s = crossing_time(v[bb, nn], i[bb, nn], end - tau[bb], theta, p)
                if not bool(hit.any()):
                    break
                bb, nn, s = bb[hit], nn[hit], s[hit]
                order = torch.argsort(bb.to(torch.float64) * 4 * dt + s.to(torch.float64))
                bb, nn, s = bb[order], nn[order], s[order]
                first = torch.ones_like(bb, dtype=torch.bool)
                first[1:] = bb[1:] != bb[:-1]
                bb, nn, s = bb[first], nn[first], s[first]  # earliest crossing of each sample
                adv = a.new_zeros(batch)
                adv[bb] = s
                if track:
                    readout_flow(t, tau, adv)
                v, i = flow(v, i, adv[:, None], p)
                tau = tau + adv
                lists["b"].append(bb)
                lists["n"].append(nn)
                lists["step"].append(torch.full_like(bb, t))
                lists["tau"].append(tau[bb])
                lists["imt"].append(i[bb, nn] - theta)
                groups.append((t, k_total, k_total + len(bb)))
                k_total += len(bb)
                v[bb, nn] = p.v_reset
                if w_rec is not None:
                    i[bb] += w_rec[nn]
                if track:
                    io[bb] += w_out[nn]
            if m < len(arrivals):  # flow every sample to the arrival, then the current jumps
                tau = a.new_zeros(batch) if tau is None else tau
                rest = end - tau
                if track:
                    readout_flow(t, tau, rest)
                v, i = flow(v, i, rest[:, None], p)
                tau = torch.full_like(tau, end)
                i = i + arrivals[m][1]
        if tau is None and not track:  # no event in this step: the flow over dt with constants
            v = v * em + c_step * i
            i = i * es
            continue
        tau = a.new_zeros(batch) if tau is None else tau
        rest = dt - tau
        if track:
            readout_flow(t, tau, rest)
            if track_readout:
                v_out[:, t] = vo
        v, i = flow(v, i, rest[:, None], p)

    spk = _spike_lists(lists, groups, hidden, steps, dtype, dev)
    trace = ReadoutTrace(
        v_out if track_readout else None,
        first_t if first_spike else None,
        first_imt if first_spike else None,
    )
    return spk, trace


