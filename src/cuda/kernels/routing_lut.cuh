// The routing kernel for bf16 sigmoid rows (layout code heuristics::kRoutingLutCode), where
// detail::routing_lut_serves holds: kSigmoid with or without a bias, no softcap, no groups or
// groups of 32 experts on one lane each (DeepSeek-V3's 8 x 32), 33 <= E <= 512, K <= 8. The
// heuristic's choice there from heuristics::routing_lut_rows rows (DeepSeek-V3, Kimi K2).
//
// Why: every other kernel computes sigmoid_f (an exact exp and an exact division, ~40 operations)
// for every expert, or approximates it and recomputes a few candidates exactly. A bf16 logit has
// 65,536 values and sigmoid_f has only 7,462 distinct non-constant ones among them
// (common/sigmoid_bf16_table.h): each block keeps them in shared memory and a score is a clamp of
// the logit's bits and one load, exact. The key s + bias then goes through a monotone map to a
// 23-bit fixed-point value q (below), packed with the expert's index into one 32-bit word, and the
// selection is the packed kernel's (routing_packed.cuh): sorting networks and merges of words.
//
// Per row (kLanes lanes, kVals consecutive experts per lane, routing_lut_lanes / _vals):
//  1. Scores: per word of two logits, the two table offsets with SIMD 16-bit operations (clamp of
//     the magnitudes, sign), one shared-memory load each; NaN magnitudes are OR-ed into a flag.
//  2. Keys key = s + bias (the CPU's float addition), q = the mantissa of
//     fma(key - lo, scale, 2^23 + 2^9) with lo = min(bias), scale = (2^23 - 2^10) / (max(bias) + 1
//     - lo): every key lies in [lo, max(bias) + 1], so the fma lands in [2^23, 2^24) and its
//     mantissa is a non-decreasing function of the key (each step rounds monotonically). The word
//     is (q << 9) | (511 - expert): a larger word ranks higher, ties in q go to the lower index.
//  3. The lane's top 8 words, sorted (the packed kernel's sorting network and merges). Groups
//     (kGrouped: a lane is one group of 32): the group's two largest keys are those of its first
//     two words when the second and third differ in q (q(a) < q(b) implies a < b), recomputed
//     exactly (logit, table, bias); the group score as the CPU computes it; the group's rank among
//     the row's by (score, lower index) over shuffles. Dropped groups' lanes list nothing.
//  4. The row's top 8 words: the lanes' lists merged over XOR shuffles.
//  5. Exactness: q order is the key order except between keys with equal q. The row is settled
//     when (a) no NaN logit is in it, (b) the block's biases are finite, |b| <= 2^64 and
//     (max(bias) + 1) - lo > 1/2 (so lo and scale are finite and positive), (c) exactly K words of
//     the row (selectable experts only) have a q of at least the K-th word's q, counted in the
//     lanes' own top 8 (so no expert outside the top K ties the K-th in q; a lane with 8 such words
//     may hold more and sends the row to the exact path), (d) within the top K, neighbours with
//     equal q are in exact key order (their exact keys are computed for the weights anyway; equal
//     keys are in index order by the packing), and (e) the group stage's second and third words
//     differ in q. Then the kept groups, the top K and their order are the CPU's. Rows not settled
//     take the exact lane-group path (route_row_lanes, one warp per row) in the same kernel.
//  6. Weights and stores on lanes 0..3 (columns 2 lane, 2 lane + 1): s from the table, the packed
//     kernel's renormalisation and stores (packed_renormalize, packed_store_row).
// Blocks are persistent (the table is loaded once per block): the launcher starts at most one
// block per SM, and the warps take tiles of rows (32 / kLanes rows each) round-robin over the
// blocks first, so that a batch smaller than the grid still spreads over every SM.
#pragma once

#include <cstdint>
#include <type_traits>

#include "../../common/dtype_convert.h"
#include "../../common/exact_math.h"
#include "../../common/routing_kernel_params.h"
#include "../../common/routing_row.h"
#include "../../common/sigmoid_bf16_table.h"
#include "pdl.cuh"
#include "routing.cuh"
#include "routing_packed.cuh"

// Statistics hook (the host emulator counts rows settled here and rows on the exact path).
#ifndef SY_LUT_STATS
#define SY_LUT_STATS(lane, ok) ((void)0)
#endif

namespace switchyard::kernels {

// Threads per block: one block per SM (one copy of the table per SM: 396 blocks of 256 threads
// loaded 12 MB from the L2 at once), 768 threads (24 warps, at most 80 registers) up to 8 lanes
// per row and 32 experts per lane, else 512 (128 registers): the exact fallback of 16 experts
// per lane and the 48 packed words of 8 x 48 spill at 80.
SY_HD constexpr int lut_threads(int lanes, int vals) {
  return lanes >= 16 || vals > 32 ? 512 : 768;
}
inline constexpr int kLutBiasPad = 4;  // words between lanes' bias runs (no bank conflicts)
// The table in 16-byte units (the last unit padded with zeros).
inline constexpr int kLutTableUnits = (detail::kSigmoidBf16Entries + 3) / 4;

// The device copy of the table (common/sigmoid_bf16_table.h), padded to whole 16-byte units.
__device__ const std::uint32_t g_sigmoid_bf16_table[4 * kLutTableUnits] = {
#include "../../common/sigmoid_bf16_table.inc"
};

// Per 16-bit half: unsigned maximum / minimum (max.u16x2 / min.u16x2: one instruction on sm_90).
__device__ __forceinline__ std::uint32_t lut_vmax_u16x2(std::uint32_t a, std::uint32_t b) {
#if defined(__CUDA_ARCH__)
  return __vmaxu2(a, b);
#else
  const std::uint32_t lo = (a & 0xffffu) > (b & 0xffffu) ? (a & 0xffffu) : (b & 0xffffu);
  const std::uint32_t hi = (a >> 16) > (b >> 16) ? (a >> 16) : (b >> 16);
  return lo | (hi << 16);
#endif
}
__device__ __forceinline__ std::uint32_t lut_vmin_u16x2(std::uint32_t a, std::uint32_t b) {
#if defined(__CUDA_ARCH__)
  return __vminu2(a, b);
#else
  const std::uint32_t lo = (a & 0xffffu) < (b & 0xffffu) ? (a & 0xffffu) : (b & 0xffffu);
  const std::uint32_t hi = (a >> 16) < (b >> 16) ? (a >> 16) : (b >> 16);
  return lo | (hi << 16);
#endif
}

// Byte offsets into the table of the two bf16 numbers of w, one per half (sigmoid_bf16_index * 4;
// < 2^15, so the halves never carry into each other).
__device__ __forceinline__ std::uint32_t lut_offsets(std::uint32_t w) {
  constexpr std::uint32_t kLo2 = detail::kSigmoidBf16Lo * 0x10001u;
  constexpr std::uint32_t kHi2 = detail::kSigmoidBf16Hi * 0x10001u;
  constexpr std::uint32_t kSpan2 = detail::kSigmoidBf16Span * 4u * 0x10001u;
  const std::uint32_t mag = lut_vmin_u16x2(lut_vmax_u16x2(w & 0x7fff7fffu, kLo2), kHi2) - kLo2;
  return (mag << 2) + (packed_sign_halves(w) & kSpan2);
}

__device__ __forceinline__ float lut_load(const float* table, std::uint32_t byte_offset) {
  return *reinterpret_cast<const float*>(reinterpret_cast<const char*>(table) + byte_offset);
}

// The block's fixed-point map (step 2 of the header) and whether its biases allow it.
struct LutScale {
  float lo, scale;
  bool ok;
};

// Shared state of a block: the table, the biases (lane-padded runs of kVals), the map.
template <int kVals, int kLanes>
struct LutShared {
  static constexpr int kWarps = lut_threads(kLanes, kVals) / 32;
  float table[4 * kLutTableUnits];
  float bias[kLanes * (kVals + kLutBiasPad)];
  float red_min[kWarps], red_max[kWarps];
  int red_bad[kWarps];
};

template <int kVals, int kLanes>
__device__ __forceinline__ LutScale lut_load_shared(const detail::RoutingKernelParams& kp,
                                                    LutShared<kVals, kLanes>& sh) {
  using namespace detail;
  const int E = kp.p.num_experts;
  const int tid = static_cast<int>(threadIdx.x);
  const uint4* src = reinterpret_cast<const uint4*>(g_sigmoid_bf16_table);
  uint4* dst = reinterpret_cast<uint4*>(sh.table);
  constexpr int kThreads = lut_threads(kLanes, kVals);
  for (int i = tid; i < kLutTableUnits; i += kThreads) dst[i] = src[i];
  float bmin = pos_inf(), bmax = neg_inf();
  bool bad = false;
  for (int e = tid; e < kLanes * kVals; e += kThreads) {
    const float b = kp.bias != nullptr && e < E ? kp.bias[e] : 0.0f;
    sh.bias[(e / kVals) * (kVals + kLutBiasPad) + e % kVals] = b;
    if (e < E) {
      bad = bad || !(b >= -0x1p64f && b <= 0x1p64f);
      bmin = fminf(bmin, b);
      bmax = fmaxf(bmax, b);
    }
  }
#pragma unroll
  for (int off = 16; off > 0; off /= 2) {
    bmin = fminf(bmin, __shfl_xor_sync(0xffffffffu, bmin, off));
    bmax = fmaxf(bmax, __shfl_xor_sync(0xffffffffu, bmax, off));
  }
  bad = __ballot_sync(0xffffffffu, bad) != 0u;
  if ((tid & 31) == 0) {
    sh.red_min[tid / 32] = bmin;
    sh.red_max[tid / 32] = bmax;
    sh.red_bad[tid / 32] = bad ? 1 : 0;
  }
  __syncthreads();
  float lo = pos_inf(), hi = neg_inf();
  int any_bad = 0;
#pragma unroll
  for (int w = 0; w < LutShared<kVals, kLanes>::kWarps; ++w) {
    lo = fminf(lo, sh.red_min[w]);
    hi = fmaxf(hi, sh.red_max[w]);
    any_bad |= sh.red_bad[w];
  }
  // Keys lie in [lo, hi + 1]: the score is in [0, 1]. range > 1/2 unless the biases are so large
  // that hi + 1 rounds to hi (then the block takes the exact path; scale stays finite otherwise).
  const float range = (hi + 1.0f) - lo;
  LutScale m;
  m.lo = lo;
  m.scale = (0x1p23f - 0x1p10f) / range;
  m.ok = any_bad == 0 && range > 0.5f;
  return m;
}

// One row on its kLanes lanes (every lane of the warp runs every step; rows past the end and
// padded rows on zeros, without stores). Returns false when the row needs the exact path (see
// the header); it then stores nothing.
template <int kVals, int kLanes, bool kGrouped>
__device__ __forceinline__ bool lut_route_row(const detail::RoutingKernelParams& kp,
                                              const LutShared<kVals, kLanes>& sh, const LutScale& m,
                                              const bool vec_ok, const bool ids_int64,
                                              const std::int64_t row, const bool active) {
  using namespace detail;
  static_assert(kLanes >= 4 && kLanes <= 32 && kVals % 8 == 0, "lut layout");
  static_assert(!kGrouped || kVals == 32, "lut groups: one lane per group of 32");
  const RoutingParams& p = kp.p;
  const int E = p.num_experts, K = p.top_k;
  const int lane = static_cast<int>(threadIdx.x) & (kLanes - 1);
  const bool routed = active && row < routing_non_padded_rows(kp);
  const bf16_t* x = static_cast<const bf16_t*>(kp.logits) + row * kp.row_stride;
  const int first = lane * kVals;

  // 1. Words of two logits (0 past the row and on rows not routed).
  std::uint32_t w[kVals / 2];
  packed_load_words<kVals>(x, E, first, routed, vec_ok, w);

  // 1-2. Scores, keys, packed words (lane-local index: 511 - j).
  const float* bias = sh.bias + lane * (kVals + kLutBiasPad);
  std::uint32_t mag_max = 0u;  // per half: the largest magnitude (NaN: above 0x7f80)
  std::uint32_t c[kVals];
#pragma unroll
  for (int i = 0; i < kVals / 2; ++i) {
    mag_max = lut_vmax_u16x2(mag_max, w[i] & 0x7fff7fffu);
    const std::uint32_t off = lut_offsets(w[i]);
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int j = 2 * i + h;
      const float key = lut_load(sh.table, h ? off >> 16 : off & 0xffffu) + bias[j];
      const float t = exact_fma(key - m.lo, m.scale, 0x1p23f + 0x1p9f);
      c[j] = (float_to_bits(t) << 9) + (511u - static_cast<std::uint32_t>(j));
    }
  }
  if (first + kVals > E) {
#pragma unroll
    for (int j = 0; j < kVals; ++j) c[j] = first + j < E ? c[j] : 0u;
  }
  const unsigned row_mask = (kLanes == 32 ? 0xffffffffu : (1u << kLanes) - 1u)
                            << (static_cast<int>(threadIdx.x & 31u) & ~(kLanes - 1));

  // 4 (in the lane). The lane's top 8 words, sorted; then global indices (511 - expert).
  std::uint32_t own[8];
  packed_lane_top<kVals, 8>(c, own);
#pragma unroll
  for (int i = 0; i < 8; ++i) own[i] = own[i] != 0u ? own[i] - first : 0u;
  // The exact key of a listed word's expert (re-read logit, table, bias).
  auto exact_key = [&](std::uint32_t word) {
    const int e = 511 - static_cast<int>(word & 511u);
    float key = 0.0f;
    if (routed && word != 0u) {
      key = sh.table[sigmoid_bf16_index(reinterpret_cast<const std::uint16_t*>(x)[e])] +
            sh.bias[(e / kVals) * (kVals + kLutBiasPad) + e % kVals];
    }
    return key;
  };

  // 3. Groups: the group's top two keys are its top two words' (exact keys) unless the second and
  // third word tie in q (then the exact path); the lane's group is kept when fewer than
  // topk_groups groups rank above it.
  bool kept = true, groups_ok = true;
  if constexpr (kGrouped) {
    const float k0 = exact_key(own[0]), k1 = exact_key(own[1]);
    groups_ok = (own[1] >> 9) != (own[2] >> 9);
    const float g = p.group_score == GroupScore::kMax ? fmaxf(k0, k1) : k0 + k1;
    int rank = 0;
#pragma unroll
    for (int j = 0; j < kLanes; ++j) {
      const float gj = __shfl_sync(0xffffffffu, g, j, kLanes);
      rank += (gj > g || (gj == g && j < lane)) ? 1 : 0;
    }
    kept = rank < p.topk_groups;
#pragma unroll
    for (int i = 0; i < 8; ++i) own[i] = kept ? own[i] : 0u;
  }

  // 4. The row's top 8 words, on every lane of the row.
  std::uint32_t list[8];
#pragma unroll
  for (int i = 0; i < 8; ++i) list[i] = own[i];
#pragma unroll
  for (int off = 1; off < kLanes; off *= 2) {
    std::uint32_t other[8];
#pragma unroll
    for (int i = 0; i < 8; ++i) other[i] = __shfl_xor_sync(0xffffffffu, list[i], off);
    packed_merge_top<8>(list, other);
  }

  // 5c. Words of selectable experts whose q reaches the K-th word's: exactly K, or a tie in q
  // crosses the boundary. Counted in the lanes' own top 8; a lane whose 8 all reach it may hold
  // more (unknown: the exact path).
  std::uint32_t kth = list[0];  // list[K - 1], the smallest of the first K (no dynamic index)
#pragma unroll
  for (int i = 1; i < 8; ++i) kth = i < K && list[i] < kth ? list[i] : kth;
  const std::uint32_t threshold = kth & ~511u;
  int count = 0;
#pragma unroll
  for (int i = 0; i < 8; ++i) count += own[i] >= threshold ? 1 : 0;
  const bool lane_ok =
      groups_ok && count < 8 && (mag_max & 0xffffu) <= 0x7f80u && (mag_max >> 16) <= 0x7f80u;
#pragma unroll
  for (int off = 1; off < kLanes; off *= 2) count += __shfl_xor_sync(0xffffffffu, count, off);
  const unsigned bad_lanes0 = __ballot_sync(0xffffffffu, !lane_ok);  // (every lane: no &&)
  bool ok = m.ok && count == K && (bad_lanes0 & row_mask) == 0u;

  // 6. Columns 2 lane and 2 lane + 1: experts, exact scores and keys.
  int expert[2];
  float wt[2], key[2];
  std::uint32_t word[2];
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    std::uint32_t v = 0u;
#pragma unroll
    for (int l = 0; l < 4; ++l) v = lane == l ? list[2 * l + i] : v;
    word[i] = v;
    const int k = 2 * lane + i;
    expert[i] = 511 - static_cast<int>(v & 511u);
    float s = 0.0f, b = 0.0f;
    if (k < K && routed) {
      const std::uint16_t xb = reinterpret_cast<const std::uint16_t*>(x)[expert[i]];
      s = sh.table[sigmoid_bf16_index(xb)];
      b = sh.bias[(expert[i] / kVals) * (kVals + kLutBiasPad) + expert[i] % kVals];
    }
    wt[i] = s;
    key[i] = s + b;
  }
  // 5d. Neighbours in the top K with equal q: exact key order (equal keys are in index order).
  const float next_key = __shfl_sync(0xffffffffu, key[0], (lane + 1) & (kLanes - 1), kLanes);
  const std::uint32_t next_word =
      __shfl_sync(0xffffffffu, word[0], (lane + 1) & (kLanes - 1), kLanes);
  const bool bad_pair =
      (2 * lane + 1 < K && (word[0] >> 9) == (word[1] >> 9) && key[0] < key[1]) ||
      (lane < 3 && 2 * lane + 2 < K && (word[1] >> 9) == (next_word >> 9) && key[1] < next_key);
  const unsigned bad_lanes = __ballot_sync(0xffffffffu, bad_pair);
  ok = ok && (bad_lanes & row_mask) == 0u;

  const float routed_sum = packed_renormalize(p, wt);
  if (!active) return true;
  if (routed && !ok) return false;
  packed_store_row<kLanes>(kp, ids_int64, row, routed, lane, expert, wt, routed_sum);
  return true;
}

// kGrouped: groups of 32 experts, one per lane (kVals == 32, kLanes == num_groups). Dynamic shared
// memory: the exact path's group scores, (lut_threads(kLanes) / 32) * num_groups words when
// grouped.
template <int kVals, int kLanes, bool kGrouped>
__global__ void __launch_bounds__(lut_threads(kLanes, kVals), 1)
    routing_lut_kernel(const detail::RoutingKernelParams kp, const bool vec_ok,
                       const bool ids_int64) {
  pdl_begin();  // first: kernels/pdl.cuh
  __shared__ LutShared<kVals, kLanes> sh;
  const LutScale m = lut_load_shared<kVals, kLanes>(kp, sh);
  __syncthreads();
  constexpr int kWarps = lut_threads(kLanes, kVals) / 32;
  constexpr int kRowsPerWarp = 32 / kLanes;
  constexpr int kFallbackVals = detail::next_pow2(kLanes * kVals) / 32;
  const int warp = static_cast<int>(threadIdx.x) / 32;
  const int lane32 = static_cast<int>(threadIdx.x) & 31;
  const std::int64_t tiles = (kp.num_tokens + kRowsPerWarp - 1) / kRowsPerWarp;
  const std::int64_t step = static_cast<std::int64_t>(gridDim.x) * kWarps;
  for (std::int64_t tile = static_cast<std::int64_t>(warp) * gridDim.x + blockIdx.x; tile < tiles;
       tile += step) {
    const std::int64_t base = tile * kRowsPerWarp;
    const std::int64_t row = base + lane32 / kLanes;
    const bool active = row < kp.num_tokens;
    const bool settled =
        lut_route_row<kVals, kLanes, kGrouped>(kp, sh, m, vec_ok, ids_int64, row, active);
    if (active) SY_LUT_STATS(lane32 % kLanes, settled);
    // Rows not settled: the exact lane-group path, one row at a time with the whole warp.
    unsigned pending = __ballot_sync(0xffffffffu, !settled && (lane32 % kLanes) == 0);
    while (pending != 0u) {
      const int l = __ffs(pending) - 1;
      pending &= pending - 1u;
      route_row_lanes<detail::bf16_t, 32, kFallbackVals, false, false>(
          kp, vec_ok, ids_int64, base + l / kLanes, warp, nullptr);
      __syncwarp();  // (the next row reuses the warp's group-score words)
    }
  }
}

}  // namespace switchyard::kernels
