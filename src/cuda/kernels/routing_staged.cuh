// The routing kernel for many sigmoid rows of 128..512 experts: two threads per row, the rows of a
// warp staged in shared memory (layout code heuristics::kRoutingStagedCode; where
// detail::routing_staged_segs serves the routing and the logits rows are 16-byte aligned).
//
// Why: the quad kernel (routing_quad.cuh) spends its instructions on the 4-lane steps of each row
// (broadcasts, butterflies, candidate loops as long as the warp's slowest quad) and holds the row
// in registers (145-210 of them, 8-12 warps per SM). Here each thread of a pair works alone on half
// the row's segments, the row lives in shared memory, and the pair meets only a few times (a
// ballot, three __syncwarp, one shuffle of counts, a merge of two sorted lists of 8). A warp copies
// its 16 rows there with coalesced 16-byte cp.async (rows padded to an odd number of 16-byte
// units, so that threads reading the same column of their rows hit distinct banks).
// (Measured, session 12: one thread per row, 32 rows per warp, was slower at every size: its warps'
// serial chains were twice as long and half as many; copying each pair's own row in groups of two
// segments, so that pass 1 could start early, was slower too.)
//
// Per row, the quad kernel's selection in other words:
//  1. Pass 1 (thread h: segments h, h + 2, ...; a segment is an aligned run of 32 experts):
//     approximate keys a = approx_sigmoid(raw) + bias (within delta(a) of the exact key:
//     routing_prefilter.cuh), the top-2 of a in each half segment (16 experts; a NaN key turns its
//     half's maximum NaN: the row takes the exact path, step 6, as it does when a bias is not
//     finite), and a written back as a half (round to nearest: h(a), a monotone function of a) at
//     the start of the segment's own bytes.
//  2. Groups (both threads, the same answer; a group is a segment, its top-2 from its halves'): the
//     bounds of routing_quad.cuh step 2 settle the kept groups (else the exact path), compared as
//     floats (keys are not NaN here, and order keys order as floats do).
//  3. Threshold (both threads): A = the K-th largest pool key, the pool being the kept groups'
//     half-segment top-2 (4 per group) or every segment's top-2: distinct selectable experts, >= K
//     of them (the rule). As in the quad kernel, T = A less two 2-eps steps is below every key of
//     the exact top K (routing_quad.cuh step 4). (Half-segment top-2 rather than group top-3: as
//     tight a pool, simulated on the benchmark's logits, for 3 instead of 5 min / max per expert.)
//  4. Pass 2 (thread h: the selectable segments h, h + 2, ... in order): candidates are the experts
//     with h(a) >= h(T), a superset of those with a >= T since h is monotone (and h(a) >= h(A)
//     holds for >= K of them). Their indices go to the thread's list in the row's words of shared
//     memory (more than kStagedLaneCands on a thread: the exact path).
//  5. Exact finish: each thread reads its candidates' raw logits again (global memory, L2),
//     computes their exact keys (the CPU's sigmoid_f + bias) and ranks them by (order key, lower
//     index) in a sorted list of kStagedMaxK, keeping the exact scores for the weights; a bitonic
//     merge of the two lists gives both threads the pair's best 8. The exact top K lies inside the
//     candidates and the order is total: the CPU's selection, bit for bit. Weights and stores are
//     routing_finish_row's, 4 columns per thread (the slot sum is the pairwise tree over 8 leaves,
//     the CPU's 32-leaf tree with zero leaves).
//  6. Rows not settled: after the pairs' pass, the warp routes them one by one with all 32 lanes on
//     the exact lane-group path (route_row_lanes, kPrefilter off), as the quad kernel does.
#pragma once

#include <cstdint>
#include <cstring>

#include "../../common/dtype_convert.h"
#include "../../common/exact_math.h"
#include "../../common/routing_kernel_params.h"
#include "../../common/routing_row.h"
#include "approx_sigmoid.cuh"
#include "lane_group.cuh"
#include "routing.cuh"
#include "routing_quad.cuh"
#include "routing_row_thread.cuh"

// Diagnostics hook of the host emulator (rows settled / sent to the exact path, candidates).
#ifndef SY_STAGED_STATS
#define SY_STAGED_STATS(ok, n) ((void)0)
#endif

namespace switchyard::kernels {

inline constexpr int kStagedWarps = 4;  // warps per block
inline constexpr int kStagedThreads = 32 * kStagedWarps;
inline constexpr int kStagedLanes = 2;                     // threads per row
inline constexpr int kStagedWarpRows = 32 / kStagedLanes;  // rows per warp
inline constexpr int kStagedLaneCands = 16;                // candidates per thread
inline constexpr int kStagedMaxK = 8;
inline constexpr int kStagedSlots = kStagedMaxK / kStagedLanes;  // output columns per thread

// Dynamic shared memory of a block, in bytes: the exact path's group scores (route_row_lanes'
// group_smem, num_groups words per warp, at offset 0), the bias (E floats, zeros without bias),
// then per warp its kStagedWarpRows staged rows and those rows' words: segment results (the top-2
// of each half segment, 4 per segment), reused for the pair's candidate lists (two 16-bit indices
// per word, kStagedLaneCands per thread).
struct StagedLayout {
  int stride;     // bytes per staged row: an odd number of 16-byte units
  int row_words;  // words per row (segment results, then the two threads' candidate lists)
  int groups_bytes;
  int bias_bytes;
  int warp_bytes;
  int total_bytes;
};
SY_HD constexpr int staged_round16(int v) {
  return (v + 15) / 16 * 16;
}
SY_HD constexpr StagedLayout staged_layout(int num_experts, int elem_bytes, int num_groups) {
  StagedLayout l{};
  const int units = num_experts * elem_bytes / 16;
  l.stride = 16 * ((units + 1) | 1);
  const int segs = num_experts / 32;
  l.row_words = 4 * segs > kStagedLaneCands ? 4 * segs : kStagedLaneCands;
  l.groups_bytes = staged_round16(kStagedWarps * num_groups * 4);
  l.bias_bytes = staged_round16(num_experts * 4);
  l.warp_bytes = kStagedWarpRows * (l.stride + l.row_words * 4);
  l.total_bytes = l.groups_bytes + l.bias_bytes + kStagedWarps * l.warp_bytes;
  return l;
}

// 16 bytes global -> shared without registers (cp.async; a plain copy on the host emulator).
__device__ __forceinline__ void staged_copy16(void* smem_dst, const void* gmem_src) {
#if defined(__CUDA_ARCH__)
  const auto dst = static_cast<unsigned>(__cvta_generic_to_shared(smem_dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(dst), "l"(gmem_src) : "memory");
#else
  std::memcpy(smem_dst, gmem_src, 16);
#endif
}
__device__ __forceinline__ void staged_copy_wait() {
#if defined(__CUDA_ARCH__)
  asm volatile("cp.async.wait_all;" ::: "memory");
#endif
}

#if !defined(__CUDA_ARCH__)
// Host model of the half conversions (tools/simt_emu): round to nearest even, overflow to Inf.
inline std::uint32_t host_half_bits(float f) {
  const std::uint32_t x = detail::float_to_bits(f);
  const std::uint32_t sign = (x >> 16) & 0x8000u, a = x & 0x7fffffffu;
  if (a > 0x7f800000u) return sign | 0x7e00u;
  if (a >= 0x477ff000u) return sign | 0x7c00u;
  if (a < 0x38800000u) {  // below 2^-14: a multiple of 2^-24
    const double m = static_cast<double>(detail::bits_to_float(a)) * 0x1p24;
    double r = static_cast<double>(static_cast<std::uint32_t>(m));
    const double frac = m - r;
    if (frac > 0.5 || (frac == 0.5 && (static_cast<std::uint32_t>(r) & 1u))) r += 1.0;
    return sign | static_cast<std::uint32_t>(r);
  }
  const std::uint32_t r = a - (112u << 23);
  return sign | ((r + 0xfffu + ((r >> 13) & 1u)) >> 13);
}
inline float host_half_value(std::uint32_t h) {
  const std::uint32_t sign = (h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
  if (e == 0) {
    const float v = static_cast<float>(m) * 0x1p-24f;
    return sign ? -v : v;
  }
  if (e == 31) return detail::bits_to_float(sign | 0x7f800000u | (m << 13));
  return detail::bits_to_float(sign | ((e + 112u) << 23) | (m << 13));
}
#endif

// Two floats as halves (round to nearest even, a monotone map), lo in the low 16 bits.
__device__ __forceinline__ std::uint32_t staged_pack(float lo, float hi) {
#if defined(__CUDA_ARCH__)
  std::uint32_t r;
  asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
  return r;
#else
  return host_half_bits(lo) | (host_half_bits(hi) << 16);
#endif
}
// The two halves of w as floats (exact).
__device__ __forceinline__ void staged_unpack(std::uint32_t w, float& lo, float& hi) {
#if defined(__CUDA_ARCH__)
  asm("{\n .reg .b16 l, h;\n mov.b32 {l, h}, %2;\n cvt.f32.f16 %0, l;\n cvt.f32.f16 %1, h;\n}"
      : "=f"(lo), "=f"(hi)
      : "r"(w));
#else
  lo = host_half_value(w & 0xffffu);
  hi = host_half_value(w >> 16);
#endif
}

// max that propagates NaN (PTX max.NaN): a NaN key poisons its half's maximum.
__device__ __forceinline__ float staged_max_nan(float a, float b) {
#if defined(__CUDA_ARCH__)
  float r;
  asm("max.NaN.f32 %0, %1, %2;" : "=f"(r) : "f"(a), "f"(b));
  return r;
#else
  return a != a || b != b ? a + b : (a > b ? a : b);
#endif
}

// Eight logits from a staged row (16 bytes per 8 halves, 32 per 8 floats).
template <typename T>
__device__ __forceinline__ void staged_load8(const unsigned char* p, float (&v)[8]) {
  constexpr int kUnits = 8 * static_cast<int>(sizeof(T)) / 16;
  union {
    uint4 u[kUnits];
    T e[8];
  } buf;
#pragma unroll
  for (int i = 0; i < kUnits; ++i) buf.u[i] = reinterpret_cast<const uint4*>(p)[i];
#pragma unroll
  for (int i = 0; i < 8; ++i) v[i] = detail::to_float(buf.e[i]);
}

// (order, expert, candidate slot) packed so that a larger value is the better candidate: higher
// order, then the lower expert index (experts are distinct, so the slot never decides).
__device__ __forceinline__ std::uint64_t staged_candidate(std::uint32_t order, int expert,
                                                          int slot) {
  return (static_cast<std::uint64_t>(order) << 32) |
         ((0xffffu - static_cast<std::uint32_t>(expert)) << 16) | static_cast<std::uint32_t>(slot);
}

// Word k of a row's words (a stride of kStagedWarpRows: the rows of a warp side by side).
__device__ __forceinline__ float* staged_word(std::uint32_t* words, int k) {
  return reinterpret_cast<float*>(words + k * kStagedWarpRows);
}
// Candidate list entry i of thread h of a row: 16 bits of the row's words h * 8 + i / 2.
__device__ __forceinline__ std::uint16_t* staged_list_entry(std::uint32_t* words, int h, int i) {
  return reinterpret_cast<std::uint16_t*>(words + (h * (kStagedLaneCands / 2) + (i >> 1)) *
                                                      kStagedWarpRows) +
         (i & 1);
}

// Compare-exchange: a keeps the larger.
__device__ __forceinline__ void staged_cx(std::uint64_t& a, std::uint64_t& b) {
  const std::uint64_t hi = a > b ? a : b, lo = a > b ? b : a;
  a = hi;
  b = lo;
}

// Steps 1-5 for the row of this pair of threads (h = 0, 1). Returns false (on both threads) when
// the row must take the exact path.
template <typename T, int kSegs, bool kGrouped>
__device__ __forceinline__ bool staged_route_row(const detail::RoutingKernelParams& kp,
                                                 const bool ids_int64, const std::int64_t row,
                                                 unsigned char* my, std::uint32_t* words,
                                                 const float* bias_s, const bool bias_finite) {
  using namespace detail;
  const RoutingParams& p = kp.p;
  const LaneGroup<kStagedLanes> grp;
  const int h = grp.lane;
  const int E = p.num_experts, K = p.top_k, segs = E / 32;

  // 1. Pass 1 (thread h: segments h, h + 2, ...): keys, the top-2 of every half segment (16
  // experts; its maximum turns NaN if a key is NaN), keys written back as halves.
  bool nan_seen = !bias_finite;
  float least = pos_inf();  // the smallest |logit|: finite iff the row has a finite logit
#pragma unroll 1
  for (int s = h; s < segs; s += kStagedLanes) {
    float b[2], sc[2];
#pragma unroll
    for (int c = 0; c < 4; ++c) {
      const int j0 = s * 32 + c * 8;
      float v[8];
      staged_load8<T>(my + j0 * static_cast<int>(sizeof(T)), v);
      const float4 b0 = reinterpret_cast<const float4*>(bias_s)[j0 / 4];
      const float4 b1 = reinterpret_cast<const float4*>(bias_s)[j0 / 4 + 1];
      const float bias[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
      float a[8];
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        least = fminf(least, fabsf(v[i]));
        a[i] = approx_sigmoid(v[i]) + bias[i];
      }
      if (c % 2 == 0) {
        b[c / 2] = neg_inf();
        sc[c / 2] = neg_inf();
      }
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        const float hi = staged_max_nan(b[c / 2], a[i]), lo = fminf(b[c / 2], a[i]);
        b[c / 2] = hi;
        sc[c / 2] = fmaxf(sc[c / 2], lo);
      }
      // Halves at the start of the segment's own bytes (for 2-byte logits, over the logits
      // themselves), written after the reads of this unit: for float logits the halves of units
      // <= c land on this segment's bytes already read.
      uint4 hv;
      hv.x = staged_pack(a[0], a[1]);
      hv.y = staged_pack(a[2], a[3]);
      hv.z = staged_pack(a[4], a[5]);
      hv.w = staged_pack(a[6], a[7]);
      *reinterpret_cast<uint4*>(my + s * 32 * static_cast<int>(sizeof(T)) + 16 * c) = hv;
    }
    nan_seen = nan_seen || is_nan(b[0]) || is_nan(b[1]);
    *staged_word(words, 4 * s) = b[0];
    *staged_word(words, 4 * s + 1) = sc[0];
    *staged_word(words, 4 * s + 2) = b[1];
    *staged_word(words, 4 * s + 3) = sc[1];
  }
  // A NaN key, or no finite logit (ids 0..K-1 with weight 0, although sigmoid(-Inf) + bias keys
  // are finite): the exact path.
  if (grp.ballot(nan_seen) != 0u || grp.ballot(least < pos_inf()) == 0u) return false;
  __syncwarp(grp.mask);  // both threads' segment results

  // 2. Groups (both threads, the same answer): kept only if the bounds settle them
  // (routing_quad.cuh step 2), on floats: keys are not NaN here, and order keys order as floats do
  // (-0 == +0).
  unsigned selectable = segs >= 32 ? 0xffffffffu : (1u << segs) - 1u;
  if constexpr (kGrouped) {
    float glo[kSegs], ghi[kSegs];
#pragma unroll
    for (int g = 0; g < kSegs; ++g) {
      glo[g] = neg_inf();
      ghi[g] = neg_inf();
      if (g < segs) {
        // The group's top-2 from its halves' (duplicates kept, as top2_insert).
        const float b0 = *staged_word(words, 4 * g), s0 = *staged_word(words, 4 * g + 1);
        const float b1 = *staged_word(words, 4 * g + 2), s1 = *staged_word(words, 4 * g + 3);
        const float gb = fmaxf(b0, b1), gs = fmaxf(fminf(b0, b1), fmaxf(s0, s1));
        const bool top2 = p.group_score == GroupScore::kTop2Sum;
        glo[g] = quad_shift(gb, 2.0f) + (top2 ? quad_shift(gs, 2.0f) : 0.0f);
        ghi[g] = quad_shift(gb, -2.0f) + (top2 ? quad_shift(gs, -2.0f) : 0.0f);
      }
    }
    float level = neg_inf();
    bool found = false;
#pragma unroll
    for (int g = 0; g < kSegs; ++g) {
      int at_least = 0;
#pragma unroll
      for (int i = 0; i < kSegs; ++i) at_least += i < segs && glo[i] >= glo[g] ? 1 : 0;
      const bool ok = g < segs && at_least >= p.topk_groups;
      level = ok && (!found || glo[g] > level) ? glo[g] : level;
      found = found || ok;
    }
    unsigned kept = 0u;
#pragma unroll
    for (int g = 0; g < kSegs; ++g) kept |= g < segs && ghi[g] >= level ? 1u << g : 0u;
    if (!found || __popc(kept) != p.topk_groups) return false;
    selectable = kept;
  }

  // 3. Threshold (both threads): the K-th largest pool key (a sorted list of kStagedMaxK,
  // duplicates kept).
  float top[kStagedMaxK];
#pragma unroll
  for (int i = 0; i < kStagedMaxK; ++i) top[i] = neg_inf();
  const auto push = [&](float v) {
#pragma unroll
    for (int i = 0; i < kStagedMaxK; ++i) {
      const float hi = fmaxf(top[i], v);
      v = fminf(top[i], v);
      top[i] = hi;
    }
  };
  const int nsel = __popc(selectable);  // topk_groups or segs: uniform
  {
    unsigned m = selectable;
#pragma unroll 1
    for (int q = 0; q < nsel; ++q) {
      const int g = __ffs(static_cast<int>(m)) - 1;
      m &= m - 1u;
      const float b0 = *staged_word(words, 4 * g), s0 = *staged_word(words, 4 * g + 1);
      const float b1 = *staged_word(words, 4 * g + 2), s1 = *staged_word(words, 4 * g + 3);
      if constexpr (kGrouped) {  // the halves' top-2: 4 distinct experts per kept group
        push(b0);
        push(s0);
        push(b1);
        push(s1);
      } else {  // the segment's top-2
        push(fmaxf(b0, b1));
        push(fmaxf(fminf(b0, b1), fmaxf(s0, s1)));
      }
    }
  }
  float kth = top[0];
#pragma unroll
  for (int i = 1; i < kStagedMaxK; ++i) kth = select_f32(i == K - 1, top[i], kth);
  const float thr = quad_shift(quad_shift(kth, 2.0f), 2.0f);
  float thr_h, unused;
  staged_unpack(staged_pack(thr, 0.0f), thr_h, unused);
  __syncwarp(grp.mask);  // the segment results are read: the words take the candidate lists

  // 4. Pass 2 (thread h: the selectable segments h, h + 2, ... in order): candidates h(a) >= h(T),
  // as a list of expert indices per thread.
  int n = 0;
  {
    unsigned m = selectable;
    if (h == 1) m &= m - 1u;
#pragma unroll 1
    for (int q = h; q < nsel; q += kStagedLanes) {
      const int g = __ffs(static_cast<int>(m)) - 1;
      m &= m - 1u;
      m &= m - 1u;
      const uint4* kk = reinterpret_cast<const uint4*>(my + g * 32 * static_cast<int>(sizeof(T)));
      unsigned bits = 0u;
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        const uint4 w = kk[c];
        const std::uint32_t ws[4] = {w.x, w.y, w.z, w.w};
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          float lo, hi;
          staged_unpack(ws[i], lo, hi);
          bits |= (lo >= thr_h ? 1u : 0u) << (c * 8 + 2 * i);
          bits |= (hi >= thr_h ? 1u : 0u) << (c * 8 + 2 * i + 1);
        }
      }
      while (bits != 0u) {
        const int bit = __ffs(static_cast<int>(bits)) - 1;
        bits &= bits - 1u;
        if (n < kStagedLaneCands) {
          *staged_list_entry(words, h, n) = static_cast<std::uint16_t>(32 * g + bit);
        }
        ++n;
      }
    }
  }
  const int n_other = grp.xor_shuffle(n, 1);
  if (h == 0) {
    SY_STAGED_STATS(n <= kStagedLaneCands && n_other <= kStagedLaneCands && n + n_other >= K,
                    n + n_other);
  }
  if (n > kStagedLaneCands || n_other > kStagedLaneCands || n + n_other < K) return false;
  __syncwarp(grp.mask);  // both threads are done with the halves: the row's bytes take the scores

  // 5. Exact keys of this thread's candidates (their logits read again), a sorted list of the best
  // kStagedMaxK; the exact scores go to the row's staged bytes, slot h * kStagedLaneCands + i.
  const T* x = static_cast<const T*>(kp.logits) + row * kp.row_stride;
  float* scores = reinterpret_cast<float*>(my);
  std::uint64_t best[kStagedMaxK];
#pragma unroll
  for (int i = 0; i < kStagedMaxK; ++i) best[i] = 0u;
#pragma unroll 1
  for (int i = 0; i < n; i += 4) {
    int e[4];
    float raw[4];
#pragma unroll
    for (int u = 0; u < 4; ++u) e[u] = *staged_list_entry(words, h, i + u < n ? i + u : i);
#pragma unroll
    for (int u = 0; u < 4; ++u) raw[u] = to_float(x[e[u]]);
#pragma unroll
    for (int u = 0; u < 4; ++u) {
      if (i + u < n) {
        const int slot = h * kStagedLaneCands + i + u;
        const float score = sigmoid_f(raw[u]);
        scores[slot] = score;
        insert_candidate<kStagedMaxK>(
            best, staged_candidate(order_key(score + bias_s[e[u]]), e[u], slot));
      }
    }
  }
  // The pair's best kStagedMaxK: the larger of mine[i] and the other's [7 - i] is a bitonic
  // sequence of the 8 best of both lists; a bitonic merge sorts it (descending). Both threads end
  // with the same list.
  std::uint64_t c[kStagedMaxK];
#pragma unroll
  for (int i = 0; i < kStagedMaxK; ++i) {
    const std::uint64_t o = grp.xor_shuffle(best[kStagedMaxK - 1 - i], 1);
    c[i] = best[i] > o ? best[i] : o;
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) staged_cx(c[i], c[i + 4]);
  staged_cx(c[0], c[2]);
  staged_cx(c[1], c[3]);
  staged_cx(c[4], c[6]);
  staged_cx(c[5], c[7]);
#pragma unroll
  for (int i = 0; i < kStagedMaxK; i += 2) staged_cx(c[i], c[i + 1]);
  __syncwarp(grp.mask);  // both threads' scores

  // Thread h holds output columns h * kStagedSlots + i.
  int slot_expert[kStagedSlots];
  std::uint32_t slot_ord[kStagedSlots];
  float slot_score[kStagedSlots];
#pragma unroll
  for (int i = 0; i < kStagedSlots; ++i) {
    const int k = h * kStagedSlots + i;
    const std::uint64_t ck = h == 0 ? c[i] : c[kStagedSlots + i];
    const bool have = k < K;
    slot_expert[i] = have ? static_cast<int>(0xffffu - ((ck >> 16) & 0xffffu)) : k;
    slot_ord[i] = have ? static_cast<std::uint32_t>(ck >> 32) : 0u;
    slot_score[i] = have ? scores[ck & 0xffffu] : 0.0f;
  }
  routing_finish_row<T, kStagedLanes, kStagedSlots>(grp, kp, ids_int64, row, x, true, true,
                                                    slot_expert, slot_ord, slot_score, neg_inf(),
                                                    0.0f, [](int) {});
  return true;
}

// One block: kStagedWarps warps of kStagedWarpRows rows, two threads per row. kSegs: segments per
// row held (>= E / 32: 8 or 16).
template <typename T, int kSegs, bool kGrouped>
__global__ void __launch_bounds__(kStagedThreads, 1)
    routing_staged_kernel(const detail::RoutingKernelParams kp, const bool ids_int64) {
  pdl_begin();  // first: kernels/pdl.cuh
  using namespace detail;
  extern __shared__ __align__(16) unsigned char staged_smem[];
  const RoutingParams& p = kp.p;
  const int E = p.num_experts;
  const StagedLayout l = staged_layout(E, static_cast<int>(sizeof(T)), kGrouped ? p.num_groups : 0);
  const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
  const int r = lane / kStagedLanes;
  float* bias_s = reinterpret_cast<float*>(staged_smem + l.groups_bytes);
  unsigned char* rows_s = staged_smem + l.groups_bytes + l.bias_bytes + warp * l.warp_bytes;
  auto* words = reinterpret_cast<std::uint32_t*>(rows_s + kStagedWarpRows * l.stride) + r;
  unsigned char* my = rows_s + r * l.stride;

  bool bias_bad = false;
  for (int j = static_cast<int>(threadIdx.x); j < E; j += kStagedThreads) {
    const float b = kp.bias ? __ldg(kp.bias + j) : 0.0f;
    bias_s[j] = b;
    bias_bad = bias_bad || !is_finite(b);
  }
  // Stage this warp's rows: 16-byte units, lane-strided within each row (coalesced).
  const std::int64_t row0 =
      (static_cast<std::int64_t>(blockIdx.x) * kStagedWarps + warp) * kStagedWarpRows;
  const std::int64_t left = kp.num_tokens - row0;
  const int nrows =
      static_cast<int>(left < kStagedWarpRows ? (left > 0 ? left : 0) : kStagedWarpRows);
  const int units = E * static_cast<int>(sizeof(T)) / 16;
  const auto* src = static_cast<const unsigned char*>(kp.logits);
  const std::int64_t src_stride = kp.row_stride * static_cast<std::int64_t>(sizeof(T));
#pragma unroll 1
  for (int u = lane; u < units; u += 32) {
    const unsigned char* g = src + row0 * src_stride + u * 16;
    unsigned char* d = rows_s + u * 16;
#pragma unroll 4
    for (int i = 0; i < nrows; ++i) {
      staged_copy16(d, g);
      g += src_stride;
      d += l.stride;
    }
  }
  staged_copy_wait();
  // The bias and every lane's copies; a non-finite bias sends the block's rows to the exact path.
  const bool bias_finite = __syncthreads_or(bias_bad) == 0;

  const std::int64_t row = row0 + r;
  bool settled = true;
  if (r < nrows) {  // (uniform across the pair)
    const std::int64_t non_padded = routing_non_padded_rows(kp);
    if (row >= non_padded) {
      const int cols = p.top_k + p.num_shared_experts;
      for (int c = lane % kStagedLanes; c < cols; c += kStagedLanes) {
        kp.weights[row * cols + c] = 0.0f;
        store_routing_id(kp, ids_int64, row * cols + c, -1);
      }
    } else {
      settled =
          staged_route_row<T, kSegs, kGrouped>(kp, ids_int64, row, my, words, bias_s, bias_finite);
    }
  }
  // 6. Unsettled rows: the exact lane-group path, one row at a time with the whole warp.
  constexpr int kFallbackVals = next_pow2(32 * kSegs) / 32;
  unsigned pending = __ballot_sync(0xffffffffu, !settled && lane % kStagedLanes == 0);
  while (pending != 0u) {
    const int l0 = __ffs(static_cast<int>(pending)) - 1;
    pending &= pending - 1u;
    route_row_lanes<T, 32, kFallbackVals, false, false>(kp, true, ids_int64,
                                                        row0 + l0 / kStagedLanes, warp, nullptr);
    __syncwarp();  // the next row reuses this warp's group scores in shared memory
  }
}

}  // namespace switchyard::kernels
