// The one-token fused MoE forward (decode at batch 1): GEMM1 + activation, GEMM2 and the combine
// of one token in ONE cooperative kernel, with every byte of weights streamed concurrently.
//
// Why: at one token the experts' weights are the whole cost (Qwen3-30B-A3B: 8 experts x 9.4 MB,
// 17 us at the H200's read ceiling), and the decode chain (GEMM1, GEMM2, combine: three kernels)
// runs its w2 stream only after GEMM1's has drained (bench/NOTES.md, sessions 7, 8 and 17: 27 us,
// 61% of the ceiling). Here w2 does not wait for GEMM1: one warp of each CTA copies the CTA's w2
// rows into shared memory with bulk copies (cp.async.bulk, completed on an mbarrier) while the
// other warps stream their share of w13 through registers; after one grid barrier each CTA
// computes its output rows from shared memory.
//
// Decomposition (grid = C CTAs, all co-resident: a cooperative launch; R = rows_per_cta):
//   - CTA b owns output rows [b R, b R + R) of the token (the last CTA fewer). Its copy warp
//     stages rows [b R, b R + R) of w2[e_k] for every valid slot k, one bulk copy per row into
//     rows kTokenRowPad elements longer than I (conflict-free fragment loads below), then waits
//     for them; the barrier before the grid barrier orders them before every read.
//   - GEMM1 (kTokenComputeWarps warps): the K x I units (slot k, intermediate j) are split into C
//     equal ranges; a warp takes one unit at a time: the gate and up rows (one row for relu^2) of
//     w13[e_k] dotted with x (in shared memory), float32 per lane in a fixed order, then a
//     butterfly over the warp; lane 0 adds b13, applies the activation and stores h[k, j] rounded
//     to the input dtype (the contract's stored intermediate) to global scratch.
//   - grid barrier (cooperative_groups: its release/acquire makes every h visible), then h (K x I,
//     12 KB at Qwen3-30B) into shared memory.
//   - GEMM2 on the tensor cores: a warp per (slot, 16-row tile) multiplies the staged w2 rows by
//     h[k] (m16n8k16, swap-AB as the decode kernels), + b2, rounded to the input dtype (as the
//     decode path stores y).
//   - combine: thread r: out[r] = rsf * sum_k w_k y_k[r], float32 fused multiply-adds in ascending
//     k from 0 (combine_kernel's operations; weight 1 with apply_router_weight_on_input), rounded
//     once.
// Slots whose id is dropped (-1, out of range, or -1 through expert_map) contribute nothing; a
// token with every slot dropped gets zeros. Deterministic: no atomics, every sum in a fixed order.
// Needs sm_90 (bulk copies, mbarrier transaction counts); the launcher (launch/experts_token.cu)
// takes this path only where the device and the shape fit: M == 1, K <= kTokenMaxSlots, the shared
// memory below within the opt-in limit, C <= the SM count.
//
// Shared memory (dynamic), bytes: align16(2 H) x | 2 K I h | 2 K R (I + kTokenRowPad) w2 rows |
// align16(4 R K) y.
#pragma once

#include <cooperative_groups.h>

#include <cstdint>

#include "experts_decode.cuh"
#include "experts_pointwise.cuh"
#include "pdl.cuh"

namespace switchyard::kernels {

inline constexpr int kTokenComputeWarps = 16;               // GEMM1's warps
inline constexpr int kTokenWarps = kTokenComputeWarps + 1;  // + the w2 copy warp
inline constexpr int kTokenThreads = 32 * kTokenWarps;
inline constexpr int kTokenMaxSlots = 32;
inline constexpr int kTokenVecs = 8;  // 16-byte vectors per lane and weight row in flight
// Staged w2 rows are I + kTokenRowPad elements apart in shared memory (I % 8 == 0, so the stride
// is 4 16-byte bank groups off a multiple of 128 bytes): a quarter warp of GEMM2's fragment loads
// reads vectors 4c..4c+3 of rows g and g + 1, which then fall in 8 different bank groups (ncu,
// session 27: unpadded 1536-byte rows, and 1552-byte ones, read twice the ideal wavefronts).
inline constexpr int kTokenRowPad = 32;

struct TokenParams {
  const void* x;    // [H] T: the token
  const void* w13;  // [E, w13_rows, H] T
  const void* w2;   // [E, H, I] T
  const void* b13;  // optional [E, w13_rows], float32 or T
  bool b13_f32;
  const void* b2;  // optional [E, H], float32 or T
  bool b2_f32;
  const void* ids;  // [K] int32 or int64
  bool ids_int64;
  const float* weights;            // [K]
  const std::int32_t* expert_map;  // optional [map_size]
  std::int64_t map_size;
  std::int32_t num_experts, top_k, hidden, inter, w13_rows;
  Activation activation;  // gated: gate row j * gate_step, up row + up_offset; kRelu2: row j
  std::int32_t gate_step, up_offset;
  float alpha, limit, rsf;
  bool weight_on_input;  // K == 1: x is scaled by the slot's weight (rounded), combine weight 1
  void* h;               // [K, I] T global scratch
  void* out;             // [H] T
  std::int32_t rows_per_cta;
};

__host__ __device__ constexpr std::int64_t token_align16(std::int64_t b) {
  return (b + 15) / 16 * 16;
}

// Dynamic shared memory of the kernel, bytes (the layout at the top of the file).
__host__ __device__ constexpr std::int64_t token_smem_bytes(std::int64_t hidden, std::int64_t inter,
                                                            std::int64_t top_k,
                                                            std::int64_t rows_per_cta) {
  return token_align16(2 * hidden) + 2 * top_k * inter +
         2 * top_k * rows_per_cta * (inter + kTokenRowPad) +
         token_align16(4 * rows_per_cta * top_k);
}

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

template <typename T>
__global__ void __launch_bounds__(kTokenThreads, 1) experts_token_kernel(const TokenParams p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  extern __shared__ __align__(128) unsigned char token_smem[];
  __shared__ std::int32_t s_expert[kTokenMaxSlots];
  __shared__ float s_weight[kTokenMaxSlots];
  __shared__ __align__(8) std::uint64_t s_bar;

  const int K = p.top_k, H = p.hidden, I = p.inter, R = p.rows_per_cta;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  unsigned char* at = token_smem;
  T* const x_s = reinterpret_cast<T*>(at);
  at += token_align16(2LL * H);
  T* const h_s = reinterpret_cast<T*>(at);
  at += 2LL * K * I;
  T* const w2_s = reinterpret_cast<T*>(at);
  at += 2LL * K * R * (I + kTokenRowPad);
  float* const y_s = reinterpret_cast<float*>(at);
  const int r0 = static_cast<int>(blockIdx.x) * R;
  const int rows = min(R, H - r0);
  const auto bar = static_cast<std::uint32_t>(__cvta_generic_to_shared(&s_bar));

  // The ids, the weights and x come from the previous kernels.
  pdl_wait();
  pdl_launch_dependents();
  if (threadIdx.x < K) {
    const int k = static_cast<int>(threadIdx.x);
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
    asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" ::"r"(bar) : "memory");
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  }
  __syncthreads();

  // x (scaled by the slot's weight and rounded, as the CPU oracle, with
  // apply_router_weight_on_input) into shared memory.
  const int nvec = H / 8;
  for (int v = static_cast<int>(threadIdx.x); v < nvec; v += kTokenThreads) {
    uint4 xv = __ldg(reinterpret_cast<const uint4*>(p.x) + v);
    if (p.weight_on_input) xv = scale_vec8<T>(xv, s_weight[0]);
    reinterpret_cast<uint4*>(x_s)[v] = xv;
  }
  __syncthreads();

  // This CTA's w2 rows of every valid slot, into shared memory, from the last warp while the others
  // run GEMM1: issuing ~200 KB of bulk copies keeps a thread ~6 us (the copy engine's queue; H200,
  // session 27), which would otherwise delay a GEMM1 warp. (After the block barrier above, not
  // before it behind a named barrier of the GEMM1 warps: compute-sanitizer's racecheck then
  // reported this warp's later reads of h as unordered.)
  if (warp == kTokenComputeWarps && lane == 0) {
    const std::uint32_t row_bytes = static_cast<std::uint32_t>(I) * 2u;
    const std::uint32_t bytes = static_cast<std::uint32_t>(rows) * row_bytes;
    std::uint32_t total = 0;
    for (int k = 0; k < K; ++k) total += s_expert[k] >= 0 ? bytes : 0u;
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(bar), "r"(total)
                 : "memory");
    for (int k = 0; k < K; ++k) {
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
    std::uint32_t done = 0;
    while (!done) {
      asm volatile(
          "{\n .reg .pred p;\n mbarrier.try_wait.parity.shared::cta.b64 p, [%1], 0;\n"
          " selp.u32 %0, 1, 0, p;\n}"
          : "=r"(done)
          : "r"(bar)
          : "memory");
    }
  }

  // GEMM1 + activation over this CTA's range of units.
  const bool gated = p.activation != Activation::kRelu2;
  const std::int64_t units = static_cast<std::int64_t>(K) * I;
  const std::int64_t per = (units + gridDim.x - 1) / gridDim.x;
  const std::int64_t ub = static_cast<std::int64_t>(blockIdx.x) * per;
  const std::int64_t ue = min(units, ub + per);
  const uint4 zero = make_uint4(0, 0, 0, 0);
  T* const h = static_cast<T*>(p.h);
  for (std::int64_t u = ub + warp; warp < kTokenComputeWarps && u < ue; u += kTokenComputeWarps) {
    const int k = static_cast<int>(u / I), j = static_cast<int>(u % I);
    const int e = s_expert[k];
    if (e < 0) continue;  // warp-uniform
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
          const uint4 xv = reinterpret_cast<const uint4*>(x_s)[v];
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
  const int hvec = K * I / 8;
  for (int v = static_cast<int>(threadIdx.x); v < hvec; v += kTokenThreads) {
    reinterpret_cast<uint4*>(h_s)[v] = __ldcg(reinterpret_cast<const uint4*>(h) + v);
  }
  __syncthreads();

  // GEMM2 on the tensor cores, swap-AB as the decode kernels (kernels/experts_decode.cuh): a warp
  // per (slot, 16-row tile of this CTA's rows); the staged w2 rows are the m16n8k16 MMA's A side,
  // h[k] every column of its B side (all 8 columns alike; one is used). A 32-element k chunk is
  // one 16-byte vector per thread for rows g and g + 8 and for h, the same k permutation on both
  // sides (a dot product does not care), so the fragments come straight from the vectors; two
  // accumulator sets alternate chunks.
  {
    const int ivec = I / 8;
    const int g = lane >> 2, t = lane & 3;
    const int tiles = (rows + 15) / 16;
    const uint4 zero4 = make_uint4(0, 0, 0, 0);
    for (int item = warp; item < tiles * K; item += kTokenWarps) {
      const int k = item % K, m0 = (item / K) * 16;
      const int e = s_expert[k];
      if (e < 0) continue;  // warp-uniform
      const uint4* hk = reinterpret_cast<const uint4*>(h_s + static_cast<std::int64_t>(k) * I);
      const uint4* w0 = reinterpret_cast<const uint4*>(
          w2_s + (static_cast<std::int64_t>(k) * R + m0 + g) * (I + kTokenRowPad));
      const uint4* w1 = w0 + 8 * (ivec + kTokenRowPad / 8);  // row g + 8
      const bool ok0 = m0 + g < rows, ok1 = m0 + g + 8 < rows;
      float acc0[4] = {0.0f, 0.0f, 0.0f, 0.0f}, acc1[4] = {0.0f, 0.0f, 0.0f, 0.0f};
      // 32-element chunks (vectors past I read as zeros): chunk c into acc0 (even) or acc1 (odd).
      const int chunks = (ivec + 3) / 4;
      for (int c = 0; c < chunks; c += 2) {
#pragma unroll
        for (int u = 0; u < 2; ++u) {
          const int v = 4 * (c + u) + t;
          const bool in = v < ivec;
          const uint4 hv = in ? hk[v] : zero4;
          const uint4 a0 = in && ok0 ? w0[v] : zero4, a1 = in && ok1 ? w1[v] : zero4;
          float(&d)[4] = u == 0 ? acc0 : acc1;
          mma_16816<T>(d, a0.x, a1.x, a0.y, a1.y, hv.x, hv.y);
          mma_16816<T>(d, a0.z, a1.z, a0.w, a1.w, hv.z, hv.w);
        }
      }
      // Column 2t of the D fragment: row g in [0], row g + 8 in [2] (every column alike).
      if (t == 0) {
#pragma unroll
        for (int hh = 0; hh < 2; ++hh) {
          const int r = m0 + g + 8 * hh;
          if (r < rows) {
            const float sum = acc0[2 * hh] + acc1[2 * hh];
            const float b = load_bias<T>(p.b2, p.b2_f32, static_cast<std::int64_t>(e) * H + r0 + r);
            y_s[r * K + k] = detail::to_float(detail::from_float<T>(sum + b));
          }
        }
      }
    }
  }
  __syncthreads();

  // Combine: combine_kernel's float operations, k ascending.
  T* const out = static_cast<T*>(p.out);
  for (int r = static_cast<int>(threadIdx.x); r < rows; r += kTokenThreads) {
    float acc = 0.0f;
    for (int k = 0; k < K; ++k) {
      if (s_expert[k] < 0) continue;
      acc = __fmaf_rn(p.weight_on_input ? 1.0f : s_weight[k], y_s[r * K + k], acc);
    }
    out[r0 + r] = detail::from_float<T>(p.rsf * acc);
  }
#else
  (void)p;
  __trap();  // the launcher takes this path only on sm_90 code
#endif
}

}  // namespace switchyard::kernels
