"""GPU backend: the whole LIF sequence in one Triton kernel launch (forward), one for the backward.

Design. A program owns BLOCK_B batch rows and keeps their state (I, V; in the backward g_U, g_I) in
registers for all T steps. Feed-forward layers need nothing else, so the hidden dimension is split over
programs too. In a recurrent layer every neuron needs the whole previous spike vector of its batch row,
so one program holds *all* hidden units of its rows (hidden ≤ 1024 fits in one block) and computes the
per-step product s[t-1] W_rec inside the kernel: it reads back the spikes it stored for step t-1 (after a
block-wide barrier) in chunks of BLOCK_K and multiplies them with W_rec read from global memory, where
W_rec (≤ 4 MB) stays resident in L2 across steps. The backward does the same with g_I[t+1] and W_recᵀ.
The weight gradient Σ_t s[t-1]ᵀ g_I[t] is one large matrix product outside the kernel (cuBLAS).
So a forward+backward of a recurrent layer costs two kernel launches plus one GEMM, instead of
~10 launches per step in eager PyTorch.

The per-step product is a broadcast multiply and a sum over each BLOCK_K chunk (plain float32 FMAs; no
TF32), not `tl.dot`: its smallest tile is 16 rows, whose operand fragments need more registers than an
SM has for hidden = 1024. With BLOCK_B = 4 rows, BLOCK_K = 4 and one warp per 32 hidden units, ptxas
(sm_90) reports no register spills up to hidden 1024 (`_layout`; `TUNING` overrides it for experiments).
Compiled with `enable_fp_fusion=False`, so that each multiply and add rounds as in eager PyTorch.
Everything runs in float32. Under TRITON_INTERPRET=1 the same kernels run on CPU tensors (NumPy
emulation, programs one after another), which is how the test suite checks them.

Equations: see `algorithms/neuron.py` (`lif_forward_reference`, `lif_backward_reference`).
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
import triton
import triton.language as tl

BLOCK_H_FF = 128  # hidden units per program in the feed-forward kernels
TUNING: dict[str, int] = {}  # overrides of the recurrent layout: block_b, block_k, stages, warps (sweeps/diagnostics/gpu_check)


@triton.jit
def _add_rows_times_matrix(
    acc, src_ptr, row_off, t_src, k_end, mat_ptr, H, rows_ok,
    BLOCK_B: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_K: tl.constexpr, STAGES: tl.constexpr,
):
    """acc + src[rows, t_src, :k_end] @ mat[:k_end, :], mat (H, H) row-major; (BLOCK_B, BLOCK_H).

    k_end = 0 adds nothing (exactly: only zero products). Accumulating into acc keeps one tile fewer live.
    """
    cols = tl.arange(0, BLOCK_H)
    for k0 in tl.range(0, H, BLOCK_K, num_stages=STAGES):
        ks = k0 + tl.arange(0, BLOCK_K)
        x = tl.load(
            src_ptr + row_off[:, None] + t_src * H + ks[None, :],
            mask=rows_ok[:, None] & (ks[None, :] < k_end),
            other=0.0,
        )
        w = tl.load(mat_ptr + ks[:, None] * H + cols[None, :], mask=(ks[:, None] < H) & (cols[None, :] < H), other=0.0)
        acc += tl.sum(x[:, :, None] * w[None, :, :], axis=1)
    return acc


@triton.jit
def _surrogate(x, k, SURROGATE: tl.constexpr):
    """σ'(x) for x = U − ϑ; k = slope (arctan: π/2 · slope). Codes as in kernels.SURROGATE_CODES."""
    if SURROGATE == 0:  # fast sigmoid (SuperSpike)
        d = 1.0 + k * tl.abs(x)
        out = 1.0 / (d * d)
    elif SURROGATE == 1:  # arctan
        z = k * x
        out = 1.0 / (1.0 + z * z)
    elif SURROGATE == 2:  # sigmoid
        g = 1.0 / (1.0 + tl.exp(-(k * x)))
        out = k * g * (1.0 - g)
    else:  # triangle
        out = tl.maximum(1.0 - k * tl.abs(x), 0.0)
    return out


@triton.jit
def _lif_forward_kernel(
    a_ptr, w_ptr, s_ptr, u_ptr, B, T, H,
    alpha, gain, beta, theta, v_reset,
    HAS_REC: tl.constexpr, STORE_U: tl.constexpr,
    BLOCK_B: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_K: tl.constexpr, STAGES: tl.constexpr,
):
    """I = βI + a[t] (+ s[t-1] W_rec); U = αV + (1−α)I; s = U ≥ ϑ; V = s ? V_reset : U — for all t."""
    rows = tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)
    cols = tl.program_id(1) * BLOCK_H + tl.arange(0, BLOCK_H)
    rows_ok = rows < B
    mask = rows_ok[:, None] & (cols[None, :] < H)
    row_off = rows.to(tl.int64) * T * H
    offs = row_off[:, None] + cols[None, :]
    i = tl.zeros((BLOCK_B, BLOCK_H), dtype=tl.float32)
    v = tl.zeros((BLOCK_B, BLOCK_H), dtype=tl.float32)
    for t in range(T):
        a_t = tl.load(a_ptr + offs + t * H, mask=mask, other=0.0)
        i = beta * i + a_t
        if HAS_REC:  # spikes of step t-1 were stored by this program before the barrier below
            k_end = tl.minimum(t, 1) * H  # no recurrent input at t = 0
            i = _add_rows_times_matrix(i, s_ptr, row_off, tl.maximum(t - 1, 0), k_end, w_ptr, H, rows_ok,
                                       BLOCK_B, BLOCK_H, BLOCK_K, STAGES)
        u = alpha * v + gain * i
        fire = u >= theta
        v = tl.where(fire, v_reset, u)
        tl.store(s_ptr + offs + t * H, tl.where(fire, 1.0, 0.0), mask=mask)
        if STORE_U:
            tl.store(u_ptr + offs + t * H, u, mask=mask)
        if HAS_REC:
            tl.debug_barrier()


@triton.jit
def _lif_backward_kernel(
    gs_ptr, u_ptr, wt_ptr, gi_ptr, B, T, H,
    alpha, gain, beta, theta, v_reset, k,
    HAS_REC: tl.constexpr, DETACH_RESET: tl.constexpr, SURROGATE: tl.constexpr,
    BLOCK_B: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_K: tl.constexpr, STAGES: tl.constexpr,
):
    """Backward in time: g_s = ∂L/∂s[t] + g_I[t+1] W_recᵀ (+ g_V (V_reset − U) if the reset is not detached),
    g_V = α g_U[t+1], g_U = g_V (1 − s) + g_s σ'(U − ϑ), g_I = γ g_U + β g_I[t+1] (γ the input gain); stores g_I[t]."""
    rows = tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)
    cols = tl.program_id(1) * BLOCK_H + tl.arange(0, BLOCK_H)
    rows_ok = rows < B
    mask = rows_ok[:, None] & (cols[None, :] < H)
    row_off = rows.to(tl.int64) * T * H
    offs = row_off[:, None] + cols[None, :]
    g_u = tl.zeros((BLOCK_B, BLOCK_H), dtype=tl.float32)
    g_i = tl.zeros((BLOCK_B, BLOCK_H), dtype=tl.float32)
    for step in range(T):
        t = T - 1 - step
        u_t = tl.load(u_ptr + offs + t * H, mask=mask, other=0.0)
        g_s = tl.load(gs_ptr + offs + t * H, mask=mask, other=0.0)
        if HAS_REC:  # g_I[t+1] was stored by this program before the barrier below
            k_end = tl.minimum(T - 1 - t, 1) * H  # nothing comes back from beyond the last step
            g_s = _add_rows_times_matrix(g_s, gi_ptr, row_off, tl.minimum(t + 1, T - 1), k_end, wt_ptr, H,
                                         rows_ok, BLOCK_B, BLOCK_H, BLOCK_K, STAGES)
        g_v = alpha * g_u
        if not DETACH_RESET:
            g_s = g_s + g_v * (v_reset - u_t)
        s_t = tl.where(u_t >= theta, 1.0, 0.0)
        g_u = g_v * (1.0 - s_t) + g_s * _surrogate(u_t - theta, k, SURROGATE)
        g_i = gain * g_u + beta * g_i
        tl.store(gi_ptr + offs + t * H, g_i, mask=mask)
        if HAS_REC:
            tl.debug_barrier()


@triton.jit
def _exp_filter_kernel(x_ptr, y_ptr, B, T, N, decay, REVERSE: tl.constexpr, BLOCK: tl.constexpr):
    """y[t] = decay · y[t-1] + x[t] along time for a block of (batch, n) columns."""
    idx = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    ok = idx < B * N
    b = idx // N
    offs = b.to(tl.int64) * T * N + (idx - b * N)
    acc = tl.zeros((BLOCK,), dtype=tl.float32)
    for step in range(T):
        t = T - 1 - step if REVERSE else step
        acc = decay * acc + tl.load(x_ptr + offs + t * N, mask=ok, other=0.0)
        tl.store(y_ptr + offs + t * N, acc, mask=ok)


# ----------------------------------------------------------------------------------------------
# Launchers
# ----------------------------------------------------------------------------------------------


def _layout(batch: int, hidden: int, recurrent: bool) -> dict[str, Any]:
    """Tile sizes, grid and launch options: a recurrent program holds whole rows, a feed-forward one a tile."""
    if recurrent:
        block_h = max(16, triton.next_power_of_2(hidden))
        cfg = {"block_b": 4, "block_k": 4, "warps": min(32, max(4, block_h // 32)), "stages": 3 if block_h <= 512 else 1}
        cfg.update(TUNING)
        grid = (triton.cdiv(batch, cfg["block_b"]), 1)
    else:
        block_h = min(BLOCK_H_FF, max(16, triton.next_power_of_2(hidden)))
        cfg = {"block_b": 1, "block_k": 1, "warps": 4, "stages": 1}
        grid = (batch, triton.cdiv(hidden, block_h))
    return dict(
        grid=grid, BLOCK_B=cfg["block_b"], BLOCK_H=block_h, BLOCK_K=min(cfg["block_k"], block_h),
        STAGES=cfg["stages"], num_warps=cfg["warps"], enable_fp_fusion=False,
    )


def _on(t: torch.Tensor):
    """Launch on t's GPU (Triton launches on the current device)."""
    return torch.cuda.device(t.device) if t.is_cuda else contextlib.nullcontext()


def lif_forward(
    a: torch.Tensor, w_rec: torch.Tensor | None, p: Any, store_u: bool = True
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Spikes and (if store_u) pre-reset U, (batch, time, hidden), float32, in one kernel launch."""
    a = a.contiguous()
    batch, steps, hidden = a.shape
    spikes = torch.empty_like(a)
    u = torch.empty_like(a) if store_u else spikes  # dummy pointer when U is not kept
    w = a if w_rec is None else w_rec.contiguous()
    launch = _layout(batch, hidden, w_rec is not None)
    with _on(a):
        _lif_forward_kernel[launch.pop("grid")](
            a, w, spikes, u, batch, steps, hidden,
            p.alpha, p.gain, p.beta, p.threshold, p.v_reset,
            HAS_REC=w_rec is not None, STORE_U=store_u, **launch,
        )
    return spikes, (u if store_u else None)


def lif_backward(
    grad_spikes: torch.Tensor,
    u: torch.Tensor,
    w_rec: torch.Tensor | None,
    p: Any,
    surrogate_code: int,
    k: float,
    detach_reset: bool,
) -> torch.Tensor:
    """dL/dI[t] (batch, time, hidden) in one kernel launch (see `neuron.lif_backward`)."""
    grad_spikes, u = grad_spikes.contiguous(), u.contiguous()
    batch, steps, hidden = u.shape
    g_i = torch.empty_like(u)
    w_t = u if w_rec is None else w_rec.t().contiguous()
    launch = _layout(batch, hidden, w_rec is not None)
    with _on(u):
        _lif_backward_kernel[launch.pop("grid")](
            grad_spikes, u, w_t, g_i, batch, steps, hidden,
            p.alpha, p.gain, p.beta, p.threshold, p.v_reset, k,
            HAS_REC=w_rec is not None, DETACH_RESET=detach_reset, SURROGATE=surrogate_code, **launch,
        )
    return g_i


def exp_filter(x: torch.Tensor, decay: float, reverse: bool = False) -> torch.Tensor:
    """y[t] = decay · y[t-1] + x[t] along dim 1 of (batch, time, n), float32, one launch."""
    x = x.contiguous()
    batch, steps, n = x.shape
    y = torch.empty_like(x)
    block = 128
    with _on(x):
        _exp_filter_kernel[(triton.cdiv(batch * n, block),)](
            x, y, batch, steps, n, decay, REVERSE=reverse, BLOCK=block, enable_fp_fusion=False
        )
    return y
