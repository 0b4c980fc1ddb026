// moe_align_block_size and the contiguous expert layout for tiny batches (N <= 64 slots: decode at
// 1-8 tokens of top-8): warp-level, no shared memory, no block barrier. Same output, bit for bit,
// as align_small_kernel, expert_sort_kernel and the CPU.
//
// A warp that needs the ids loads them all (lane i: slot i, and with two sets (kSets = 2, N > 32)
// slot 32 + i too; same validity / expert_map rules as small_load_ids) and sorts them with ballots
// alone (the text below is for one set; with two, every walk runs against each set's ballots, a
// slot of set 1 counts all its peers of set 0 before it, and the heads, smaller-lane and peer
// counts are sums over the sets):
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
// Measured (H200, bench/NOTES.md, sessions 6 and 13): DeepSeek-V3 at 1 / 4 tokens (N = 8 / 32)
// 2.26 / 2.36 us per launch against ~0.76 empty, i.e. 1.5-1.6 us over (the bar: <= 2). Two sets
// (5-8 tokens) 2.82-2.87 us against 3.21-3.24 for the block kernel (align_block.cuh) in the same
// process: ~2.0-2.1 us over. Predicted from the instructions (9 more ballots, three more walks):
// ~150 cycles over one set; the phase trace shows ~900: a sorting warp runs 511 instructions
// instead of 345 at ~5.6 cycles each (ncu). The walk loop is unrolled by 3 for the independent
// walks to overlap (-0.07 us against the rolled loop).
#pragma once

#include <algorithm>
#include <cstdint>

#include "align.cuh"
#include "align_small.cuh"
#include "pdl.cuh"

namespace switchyard::kernels {

inline constexpr std::int64_t kWarpAlignMaxSlots = 64;  // two slots per lane
inline constexpr int kWarpAlignThreads = 256;  // the launcher's block (any multiple of 32 works)
inline constexpr int kWarpAlignMaxBits = 15;   // bit width of E <= 16384
inline constexpr std::int32_t kWarpAlignChunkBytes = 4096;     // [0, bound) per warp: 8 stores/lane
inline constexpr std::int64_t kWarpAlignBytesPerBlock = 8192;  // grid sizing for the fills
inline constexpr int kWarpAlignMaxGrid = 1024;

// Slots per lane of the instance for N slots: 1 up to kWarpAlignOneSetMaxSlots, else 2.
inline constexpr std::int64_t kWarpAlignOneSetMaxSlots = 32;
inline int warp_align_sets(std::int64_t num_slots) {
  return num_slots <= kWarpAlignOneSetMaxSlots ? 1 : 2;
}

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

// The slot's raw id (-1 past N), as a 64-bit value. Split from the validity / expert_map step
// (warp_map_id) so that a lane's loads of several slots are all in flight before any is used.
template <typename Id>
__device__ __forceinline__ std::int64_t warp_load_raw(const SortParams& p, std::int32_t slot) {
  const auto* ids = static_cast<const Id*>(p.ids);
  return slot < static_cast<std::int32_t>(p.num_slots)
             ? static_cast<std::int64_t>(__ldg(ids + slot))
             : std::int64_t{-1};
}

// The (mapped) expert of a raw id, or -1 (invalid, or mapped away): small_load_ids's rules.
__device__ __forceinline__ std::int32_t warp_map_id(const SortParams& p, std::int64_t raw) {
  const auto u = static_cast<std::uint64_t>(raw);  // < 0: huge
  if (p.expert_map == nullptr) {
    return u < static_cast<std::uint64_t>(p.num_experts) ? static_cast<std::int32_t>(raw) : -1;
  }
  const std::int32_t m =
      u < static_cast<std::uint64_t>(p.map_size) ? __ldg(p.expert_map + raw) : -1;
  return static_cast<std::uint32_t>(m) < static_cast<std::uint32_t>(p.num_experts) ? m : -1;
}

// The slot's (mapped) expert, or -1 (past N, invalid, or mapped away).
template <typename Id>
__device__ __forceinline__ std::int32_t warp_load_id(const SortParams& p, std::int32_t slot) {
  return warp_map_id(p, warp_load_raw<Id>(p, slot));
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

// The same walk for the lane's own ids v[s] (one per set) against every set t, the ballots taken
// on the way (alignment: nothing else needs them, so no array of them; a short loop of `bits`
// iterations, unrolled by 3 so that the kSets^2 independent walks and the next ballots overlap).
template <int kSets>
__device__ __forceinline__ void warp_peers(const std::uint32_t (&v)[kSets], int bits,
                                           unsigned (&eq)[kSets][kSets],
                                           unsigned (&lt)[kSets][kSets]) {
#pragma unroll
  for (int s = 0; s < kSets; ++s) {
#pragma unroll
    for (int t = 0; t < kSets; ++t) {
      eq[s][t] = 0xffffffffu;
      lt[s][t] = 0u;
    }
  }
#pragma unroll 3
  for (int b = bits - 1; b >= 0; --b) {
    unsigned ones[kSets];
#pragma unroll
    for (int t = 0; t < kSets; ++t) ones[t] = __ballot_sync(0xffffffffu, (v[t] >> b) & 1u);
#pragma unroll
    for (int s = 0; s < kSets; ++s) {
      // m: all ones where the slot's bit is set. Written as masks (not selects) so that each
      // update is one or two three-input LOP3s.
      const unsigned m = 0u - ((v[s] >> b) & 1u);
#pragma unroll
      for (int t = 0; t < kSets; ++t) {
        lt[s][t] |= eq[s][t] & ~ones[t] & m;
        eq[s][t] &= ~(ones[t] ^ m);
      }
    }
  }
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

template <bool kAlign, int kSets>
__device__ __forceinline__ void align_warp_body(const SortParams& p) {
  static_assert(kSets == 1 || kSets == 2, "one or two slots per lane");
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

  // Slot s * 32 + lane of each set s: every raw id load issued before the first is used (the
  // compiler otherwise serialised them; no difference measured, bench/NOTES.md session 13), then
  // the validity / expert_map step.
  std::int64_t raw[kSets];
#pragma unroll
  for (int s = 0; s < kSets; ++s) {
    raw[s] = -1;
    if (sorts)
      raw[s] = p.ids_int64 ? warp_load_raw<std::int64_t>(p, s * 32 + lane)
                           : warp_load_raw<std::int32_t>(p, s * 32 + lane);
  }
  std::int32_t e[kSets];
#pragma unroll
  for (int s = 0; s < kSets; ++s) e[s] = sorts ? warp_map_id(p, raw[s]) : -1;
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

  // ---- the warp's sort: per-bit ballots of each set, then for each of the lane's slots its
  // peers (eq) and smaller-expert lanes (lt) in every set. Set t precedes set s > t in slot order,
  // so a slot's rank counts all its peers in earlier sets and those below its lane in its own.
  const int bits = 32 - __clz(E);
  std::uint32_t v[kSets];
#pragma unroll
  for (int s = 0; s < kSets; ++s) v[s] = static_cast<std::uint32_t>(e[s]);  // invalid: all ones
  [[maybe_unused]] unsigned ones[kSets][kWarpAlignMaxBits];  // layout: kept for every x
  unsigned eq[kSets][kSets], lt[kSets][kSets];
  if constexpr (align) {
    warp_peers<kSets>(v, bits, eq, lt);  // the ballots on the way: a short loop
  } else {
#pragma unroll
    for (int t = 0; t < kSets; ++t) {
#pragma unroll
      for (int b = 0; b < kWarpAlignMaxBits; ++b)
        ones[t][b] = b < bits ? __ballot_sync(0xffffffffu, (v[t] >> b) & 1u) : 0u;
    }
#pragma unroll
    for (int s = 0; s < kSets; ++s) {
#pragma unroll
      for (int t = 0; t < kSets; ++t) warp_compare(v[s], ones[t], bits, &eq[s][t], &lt[s][t]);
    }
  }
  bool valid[kSets], head[kSets];
  std::int32_t rank[kSets], q[kSets];
#pragma unroll
  for (int s = 0; s < kSets; ++s) {
    valid[s] = e[s] >= 0;
    rank[s] = __popc(eq[s][s] & ((1u << lane) - 1u));
#pragma unroll
    for (int t = 0; t < s; ++t) rank[s] += __popc(eq[s][t]);
    q[s] = A > 32 * kSets - 1 ? 0 : div.div(rank[s]);  // rank < 32 * kSets
    head[s] = valid[s] && rank[s] == q[s] * A;
  }
  unsigned heads[kSets];
#pragma unroll
  for (int t = 0; t < kSets; ++t) heads[t] = __ballot_sync(0xffffffffu, head[t]);
  std::int32_t first_block[kSets], dst[kSets];
  std::int32_t total_blocks = 0;
#pragma unroll
  for (int s = 0; s < kSets; ++s) {
    first_block[s] = 0;
#pragma unroll
    for (int t = 0; t < kSets; ++t) first_block[s] += __popc(heads[t] & lt[s][t]);
    dst[s] = first_block[s] * A + rank[s];  // valid slots only
    total_blocks += __popc(heads[s]);
  }
  const std::int32_t used = total_blocks * A;
  SY_WARP_TRACE(1);

  // ---- the slots of this warp's chunks (after the chunks' sentinels: __syncwarp)
  __syncwarp();
#pragma unroll 1
  for (std::int32_t c = gw; c < chunks; c += nwarps) {
#pragma unroll
    for (int s = 0; s < kSets; ++s) {
      if (valid[s] && dst[s] >= c * chunk && dst[s] < min(lim, c * chunk + chunk)) {
        if constexpr (align) {
          p.sorted_ids[dst[s]] = s * 32 + lane;
        } else {
          p.dst_to_src[dst[s]] = s * 32 + lane;
        }
      }
    }
  }
  // ---- warp 0: labels, scalars, src_to_dst
  if (gw == 0) {
#pragma unroll
    for (int s = 0; s < kSets; ++s)
      write_align_scalars<align>(p, s * 32 + lane, valid[s], head[s], e[s], first_block[s], q[s],
                                 dst[s], used);
  }
  SY_WARP_TRACE(2);
  // ---- layout: counts and offsets of every expert (the thread's x)
  if constexpr (!align) {
#pragma unroll 1
    for (std::int32_t x = gtid; x < E; x += nthreads) {
      std::int32_t count = 0, blocks_before = 0;
#pragma unroll
      for (int t = 0; t < kSets; ++t) {
        unsigned xe, xl;
        warp_compare(static_cast<std::uint32_t>(x), ones[t], bits, &xe, &xl);
        count += __popc(xe);
        blocks_before += __popc(heads[t] & xl);
      }
      p.counts[x] = count;
      p.offsets[x] = static_cast<std::int64_t>(blocks_before) * A;
    }
  }
  if (p.trace != nullptr && gtid == 0) {
    const long long t = clock64();
    for (int k = 3; k < kSortTracePoints; ++k) p.trace[k] = t;
  }
}

#undef SY_WARP_TRACE

// kAlign: alignment (p.output == kAlign), else the contiguous layout (kContiguous): one instance
// each, so that neither carries the other's code. kSets: slots per lane, 1 (N <= 32) or 2
// (N <= 64; warp_align_sets). kPasses = 1 in the library; 2 (diagnostics, set_align_small_twice)
// runs the body twice per launch, every pass writing the same outputs from the same threads.
template <bool kAlign, int kSets, int kPasses>
__global__ void __launch_bounds__(kWarpAlignThreads) align_warp_kernel(const SortParams p) {
  pdl_begin_warm(sort_param_lines(p));  // first, as in align_small_kernel
#pragma unroll 1
  for (int pass = 0; pass < kPasses; ++pass) align_warp_body<kAlign, kSets>(p);
}

}  // namespace switchyard::kernels
