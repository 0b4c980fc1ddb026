// moe_align_block_size and the contiguous expert layout for small batches (decode): a few blocks
// of 512 threads, at most kSmallAlignMaxSlots slots and kSmallAlignMaxExperts experts, no grid
// barrier. Same output, bit for bit, as expert_sort_kernel (align.cuh) and the CPU.
//
// Every block computes the whole histogram itself (the ids of a decode batch are a few KiB, read
// from L2 by every block), so the blocks never wait for each other; block g owns the slots of
// step g ([g * 512, g * 512 + 512)) and writes them, and a share of the padding and tails:
//   1. every thread loads its slots of every step; the steps before and after its own are
//      counted with shared-memory atomics (counts do not depend on order), its own step into a
//      per-warp row (ballot peer groups: the group's lowest lane adds the group size);
//   2. thread e adds up expert e (before + own rows + after), turns its own-step column into
//      per-warp starting ranks, and a block scan of the padded block counts gives every segment's
//      start;
//   3. each thread writes its own slot at segment start + slots of e in earlier steps + earlier
//      warps + earlier lanes of its warp (so slots ascend in every segment); warps take experts
//      round robin over the grid to write their padding and block labels (contiguous runs), and all
//      threads share the tails.
// A single block writing everything (the previous design) was bound by one SM's store rate on the
// scattered padding writes: 22 us for 512 DeepSeek-V3 tokens on an H100.
// Everything is 32-bit: the launcher only takes this kernel when slots + padding < 2^30.
#pragma once

#include <algorithm>
#include <cstdint>

#include "align.cuh"

namespace switchyard::kernels {

inline constexpr int kSmallAlignThreads = 512;
inline constexpr int kSmallAlignWarps = kSmallAlignThreads / 32;
inline constexpr int kSmallAlignMaxSteps = 16;
inline constexpr std::int64_t kSmallAlignMaxSlots =
    static_cast<std::int64_t>(kSmallAlignThreads) * kSmallAlignMaxSteps;   // 8192
inline constexpr std::int32_t kSmallAlignMaxExperts = kSmallAlignThreads;  // thread e: expert e

// Dynamic shared memory: per-warp rows [16][E], then before[E], after[E], seg[E], total[E].
inline std::size_t small_align_shared_bytes(std::int32_t num_experts) {
  return static_cast<std::size_t>(kSmallAlignWarps + 4) * num_experts * 4;
}
// Output entries (padding and tails included) per block: one SM writing a large padded buffer
// alone is bound by its store rate (measured: ~12,000 cycles for 16,000 entries on an H100).
inline constexpr std::int64_t kSmallAlignEntriesPerBlock = 2048;
inline constexpr int kSmallAlignMaxGrid = 64;
// Blocks: one per 512-slot step, and at least one per kSmallAlignEntriesPerBlock output entries
// (extra blocks own no slots; they count, and write their share of padding and tails).
inline int small_align_grid(std::int64_t num_slots, std::int64_t out_entries) {
  const std::int64_t steps = (num_slots + kSmallAlignThreads - 1) / kSmallAlignThreads;
  const std::int64_t by_out =
      (out_entries + kSmallAlignEntriesPerBlock - 1) / kSmallAlignEntriesPerBlock;
  return static_cast<int>(std::max<std::int64_t>(
      1, std::max(steps, std::min<std::int64_t>(by_out, kSmallAlignMaxGrid))));
}

// ex[i] = ids[i * 512 + thread] as int32 (ids outside int32 become -1, i.e. invalid), -1 past N.
template <typename Id>
__device__ __forceinline__ void small_load_ids(const Id* __restrict__ ids, std::int32_t n,
                                               std::int32_t (&ex)[kSmallAlignMaxSteps]) {
  Id raw[kSmallAlignMaxSteps];
#pragma unroll
  for (int i = 0; i < kSmallAlignMaxSteps; ++i) {
    const std::int32_t s = i * kSmallAlignThreads + static_cast<std::int32_t>(threadIdx.x);
    raw[i] = s < n ? __ldg(ids + s) : Id{-1};
  }
#pragma unroll
  for (int i = 0; i < kSmallAlignMaxSteps; ++i) {
    ex[i] = (raw[i] >= 0 && raw[i] <= Id{0x3fffffff}) ? static_cast<std::int32_t>(raw[i]) : -1;
  }
}

#define SY_SMALL_TRACE(k) \
  if (p.trace != nullptr && threadIdx.x == 0 && blockIdx.x == 0) p.trace[k] = clock64()

__device__ __forceinline__ void align_small_body(const SortParams& p, unsigned char* smem,
                                                 std::int32_t* scan_scratch) {
  SY_SMALL_TRACE(0);
  const std::int32_t E = p.num_experts;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int id_bits = 32 - __clz(E);
  const auto B = static_cast<std::int32_t>(p.pad);
  const auto N = static_cast<std::int32_t>(p.num_slots);
  const auto own = static_cast<int>(blockIdx.x);
  auto* rows = reinterpret_cast<std::int32_t*>(smem);  // [warps][E]
  std::int32_t* before = rows + kSmallAlignWarps * E;
  std::int32_t* after = before + E;
  std::int32_t* seg = after + E;
  std::int32_t* total = seg + E;

  // ---- 1. load every step's id (independent loads in flight), zero the tables, count
  // All loads first, branch-free inside the unrolled loops, so they are in flight together (a
  // branch per load, as slot_expert() has, serialises one L2 round trip per step).
  std::int32_t ex[kSmallAlignMaxSteps];
  if (p.ids_int64) {
    small_load_ids(static_cast<const std::int64_t*>(p.ids), N, ex);
  } else {
    small_load_ids(static_cast<const std::int32_t*>(p.ids), N, ex);
  }
  if (p.expert_map != nullptr) {
    const auto map_size = static_cast<std::int32_t>(min(p.map_size, std::int64_t{1} << 30));
#pragma unroll
    for (int i = 0; i < kSmallAlignMaxSteps; ++i) {
      const bool in = ex[i] >= 0 && ex[i] < map_size;
      ex[i] = in ? __ldg(p.expert_map + ex[i]) : -1;
    }
  }
#pragma unroll
  for (int i = 0; i < kSmallAlignMaxSteps; ++i) ex[i] = (ex[i] >= 0 && ex[i] < E) ? ex[i] : -1;
  for (int i = threadIdx.x; i < (kSmallAlignWarps + 2) * E; i += kSmallAlignThreads) rows[i] = 0;
  __syncthreads();
  SY_SMALL_TRACE(1);
  // Straight-line code kept short: at these sizes the kernel's time is mostly fixed latency
  // (instruction fetch included), so one match_peers outside the unrolled loop.
  std::int32_t mine = -1;
#pragma unroll
  for (int i = 0; i < kSmallAlignMaxSteps; ++i) {
    mine = i == own ? ex[i] : mine;
    if (i != own && ex[i] >= 0) atomicAdd((i < own ? before : after) + ex[i], 1);
  }
  const unsigned peers = match_peers(mine, id_bits);
  if (mine >= 0 && lane == __ffs(peers) - 1) rows[warp * E + mine] += __popc(peers);
  __syncthreads();
  SY_SMALL_TRACE(2);

  // ---- 2. totals, per-warp starting ranks, segment starts
  const auto e = static_cast<std::int32_t>(threadIdx.x);
  std::int32_t col[kSmallAlignWarps];
  std::int32_t count = 0, first = 0;
  if (e < E) {
#pragma unroll
    for (int w = 0; w < kSmallAlignWarps; ++w) col[w] = rows[w * E + e];
    first = before[e];
    std::int32_t acc = first;
#pragma unroll
    for (int w = 0; w < kSmallAlignWarps; ++w) {
      const std::int32_t c = col[w];
      col[w] = acc;
      acc += c;
    }
    count = acc + after[e];
  }
  const std::int32_t blocks = e < E ? (count + B - 1) / B : 0;
  std::int32_t total_blocks = 0;
  const std::int32_t first_block = block_exclusive_scan(blocks, scan_scratch, &total_blocks);
  if (e < E) {
    const std::int32_t start = first_block * B;
    seg[e] = start;
    total[e] = count;
#pragma unroll
    for (int w = 0; w < kSmallAlignWarps; ++w) rows[w * E + e] = start + col[w];
  }
  __syncthreads();
  SY_SMALL_TRACE(3);

  // ---- 3. own slots, padding and labels (a warp per expert), tails
  const bool align = p.output == SortOutput::kAlign;
  const std::int32_t s = own * kSmallAlignThreads + static_cast<std::int32_t>(threadIdx.x);
  if (mine >= 0) {
    const unsigned lower = (1u << lane) - 1u;
    const std::int32_t dst = rows[warp * E + mine] + __popc(peers & lower);
    if (align) {
      p.sorted_ids[dst] = s;
    } else {
      p.src_to_dst[s] = dst;
      p.dst_to_src[dst] = s;
    }
  } else if (!align && s < N) {
    p.src_to_dst[s] = -1;  // dropped slot
  }
  const int grid_warps = static_cast<int>(gridDim.x) * kSmallAlignWarps;
  for (std::int32_t x = own * kSmallAlignWarps + warp; x < E; x += grid_warps) {
    const std::int32_t start = seg[x], n = total[x], nb = (n + B - 1) / B;
    const std::int32_t stop = start + nb * B;
    for (std::int32_t j = start + n + lane; j < stop; j += 32) {
      if (align) {
        p.sorted_ids[j] = N;
      } else {
        p.dst_to_src[j] = -1;
      }
    }
    if (align) {
      for (std::int32_t b = start / B + lane; b < start / B + nb; b += 32) p.block_experts[b] = x;
    } else if (lane == 0) {
      p.counts[x] = n;
      p.offsets[x] = start;
    }
  }
  // Tails (the launcher keeps these sizes below 2^30 on this path).
  const std::int32_t used = total_blocks * B;
  const std::int32_t tid = own * kSmallAlignThreads + static_cast<std::int32_t>(threadIdx.x);
  const std::int32_t nthreads = static_cast<std::int32_t>(gridDim.x) * kSmallAlignThreads;
  if (align) {
    const auto numel = static_cast<std::int32_t>(p.sorted_numel);
    const auto bnumel = static_cast<std::int32_t>(p.block_experts_numel);
    for (std::int32_t j = used + tid; j < numel; j += nthreads) p.sorted_ids[j] = N;
    for (std::int32_t b = total_blocks + tid; b < bnumel; b += nthreads) p.block_experts[b] = -1;
    if (tid == 0) *p.post_pad = used;
  } else {
    const auto numel = static_cast<std::int32_t>(p.dst_numel);
    for (std::int32_t j = used + tid; j < numel; j += nthreads) p.dst_to_src[j] = -1;
    if (tid == 0) {
      p.offsets[E] = used;
      if (p.overflow != nullptr) *p.overflow = 0;  // contiguous: nothing is dropped for space
    }
  }
  if (p.trace != nullptr && threadIdx.x == 0 && blockIdx.x == 0) {
    const long long t = clock64();
    for (int k = 4; k < kSortTracePoints; ++k) p.trace[k] = t;
  }
}

// kPasses = 1 in the library. kPasses = 2 (diagnostics, tests/align_cuda_test.cpp's phase trace
// only): the same code runs twice in one launch (a real loop, not unrolled), so the second pass's
// trace shows the phases with a warm instruction cache and the first L2 misses already taken.
// Every pass writes the same outputs.
template <int kPasses>
__global__ void __launch_bounds__(kSmallAlignThreads) align_small_kernel(const SortParams p) {
  extern __shared__ __align__(16) unsigned char smem[];
  __shared__ std::int32_t scan_scratch[32];
#pragma unroll 1
  for (int pass = 0; pass < kPasses; ++pass) {
    if (pass > 0) __syncthreads();
    align_small_body(p, smem, scan_scratch);
  }
}

#undef SY_SMALL_TRACE

}  // namespace switchyard::kernels
