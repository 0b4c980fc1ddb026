// moe_align_block_size and the contiguous expert layout for small batches of 33..256 slots
// (decode at 5-32 tokens of K = 8; the heuristic takes it at 33..64, see below): the warp kernel's
// ballot sort (align_warp.cuh) over up to 8 warps of one block, two block barriers. Same output,
// bit for bit, as align_warp_kernel, align_small_kernel, expert_sort_kernel and the CPU.
//
// Every block sorts all the ids itself (<= 256: one per thread, slot = threadIdx.x), so blocks
// never wait for each other; the grid is sized by the outputs it writes:
//   1. loads, and the id-independent stores while they are in flight: sentinels past the static
//      bound N + min(E, N)(B - 1) by every thread of the grid, the block's chunks of [0, bound)
//      (chunk c belongs to block c % gridDim.x) by the block's threads, -1 labels up to bound / B
//      by block 0;
//   2. warp w's per-bit ballots of its 32 ids (w = group of slots [32w, 32w + 32)) into shared
//      memory; barrier;
//   3. every thread walks each group's ballots with its own id (warp_compare): eq_i = the slots
//      of group i with its expert, lt_i = those with a smaller one. rank = the slots of its
//      expert in earlier groups + its peers below it in its own group (slots ascend in every
//      segment); head = valid && rank % B == 0; warp w's ballot of heads into shared memory;
//      barrier;
//   4. first block of its expert = sum_i popc(heads_i & lt_i), dst = first * B + rank, padded
//      total = sum_i popc(heads_i) * B: the slot is written where dst falls in one of the
//      block's chunks (after the block's sentinels: barrier), block 0 writes the labels
//      (head slot: first + rank / B) and the scalars (layout: src_to_dst, offsets[E], overflow);
//      the layout's counts / offsets of every expert x by the thread x of the grid (the same
//      walks with x in place of an id).
// 32-bit everywhere: the launcher takes this kernel where the small kernels' 32-bit limits hold.
//
// Measured (session 8, H200, bench align, the same binary with the heuristic taking this kernel
// or align_small_kernel, us per launch, empty kernel 0.76): DeepSeek-V3 5 / 8 / 16 / 32 tokens
// 3.20 / 3.16 / 3.78 / 5.13 against 3.42 / 3.47 / 3.67 / 3.54 (Qwen3-30B and Kimi K2 alike). The
// per-thread walk over every group's ballots grows with the groups: it wins with 2 groups (<= 64
// slots) and loses from 4 on. So the heuristic took it up to kBlockAlignHeuristicMaxSlots only;
// grid -3 (tests) runs it up to kBlockAlignMaxSlots. (Predicted before it ran: 2.0-2.3 us at 32
// tokens; the walk's cost was underestimated.) Since session 13 the warp kernel's two slots per
// lane (align_warp.cuh) take 33..64 slots instead, 0.3-0.4 us faster; this kernel runs there only
// with SWITCHYARD_ALIGN_WARP=0 (the A/B baseline) or grid -3.
#pragma once

#include <algorithm>
#include <cstdint>

#include "align.cuh"
#include "align_small.cuh"
#include "align_warp.cuh"
#include "pdl.cuh"

namespace switchyard::kernels {

inline constexpr std::int64_t kBlockAlignMaxSlots = 256;
// Where the heuristic takes it (measured above): two groups of 32 slots at most.
inline constexpr std::int64_t kBlockAlignHeuristicMaxSlots = 64;
inline constexpr int kBlockAlignThreads = 256;  // one slot per thread: the kernel needs this block
inline constexpr int kBlockAlignGroups = kBlockAlignThreads / 32;

// Blocks of kBlockAlignThreads for `p`: enough for the fills past the bound, the 4 KiB chunks of
// [0, bound) (about 2 per block) and, for the layout, one thread per expert. (Correct on any
// grid: these are for speed.)
inline int block_align_grid(const SortParams& p) {
  const bool align = p.output == SortOutput::kAlign;
  const std::int64_t esz = align ? 4 : 8;
  const std::int64_t bound = warp_align_bound(p.num_slots, p.num_experts, p.pad);
  const std::int64_t lim = std::min(align ? p.sorted_numel : p.dst_numel, bound);
  const std::int64_t chunk = kWarpAlignChunkBytes / esz;
  const std::int64_t chunks = (lim + chunk - 1) / chunk;
  const std::int64_t out_bytes =
      align ? (p.sorted_numel + p.block_experts_numel) * 4 : p.dst_numel * 8;
  std::int64_t blocks = std::min<std::int64_t>(
      (out_bytes + kWarpAlignBytesPerBlock - 1) / kWarpAlignBytesPerBlock, kWarpAlignMaxGrid);
  blocks = std::max(blocks, (chunks + 1) / 2);
  if (!align)
    blocks = std::max<std::int64_t>(blocks,
                                    (p.num_experts + kBlockAlignThreads - 1) / kBlockAlignThreads);
  return static_cast<int>(std::clamp<std::int64_t>(blocks, 1, kWarpAlignMaxGrid));
}

// The slot's (mapped) expert or -1: warp_load_id's rules for any slot index.
template <typename Id>
__device__ __forceinline__ std::int32_t block_load_id(const SortParams& p, std::int32_t slot) {
  return warp_load_id<Id>(p, slot);
}

// Walks the ballots of every group with value v: *rank_eq = slots of v's expert in groups before
// `own` (all of them when own >= groups) plus, in group own, those selected by own_mask; lt[i] =
// group i's slots with a smaller expert; *count = all slots with v's expert.
__device__ __forceinline__ void block_compare(std::uint32_t v,
                                              const unsigned (*ones)[kWarpAlignMaxBits], int groups,
                                              int bits, int own, unsigned own_mask,
                                              std::int32_t* rank_eq, std::int32_t* count,
                                              unsigned (&lt)[kBlockAlignGroups]) {
  std::int32_t r = 0, c = 0;
#pragma unroll
  for (int i = 0; i < kBlockAlignGroups; ++i) {
    lt[i] = 0u;
    if (i < groups) {
      unsigned o[kWarpAlignMaxBits];
#pragma unroll
      for (int b = 0; b < kWarpAlignMaxBits; ++b) o[b] = b < bits ? ones[i][b] : 0u;
      unsigned eq;
      warp_compare(v, o, bits, &eq, &lt[i]);
      c += __popc(eq);
      r += i < own ? __popc(eq) : (i == own ? __popc(eq & own_mask) : 0);
    }
  }
  *rank_eq = r;
  *count = c;
}

template <bool kAlign>
__device__ __forceinline__ void align_block_body(const SortParams& p) {
  __shared__ unsigned s_ones[kBlockAlignGroups][kWarpAlignMaxBits];
  __shared__ unsigned s_heads[kBlockAlignGroups];
  const auto tid = static_cast<std::int32_t>(threadIdx.x);
  const std::int32_t lane = tid & 31, w = tid >> 5;
  const auto gtid = static_cast<std::int32_t>(blockIdx.x) * kBlockAlignThreads + tid;
  const auto nthreads = static_cast<std::int32_t>(gridDim.x) * kBlockAlignThreads;
  const auto block = static_cast<std::int32_t>(blockIdx.x);
  const auto nblocks = static_cast<std::int32_t>(gridDim.x);
  const std::int32_t E = p.num_experts;
  const auto N = static_cast<std::int32_t>(p.num_slots);
  const auto A = static_cast<std::int32_t>(p.pad);
  constexpr bool align = kAlign;  // else the contiguous layout
  const std::int32_t bound = N + min(E, N) * (A - 1);
  const SmallDiv div = SmallDiv::of(A);
  const std::int32_t lim = static_cast<std::int32_t>(
      min(align ? p.sorted_numel : p.dst_numel, static_cast<std::int64_t>(bound)));
  const std::int32_t chunk = kWarpAlignChunkBytes / (align ? 4 : 8);
  const std::int32_t chunks = (lim + chunk - 1) / chunk;
  const std::int32_t groups = (N + 31) >> 5;

  // ---- 1. the ids, and the stores that do not depend on them
  const std::int32_t e =
      p.ids_int64 ? block_load_id<std::int64_t>(p, tid) : block_load_id<std::int32_t>(p, tid);
  const std::int32_t bound_blocks = div.div(bound);
  if constexpr (align) {
    small_fill(p.sorted_ids, bound, static_cast<std::int32_t>(p.sorted_numel), N, gtid, nthreads);
    small_fill(p.block_experts, bound_blocks, static_cast<std::int32_t>(p.block_experts_numel), -1,
               gtid, nthreads);
  } else {
    warp_fill_minus1(p.dst_to_src, bound, static_cast<std::int32_t>(p.dst_numel), gtid, nthreads);
  }
#pragma unroll 1
  for (std::int32_t c = block; c < chunks; c += nblocks) {
    const std::int32_t c0 = c * chunk, c1 = min(lim, c0 + chunk);
    if constexpr (align) {
      small_fill(p.sorted_ids, c0, c1, N, tid, kBlockAlignThreads);
    } else {
      warp_fill_minus1(p.dst_to_src, c0, c1, tid, kBlockAlignThreads);
    }
  }
  if (align && block == 0) {
    const auto blim = static_cast<std::int32_t>(
        min(p.block_experts_numel, static_cast<std::int64_t>(bound_blocks)));
#pragma unroll 1
    for (std::int32_t b = tid; b < blim; b += kBlockAlignThreads) p.block_experts[b] = -1;
  }

  // ---- 2. per-bit ballots of each group (invalid slots: all ones, above every valid id)
  const int bits = 32 - __clz(E);
  const auto v = static_cast<std::uint32_t>(e);
#pragma unroll 1
  for (int b = 0; b < bits; ++b) {
    const unsigned ones = __ballot_sync(0xffffffffu, (v >> b) & 1u);
    if (lane == b) s_ones[w][b] = ones;
  }
  __syncthreads();

  // ---- 3. rank and block heads
  unsigned lt[kBlockAlignGroups];
  std::int32_t rank = 0, count = 0;
  block_compare(v, s_ones, groups, bits, w, (1u << lane) - 1u, &rank, &count, lt);
  const bool valid = e >= 0;
  const std::int32_t q = div.div(rank);
  const bool head = valid && rank == q * A;
  const unsigned heads = __ballot_sync(0xffffffffu, head);
  if (lane == 0) s_heads[w] = heads;
  __syncthreads();

  // ---- 4. destinations, the block's slots, block 0's labels and scalars
  std::int32_t first_block = 0, total_blocks = 0;
#pragma unroll
  for (int i = 0; i < kBlockAlignGroups; ++i) {
    if (i < groups) {
      first_block += __popc(s_heads[i] & lt[i]);
      total_blocks += __popc(s_heads[i]);
    }
  }
  const std::int32_t dst = first_block * A + rank;  // valid slots only
  const std::int32_t used = total_blocks * A;
  if (valid && dst < lim && (dst / chunk) % nblocks == block) {
    if constexpr (align) {
      p.sorted_ids[dst] = tid;
    } else {
      p.dst_to_src[dst] = tid;
    }
  }
  if (block == 0) write_align_scalars<align>(p, tid, valid, head, e, first_block, q, dst, used);
  // The layout's counts and offsets of every expert (the thread's x).
  if constexpr (!align) {
#pragma unroll 1
    for (std::int32_t x = gtid; x < E; x += nthreads) {
      unsigned xlt[kBlockAlignGroups];
      std::int32_t unused = 0, c = 0;
      block_compare(static_cast<std::uint32_t>(x), s_ones, groups, bits, kBlockAlignGroups, 0u,
                    &unused, &c, xlt);
      std::int32_t before = 0;
#pragma unroll
      for (int i = 0; i < kBlockAlignGroups; ++i)
        if (i < groups) before += __popc(s_heads[i] & xlt[i]);
      p.counts[x] = c;
      p.offsets[x] = static_cast<std::int64_t>(before) * A;
    }
  }
  (void)count;
}

// kAlign: alignment (p.output == kAlign), else the contiguous layout. Block of
// kBlockAlignThreads threads, any grid.
template <bool kAlign>
__global__ void __launch_bounds__(kBlockAlignThreads) align_block_kernel(const SortParams p) {
  pdl_begin_warm(sort_param_lines(p));  // first, as in align_small_kernel
  align_block_body<kAlign>(p);
}

}  // namespace switchyard::kernels
