// The routing kernel for rows of 16-bit logits whose selection key is the logit itself (layout
// codes heuristics::kRoutingPackedCode..kRoutingPacked32Code), where detail::routing_packed_serves
// holds: softmax, top-k then softmax, top-k then sigmoid; no bias, softcap or groups; bf16 or fp16
// logits; 33 <= E <= 512, K <= 8. The heuristic's choice there for softmax at every M and for the
// top-k-then functions from 256 rows (heuristics::routing_packed_rows).
//
// Why: with such rows the keys need no arithmetic at all. A 16-bit logit's bit pattern maps to a
// 16-bit order key with a few integer operations (two per 32-bit word of two logits), and the key
// and the expert's index then fit one 32-bit word, (order << 16) | (0xffff - expert): a larger
// word is the better candidate (higher key, then lower index), so the whole selection is integer
// max / min on single registers, branch-free. Where the quad kernel (routing_quad.cuh) spends its
// time on candidate lists of varying length and ranks over them, here every lane does a fixed
// sequence of compare-exchanges.
//
// Per row (kLanes lanes, kVals consecutive experts per lane, kLanes * kVals = next_pow2(E)):
//  1. Load the lane's kVals logits (16-byte loads where aligned), map each word of two to order
//     keys (prmt with sign replication, then one xor), pack each with the lane's own index j
//     (prmt); the list entries get the global index after step 2.
//  2. The lane's top kList (= min(kTopK, kVals)) words, sorted descending: a sorting network on
//     each 8, then bitonic merges (top N of two sorted N-lists: c_i = max(a_i, b_{N-1-i}) is
//     bitonic and holds the top N; a bitonic cleaner sorts it).
//  3. The same merge across the kLanes lanes (XOR shuffles of the list): every lane then holds the
//     row's top kList, sorted.
//  4. Softmax: the maximum key is the first word's; terms exp_f(x - max) through exp_f_nonpos
//     (exact_math.h: the same bits where x - max >= -87), the pairwise tree of routing_row.h.
//  5. Weights and stores on lanes 0..3, output columns 2l and 2l + 1 on lane l: the CPU's
//     operations for finite keys (routing_finish_row's, less the cases the checks exclude), slot
//     sums over the 32-leaf tree (packed_slot_sum).
// Every lane of a warp runs every step (rows past the end and padded rows on zeros, without
// stores), so the shuffles take the full mask (per-row masks made the compiler wrap each shuffle in
// a convergence check).
//
// The 16-bit order key is exact for every number except -0 (it ranks one below +0, where the CPU
// ties them) and NaN (a positive NaN ranks above +Inf, a negative one below -Inf, where the CPU
// ranks every NaN lowest and ties them). A row takes the exact lane-group path (route_row_lanes,
// one warp per row, after the packed pass) when its selected words include a zero or a non-finite
// key, or, for softmax, when some x - max is below -87 or NaN. Otherwise: if a selected key is
// positive and finite, zeros rank below it either way; a NaN or -Inf outside the selection
// changes nothing but the softmax terms, which send the row to the exact path. So every row
// returns the CPU's bits.
#pragma once

#include <cstdint>
#include <type_traits>

#include "../../common/dtype_convert.h"
#include "../../common/routing_kernel_params.h"
#include "../../common/routing_row.h"
#include "pdl.cuh"
#include "routing.cuh"

// Statistics hook (the host emulator counts rows settled here and rows on the exact path).
#ifndef SY_PACKED_STATS
#define SY_PACKED_STATS(lane, ok) ((void)0)
#endif

namespace switchyard::kernels {

inline constexpr int kPackedThreads = 128;

// Per half of w: 0xffff where the half's sign bit is set, else 0 (prmt.b32 with sign
// replication: one instruction).
__device__ __forceinline__ std::uint32_t packed_sign_halves(std::uint32_t w) {
#if defined(__CUDA_ARCH__)
  std::uint32_t r;
  asm("prmt.b32 %0, %1, 0, 0xbb99;" : "=r"(r) : "r"(w));
  return r;
#else
  return ((w & 0x8000u) ? 0x0000ffffu : 0u) | ((w & 0x80000000u) ? 0xffff0000u : 0u);
#endif
}

// Order keys of the two 16-bit sign-magnitude floats of a word (one per half): u | 0x8000 for a
// positive pattern, ~u for a negative one (see the header for -0 and NaN).
__device__ __forceinline__ std::uint32_t packed_order_pair(std::uint32_t w) {
  return w ^ (packed_sign_halves(w) | 0x80008000u);
}

// The bytes of a and b picked by a prmt selector (plain copies: selector nibbles 0..7).
template <std::uint32_t kSel>
__device__ __forceinline__ std::uint32_t packed_bytes(std::uint32_t a, std::uint32_t b) {
#if defined(__CUDA_ARCH__)
  return __byte_perm(a, b, kSel);
#else
  const std::uint64_t v = (static_cast<std::uint64_t>(b) << 32) | a;
  std::uint32_t r = 0;
  for (int i = 0; i < 4; ++i) {
    const std::uint32_t sel = (kSel >> (4 * i)) & 7u;
    r |= static_cast<std::uint32_t>((v >> (8 * sel)) & 0xffu) << (8 * i);
  }
  return r;
#endif
}

// The 16-bit pattern whose order key is `o` (the inverse of packed_order_pair on one half).
__device__ __forceinline__ std::uint16_t packed_order_bits(std::uint32_t o) {
  return static_cast<std::uint16_t>((o & 0x8000u) ? (o ^ 0x8000u) : (~o & 0xffffu));
}

// Order keys of +Inf and -Inf for T (bf16_t or fp16_t): a selected key outside (ninf, pinf) is
// not finite.
template <typename T>
struct PackedLimits {
  static constexpr std::uint32_t kPosInf = std::is_same_v<T, detail::bf16_t> ? 0xff80u : 0xfc00u;
  static constexpr std::uint32_t kNegInf = std::is_same_v<T, detail::bf16_t> ? 0x007fu : 0x03ffu;
};

__device__ __forceinline__ void packed_cx(std::uint32_t& hi, std::uint32_t& lo) {
  const std::uint32_t a = hi, b = lo;
  hi = a > b ? a : b;
  lo = a > b ? b : a;
}

// Sorts a[8] descending: Batcher's odd-even merge sort (19 compare-exchanges, the fewest for 8
// inputs).
__device__ __forceinline__ void packed_sort8_desc(std::uint32_t (&a)[8]) {
  constexpr int kPairs[19][2] = {{0, 1}, {2, 3}, {4, 5}, {6, 7}, {0, 2}, {1, 3}, {4, 6},
                                 {5, 7}, {1, 2}, {5, 6}, {0, 4}, {1, 5}, {2, 6}, {3, 7},
                                 {2, 4}, {3, 5}, {1, 2}, {3, 4}, {5, 6}};
#pragma unroll
  for (int i = 0; i < 19; ++i) packed_cx(a[kPairs[i][0]], a[kPairs[i][1]]);
}

// a = the top kN of a and b, both sorted descending; a stays sorted.
template <int kN>
__device__ __forceinline__ void packed_merge_top(std::uint32_t (&a)[kN],
                                                 const std::uint32_t (&b)[kN]) {
#pragma unroll
  for (int i = 0; i < kN; ++i) a[i] = a[i] > b[kN - 1 - i] ? a[i] : b[kN - 1 - i];
#pragma unroll
  for (int j = kN / 2; j > 0; j /= 2) {
#pragma unroll
    for (int base = 0; base + 2 * j <= kN; base += 2 * j) {
#pragma unroll
      for (int i = base; i < base + j; ++i) packed_cx(a[i], a[i + j]);
    }
  }
}

// The lane's top kList of its kVals packed words, sorted descending.
template <int kVals, int kList>
__device__ __forceinline__ void packed_lane_top(const std::uint32_t (&c)[kVals],
                                                std::uint32_t (&list)[kList]) {
  if constexpr (kList == 1) {
    std::uint32_t m = c[0];
#pragma unroll
    for (int j = 1; j < kVals; ++j) m = c[j] > m ? c[j] : m;
    list[0] = m;
  } else {
    constexpr int kChunk = 8;
    static_assert(kVals % kChunk == 0 && kList <= kChunk, "packed layout");
#pragma unroll
    for (int ch = 0; ch < kVals / kChunk; ++ch) {
      std::uint32_t s[kChunk];
#pragma unroll
      for (int i = 0; i < kChunk; ++i) s[i] = c[ch * kChunk + i];
      packed_sort8_desc(s);
      if (ch == 0) {
#pragma unroll
        for (int i = 0; i < kList; ++i) list[i] = s[i];
      } else {
        std::uint32_t t[kList];
#pragma unroll
        for (int i = 0; i < kList; ++i) t[i] = s[i];
        packed_merge_top<kList>(list, t);
      }
    }
  }
}

// Weights of a row: the 32-leaf slot tree of routing_row.h with columns 2l, 2l + 1 on lane l
// of the row (columns 0..7 on lanes 0..3; every other leaf is 0): XOR shuffles 1 and 2 sum
// leaves 0..7, and the tree's upper levels add the zero subtrees of leaves 8..15 and 16..31.
__device__ __forceinline__ float packed_slot_sum(float w0, float w1) {
  float s = w0 + w1;
  s = s + __shfl_xor_sync(0xffffffffu, s, 1);
  s = s + __shfl_xor_sync(0xffffffffu, s, 2);
  return (s + 0.0f) + 0.0f;
}

// A lane's kVals 16-bit logits x[first..first + kVals) as words of two (0 past E, and everywhere
// when !load): 16-byte loads where the run is whole and vec_ok (16-byte aligned rows).
template <int kVals, typename T>
__device__ __forceinline__ void packed_load_words(const T* x, const int E, const int first,
                                                  const bool load, const bool vec_ok,
                                                  std::uint32_t (&w)[kVals / 2]) {
  static_assert(sizeof(T) == 2 && kVals % 8 == 0, "16-bit logits, whole 16-byte units");
  if (load && vec_ok && first + kVals <= E) {
    const uint4* src = reinterpret_cast<const uint4*>(x + first);
#pragma unroll
    for (int u = 0; u < kVals / 8; ++u) {
      const uint4 v = __ldg(src + u);
      w[4 * u] = v.x;
      w[4 * u + 1] = v.y;
      w[4 * u + 2] = v.z;
      w[4 * u + 3] = v.w;
    }
  } else {
    const std::uint16_t* bits = reinterpret_cast<const std::uint16_t*>(x);
#pragma unroll
    for (int i = 0; i < kVals / 2; ++i) {
      const int e = first + 2 * i;
      const std::uint32_t lo = load && e < E ? __ldg(bits + e) : 0u;
      const std::uint32_t hi = load && e + 1 < E ? __ldg(bits + e + 1) : 0u;
      w[i] = lo | (hi << 16);
    }
  }
}

// Renormalisation of a row's weights (columns 2 lane and 2 lane + 1 on lanes 0..3, finite, in
// [0, 1]) over the slot tree, and the routed sum the shared experts' weight needs. Every lane of
// the warp runs it (full-mask shuffles).
__device__ __forceinline__ float packed_renormalize(const RoutingParams& p, float (&wt)[2]) {
  if (p.renormalize) {
    const float sum = packed_slot_sum(wt[0], wt[1]);  // finite: weights are <= 1
    if (sum > 0.0f) {
      wt[0] = detail::div_f(wt[0], sum);
      wt[1] = detail::div_f(wt[1], sum);
    }
  }
  return p.num_shared_experts > 0 ? packed_slot_sum(wt[0], wt[1]) : 0.0f;
}

// Stores of one settled row from its kLanes lanes: expert[i] and wt[i] are output column
// 2 lane + i (lanes 0..3), routed_sum from packed_renormalize; a padded row (not routed) gets ids
// -1 and weights 0. The CPU's operations (routing_finish_row's) for such weights.
template <int kLanes>
__device__ __forceinline__ void packed_store_row(const detail::RoutingKernelParams& kp,
                                                 const bool ids_int64, const std::int64_t row,
                                                 const bool routed, const int lane,
                                                 const int (&expert)[2], const float (&wt)[2],
                                                 const float routed_sum) {
  using namespace detail;
  const RoutingParams& p = kp.p;
  const int K = p.top_k, S = p.num_shared_experts, cols = K + S;
  float* out_w = kp.weights + row * cols;
  if (!routed) {  // padding: ids -1, weights 0
    for (int col = lane; col < cols; col += kLanes) {
      out_w[col] = 0.0f;
      store_routing_id(kp, ids_int64, row * cols + col, -1);
    }
    return;
  }
  const float rsf = p.routed_scaling_factor;
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const int k = 2 * lane + i;
    if (k < K) {
      out_w[k] = p.apply_rsf_on_output ? wt[i] * rsf : wt[i];
      store_routing_id(kp, ids_int64, row * cols + k, map_routed_id(kp, expert[i], row, k));
    }
  }
  if (S > 0) {
    const float shared_w = p.apply_rsf_on_output ? routed_sum : div_f(routed_sum, rsf);
    for (int col = K + lane; col < cols; col += kLanes) {
      out_w[col] = shared_w;
      store_routing_id(kp, ids_int64, row * cols + col, shared_expert_id(kp, col - K));
    }
  }
}

// One row on its kLanes lanes. Every lane of the warp runs every step (rows past num_tokens and
// padded rows on zeros, without stores), so the shuffles take the full mask. Returns false when
// the row needs the exact path (see the header); it then stores nothing.
template <typename T, int kVals, int kLanes, int kList>
__device__ __forceinline__ bool packed_route_row(const detail::RoutingKernelParams& kp,
                                                 const bool vec_ok, const bool ids_int64,
                                                 const std::int64_t row, const bool active) {
  using namespace detail;
  static_assert(kLanes >= 4 && kList <= 8, "packed layout: columns 0..7 on lanes 0..3");
  const RoutingParams& p = kp.p;
  const int E = p.num_experts, K = p.top_k;
  const int lane = static_cast<int>(threadIdx.x) & (kLanes - 1);
  const bool routed = active && row < routing_non_padded_rows(kp);
  const T* x = static_cast<const T*>(kp.logits) + row * kp.row_stride;
  const int first = lane * kVals;

  // 1. Words of two logits (0 past the row and on rows not routed).
  std::uint32_t w[kVals / 2];
  packed_load_words<kVals>(x, E, first, routed, vec_ok, w);
  // Packed words with the lane's own index j (0xffff - j); the list's entries get the global
  // index below (0xffff - first - j: no borrow, first + j < 0xffff).
  std::uint32_t c[kVals];
#pragma unroll
  for (int i = 0; i < kVals / 2; ++i) {
    const std::uint32_t o = packed_order_pair(w[i]);
    constexpr std::uint32_t kTop = 0xffffu;
    const std::uint32_t idx = ((kTop - 2u * static_cast<std::uint32_t>(i) - 1u) << 16) |
                              (kTop - 2u * static_cast<std::uint32_t>(i));
    c[2 * i] = packed_bytes<0x1054>(o, idx);      // (o.lo << 16) | (0xffff - 2i)
    c[2 * i + 1] = packed_bytes<0x3276>(o, idx);  // (o.hi << 16) | (0xffff - 2i - 1)
  }
  if (first + kVals > E) {
#pragma unroll
    for (int j = 0; j < kVals; ++j) c[j] = first + j < E ? c[j] : 0u;
  }

  // 2-3. The row's top kList, on every lane of the row.
  std::uint32_t list[kList];
  packed_lane_top<kVals, kList>(c, list);
#pragma unroll
  for (int i = 0; i < kList; ++i) list[i] = list[i] != 0u ? list[i] - first : 0u;
#pragma unroll
  for (int off = 1; off < kLanes; off *= 2) {
    std::uint32_t other[kList];
#pragma unroll
    for (int i = 0; i < kList; ++i) other[i] = __shfl_xor_sync(0xffffffffu, list[i], off);
    packed_merge_top<kList>(list, other);
  }
  // ok: no zero or non-finite key among the selected (uniform over the row; else the exact path).
  bool ok = true;
#pragma unroll
  for (int i = 0; i < kList; ++i) {
    const std::uint32_t o = list[i] >> 16;
    const bool special = o >= PackedLimits<T>::kPosInf || o <= PackedLimits<T>::kNegInf ||
                         o == 0x7fffu || o == 0x8000u;
    ok = ok && !(i < K && special);
  }

  // 4. Softmax: maximum and pairwise sum; every x - max in [-87, 0] (else the exact path: the
  // minimum catches -Inf and values far below; a NaN logit makes the sum NaN).
  const float max_key = to_float(T{packed_order_bits(list[0] >> 16)});
  const ScoreFunc f = p.score_func;
  float softmax_sum = 0.0f;
  if (f == ScoreFunc::kSoftmax) {
    float terms[kVals];
    float dmin = 0.0f;
    // (Two copies: lanes that end past the row mask their leaves, the others need no test.)
    auto fill_terms = [&](auto partial) {
#pragma unroll
      for (int i = 0; i < kVals / 2; ++i) {
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const int j = 2 * i + h;
          const float v = to_float(T{static_cast<std::uint16_t>(h ? w[i] >> 16 : w[i] & 0xffffu)});
          const float d = v - max_key;
          if (decltype(partial)::value && first + j >= E) {
            terms[j] = 0.0f;
          } else {
            dmin = fminf(dmin, d);
            terms[j] = exp_f_nonpos(d);
          }
        }
      }
    };
    if (first + kVals <= E) {
      fill_terms(std::false_type{});
    } else {
      fill_terms(std::true_type{});
    }
    float sum = local_pairwise_sum<kVals>(terms);
#pragma unroll
    for (int off = 1; off < kLanes; off *= 2) sum = sum + __shfl_xor_sync(0xffffffffu, sum, off);
    softmax_sum = sum;
    const unsigned far = __ballot_sync(0xffffffffu, !(dmin >= -87.0f));
    const unsigned group = (kLanes == 32 ? 0xffffffffu : (1u << kLanes) - 1u)
                           << (static_cast<int>(threadIdx.x & 31u) & ~(kLanes - 1));
    ok = ok && (far & group) == 0u && !is_nan(sum);
  }

  // 5. Columns 2 lane and 2 lane + 1: experts, weights (the CPU's operations for finite keys).
  int expert[2];
  float wt[2];
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    std::uint32_t v = 0u;
#pragma unroll
    for (int l = 0; l < 4; ++l) {
      if (2 * l + i < kList) v = lane == l ? list[2 * l + i] : v;
    }
    const int k = 2 * lane + i;
    expert[i] = static_cast<int>(0xffffu - (v & 0xffffu));
    const float key = to_float(T{packed_order_bits(v >> 16)});
    float wk = 0.0f;
    if (k < K) {
      if (f == ScoreFunc::kSoftmax) {
        wk = div_f(exp_f_nonpos(key - max_key), softmax_sum);  // (sum >= 1: the maximum's term)
      } else if (f == ScoreFunc::kTopkThenSoftmax) {
        const float d = key - max_key;
        wk = d >= -87.0f ? exp_f_nonpos(d) : exp_f(d);  // normalised below
      } else {
        wk = sigmoid_f(key);
      }
    }
    wt[i] = wk;
  }
  if (f == ScoreFunc::kTopkThenSoftmax) {
    const float sum = packed_slot_sum(wt[0], wt[1]);  // >= 1: the top key's term
    wt[0] = div_f(wt[0], sum);
    wt[1] = div_f(wt[1], sum);
  }
  const float routed_sum = packed_renormalize(p, wt);
  if (!active) return true;
  if (routed && !ok) return false;
  packed_store_row<kLanes>(kp, ids_int64, row, routed, lane, expert, wt, routed_sum);
  return true;
}

// kTopK: K rounded up to 1, 4 or 8 (the list length, at most kVals). (__launch_bounds__: at
// least 8 blocks per SM, at most 64 registers, for up to 16 experts per lane and rows of up to 256
// leaves; else 4 blocks and 128 registers: the exact fallback for 512 leaves spills at 64.)
template <typename T, int kVals, int kLanes, int kTopK>
__global__ void __launch_bounds__(kPackedThreads, kVals <= 16 && kLanes * kVals <= 256 ? 8 : 4)
    routing_packed_kernel(const detail::RoutingKernelParams kp, const bool vec_ok,
                          const bool ids_int64) {
  static_assert(std::is_same_v<T, detail::bf16_t> || std::is_same_v<T, detail::fp16_t>, "dtype");
  pdl_begin();  // first: kernels/pdl.cuh
  constexpr int kList = kTopK < kVals ? kTopK : kVals;
  constexpr int kRows = kPackedThreads / kLanes;
  constexpr int kFallbackVals = kLanes * kVals / 32;
  const int r = static_cast<int>(threadIdx.x) / kLanes;
  const std::int64_t row = static_cast<std::int64_t>(blockIdx.x) * kRows + r;
  const bool active = row < kp.num_tokens;
  const bool settled =
      packed_route_row<T, kVals, kLanes, kList>(kp, vec_ok, ids_int64, row, active);
  if (active) SY_PACKED_STATS(threadIdx.x % kLanes, settled);
  // Rows not settled: the exact lane-group path, one row at a time with the whole warp.
  const int warp = static_cast<int>(threadIdx.x) / 32;
  unsigned pending = __ballot_sync(0xffffffffu, !settled && (threadIdx.x % kLanes) == 0);
  while (pending != 0u) {
    const int lane = __ffs(pending) - 1;
    pending &= pending - 1u;
    const std::int64_t fallback_row =
        static_cast<std::int64_t>(blockIdx.x) * kRows + warp * (32 / kLanes) + lane / kLanes;
    route_row_lanes<T, 32, kFallbackVals, false, false>(kp, vec_ok, ids_int64, fallback_row, warp,
                                                        nullptr);
  }
}

}  // namespace switchyard::kernels
