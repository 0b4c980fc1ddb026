// Permute (gather token rows into expert-major layout rows) and combine (weighted sum of each
// token's expert rows). Memory-bound: one block per row (permute with dst_to_src only, combine) or
// per token (permute with src_to_dst), 16-byte accesses where aligned, grid-stride loops (no
// grid-size cap skips rows or tokens). Each output element is computed with
// the float operations of src/cpu/align.cpp, so the results are bitwise identical to the CPU's.
#pragma once

#include <cstdint>
#include <type_traits>

#include "../../common/dtype_convert.h"
#include "../../common/exact_math.h"
#include "pdl.cuh"

namespace switchyard::kernels {

inline constexpr int kPermuteThreads = 128;
// 16-byte words per thread in flight in permute: 128 x 8 x 16 B = 16 KiB covers a row of
// H = 8192 bf16 in one round.
inline constexpr int kPermuteUnroll = 8;

template <typename T>
union Vec16 {
  uint4 raw;
  T elems[16 / sizeof(T)];
};

// out[r] = x[dst_to_src[r] / top_k], or zeros when the row has no slot (or an out-of-range one).
// Output rows are written with streaming stores (evict-first): they are not read again soon
// and would otherwise push x's rows out of the L2 before their other K - 1 reads (measured on an
// H200, DeepSeek-V3 4096 tokens: 193 -> 185 us; an evict-last hint on the x loads added nothing
// consistent).
template <typename T>
__global__ void __launch_bounds__(kPermuteThreads)
    permute_kernel(const T* __restrict__ x, std::int64_t x_stride,
                   const std::int64_t* __restrict__ dst_to_src, std::int64_t num_rows,
                   std::int64_t hidden, int top_k, std::int64_t num_slots, T* __restrict__ out,
                   bool vec_ok) {
  constexpr int kPer = 16 / static_cast<int>(sizeof(T));
  for (std::int64_t r = blockIdx.x; r < num_rows; r += gridDim.x) {
    const std::int64_t slot = dst_to_src[r];
    const bool valid = slot >= 0 && slot < num_slots;
    const T* src = x + (valid ? slot / top_k : 0) * x_stride;
    T* dst = out + r * hidden;  // int64: rows * hidden may exceed 2^31
    if (vec_ok) {
      // All of a thread's loads of the row first (kPermuteUnroll in flight), then the stores: a
      // load-store pair per iteration waited out one memory latency per 16 bytes.
      const std::int64_t units = hidden / kPer;
      const auto* src4 = reinterpret_cast<const uint4*>(src);
      auto* dst4 = reinterpret_cast<uint4*>(dst);
      for (std::int64_t u0 = threadIdx.x; u0 < units; u0 += blockDim.x * kPermuteUnroll) {
        uint4 v[kPermuteUnroll];
#pragma unroll
        for (int i = 0; i < kPermuteUnroll; ++i) {
          const std::int64_t u = u0 + static_cast<std::int64_t>(i) * blockDim.x;
          v[i] = valid && u < units ? __ldg(src4 + u) : make_uint4(0, 0, 0, 0);
        }
#pragma unroll
        for (int i = 0; i < kPermuteUnroll; ++i) {
          const std::int64_t u = u0 + static_cast<std::int64_t>(i) * blockDim.x;
          if (u < units) __stcs(dst4 + u, v[i]);
        }
      }
    } else {
      for (std::int64_t h = threadIdx.x; h < hidden; h += blockDim.x) {
        dst[h] = valid ? src[h] : detail::from_float<T>(0.0f);
      }
    }
  }
}

// Layout rows each zero-block of permute_token_major_kernel checks: one 8-byte map entry per lane,
// the same 32 entries loaded by every warp of the block (L1 broadcast), so no shared memory and
// no barrier. Small enough that a block zeroes at most 32 rows (448 KiB at H = 7168 bf16).
inline constexpr int kPermuteZeroRows = 32;

// Token-major permute (src_to_dst given): the same output as permute_kernel, with each x row read
// once. Blocks [0, zero_blocks) zero the layout rows that have no slot (dst_to_src[r] not in
// [0, num_slots)): each takes chunks of kPermuteZeroRows rows, grid-stride. Blocks
// [zero_blocks, gridDim.x) take tokens, grid-stride: a chunk of the row (kPermuteUnroll 16-byte
// words per thread, all loads in flight before the stores) is loaded once and stored to each of
// the token's K rows src_to_dst[t*K + k] in [0, num_rows), with streaming stores. The zero blocks
// come first so that their rows (alignment padding, up to 32 per block) overlap the token blocks
// instead of trailing them. Every branch on a map entry is uniform over the block, and the round
// loops run the same trip count on every thread (the map entries are shuffled across lanes).
template <typename T>
__global__ void __launch_bounds__(kPermuteThreads)
    permute_token_major_kernel(const T* __restrict__ x, std::int64_t x_stride,
                               const std::int64_t* __restrict__ src_to_dst,
                               const std::int64_t* __restrict__ dst_to_src, std::int64_t num_tokens,
                               int top_k, std::int64_t num_rows, std::int64_t hidden,
                               T* __restrict__ out, bool vec_ok, unsigned zero_blocks) {
  constexpr int kPer = 16 / static_cast<int>(sizeof(T));
  const std::int64_t num_slots = num_tokens * top_k;
  const std::int64_t units = hidden / kPer;
  const unsigned lane = threadIdx.x & 31u;
  if (blockIdx.x < zero_blocks) {
    for (std::int64_t base = static_cast<std::int64_t>(blockIdx.x) * kPermuteZeroRows;
         base < num_rows; base += static_cast<std::int64_t>(zero_blocks) * kPermuteZeroRows) {
      const std::int64_t r = base + lane;
      bool empty = false;
      if (r < num_rows) {
        const std::int64_t slot = __ldg(dst_to_src + r);
        empty = slot < 0 || slot >= num_slots;
      }
      unsigned mask = __ballot_sync(0xffffffffu, empty);  // the same in every warp
      while (mask != 0) {
        const int j = __ffs(static_cast<int>(mask)) - 1;
        mask &= mask - 1;
        T* dst = out + (base + j) * hidden;  // int64: rows * hidden may exceed 2^31
        if (vec_ok) {
          auto* dst4 = reinterpret_cast<uint4*>(dst);
          for (std::int64_t u = threadIdx.x; u < units; u += blockDim.x) {
            __stcs(dst4 + u, make_uint4(0, 0, 0, 0));
          }
        } else {
          for (std::int64_t h = threadIdx.x; h < hidden; h += blockDim.x) {
            dst[h] = detail::from_float<T>(0.0f);
          }
        }
      }
    }
    return;
  }
  const unsigned token_blocks = gridDim.x - zero_blocks;
  for (std::int64_t t = blockIdx.x - zero_blocks; t < num_tokens; t += token_blocks) {
    const T* src = x + t * x_stride;
    const std::int64_t* rows = src_to_dst + t * top_k;
    if (vec_ok) {
      const auto* src4 = reinterpret_cast<const uint4*>(src);
      const std::int64_t per_round = static_cast<std::int64_t>(blockDim.x) * kPermuteUnroll;
      for (std::int64_t round = 0; round < units; round += per_round) {
        const std::int64_t u0 = round + threadIdx.x;
        uint4 v[kPermuteUnroll];
#pragma unroll
        for (int i = 0; i < kPermuteUnroll; ++i) {
          const std::int64_t u = u0 + static_cast<std::int64_t>(i) * blockDim.x;
          v[i] = u < units ? __ldg(src4 + u) : make_uint4(0, 0, 0, 0);
        }
        // The token's rows, 32 at a time: lane j loads entry k0 + j (in flight with the x loads),
        // then each is broadcast by a shuffle.
        for (int k0 = 0; k0 < top_k; k0 += 32) {
          const int kn = min(32, top_k - k0);
          const std::int64_t mine = static_cast<int>(lane) < kn ? __ldg(rows + k0 + lane) : -1;
          for (int j = 0; j < kn; ++j) {
            const std::int64_t row = __shfl_sync(0xffffffffu, mine, j);
            if (row < 0 || row >= num_rows) continue;  // dropped slot
            auto* dst4 = reinterpret_cast<uint4*>(out + row * hidden);
#pragma unroll
            for (int i = 0; i < kPermuteUnroll; ++i) {
              const std::int64_t u = u0 + static_cast<std::int64_t>(i) * blockDim.x;
              if (u < units) __stcs(dst4 + u, v[i]);
            }
          }
        }
      }
    } else {
      // Rows not 16-byte aligned: element by element, the row re-read from L1 for each k.
      for (int k = 0; k < top_k; ++k) {
        const std::int64_t row = __ldg(rows + k);
        if (row < 0 || row >= num_rows) continue;
        T* dst = out + row * hidden;
        for (std::int64_t h = threadIdx.x; h < hidden; h += blockDim.x) dst[h] = src[h];
      }
    }
  }
}

// out[t] = rsf * sum_k w[t,k] * y[src_to_dst[t*K+k]]: float accumulation by fused multiply-add
// in ascending k, rows out of range count as dropped.
// Grid: blockIdx.x strides over tokens; blockIdx.y splits a token's row into gridDim.y column
// pieces, so that a few tokens (decode) still spread over many blocks instead of one block
// walking H / 128 vectors one after another. The k loop issues kCombineBatch row loads before
// their multiply-adds (the adds stay in ascending k, so the bits do not depend on the batching).
// Absent map / weights (moe_sum_reduce): kHasMap = false reads no src_to_dst (it may be null) and
// takes the identity row t*K + k; kHasWeights = false reads no weights and multiplies by 1 (the
// same fma(1, y, acc) as the CPU). Separate instances, so that the full one (both given) compiles
// exactly as without the options; combine_kernel_for picks the instance from null pointers.
inline constexpr int kCombineBatch = 8;
inline constexpr int kCombineBatchScalar = 4;  // 8 makes ptxas spill (float, fp16)

template <typename T, bool kHasMap, bool kHasWeights>
__global__ void __launch_bounds__(kPermuteThreads)
    combine_kernel(const T* __restrict__ y, std::int64_t y_stride, std::int64_t y_rows,
                   const std::int64_t* __restrict__ src_to_dst, const float* __restrict__ weights,
                   std::int64_t num_tokens, int top_k, std::int64_t hidden, float rsf,
                   T* __restrict__ out, bool vec_ok) {
  constexpr int kPer = 16 / static_cast<int>(sizeof(T));
  pdl_wait();  // y comes from the previous kernel (a no-op unless launched with PDL)
  // Columns of this block's piece, in vectors (vec_ok) or elements.
  const std::int64_t units = vec_ok ? hidden / kPer : hidden;
  const std::int64_t piece = (units + gridDim.y - 1) / gridDim.y;
  const std::int64_t first = static_cast<std::int64_t>(blockIdx.y) * piece;
  const std::int64_t last = min(units, first + piece);
  for (std::int64_t t = blockIdx.x; t < num_tokens; t += gridDim.x) {
    const std::int64_t slot0 = t * top_k;  // the token's first slot (and identity row)
    const std::int64_t* rows = kHasMap ? src_to_dst + slot0 : nullptr;
    const float* w = kHasWeights ? weights + slot0 : nullptr;
    for (std::int64_t u = first + threadIdx.x; u < last; u += blockDim.x) {
      if (vec_ok) {
        float acc[kPer];
#pragma unroll
        for (int i = 0; i < kPer; ++i) acc[i] = 0.0f;
        for (int k0 = 0; k0 < top_k; k0 += kCombineBatch) {
          uint4 raw[kCombineBatch];
          unsigned use = 0;  // bit j: row k0 + j is valid
#pragma unroll
          for (int j = 0; j < kCombineBatch; ++j) {
            const std::int64_t row =
                k0 + j < top_k ? (kHasMap ? __ldg(rows + k0 + j) : slot0 + k0 + j) : -1;
            const bool ok = row >= 0 && row < y_rows;
            use |= ok ? 1u << j : 0u;
            raw[j] = ok ? __ldg(reinterpret_cast<const uint4*>(y + row * y_stride) + u)
                        : make_uint4(0, 0, 0, 0);
          }
#pragma unroll
          for (int j = 0; j < kCombineBatch; ++j) {
            if (!(use >> j & 1u)) continue;
            const float wk = kHasWeights ? __ldg(w + k0 + j) : 1.0f;
            Vec16<T> v;
            v.raw = raw[j];
#pragma unroll
            for (int i = 0; i < kPer; ++i)
              acc[i] = __fmaf_rn(wk, detail::to_float(v.elems[i]), acc[i]);
          }
        }
        Vec16<T> o;
#pragma unroll
        for (int i = 0; i < kPer; ++i) o.elems[i] = detail::from_float<T>(rsf * acc[i]);
        reinterpret_cast<uint4*>(out + t * hidden)[u] = o.raw;
      } else {
        float acc = 0.0f;
        for (int k0 = 0; k0 < top_k; k0 += kCombineBatchScalar) {
          T v[kCombineBatchScalar];
          unsigned use = 0;
#pragma unroll
          for (int j = 0; j < kCombineBatchScalar; ++j) {  // (scalar tails: rare, e.g. H % 8 != 0)
            const std::int64_t row =
                k0 + j < top_k ? (kHasMap ? __ldg(rows + k0 + j) : slot0 + k0 + j) : -1;
            const bool ok = row >= 0 && row < y_rows;
            use |= ok ? 1u << j : 0u;
            v[j] = ok ? y[row * y_stride + u] : T{};
          }
#pragma unroll
          for (int j = 0; j < kCombineBatchScalar; ++j) {
            if (use >> j & 1u)
              acc = __fmaf_rn(kHasWeights ? __ldg(w + k0 + j) : 1.0f, detail::to_float(v[j]), acc);
          }
        }
        out[t * hidden + u] = detail::from_float<T>(rsf * acc);
      }
    }
  }
}

// The combine_kernel instance for these arguments (host side; the launcher and the emulator): a
// null src_to_dst is the identity map, null weights are 1.
template <typename T>
auto combine_kernel_for(const std::int64_t* src_to_dst, const float* weights)
    -> decltype(&combine_kernel<T, true, true>) {
  if (src_to_dst != nullptr) {
    return weights != nullptr ? &combine_kernel<T, true, true> : &combine_kernel<T, true, false>;
  }
  return weights != nullptr ? &combine_kernel<T, false, true> : &combine_kernel<T, false, false>;
}

}  // namespace switchyard::kernels
