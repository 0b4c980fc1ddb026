// The routing kernel for many sigmoid rows of 128..512 experts: one thread per row, the rows of a
// warp staged in shared memory (layout code heuristics::kRoutingStagedCode; where
// detail::routing_staged_segs serves the routing).
//
// Why: the quad kernel (routing_quad.cuh) spends its instructions on the 4-lane steps of each row
// (broadcasts, butterflies, candidate loops as long as the warp's slowest quad) and holds the row
// in registers (145-210 of them, 8-12 warps per SM). Here a thread routes its row alone, so no step
// is cross-lane, and the row lives in shared memory: a warp copies its 32 rows there with
// coalesced 16-byte cp.async (rows padded to an odd number of 16-byte units, so that the 32 threads
// reading the same column of their rows hit distinct banks).
//
// Per row (one thread), the quad kernel's selection in other words:
//  1. Pass 1, segment by segment (aligned runs of 32 experts): approximate keys
//     a = approx_sigmoid(raw) + bias (within delta(a) of the exact key: routing_prefilter.cuh), the
//     top-2 of a in each half segment (16 experts; a NaN key turns its half's maximum NaN: the row
//     takes the exact path, step 6, as it does when a bias is not finite), and a written back over
//     the raw logits as a half (round to nearest: h(a), a monotone function of a).
//  2. Groups (a group is a segment; its top-2 from its halves'): the bounds of routing_quad.cuh
//     step 2 settle the kept groups (else the exact path), compared as floats (keys are not NaN
//     here, and order keys order as floats do).
//  3. Threshold: A = the K-th largest pool key, the pool being the kept groups' half-segment top-2
//     (4 per group) or every segment's top-2: distinct selectable experts, >= K of them (the rule).
//     As in the quad kernel, T = A less two 2-eps steps is below every key of the exact top K
//     (routing_quad.cuh step 4). (Half-segment top-2 rather than group top-3: as tight a pool,
//     simulated on the benchmark's logits, for 3 instead of 5 min / max per expert.)
//  4. Pass 2 over the selectable segments: candidates are the experts with h(a) >= h(T), a
//     superset of those with a >= T since h is monotone (and h(a) >= h(A) holds for >= K of them).
//     Their indices go to a list in the thread's words of shared memory (more than
//     kStagedMaxCands: the exact path).
//  5. Exact finish: each candidate's raw logit is read again (global memory, L2), its exact key
//     (the CPU's sigmoid_f + bias) ranks it by (order key, lower index) in a sorted list of
//     kStagedMaxK; its exact score is kept for the weights. The exact top K lies inside the
//     candidates and the order is total: the CPU's selection, bit for bit. Weights and stores are
//     routing_finish_row's (a group of one lane: the slot sum is the pairwise tree over 8 leaves,
//     the CPU's 32-leaf tree with zero leaves).
//  6. Rows not settled: after the thread pass, the warp routes them one by one with all 32 lanes on
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

inline constexpr int kStagedWarps = 2;  // warps per block, 32 rows each
inline constexpr int kStagedThreads = 32 * kStagedWarps;
inline constexpr int kStagedMaxCands = 32;  // candidates per row
inline constexpr int kStagedMaxK = 8;

// Dynamic shared memory of a block, in bytes: the exact path's group scores (route_row_lanes'
// group_smem, num_groups words per warp, at offset 0), the bias (E floats, zeros without bias),
// then per warp its 32 staged rows and 32 lanes' words of segment results (the top-2 of each half
// segment, 4 per segment; reused for the candidate list, two 16-bit indices per word).
struct StagedLayout {
  int stride;     // bytes per staged row: an odd number of 16-byte units
  int seg_words;  // words per lane
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
  l.seg_words = 4 * segs > kStagedMaxCands / 2 ? 4 * segs : kStagedMaxCands / 2;
  l.groups_bytes = staged_round16(kStagedWarps * num_groups * 4);
  l.bias_bytes = staged_round16(num_experts * 4);
  l.warp_bytes = 32 * l.stride + 32 * l.seg_words * 4;
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

// Candidate list entry i of a lane: 16 bits of the lane's words (word i / 2, at a stride of 32).
__device__ __forceinline__ std::uint16_t* staged_list_entry(std::uint32_t* words, int i) {
  return reinterpret_cast<std::uint16_t*>(words + (i >> 1) * 32) + (i & 1);
}

// Steps 1-5 for the row of this thread. Returns false when the row must take the exact path.
template <typename T, int kSegs, bool kGrouped>
__device__ __forceinline__ bool staged_route_row(const detail::RoutingKernelParams& kp,
                                                 const bool ids_int64, const std::int64_t row,
                                                 unsigned char* my, std::uint32_t* words,
                                                 const float* bias_s, const bool bias_finite) {
  using namespace detail;
  const RoutingParams& p = kp.p;
  const int E = p.num_experts, K = p.top_k, segs = E / 32;
  float* seg = reinterpret_cast<float*>(words);
  bool nan_seen = !bias_finite;

  // 1. Pass 1: keys, the top-2 of every half segment (16 experts; its maximum turns NaN if a key
  // is NaN), keys written back as halves.
#pragma unroll 1
  for (int s = 0; s < segs; ++s) {
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
      for (int i = 0; i < 8; ++i) a[i] = approx_sigmoid(v[i]) + bias[i];
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
      // (Written after the reads of this unit: for float logits the halves of units <= c land
      // on bytes already read.)
      uint4 h;
      h.x = staged_pack(a[0], a[1]);
      h.y = staged_pack(a[2], a[3]);
      h.z = staged_pack(a[4], a[5]);
      h.w = staged_pack(a[6], a[7]);
      *reinterpret_cast<uint4*>(my + 2 * j0) = h;
    }
    nan_seen = nan_seen || is_nan(b[0]) || is_nan(b[1]);
    seg[(4 * s) * 32] = b[0];
    seg[(4 * s + 1) * 32] = sc[0];
    seg[(4 * s + 2) * 32] = b[1];
    seg[(4 * s + 3) * 32] = sc[1];
  }
  if (nan_seen) return false;

  // 2. Groups: kept only if the bounds settle them (routing_quad.cuh step 2), on floats: keys are
  // not NaN here, and order keys compare as the floats do (-0 == +0).
  unsigned selectable = segs >= 32 ? 0xffffffffu : (1u << segs) - 1u;
  if constexpr (kGrouped) {
    float glo[kSegs], ghi[kSegs];
#pragma unroll
    for (int g = 0; g < kSegs; ++g) {
      glo[g] = neg_inf();
      ghi[g] = neg_inf();
      if (g < segs) {
        // The group's top-2 from its halves' (the duplicates kept: top2_insert's).
        const float b0 = seg[(4 * g) * 32], s0 = seg[(4 * g + 1) * 32];
        const float b1 = seg[(4 * g + 2) * 32], s1 = seg[(4 * g + 3) * 32];
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

  // 3. Threshold: the K-th largest pool key (a sorted list of kStagedMaxK, duplicates kept).
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
  {
    unsigned m = selectable;
    const int n = __popc(selectable);  // topk_groups or segs: uniform
#pragma unroll 1
    for (int q = 0; q < n; ++q) {
      const int g = __ffs(static_cast<int>(m)) - 1;
      m &= m - 1u;
      const float b0 = seg[(4 * g) * 32], s0 = seg[(4 * g + 1) * 32];
      const float b1 = seg[(4 * g + 2) * 32], s1 = seg[(4 * g + 3) * 32];
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

  // 4. Pass 2: candidates h(a) >= h(T) of the selectable segments, as a list of expert indices.
  int n = 0;
  {
    unsigned m = selectable;
    const int nsel = __popc(selectable);
#pragma unroll 1
    for (int q = 0; q < nsel; ++q) {
      const int g = __ffs(static_cast<int>(m)) - 1;
      m &= m - 1u;
      const uint4* kk = reinterpret_cast<const uint4*>(my + g * 64);
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
        if (n < kStagedMaxCands)
          *staged_list_entry(words, n) = static_cast<std::uint16_t>(32 * g + bit);
        ++n;
      }
    }
  }
  SY_STAGED_STATS(n <= kStagedMaxCands && n >= K, n);
  if (n > kStagedMaxCands || n < K) return false;

  // 5. Exact keys of the candidates (their logits read again), a sorted list of the best
  // kStagedMaxK; the exact scores go to the row's staged bytes (its halves are no longer read).
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
    for (int u = 0; u < 4; ++u) e[u] = *staged_list_entry(words, i + u < n ? i + u : i);
#pragma unroll
    for (int u = 0; u < 4; ++u) raw[u] = to_float(x[e[u]]);
#pragma unroll
    for (int u = 0; u < 4; ++u) {
      if (i + u < n) {
        const float score = sigmoid_f(raw[u]);
        scores[i + u] = score;
        insert_candidate<kStagedMaxK>(
            best, staged_candidate(order_key(score + bias_s[e[u]]), e[u], i + u));
      }
    }
  }
  int slot_expert[kStagedMaxK];
  std::uint32_t slot_ord[kStagedMaxK];
  float slot_score[kStagedMaxK];
#pragma unroll
  for (int k = 0; k < kStagedMaxK; ++k) {
    const bool have = k < K;
    const std::uint64_t c = best[k];
    slot_expert[k] = have ? static_cast<int>(0xffffu - ((c >> 16) & 0xffffu)) : k;
    slot_ord[k] = have ? static_cast<std::uint32_t>(c >> 32) : 0u;
    slot_score[k] = have ? scores[c & 0xffffu] : 0.0f;
  }
  const LaneGroup<1> one;
  routing_finish_row<T, 1, kStagedMaxK>(one, kp, ids_int64, row, x, true, true, slot_expert,
                                        slot_ord, slot_score, neg_inf(), 0.0f, [](int) {});
  return true;
}

// One block: kStagedWarps warps of 32 rows. kSegs: segments per row held (>= E / 32: 8 or 16).
template <typename T, int kSegs, bool kGrouped>
__global__ void __launch_bounds__(kStagedThreads, 1)
    routing_staged_kernel(const detail::RoutingKernelParams kp, const bool ids_int64) {
  using namespace detail;
  extern __shared__ __align__(16) unsigned char staged_smem[];
  const RoutingParams& p = kp.p;
  const int E = p.num_experts;
  const StagedLayout l = staged_layout(E, static_cast<int>(sizeof(T)), kGrouped ? p.num_groups : 0);
  const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
  float* bias_s = reinterpret_cast<float*>(staged_smem + l.groups_bytes);
  unsigned char* rows_s = staged_smem + l.groups_bytes + l.bias_bytes + warp * l.warp_bytes;
  auto* words = reinterpret_cast<std::uint32_t*>(rows_s + 32 * l.stride) + lane;
  unsigned char* my = rows_s + lane * l.stride;

  bool bias_bad = false;
  for (int j = static_cast<int>(threadIdx.x); j < E; j += kStagedThreads) {
    const float b = kp.bias ? __ldg(kp.bias + j) : 0.0f;
    bias_s[j] = b;
    bias_bad = bias_bad || !is_finite(b);
  }
  // Stage this warp's rows: 16-byte units, lane-strided within each row (coalesced).
  const std::int64_t row0 = (static_cast<std::int64_t>(blockIdx.x) * kStagedWarps + warp) * 32;
  const int nrows = static_cast<int>(
      kp.num_tokens - row0 < 32 ? (kp.num_tokens - row0 > 0 ? kp.num_tokens - row0 : 0) : 32);
  const int units = E * static_cast<int>(sizeof(T)) / 16;
  const auto* src = static_cast<const unsigned char*>(kp.logits);
  const std::int64_t src_stride = kp.row_stride * static_cast<std::int64_t>(sizeof(T));
#pragma unroll 1
  for (int u = lane; u < units; u += 32) {
    const unsigned char* g = src + row0 * src_stride + u * 16;
    unsigned char* d = rows_s + u * 16;
#pragma unroll 4
    for (int r = 0; r < nrows; ++r) {
      staged_copy16(d, g);
      g += src_stride;
      d += l.stride;
    }
  }
  staged_copy_wait();
  // The bias and every lane's copies; a non-finite bias sends the block's rows to the exact path.
  const bool bias_finite = __syncthreads_or(bias_bad) == 0;

  const std::int64_t row = row0 + lane;
  bool settled = true;
  if (lane < nrows) {
    const std::int64_t non_padded = kp.num_tokens_non_padded
                                        ? static_cast<std::int64_t>(*kp.num_tokens_non_padded)
                                        : kp.num_tokens;
    if (row >= non_padded) {
      const int cols = p.top_k + p.num_shared_experts;
      for (int c = 0; c < cols; ++c) {
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
  unsigned pending = __ballot_sync(0xffffffffu, !settled);
  while (pending != 0u) {
    const int l0 = __ffs(static_cast<int>(pending)) - 1;
    pending &= pending - 1u;
    route_row_lanes<T, 32, kFallbackVals, false, false>(kp, true, ids_int64, row0 + l0, warp,
                                                        nullptr);
    __syncwarp();  // the next row reuses this warp's group scores in shared memory
  }
}

}  // namespace switchyard::kernels
