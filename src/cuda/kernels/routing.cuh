// The routing kernel: a group of kLanes lanes per row, kVals consecutive experts per lane, with
// kLanes * kVals = next_pow2(E). Every layout computes the same bits (routing_row.h), so the
// launcher picks the layout for speed alone. Framework-free: raw pointers in RoutingKernelParams.
//
// Per row: load -> keys -> (softmax max and pairwise sum) -> (group selection) -> K rounds of
// argmax over the group -> weights -> renormalise / shared / rsf -> placement -> store. Each step
// is the one of src/cpu/routing.cpp, with the same float operations.
#pragma once

#include <cstdint>

#include "../../common/dtype_convert.h"
#include "../../common/routing_kernel_params.h"
#include "../../common/routing_row.h"
#include "lane_group.cuh"
#include "pdl.cuh"
#include "routing_prefilter.cuh"

namespace switchyard::kernels {

// One word of each 64-byte parameter line of RoutingKernelParams (the first kernel parameter):
// for pdl_begin_warm().
__device__ __forceinline__ std::uint64_t routing_param_lines(
    const detail::RoutingKernelParams& kp) {
  return static_cast<std::uint64_t>(kp.p.num_experts) ^ static_cast<std::uint64_t>(kp.num_tokens) ^
         reinterpret_cast<std::uint64_t>(kp.weights);
}

inline constexpr int kRoutingThreads = 128;

// Output id i of the call (ids int32 or int64).
__device__ __forceinline__ void store_routing_id(const detail::RoutingKernelParams& kp,
                                                 bool ids_int64, std::int64_t i, std::int32_t id) {
  if (ids_int64) {
    static_cast<std::int64_t*>(kp.ids)[i] = id;
  } else {
    static_cast<std::int32_t*>(kp.ids)[i] = id;
  }
}

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

// raw[j] = logit of expert first + j (0 outside the row). 16-byte loads where aligned.
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

// bias[first + j] (0 outside the row, and everywhere without a bias); 16-byte loads where
// aligned.
template <int kVals>
__device__ __forceinline__ void load_bias(const float* bias, int first, int num_experts,
                                          float (&b)[kVals]) {
  if (bias == nullptr) {
#pragma unroll
    for (int j = 0; j < kVals; ++j) b[j] = 0.0f;
    return;
  }
  if constexpr (kVals % 4 == 0) {
    if ((reinterpret_cast<std::uintptr_t>(bias + first) & 15u) == 0 &&
        first + kVals <= num_experts) {
      const float4* src = reinterpret_cast<const float4*>(bias + first);
#pragma unroll
      for (int u = 0; u < kVals / 4; ++u) {
        const float4 v = __ldg(src + u);
        b[4 * u] = v.x;
        b[4 * u + 1] = v.y;
        b[4 * u + 2] = v.z;
        b[4 * u + 3] = v.w;
      }
      return;
    }
  }
#pragma unroll
  for (int j = 0; j < kVals; ++j) b[j] = first + j < num_experts ? __ldg(bias + first + j) : 0.0f;
}

// Rows below this are routed; the rows from it to num_tokens are padding (outputs 0 / -1). The
// device-side count where the caller gave one, else num_tokens.
__device__ __forceinline__ std::int64_t routing_non_padded_rows(
    const detail::RoutingKernelParams& kp) {
  return kp.num_tokens_non_padded ? static_cast<std::int64_t>(*kp.num_tokens_non_padded)
                                  : kp.num_tokens;
}

// Pairwise tree over a lane's aligned run of leaves: v[0] += v[s] ... (left + right).
template <int kStride, int kN>
__device__ __forceinline__ void pairwise_level(float (&v)[kN]) {
#pragma unroll
  for (int i = 0; i + kStride < kN; i += 2 * kStride) v[i] = v[i] + v[i + kStride];
  if constexpr (2 * kStride < kN) pairwise_level<2 * kStride, kN>(v);
}
template <int kN>
__device__ __forceinline__ float local_pairwise_sum(float (&v)[kN]) {
  if constexpr (kN > 1) pairwise_level<1, kN>(v);
  return v[0];
}

// One level of the chunk tournament: slot i meets slot i + kStride (i a multiple of 2*kStride);
// the lower slot, which holds lower expert indices, keeps ties.
template <int kStride, int kVals>
__device__ __forceinline__ void tournament_level(std::uint32_t (&o)[kVals], int (&jj)[kVals]) {
#pragma unroll
  for (int i = 0; i + kStride < kVals; i += 2 * kStride) {
    if (o[i + kStride] > o[i]) {
      o[i] = o[i + kStride];
      jj[i] = jj[i + kStride];
    }
  }
  if constexpr (2 * kStride < kVals) tournament_level<2 * kStride, kVals>(o, jj);
}

// Best (order, j) of a lane's chunk; ties keep the lower j.
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
  if constexpr (kVals > 1) tournament_level<1, kVals>(o, jj);
  best = o[0];
  best_j = jj[0];
}

// Bytes of dynamic shared memory of this launch (in host builds of kernel code: 0, or what the
// SIMT emulator's runner says). Kernels whose launcher may add drop_groups' words check that they
// are there.
__device__ __forceinline__ unsigned dynamic_smem_bytes() {
#if defined(__CUDA_ARCH__)
  unsigned bytes;
  asm("mov.u32 %0, %%dynamic_smem_size;" : "=r"(bytes));
  return bytes;
#elif defined(SY_SIMT_EMU)
  return emu::dynamic_smem_bytes;  // the emulator's runner sets it (tools/simt_emu/cuda_emu.h)
#else
  return 0u;
#endif
}

// Keeps the topk_groups best groups (ties: lower group index) and clears ord of the others.
// row_groups: this row's num_groups words of shared memory. row_words: null, or this row's
// kLanes * kVals words of shared memory for groups that are not whole runs of lanes (below).
template <int kLanes, int kVals>
__device__ __forceinline__ void drop_groups(const LaneGroup<kLanes>& grp, const RoutingParams& p,
                                            std::uint32_t (&ord)[kVals], std::uint32_t* row_groups,
                                            std::uint32_t* row_words = nullptr) {
  const int group_size = p.num_experts / p.num_groups;
  const int first = grp.lane * kVals;
  const int lanes_per_group = group_size / kVals;
  if (group_size % kVals == 0 && (lanes_per_group & (lanes_per_group - 1)) == 0) {
    // Each chunk lies in one group, a group is an aligned run of lanes: segmented butterfly.
    std::uint32_t b = 0, s = 0;
#pragma unroll
    for (int j = 0; j < kVals; ++j) detail::top2_insert(b, s, ord[j]);
    for (int off = 1; off < lanes_per_group; off *= 2) {
      const std::uint32_t ob = grp.xor_shuffle(b, off), os = grp.xor_shuffle(s, off);
      detail::top2_insert(b, s, ob);
      detail::top2_insert(b, s, os);
    }
    const int g = first / group_size;
    if (grp.lane % lanes_per_group == 0 && g < p.num_groups) {
      row_groups[g] = detail::order_key(detail::group_score_value(p.group_score, b, s));
    }
  } else if (row_words != nullptr) {
    // Groups that are not whole runs of lanes (DeepSeek-V2: 8 groups of 20 experts over chunks of
    // 8): every lane publishes its order keys, then lane g takes group g's top two from shared
    // memory, instead of one butterfly over all lanes per group. The same top two (top2_insert
    // keeps the two largest of a multiset whatever the order of insertion).
#pragma unroll
    for (int j = 0; j < kVals; ++j) {
      if (first + j < p.num_experts) row_words[first + j] = ord[j];
    }
    __syncwarp(grp.mask);
    for (int g = grp.lane; g < p.num_groups; g += kLanes) {
      std::uint32_t b = 0, s = 0;
      const int e0 = g * group_size;
      for (int e = e0; e < e0 + group_size; ++e) detail::top2_insert(b, s, row_words[e]);
      row_groups[g] = detail::order_key(detail::group_score_value(p.group_score, b, s));
    }
  } else {
    int group_of[kVals];
#pragma unroll
    for (int j = 0; j < kVals; ++j) group_of[j] = (first + j) / group_size;
    for (int g = 0; g < p.num_groups; ++g) {
      std::uint32_t b = 0, s = 0;
#pragma unroll
      for (int j = 0; j < kVals; ++j) {
        if (group_of[j] == g) detail::top2_insert(b, s, ord[j]);
      }
#pragma unroll
      for (int off = 1; off < kLanes; off *= 2) {
        const std::uint32_t ob = grp.xor_shuffle(b, off), os = grp.xor_shuffle(s, off);
        detail::top2_insert(b, s, ob);
        detail::top2_insert(b, s, os);
      }
      if (grp.lane == 0)
        row_groups[g] = detail::order_key(detail::group_score_value(p.group_score, b, s));
    }
  }
  __syncwarp(grp.mask);
  unsigned kept = 0;
  for (int r = 0; r < p.topk_groups; ++r) {
    std::uint64_t best = 0;
    for (int g = 0; g < p.num_groups; ++g) {
      const std::uint64_t c = ((kept >> g) & 1u) ? 0 : detail::candidate(row_groups[g], g);
      best = c > best ? c : best;
    }
    kept |= 1u << detail::candidate_expert(best);
  }
#pragma unroll
  for (int j = 0; j < kVals; ++j) {
    if (first + j < p.num_experts && !((kept >> ((first + j) / group_size)) & 1u)) ord[j] = 0;
  }
}

// Slot sums: slots are leaves of the 32-leaf pairwise tree, lane l holding [l*kSlots, +kSlots).
template <int kLanes, int kSlots>
__device__ __forceinline__ float slot_sum(const LaneGroup<kLanes>& grp, const float (&w)[kSlots]) {
  float v[kSlots];
#pragma unroll
  for (int i = 0; i < kSlots; ++i) v[i] = w[i];
  return grp.sum(local_pairwise_sum<kSlots>(v));
}

// The weights and stores of one row after its selection, shared by the lane-group kernel and the
// quad kernel (routing_quad.cuh): slot i of lane l is output column l * kSlots + i, holding expert
// slot_expert[i] with order key slot_ord[i]. prefiltered: slot_score holds the exact bias-free
// scores of the selected experts (the sigmoid weights); otherwise the weights are recomputed here
// from the order keys (softmax: max_key and softmax_sum of the row) or the logits.
template <typename T, int kLanes, int kSlots, typename Mark>
__device__ __forceinline__ void routing_finish_row(
    const LaneGroup<kLanes>& grp, const detail::RoutingKernelParams& kp, const bool ids_int64,
    const std::int64_t row, const T* x, const bool any_finite, const bool prefiltered,
    const int (&slot_expert)[kSlots], const std::uint32_t (&slot_ord)[kSlots],
    const float (&slot_score)[kSlots], const float max_key, const float softmax_sum, Mark mark) {
  using namespace detail;
  const RoutingParams& p = kp.p;
  const int K = p.top_k, S = p.num_shared_experts, cols = K + S;
  float* out_w = kp.weights + row * cols;
  auto store_id = [&](int c, std::int32_t id) {
    store_routing_id(kp, ids_int64, row * cols + c, id);
  };
  float w[kSlots];
  const float top_key = grp.broadcast(order_key_value(slot_ord[0]), 0);
  const float softmax_top = is_nan(top_key) ? neg_inf() : top_key;
  mark(4);
  // Weights, one uniform branch per score function (hoisted out of the slot loop, as above).
  const ScoreFunc f = p.score_func;
#pragma unroll
  for (int i = 0; i < kSlots; ++i) w[i] = 0.0f;
  if (prefiltered) {
#pragma unroll
    for (int i = 0; i < kSlots; ++i) w[i] = grp.lane * kSlots + i < K ? slot_score[i] : 0.0f;
  } else if (f == ScoreFunc::kSigmoid) {
    // The bias-free score of the selected expert, recomputed from its logit.
#pragma unroll
    for (int i = 0; i < kSlots; ++i) {
      if (grp.lane * kSlots + i < K && any_finite) {
        w[i] = sigmoid_f(softcapped(to_float(x[slot_expert[i]]), p.softcap));
      }
    }
  } else if (f == ScoreFunc::kSqrtSoftplus) {
#pragma unroll
    for (int i = 0; i < kSlots; ++i) {
      if (grp.lane * kSlots + i < K && any_finite) {
        w[i] = exact_sqrt(softplus_f(softcapped(to_float(x[slot_expert[i]]), p.softcap)));
      }
    }
  } else {
#pragma unroll
    for (int i = 0; i < kSlots; ++i) {
      if (grp.lane * kSlots + i < K && any_finite) {
        const float key_k = order_key_value(slot_ord[i]);
        if (f == ScoreFunc::kSoftmax) {
          w[i] = safe_div(softmax_term(key_k, max_key), softmax_sum);
        } else if (f == ScoreFunc::kTopkThenSoftmax) {
          w[i] = softmax_term(key_k, softmax_top);  // normalised below
        } else {
          w[i] = sigmoid_f(key_k);
        }
      }
    }
  }
#pragma unroll
  for (int i = 0; i < kSlots; ++i) w[i] = nan_to_zero(w[i]);
  if (p.score_func == ScoreFunc::kTopkThenSoftmax) {
    const float sum = slot_sum<kLanes, kSlots>(grp, w);
#pragma unroll
    for (int i = 0; i < kSlots; ++i) w[i] = safe_div(w[i], sum);
  }
  if (p.renormalize) {
    float sum = slot_sum<kLanes, kSlots>(grp, w);
    if (sum == pos_inf()) {
#pragma unroll
      for (int i = 0; i < kSlots; ++i) w[i] = w[i] == pos_inf() ? 1.0f : 0.0f;
      sum = slot_sum<kLanes, kSlots>(grp, w);
    }
    if (sum > 0.0f) {
#pragma unroll
      for (int i = 0; i < kSlots; ++i) w[i] = div_f(w[i], sum);
    }
  }
  mark(5);
  const float routed_sum = S > 0 ? slot_sum<kLanes, kSlots>(grp, w) : 0.0f;
  const float rsf = p.routed_scaling_factor;
#pragma unroll
  for (int i = 0; i < kSlots; ++i) {
    const int k = grp.lane * kSlots + i;
    if (k < K) {
      out_w[k] = p.apply_rsf_on_output ? w[i] * rsf : w[i];
      store_id(k, map_routed_id(kp, slot_expert[i], row, k));
    }
  }
  if (S > 0) {
    const float shared_w = p.apply_rsf_on_output ? routed_sum : div_f(routed_sum, rsf);
    for (int c = K + grp.lane; c < cols; c += kLanes) {
      out_w[c] = shared_w;
      store_id(c, shared_expert_id(kp, c - K));
    }
  }
  mark(6);
}

// kTrace (diagnostics, tests/routing_trace_test.cu only; the library's instances have it off, so
// their code is unchanged): row 0's lane 0 writes clock64() at each phase boundary into
// trace[0..6].
// kPrefilter (kLanes == 32, 2 <= kVals <= 16; layout code heuristics::kRoutingPrefilterCode): the
// approximate pre-filter with an exact finish (routing_prefilter.cuh) selects the experts of
// kSigmoid rows without softcap; rows it cannot settle, and other score functions, take the exact
// path below. Same bits either way.
template <typename T, int kLanes, int kVals, bool kTrace, bool kPrefilter>
__device__ __forceinline__ void route_row_lanes(const detail::RoutingKernelParams& kp,
                                                const bool vec_ok, const bool ids_int64,
                                                const std::int64_t row, const int row_in_block,
                                                long long* trace) {
  using namespace detail;
  static_assert(kLanes * kVals <= kMaxRoutingExperts, "layout");
  static_assert(!kPrefilter || (kLanes == 32 && kVals >= 2 && kVals <= 16), "pre-filter layout");
  constexpr int kSlots = kRoutingSlotLeaves / kLanes;  // output columns per lane
  // [rows per block][num_groups], then, where the launcher added it (grouped rows whose groups
  // are not whole runs of lanes), [rows per block][kLanes * kVals] for drop_groups.
  extern __shared__ std::uint32_t group_smem[];

  const RoutingParams& p = kp.p;
  const LaneGroup<kLanes> grp;
  auto mark = [&](int point) {
    if constexpr (kTrace) {
      if (row == 0 && grp.lane == 0) trace[point] = clock64();
    }
  };
  mark(0);
  const int E = p.num_experts, K = p.top_k, S = p.num_shared_experts, cols = K + S;
  float* out_w = kp.weights + row * cols;
  auto store_id = [&](int c, std::int32_t id) {
    if (ids_int64) {
      static_cast<std::int64_t*>(kp.ids)[row * cols + c] = id;
    } else {
      static_cast<std::int32_t*>(kp.ids)[row * cols + c] = id;
    }
  };

  const std::int64_t non_padded = routing_non_padded_rows(kp);
  if (row >= non_padded) {
    for (int c = grp.lane; c < cols; c += kLanes) {
      out_w[c] = 0.0f;
      store_id(c, -1);
    }
    return;
  }

  const T* x = static_cast<const T*>(kp.logits) + row * kp.row_stride;
  const int first = grp.lane * kVals;
  float raw[kVals], bias[kVals];
  load_chunk<T, kVals>(x, first, E, vec_ok, raw);
  mark(1);
  load_bias<kVals>(kp.bias, first, E, bias);
  bool any_finite = false;
#pragma unroll
  for (int j = 0; j < kVals; ++j) any_finite = any_finite || (first + j < E && is_finite(raw[j]));
  // (The exact instances take the ballot after the keys, where it always was: same code as before
  // the pre-filter existed.)
  if constexpr (kPrefilter) any_finite = grp.ballot(any_finite) != 0u;

  int slot_expert[kSlots];
  std::uint32_t slot_ord[kSlots];
  // The answer for rows with no finite logit (set where the exact instances always set it, after
  // the keys, so that their code stays as it was before the pre-filter existed).
  auto init_slots = [&]() {
#pragma unroll
    for (int i = 0; i < kSlots; ++i) {
      slot_expert[i] = grp.lane * kSlots + i;
      slot_ord[i] = 0;
    }
  };
  if constexpr (kPrefilter) init_slots();
  float max_key = neg_inf(), softmax_sum = 0.0f;
  // Pre-filter path: exact scores of the selected experts (the sigmoid weights).
  bool prefiltered = false;
  float slot_score[kSlots];
#pragma unroll
  for (int i = 0; i < kSlots; ++i) slot_score[i] = 0.0f;
  if constexpr (kPrefilter) {
    __shared__ std::uint32_t prefilter_cands[kRoutingThreads];  // 32 words per row
    if (any_finite && prefilter_applies(p)) {
      mark(2);
      if constexpr (kSlots == 1) {
        prefiltered = prefilter_select<T, kVals>(grp, p, x, kp.bias, raw, bias,
                                                 prefilter_cands + row_in_block * 32,
                                                 slot_expert[0], slot_ord[0], slot_score[0]);
      }
      mark(3);
    }
  }
  if (!prefiltered) {
    float key[kVals];
    std::uint32_t ord[kVals];
    // key = routing_key(p, raw, bias), with the uniform branches hoisted out of the element loops:
    // inside them the compiler would if-convert every score function for every element.
    if (p.softcap > 0.0f) {
#pragma unroll
      for (int j = 0; j < kVals; ++j) raw[j] = softcapped(raw[j], p.softcap);
    }
    if (p.score_func == ScoreFunc::kSigmoid) {
#pragma unroll
      for (int j = 0; j < kVals; ++j) key[j] = sigmoid_f(raw[j]) + bias[j];
    } else if (p.score_func == ScoreFunc::kSqrtSoftplus) {
#pragma unroll
      for (int j = 0; j < kVals; ++j) key[j] = exact_sqrt(softplus_f(raw[j])) + bias[j];
    } else {
#pragma unroll
      for (int j = 0; j < kVals; ++j) key[j] = raw[j] + bias[j];
    }
#pragma unroll
    for (int j = 0; j < kVals; ++j) ord[j] = first + j < E ? order_key(key[j]) : 0u;
    if constexpr (!kPrefilter) any_finite = grp.ballot(any_finite) != 0u;

    mark(2);
    if (p.score_func == ScoreFunc::kSoftmax) {
#pragma unroll
      for (int j = 0; j < kVals; ++j) {
        if (first + j < E) max_key = detail::max_ignore_nan(max_key, key[j]);
      }
      max_key = grp.max_ignore_nan(max_key);
      float terms[kVals];
#pragma unroll
      for (int j = 0; j < kVals; ++j) {
        terms[j] = first + j < E ? softmax_term(key[j], max_key) : 0.0f;
      }
      softmax_sum = grp.sum(local_pairwise_sum<kVals>(terms));
    }
    if (p.group_score != GroupScore::kNone) {
      const unsigned rows = blockDim.x / kLanes;
      std::uint32_t* words =
          dynamic_smem_bytes() >= rows * (p.num_groups + kLanes * kVals) * 4u
              ? group_smem + rows * p.num_groups + row_in_block * (kLanes * kVals)
              : nullptr;
      drop_groups<kLanes, kVals>(grp, p, ord, group_smem + row_in_block * p.num_groups, words);
    }

    mark(3);
    // K rounds of argmax over the group: (highest order, then lowest expert index).
    std::uint32_t chunk_ord;
    int chunk_j;
    chunk_best<kVals>(ord, chunk_ord, chunk_j);
    if constexpr (!kPrefilter) init_slots();
    if (any_finite) {
      for (int k = 0; k < K; ++k) {
        std::uint32_t m;
        int winner;
        if constexpr (kLanes == 32) {
          m = __reduce_max_sync(grp.mask, chunk_ord);
          winner = static_cast<int>(__reduce_min_sync(
              grp.mask, chunk_ord == m ? static_cast<unsigned>(first + chunk_j) : 0xffffffffu));
        } else {
          const std::uint64_t c = grp.max_candidate(candidate(chunk_ord, first + chunk_j));
          m = candidate_order(c);
          winner = candidate_expert(c);
        }
        // Written as selects on every slot register: an "if (i == k % kSlots)" store would be
        // folded back into a dynamically indexed store, which lives in local memory.
        const bool owner = grp.lane == k / kSlots;
#pragma unroll
        for (int i = 0; i < kSlots; ++i) {
          const bool here = owner && i == (k & (kSlots - 1));
          slot_expert[i] = here ? winner : slot_expert[i];
          slot_ord[i] = here ? m : slot_ord[i];
        }
        if (winner / kVals == grp.lane) {
          const int jw = winner - first;
#pragma unroll
          for (int j = 0; j < kVals; ++j) {
            if (j == jw) ord[j] = 0;
          }
          chunk_best<kVals>(ord, chunk_ord, chunk_j);
        }
      }
    }
  }

  routing_finish_row<T, kLanes, kSlots>(grp, kp, ids_int64, row, x, any_finite, prefiltered,
                                        slot_expert, slot_ord, slot_score, max_key, softmax_sum,
                                        mark);
}

template <typename T, int kLanes, int kVals, bool kTrace = false, bool kPrefilter = false>
__global__ void __launch_bounds__(kRoutingThreads, 4)
    routing_kernel(const detail::RoutingKernelParams kp, const bool vec_ok, const bool ids_int64,
                   long long* trace = nullptr) {
  pdl_begin();  // first: kernels/pdl.cuh
  const int row_in_block = static_cast<int>(threadIdx.x) / kLanes;
  const std::int64_t row =
      static_cast<std::int64_t>(blockIdx.x) * (kRoutingThreads / kLanes) + row_in_block;
  if (row >= kp.num_tokens) return;  // uniform per lane group
  route_row_lanes<T, kLanes, kVals, kTrace, kPrefilter>(kp, vec_ok, ids_int64, row, row_in_block,
                                                        trace);
}

}  // namespace switchyard::kernels
