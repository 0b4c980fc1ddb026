// moe_align_block_size and the contiguous expert layout for tiny batches (N <= 32 slots: decode at
// 1-4 tokens): warp-level, no shared memory, no block barrier. Same output, bit for bit, as
// align_small_kernel, expert_sort_kernel and the CPU.
//
// A warp that needs the ids loads them all (lane i: slot i; same validity / expert_map rules as
// small_load_ids) and sorts them with ballots alone:
//   - one ballot per bit of the id (`bits` = bit width of E, as match_peers) gives every lane, by
//     a walk from the high bit down, its peers (lanes with the same expert) and the lanes whose
//     expert is smaller; invalid slots are all ones in those bits (>= E), above every valid id;
//   - rank = peers below the lane (slots ascend in every segment), and a lane is a block head
//     when rank % B == 0: an expert with c slots has ceil(c / B) heads, one per block, so
//     heads = ballot(valid && rank % B == 0) has popc(heads) = the padded total / B and
//     popc(heads & smaller) = the expert's first block: dst = that * B + rank, no scan and no loop
//     over experts (head lane h labels block popc(heads & smaller_h) + rank_h / B);
//   - the same walk with an arbitrary x in place of the lane's id gives count(x) = popc(eq) and
//     offset(x) = popc(heads & smaller) * B for the layout's counts / offsets of every expert.
// Outputs (any grid and block shape, blocks whole warps: every loop is grid-stride):
//   - past the static bound N + min(E, N)(B - 1) (the largest padded total): sentinels whatever
//     the ids are, written by every thread of the grid with 16-byte stores, right after its loads
//     (threads that load nothing write them at once);
//   - [0, bound) in chunks (kWarpAlignChunkBytes), one warp per chunk: the sentinel fill also
//     before the sort (it does not depend on the ids), then __syncwarp after the sort and the
//     slots whose destination falls in the chunk (no ordering across warps is needed: every chunk
//     warp sorts the ids itself);
//   - warp 0 of the grid: -1 labels up to bound / B (<= N) before the sort, the block labels and
//     post_pad after it; for the layout src_to_dst, offsets[E] and overflow (0); every thread
//     with an x < E: counts[x] and offsets[x] (the warps that own one load the ids too).
// So warp 0's critical path at decode sizes is: id load -> ballots -> a few stores.
// Everything is 32-bit: the launcher takes this kernel only where slots + padding and every
// output size are below 2^30 (as align_small_kernel).
//
// Predicted time (NOT measured: no GPU in the session that wrote it): at 1 DeepSeek-V3 token
// (N = 8, E = 256, B = 64) warp 0's chain is one L2 id load (its 4 16-byte sentinel stores per
// lane and its share of the tail issued while it is in flight), a 9-iteration loop of ballots
// (each ~7 dependent instructions), a few popc / ballot steps and one store per lane (~250
// cycles past the load); the 62 KB past the bound are written meanwhile by 9 blocks of 256
// threads (2 stores per thread). Expected ~1.3-1.6 us per launch on an H200 against 0.76 us
// empty (session 4's micro-benchmarks: load 8 ids -> store 1.12-1.24 us, fill 16K ints on 8
// blocks 1.18 us), i.e. ~0.55-0.85 us over empty, from 2.51 us for align_small_kernel
// (bench/NOTES.md, "Next: a warp kernel for <= 32 slots").
#pragma once

#include <algorithm>
#include <cstdint>

#include "align.cuh"
#include "align_small.cuh"
#include "pdl.cuh"

namespace switchyard::kernels {

inline constexpr std::int64_t kWarpAlignMaxSlots = 32;
inline constexpr int kWarpAlignThreads = 256;  // the launcher's block (any multiple of 32 works)
inline constexpr int kWarpAlignMaxBits = 15;   // bit width of E <= 16384
inline constexpr std::int32_t kWarpAlignChunkBytes = 4096;     // [0, bound) per warp: 8 stores/lane
inline constexpr std::int64_t kWarpAlignBytesPerBlock = 8192;  // grid sizing for the fills
inline constexpr int kWarpAlignMaxGrid = 1024;

// The largest padded total (every expert hit adds at most pad - 1 entries); 64-bit for the host.
inline std::int64_t warp_align_bound(std::int64_t num_slots, std::int32_t num_experts,
                                     std::int64_t pad) {
  return num_slots + std::min<std::int64_t>(num_experts, num_slots) * (pad - 1);
}

// Blocks of kWarpAlignThreads for `p` (kAlign or kContiguous): enough for the fills past the
// bound (kWarpAlignBytesPerBlock each, at most kWarpAlignMaxGrid), the chunks of [0, bound) and,
// for the layout, one thread per expert. (Correct on any grid: these are for speed.)
inline int warp_align_grid(const SortParams& p) {
  const bool align = p.output == SortOutput::kAlign;
  const std::int64_t esz = align ? 4 : 8;
  const std::int64_t bound = warp_align_bound(p.num_slots, p.num_experts, p.pad);
  const std::int64_t lim = std::min(align ? p.sorted_numel : p.dst_numel, bound);
  const std::int64_t chunk = kWarpAlignChunkBytes / esz;
  const std::int64_t chunk_warps = (lim + chunk - 1) / chunk;
  const std::int64_t out_bytes =
      align ? (p.sorted_numel + p.block_experts_numel) * 4 : p.dst_numel * 8;
  const std::int64_t warps_per_block = kWarpAlignThreads / 32;
  std::int64_t blocks = std::min<std::int64_t>(
      (out_bytes + kWarpAlignBytesPerBlock - 1) / kWarpAlignBytesPerBlock, kWarpAlignMaxGrid);
  blocks = std::max(blocks, (chunk_warps + warps_per_block - 1) / warps_per_block);
  if (!align)
    blocks =
        std::max<std::int64_t>(blocks, (p.num_experts + kWarpAlignThreads - 1) / kWarpAlignThreads);
  return static_cast<int>(std::max<std::int64_t>(blocks, 1));
}

// The lane's slot's (mapped) expert, or -1 (past N, invalid, or mapped away): small_load_ids's
// rules for one slot per lane.
template <typename Id>
__device__ __forceinline__ std::int32_t warp_load_id(const SortParams& p, std::int32_t lane) {
  const auto* ids = static_cast<const Id*>(p.ids);
  const Id raw = lane < static_cast<std::int32_t>(p.num_slots) ? __ldg(ids + lane) : Id{-1};
  const auto u = static_cast<std::uint64_t>(static_cast<std::int64_t>(raw));  // < 0: huge
  if (p.expert_map == nullptr) {
    return u < static_cast<std::uint64_t>(p.num_experts) ? static_cast<std::int32_t>(raw) : -1;
  }
  const std::int32_t m = u < static_cast<std::uint64_t>(p.map_size)
                             ? __ldg(p.expert_map + static_cast<std::int64_t>(raw))
                             : -1;
  return static_cast<std::uint32_t>(m) < static_cast<std::uint32_t>(p.num_experts) ? m : -1;
}

// Lanes whose id (its low `bits` bits) equals v's (*eq) and is below it (*lt), given the per-bit
// ballots ones[b] of the warp's ids: a walk from the high bit down.
__device__ __forceinline__ void warp_compare(std::uint32_t v,
                                             const unsigned (&ones)[kWarpAlignMaxBits], int bits,
                                             unsigned* eq, unsigned* lt) {
  unsigned e = 0xffffffffu, l = 0u;
#pragma unroll
  for (int b = kWarpAlignMaxBits - 1; b >= 0; --b) {
    if (b < bits) {
      const bool bit = (v >> b) & 1u;
      l |= bit ? (e & ~ones[b]) : 0u;
      e &= bit ? ones[b] : ~ones[b];
    }
  }
  *eq = e;
  *lt = l;
}

// The same walk for the lane's own id v, the ballots taken on the way (alignment: nothing else
// needs them, so no unrolled array; a short loop of bits iterations).
__device__ __forceinline__ void warp_peers(std::uint32_t v, int bits, unsigned* eq, unsigned* lt) {
  unsigned e = 0xffffffffu, l = 0u;
#pragma unroll 1
  for (int b = bits - 1; b >= 0; --b) {
    const bool bit = (v >> b) & 1u;
    const unsigned ones = __ballot_sync(0xffffffffu, bit);
    l |= bit ? (e & ~ones) : 0u;
    e &= bit ? ones : ~ones;
  }
  *eq = e;
  *lt = l;
}

// p[begin, end) = -1 (int64) by `nthreads` threads: 16-byte stores between scalar ends. p is
// 8-byte aligned.
__device__ __forceinline__ void warp_fill_minus1(std::int64_t* p, std::int32_t begin,
                                                 std::int32_t end, std::int32_t tid,
                                                 std::int32_t nthreads) {
  if (begin >= end) return;
  const std::int32_t body = min(
      end,
      begin + static_cast<std::int32_t>((reinterpret_cast<std::uintptr_t>(p + begin) >> 3) & 1u));
  if (tid == 0 && body > begin) p[begin] = -1;
  const std::int32_t n2 = (end - body) >> 1;
  auto* q = reinterpret_cast<longlong2*>(p + body);
#pragma unroll 1
  for (std::int32_t i = tid; i < n2; i += nthreads) q[i] = make_longlong2(-1, -1);
  if (tid == 0 && body + 2 * n2 < end) p[end - 1] = -1;
}

#define SY_WARP_TRACE(k) \
  if (p.trace != nullptr && gtid == 0) p.trace[k] = clock64()

// What is written once, by the warp kernel's warp 0 or the block kernel's block 0 (thread i holds
// slot i): alignment: the label of the block a head slot starts, and post_pad; layout:
// src_to_dst, offsets[E] and overflow.
template <bool kAlign>
__device__ __forceinline__ void write_align_scalars(const SortParams& p, std::int32_t i, bool valid,
                                                    bool head, std::int32_t e,
                                                    std::int32_t first_block, std::int32_t q,
                                                    std::int32_t dst, std::int32_t used) {
  if constexpr (kAlign) {
    if (head) p.block_experts[first_block + q] = e;
    if (i == 0) *p.post_pad = used;
  } else {
    if (i < static_cast<std::int32_t>(p.num_slots)) p.src_to_dst[i] = valid ? dst : -1;
    if (i == 0) {
      p.offsets[p.num_experts] = used;
      if (p.overflow != nullptr) *p.overflow = 0;  // contiguous: nothing is dropped for space
    }
  }
}

template <bool kAlign>
__device__ __forceinline__ void align_warp_body(const SortParams& p) {
  const auto gtid = static_cast<std::int32_t>(blockIdx.x * blockDim.x + threadIdx.x);
  const auto nthreads = static_cast<std::int32_t>(gridDim.x * blockDim.x);
  SY_WARP_TRACE(0);
  const std::int32_t lane = gtid & 31, gw = gtid >> 5, nwarps = nthreads >> 5;
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
  // Warp-uniform: warp 0, the chunk warps, and (layout) the warps that own an expert.
  const bool sorts = gw == 0 || gw < chunks || (!align && gw * 32 < E);

  std::int32_t e = -1;
  if (sorts)
    e = p.ids_int64 ? warp_load_id<std::int64_t>(p, lane) : warp_load_id<std::int32_t>(p, lane);
  // ---- id-independent stores, issued while the loads are in flight. Past the bound: sentinels
  // whatever the ids are (every thread). [0, bound): sentinels by the chunk warps, and -1 labels up
  // to bound / B (<= N) by warp 0; the slots and labels overwrite some of them after the sort,
  // ordered by its __syncwarp (same warp).
  const std::int32_t bound_blocks = div.div(bound);
  const auto blim = static_cast<std::int32_t>(
      min(p.block_experts_numel, static_cast<std::int64_t>(bound_blocks)));
  if constexpr (align) {
    small_fill(p.sorted_ids, bound, static_cast<std::int32_t>(p.sorted_numel), N, gtid, nthreads);
    small_fill(p.block_experts, bound_blocks, static_cast<std::int32_t>(p.block_experts_numel), -1,
               gtid, nthreads);
  } else {
    warp_fill_minus1(p.dst_to_src, bound, static_cast<std::int32_t>(p.dst_numel), gtid, nthreads);
  }
#pragma unroll 1
  for (std::int32_t c = gw; c < chunks; c += nwarps) {
    const std::int32_t c0 = c * chunk, c1 = min(lim, c0 + chunk);
    if constexpr (align) {
      small_fill(p.sorted_ids, c0, c1, N, lane, 32);
    } else {
      warp_fill_minus1(p.dst_to_src, c0, c1, lane, 32);
    }
  }
  if (align && gw == 0) {
#pragma unroll 1
    for (std::int32_t b = lane; b < blim; b += 32) p.block_experts[b] = -1;
  }
  if (!sorts) return;

  // ---- the warp's sort: per-bit ballots, peers / smaller lanes, ranks, block heads
  const int bits = 32 - __clz(E);
  const auto v = static_cast<std::uint32_t>(e);  // invalid: all ones, above every valid id
  unsigned ones[kWarpAlignMaxBits];              // layout: kept for the counts / offsets of every x
  unsigned peers, smaller;
  if constexpr (align) {
    warp_peers(v, bits, &peers, &smaller);
  } else {
#pragma unroll
    for (int b = 0; b < kWarpAlignMaxBits; ++b)
      ones[b] = b < bits ? __ballot_sync(0xffffffffu, (v >> b) & 1u) : 0u;
    warp_compare(v, ones, bits, &peers, &smaller);
  }
  const bool valid = e >= 0;
  const std::int32_t rank = __popc(peers & ((1u << lane) - 1u));
  const std::int32_t q = A > 31 ? 0 : div.div(rank);  // rank < 32
  const bool head = valid && rank == q * A;
  const unsigned heads = __ballot_sync(0xffffffffu, head);
  const std::int32_t first_block = __popc(heads & smaller);
  const std::int32_t dst = first_block * A + rank;  // valid lanes only
  const std::int32_t total_blocks = __popc(heads), used = total_blocks * A;
  SY_WARP_TRACE(1);

  // ---- the slots of this warp's chunks (after the chunks' sentinels: __syncwarp)
  __syncwarp();
#pragma unroll 1
  for (std::int32_t c = gw; c < chunks; c += nwarps) {
    if (valid && dst >= c * chunk && dst < min(lim, c * chunk + chunk)) {
      if constexpr (align) {
        p.sorted_ids[dst] = lane;
      } else {
        p.dst_to_src[dst] = lane;
      }
    }
  }
  // ---- warp 0: labels, scalars, src_to_dst
  if (gw == 0) write_align_scalars<align>(p, lane, valid, head, e, first_block, q, dst, used);
  SY_WARP_TRACE(2);
  // ---- layout: counts and offsets of every expert (the thread's x)
  if constexpr (!align) {
#pragma unroll 1
    for (std::int32_t x = gtid; x < E; x += nthreads) {
      unsigned eq, lt;
      warp_compare(static_cast<std::uint32_t>(x), ones, bits, &eq, &lt);
      p.counts[x] = __popc(eq);
      p.offsets[x] = static_cast<std::int64_t>(__popc(heads & lt)) * A;
    }
  }
  if (p.trace != nullptr && gtid == 0) {
    const long long t = clock64();
    for (int k = 3; k < kSortTracePoints; ++k) p.trace[k] = t;
  }
}

#undef SY_WARP_TRACE

// kAlign: alignment (p.output == kAlign), else the contiguous layout (kContiguous): one instance
// each, so that neither carries the other's code. kPasses = 1 in the library; 2 (diagnostics,
// set_align_small_twice) runs the body twice per launch, every pass writing the same outputs from
// the same threads.
template <bool kAlign, int kPasses>
__global__ void __launch_bounds__(kWarpAlignThreads) align_warp_kernel(const SortParams p) {
  // As align_small_kernel: a PDL consumer may become resident now (it waits for this grid).
  pdl_launch_dependents();
#pragma unroll 1
  for (int pass = 0; pass < kPasses; ++pass) align_warp_body<kAlign>(p);
}

}  // namespace switchyard::kernels
