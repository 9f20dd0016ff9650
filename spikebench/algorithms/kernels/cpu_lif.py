"""CPU backend: the LIF recurrence as one compiled C++ loop per sequence.

The eager per-step loop in `neuron.py` spends most of its time in Python and in ~10 small tensor operations
per step. Here the whole time loop runs in C++: per step one fused pass over (batch, hidden) for the
element-wise update, and for the recurrent layer the same ATen `addmm_` / `mm` call as the reference, so
the floating-point operations and their order are those of the reference loop (spikes and U are bitwise
equal; gradients agree to round-off). Compiled with `-ffp-contract=off` so that no multiply-add is fused.

The extension is compiled once at first use (~30 s, cached by torch in its extensions directory, rebuilt
when this source changes) and registered as `torch.ops.spikebench_lif.*`. If compiling fails (no C++
compiler, say), `load()` warns once and returns None, and the dispatcher uses the reference loop.
"""

from __future__ import annotations

from typing import Any

import torch

from .compile import load_ops

_SOURCE = r"""
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>
#include <algorithm>
#include <cmath>
#include <tuple>
#include <vector>

namespace {

constexpr int64_t kGrain = 32768;  // elements per thread in the element-wise pass

// sigma'(x) for x = U - theta; k is the surrogate's slope (for arctan: pi/2 * slope).
template <typename T>
inline T surrogate(T x, int64_t kind, T k) {
  switch (kind) {
    case 0: { T d = T(1) + k * std::abs(x); return T(1) / (d * d); }             // fast sigmoid
    case 1: { T z = k * x; return T(1) / (T(1) + z * z); }                       // arctan
    case 2: { T g = T(1) / (T(1) + std::exp(-(k * x))); return k * g * (T(1) - g); }  // sigmoid
    default: { T r = T(1) - k * std::abs(x); return r > T(0) ? r : T(0); }      // triangle
  }
}

// I[t] = beta I[t-1] + a[t] (+ s[t-1] W_rec);  U[t] = alpha V[t-1] + gain I[t];
// s[t] = U[t] >= theta;  V[t] = s[t] ? V_reset : U[t].
std::tuple<at::Tensor, at::Tensor> lif_forward(const at::Tensor& a, const c10::optional<at::Tensor>& w_rec,
                                                double alpha, double gain, double beta,
                                                double theta, double v_reset, bool store_u) {
  TORCH_CHECK(a.dim() == 3 && a.is_contiguous(), "lif_forward: a must be contiguous (batch, time, hidden)");
  const bool rec = w_rec.has_value() && w_rec->defined();
  const int64_t B = a.size(0), T = a.size(1), H = a.size(2), n = B * H;
  at::Tensor spikes = at::empty_like(a);
  at::Tensor u_all = store_u ? at::empty_like(a) : at::empty({0}, a.options());
  at::Tensor i = at::zeros({B, H}, a.options());
  at::Tensor v = at::zeros({B, H}, a.options());
  at::Tensor s = at::zeros({B, H}, a.options());
  AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "lif_forward_cpu", [&] {
    const scalar_t al = alpha, gm = gain, be = beta, th = theta, vr = v_reset;
    const scalar_t* ap = a.data_ptr<scalar_t>();
    scalar_t* sp = spikes.data_ptr<scalar_t>();
    scalar_t* up = store_u ? u_all.data_ptr<scalar_t>() : nullptr;
    scalar_t* ip = i.data_ptr<scalar_t>();
    scalar_t* vp = v.data_ptr<scalar_t>();
    scalar_t* sb = s.data_ptr<scalar_t>();
    for (int64_t t = 0; t < T; ++t) {
      at::parallel_for(0, n, kGrain, [&](int64_t lo, int64_t hi) {
        for (int64_t j = lo; j < hi; ++j) {
          const int64_t b = j / H, h = j - b * H;
          ip[j] = be * ip[j] + ap[(b * T + t) * H + h];
        }
      });
      if (rec && t > 0) i.addmm_(s, *w_rec);
      at::parallel_for(0, n, kGrain, [&](int64_t lo, int64_t hi) {
        for (int64_t j = lo; j < hi; ++j) {
          const int64_t b = j / H, h = j - b * H, o = (b * T + t) * H + h;
          const scalar_t x = al * vp[j];
          const scalar_t y = gm * ip[j];
          const scalar_t u = x + y;
          const bool fire = u >= th;
          vp[j] = fire ? vr : u;
          sb[j] = fire ? scalar_t(1) : scalar_t(0);
          sp[o] = sb[j];
          if (up) up[o] = u;
        }
      });
    }
  });
  return std::make_tuple(spikes, u_all);
}

// Backward in time: g_s = dL/ds[t] + g_I[t+1] W_rec^T (+ g_V (V_reset - U) without detached reset),
// g_V = alpha g_U[t+1], g_U = g_V (1 - s) + g_s sigma'(U - theta), g_I = gain g_U + beta g_I[t+1].
at::Tensor lif_backward(const at::Tensor& grad_spikes, const at::Tensor& u, const c10::optional<at::Tensor>& w_rec,
                        double alpha, double gain, double beta, double theta, double v_reset,
                        int64_t kind, double k, bool detach_reset) {
  TORCH_CHECK(u.dim() == 3 && u.is_contiguous() && grad_spikes.is_contiguous() && grad_spikes.sizes() == u.sizes(),
              "lif_backward: grad_spikes and u must be contiguous (batch, time, hidden) tensors of one shape");
  const bool rec = w_rec.has_value() && w_rec->defined();
  const int64_t B = u.size(0), T = u.size(1), H = u.size(2), n = B * H;
  at::Tensor g_i_all = at::empty_like(u);
  at::Tensor gu_next = at::zeros({B, H}, u.options());
  at::Tensor gi_next = at::zeros({B, H}, u.options());
  at::Tensor back = at::empty({B, H}, u.options());
  at::Tensor w_t = rec ? w_rec->t() : at::Tensor();
  AT_DISPATCH_FLOATING_TYPES(u.scalar_type(), "lif_backward_cpu", [&] {
    const scalar_t al = alpha, gm = gain, be = beta, th = theta, vr = v_reset, kk = k;
    const scalar_t* gp = grad_spikes.data_ptr<scalar_t>();
    const scalar_t* upp = u.data_ptr<scalar_t>();
    scalar_t* gip = g_i_all.data_ptr<scalar_t>();
    scalar_t* gun = gu_next.data_ptr<scalar_t>();
    scalar_t* gin = gi_next.data_ptr<scalar_t>();
    const scalar_t* bp = back.data_ptr<scalar_t>();
    for (int64_t t = T - 1; t >= 0; --t) {
      const bool use_rec = rec && t < T - 1;
      if (use_rec) at::mm_out(back, gi_next, w_t);
      at::parallel_for(0, n, kGrain, [&](int64_t lo, int64_t hi) {
        for (int64_t j = lo; j < hi; ++j) {
          const int64_t b = j / H, h = j - b * H, o = (b * T + t) * H + h;
          const scalar_t ut = upp[o];
          const scalar_t st = ut >= th ? scalar_t(1) : scalar_t(0);
          scalar_t gs = gp[o];
          if (use_rec) gs = gs + bp[j];
          const scalar_t gv = al * gun[j];
          if (!detach_reset) { const scalar_t d = vr - ut; const scalar_t r = gv * d; gs = gs + r; }
          const scalar_t x = ut - th;
          const scalar_t p1 = gv * (scalar_t(1) - st);
          const scalar_t p2 = gs * surrogate<scalar_t>(x, kind, kk);
          const scalar_t gu = p1 + p2;
          const scalar_t q1 = gm * gu;
          const scalar_t q2 = be * gin[j];
          const scalar_t gi = q1 + q2;
          gip[o] = gi;
          gun[j] = gu;
          gin[j] = gi;
        }
      });
    }
  });
  return g_i_all;
}

// y[t] = decay y[t-1] + x[t] along dim 1 of (batch, time, n); anti-causal if reverse.
at::Tensor exp_filter(const at::Tensor& x, double decay, bool reverse) {
  TORCH_CHECK(x.dim() == 3 && x.is_contiguous(), "exp_filter: x must be contiguous (batch, time, n)");
  const int64_t B = x.size(0), T = x.size(1), N = x.size(2);
  at::Tensor y = at::empty_like(x);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "exp_filter_cpu", [&] {
    const scalar_t d = decay;
    const scalar_t* xp = x.data_ptr<scalar_t>();
    scalar_t* yp = y.data_ptr<scalar_t>();
    at::parallel_for(0, B, 1 + kGrain / std::max<int64_t>(1, T * N), [&](int64_t lo, int64_t hi) {
      std::vector<scalar_t> acc(N);
      for (int64_t b = lo; b < hi; ++b) {
        std::fill(acc.begin(), acc.end(), scalar_t(0));
        for (int64_t step = 0; step < T; ++step) {
          const int64_t t = reverse ? T - 1 - step : step;
          const int64_t o = (b * T + t) * N;
          for (int64_t m = 0; m < N; ++m) {
            const scalar_t r = d * acc[m];
            acc[m] = r + xp[o + m];
            yp[o + m] = acc[m];
          }
        }
      }
    });
  });
  return y;
}

}  // namespace

TORCH_LIBRARY(spikebench_lif, m) {
  m.def("lif_forward(Tensor a, Tensor? w_rec, float alpha, float gain, float beta, float theta, "
        "float v_reset, bool store_u) -> (Tensor, Tensor)");
  m.def("lif_backward(Tensor grad_spikes, Tensor u, Tensor? w_rec, float alpha, float gain, "
        "float beta, float theta, float v_reset, int surrogate, float k, bool detach_reset) -> Tensor");
  m.def("exp_filter(Tensor x, float decay, bool reverse) -> Tensor");
}

TORCH_LIBRARY_IMPL(spikebench_lif, CPU, m) {
  m.impl("lif_forward", &lif_forward);
  m.impl("lif_backward", &lif_backward);
  m.impl("exp_filter", &exp_filter);
}
"""

def load() -> Any | None:
    """The compiled ops (`torch.ops.spikebench_lif`), compiling them on first use; None if that fails."""
    return load_ops("spikebench_lif_cpu", _SOURCE, "spikebench_lif", "compiled CPU LIF loop")


def available() -> bool:
    return load() is not None


def lif_forward(
    a: torch.Tensor, w_rec: torch.Tensor | None, p: Any, store_u: bool = True
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Spikes and (if store_u) pre-reset U, (batch, time, hidden), bitwise equal to the reference loop."""
    ops = load()
    w = None if w_rec is None else w_rec.contiguous()
    s, u = ops.lif_forward(
        a.contiguous(), w, p.alpha, p.gain, p.beta, p.threshold, p.v_reset, store_u
    )
    return s, (u if store_u else None)


def lif_backward(
    grad_spikes: torch.Tensor,
    u: torch.Tensor,
    w_rec: torch.Tensor | None,
    p: Any,
    surrogate_code: int,
    k: float,
    detach_reset: bool,
) -> torch.Tensor:
    """dL/dI[t] (batch, time, hidden): the adjoint of `lif_forward` (see `neuron.lif_backward`)."""
    ops = load()
    w = None if w_rec is None else w_rec.contiguous()
    return ops.lif_backward(
        grad_spikes.contiguous(), u.contiguous(), w, p.alpha, p.gain, p.beta, p.threshold,
        p.v_reset, surrogate_code, k, detach_reset,
    )


def exp_filter(x: torch.Tensor, decay: float, reverse: bool = False) -> torch.Tensor:
    """y[t] = decay · y[t-1] + x[t] along dim 1 of (batch, time, n), bitwise equal to `neuron.exp_filter`."""
    return load().exp_filter(x.contiguous(), decay, reverse)
