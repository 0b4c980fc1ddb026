// The one-token fused MoE forward (decode at batch 1 or 2): GEMM1 + activation, GEMM2 and the
// combine of one or two tokens in ONE cooperative kernel, with w13 and w2 streamed concurrently.
//
// Why: at one token the experts' weights are the whole cost (Qwen3-30B-A3B: 8 experts x 9.4 MB,
// 17 us at the H200's read ceiling), and the decode chain (GEMM1, GEMM2, combine: three kernels)
// runs its w2 stream only after GEMM1's has drained (bench/NOTES.md, sessions 7, 8 and 17: 27 us,
// 61% of the ceiling). Here w2 does not wait for GEMM1: one warp of each CTA copies the CTA's w2
// rows into shared memory with bulk copies (cp.async.bulk, completed on an mbarrier) while the
// other warps stream their share of w13 through registers; after one grid barrier each CTA
// computes its output rows.
//
// Decomposition (M <= 2 tokens, slot s = t K + k, S = M K; grid = C CTAs, all co-resident: a
// cooperative launch; R = rows_per_cta):
//   - CTA b owns output rows [b R, b R + R) of every token (the last CTA fewer). Its copy warp
//     stages rows [b R, b R + R) of w2[e_s] for the valid slots s < staged_slots, one bulk copy
//     per row into rows kTokenRowPad elements longer than I (conflict-free fragment loads below),
//     then waits for them; the barrier before the grid barrier orders them before every read.
//   - GEMM1 (kTokenComputeWarps warps): the S x I units (slot s, intermediate j) are split into C
//     equal ranges; a warp takes one unit at a time: the gate and up rows (one row for relu^2) of
//     w13[e_s] dotted with x[t] (in shared memory), float32 per lane in a fixed order, then a
//     butterfly over the warp; lane 0 adds b13, applies the activation and stores h[s, j] rounded
//     to the input dtype (the contract's stored intermediate) to global scratch.
//   - grid barrier (cooperative_groups: its release/acquire makes every h visible), then h (S x I,
//     12 KB at Qwen3-30B's one token) into shared memory.
//   - GEMM2 on the tensor cores: a warp per (slot, 16-row tile) multiplies the w2 rows (staged, or
//     read from global memory for slots from staged_slots on) by h[s] (m16n8k16, swap-AB as the
//     decode kernels), + b2, rounded to the input dtype (as the decode path stores y).
//   - combine: out[t, r] = rsf * sum_k w[t, k] y[t K + k][r], float32 fused multiply-adds in
//     ascending k from 0 (combine_kernel's operations; weight 1 with
//     apply_router_weight_on_input), rounded once.
// Slots whose id is dropped (-1, out of range, or -1 through expert_map) contribute nothing; a
// token with every slot dropped gets zeros. Slot-based: an expert hit by both tokens is read twice.
// Deterministic: no atomics, every sum in a fixed order. Needs sm_90 (bulk copies, mbarrier
// transaction counts); the launcher (launch/experts_token.cu) takes this path only where the
// device and the shape fit (heuristics/experts_token.h: token_kernel_shape).
//
// Shared memory (dynamic), bytes: align16(2 M H) x | 2 S I h | 2 staged R (I + kTokenRowPad) w2
// rows | align16(4 R S) y.
#pragma once

#include <cooperative_groups.h>

#include <cstdint>

#include "../heuristics/experts_token.h"
#include "cluster.cuh"
#include "experts_decode.cuh"
#include "experts_pointwise.cuh"
#include "pdl.cuh"

namespace switchyard::kernels {

using heuristics::kTokenComputeWarps;
using heuristics::kTokenMaxSlots;
using heuristics::kTokenRowPad;
using heuristics::kTokenWarps;
using heuristics::token_align16;
inline constexpr int kTokenThreads = 32 * kTokenWarps;
inline constexpr int kTokenVecs = 8;  // 16-byte vectors per lane and weight row in flight

struct TokenParams {
  const void* x;    // [M, H] T: the tokens
  const void* w13;  // [E, w13_rows, H] T
  const void* w2;   // [E, H, I] T
  const void* b13;  // optional [E, w13_rows], float32 or T
  bool b13_f32;
  const void* b2;  // optional [E, H], float32 or T
  bool b2_f32;
  const void* ids;  // [M, K] int32 or int64: slot s = t K + k
  bool ids_int64;
  const float* weights;            // [M, K]
  const std::int32_t* expert_map;  // optional [map_size]
  std::int64_t map_size;
  std::int32_t num_tokens, num_experts, top_k, hidden, inter, w13_rows;
  Activation activation;  // gated: gate row j * gate_step, up row + up_offset; kRelu2: row j
  std::int32_t gate_step, up_offset;
  float alpha, limit, rsf;
  bool weight_on_input;  // K == 1: x is scaled by the slot's weight (rounded), combine weight 1
  void* h;               // [M K, I] T global scratch
  void* out;             // [M, H] T
  std::int32_t rows_per_cta;
  // Slots 0 .. staged_slots - 1 have their w2 rows staged in shared memory; GEMM2 reads the other
  // slots' rows from global memory after the grid barrier.
  std::int32_t staged_slots;
};

template <typename T>
__device__ __forceinline__ float dot8(uint4 w, uint4 x, float acc) {
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 a = unpack2<T>(word(w, i)), b = unpack2<T>(word(x, i));
    acc = __fmaf_rn(a.x, b.x, acc);
    acc = __fmaf_rn(a.y, b.y, acc);
  }
  return acc;
}

__device__ __forceinline__ float token_warp_sum(float v) {
#pragma unroll
  for (int d = 16; d >= 1; d >>= 1) v += __shfl_xor_sync(0xffffffffu, v, d);
  return v;
}

// One GEMM2 tile: rows g and g + 8 of 16 w2 rows (w: this thread's row g; rows `stride` elements
// apart) times h, into two accumulator sets (even / odd 32-element chunks). A chunk is one 16-byte
// vector per thread for rows g and g + 8 and for h, the same k permutation on both sides (a dot
// product does not care), so the fragments come straight from the vectors. kGlobal: w is in
// global memory (read once: no L1 allocation) and kTokenGlobalChunks chunks are loaded before
// their MMAs, for bytes in flight; else w is in shared memory.
inline constexpr int kTokenGlobalChunks = 4;
template <typename T, bool kGlobal>
__device__ __forceinline__ void token_gemm2_tile(const T* w, std::int64_t stride, const T* h,
                                                 int ivec, bool ok0, bool ok1, float (&acc0)[4],
                                                 float (&acc1)[4]) {
  const int t = threadIdx.x & 3;
  const uint4* w0 = reinterpret_cast<const uint4*>(w);
  const uint4* w1 = reinterpret_cast<const uint4*>(w + 8 * stride);
  const uint4* hv = reinterpret_cast<const uint4*>(h);
  const uint4 zero = make_uint4(0, 0, 0, 0);
  constexpr int kBatch = kGlobal ? kTokenGlobalChunks : 2;
  const int chunks = (ivec + 3) / 4;
  for (int c0 = 0; c0 < chunks; c0 += kBatch) {
    uint4 a0[kBatch], a1[kBatch], hb[kGlobal ? 1 : kBatch];
#pragma unroll
    for (int u = 0; u < kBatch; ++u) {
      const int v = 4 * (c0 + u) + t;
      const bool in = v < ivec;  // vectors past I (and chunks past the last) read as zeros
      if constexpr (kGlobal) {
        a0[u] = in && ok0 ? load_weights16(w0 + v) : zero;
        a1[u] = in && ok1 ? load_weights16(w1 + v) : zero;
      } else {  // h with the rows: three shared-memory loads in flight per chunk
        a0[u] = in && ok0 ? w0[v] : zero;
        a1[u] = in && ok1 ? w1[v] : zero;
        hb[u] = in ? hv[v] : zero;
      }
    }
#pragma unroll
    for (int u = 0; u < kBatch; ++u) {
      const int v = 4 * (c0 + u) + t;
      uint4 b;
      if constexpr (kGlobal) {
        b = v < ivec ? hv[v] : zero;  // (registers: the rows' loads are what must be in flight)
      } else {
        b = hb[u];
      }
      float(&d)[4] = (u & 1) == 0 ? acc0 : acc1;
      mma_16816<T>(d, a0[u].x, a1[u].x, a0[u].y, a1[u].y, b.x, b.y);
      mma_16816<T>(d, a0[u].z, a1[u].z, a0[u].w, a1[u].w, b.z, b.w);
    }
  }
}

template <typename T>
__global__ void __launch_bounds__(kTokenThreads, 1) experts_token_kernel(const TokenParams p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  extern __shared__ __align__(128) unsigned char token_smem[];
  __shared__ std::int32_t s_expert[kTokenMaxSlots];
  __shared__ float s_weight[kTokenMaxSlots];
  __shared__ __align__(8) std::uint64_t s_bar;

  const int M = p.num_tokens, K = p.top_k, S = M * K, H = p.hidden, I = p.inter;
  const int R = p.rows_per_cta, staged = p.staged_slots;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  unsigned char* at = token_smem;
  T* const x_s = reinterpret_cast<T*>(at);
  at += token_align16(2LL * M * H);
  T* const h_s = reinterpret_cast<T*>(at);
  at += 2LL * S * I;
  T* const w2_s = reinterpret_cast<T*>(at);
  at += 2LL * staged * R * (I + kTokenRowPad);
  float* const y_s = reinterpret_cast<float*>(at);
  const int r0 = static_cast<int>(blockIdx.x) * R;
  const int rows = min(R, H - r0);
  const auto bar = static_cast<std::uint32_t>(__cvta_generic_to_shared(&s_bar));

  // The ids, the weights and x come from the previous kernels.
  pdl_wait();
  pdl_launch_dependents();
  if (threadIdx.x < S) {
    const int k = static_cast<int>(threadIdx.x);  // the slot
    const std::int64_t raw = p.ids_int64 ? __ldg(static_cast<const std::int64_t*>(p.ids) + k)
                                         : __ldg(static_cast<const std::int32_t*>(p.ids) + k);
    std::int64_t e = raw;
    if (p.expert_map != nullptr) {
      e = (raw >= 0 && raw < p.map_size) ? __ldg(p.expert_map + raw) : -1;
    }
    s_expert[k] = (e >= 0 && e < p.num_experts) ? static_cast<std::int32_t>(e) : -1;
    s_weight[k] = __ldg(p.weights + k);
  }
  if (threadIdx.x == 0) {
    mbarrier_init_one(bar);
  }
  __syncthreads();

  // x (scaled by the slot's weight and rounded, as the CPU oracle, with
  // apply_router_weight_on_input) into shared memory.
  const int nvec = H / 8;
  for (int v = static_cast<int>(threadIdx.x); v < M * nvec; v += kTokenThreads) {
    uint4 xv = __ldg(reinterpret_cast<const uint4*>(p.x) + v);
    if (p.weight_on_input) xv = scale_vec8<T>(xv, s_weight[v / nvec]);  // K == 1: slot = token
    reinterpret_cast<uint4*>(x_s)[v] = xv;
  }
  __syncthreads();

  // This CTA's w2 rows of the valid slots below `staged`, into shared memory, from the last warp
  // while the others run GEMM1: issuing ~200 KB of bulk copies keeps a thread ~6 us (the copy
  // engine's queue; H200, session 27), which would otherwise delay a GEMM1 warp. (After the block
  // barrier above, not before it behind a named barrier of the GEMM1 warps: compute-sanitizer's
  // racecheck then reported this warp's later reads of h as unordered.)
  if (warp == kTokenComputeWarps && lane == 0) {
    const std::uint32_t row_bytes = static_cast<std::uint32_t>(I) * 2u;
    const std::uint32_t bytes = static_cast<std::uint32_t>(rows) * row_bytes;
    std::uint32_t total = 0;
    for (int k = 0; k < staged; ++k) total += s_expert[k] >= 0 ? bytes : 0u;
    mbarrier_expect_bytes(bar, total);
    for (int k = 0; k < staged; ++k) {
      const int e = s_expert[k];
      if (e < 0) continue;
      const T* src = static_cast<const T*>(p.w2) +
                     (static_cast<std::int64_t>(e) * H + r0) * static_cast<std::int64_t>(I);
      for (int r = 0; r < rows; ++r) {
        const auto dst = static_cast<std::uint32_t>(__cvta_generic_to_shared(
            w2_s + (static_cast<std::int64_t>(k) * R + r) * (I + kTokenRowPad)));
        asm volatile(
            "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, "
            "[%3];" ::"r"(dst),
            "l"(src + static_cast<std::int64_t>(r) * I), "r"(row_bytes), "r"(bar)
            : "memory");
      }
    }
    // This thread sees the copies land; the barrier before the grid barrier then orders them
    // before every thread's reads in GEMM2.
    mbarrier_wait_parity<false>(bar, 0);
  }

  // GEMM1 + activation over this CTA's range of units.
  const bool gated = p.activation != Activation::kRelu2;
  const std::int64_t units = static_cast<std::int64_t>(S) * I;
  const std::int64_t per = (units + gridDim.x - 1) / gridDim.x;
  const std::int64_t ub = static_cast<std::int64_t>(blockIdx.x) * per;
  const std::int64_t ue = min(units, ub + per);
  const uint4 zero = make_uint4(0, 0, 0, 0);
  T* const h = static_cast<T*>(p.h);
  for (std::int64_t u = ub + warp; warp < kTokenComputeWarps && u < ue; u += kTokenComputeWarps) {
    const int k = static_cast<int>(u / I), j = static_cast<int>(u % I);  // slot k, token k / K
    const int e = s_expert[k];
    if (e < 0) continue;  // warp-uniform
    const uint4* xt = reinterpret_cast<const uint4*>(x_s + static_cast<std::int64_t>(k / K) * H);
    const std::int64_t gate_row =
        static_cast<std::int64_t>(e) * p.w13_rows + static_cast<std::int64_t>(j) * p.gate_step;
    const T* g_row = static_cast<const T*>(p.w13) + gate_row * H;
    const T* u_row = g_row + static_cast<std::int64_t>(p.up_offset) * H;
    float ag = 0.0f, au = 0.0f;
    for (int v0 = 0; v0 < nvec; v0 += 32 * kTokenVecs) {
      uint4 gw[kTokenVecs], uw[kTokenVecs];
#pragma unroll
      for (int q = 0; q < kTokenVecs; ++q) {
        const int v = v0 + q * 32 + lane;
        gw[q] = v < nvec ? load_weights16(g_row + 8LL * v) : zero;
        uw[q] = gated && v < nvec ? load_weights16(u_row + 8LL * v) : zero;
      }
#pragma unroll
      for (int q = 0; q < kTokenVecs; ++q) {
        const int v = v0 + q * 32 + lane;
        if (v < nvec) {
          const uint4 xv = xt[v];
          ag = dot8<T>(gw[q], xv, ag);
          if (gated) au = dot8<T>(uw[q], xv, au);
        }
      }
    }
    ag = token_warp_sum(ag);
    if (gated) au = token_warp_sum(au);
    if (lane == 0) {
      float v;
      if (gated) {
        v = gated_activation(p.activation, ag + load_bias<T>(p.b13, p.b13_f32, gate_row),
                             au + load_bias<T>(p.b13, p.b13_f32, gate_row + p.up_offset), p.alpha,
                             p.limit);
      } else {
        v = relu2(ag + load_bias<T>(p.b13, p.b13_f32, gate_row));
      }
      h[static_cast<std::int64_t>(k) * I + j] = detail::from_float<T>(v);
    }
  }

  // Every CTA's h is written (and this CTA's w2 rows have landed: the copy warp waited); then
  // every slot's h (from the L2, not through the non-coherent path) into shared memory.
  __syncthreads();
  cooperative_groups::this_grid().sync();
  const int hvec = S * I / 8;
  for (int v = static_cast<int>(threadIdx.x); v < hvec; v += kTokenThreads) {
    reinterpret_cast<uint4*>(h_s)[v] = __ldcg(reinterpret_cast<const uint4*>(h) + v);
  }
  __syncthreads();

  // GEMM2 on the tensor cores, swap-AB as the decode kernels (kernels/experts_decode.cuh): a warp
  // per (slot, 16-row tile of this CTA's rows); the w2 rows (staged, or from global memory for
  // slots from `staged` on) are the m16n8k16 MMA's A side, h[slot] every column of its B side
  // (all 8 columns alike; one is used).
  {
    const int ivec = I / 8;
    const int g = lane >> 2;
    const int tiles = (rows + 15) / 16;
    for (int item = warp; item < tiles * S; item += kTokenWarps) {
      const int k = item % S, m0 = (item / S) * 16;
      const int e = s_expert[k];
      if (e < 0) continue;  // warp-uniform
      const T* hk = h_s + static_cast<std::int64_t>(k) * I;
      const bool ok0 = m0 + g < rows, ok1 = m0 + g + 8 < rows;
      float acc0[4] = {0.0f, 0.0f, 0.0f, 0.0f}, acc1[4] = {0.0f, 0.0f, 0.0f, 0.0f};
      if (k < staged) {
        token_gemm2_tile<T, false>(
            w2_s + (static_cast<std::int64_t>(k) * R + m0 + g) * (I + kTokenRowPad),
            I + kTokenRowPad, hk, ivec, ok0, ok1, acc0, acc1);
      } else {
        token_gemm2_tile<T, true>(
            static_cast<const T*>(p.w2) + (static_cast<std::int64_t>(e) * H + r0 + m0 + g) * I, I,
            hk, ivec, ok0, ok1, acc0, acc1);
      }
      // Column 2t of the D fragment: row g in [0], row g + 8 in [2] (every column alike).
      if ((lane & 3) == 0) {
#pragma unroll
        for (int hh = 0; hh < 2; ++hh) {
          const int r = m0 + g + 8 * hh;
          if (r < rows) {
            const float sum = acc0[2 * hh] + acc1[2 * hh];
            const float b = load_bias<T>(p.b2, p.b2_f32, static_cast<std::int64_t>(e) * H + r0 + r);
            y_s[r * S + k] = detail::to_float(detail::from_float<T>(sum + b));
          }
        }
      }
    }
  }
  __syncthreads();

  // Combine: combine_kernel's float operations, k ascending; thread i: token i / rows, row i %
  // rows.
  T* const out = static_cast<T*>(p.out);
  for (int i = static_cast<int>(threadIdx.x); i < M * rows; i += kTokenThreads) {
    const int tok = i / rows, r = i % rows;
    float acc = 0.0f;
    for (int k = tok * K; k < tok * K + K; ++k) {
      if (s_expert[k] < 0) continue;
      acc = __fmaf_rn(p.weight_on_input ? 1.0f : s_weight[k], y_s[r * S + k], acc);
    }
    out[static_cast<std::int64_t>(tok) * H + r0 + r] = detail::from_float<T>(p.rsf * acc);
  }
#else
  (void)p;
  __trap();  // the launcher takes this path only on sm_90 code
#endif
}

}  // namespace switchyard::kernels
