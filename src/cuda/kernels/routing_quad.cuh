// The routing kernel for many rows of 97..384 experts: a quad of 4 lanes per row, kVals
// consecutive experts per lane, 32 rows per block of 128 threads (layout code
// heuristics::kRoutingQuadCode; the heuristic's choice from 8192 rows, 4096 above 256 experts,
// where detail::routing_quad_vals serves the routing: heuristics::routing_quad_pays).
//
// Why: a warp per row (routing.cuh) spends its instructions on cross-lane steps (K argmax rounds,
// group butterflies, ballots), all issued once per row by 32 lanes. Here most of the work is
// register work of one lane over its kVals experts, and the cross-lane steps are shuffles among
// 4 lanes, issued once for the 8 rows of a warp.
//
// Per row (quad_route_row):
//  1. Keys v of the lane's experts: exact keys raw + bias (kApprox false: softmax and the
//     top-k-then-softmax / -sigmoid functions, whose selection keys need no transcendental), or
//     approximate keys a = approx_sigmoid(raw) + bias (kApprox: kSigmoid), within the bound
//     |a - k| <= delta(a) = 0.86 * 2^-20 + 2^-22.9 |a| of the exact key k (proof:
//     routing_prefilter.cuh). A row with a non-finite key, or with no finite logit
//     (sigmoid(-Inf) + bias is finite), takes the exact path (step 6).
//  2. Groups (kGroupSize 32, kApprox only; a group is an aligned run of 32 experts of one lane):
//     each group's top-3 of a (its top-2 b >= s for the bounds). With eps(a) = 2^-18 + 2^-20 |a|
//     (>= 4.6 delta(a)) and the group bounds lo_g(a) = a - 2 eps(a), hi_g(a) = a + 2 eps(a)
//     applied to b and s: the group's best exact key is <= hi_g(b) and its best two are >= lo_g(b),
//     lo_g(s) (order statistics are monotone; the doubled eps absorbs the rounding of eps itself,
//     which makes a - eps(a) monotone only up to a few ulps of eps), so the group
//     score G (top-2 sum or max, monotone) satisfies G(lo_g) <= G(k) <= G(hi_g). As in the
//     pre-filter: L_G = the topk_groups-th largest G(lo_g); if exactly topk_groups groups have
//     G(hi_g) >= L_G they are the kept groups, else the exact path.
//  3. Pool: the lanes' top-3 (K > 4) or top-2 keys, or the kept groups' top-3: distinct selectable
//     experts. A = the K-th largest pool key (K <= 8 <= pool size). At least K experts have
//     v >= A.
//  4. Threshold: exact keys: T = A, and every expert of the exact top K has v >= A. Approximate
//     keys: the K-th best exact key is >= A - delta(A) > L = A - 2 eps(A); an expert with
//     a < T = L - 2 eps(L) has k <= a + delta(a) < L (for a < 0 with |a| > |L|, delta grows by at
//     most 2^-22.9 (L - a)), so it is not in the exact top K. Candidates: v >= T. Each lane
//     writes its candidates' ids to shared memory (at most kQuadLaneCands per lane,
//     kQuadMaxCands per row, else the exact path).
//  5. Exact finish: the candidates are dealt round-robin over the 4 lanes; each computes the exact
//     key (the CPU's routing_key) and, for sigmoid, the exact score; each candidate's rank among
//     the row's candidates by (order key, lower index) places it in output column `rank` if
//     rank < K. The exact top K is inside the candidate set and the order is total, so this is the
//     CPU's selection bit for bit; the weights and stores are routing_finish_row's (routing.cuh),
//     with the softmax max and pairwise sum of the lane-group kernel (lanes x kVals = next_pow2(E)
//     for softmax: the CPU's tree).
//  6. Rows not settled (a non-finite key, ambiguous groups, too many candidates): after the quad
//     pass, each warp routes its unsettled rows one by one with all 32 lanes on the exact
//     lane-group path (route_row_lanes, kPrefilter off): the same bits, rarely taken (real logits
//     have no NaN; ties at the threshold only add candidates).
#pragma once

#include <cstdint>

#include "../../common/dtype_convert.h"
#include "../../common/exact_math.h"
#include "../../common/routing_kernel_params.h"
#include "../../common/routing_row.h"
#include "approx_sigmoid.cuh"
#include "lane_group.cuh"
#include "routing.cuh"

// Diagnostics hook of the host emulator (rows settled / sent to the exact path, candidates).
#ifndef SY_QUAD_STATS
#define SY_QUAD_STATS(lane, ok, n) ((void)0)
#endif

namespace switchyard::kernels {

inline constexpr int kQuadLanes = 4;
inline constexpr int kQuadRows = kRoutingThreads / kQuadLanes;  // rows per block
inline constexpr int kQuadLaneCands = 16;                       // candidates per lane
inline constexpr int kQuadMaxCands = 32;                        // candidates per row
inline constexpr int kQuadMaxK = 8;
// Output columns per lane: lane l holds columns 2l, 2l + 1 (K <= 8). The slot sums of
// routing_finish_row are then the pairwise tree over those 8 leaves, the CPU's 32-leaf tree (its
// other leaves are zero).
inline constexpr int kQuadSlots = kQuadMaxK / kQuadLanes;  // output columns per lane

// Per row; every row's array is padded by one word (or two) so that the 8 rows of a warp reading
// the same index hit different banks.
struct QuadSmem {
  std::uint16_t lane_cand[kQuadRows][kQuadLanes * kQuadLaneCands + 2];  // lane q: [q * 16, +16)
  std::uint64_t cand[kQuadRows][kQuadMaxCands + 1];                     // candidate(order, expert)
  float score[kQuadRows][kQuadMaxCands + 1];                            // exact bias-free scores
  std::uint64_t slot[kQuadRows][kQuadMaxK + 1];  // output column -> candidate
  float slot_score[kQuadRows][kQuadMaxK + 1];
};

// Merge x into the three largest floats b >= s >= t (duplicates kept, as top2_insert).
__device__ __forceinline__ void quad_top3(float& b, float& s, float& t, float x) {
  const float hi = fmaxf(b, x), lo = fminf(b, x);
  const float hi2 = fmaxf(s, lo), lo2 = fminf(s, lo);
  b = hi;
  s = hi2;
  t = fmaxf(t, lo2);
}

// a - m * eps(a) (m = 2 or -2), clamped to the finite range: the bounds of steps 2 and 4.
__device__ __forceinline__ float quad_shift(float a, float m) {
  const float abs_a = detail::bits_to_float(detail::float_to_bits(a) & 0x7fffffffu);
  const float eps = abs_a * 0x1p-20f + 0x1p-18f;
  return detail::exact_fmin(detail::exact_fmax(a - m * eps, -0x1.fffffep127f), 0x1.fffffep127f);
}

// v[j] = f(v[j]) + bias[first + j], bias loaded 16 bytes at a time where aligned.
template <int kVals, typename F>
__device__ __forceinline__ void quad_keys(const float* bias, int first, int num_experts,
                                          float (&v)[kVals], F f) {
  if (bias == nullptr) {
#pragma unroll
    for (int j = 0; j < kVals; ++j) v[j] = f(v[j]);
    return;
  }
  if ((reinterpret_cast<std::uintptr_t>(bias + first) & 15u) == 0 && first + kVals <= num_experts) {
    const float4* b4 = reinterpret_cast<const float4*>(bias + first);
#pragma unroll
    for (int u = 0; u < kVals / 4; ++u) {
      const float4 b = __ldg(b4 + u);
      v[4 * u] = f(v[4 * u]) + b.x;
      v[4 * u + 1] = f(v[4 * u + 1]) + b.y;
      v[4 * u + 2] = f(v[4 * u + 2]) + b.z;
      v[4 * u + 3] = f(v[4 * u + 3]) + b.w;
    }
    return;
  }
#pragma unroll
  for (int j = 0; j < kVals; ++j) {
    v[j] = f(v[j]) + (first + j < num_experts ? __ldg(bias + first + j) : 0.0f);
  }
}

// The K-th largest of the quad's pool keys (kPool per lane), with multiplicity: each lane counts,
// for its own keys, how many keys of the whole pool are >= them.
template <int kPool>
__device__ __forceinline__ float quad_kth(const LaneGroup<kQuadLanes>& grp,
                                          const float (&pool)[kPool], int k) {
  float all_pool[kQuadLanes * kPool];
#pragma unroll
  for (int q = 0; q < kQuadLanes; ++q) {
#pragma unroll
    for (int i = 0; i < kPool; ++i) all_pool[q * kPool + i] = grp.broadcast(pool[i], q);
  }
  float kth = detail::neg_inf();
#pragma unroll
  for (int i = 0; i < kPool; ++i) {
    int at_least = 0;
#pragma unroll
    for (int jj = 0; jj < kQuadLanes * kPool; ++jj) at_least += all_pool[jj] >= pool[i] ? 1 : 0;
    kth = at_least >= k && pool[i] > kth ? pool[i] : kth;
  }
  return grp.max_ignore_nan(kth);
}

// Steps 1-5 for one row (a quad). Returns false when the row must take the exact path (uniform
// across the quad); true when its outputs are written.
template <typename T, int kVals, bool kApprox, int kGroupSize>
__device__ __forceinline__ bool quad_route_row(const detail::RoutingKernelParams& kp,
                                               const bool vec_ok, const bool ids_int64,
                                               const std::int64_t row, const int r, QuadSmem& sm) {
  using namespace detail;
  static_assert(kVals % 32 == 0 && kVals <= 96, "layout");
  static_assert(kGroupSize == 0 || (kApprox && kVals % (kGroupSize > 0 ? kGroupSize : 1) == 0),
                "groups");
  const RoutingParams& p = kp.p;
  const LaneGroup<kQuadLanes> grp;
  const int E = p.num_experts, K = p.top_k, cols = K + p.num_shared_experts;

  const std::int64_t non_padded = routing_non_padded_rows(kp);
  if (row >= non_padded) {
    for (int c = grp.lane; c < cols; c += kQuadLanes) {
      kp.weights[row * cols + c] = 0.0f;
      store_routing_id(kp, ids_int64, row * cols + c, -1);
    }
    return true;
  }

  // 1. Keys; `fin` turns NaN if any key is not finite.
  const T* x = static_cast<const T*>(kp.logits) + row * kp.row_stride;
  const int first = grp.lane * kVals;
  float v[kVals];
  load_chunk<T, kVals>(x, first, E, vec_ok, v);
  if constexpr (kApprox) {
    // A row with no finite logit takes the exact path (ids 0..K-1, weight 0), although its keys
    // can all be finite (sigmoid(-Inf) + bias). The smallest |logit| is finite iff one is.
    // Past the row load_chunk gives 0, so only a lane whose values run past E tests the bound.
    // Four partial minima: a chain of kVals / 4 dependent steps, not kVals.
    float least = pos_inf();
    if (first + kVals <= E) {
      float m[4] = {pos_inf(), pos_inf(), pos_inf(), pos_inf()};
#pragma unroll
      for (int j = 0; j < kVals; ++j) m[j % 4] = fminf(m[j % 4], fabsf(v[j]));
      least = fminf(fminf(m[0], m[1]), fminf(m[2], m[3]));
    } else {
#pragma unroll
      for (int j = 0; j < kVals; ++j) least = fminf(least, first + j < E ? fabsf(v[j]) : pos_inf());
    }
    if (grp.ballot(least < pos_inf()) == 0u) {
      SY_QUAD_STATS(grp.lane, false, 0);
      return false;
    }
    quad_keys<kVals>(kp.bias, first, E, v, [](float raw) { return approx_sigmoid(raw); });
  } else {
    quad_keys<kVals>(kp.bias, first, E, v, [](float raw) { return raw; });
  }
  float fin = 0.0f;
#pragma unroll
  for (int j = 0; j < kVals; ++j) fin = fmaf(v[j], 0.0f, fin);  // (outside the row: keys of 0)
  if (grp.ballot(is_nan(fin)) != 0u) {
    SY_QUAD_STATS(grp.lane, false, 0);
    return false;
  }
  if (first + kVals > E) {
#pragma unroll
    for (int j = 0; j < kVals; ++j) v[j] = first + j < E ? v[j] : neg_inf();
  }

  // 2-3. Groups and the pool of K-th-best candidates.
  // Pool keys per lane: the top-3 of each of its groups, or its own top-3.
  constexpr int kPool = kGroupSize > 0 ? 3 * kVals / (kGroupSize > 0 ? kGroupSize : 1) : 3;
  float pool[kPool];
  float lane_max = neg_inf();
  if constexpr (kGroupSize > 0) {
    constexpr int kGroups = kVals / kGroupSize;  // per lane
    float gb[kGroups], gs[kGroups], gt[kGroups];
    std::uint32_t glo[kGroups], ghi[kGroups];
#pragma unroll
    for (int g = 0; g < kGroups; ++g) {
      gb[g] = neg_inf();
      gs[g] = neg_inf();
      gt[g] = neg_inf();
#pragma unroll
      for (int j = g * kGroupSize; j < (g + 1) * kGroupSize; ++j) {
        quad_top3(gb[g], gs[g], gt[g], v[j]);
      }
      const bool valid = grp.lane * kGroups + g < p.num_groups;
      glo[g] = valid
                   ? order_key(group_score_value(p.group_score, order_key(quad_shift(gb[g], 2.0f)),
                                                 order_key(quad_shift(gs[g], 2.0f))))
                   : 0u;
      ghi[g] = valid
                   ? order_key(group_score_value(p.group_score, order_key(quad_shift(gb[g], -2.0f)),
                                                 order_key(quad_shift(gs[g], -2.0f))))
                   : 0u;
    }
    // L_G: the topk_groups-th largest lower bound (with multiplicity), counted per own group
    // against every group of the row.
    std::uint32_t all_lo[kQuadLanes * kGroups];
#pragma unroll
    for (int q = 0; q < kQuadLanes; ++q) {
#pragma unroll
      for (int g = 0; g < kGroups; ++g) all_lo[q * kGroups + g] = grp.broadcast(glo[g], q);
    }
    std::uint32_t level = 0u;
#pragma unroll
    for (int g = 0; g < kGroups; ++g) {
      int at_least = 0;
#pragma unroll
      for (int i = 0; i < kQuadLanes * kGroups; ++i) at_least += all_lo[i] >= glo[g] ? 1 : 0;
      level = at_least >= p.topk_groups && glo[g] > level ? glo[g] : level;
    }
    level = grp.max_u32(level);
    int kept_here = 0;
#pragma unroll
    for (int g = 0; g < kGroups; ++g) kept_here += ghi[g] >= level && glo[g] != 0u ? 1 : 0;
    int kept_total = kept_here;
#pragma unroll
    for (int off = 1; off < kQuadLanes; off *= 2) kept_total += grp.xor_shuffle(kept_total, off);
    if (level == 0u || kept_total != p.topk_groups) {
      SY_QUAD_STATS(grp.lane, false, 0);
      return false;
    }
#pragma unroll
    for (int g = 0; g < kGroups; ++g) {
      const bool kept = ghi[g] >= level && glo[g] != 0u;
      pool[3 * g] = kept ? gb[g] : neg_inf();
      pool[3 * g + 1] = kept ? gs[g] : neg_inf();
      pool[3 * g + 2] = kept ? gt[g] : neg_inf();
      if (!kept) {
#pragma unroll
        for (int j = g * kGroupSize; j < (g + 1) * kGroupSize; ++j) v[j] = neg_inf();
      }
      lane_max = kept ? fmaxf(lane_max, gb[g]) : lane_max;
    }
  } else {
    pool[0] = neg_inf();
    pool[1] = neg_inf();
    pool[2] = neg_inf();
    if (K > 4) {
#pragma unroll
      for (int j = 0; j < kVals; ++j) quad_top3(pool[0], pool[1], pool[2], v[j]);
    } else {  // (top-2: 8 pool keys are plenty for K <= 4, and cheaper)
#pragma unroll
      for (int j = 0; j < kVals; ++j) {
        const float hi = fmaxf(pool[0], v[j]), lo = fminf(pool[0], v[j]);
        pool[0] = hi;
        pool[1] = fmaxf(pool[1], lo);
      }
    }
    lane_max = pool[0];
  }
  // A: the K-th largest pool key, counted per own pool key against the whole pool. Top-3 rather
  // than top-2 per lane (K > 4) or group: a tighter threshold (simulated on the benchmark's
  // logits, the slowest quad of a warp: ~11 candidates instead of ~21 for Kimi K2 and Qwen3, ~9
  // instead of ~15 for DeepSeek-V3), and the exact keys and ranks cost as much as that quad's
  // candidates. Measured (H200, 32768 rows): Kimi K2 59.2 -> 42.0 us, Qwen3 31.5 -> 23.4,
  // DeepSeek-V3 39.2 -> 36.5; Llama 4 (K = 1) 9.9 -> 10.6, hence top-2 for K <= 4.
  const float kth = quad_kth<kPool>(grp, pool, K);

  // 4. Threshold and candidates.
  // (kth = -Inf: fewer than K selectable pool keys; every finite key is then a candidate.)
  float thr = kth == neg_inf() ? -0x1.fffffep127f : kth;
  if constexpr (kApprox) thr = quad_shift(quad_shift(thr, 2.0f), 2.0f);
  // Branch-free: a bit mask of the lane's candidates first, then one store per set bit.
  std::uint16_t* mine = sm.lane_cand[r] + grp.lane * kQuadLaneCands;
  int count = 0;
#pragma unroll
  for (int w = 0; w < kVals / 32; ++w) {
    unsigned m = 0u;
#pragma unroll
    for (int b = 0; b < 32; ++b) m |= v[w * 32 + b] >= thr ? 1u << b : 0u;
    while (m != 0u) {
      const int b = __ffs(m) - 1;
      m &= m - 1u;
      mine[count < kQuadLaneCands ? count : kQuadLaneCands - 1] =
          static_cast<std::uint16_t>(first + w * 32 + b);
      ++count;
    }
  }
  int counts[kQuadLanes], total = 0, worst = 0;
#pragma unroll
  for (int q = 0; q < kQuadLanes; ++q) {
    counts[q] = grp.broadcast(count, q);
    total += counts[q];
    worst = counts[q] > worst ? counts[q] : worst;
  }
  if (worst > kQuadLaneCands || total > kQuadMaxCands || total < K) {
    SY_QUAD_STATS(grp.lane, false, total);
    return false;
  }
  SY_QUAD_STATS(grp.lane, true, total);
  __syncwarp(grp.mask);

  // 5. Exact keys of the candidates (round-robin over the lanes), ranks, output columns.
  const float* bias = kp.bias;
  for (int i = grp.lane; i < total; i += kQuadLanes) {
    int q = 0, base = 0;
#pragma unroll
    for (int qq = 0; qq < kQuadLanes - 1; ++qq) {
      if (q == qq && i >= base + counts[qq]) {  // entry i lies past lane qq's
        base += counts[qq];
        q = qq + 1;
      }
    }
    const int e = sm.lane_cand[r][q * kQuadLaneCands + i - base];
    const float raw = to_float(x[e]);
    const float b = bias ? __ldg(bias + e) : 0.0f;
    float score = 0.0f, key;
    if constexpr (kApprox) {
      score = sigmoid_f(raw);
      key = score + b;
    } else {
      key = raw + b;
    }
    sm.cand[r][i] = candidate(order_key(key), e);
    sm.score[r][i] = score;
  }
  // Entries past `total`, up to a multiple of 4, rank below every candidate (0).
  if (total + grp.lane < ((total + 3) & ~3)) sm.cand[r][total + grp.lane] = 0u;
  __syncwarp(grp.mask);
  for (int i = grp.lane; i < total; i += kQuadLanes) {
    const std::uint64_t c = sm.cand[r][i];
    int rank = 0;
    for (int jj = 0; jj < total; jj += 4) {
#pragma unroll
      for (int u = 0; u < 4; ++u) rank += sm.cand[r][jj + u] > c ? 1 : 0;
    }
    if (rank < K) {
      sm.slot[r][rank] = c;
      sm.slot_score[r][rank] = sm.score[r][i];
    }
  }
  __syncwarp(grp.mask);

  int slot_expert[kQuadSlots];
  std::uint32_t slot_ord[kQuadSlots];
  float slot_score[kQuadSlots];
#pragma unroll
  for (int i = 0; i < kQuadSlots; ++i) {
    const int k = grp.lane * kQuadSlots + i;
    const bool have = k < K;
    const std::uint64_t c = have ? sm.slot[r][k] : 0u;
    slot_expert[i] = have ? candidate_expert(c) : k;
    slot_ord[i] = have ? candidate_order(c) : 0u;
    slot_score[i] = have ? sm.slot_score[r][k] : 0.0f;
  }

  // Softmax: the lane-group kernel's max and pairwise sum (lanes x kVals = next_pow2(E)).
  float max_key = neg_inf(), softmax_sum = 0.0f;
  if (!kApprox && p.score_func == ScoreFunc::kSoftmax) {
    max_key = grp.max_ignore_nan(lane_max);
    float terms[kVals];
#pragma unroll
    for (int j = 0; j < kVals; ++j) {
      // softmax_term(v, max_key) for finite keys and a finite maximum: exp_f(v - max_key).
      terms[j] = first + j < E ? exp_f(v[j] - max_key) : 0.0f;
    }
    softmax_sum = grp.sum(local_pairwise_sum<kVals>(terms));
  }
  routing_finish_row<T, kQuadLanes, kQuadSlots>(grp, kp, ids_int64, row, x, true, kApprox,
                                                slot_expert, slot_ord, slot_score, max_key,
                                                softmax_sum, [](int) {});
  return true;
}

// The exact lane-group path for one row, one warp (inline: an out-of-line call would need a
// stack frame in local memory).
template <typename T, int kVals>
__device__ __forceinline__ void quad_fallback_row(const detail::RoutingKernelParams& kp,
                                                  const bool vec_ok, const bool ids_int64,
                                                  const std::int64_t row, const int warp) {
  route_row_lanes<T, 32, kVals, false, false>(kp, vec_ok, ids_int64, row, warp, nullptr);
}

// Dynamic shared memory: the fallback's group scores, num_groups words per warp (the launcher
// sizes it for kQuadRows rows, more than the 4 warps need).
// (__launch_bounds__ with one block per SM: without a minimum, ptxas picked 96 / 128 registers for
// some instances and spilled a few words.)
template <typename T, int kVals, bool kApprox, int kGroupSize>
__global__ void __launch_bounds__(kRoutingThreads, 1)
    routing_quad_kernel(const detail::RoutingKernelParams kp, const bool vec_ok,
                        const bool ids_int64) {
  pdl_begin();  // first: kernels/pdl.cuh
  constexpr int kFallbackVals = detail::next_pow2(kQuadLanes * kVals) / 32;
  __shared__ QuadSmem sm;
  const int r = static_cast<int>(threadIdx.x) / kQuadLanes;
  const std::int64_t row = static_cast<std::int64_t>(blockIdx.x) * kQuadRows + r;
  bool settled = true;
  if (row < kp.num_tokens) {
    settled = quad_route_row<T, kVals, kApprox, kGroupSize>(kp, vec_ok, ids_int64, row, r, sm);
  }
  // 6. Unsettled rows: the exact lane-group path, one row at a time with the whole warp.
  const int warp = static_cast<int>(threadIdx.x) / 32;
  unsigned pending = __ballot_sync(0xffffffffu, !settled && (threadIdx.x % kQuadLanes) == 0);
  while (pending != 0u) {
    const int lane = __ffs(pending) - 1;
    pending &= pending - 1u;
    const std::int64_t fallback_row = static_cast<std::int64_t>(blockIdx.x) * kQuadRows +
                                      warp * (32 / kQuadLanes) + lane / kQuadLanes;
    quad_fallback_row<T, kFallbackVals>(kp, vec_ok, ids_int64, fallback_row, warp);
    __syncwarp();  // the next row reuses this warp's group scores in shared memory
  }
}

}  // namespace switchyard::kernels
