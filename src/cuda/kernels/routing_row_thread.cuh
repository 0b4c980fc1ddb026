// The routing kernel for short rows (E <= 32): one thread per row, the row in registers. At decode
// sizes a lane group or row block of such a row spends its time in cross-lane steps (shuffles,
// ballots, barriers, shared memory: ~4,700 cycles for Mixtral's 8 experts at M = 1, measured);
// here every step is a register operation of one thread: loads, keys, the softmax tree, an
// insertion of each candidate into a sorted list of kCols, weights, stores.
//
// The same bits as every other layout and the CPU (routing_row.h, src/cpu/routing.cpp):
//  - keys, order keys, selection by (order key, lower index), groups: the CPU's steps;
//  - the softmax denominator is the pairwise tree over kCap >= next_pow2(E) leaves, the ones past
//    E zero: the CPU's tree over next_pow2(E) leaves plus zero subtrees, x + 0 == x for the
//    non-negative terms;
//  - slot sums are trees over kCols >= K + S leaves, the same argument against the CPU's 32.
// No shared memory, no synchronisation: any grid of kRoutingThreads-thread blocks.
#pragma once

#include <cstdint>

#include "../../common/dtype_convert.h"
#include "../../common/routing_kernel_params.h"
#include "../../common/routing_row.h"
#include "routing.cuh"

namespace switchyard::kernels {

inline constexpr int kRowThreadMaxExperts = 32;

// c ? a : b as a PTX select: written in C++ over an unrolled loop of j == i tests, the compiler
// folds the selects back into a dynamically indexed array, which lives in local memory.
// (A plain select on the host emulator, tools/simt_emu.)
__device__ __forceinline__ float select_f32(bool c, float a, float b) {
#if defined(__CUDA_ARCH__)
  float r;
  asm("{\n .reg .pred p;\n setp.ne.u32 p, %3, 0;\n selp.f32 %0, %1, %2, p;\n}"
      : "=f"(r)
      : "f"(a), "f"(b), "r"(static_cast<unsigned>(c)));
  return r;
#else
  return c ? a : b;
#endif
}

// Inserts candidate c into best[0..kN), kept in descending order (the smallest falls off).
template <int kN>
__device__ __forceinline__ void insert_candidate(std::uint64_t (&best)[kN], std::uint64_t c) {
#pragma unroll
  for (int i = 0; i < kN; ++i) {
    const std::uint64_t b = best[i];
    best[i] = c > b ? c : b;
    c = c > b ? b : c;
  }
}

// kCap: experts per row held (8, 16 or 32 >= next_pow2(E)); kCols: output columns held (2, 8 or
// 32 >= K + S).
template <typename T, int kCap, int kCols>
__global__ void __launch_bounds__(kRoutingThreads)
    routing_row_thread_kernel(const detail::RoutingKernelParams kp, const bool vec_ok,
                              const bool ids_int64) {
  pdl_begin();  // first: kernels/pdl.cuh
  using namespace detail;
  static_assert(kCap <= kRowThreadMaxExperts && kCols <= kMaxRoutingColumns, "layout");
  const RoutingParams& p = kp.p;
  const std::int64_t row =
      static_cast<std::int64_t>(blockIdx.x) * kRoutingThreads + static_cast<int>(threadIdx.x);
  if (row >= kp.num_tokens) return;
  const int E = p.num_experts, K = p.top_k, S = p.num_shared_experts, cols = K + S;
  float* out_w = kp.weights + row * cols;
  auto store_id = [&](int c, std::int32_t id) {
    store_routing_id(kp, ids_int64, row * cols + c, id);
  };
  const std::int64_t non_padded = routing_non_padded_rows(kp);
  if (row >= non_padded) {
    for (int c = 0; c < cols; ++c) {
      out_w[c] = 0.0f;
      store_id(c, -1);
    }
    return;
  }

  const T* x = static_cast<const T*>(kp.logits) + row * kp.row_stride;
  float raw[kCap], bias[kCap];
  load_chunk<T, kCap>(x, 0, E, vec_ok, raw);
  load_bias<kCap>(kp.bias, 0, E, bias);
  bool any_finite = false;
#pragma unroll
  for (int j = 0; j < kCap; ++j) any_finite = any_finite || (j < E && is_finite(raw[j]));

  // Keys (the uniform score-function branches hoisted out of the element loops), the bias-free
  // scores of the sigmoid-like functions (their weights), order keys.
  if (p.softcap > 0.0f) {
#pragma unroll
    for (int j = 0; j < kCap; ++j) raw[j] = softcapped(raw[j], p.softcap);
  }
  const ScoreFunc f = p.score_func;
  float key[kCap], score[kCap];
  if (f == ScoreFunc::kSigmoid) {
#pragma unroll
    for (int j = 0; j < kCap; ++j) score[j] = j < E ? sigmoid_f(raw[j]) : 0.0f;
  } else if (f == ScoreFunc::kSqrtSoftplus) {
#pragma unroll
    for (int j = 0; j < kCap; ++j) score[j] = j < E ? exact_sqrt(softplus_f(raw[j])) : 0.0f;
  } else {
#pragma unroll
    for (int j = 0; j < kCap; ++j) score[j] = raw[j];
  }
  std::uint32_t ord[kCap];
#pragma unroll
  for (int j = 0; j < kCap; ++j) {
    key[j] = score[j] + bias[j];
    ord[j] = j < E ? order_key(key[j]) : 0u;
  }

  float max_key = neg_inf(), softmax_sum = 0.0f;
  if (f == ScoreFunc::kSoftmax) {
#pragma unroll
    for (int j = 0; j < kCap; ++j) {
      if (j < E) max_key = max_ignore_nan(max_key, key[j]);
    }
    float terms[kCap];
#pragma unroll
    for (int j = 0; j < kCap; ++j) terms[j] = j < E ? softmax_term(key[j], max_key) : 0.0f;
    softmax_sum = local_pairwise_sum<kCap>(terms);
  }

  if (p.group_score != GroupScore::kNone) {  // the CPU's drop_groups
    const int group_size = E / p.num_groups;
    std::uint64_t group_cand[kCap];  // num_groups <= E <= kCap
#pragma unroll
    for (int g = 0; g < kCap; ++g) {
      std::uint32_t b = 0, s = 0;
#pragma unroll
      for (int j = 0; j < kCap; ++j) {
        if (j >= g * group_size && j < (g + 1) * group_size) top2_insert(b, s, ord[j]);
      }
      group_cand[g] =
          g < p.num_groups ? candidate(order_key(group_score_value(p.group_score, b, s)), g) : 0u;
    }
    unsigned kept = 0;
    for (int r = 0; r < p.topk_groups; ++r) {
      std::uint64_t c = 0;
#pragma unroll
      for (int g = 0; g < kCap; ++g) {
        if (!((kept >> g) & 1u) && group_cand[g] > c) c = group_cand[g];
      }
      kept |= 1u << candidate_expert(c);
    }
#pragma unroll
    for (int j = 0; j < kCap; ++j) {
      bool in_kept = false;
#pragma unroll
      for (int g = 0; g < kCap; ++g) {
        in_kept =
            in_kept || (((kept >> g) & 1u) && j >= g * group_size && j < (g + 1) * group_size);
      }
      ord[j] = in_kept ? ord[j] : 0u;
    }
  }

  // The K best (order key, lower index), best first: the CPU's select_top.
  std::uint64_t best[kCols];
#pragma unroll
  for (int i = 0; i < kCols; ++i) best[i] = 0u;
#pragma unroll
  for (int j = 0; j < kCap; ++j) {
    if (ord[j] != 0u) insert_candidate<kCols>(best, candidate(ord[j], j));
  }

  // Weights: slot k = output column k (k < K), zero past K.
  const float top_key = order_key_value(candidate_order(best[0]));
  const float softmax_top = is_nan(top_key) ? neg_inf() : top_key;
  int sel[kCols];
  float w[kCols];
#pragma unroll
  for (int k = 0; k < kCols; ++k) {
    sel[k] = k;
    w[k] = 0.0f;
    if (k < K && any_finite) {
      sel[k] = candidate_expert(best[k]);
      const float key_k = order_key_value(candidate_order(best[k]));
      float wk = 0.0f;
      if (f == ScoreFunc::kSoftmax) {
        wk = safe_div(softmax_term(key_k, max_key), softmax_sum);
      } else if (f == ScoreFunc::kSigmoid || f == ScoreFunc::kSqrtSoftplus) {
#pragma unroll
        for (int j = 0; j < kCap; ++j) wk = select_f32(j == sel[k], score[j], wk);
      } else if (f == ScoreFunc::kTopkThenSoftmax) {
        wk = softmax_term(key_k, softmax_top);  // normalised below
      } else {
        wk = sigmoid_f(key_k);
      }
      w[k] = nan_to_zero(wk);
    }
  }
  auto slot_sum = [&]() {
    float v[kCols];
#pragma unroll
    for (int k = 0; k < kCols; ++k) v[k] = w[k];
    return local_pairwise_sum<kCols>(v);
  };
  if (f == ScoreFunc::kTopkThenSoftmax) {
    const float sum = slot_sum();
#pragma unroll
    for (int k = 0; k < kCols; ++k) w[k] = k < K ? safe_div(w[k], sum) : 0.0f;
  }
  if (p.renormalize) {
    float sum = slot_sum();
    if (sum == pos_inf()) {
#pragma unroll
      for (int k = 0; k < kCols; ++k) w[k] = w[k] == pos_inf() ? 1.0f : 0.0f;
      sum = slot_sum();
    }
    if (sum > 0.0f) {
#pragma unroll
      for (int k = 0; k < kCols; ++k) w[k] = k < K ? div_f(w[k], sum) : 0.0f;
    }
  }
  const float routed_sum = S > 0 ? slot_sum() : 0.0f;
  const float rsf = p.routed_scaling_factor;
#pragma unroll
  for (int k = 0; k < kCols; ++k) {
    if (k < K) {
      out_w[k] = p.apply_rsf_on_output ? w[k] * rsf : w[k];
      store_id(k, map_routed_id(kp, sel[k], row, k));
    }
  }
  if (S > 0) {
    const float shared_w = p.apply_rsf_on_output ? routed_sum : div_f(routed_sum, rsf);
    for (int i = 0; i < S; ++i) {
      out_w[K + i] = shared_w;
      store_id(K + i, shared_expert_id(kp, i));
    }
  }
}

}  // namespace switchyard::kernels
