"""CPU backend of e-prop's block loop (`algorithms/eprop.py`): the per-step forward of one block and the backward
scans of its postsynaptic coefficients, one compiled C++ call each.

In the torch loop each of a block's steps is ~20 operations on (batch, hidden) tensors and ~10 copies into the
block's buffers; at the FSDD shared setting (T = 250, hidden 256, batch 32) their dispatch took about as long as
BPTT's whole training step. Here:

- `forward_block`: per step, with s the previous step's spikes, a = α(1 − s) and ψ[t-1] stored, the recurrent trace
  ε^I_rec ← s + β ε^I_rec stored, then the hidden step of `eprop.hidden_step` (drive + s W_rec by the same ATen `mm`
  as the torch loop, then one fused pass: adaptation, I, U, the adaptive threshold, the spike, the reset, ψ, the
  weighted and plain spike counts). The state tensors are updated in place.
- `scan_block`: `eprop.PostBlock`'s backward scans (M for the accumulator and, with the regulariser, for D; R, and
  the incoming-state weights), per neuron, from the block's end.

The same floating-point operations in the same order as the torch loop, compiled with `-ffp-contract=off` (torch's
vectorised kernels may fuse a multiply-add where this does not): loss equal, gradients equal to 1e-12 relative in
float64 (tests/test_eprop.py). Compiled at first use like `cpu_lif.py`; None from `load()`
means the torch loop runs instead.
"""

from __future__ import annotations

from typing import Any

import torch

from .compile import load_ops

_SOURCE = r"""
#include <ATen/ATen.h>
#include <torch/library.h>
#include <cmath>
#include <algorithm>
#include <tuple>
#include <vector>

namespace {

// One block of K steps. drive (B, K, H): the input product of the block; i, v, s, adapt, psi_last, pre_rec,
// wcounts, counts (B, H): the state, updated in place; c (K): the readout-kernel weights of the block's steps.
// Returns psi, psi_prev, decay (B, K, H) and pre_blk (B, K, H; empty without W_rec).
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> forward_block(
    const at::Tensor& drive, const c10::optional<at::Tensor>& w_rec, at::Tensor i, at::Tensor v, at::Tensor s,
    at::Tensor adapt, at::Tensor psi_last, at::Tensor pre_rec, at::Tensor wcounts, at::Tensor counts,
    const at::Tensor& c, double alpha, double gain, double beta, double theta, double v_reset, double beta_a,
    double rho, double gamma) {
  TORCH_CHECK(drive.dim() == 3 && drive.is_contiguous(), "forward_block: drive must be contiguous (batch, K, hidden)");
  for (const at::Tensor* t : {&i, &v, &s, &adapt, &psi_last, &pre_rec, &wcounts, &counts})
    TORCH_CHECK(t->is_contiguous() && t->numel() == drive.size(0) * drive.size(2), "forward_block: bad state");
  const bool rec = w_rec.has_value() && w_rec->defined();
  const int64_t B = drive.size(0), K = drive.size(1), H = drive.size(2);
  at::Tensor psi = at::empty_like(drive), psi_prev = at::empty_like(drive), decay = at::empty_like(drive);
  at::Tensor pre_blk = rec ? at::empty_like(drive) : at::empty({0}, drive.options());
  at::Tensor back = at::empty({B, H}, drive.options());
  at::Tensor cc = c.contiguous();
  AT_DISPATCH_FLOATING_TYPES(drive.scalar_type(), "eprop_forward_block", [&] {
    const scalar_t al = alpha, gm = gain, be = beta, th = theta, vr = v_reset, ba = beta_a, ro = rho, ga = gamma;
    const scalar_t slope = scalar_t(1) / th;
    const bool adaptive = beta_a != 0.0;
    const scalar_t* dp = drive.data_ptr<scalar_t>();
    const scalar_t* cp = cc.data_ptr<scalar_t>();
    const scalar_t* bp = back.data_ptr<scalar_t>();
    scalar_t *ip = i.data_ptr<scalar_t>(), *vp = v.data_ptr<scalar_t>(), *sp = s.data_ptr<scalar_t>();
    scalar_t *ap = adapt.data_ptr<scalar_t>(), *pl = psi_last.data_ptr<scalar_t>();
    scalar_t *pr = pre_rec.data_ptr<scalar_t>(), *wc = wcounts.data_ptr<scalar_t>(), *cn = counts.data_ptr<scalar_t>();
    scalar_t *psp = psi.data_ptr<scalar_t>(), *ppp = psi_prev.data_ptr<scalar_t>(), *dcp = decay.data_ptr<scalar_t>();
    scalar_t* pbp = rec ? pre_blk.data_ptr<scalar_t>() : nullptr;
    for (int64_t k = 0; k < K; ++k) {
      if (rec) at::mm_out(back, s, *w_rec);  // s[t-1] W_rec, before s is overwritten
      const scalar_t ck = cp[k];
      for (int64_t b = 0; b < B; ++b) {
        const int64_t base = (b * K + k) * H;
        scalar_t* __restrict__ dco = dcp + base;
        scalar_t* __restrict__ ppo = ppp + base;
        scalar_t* __restrict__ pso = psp + base;
        scalar_t* __restrict__ pbo = rec ? pbp + base : nullptr;
        const scalar_t* __restrict__ dro = dp + base;
        for (int64_t h = 0; h < H; ++h) {
          const int64_t j = b * H + h;
          const scalar_t s_prev = sp[j];
          dco[h] = al * (scalar_t(1) - s_prev);
          ppo[h] = pl[j];
          scalar_t d = dro[h];
          if (rec) {
            const scalar_t r = be * pr[j];
            pr[j] = s_prev + r;
            pbo[h] = pr[j];
            d = d + bp[j];
          }
          const scalar_t ra = ro * ap[j];
          ap[j] = s_prev + ra;
          const scalar_t i1 = be * ip[j];
          ip[j] = i1 + d;
          const scalar_t u1 = al * vp[j];
          const scalar_t u2 = gm * ip[j];
          const scalar_t u = u1 + u2;
          scalar_t ue = u;
          if (adaptive) { const scalar_t q = ba * ap[j]; ue = u - q; }
          const scalar_t st = ue >= th ? scalar_t(1) : scalar_t(0);
          const scalar_t du = u - vr;
          const scalar_t dr = du * st;
          vp[j] = u - dr;
          sp[j] = st;
          const scalar_t x = ue - th;
          const scalar_t tri = scalar_t(1) - slope * std::abs(x);
          const scalar_t ps = ga * (tri > scalar_t(0) ? tri : scalar_t(0));
          pl[j] = ps;
          pso[h] = ps;
          const scalar_t w = ck * st;
          wc[j] = wc[j] + w;
          cn[j] = cn[j] + st;
        }
      }
    }
  });
  return std::make_tuple(psi, psi_prev, decay, pre_blk);
}

// PostBlock's scans (eprop.py): for each weight row u in {c, 1 (with_reg)}, M_0 (B, K, H) and M_1[0] (B, H);
// R_00, R_10 (B, K, H) and R_11[0] (B, H), if with_r. Without adaptation M_1, R_10 are zero and not stored (empty).
std::vector<at::Tensor> scan_block(const at::Tensor& psi, const at::Tensor& psi_prev, const at::Tensor& decay,
                                   const at::Tensor& c, double beta_a, double rho, bool with_reg,
                                   bool with_r) {
  TORCH_CHECK(psi.is_contiguous() && psi_prev.is_contiguous() && decay.is_contiguous(), "scan_block: contiguous");
  const int64_t B = psi.size(0), K = psi.size(1), H = psi.size(2);
  const bool adaptive = beta_a != 0.0;
  const int nw = with_reg ? 2 : 1;
  std::vector<at::Tensor> out;
  at::Tensor cc = c.contiguous();
  for (int w = 0; w < nw; ++w) {
    out.push_back(at::empty_like(psi));
    out.push_back(at::zeros({B, H}, psi.options()));
  }
  at::Tensor r00 = with_r ? at::empty_like(psi) : at::empty({0}, psi.options());
  at::Tensor r10 = with_r && adaptive ? at::empty_like(psi) : at::empty({0}, psi.options());
  at::Tensor r11 = with_r ? at::empty({B, H}, psi.options()) : at::empty({0}, psi.options());
  AT_DISPATCH_FLOATING_TYPES(psi.scalar_type(), "eprop_scan_block", [&] {
    const scalar_t ba = beta_a, ro = rho;
    const scalar_t *ps = psi.data_ptr<scalar_t>(), *pp = psi_prev.data_ptr<scalar_t>(), *dc = decay.data_ptr<scalar_t>();
    const scalar_t* cp = cc.data_ptr<scalar_t>();
    std::vector<scalar_t> a0(H), a1(H), x00(H), x10(H), x11(H);
    for (int w = 0; w < nw; ++w) {
      scalar_t* m0 = out[2 * w].data_ptr<scalar_t>();
      scalar_t* m1f = out[2 * w + 1].data_ptr<scalar_t>();
      for (int64_t b = 0; b < B; ++b) {
        for (int64_t k = K - 1; k >= 0; --k) {
          const int64_t o = (b * K + k) * H;
          const scalar_t ck = w == 0 ? cp[k] : scalar_t(1);
          for (int64_t h = 0; h < H; ++h) {
            const scalar_t u = ck * ps[o + h];
            scalar_t n0, n1 = 0;
            if (k == K - 1) {
              n0 = u;
              if (adaptive) n1 = -ba * u;
            } else if (adaptive) {
              const int64_t o1 = o + H + h;
              const scalar_t q = ro - ba * pp[o1];
              const scalar_t t1 = dc[o1] * a0[h];
              const scalar_t t2 = pp[o1] * a1[h];
              const scalar_t t3 = u + t1;
              n0 = t3 + t2;
              const scalar_t t4 = q * a1[h];
              const scalar_t t5 = ba * u;
              n1 = t4 - t5;
            } else {
              const scalar_t t1 = dc[o + H + h] * a0[h];
              n0 = u + t1;
            }
            m0[o + h] = n0;
            a0[h] = n0;
            a1[h] = n1;
          }
        }
        for (int64_t h = 0; h < H; ++h) m1f[b * H + h] = a1[h];
      }
    }
    if (!with_r) return;
    scalar_t* q00 = r00.data_ptr<scalar_t>();
    scalar_t* q10 = adaptive ? r10.data_ptr<scalar_t>() : nullptr;
    scalar_t* q11 = r11.data_ptr<scalar_t>();
    for (int64_t b = 0; b < B; ++b) {
      std::fill(x00.begin(), x00.end(), scalar_t(1));
      std::fill(x10.begin(), x10.end(), scalar_t(0));
      std::fill(x11.begin(), x11.end(), scalar_t(1));
      for (int64_t k = K - 1; k >= 0; --k) {
        const int64_t o = (b * K + k) * H;
        for (int64_t h = 0; h < H; ++h) {
          if (k < K - 1) {
            const int64_t o1 = o + H + h;
            const scalar_t a = dc[o1], sp1 = pp[o1];
            const scalar_t q = ro - ba * sp1;
            const scalar_t y10a = a * x10[h];
            const scalar_t y10b = sp1 * x11[h];
            x00[h] = a * x00[h];
            x10[h] = y10a + y10b;
            x11[h] = q * x11[h];
          }
          q00[o + h] = x00[h];
          if (adaptive) q10[o + h] = x10[h];
        }
      }
      for (int64_t h = 0; h < H; ++h) q11[b * H + h] = x11[h];
    }
  });
  out.push_back(r00);
  out.push_back(r10);
  out.push_back(r11);
  return out;
}

}  // namespace

TORCH_LIBRARY(spikebench_eprop, m) {
  m.def("forward_block(Tensor drive, Tensor? w_rec, Tensor(a!) i, Tensor(b!) v, Tensor(c!) s, Tensor(d!) adapt, "
        "Tensor(e!) psi_last, Tensor(f!) pre_rec, Tensor(g!) wcounts, Tensor(h!) counts, Tensor c, float alpha, "
        "float gain, float beta, float theta, float v_reset, float beta_a, float rho, float gamma) "
        "-> (Tensor, Tensor, Tensor, Tensor)");
  m.def("scan_block(Tensor psi, Tensor psi_prev, Tensor decay, Tensor c, float beta_a, float rho, bool with_reg, "
        "bool with_r) "
        "-> Tensor[]");
}

TORCH_LIBRARY_IMPL(spikebench_eprop, CPU, m) {
  m.impl("forward_block", &forward_block);
  m.impl("scan_block", &scan_block);
}
"""


def load() -> Any | None:
    """The compiled ops (`torch.ops.spikebench_eprop`), compiling them on first use; None if that fails."""
    return load_ops("spikebench_eprop_cpu", _SOURCE, "spikebench_eprop", "compiled CPU e-prop loop")


def usable(t: torch.Tensor) -> bool:
    """Whether the compiled loop can run on tensors like t (CPU, float32/float64) and compiled here."""
    return t.device.type == "cpu" and t.dtype in (torch.float32, torch.float64) and load() is not None
