// The per-row routing math shared by the CPU backend and the CUDA kernel.
//
// Every result is defined independently of how a row is split over threads, so the two backends,
// and every launch layout of the kernel, return the same bits:
//  - selection compares (order key, expert index) exactly;
//  - every float sum is a pairwise tree over a zero-padded power-of-two array: the softmax
//    denominator over next_pow2(E) leaves (leaf e = expert e), slot sums over 32 leaves (leaf k =
//    output column k). A thread holding an aligned run of leaves sums its run as the subtree it
//    is, and threads combine with XOR shuffles of offsets 1, 2, 4, ..., which are the upper
//    levels of the same tree;
//  - scores come from exact_math.h, which gives the same bits on both sides.
// Nothing depends on the number of rows: results are batch invariant by construction.
#pragma once

#include <cstdint>

#include "exact_math.h"
#include "host_device.h"
#include "switchyard/routing.h"

namespace switchyard::detail {

SY_HD constexpr int next_pow2(int v) {
  int p = 1;
  while (p < v) p *= 2;
  return p;
}

// Leaves of the softmax-denominator tree of a row of E experts.
SY_HD constexpr int routing_row_capacity(int num_experts) {
  return next_pow2(num_experts < 1 ? 1 : num_experts);
}

// Whether ranked warp lists serve a row block of one expert per thread (kernels/
// routing_row_block.cuh, RowBlockPlan::lists): groups do not apply (num_groups <= 0), or every
// group is exactly one warp of 32 experts. One rule for the kernel's plan and the launch heuristic.
SY_HD constexpr bool routing_row_block_lists_serve(int num_experts, int num_groups) {
  return num_groups <= 0 || num_experts == 32 * num_groups;
}

// Whether the approximate pre-filter (src/cuda/kernels/routing_prefilter.cuh) serves a routing:
// sigmoid scores without softcap, 33 <= E <= 512 (2..16 experts per lane of one warp), and grouped
// routings (num_groups > 0; 0: not grouped) only with groups of a power-of-two number of whole
// lanes. One rule for the kernel, the launch heuristic and the tests.
SY_HD constexpr bool routing_prefilter_applies(int num_experts, bool sigmoid_without_softcap,
                                               int num_groups) {
  const int capacity = routing_row_capacity(num_experts);
  if (!sigmoid_without_softcap || capacity < 64 || capacity > 512) return false;
  if (num_groups <= 0) return true;
  const int vals = capacity / 32;
  const int group_size = num_experts / num_groups;
  const int lanes_per_group = group_size / vals;
  return group_size % vals == 0 && lanes_per_group >= 1 &&
         (lanes_per_group & (lanes_per_group - 1)) == 0;
}

// Experts per lane of the quad kernel (src/cuda/kernels/routing_quad.cuh: 4 lanes per row) for a
// routing, or 0 where it does not serve it. It serves K <= 8 without softcap for kSigmoid (keys
// pre-filtered by approximation; groups only as aligned runs of 32 experts with 3 * topk_groups
// >= K) and for kSoftmax / kTopkThenSoftmax / kTopkThenSigmoid (exact keys; no groups); kVals =
// 32 * ceil(E / 128) <= 96 (128 spills registers; softmax: next_pow2(E) / 4, the CPU's tree), with
// E > 3 kVals: the last lane holds experts, so the pool of step 3 (each lane's top-3 experts for
// K > 4, top-2 otherwise) holds >= K. (The kernel is correct with idle lanes too, but slower than
// lane groups: Qwen3-Coder's E = 160 as 64 + 64 + 32 + 0, H200, 32768 rows: 66.5 vs 62.0 us.) One
// rule for the kernel's launcher, the heuristic and the tests.
SY_HD constexpr int routing_quad_vals(int num_experts, int top_k, ScoreFunc f, bool softcap,
                                      GroupScore group_score, int num_groups, int topk_groups) {
  const bool approx = f == ScoreFunc::kSigmoid;
  const bool exact = f == ScoreFunc::kSoftmax || f == ScoreFunc::kTopkThenSoftmax ||
                     f == ScoreFunc::kTopkThenSigmoid;
  if (num_experts < 65 || num_experts > 512 || top_k > 8 || softcap || !(approx || exact)) {
    return 0;
  }
  const int vals = f == ScoreFunc::kSoftmax ? routing_row_capacity(num_experts) / 4
                                            : 32 * ((num_experts + 127) / 128);
  if (vals > 96 || num_experts <= 3 * vals) return 0;
  if (group_score != GroupScore::kNone &&
      !(approx && num_groups > 0 && num_experts == 32 * num_groups && 3 * topk_groups >= top_k)) {
    return 0;
  }
  return vals;
}

// Segments of 32 experts per row of the staged kernel (src/cuda/kernels/routing_staged.cuh: two
// threads per row, the rows staged in shared memory) for a routing, or 0 where it does not serve
// it. It serves kSigmoid without softcap with K <= 8 and E a multiple of 32 in 128..512 (the pool
// of its step 3, each segment's top-2, then holds >= 8 keys); groups only as the segments (E == 32
// * num_groups) with 3 * topk_groups >= K (the pool, 4 keys per kept group, then holds >= K: the
// quad kernel's condition, kept). The launcher also needs 16-byte aligned logits rows. One rule for
// the kernel's launcher, the heuristic and the tests.
SY_HD constexpr int routing_staged_segs(int num_experts, int top_k, ScoreFunc f, bool softcap,
                                        GroupScore group_score, int num_groups, int topk_groups) {
  if (f != ScoreFunc::kSigmoid || softcap || top_k > 8 || num_experts % 32 != 0 ||
      num_experts < 128 || num_experts > 512) {
    return 0;
  }
  if (group_score != GroupScore::kNone &&
      !(num_groups > 0 && num_experts == 32 * num_groups && 3 * topk_groups >= top_k)) {
    return 0;
  }
  return num_experts / 32;
}

// Whether the packed kernel (src/cuda/kernels/routing_packed.cuh: order key and expert index in
// one 32-bit word) serves a routing: 16-bit logits (logit_bytes 2) whose selection key is the
// logit itself, i.e. kSoftmax, kTopkThenSoftmax and kTopkThenSigmoid without bias, softcap or
// groups, with 33 <= E <= 512 and K <= 8. (Its layouts: 8, 16 or 32 experts per lane and
// next_pow2(E) / that in 4..32 lanes per row; heuristics::routing_packed_vals picks.) One rule for
// the kernel's launcher, the heuristic and the tests.
SY_HD constexpr bool routing_packed_serves(int num_experts, int top_k, ScoreFunc f, bool softcap,
                                           GroupScore group_score, bool bias, int logit_bytes) {
  const bool keyed = f == ScoreFunc::kSoftmax || f == ScoreFunc::kTopkThenSoftmax ||
                     f == ScoreFunc::kTopkThenSigmoid;
  return keyed && !softcap && !bias && group_score == GroupScore::kNone && logit_bytes == 2 &&
         top_k <= 8 && num_experts >= 33 && num_experts <= 512;
}

// The LUT kernel's layout (src/cuda/kernels/routing_lut.cuh): lanes per row, a power of two in
// 4..16 with at most 32 experts per lane, and experts per lane, a multiple of 8 (16, 24 or 32).
SY_HD constexpr int routing_lut_lanes(int num_experts) {
  const int lanes = next_pow2((num_experts + 31) / 32);
  return lanes < 4 ? 4 : lanes;
}
SY_HD constexpr int routing_lut_vals(int num_experts) {
  const int lanes = routing_lut_lanes(num_experts);
  return ((num_experts + lanes - 1) / lanes + 7) / 8 * 8;
}

// Whether the LUT kernel (src/cuda/kernels/routing_lut.cuh: sigmoid scores from a table of every
// bf16 number) serves a routing: bf16 logits, kSigmoid with or without bias, no softcap, K <= 8,
// 33 <= E <= 512; groups only as one lane per group of 32 experts (E = 32 * num_groups with
// num_groups = 4, 8 or 16: DeepSeek-V3's 8 x 32). One rule for the kernel's launcher, the
// heuristic and the tests.
SY_HD constexpr bool routing_lut_serves(int num_experts, int top_k, ScoreFunc f, bool softcap,
                                        GroupScore group_score, int num_groups, bool bf16) {
  if (!(f == ScoreFunc::kSigmoid && !softcap && bf16 && top_k >= 1 && top_k <= 8 &&
        num_experts >= 33 && num_experts <= 512)) {
    return false;
  }
  return group_score == GroupScore::kNone ||
         (num_experts == 32 * num_groups && routing_lut_lanes(num_experts) == num_groups);
}

inline constexpr int kRoutingSlotLeaves = 32;  // leaves of the slot-sum tree (>= K + S)

// Pairwise tree sum of v[0..n), n a power of two: ((v0+v1)+(v2+v3))+... (host reference).
inline float pairwise_sum(float* v, int n) {
  for (int stride = 1; stride < n; stride *= 2) {
    for (int i = 0; i + stride < n; i += 2 * stride) v[i] = v[i] + v[i + stride];
  }
  return n > 0 ? v[0] : 0.0f;
}

// Selection order as an unsigned integer: a larger value ranks higher. 0 is reserved for
// "not selectable" (outside the row, in a dropped group, already taken); NaN maps to 1, below
// -Inf; -0 and +0 map to the same value.
SY_HD std::uint32_t order_key(float key) {
  if (is_nan(key)) return 1u;
  if (key == 0.0f) key = 0.0f;  // -0 -> +0
  const std::uint32_t u = float_to_bits(key);
  const std::uint32_t o = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
  return o < 2u ? 2u : o;  // only -NaN patterns could land here, and NaN was handled
}
SY_HD float order_key_value(std::uint32_t o) {
  if (o <= 1u) return bits_to_float(0x7fc00000u);
  const std::uint32_t u = (o & 0x80000000u) ? (o & 0x7fffffffu) : ~o;
  return bits_to_float(u);
}
// (order, expert index) packed so that a larger value is the better candidate: higher order
// first, then the lower index.
SY_HD std::uint64_t candidate(std::uint32_t order, int expert_idx) {
  return (static_cast<std::uint64_t>(order) << 32) |
         static_cast<std::uint32_t>(0xffffffffu - static_cast<std::uint32_t>(expert_idx));
}
SY_HD int candidate_expert(std::uint64_t c) {
  return static_cast<int>(0xffffffffu - static_cast<std::uint32_t>(c & 0xffffffffu));
}
SY_HD std::uint32_t candidate_order(std::uint64_t c) {
  return static_cast<std::uint32_t>(c >> 32);
}

SY_HD float softcapped(float x, float softcap) {
  return softcap > 0.0f ? softcap * tanh_f(div_f(x, softcap)) : x;
}

// The bias-free score s of the sigmoid-like functions (also the key of the others).
SY_HD float routing_score(ScoreFunc f, float x) {
  switch (f) {
    case ScoreFunc::kSigmoid:
      return sigmoid_f(x);
    case ScoreFunc::kSqrtSoftplus:
      return exact_sqrt(softplus_f(x));
    default:
      return x;
  }
}

// Selection key of one expert from its raw logit.
SY_HD float routing_key(const RoutingParams& p, float raw, float bias) {
  return routing_score(p.score_func, softcapped(raw, p.softcap)) + bias;
}

// exp(key - max) for a softmax over keys whose maximum is `max_key` (NaN keys ignored by the
// caller's max). The +Inf limit: +Inf keys share the mass, everything else gets 0.
SY_HD float softmax_term(float key, float max_key) {
  if (is_nan(key)) return 0.0f;
  if (max_key == pos_inf()) return key == pos_inf() ? 1.0f : 0.0f;
  if (max_key == neg_inf()) return 0.0f;
  return exp_f(key - max_key);
}

// max that ignores NaN (returns -Inf when all are NaN).
SY_HD float max_ignore_nan(float a, float b) {
  if (is_nan(a)) return b;
  if (is_nan(b)) return a;
  return a > b ? a : b;
}

SY_HD float nan_to_zero(float w) {
  return is_nan(w) ? 0.0f : w;
}

SY_HD float safe_div(float num, float den) {
  return den > 0.0f ? div_f(num, den) : 0.0f;
}

// Group score from the (up to) two largest keys of a group, as order keys (0 = absent).
SY_HD float group_score_value(GroupScore g, std::uint32_t best, std::uint32_t second) {
  const float a = order_key_value(best);
  if (g == GroupScore::kMax || second == 0u) return a;
  return a + order_key_value(second);
}

// Merge a value into a (best, second) pair of order keys (values, not candidates: duplicates are
// kept, so two equal maxima sum to twice the maximum).
SY_HD void top2_insert(std::uint32_t& best, std::uint32_t& second, std::uint32_t v) {
  if (v > best) {
    second = best;
    best = v;
  } else if (v > second) {
    second = v;
  }
}

}  // namespace switchyard::detail
