// moe_align_block_size and the contiguous expert layout for small batches (decode): one block of
// 32 warps, at most kSmallAlignMaxSlots slots and kSmallAlignMaxExperts experts, six barriers in
// all. Same output, bit for bit, as expert_sort_kernel (align.cuh) and the CPU:
//   1. each warp loads its chunk's ids (<= 8 steps of 32 slots, kept in registers) and counts them
//      into its own histogram row (ballot peer groups, the group's lowest lane adds the size);
//   2. thread e turns column e of the 32 warp rows into per-warp starting ranks and its padded
//      block count; a block-wide scan of the block counts gives every segment's first block;
//      thread e writes its segment's padding sentinels and block labels;
//   3. each warp writes its slots at segment start + rank (ranks from the registers' peer masks);
//      all threads fill the buffers' tails.
// The generic kernel spends ~12 barriers and 64-bit segment bookkeeping on the same work; this one
// keeps everything in 32-bit (slots + padding < 2^31 here).
#pragma once

#include <cstdint>

#include "align.cuh"

namespace switchyard::kernels {

inline constexpr std::int64_t kSmallAlignMaxSlots = 32 * 32 * kCachedSteps;  // 8192
inline constexpr std::int32_t kSmallAlignMaxExperts = 512;
inline constexpr int kSmallAlignThreads = 1024;

// Dynamic shared memory: 32 histogram rows of E int32, then E segment starts.
inline std::size_t small_align_shared_bytes(std::int32_t num_experts) {
  return static_cast<std::size_t>(33) * num_experts * 4;
}

__global__ void __launch_bounds__(kSmallAlignThreads) align_small_kernel(const SortParams p) {
  extern __shared__ __align__(16) unsigned char smem[];
  __shared__ std::int32_t warp_sums[32];
  const std::int32_t E = p.num_experts;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int id_bits = 32 - __clz(E);
  const auto B = static_cast<std::int32_t>(p.pad);
  const auto N = static_cast<std::int32_t>(p.num_slots);
  auto* hist_all = reinterpret_cast<std::int32_t*>(smem);
  std::int32_t* seg = hist_all + 32 * E;
  std::int32_t* hist = hist_all + warp * E;

  // ---- 1. load and count (the chunk of warp w: [begin, end), at most 8 steps)
  const std::int32_t chunk = ((N + 31) / 32 + 31) / 32 * 32;
  const std::int32_t begin = min(N, warp * chunk), end = min(N, begin + chunk);
  const int steps = (end - begin + 31) / 32;
  std::int32_t ex[kCachedSteps];
  unsigned peers[kCachedSteps];
#pragma unroll
  for (int i = 0; i < kCachedSteps; ++i) {
    const std::int32_t s = begin + i * 32 + lane;
    ex[i] = s < end ? slot_expert(p, s) : -1;
    peers[i] = 0;
  }
  for (int i = threadIdx.x; i < 32 * E; i += kSmallAlignThreads) hist_all[i] = 0;
  __syncthreads();
#pragma unroll
  for (int i = 0; i < kCachedSteps; ++i) {
    if (i < steps) {  // warp-uniform
      peers[i] = match_peers(ex[i], id_bits);
      if (ex[i] >= 0 && lane == __ffs(peers[i]) - 1) hist[ex[i]] += __popc(peers[i]);
      __syncwarp();
    }
  }
  __syncthreads();

  // ---- 2. per-expert ranks, segment starts, padding and block labels
  std::int32_t total = 0, blocks = 0;
  if (static_cast<std::int32_t>(threadIdx.x) < E) {
    const std::int32_t e = threadIdx.x;
#pragma unroll
    for (int half = 0; half < 2; ++half) {  // 16 loads in flight, then the rewrites
      std::int32_t c[16];
#pragma unroll
      for (int w = 0; w < 16; ++w) c[w] = hist_all[(half * 16 + w) * E + e];
#pragma unroll
      for (int w = 0; w < 16; ++w) {
        hist_all[(half * 16 + w) * E + e] = total;
        total += c[w];
      }
    }
    blocks = (total + B - 1) / B;
  }
  std::int32_t total_blocks = 0;
  const std::int32_t first_block = block_exclusive_scan(blocks, warp_sums, &total_blocks);
  const auto sentinel = N;
  const bool align = p.output == SortOutput::kAlign;
  if (static_cast<std::int32_t>(threadIdx.x) < E) {
    const std::int32_t e = threadIdx.x, start = first_block * B, stop = start + blocks * B;
    seg[e] = start;
    if (align) {
      for (std::int32_t j = start + total; j < stop; ++j) p.sorted_ids[j] = sentinel;
      for (std::int32_t b = first_block; b < first_block + blocks; ++b) p.block_experts[b] = e;
    } else {
      for (std::int32_t j = start + total; j < stop; ++j) p.dst_to_src[j] = -1;
      p.counts[e] = total;
      p.offsets[e] = start;
    }
  }
  __syncthreads();

  // ---- 3. place the slots, fill the tails
  const unsigned lower = (1u << lane) - 1u;
#pragma unroll
  for (int i = 0; i < kCachedSteps; ++i) {
    if (i < steps) {
      const std::int32_t e = ex[i], s = begin + i * 32 + lane;
      if (e >= 0) {
        const std::int32_t dst = seg[e] + hist[e] + __popc(peers[i] & lower);
        if (align) {
          p.sorted_ids[dst] = s;
        } else {
          p.src_to_dst[s] = dst;
          p.dst_to_src[dst] = s;
        }
      } else if (!align && s < end) {
        p.src_to_dst[s] = -1;  // dropped slot
      }
      __syncwarp();
      if (e >= 0 && lane == __ffs(peers[i]) - 1) hist[e] += __popc(peers[i]);
      __syncwarp();
    }
  }
  const std::int64_t used = static_cast<std::int64_t>(total_blocks) * B;
  if (align) {
    for (std::int64_t j = used + threadIdx.x; j < p.sorted_numel; j += kSmallAlignThreads)
      p.sorted_ids[j] = sentinel;
    for (std::int64_t b = total_blocks + threadIdx.x; b < p.block_experts_numel;
         b += kSmallAlignThreads)
      p.block_experts[b] = -1;
    if (threadIdx.x == 0) *p.post_pad = static_cast<std::int32_t>(used);
  } else {
    for (std::int64_t j = used + threadIdx.x; j < p.dst_numel; j += kSmallAlignThreads)
      p.dst_to_src[j] = -1;
    if (threadIdx.x == 0) {
      p.offsets[E] = used;
      if (p.overflow != nullptr) *p.overflow = 0;  // contiguous: nothing is dropped for space
    }
  }
}

}  // namespace switchyard::kernels
