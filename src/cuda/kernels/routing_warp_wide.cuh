// The warp kernel for rows of 33..512 experts at decode sizes (layout code 69): one warp per row,
// lane l holding the kVals consecutive experts [l * kVals, l * kVals + kVals), kVals =
// next_pow2(E) / 32 (2, 4, 8 or 16). It is routing_warp_kernel (routing_warp.cuh) with a chunk of
// experts per lane; the lane-group kernel (routing.cuh) has the same layout but one general
// instance: here there is one instance per score function, the selection takes one reduction and
// one ballot per round, and the weights come from values computed before the selection.
//
// Per row: load -> scores, keys, order keys (softmax: one redux for the max, the exact terms, the
// lane's pairwise sum and 5 butterfly levels) -> groups (drop_groups, as the lane groups) -> K
// rounds -> one gather of the selected values -> warp_finish_row (weights, shared experts,
// stores: the warp kernel's code).
//
// A round: m = redux max of the lanes' best order keys (b1); the winner is the lowest lane whose
// b1 is m (a ballot): lanes hold ascending expert ranges and b1 is the lane's best with ties to
// the lower expert, so that is the CPU's (order key, lower index) choice. While the reduction is in
// flight every lane computes its best without b1 (the tournament of routing.cuh), which becomes
// the winner's b1; no branch, so the warp never diverges.
//
// Same bits as the CPU and every other layout: the keys, order keys, groups and weights are the
// warp kernel's (see routing_warp.cuh for the denominator tree, the slot sums and the -0 / NaN
// notes); the denominator's leaves are the lanes' chunks (local pairwise tree, then XOR
// levels 1..16 over the 32 lanes: the CPU's tree over next_pow2(E) leaves).
#pragma once

#include <cstdint>

#include "../../common/dtype_convert.h"
#include "../../common/routing_kernel_params.h"
#include "../../common/routing_row.h"
#include "lane_group.cuh"
#include "routing.cuh"
#include "routing_warp.cuh"

namespace switchyard::kernels {

inline constexpr int kWarpWideMinExperts = 33;
inline constexpr int kWarpWideMaxExperts = 512;

// kF: the score function; kVals: experts per lane (32 * kVals = next_pow2(E)).
template <typename T, ScoreFunc kF, int kVals>
__global__ void __launch_bounds__(kWarpRoutingThreads)
    routing_warp_wide_kernel(const detail::RoutingKernelParams kp, const bool vec_ok,
                             const bool ids_int64) {
  pdl_begin_warm(routing_param_lines(kp));  // first: kernels/pdl.cuh
  using namespace detail;
  static_assert(kVals == 2 || kVals == 4 || kVals == 8 || kVals == 16, "experts per lane");
  constexpr unsigned kFull = 0xffffffffu;
  constexpr bool kSigmoidLike = kF == ScoreFunc::kSigmoid || kF == ScoreFunc::kSqrtSoftplus;
  // The value a selected expert's weight comes from (softmax: its term; sigmoid-like: its score).
  constexpr bool kGather = kF == ScoreFunc::kSoftmax || kSigmoidLike;
  __shared__ std::uint32_t group_words[kWarpRoutingRows][kMaxRoutingGroups];
  const RoutingParams& p = kp.p;
  const int lane = static_cast<int>(threadIdx.x & 31u);
  const int warp = static_cast<int>(threadIdx.x >> 5);
  const std::int64_t row = static_cast<std::int64_t>(blockIdx.x) * kWarpRoutingRows + warp;
  if (row >= kp.num_tokens) return;  // uniform per warp
  const int E = p.num_experts, K = p.top_k, cols = K + p.num_shared_experts;
  // The loads first (a padded row is still a row of the logits: in bounds), then the padding test.
  const int first = lane * kVals;
  const T* x = static_cast<const T*>(kp.logits) + row * kp.row_stride;
  float raw[kVals], bias[kVals];
  load_chunk<T, kVals>(x, first, E, vec_ok, raw);
  load_bias<kVals>(kp.bias, first, E, bias);
  const std::int64_t non_padded = routing_non_padded_rows(kp);
  if (row >= non_padded) {
    warp_store_padded_row(kp.weights, kp.ids, ids_int64, row * cols, cols, lane);
    return;
  }

  // ---- scores, keys, order keys (lane l: experts first .. first + kVals - 1; every step a
  // select, no branch, so that the kVals chains interleave)
  bool finite = false;
#pragma unroll
  for (int j = 0; j < kVals; ++j) finite = finite || (first + j < E && is_finite(raw[j]));
  const bool any_finite = __ballot_sync(kFull, finite) != 0u;
  if (p.softcap > 0.0f) {
#pragma unroll
    for (int j = 0; j < kVals; ++j) raw[j] = warp_softcapped(raw[j], p.softcap);
  }
  float key[kVals], val[kVals];
  std::uint32_t ord[kVals];
#pragma unroll
  for (int j = 0; j < kVals; ++j) {
    float score = raw[j];  // the bias-free score: the weight of the sigmoid-like functions
    if constexpr (kF == ScoreFunc::kSigmoid) {
      score = sigmoid_f(raw[j]);
    } else if constexpr (kF == ScoreFunc::kSqrtSoftplus) {
      score = exact_sqrt(softplus_f(raw[j]));
    }
    key[j] = score + bias[j];
    val[j] = score;
    const std::uint32_t o = order_key(key[j]);
    ord[j] = first + j < E ? o : 0u;
  }
  float softmax_sum = 0.0f;
  if constexpr (kF == ScoreFunc::kSoftmax) {
    // max (NaN ignored: order key 1; absent: 0), the CPU's pairwise denominator
    std::uint32_t local = 0u;
#pragma unroll
    for (int j = 0; j < kVals; ++j) local = ord[j] > 1u && ord[j] > local ? ord[j] : local;
    const std::uint32_t m = __reduce_max_sync(kFull, local);
    const float max_key = m > 1u ? order_key_value(m) : neg_inf();
    float terms[kVals];
#pragma unroll
    for (int j = 0; j < kVals; ++j) {
      const float t = warp_softmax_term(key[j], max_key);
      terms[j] = first + j < E ? t : 0.0f;
      val[j] = terms[j];
    }
    float sum = local_pairwise_sum<kVals>(terms);
#pragma unroll
    for (int off = 1; off < 32; off *= 2) sum = sum + __shfl_xor_sync(kFull, sum, off);
    softmax_sum = sum;
  }
  if (p.group_score != GroupScore::kNone) {
    // The launcher adds kWarpRoutingRows * 32 * kVals words of dynamic shared memory for groups
    // that are not whole runs of lanes (drop_groups' scratch).
    extern __shared__ std::uint32_t wide_words[];
    std::uint32_t* words = dynamic_smem_bytes() >= kWarpRoutingRows * 32u * kVals * 4u
                               ? wide_words + warp * (32 * kVals)
                               : nullptr;
    drop_groups<32, kVals>(LaneGroup<32>{}, p, ord, group_words[warp], words);
  }

  // ---- K rounds: best (order key, lower index); lane k keeps column k
  int sel = lane;  // a row without a finite logit: ids 0..K-1, weights 0 (the CPU's answer)
  int sel_lane = 0, sel_j = 0;
  std::uint32_t sel_ord = 0u, top_ord = 0u;
  if (any_finite) {
    std::uint32_t b1;
    int j1;
    chunk_best<kVals>(ord, b1, j1);
    for (int k = 0; k < K; ++k) {
      const std::uint32_t m = __reduce_max_sync(kFull, b1);
      // This lane's chunk without its best, and the best of that (the winner's next b1).
      std::uint32_t rest[kVals];
#pragma unroll
      for (int j = 0; j < kVals; ++j) rest[j] = j == j1 ? 0u : ord[j];
      std::uint32_t b2;
      int j2;
      chunk_best<kVals>(rest, b2, j2);
      const int winner = __ffs(__ballot_sync(kFull, b1 == m)) - 1;
      const int jw = __shfl_sync(kFull, j1, winner);
      top_ord = k == 0 ? m : top_ord;
      if (lane == k) {
        sel_lane = winner;
        sel_j = jw;
        sel_ord = m;
      }
      const bool won = lane == winner;
#pragma unroll
      for (int j = 0; j < kVals; ++j) ord[j] = won ? rest[j] : ord[j];
      b1 = won ? b2 : b1;
      j1 = won ? j2 : j1;
    }
    if (lane < K) sel = sel_lane * kVals + sel_j;
  }

  // ---- lane k < K: the selected expert's value (from its lane), then its weight
  float w = 0.0f;
  if constexpr (kGather) {
    float v = 0.0f;
#pragma unroll
    for (int j = 0; j < kVals; ++j) {
      const float t = __shfl_sync(kFull, val[j], sel_lane);
      v = j == sel_j ? t : v;
    }
    if (lane < K && any_finite) {
      if constexpr (kF == ScoreFunc::kSoftmax) {
        w = safe_div(v, softmax_sum);
      } else {
        w = v;
      }
    }
  } else if constexpr (kF == ScoreFunc::kTopkThenSigmoid) {
    if (lane < K && any_finite) w = sigmoid_f(order_key_value(sel_ord));
  }
  warp_finish_row<kF>(kp, ids_int64, row, lane, any_finite, sel, sel_ord, top_ord, w);
}

}  // namespace switchyard::kernels
