// Approximate pre-filter, exact finish: the selection stage of the lane-group routing kernel
// (routing.cuh, kPrefilter instances: one warp per row, kVals >= 2) for kSigmoid without softcap,
// with or without bias and grouping. Not used by the heuristic yet (unmeasured): layout code
// heuristics::kRoutingPrefilterCode forces it.
//
// 1. Every expert gets an approximate key a = s~ + b, s~ = rcp.approx(1 + ex2.approx(-x log2 e))
//    (5 instructions instead of ~70 for sigmoid_f), and an interval [lo, hi] = [a - eps, a + eps]
//    (as order keys) that provably contains the exact key k = sigmoid_f(x) + b (proof below).
// 2. Groups (GroupScore != kNone, groups that are aligned runs of whole lanes): the group score is
//    monotone in every key of the group (top-2 / max of order keys, then one rounded addition), so
//    G(lo) <= G(k) <= G(hi). L_G = the topk_groups-th largest G(lo) (with multiplicity): at least
//    topk_groups groups have an exact score >= L_G, so every kept group has G(hi) >= L_G. If
//    exactly topk_groups groups have G(hi) >= L_G they are the kept groups; otherwise (near-tied
//    group scores) the row takes the exact path.
// 3. Threshold L = the K-th largest of the lanes' maxima of lo over the selectable experts: at
//    least K experts (on K distinct lanes) have k >= lo >= L, so the K-th best exact key is >= L
//    and every expert of the exact top K has hi >= k >= L. Candidates: selectable experts with
//    hi >= L. More than 32 candidates (heavy ties, flat rows): the exact path.
// 4. The candidates are compacted one per lane (ballots; 32 words of shared memory per row), each
//    lane computes its candidate's exact key (sigmoid_f + bias, the CPU's bits), and K rounds of
//    redux.sync (max order key, then min expert index) select the exact top K among them. Since
//    the exact top K of the row is inside the candidate set and the order is total, this is the
//    CPU's selection, bit for bit; the weights are the exact scores just computed.
//
// Error bound. Notation: s = sigmoid_f(x) (exact_math.h), sigma = the real sigmoid, u = e^-x;
// "ulp" of a normal float y is at most 2^-23 |y|.
//  (a) |s - sigma| <= 2^-21 for every float x: exp_f and div_f are within ~2 ulp, s <= 1 (checked
//      on a sample of floats, every 61st and a dense grid in [-1, 1], by `routing_row_block_emu
//      bound`, CTest routing_lane_group_emu.sigmoid_bound; measured 2^-23.4).
//  (b) Hardware, as documented in the PTX ISA (9.x, "Floating Point Instructions": ex2, rcp):
//      ex2.approx.f32 "maximum ulp error is 2 ulp from correctly rounded result across the full
//      range of inputs", so with the rounding itself (1/2 ulp) a relative error <= 2.5 * 2^-23 =
//      5 * 2^-24 (~2^-21.7) on normal results; rcp.approx.f32 "maximum ulp error is 1 across the
//      full range of inputs", taken here as 1 ulp from the correctly rounded result, <= 1.5 * 2^-23
//      = 3 * 2^-24 relative (2^-23 if the ulp is counted from the exact value). .ftz flushes
//      subnormal inputs and results to zero. Steps: t = fl(x * fl(-log2 e)) = -x log2e (1 + n),
//      |n| <= 2^-23 + 2^-48 (two roundings); e = 2^t (1 + d2) = u e^(-x n) (1 + d2), |d2| <=
//      5 * 2^-24; d = fl(1 + e) = (1 + e)(1 + d3), |d3| <= 2^-24; s~ = (1 + d4) / d, |d4| <=
//      3 * 2^-24. With rho = e / u - 1 = e^(-x n)(1 + d2) - 1:
//        s~ = sigma (1 + d4) / ((1 + d3)(1 + (1 - sigma) rho)),
//      so |s~ - sigma| <= sigma (|d4| + |d3|) + sigma (1 - sigma)(|d2| + 1.0001 |x| |n|) + O(2^-44)
//      <= (3 + 1) 2^-24 + (1/4) 5 * 2^-24 + 0.2241 * 2^-23 < 5.71 * 2^-24 (< 2^-21.48), using
//      sigma (1 - sigma) <= 1/4 and |x| sigma (1 - sigma) <= 0.2241 (at x = +-1.543); |x n| <=
//      2^-16 wherever u and e are normal (|x| < 88). (An error in e moves s~ only by its share
//      1 - sigma of 1 + e: counting d2 without that factor, as a sum of the four relative errors,
//      would give 9.5 * 2^-24 > 2^-21.) Outside: x > 87 gives e < 2^-24 (or 0, flushed), d = 1,
//      |s~ - 1| <= 3 * 2^-24 and 1 - sigma < 2^-125; x < -88 gives e = +Inf (t >= 128) and s~ = +0
//      exactly, or a huge e and s~ < 2^-126 (possibly flushed to 0), with sigma < 2^-126. NaN x
//      gives NaN; x = +Inf gives e = +0, s~ = rcp(1) (within the bound); x = -Inf gives s~ = +0.
//      Hence |s~ - s| <= (5.71 + 8) 2^-24 < 0.86 * 2^-20 for finite s~.
//  (c) Keys: k = fl(s + b), a = fl(s~ + b). For finite b, |k - a| <= |s - s~| + 2^-24 (|s + b| +
//      |s~ + b|) <= 0.86 * 2^-20 + 2^-22.9 |a| =: delta. For NaN x or non-finite b, a and k are
//      the same special value (s and s~ are finite numbers in [0, 1] otherwise, so s + b cannot
//      overflow): order_key(a) = order_key(k).
//  (d) eps = 2^-18 + 2^-20 |a| >= 4.6 delta (also as computed: one rounding); lo = fl(a - eps) <=
//      a - eps + 2^-24 |a - eps| <= a - delta <= k, and likewise hi >= k; lo / hi are clamped to
//      +-FLT_MAX for finite a (the exact key is finite then), and equal a when a is not finite.
//  The margin: eps covers |s~ - s| up to 2^-18 - 2^-21 (less the rounding terms), so ex2 / rcp
//  errors up to ~9x the documented bounds (|s~ - sigma| up to ~9.8 * 5.71 * 2^-24) are covered.
//
// The host SIMT emulator (tools/simt_emu) replaces the approximate score by the exact one plus an
// adversarial perturbation of up to 2^-19 (more than twice what (a) + (b) allow), so it checks that
// the selection logic is exact for any approximation within that bound.
#pragma once

#include <cstdint>

#include "../../common/dtype_convert.h"
#include "../../common/exact_math.h"
#include "../../common/routing_row.h"
#include "approx_sigmoid.cuh"
#include "lane_group.cuh"

// Diagnostics hook of the host emulator (rows settled / sent to the exact path, candidates).
#ifndef SY_PREFILTER_STATS
#define SY_PREFILTER_STATS(ok, n) ((void)0)
#endif

namespace switchyard::kernels {

// approx_sigmoid (approx_sigmoid.cuh): s~ ~ sigmoid(x) from hardware approximations (error bound
// above).

// Whether a row of these parameters may take the pre-filter (uniform per launch): the shared rule
// of routing_row.h (sigmoid without softcap, groups (if any) aligned runs of a power of two of
// whole lanes; the launcher only runs kPrefilter instances with next_pow2(E) / 32 per lane).
__device__ __forceinline__ bool prefilter_applies(const RoutingParams& p) {
  return detail::routing_prefilter_applies(
      p.num_experts, p.score_func == ScoreFunc::kSigmoid && !(p.softcap > 0.0f),
      p.group_score == GroupScore::kNone ? 0 : p.num_groups);
}

// Steps 1-4 above for one row (a full warp). Returns false when the row must take the exact path
// (ambiguous groups or too many candidates); uniform across the warp. On success lane k < K holds
// output column k: expert `sel_expert`, exact order key `sel_ord`, exact score `sel_score`.
// row_cands: 32 words of shared memory owned by this row.
template <typename T, int kVals>
__device__ __forceinline__ bool prefilter_select(const LaneGroup<32>& grp, const RoutingParams& p,
                                                 const T* x, const float* bias_ptr,
                                                 const float (&raw)[kVals],
                                                 const float (&bias)[kVals],
                                                 std::uint32_t* row_cands, int& sel_expert,
                                                 std::uint32_t& sel_ord, float& sel_score) {
  using namespace detail;
  const int E = p.num_experts, K = p.top_k;
  const int first = grp.lane * kVals;
  std::uint32_t lo[kVals], hi[kVals];
#pragma unroll
  for (int j = 0; j < kVals; ++j) {
    const float a = approx_sigmoid(raw[j]) + bias[j];
    const float abs_a = bits_to_float(float_to_bits(a) & 0x7fffffffu);
    const float eps = abs_a * 0x1p-20f + 0x1p-18f;
    const bool fin = is_finite(a);
    const float l = fin ? exact_fmax(a - eps, -0x1.fffffep127f) : a;
    const float h = fin ? exact_fmin(a + eps, 0x1.fffffep127f) : a;
    const bool in = first + j < E;
    lo[j] = in ? order_key(l) : 0u;
    hi[j] = in ? order_key(h) : 0u;
  }

  if (p.group_score != GroupScore::kNone) {
    const int G = p.num_groups;
    const int group_size = E / G;
    const int lanes_per_group = group_size / kVals;
    std::uint32_t blo = 0, slo = 0, bhi = 0, shi = 0;
#pragma unroll
    for (int j = 0; j < kVals; ++j) {
      top2_insert(blo, slo, lo[j]);
      top2_insert(bhi, shi, hi[j]);
    }
    for (int off = 1; off < lanes_per_group; off *= 2) {
      const std::uint32_t ob = grp.xor_shuffle(blo, off), os = grp.xor_shuffle(slo, off);
      const std::uint32_t hb = grp.xor_shuffle(bhi, off), hs = grp.xor_shuffle(shi, off);
      top2_insert(blo, slo, ob);
      top2_insert(blo, slo, os);
      top2_insert(bhi, shi, hb);
      top2_insert(bhi, shi, hs);
    }
    const std::uint32_t glo = order_key(group_score_value(p.group_score, blo, slo));
    const std::uint32_t ghi = order_key(group_score_value(p.group_score, bhi, shi));
    // Lane g < G takes group g's bounds from the group's first lane.
    const bool mine = grp.lane < G;
    const int src = (mine ? grp.lane : 0) * lanes_per_group;
    const std::uint32_t glo_src = grp.broadcast(glo, src);  // every lane takes part
    const std::uint32_t vlo = mine ? glo_src : 0u;
    const std::uint32_t vhi = grp.broadcast(ghi, src);
    // L_G: the topk_groups-th largest lower bound, with multiplicity.
    std::uint32_t v = vlo, level = 0;
    int count = 0;
    for (;;) {
      const std::uint32_t m = grp.max_u32(v);
      count += __popc(grp.ballot(mine && v == m));
      level = m;
      if (count >= p.topk_groups || m == 0u) break;
      v = v == m ? 0u : v;
    }
    const unsigned cand_groups = grp.ballot(mine && vhi >= level);
    if (__popc(cand_groups) != p.topk_groups) {
      SY_PREFILTER_STATS(false, 0);
      return false;
    }
    if (!((cand_groups >> (first / group_size)) & 1u)) {
#pragma unroll
      for (int j = 0; j < kVals; ++j) lo[j] = hi[j] = 0u;
    }
  }

  // L: the K-th largest lane maximum of lo (lanes counted with multiplicity).
  std::uint32_t lane_max = lo[0];
#pragma unroll
  for (int j = 1; j < kVals; ++j) lane_max = lo[j] > lane_max ? lo[j] : lane_max;
  std::uint32_t level = 0;
  {
    std::uint32_t v = lane_max;
    int count = 0;
    for (;;) {
      const std::uint32_t m = grp.max_u32(v);
      if (m == 0u) {  // fewer than K lanes hold selectable experts: every one is a candidate
        level = 0u;
        break;
      }
      count += __popc(grp.ballot(v == m));
      level = m;
      if (count >= K) break;
      v = v == m ? 0u : v;
    }
  }

  // Compaction: candidate (j, lane) goes to slot base_j + (candidates of lower lanes at j).
  const unsigned lanes_below = (1u << grp.lane) - 1u;
  int total = 0;
#pragma unroll
  for (int j = 0; j < kVals; ++j) {
    const bool c = hi[j] != 0u && hi[j] >= level;
    const unsigned b = grp.ballot(c);
    const int pos = total + __popc(b & lanes_below);
    if (c && pos < 32) row_cands[pos] = static_cast<std::uint32_t>(first + j);
    total += __popc(b);
  }
  if (total > 32 || total < K) {  // (fewer than K cannot happen: K lanes' maxima are >= level)
    SY_PREFILTER_STATS(false, total);
    return false;
  }
  SY_PREFILTER_STATS(true, total);
  __syncwarp(grp.mask);
  const bool have = grp.lane < total;
  const int e = have ? static_cast<int>(row_cands[grp.lane]) : 0;
  __syncwarp(grp.mask);  // row_cands is free again (a later row of this warp reuses nothing)
  const float s = sigmoid_f(to_float(x[e]));
  const float key = s + (bias_ptr ? __ldg(bias_ptr + e) : 0.0f);
  std::uint32_t ko = have ? order_key(key) : 0u;

  sel_expert = grp.lane;
  sel_ord = 0u;
  sel_score = 0.0f;
  for (int k = 0; k < K; ++k) {
    const std::uint32_t m = __reduce_max_sync(grp.mask, ko);
    const int winner = static_cast<int>(
        __reduce_min_sync(grp.mask, ko == m ? static_cast<unsigned>(e) : 0xffffffffu));
    const bool is_winner = ko == m && e == winner;
    const int winner_lane = __ffs(grp.ballot(is_winner)) - 1;
    const float ws = grp.broadcast(s, winner_lane);
    if (grp.lane == k) {
      sel_expert = winner;
      sel_ord = m;
      sel_score = ws;
    }
    ko = is_winner ? 0u : ko;
  }
  return true;
}

}  // namespace switchyard::kernels
