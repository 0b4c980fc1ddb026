// The routing kernel: one lane group of kLanes lanes per row, kVals consecutive experts per lane.
// Framework-free: raw pointers in RoutingKernelParams, no host policy (see launch/routing.cu).
//
// Per row: load -> keys -> (softmax max/sum) -> (group selection) -> K rounds of group argmax ->
// weights -> renormalise / shared / rsf -> placement -> store. Every step is the one in
// src/cpu/routing.cpp, with the same float operations in the same order.
#pragma once

#include <cstdint>

#include "../../common/dtype_convert.h"
#include "../../common/routing_kernel_params.h"
#include "../../common/routing_row.h"
#include "lane_group.cuh"

namespace switchyard::kernels {

inline constexpr int kRoutingThreads = 128;

template <typename T>
struct VecOf;  // a 16-, 8- or 4-byte load unit
template <int kBytes>
struct LoadUnit {
  using type = uint4;
};
template <>
struct LoadUnit<8> {
  using type = uint2;
};
template <>
struct LoadUnit<4> {
  using type = unsigned int;
};

// raw[j] = logit of expert lane*kVals + j (0 outside the row).
template <typename T, int kVals>
__device__ __forceinline__ void load_chunk(const T* row_ptr, int first, int num_experts,
                                           bool vec_ok, float (&raw)[kVals]) {
  constexpr int kBytes = kVals * static_cast<int>(sizeof(T));
  if constexpr (kBytes >= 4) {
    if (vec_ok && first + kVals <= num_experts) {
      constexpr int kUnit = kBytes >= 16 ? 16 : kBytes;
      using Unit = typename LoadUnit<kUnit>::type;
      constexpr int kPerUnit = kUnit / static_cast<int>(sizeof(T));
      const Unit* src = reinterpret_cast<const Unit*>(row_ptr + first);
#pragma unroll
      for (int u = 0; u < kBytes / kUnit; ++u) {
        union {
          Unit unit;
          T elems[kPerUnit];
        } buf;
        buf.unit = __ldg(src + u);
#pragma unroll
        for (int i = 0; i < kPerUnit; ++i) raw[u * kPerUnit + i] = detail::to_float(buf.elems[i]);
      }
      return;
    }
  }
#pragma unroll
  for (int j = 0; j < kVals; ++j) {
    raw[j] = first + j < num_experts ? detail::to_float(row_ptr[first + j]) : 0.0f;
  }
}

// One level of the chunk tournament: slot i meets slot i + kWidth; the lower slot keeps ties.
template <int kWidth, int kVals>
__device__ __forceinline__ void tournament_level(std::uint32_t (&o)[kVals], int (&jj)[kVals]) {
#pragma unroll
  for (int i = 0; i < kWidth; ++i) {
    if (o[i + kWidth] > o[i]) {
      o[i] = o[i + kWidth];
      jj[i] = jj[i + kWidth];
    }
  }
  if constexpr (kWidth > 1) tournament_level<kWidth / 2, kVals>(o, jj);
}

// Best (order, j) of a lane's chunk; ties keep the lower j (so the lower expert index).
template <int kVals>
__device__ __forceinline__ void chunk_best(const std::uint32_t (&ord)[kVals], std::uint32_t& best,
                                           int& best_j) {
  std::uint32_t o[kVals];
  int jj[kVals];
#pragma unroll
  for (int j = 0; j < kVals; ++j) {
    o[j] = ord[j];
    jj[j] = j;
  }
  if constexpr (kVals > 1) tournament_level<kVals / 2, kVals>(o, jj);
  best = o[0];
  best_j = jj[0];
}

// Keeps the topk_groups best groups: clears ord of experts in the others.
template <int kLanes, int kVals>
__device__ __forceinline__ void drop_groups(const LaneGroup<kLanes>& grp, const RoutingParams& p,
                                            std::uint32_t (&ord)[kVals]) {
  const int group_size = p.num_experts / p.num_groups;
  const int first = grp.lane * kVals;
  std::uint32_t group_ord = 0;  // lane g holds group g's score
  const int lanes_per_group = group_size / kVals;
  if (group_size % kVals == 0 && (lanes_per_group & (lanes_per_group - 1)) == 0) {
    // Each chunk lies in one group and a group is an aligned run of lanes: segmented butterfly.
    std::uint32_t b = 0, s = 0;
#pragma unroll
    for (int j = 0; j < kVals; ++j) detail::top2_insert(b, s, ord[j]);
    for (int off = 1; off < lanes_per_group; off *= 2) {
      const std::uint32_t ob = grp.xor_shuffle(b, off), os = grp.xor_shuffle(s, off);
      detail::top2_insert(b, s, ob);
      detail::top2_insert(b, s, os);
    }
    const std::uint32_t go = detail::order_key(detail::group_score_value(p.group_score, b, s));
    const int src = (grp.lane < p.num_groups ? grp.lane : 0) * lanes_per_group;
    const std::uint32_t mine = grp.broadcast(go, src);
    group_ord = grp.lane < p.num_groups ? mine : 0u;
  } else {
    for (int g = 0; g < p.num_groups; ++g) {
      std::uint32_t b = 0, s = 0;
#pragma unroll
      for (int j = 0; j < kVals; ++j) {
        if ((first + j) / group_size == g) detail::top2_insert(b, s, ord[j]);
      }
#pragma unroll
      for (int off = kLanes / 2; off >= 1; off /= 2) {
        const std::uint32_t ob = grp.xor_shuffle(b, off), os = grp.xor_shuffle(s, off);
        detail::top2_insert(b, s, ob);
        detail::top2_insert(b, s, os);
      }
      if (grp.lane == g) group_ord = detail::order_key(detail::group_score_value(p.group_score, b, s));
    }
  }
  unsigned kept = 0;
  for (int r = 0; r < p.topk_groups; ++r) {
    const std::uint32_t m = grp.max_u32(group_ord);
    const int winner = __ffs(static_cast<int>(grp.ballot(group_ord == m))) - 1;
    kept |= 1u << winner;
    if (grp.lane == winner) group_ord = 0;
  }
#pragma unroll
  for (int j = 0; j < kVals; ++j) {
    if (first + j < p.num_experts && !((kept >> ((first + j) / group_size)) & 1u)) ord[j] = 0;
  }
}

template <typename T, typename IdT, int kLanes, int kVals>
__global__ void __launch_bounds__(kRoutingThreads)
    routing_kernel(const detail::RoutingKernelParams kp, const bool vec_ok) {
  using namespace detail;
  const RoutingParams& p = kp.p;
  const LaneGroup<kLanes> grp;
  const std::int64_t row =
      static_cast<std::int64_t>(blockIdx.x) * (kRoutingThreads / kLanes) + threadIdx.x / kLanes;
  if (row >= kp.num_tokens) return;  // uniform per lane group
  const int E = p.num_experts, K = p.top_k, S = p.num_shared_experts, cols = K + S;
  float* out_w = kp.weights + row * cols;
  IdT* out_id = static_cast<IdT*>(kp.ids) + row * cols;

  const std::int64_t non_padded =
      kp.num_tokens_non_padded ? static_cast<std::int64_t>(*kp.num_tokens_non_padded) : kp.num_tokens;
  if (row >= non_padded) {
    for (int c = grp.lane; c < cols; c += kLanes) {
      out_w[c] = 0.0f;
      out_id[c] = IdT(-1);
    }
    return;
  }

  const T* x = static_cast<const T*>(kp.logits) + row * kp.row_stride;
  const int first = grp.lane * kVals;
  float key[kVals];
  std::uint32_t ord[kVals];
  bool any_finite = false;
  {
    float raw[kVals];
    load_chunk<T, kVals>(x, first, E, vec_ok, raw);
#pragma unroll
    for (int j = 0; j < kVals; ++j) {
      const bool in_row = first + j < E;
      any_finite = any_finite || (in_row && is_finite(raw[j]));
      const float bias = (kp.bias && in_row) ? __ldg(kp.bias + first + j) : 0.0f;
      key[j] = routing_key(p, raw[j], bias);
      ord[j] = in_row ? order_key(key[j]) : 0u;
    }
  }
  any_finite = grp.ballot(any_finite) != 0u;

  float max_key = neg_inf(), softmax_sum = 0.0f;
  if (p.score_func == ScoreFunc::kSoftmax) {
#pragma unroll
    for (int j = 0; j < kVals; ++j) {
      if (first + j < E) max_key = detail::max_ignore_nan(max_key, key[j]);
    }
    max_key = grp.max_ignore_nan(max_key);
    float acc = 0.0f;
#pragma unroll
    for (int j = 0; j < kVals; ++j) {
      if (first + j < E) acc = acc + softmax_term(key[j], max_key);
    }
    softmax_sum = grp.sum(acc);
  }
  if (p.group_score != GroupScore::kNone) drop_groups<kLanes, kVals>(grp, p, ord);

  // K rounds of argmax over the group. Chunks are contiguous and ascending with the lane, so the
  // lowest lane holding the maximum holds the lowest expert index with it.
  std::uint32_t chunk_ord;
  int chunk_j;
  chunk_best<kVals>(ord, chunk_ord, chunk_j);
  int slot_expert = 0;
  std::uint32_t slot_ord = 0;
  for (int k = 0; k < K; ++k) {
    const std::uint32_t m = grp.max_u32(chunk_ord);
    const int winner = __ffs(static_cast<int>(grp.ballot(chunk_ord == m))) - 1;
    const int winner_j = grp.broadcast(chunk_j, winner);
    if (grp.lane == k) {
      slot_expert = winner * kVals + winner_j;
      slot_ord = m;
    }
    if (grp.lane == winner) {
#pragma unroll
      for (int j = 0; j < kVals; ++j) {
        if (j == winner_j) ord[j] = 0;
      }
      chunk_best<kVals>(ord, chunk_ord, chunk_j);
    }
  }

  const bool has_slot = grp.lane < K;
  float w = 0.0f;
  if (!any_finite) slot_expert = grp.lane;
  const float slot_key = order_key_value(slot_ord);
  if (p.score_func == ScoreFunc::kTopkThenSoftmax) {
    const float top_key = grp.broadcast(slot_key, 0);
    const float top = is_nan(top_key) ? neg_inf() : top_key;
    const float term = (has_slot && any_finite) ? nan_to_zero(softmax_term(slot_key, top)) : 0.0f;
    w = safe_div(term, grp.sum(term));
  } else if (has_slot && any_finite) {
    switch (p.score_func) {
      case ScoreFunc::kSoftmax:
        w = safe_div(softmax_term(slot_key, max_key), softmax_sum);
        break;
      case ScoreFunc::kTopkThenSigmoid:
        w = sigmoid_f(slot_key);
        break;
      default:  // sigmoid, sqrtsoftplus: the bias-free score of the selected expert
        w = routing_score(p.score_func, softcapped(to_float(x[slot_expert]), p.softcap));
        break;
    }
    w = nan_to_zero(w);
  }
  if (p.renormalize) {
    float sum = grp.sum(w);
    if (sum == pos_inf()) {
      w = w == pos_inf() ? 1.0f : 0.0f;
      sum = grp.sum(w);
    }
    if (sum > 0.0f) w = w / sum;
  }
  float routed_sum = 0.0f;
  if (S > 0) routed_sum = grp.sum(w);
  const float rsf = p.routed_scaling_factor;
  if (has_slot) {
    out_w[grp.lane] = p.apply_rsf_on_output ? w * rsf : w;
    out_id[grp.lane] = static_cast<IdT>(map_routed_id(kp, slot_expert, row, grp.lane));
  }
  if (S > 0) {
    const float shared_w = p.apply_rsf_on_output ? routed_sum : routed_sum / rsf;
    for (int c = K + grp.lane; c < cols; c += kLanes) {
      out_w[c] = shared_w;
      out_id[c] = static_cast<IdT>(shared_expert_id(kp, c - K));
    }
  }
}

}  // namespace switchyard::kernels
