"""The event-based view of the shared LIF network: spike lists, closed-form flows, and the adjoint sweep.

EventProp (Wunderlich & Pehle 2021, "Event-based backpropagation can compute exact gradients for
spiking neural networks") needs three things from the network, all here:

1. **Spike lists.** The forward pass keeps, per hidden spike k, the sample b_k, neuron n_k, step and
   offset inside the step (so t_k = step·dt + τ_k), and τ_mem V̇⁻ = I⁻ − ϑ at the spike. Two time modes:
   - `exact`: the continuous-time model whose values at the step ends the per-step update of `neuron.py`
     reproduces between spikes (`model.integration=exact`; `held` only approximates it),
         τ_mem V̇ = −V + I,   τ_syn İ = −I,
     input spikes of bin t arrive at t·dt, a hidden spike resets V to V_reset and adds W_rec[n, :] to I
     at once. Between events the flow is closed form (`flow`), V(s) = A e^{−s/τ_mem} − B e^{−s/τ_syn};
     threshold crossings are located inside the step (`crossing_time`), one spike at a time per sample.
   - `discrete`: the per-step update of `neuron.lif_forward` (spikes on the step grid, as in mlGeNN);
     a spike of step t is placed at t_k = (t+1)·dt, where its recurrent input arrives.
2. **The flow of the adjoint** between events, again closed form (`adjoint_flow`): with ′ = −d/dt,
         τ_mem λ_V′ = −λ_V,   τ_syn λ_I′ = −λ_I + λ_V        (hidden layer, ∂l_V/∂V = 0).
3. **The adjoint sweep** (`adjoint_sweep`) from T back to 0 with the jump at each hidden spike k:
         (λ_V⁻)_n = (λ_V⁺)_n + [τ_mem V̇⁻]⁻¹ [(ϑ − V_reset)(λ_V⁺)_n + (W_rec(λ_V⁺ − λ_I⁺))_n + c_k],
   where c_k collects what the layers above and the loss contribute (∂l_p/∂t_k and the readout's
   (W_out(λ_V,out − λ_I,out))_n). Weights are stored (from, to), so W_rec(·) here is the paper's Wᵀ(·).
   It returns λ_I at every step start (for dL/dW_in = −τ_syn Σ x λ_I) and at every spike (for dL/dW_rec).

Shapes: drive and frames (batch, time, ·); spike lists flat (spikes,).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .neuron import LIFParams, lif_forward

# ----------------------------------------------------------------------------------------------
# Closed-form flows between events
# ----------------------------------------------------------------------------------------------


def _check_taus(p: LIFParams, what: str) -> None:
    if abs(p.tau_mem - p.tau_syn) < 1e-12:
        raise ValueError(
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
    """Hidden spikes of a batch, ordered by (step, rank): each group holds spikes of one step that the adjoint
    handles together (exact mode: at most one per sample, in time order; discrete: all of the step)."""

    b: torch.Tensor  # (K,) sample
    n: torch.Tensor  # (K,) neuron
    step: torch.Tensor  # (K,) step index t
    tau: torch.Tensor  # (K,) offset in the step, in (0, dt]; t_k = t·dt + tau
    i_minus_theta: torch.Tensor  # (K,) τ_mem V̇⁻ = I⁻ − ϑ
    groups: torch.Tensor  # (G, 3) rows (step, start, end) into the lists above

    def times(self, dt: float) -> torch.Tensor:
        return self.step.to(self.tau.dtype) * dt + self.tau

    def counts(self, batch: int, hidden: int, dtype: torch.dtype) -> torch.Tensor:
        """Spikes per neuron and trial, (batch, hidden)."""
        c = torch.zeros(batch * hidden, dtype=dtype, device=self.b.device)
        c.index_add_(0, self.b * hidden + self.n, torch.ones_like(self.tau, dtype=dtype))
        return c.view(batch, hidden)

    def dense(self, batch: int, steps: int, hidden: int, dtype: torch.dtype) -> torch.Tensor:
        """Spike counts per step, (batch, time, hidden)."""
        s = torch.zeros(batch * steps * hidden, dtype=dtype, device=self.b.device)
        s.index_add_(0, (self.b * steps + self.step) * hidden + self.n, torch.ones_like(self.tau, dtype=dtype))
        return s.view(batch, steps, hidden)


def discrete_spikes(a: torch.Tensor, w_rec: torch.Tensor | None, p: LIFParams) -> tuple[Spikes, torch.Tensor]:
    """Discrete mode: `neuron.lif_forward`, its spikes listed. Returns (Spikes, dense spikes (batch, time, hidden)).

    τ_mem V̇⁻ uses the step's current I[t] = (U[t] − α V[t−1]) / γ, recovered from U.
    """
    spikes, u = lif_forward(a, w_rec, p)
    t, b, n = spikes.transpose(0, 1).nonzero(as_tuple=True)  # ordered by step
    u_k = u[b, t, n]
    prev = (t - 1).clamp_min(0)
    v_prev = torch.where(spikes[b, prev, n] > 0, torch.full_like(u_k, p.v_reset), u[b, prev, n])
    v_prev = torch.where(t > 0, v_prev, torch.zeros_like(u_k))
    i_k = (u_k - p.alpha * v_prev) / p.gain
    steps_with, counts = torch.unique_consecutive(t, return_counts=True)
    ends = counts.cumsum(0)
    groups = torch.stack([steps_with, ends - counts, ends], 1)
    tau = torch.full_like(u_k, p.dt)
    return Spikes(b, n, t, tau, i_k - p.threshold, groups), spikes


@dataclass
class ReadoutTrace:
    """What the exact forward records of the leaky readout: V_out at the end of every step, and the first
    threshold crossing of each output (time, τ_mem V̇⁻); `first_time` is +inf where there is none."""

    v_out: torch.Tensor | None  # (batch, time, classes)
    first_time: torch.Tensor | None  # (batch, classes)
    first_i_minus_theta: torch.Tensor | None


def exact_spikes(
    a: torch.Tensor,
    w_rec: torch.Tensor | None,
    p: LIFParams,
    w_out: torch.Tensor | None = None,
    p_out: LIFParams | None = None,
    track_readout: bool = False,
    first_spike: bool = False,
) -> tuple[Spikes, ReadoutTrace]:
    """Exact mode: event-driven integration of the continuous-time network, vectorised over the batch.

    Per step: inputs jump I at the step start; then repeatedly, per sample, the earliest threshold crossing
    inside the rest of the step is found, every neuron of that sample flows to it in closed form, and the
    spike is applied (V_n ← V_reset, I ← I + W_rec[n]); then all flow to the step end. Optionally the
    readout (V_out, I_out) flows along, recording its values at step ends and its first crossings of ϑ.
    """
    _check_taus(p, "model")
    batch, steps, hidden = a.shape
    dt, theta = p.dt, p.threshold
    dev, dtype = a.device, a.dtype
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
        i = i + a[:, t]
        tau = None  # time already integrated inside this step, per sample (None: nothing yet)
        while True:
            cand = i >= theta  # V rises above ϑ within a step only if I ≥ ϑ
            if not bool(cand.any()):
                break
            bb, nn = cand.nonzero(as_tuple=True)
            if tau is None:
                tau = a.new_zeros(batch)
            hit, s = crossing_time(v[bb, nn], i[bb, nn], dt - tau[bb], theta, p)
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

    def cat(key: str, like: torch.Tensor) -> torch.Tensor:
        return torch.cat(lists[key]) if lists[key] else like

    empty_i = torch.zeros(0, dtype=torch.long, device=dev)
    empty_f = torch.zeros(0, dtype=dtype, device=dev)
    spk = Spikes(
        cat("b", empty_i), cat("n", empty_i), cat("step", empty_i), cat("tau", empty_f), cat("imt", empty_f),
        torch.tensor(groups, dtype=torch.long, device=dev).view(-1, 3),
    )
    trace = ReadoutTrace(
        v_out if track_readout else None,
        first_t if first_spike else None,
        first_imt if first_spike else None,
    )
    return spk, trace


# ----------------------------------------------------------------------------------------------
# The adjoint sweep of the hidden layer
# ----------------------------------------------------------------------------------------------


@torch.no_grad()
def adjoint_sweep(
    spk: Spikes,
    coef: torch.Tensor,
    inv_vdot: torch.Tensor,
    w_rec: torch.Tensor | None,
    p: LIFParams,
    batch: int,
    steps: int,
    hidden: int,
    exact: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Integrate (λ_V, λ_I) from λ(T) = 0 back to 0 with the jumps at the hidden spikes.

    coef: (K,) c_k of the jump (readout and loss terms), inv_vdot: (K,) 1 / (τ_mem V̇⁻).
    Returns λ_I at every step start t·dt, (batch, time, hidden), and Σ_k e_{n_k} ⊗ λ_I(t_k), (hidden, hidden)
    (so dL/dW_rec = −τ_syn times it).
    """
    if exact:
        return _sweep_exact(spk, coef, inv_vdot, w_rec, p, batch, steps, hidden)
    return _sweep_grid(spk, coef, inv_vdot, w_rec, p, batch, steps, hidden)


def _sweep_grid(spk, coef, inv_vdot, w_rec, p, batch, steps, hidden):
    """Discrete mode: spikes of step t sit at (t+1)·dt, so the sweep is a fixed per-step recurrence of dense
    (batch, hidden) operations; the per-spike terms are scattered into (batch, time, hidden) maps first."""
    dtype, dev = coef.dtype, coef.device
    flat = (spk.b * steps + spk.step) * hidden + spk.n
    inv_map = torch.zeros(batch * steps * hidden, dtype=dtype, device=dev).index_put_((flat,), inv_vdot)
    inv_map = inv_map.view(batch, steps, hidden)
    coef_map = torch.zeros_like(inv_map).view(-1).index_put_((flat,), coef).view(batch, steps, hidden)
    em, es = math.exp(-p.dt / p.tau_mem), math.exp(-p.dt / p.tau_syn)
    k = p.tau_mem / (p.tau_mem - p.tau_syn) * (em - es) if p.tau_mem != p.tau_syn else p.dt / p.tau_syn * em
    jump_v = p.threshold - p.v_reset
    lv = torch.zeros(batch, hidden, dtype=dtype, device=dev)
    li = torch.zeros_like(lv)
    li_steps = torch.empty(batch, steps, hidden, dtype=dtype, device=dev)
    w_rec_t = w_rec.T if w_rec is not None else None
    for t in range(steps - 1, -1, -1):
        num = coef_map[:, t] + jump_v * lv
        if w_rec_t is not None:
            num.addmm_(lv - li, w_rec_t)  # (W_rec(λ_V⁺ − λ_I⁺))_n
        lv = lv.addcmul_(inv_map[:, t], num)
        li = li.mul_(es).add_(lv, alpha=k)  # adjoint_flow over one step, constants precomputed
        lv = lv.mul_(em)
        li_steps[:, t] = li
    # λ_I at a spike of step t is λ_I((t+1)·dt) = li_steps[:, t + 1] (0 after the last step)
    keep = spk.step + 1 < steps
    rows = torch.stack([spk.n[keep], spk.b[keep] * steps + spk.step[keep] + 1])
    ones = torch.ones(len(rows[0]), dtype=dtype, device=dev)
    sel = torch.sparse_coo_tensor(rows, ones, (hidden, batch * steps), check_invariants=False)
    return li_steps, torch.sparse.mm(sel, li_steps.view(batch * steps, hidden))


def _sweep_exact(spk, coef, inv_vdot, w_rec, p, batch, steps, hidden):
    """Exact mode: within a step, each group (one spike per sample, in time order) is reached by flowing each
    sample back to its own spike time."""
    dtype, dev = coef.dtype, coef.device
    lv = torch.zeros(batch, hidden, dtype=dtype, device=dev)
    li = torch.zeros_like(lv)
    li_steps = torch.empty(batch, steps, hidden, dtype=dtype, device=dev)
    li_spikes = torch.empty(len(coef), hidden, dtype=dtype, device=dev)
    dt, jump_v = p.dt, p.threshold - p.v_reset
    groups = spk.groups.tolist()
    g = len(groups) - 1
    tau_now = torch.full((batch,), dt, dtype=dtype, device=dev)
    for t in range(steps - 1, -1, -1):
        while g >= 0 and groups[g][0] == t:
            _, lo, hi = groups[g]
            g -= 1
            b, n = spk.b[lo:hi], spk.n[lo:hi]
            back = torch.zeros_like(tau_now)
            back[b] = tau_now[b] - spk.tau[lo:hi]
            lv, li = adjoint_flow(lv, li, back[:, None], p)
            tau_now[b] = spk.tau[lo:hi]
            lv_b, li_b = lv[b], li[b]
            li_spikes[lo:hi] = li_b
            own = lv_b.gather(1, n[:, None]).squeeze(1)
            num = jump_v * own + coef[lo:hi]
            if w_rec is not None:
                num = num + ((lv_b - li_b) * w_rec[n]).sum(1)
            lv[b, n] = own + inv_vdot[lo:hi] * num
        lv, li = adjoint_flow(lv, li, tau_now[:, None], p)
        tau_now.fill_(dt)
        li_steps[:, t] = li
    return li_steps, torch.zeros(hidden, hidden, dtype=dtype, device=dev).index_add_(0, spk.n, li_spikes)
