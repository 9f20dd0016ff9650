"""CPU backend of EventProp's discrete time mode: the per-step event loops of `event_sim.discrete_spikes` and
`event_adjoint._sweep_grid`, one compiled C++ call per block of steps.

In the torch loops each step is ~10 small operations whose dispatch costs more than their arithmetic (at 50 Hz,
hidden 256, batch 32: ~400 spikes and ~0.3 ms per step). Here one call runs a whole block of steps:

- `forward_block`: per step, I ← βI + drive[t]; I[b] += W_rec[n] for each spike (b, n) of the previous step;
  U = αV + γI; a spike where U ≥ ϑ (listed as flat index b·H + n and I − ϑ; counted per step), V ← V_reset there and U
  elsewhere. The recurrent input costs O(spikes × hidden): rows of W_rec, never a dense product.
- `backward_block`: per step, from the end of the block, the jump of each spiking neuron from λ⁺ (all spikes
  of a step read λ⁺ before any is written), Σ λ_I⁺ rows into W_rec's gradient, then the adjoint flow over one
  step, λ_I stored for the block's W_in gradient.

- `input_events`: the nonzero bins of the frames in (step, sample, channel) order, in one pass (torch's
  `nonzero` and a sort take ~5× longer on one core).

The same floating-point operations as the torch loops, in the same order except for the length-H dot product of
the recurrent jump term (a running sum here): results agree to round-off (tests/test_eventprop_fast.py).
Every list grows in tensors from PyTorch's allocator, so `algorithms.measure.step_memory` sees it; the only other
memory is O(batch × hidden) scratch. Compiled at first use like `cpu_lif.py`; None from `load()` means the torch loops run instead.
"""

from __future__ import annotations

from typing import Any

import torch

from .compile import load_ops

_SOURCE = r"""
#include <ATen/ATen.h>
#include <torch/library.h>
#include <algorithm>
#include <tuple>
#include <vector>

namespace {

// A growable list whose storage comes from PyTorch's allocator (so the suite's memory measure sees it, unlike a
// std::vector): capacity doubles by resize_, which keeps the contents; `done` returns the used prefix.
template <typename T>
struct TorchList {
  at::Tensor buf;
  T* data;
  int64_t size = 0, cap;
  TorchList(at::ScalarType dtype, int64_t initial = 1024) : cap(initial) {
    buf = at::empty({cap}, at::TensorOptions().dtype(dtype));
    data = buf.data_ptr<T>();
  }
  void push(T x) {
    if (size == cap) {
      cap *= 2;
      buf.resize_({cap});
      data = buf.data_ptr<T>();
    }
    data[size++] = x;
  }
  at::Tensor done() { return buf.narrow(0, 0, size); }
};

std::tuple<at::Tensor, at::Tensor, at::Tensor> forward_block(
    const at::Tensor& a, const c10::optional<at::Tensor>& w_rec, at::Tensor i, at::Tensor v, const at::Tensor& prev,
    double alpha, double gain, double beta, double theta, double v_reset) {
  TORCH_CHECK(a.dim() == 3 && a.is_contiguous(), "forward_block: drive must be contiguous (steps, batch, hidden)");
  TORCH_CHECK(i.is_contiguous() && v.is_contiguous() && prev.scalar_type() == at::kLong, "forward_block: state");
  const bool rec = w_rec.has_value() && w_rec->defined();
  const int64_t T = a.size(0), B = a.size(1), H = a.size(2), n = B * H;
  std::vector<int64_t> last(prev.data_ptr<int64_t>(), prev.data_ptr<int64_t>() + prev.numel()), cur;  // ≤ B·H
  TorchList<int32_t> flat_out(at::kInt);
  at::Tensor per_step = at::zeros({T}, at::TensorOptions().dtype(at::kLong));
  int64_t* PS = per_step.data_ptr<int64_t>();
  at::Tensor imt_all;
  AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "event_forward_block", [&] {
    const scalar_t al = alpha, gm = gain, be = beta, th = theta, vr = v_reset;
    const scalar_t* A = a.data_ptr<scalar_t>();
    const scalar_t* W = rec ? w_rec->data_ptr<scalar_t>() : nullptr;
    scalar_t* I = i.data_ptr<scalar_t>();
    scalar_t* V = v.data_ptr<scalar_t>();
    TorchList<scalar_t> imt(a.scalar_type());
    for (int64_t t = 0; t < T; ++t) {
      const scalar_t* At = A + t * n;
      for (int64_t j = 0; j < n; ++j) I[j] = I[j] * be + At[j];
      if (rec) {
        for (int64_t f : last) {
          scalar_t* Ib = I + (f / H) * H;
          const scalar_t* Wn = W + (f % H) * H;
          for (int64_t h = 0; h < H; ++h) Ib[h] += Wn[h];
        }
      }
      cur.clear();
      for (int64_t j = 0; j < n; ++j) {
        const scalar_t u = V[j] * al + I[j] * gm;
        if (u >= th) {
          V[j] = vr;
          cur.push_back(j);
          flat_out.push((int32_t)j);
          PS[t] += 1;
          imt.push(I[j] - th);
        } else {
          V[j] = u;
        }
      }
      last.swap(cur);
    }
    imt_all = imt.done();
  });
  return std::make_tuple(flat_out.done(), per_step, imt_all);
}

void backward_block(at::Tensor lv, at::Tensor li, at::Tensor li_block, const at::Tensor& flat,
                    const at::Tensor& ptr, const at::Tensor& coef, const at::Tensor& inv,
                    const c10::optional<at::Tensor>& w_rec, const c10::optional<at::Tensor>& g_rec,
                    double em, double es, double k, double jump_v) {
  TORCH_CHECK(li_block.dim() == 3 && li_block.is_contiguous() && lv.is_contiguous() && li.is_contiguous(),
              "backward_block: contiguous state");
  const bool rec = w_rec.has_value() && w_rec->defined();
  const int64_t T = li_block.size(0), B = li_block.size(1), H = li_block.size(2), n = B * H;
  TORCH_CHECK(flat.scalar_type() == at::kInt, "backward_block: flat indices must be int32");
  const int32_t* F = flat.data_ptr<int32_t>();
  const int64_t* P = ptr.data_ptr<int64_t>();
  AT_DISPATCH_FLOATING_TYPES(lv.scalar_type(), "event_backward_block", [&] {
    const scalar_t e_m = em, e_s = es, kk = k, jv = jump_v;
    scalar_t* LV = lv.data_ptr<scalar_t>();
    scalar_t* LI = li.data_ptr<scalar_t>();
    scalar_t* OUT = li_block.data_ptr<scalar_t>();
    const scalar_t* C = coef.data_ptr<scalar_t>();
    const scalar_t* IV = inv.data_ptr<scalar_t>();
    const scalar_t* W = rec ? w_rec->data_ptr<scalar_t>() : nullptr;
    scalar_t* G = rec ? g_rec->data_ptr<scalar_t>() : nullptr;
    std::vector<scalar_t> jumped;
    for (int64_t t = T - 1; t >= 0; --t) {
      const int64_t lo = P[t], hi = P[t + 1];
      jumped.resize(hi - lo);
      for (int64_t s = lo; s < hi; ++s) {
        const int64_t f = F[s], b = f / H, nn = f % H;
        const scalar_t own = LV[f];
        scalar_t num = jv * own + C[s];
        if (rec) {
          const scalar_t* lvb = LV + b * H;
          const scalar_t* lib = LI + b * H;
          const scalar_t* wn = W + nn * H;
          scalar_t* gn = G + nn * H;
          scalar_t part[8] = {0, 0, 0, 0, 0, 0, 0, 0};  // 8 partial sums: the dot product vectorises
          int64_t h = 0;
          for (; h + 8 <= H; h += 8)
            for (int q = 0; q < 8; ++q) part[q] += (lvb[h + q] - lib[h + q]) * wn[h + q];
          scalar_t acc = 0;
          for (; h < H; ++h) acc += (lvb[h] - lib[h]) * wn[h];
          for (int q = 0; q < 8; ++q) acc += part[q];
          for (h = 0; h < H; ++h) gn[h] += lib[h];
          num = num + acc;
        }
        jumped[s - lo] = own + IV[s] * num;
      }
      for (int64_t s = lo; s < hi; ++s) LV[F[s]] = jumped[s - lo];
      scalar_t* out = OUT + t * n;
      for (int64_t j = 0; j < n; ++j) {
        LI[j] = LI[j] * e_s + LV[j] * kk;
        LV[j] = LV[j] * e_m;
        out[j] = LI[j];
      }
    }
  });
}

// The nonzero bins of x (batch, time, inputs), ordered by (step, sample, channel): row t·B + b, channel, count.
std::tuple<at::Tensor, at::Tensor, at::Tensor> input_events(const at::Tensor& x) {
  TORCH_CHECK(x.dim() == 3 && x.is_contiguous(), "input_events: x must be contiguous (batch, time, inputs)");
  const int64_t B = x.size(0), T = x.size(1), C = x.size(2);
  TorchList<int32_t> rows(at::kInt), chans(at::kInt);
  at::Tensor val;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "input_events", [&] {
    const scalar_t* X = x.data_ptr<scalar_t>();
    TorchList<scalar_t> vals(x.scalar_type());
    for (int64_t t = 0; t < T; ++t)
      for (int64_t b = 0; b < B; ++b) {
        const scalar_t* row = X + (b * T + t) * C;
        for (int64_t c0 = 0; c0 < C; c0 += 32) {  // skip all-zero runs of 32 bins with a branch-free test
          const int64_t c1 = std::min(C, c0 + 32);
          int any = 0;
          for (int64_t c = c0; c < c1; ++c) any |= (row[c] != scalar_t(0));
          if (!any) continue;
          for (int64_t c = c0; c < c1; ++c)
            if (row[c] != scalar_t(0)) {
              rows.push((int32_t)(t * B + b));
              chans.push((int32_t)c);
              vals.push(row[c]);
            }
        }
      }
    val = vals.done();
  });
  return std::make_tuple(rows.done(), chans.done(), val);
}

}  // namespace

TORCH_LIBRARY(spikebench_events, m) {
  m.def("input_events(Tensor x) -> (Tensor, Tensor, Tensor)");
  m.def("forward_block(Tensor a, Tensor? w_rec, Tensor(a!) i, Tensor(b!) v, Tensor prev, float alpha, float gain, "
        "float beta, float theta, float v_reset) -> (Tensor, Tensor, Tensor)");
  m.def("backward_block(Tensor(a!) lv, Tensor(b!) li, Tensor(c!) li_block, Tensor flat, Tensor ptr, Tensor coef, "
        "Tensor inv, Tensor? w_rec, Tensor(d!)? g_rec, float em, float es, float k, float jump_v) -> ()");
}

TORCH_LIBRARY_IMPL(spikebench_events, CPU, m) {
  m.impl("input_events", &input_events);
  m.impl("forward_block", &forward_block);
  m.impl("backward_block", &backward_block);
}
"""


def load() -> Any | None:
    """The compiled ops (`torch.ops.spikebench_events`), compiling them on first use; None if that fails."""
    return load_ops("spikebench_events_cpu", _SOURCE, "spikebench_events", "compiled CPU event loop")


def usable(t: torch.Tensor, backend: str) -> bool:
    """Whether the compiled loops run for tensors like t under `model.backend` (auto | cpu; reference: never)."""
    return (backend in ("auto", "cpu") and t.device.type == "cpu" and t.dtype in (torch.float32, torch.float64)
            and load() is not None)
