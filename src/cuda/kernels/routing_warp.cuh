// The routing kernel for short rows at decode sizes (E <= 32): one warp per row, lane e holding
// expert e, every cross-lane step a single warp collective over 32 lanes. The row block and the
// lane groups serve such a row with a general machinery (threshold pairs and candidate lists, or
// several output slots per lane with 64-bit candidate butterflies); here a row is, per lane:
// load -> key -> (softmax: one redux for the max, the exact term, log2(next_pow2(E)) butterfly
// levels) -> this lane's weight were it selected -> K rounds of two reductions (redux max of the
// order keys, redux min of the lanes holding it; lane k takes column k and the winner's weight by
// a shuffle) -> slot sums over log2(next_pow2(K)) levels -> stores. One instance per score
// function; the rare steps are out of line. No shared memory but the group scores of grouped
// routings, no block barrier. Measured (H200, docs/routing.md "Warp kernel"): Mixtral 1 / 512
// rows 2.19 / 2.42 us against the row block's 3.03 / 3.46.
//
// The same bits as every other layout and the CPU (routing_row.h, src/cpu/routing.cpp):
//  - keys, order keys, selection by (order key, lower index), groups: the CPU's steps;
//  - the softmax max: the CPU's max_ignore_nan may return -0 where the order-key maximum gives +0;
//    key - max_key, and so every term, is the same for either zero;
//  - the softmax denominator: lane e holds leaf e of the CPU's tree over next_pow2(E) leaves, and
//    XOR butterflies with offsets 1, 2, ... are its levels (a + b == b + a in IEEE arithmetic);
//  - slot sums: the CPU sums a 32-leaf tree whose leaves past K are +0. Past the first
//    next_pow2(K) leaves every subtree is +0, so its root is the tree over those leaves plus +0
//    (x + +0 == x, except -0 + +0 == +0): the butterfly over next_pow2(K) lanes, then + 0.0f.
#pragma once

#include <cstdint>

#include "../../common/dtype_convert.h"
#include "../../common/routing_kernel_params.h"
#include "../../common/routing_row.h"
#include "lane_group.cuh"
#include "routing.cuh"

namespace switchyard::kernels {

inline constexpr int kWarpRoutingMaxExperts = 32;
inline constexpr int kWarpRoutingThreads = 128;  // 4 rows per block
inline constexpr int kWarpRoutingRows = kWarpRoutingThreads / 32;

// The CPU's 32-leaf slot sum when leaf l = lane l's v and the leaves past n are +0 (n a power of
// two, 1..32): lanes < n get the root, the pairwise tree over their n leaves (their own XOR
// butterfly: this may run inside a branch that only those lanes take) plus the +0 subtrees above.
// Other lanes get v + 0.0f.
__device__ __forceinline__ float warp_slot_sum(float v, int n, int lane) {
  if (lane < n) {
    const unsigned mask = n >= 32 ? 0xffffffffu : (1u << n) - 1u;
    for (int off = 1; off < n; off *= 2) v = v + __shfl_xor_sync(mask, v, off);
  }
  return n < 32 ? v + 0.0f : v;
}

// warp_slot_sum where all 32 lanes call it (uniform control flow): full-warp shuffles, so the
// compiler needs no divergence handling for a runtime member mask. The XOR partners of lanes < n
// are lanes < n; what the other lanes compute is discarded.
__device__ __forceinline__ float warp_slot_sum_all(float v, int n, int lane) {
  float s = v;
  for (int off = 1; off < n; off *= 2) s = s + __shfl_xor_sync(0xffffffffu, s, off);
  s = lane < n ? s : v;
  return n < 32 ? s + 0.0f : s;
}

// routing_row_capacity(n) (next power of two, 1 for n <= 1) without a loop; n <= 1024.
__device__ __forceinline__ int warp_pow2_ceil(int n) {
  return n <= 1 ? 1 : 1 << (32 - __clz(n - 1));
}

// detail::softmax_term with its special cases as selects: the exact exponential runs on every
// lane, so that a lane's several terms are independent straight-line code the compiler can
// interleave. Same value in every case: NaN key -> 0; max +Inf -> 1 for +Inf keys, else 0; max
// -Inf -> 0; else exp_f(key - max_key).
__device__ __forceinline__ float warp_softmax_term(float key, float max_key) {
  using namespace detail;
  float r = exp_f(key - max_key);
  r = max_key == neg_inf() ? 0.0f : r;
  r = max_key == pos_inf() ? (key == pos_inf() ? 1.0f : 0.0f) : r;
  return is_nan(key) ? 0.0f : r;
}

// Rarely taken steps live outside the kernel's body (SY_WARP_COLD: not inlined on the device), so
// that the common path is contiguous code: at decode sizes a launch fetches its instructions cold,
// and every jump over inlined rare code lands on lines not fetched yet.
#if defined(__CUDACC__)
#define SY_WARP_COLD static __device__ __noinline__
#else
#define SY_WARP_COLD static inline
#endif

// (Scalars only: a reference into the kernel's parameters would make it copy them to the stack.)
SY_WARP_COLD void warp_store_id(void* ids, bool ids_int64, std::int64_t i, std::int32_t id) {
  if (ids_int64) {
    static_cast<std::int64_t*>(ids)[i] = id;
  } else {
    static_cast<std::int32_t*>(ids)[i] = id;
  }
}

SY_WARP_COLD void warp_store_padded_row(float* weights, void* ids, bool ids_int64,
                                        std::int64_t first, int cols, int lane) {
  if (lane < cols) {
    weights[first + lane] = 0.0f;
    warp_store_id(ids, ids_int64, first + lane, -1);
  }
}

SY_WARP_COLD float warp_softcapped(float raw, float softcap) {
  return detail::softcapped(raw, softcap);
}

SY_WARP_COLD std::uint32_t warp_drop_groups(int num_experts, GroupScore group_score, int num_groups,
                                            int topk_groups, std::uint32_t ord,
                                            std::uint32_t* words) {
  RoutingParams q;
  q.num_experts = num_experts;
  q.group_score = group_score;
  q.num_groups = num_groups;
  q.topk_groups = topk_groups;
  std::uint32_t ords[1] = {ord};
  drop_groups<32, 1>(LaneGroup<32>{}, q, ords, words);
  return ords[0];
}

// The renormalisation when the slot sum is +Inf (lanes below n, all of them): +Inf weights share
// the mass. The new weight and sum.
struct WarpRenorm {
  float w, sum;
};
SY_WARP_COLD WarpRenorm warp_renorm_inf(float w, int n, int lane) {
  w = w == detail::pos_inf() ? 1.0f : 0.0f;
  return {w, warp_slot_sum(w, n, lane)};
}

// Columns K..cols-1 (lane c: column c): the fused shared experts, ids shared_base + c - K.
SY_WARP_COLD void warp_store_shared(float* weights, void* ids, bool ids_int64, std::int64_t first,
                                    int K, int cols, std::int32_t shared_base, float w,
                                    int slot_leaves, bool rsf_on_output, float rsf, int lane) {
  const float routed_sum = __shfl_sync(0xffffffffu, warp_slot_sum_all(w, slot_leaves, lane), 0);
  if (lane >= K && lane < cols) {
    weights[first + lane] = rsf_on_output ? routed_sum : detail::div_f(routed_sum, rsf);
    warp_store_id(ids, ids_int64, first + lane, shared_base + lane - K);
  }
}

// After the selection, lane k < K holds column k: expert `sel`, its order key `sel_ord`, its weight
// `w` as computed before the renormalisation (ignored for kTopkThenSoftmax, which takes it from
// the order keys), and every lane the first selected order key `top_ord`. The weights in the
// CPU's order of operations (slot sums over next_pow2(K) lanes), the shared experts and the
// stores. Shared by the warp kernel and the wide warp kernel (routing_warp_wide.cuh).
template <ScoreFunc kF>
__device__ __forceinline__ void warp_finish_row(const detail::RoutingKernelParams& kp,
                                                const bool ids_int64, const std::int64_t row,
                                                const int lane, const bool any_finite,
                                                const int sel, const std::uint32_t sel_ord,
                                                const std::uint32_t top_ord, float w) {
  using namespace detail;
  const RoutingParams& p = kp.p;
  const int K = p.top_k, S = p.num_shared_experts, cols = K + S;
  float* out_w = kp.weights + row * cols;
  // ---- weights (lane k < K: column k), the CPU's order of operations
  const int slot_leaves = warp_pow2_ceil(K);
  if constexpr (kF == ScoreFunc::kTopkThenSoftmax) {
    if (lane < K && any_finite) {
      const float top_key = order_key_value(top_ord);
      w = warp_softmax_term(order_key_value(sel_ord), is_nan(top_key) ? neg_inf() : top_key);
    }
    w = nan_to_zero(w);
    const float sum = warp_slot_sum_all(w, slot_leaves, lane);
    w = lane < K ? safe_div(w, sum) : 0.0f;
  } else {
    w = nan_to_zero(w);
  }
  if (p.renormalize) {
    float sum = warp_slot_sum_all(w, slot_leaves, lane);
    if (sum == pos_inf()) {  // every lane below slot_leaves (they hold the root), or none
      const WarpRenorm r = warp_renorm_inf(w, slot_leaves, lane);
      w = r.w;
      sum = r.sum;
    }
    if (lane < K && sum > 0.0f) w = div_f(w, sum);
  }

  // ---- stores: lane k < K column k, lanes K..K+S-1 the shared experts
  if (S > 0) {
    warp_store_shared(kp.weights, kp.ids, ids_int64, row * cols, K, cols, shared_expert_id(kp, 0),
                      w, slot_leaves, p.apply_rsf_on_output, p.routed_scaling_factor, lane);
  }
  if (lane < K) {
    out_w[lane] = p.apply_rsf_on_output ? w * p.routed_scaling_factor : w;
    store_routing_id(kp, ids_int64, row * cols + lane, map_routed_id(kp, sel, row, lane));
  }
}

// kF: the routing's score function (one instance each: its branches are compile-time).
template <typename T, ScoreFunc kF>
__global__ void __launch_bounds__(kWarpRoutingThreads)
    routing_warp_kernel(const detail::RoutingKernelParams kp, const bool ids_int64) {
  pdl_begin_warm(routing_param_lines(kp));  // first: kernels/pdl.cuh
  using namespace detail;
  constexpr unsigned kFull = 0xffffffffu;
  constexpr bool kSigmoidLike = kF == ScoreFunc::kSigmoid || kF == ScoreFunc::kSqrtSoftplus;
  __shared__ std::uint32_t group_words[kWarpRoutingRows][kMaxRoutingGroups];
  const RoutingParams& p = kp.p;
  const int lane = static_cast<int>(threadIdx.x & 31u);
  const int warp = static_cast<int>(threadIdx.x >> 5);
  const std::int64_t row = static_cast<std::int64_t>(blockIdx.x) * kWarpRoutingRows + warp;
  if (row >= kp.num_tokens) return;  // uniform per warp
  const int E = p.num_experts, K = p.top_k, S = p.num_shared_experts, cols = K + S;
  // ---- load (a padded row is still a row of the logits: in bounds; the padding test follows),
  // key, order key (lane e: expert e)
  const bool in = lane < E;
  const T* x = static_cast<const T*>(kp.logits) + row * kp.row_stride;
  float raw = in ? to_float(x[lane]) : 0.0f;
  const float bias = kp.bias != nullptr && in ? __ldg(kp.bias + lane) : 0.0f;
  const std::int64_t non_padded = routing_non_padded_rows(kp);
  if (row >= non_padded) {
    warp_store_padded_row(kp.weights, kp.ids, ids_int64, row * cols, cols, lane);
    return;
  }
  const bool any_finite = __ballot_sync(kFull, in && is_finite(raw)) != 0u;
  if (p.softcap > 0.0f) raw = warp_softcapped(raw, p.softcap);
  float score = raw;  // the bias-free score: the weight of the sigmoid-like functions
  if constexpr (kF == ScoreFunc::kSigmoid) {
    score = sigmoid_f(raw);
  } else if constexpr (kF == ScoreFunc::kSqrtSoftplus) {
    score = exact_sqrt(softplus_f(raw));
  }
  const float key = score + bias;
  std::uint32_t ord = in ? order_key(key) : 0u;

  // ---- this lane's weight were it selected, before the selection (off its critical path). The
  // CPU computes it from the selected order key's value: the same float but for -0 (+0 there) and
  // NaN payloads, which give the same weight (e^(+-0 - max) = e^(0 - max); NaN: 0).
  float lane_w = 0.0f;
  if constexpr (kF == ScoreFunc::kSoftmax) {
    // max (NaN ignored: order key 1; absent: 0), the CPU's pairwise denominator over lanes
    const std::uint32_t m = __reduce_max_sync(kFull, ord > 1u ? ord : 0u);
    const float max_key = m > 1u ? order_key_value(m) : neg_inf();
    const float term = in ? warp_softmax_term(key, max_key) : 0.0f;
    float sum = term;
    const int leaves = warp_pow2_ceil(E);
    for (int off = 1; off < leaves; off *= 2) sum = sum + __shfl_xor_sync(kFull, sum, off);
    lane_w = safe_div(term, sum);  // lanes < leaves (every expert's) hold the root
  } else if constexpr (kSigmoidLike) {
    lane_w = score;
  } else if constexpr (kF == ScoreFunc::kTopkThenSigmoid) {
    lane_w = sigmoid_f(key);
  }
  if (p.group_score != GroupScore::kNone) {
    ord = warp_drop_groups(E, p.group_score, p.num_groups, p.topk_groups, ord, group_words[warp]);
  }

  // ---- K rounds: best (order key, lower index); lane k keeps column k
  int sel = lane;  // a row without a finite logit: ids 0..K-1, weights 0 (the CPU's answer)
  std::uint32_t sel_ord = 0u, top_ord = 0u;
  float w = 0.0f;
  if (any_finite) {
    for (int k = 0; k < K; ++k) {
      const std::uint32_t m = __reduce_max_sync(kFull, ord);
      const int winner =
          static_cast<int>(__reduce_min_sync(kFull, ord == m ? static_cast<unsigned>(lane) : 32u));
      const float wk = __shfl_sync(kFull, lane_w, winner);
      top_ord = k == 0 ? m : top_ord;
      if (lane == k) {
        sel = winner;
        sel_ord = m;
        w = wk;
      }
      if (lane == winner) ord = 0u;
    }
  }

  warp_finish_row<kF>(kp, ids_int64, row, lane, any_finite, sel, sel_ord, top_ord, w);
}

}  // namespace switchyard::kernels
