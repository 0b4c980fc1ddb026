// CPU backend of the fused MoE forward: the oracle for the grouped-GEMM kernels. Slots are grouped
// by expert with expert_layout_cpu, so each expert's weight rows stream once per chunk of its
// tokens; work items (expert, chunk of rows) run on all cores.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "../common/check.h"
#include "../common/dtype_convert.h"
#include "../common/exact_math.h"
#include "../common/experts_check.h"
#include "parallel.h"
#include "switchyard/align.h"
#include "switchyard/experts.h"

namespace switchyard {

const char* activation_name(Activation a) {
  switch (a) {
    case Activation::kSiluAndMul:
      return "silu";
    case Activation::kGeluErfAndMul:
      return "gelu";
    case Activation::kGeluTanhAndMul:
      return "gelu_tanh";
    case Activation::kSwigluOai:
      return "swiglu_oai";
    case Activation::kRelu2:
      return "relu2";
  }
  return "unknown";
}

namespace {

constexpr const char* kOp = "fused_experts_cpu";

std::int64_t rows13(const ExpertsParams& p) {
  return detail::experts_rows13(p);
}

float bias_at(const TensorView& b, std::int64_t i) {
  if (!b.defined()) return 0.0f;
  if (b.dtype == DType::kFloat32) return static_cast<const float*>(b.data)[i];
  if (b.dtype == DType::kBFloat16)
    return detail::to_float(static_cast<const detail::bf16_t*>(b.data)[i]);
  return detail::to_float(static_cast<const detail::fp16_t*>(b.data)[i]);
}

float silu(float g) {
  return g / (1.0f + std::exp(-g));
}
float gelu_erf(float g) {
  return 0.5f * g * (1.0f + std::erf(g * 0.70710678f));
}
float gelu_tanh(float g) {
  return 0.5f * g * (1.0f + std::tanh(0.79788456f * (g + 0.044715f * g * g * g)));
}

// a[i] of one row from the GEMM1 outputs h[rows13(p)].
// Gate i and up i at h[gi], h[ui]: rows 2i and 2i + 1 when interleaved, else i and I + i.
float activate(const ExpertsParams& p, const float* h, std::int64_t i) {
  const std::int64_t I = p.intermediate_size;
  const bool inter = experts_w13_interleaved(p);
  const std::int64_t gi = inter ? 2 * i : i, ui = inter ? 2 * i + 1 : I + i;
  switch (p.activation) {
    case Activation::kSiluAndMul:
      return silu(h[gi]) * h[ui];
    case Activation::kGeluErfAndMul:
      return gelu_erf(h[gi]) * h[ui];
    case Activation::kGeluTanhAndMul:
      return gelu_tanh(h[gi]) * h[ui];
    case Activation::kSwigluOai: {
      const float g = std::min(h[gi], p.swiglu_limit);
      const float u = std::clamp(h[ui], -p.swiglu_limit, p.swiglu_limit);
      return g / (1.0f + std::exp(-p.swiglu_alpha * g)) * (u + 1.0f);
    }
    case Activation::kRelu2: {
      const float r = std::max(h[i], 0.0f);
      return r * r;
    }
  }
  return 0.0f;
}

// Slots grouped by expert (ascending slot order inside each expert).
struct SlotLayout {
  std::vector<std::int32_t> counts;
  std::vector<std::int64_t> offsets, s2d, d2s;
};

Status make_layout(const ExpertsParams& p, const ExpertsArgs& a, SlotLayout* l) {
  const std::int64_t slots = a.top_k_ids.numel(), E = p.num_experts;
  l->counts.resize(static_cast<std::size_t>(E));
  l->offsets.resize(static_cast<std::size_t>(E) + 1);
  l->s2d.resize(static_cast<std::size_t>(slots));
  l->d2s.resize(static_cast<std::size_t>(slots));
  ExpertLayoutParams lp;
  lp.num_experts = p.num_experts;
  ExpertLayoutArgs la;
  la.top_k_ids = a.top_k_ids;
  la.expert_map = a.expert_map;
  la.expert_counts = TensorView::contiguous(l->counts.data(), DType::kInt32, {E});
  la.expert_offsets = TensorView::contiguous(l->offsets.data(), DType::kInt64, {E + 1});
  la.src_to_dst = TensorView::contiguous(l->s2d.data(), DType::kInt64, {slots});
  la.dst_to_src = TensorView::contiguous(l->d2s.data(), DType::kInt64, {slots});
  Status st = expert_layout_cpu(lp, la);  // validates top_k_ids and expert_map
  if (!st.ok()) return Status(st.code(), std::string(kOp) + " (routing): " + st.message());
  return Status::Ok();
}

// Dot product in float32 with 8 interleaved partial sums (partial j holds the terms c = j mod 8),
// added pairwise at the end: a fixed order the compiler can vectorise, ~8x a single chain.
float dot8(const float* a, const float* b, std::int64_t n) {
  float s[8] = {};
  std::int64_t c = 0;
  for (; c + 8 <= n; c += 8) {
    for (int j = 0; j < 8; ++j) s[j] += a[c + j] * b[c + j];
  }
  for (; c < n; ++c) s[c & 7] += a[c] * b[c];
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

template <typename T>
void to_floats(const T* src, std::int64_t n, float* dst) {
  for (std::int64_t i = 0; i < n; ++i) dst[i] = detail::to_float(src[i]);
}

template <typename T>
void forward(const ExpertsParams& p, const ExpertsArgs& a, const SlotLayout& l) {
  const std::int64_t M = a.x.size(0), K = a.top_k_ids.size(1), E = p.num_experts;
  const std::int64_t H = p.hidden_size, I = p.intermediate_size, R13 = rows13(p);
  const auto* x = static_cast<const T*>(a.x.data);
  const auto* w13 = static_cast<const T*>(a.w13.data);
  const auto* w2 = static_cast<const T*>(a.w2.data);
  const auto* tw = static_cast<const float*>(a.top_k_weights.data);
  const std::vector<std::int64_t>& offsets = l.offsets;
  const std::vector<std::int64_t>& s2d = l.s2d;
  const std::vector<std::int64_t>& d2s = l.d2s;

  // Work items: (expert, up to 16 of its rows), so hot experts spread over the cores.
  struct Item {
    std::int64_t expert, begin, end;
  };
  std::vector<Item> items;
  for (std::int64_t e = 0; e < E; ++e) {
    for (std::int64_t r = offsets[static_cast<std::size_t>(e)];
         r < offsets[static_cast<std::size_t>(e) + 1]; r += 16) {
      items.push_back({e, r, std::min(r + 16, offsets[static_cast<std::size_t>(e) + 1])});
    }
  }
  std::vector<float> y(static_cast<std::size_t>(offsets[static_cast<std::size_t>(E)] * H));
  detail::parallel_for(
      static_cast<std::int64_t>(items.size()), 1, [&](std::int64_t b, std::int64_t e_end) {
        std::vector<float> in(static_cast<std::size_t>(16 * H)),
            h(static_cast<std::size_t>(16 * R13)), act(static_cast<std::size_t>(16 * I)),
            wf(static_cast<std::size_t>(std::max(H, I)));
        for (std::int64_t it = b; it < e_end; ++it) {
          const Item& item = items[static_cast<std::size_t>(it)];
          const std::int64_t n = item.end - item.begin, e = item.expert;
          for (std::int64_t r = 0; r < n; ++r) {
            const std::int64_t slot = d2s[static_cast<std::size_t>(item.begin + r)];
            const T* xr = x + (slot / K) * H;
            for (std::int64_t c = 0; c < H; ++c) {
              float v = detail::to_float(xr[c]);
              if (p.apply_router_weight_on_input)
                v = detail::to_float(detail::from_float<T>(tw[slot] * v));
              in[static_cast<std::size_t>(r * H + c)] = v;
            }
          }
          for (std::int64_t j = 0; j < R13; ++j) {  // GEMM1: each weight row once per item
            to_floats(w13 + (e * R13 + j) * H, H, wf.data());
            const float bias = bias_at(a.b13, e * R13 + j);
            for (std::int64_t r = 0; r < n; ++r) {
              h[static_cast<std::size_t>(r * R13 + j)] =
                  dot8(wf.data(), in.data() + r * H, H) + bias;
            }
          }
          for (std::int64_t r = 0; r < n; ++r) {  // activation, rounded to the stored dtype
            for (std::int64_t i = 0; i < I; ++i) {
              act[static_cast<std::size_t>(r * I + i)] =
                  detail::to_float(detail::from_float<T>(activate(p, h.data() + r * R13, i)));
            }
          }
          for (std::int64_t o = 0; o < H; ++o) {  // GEMM2
            to_floats(w2 + (e * H + o) * I, I, wf.data());
            const float bias = bias_at(a.b2, e * H + o);
            for (std::int64_t r = 0; r < n; ++r) {
              y[static_cast<std::size_t>((item.begin + r) * H + o)] =
                  dot8(wf.data(), act.data() + r * I, I) + bias;
            }
          }
        }
      });

  auto* out = static_cast<T*>(a.out.data);
  detail::parallel_for(M, 64, [&](std::int64_t b, std::int64_t e_end) {
    std::vector<float> acc(static_cast<std::size_t>(H));
    for (std::int64_t t = b; t < e_end; ++t) {
      std::fill(acc.begin(), acc.end(), 0.0f);
      for (std::int64_t k = 0; k < K; ++k) {
        const std::int64_t row = s2d[static_cast<std::size_t>(t * K + k)];
        if (row < 0) continue;
        const float w = p.apply_router_weight_on_input ? 1.0f : tw[t * K + k];
        for (std::int64_t c = 0; c < H; ++c) {
          acc[static_cast<std::size_t>(c)] = detail::exact_fma(
              w, y[static_cast<std::size_t>(row * H + c)], acc[static_cast<std::size_t>(c)]);
        }
      }
      for (std::int64_t c = 0; c < H; ++c) {
        out[t * H + c] =
            detail::from_float<T>(p.routed_scaling_factor * acc[static_cast<std::size_t>(c)]);
      }
    }
  });
}

}  // namespace

Status fused_experts_cpu(const ExpertsParams& p, const ExpertsArgs& a) {
  SY_RETURN_IF_ERROR(detail::experts_check(kOp, p, a, Device::kCpu));
  SlotLayout layout;
  SY_RETURN_IF_ERROR(make_layout(p, a, &layout));
  if (a.x.dtype == DType::kBFloat16) {
    forward<detail::bf16_t>(p, a, layout);
  } else {
    forward<detail::fp16_t>(p, a, layout);
  }
  return Status::Ok();
}

}  // namespace switchyard
