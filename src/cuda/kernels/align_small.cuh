// moe_align_block_size and the contiguous expert layout from decode batches to mid-size prefill:
// blocks of 512 threads, at most kSmallAlignMaxSlots slots and kSmallAlignMaxExperts experts, no
// grid barrier. Same output, bit for bit, as expert_sort_kernel (align.cuh) and the CPU.
// Described below for one step per block and no cluster (kOwn = kCluster = 1). Clustered
// (kCluster = 8, sm_90), block r of each cluster counts only every 8th block's steps and the
// cluster adds its blocks' counts through distributed shared memory after phase 1; with kOwn > 1
// a block owns kOwn consecutive steps, each with its own per-warp rows (see align_small_body).
//
// Every block computes the whole histogram itself (the ids of a decode batch are a few KiB, read
// from L2 by every block), so the blocks never wait for each other; block g owns the slots of
// step g ([g * 512, g * 512 + 512)) and writes them, and a share of the padding and tails:
//   0. outputs past the static bound N + min(E, N) * (B - 1) (the largest padded total) are
//      sentinels whatever the ids are: written first, before any load;
//   1. every thread loads its slots of every step; the steps before and after its own are
//      counted with shared-memory atomics (counts do not depend on order), its own step into a
//      per-warp row (ballot peer groups: the group's lowest lane adds the group size);
//   2. thread e adds up expert e (before + own rows + after), turns its own-step column into
//      per-warp starting ranks (relative to the segment), and a one-barrier block scan of the
//      padded block counts gives every segment's start;
//   3. each thread writes its own slot at segment start + slots of e in earlier steps + earlier
//      warps + earlier lanes of its warp (so slots ascend in every segment); warps take experts
//      round robin over the grid to write their padding and block labels (contiguous runs), and all
//      threads share the tails below the static bound.
// A single block writing everything (the previous design) was bound by one SM's store rate on the
// scattered padding writes: 22 us for 512 DeepSeek-V3 tokens on an H100.
// Everything is 32-bit: the launcher only takes this kernel when slots + padding < 2^30.
// At decode sizes the kernel is bound by instructions issued, not by memory (ncu on an H200:
// ~850 warp instructions per warp, 16 warps per SM, at 1 DeepSeek-V3 token), so the number of
// 512-slot steps is a template parameter (the launcher picks the smallest power of two that
// covers the slots), the tables are zeroed and the tails filled with 16-byte stores, and
// divisions by a power-of-two block size are shifts.
#pragma once

#include <algorithm>
#include <cstdint>

#include "align.cuh"
#include "cluster.cuh"
#include "pdl.cuh"

namespace switchyard::kernels {

inline constexpr int kSmallAlignThreads = 512;
inline constexpr int kSmallAlignWarps = kSmallAlignThreads / 32;
// Unclustered, every block counts every slot, so the time grows with the slots (H200, session
// 23-24, bench align, us: 4.0 at 16 steps, 5.3 at 32, 9.7 at 64, 16.1 at 128, where the
// grid-barrier sort, expert_sort_kernel<true>, takes 13-14). Clustered (kSmallAlignCluster blocks
// per thread block cluster, sm_90), the blocks of a cluster share the counting of the other steps
// and exchange their counts through distributed shared memory: 4.5 / 4.7 / 7.3 at 32 / 64 / 128
// steps (Qwen3-30B). With a block per step, from 129 steps the grid exceeded one block per SM
// and lost to the sort (10.1 at 129 steps, 16.0 at 256 against 13.5 / 14.4), so past 128 steps
// each block owns 2 or 4 steps (small_align_own), as long as every cluster is resident at once.
// Clustered from 17 or 33 steps (launch/align.cu), up to kSmallAlignMaxSteps.
inline constexpr int kSmallAlignMaxUnclusteredSteps = 64;
inline constexpr int kSmallAlignCluster = 8;
inline constexpr int kSmallAlignMaxSteps = 512;
// Past 32 steps (or positions, clustered) the ids are loaded and counted in chunks of this many.
inline constexpr int kSmallAlignChunk = 16;
inline constexpr std::int64_t kSmallAlignMaxSlots =
    static_cast<std::int64_t>(kSmallAlignThreads) * kSmallAlignMaxSteps;  // 262144
inline constexpr std::int64_t kSmallAlignMaxUnclusteredSlots =
    static_cast<std::int64_t>(kSmallAlignThreads) * kSmallAlignMaxUnclusteredSteps;  // 32768
inline constexpr std::int32_t kSmallAlignMaxExperts = kSmallAlignThreads;  // thread e: expert e

// Dynamic shared memory: per-warp rows [own steps][16][E], before[E], after[E] (the zeroed part,
// rounded up to 4 ints for 16-byte stores), then seg[E], total[E] and, in the clustered
// instances, own[E].
__host__ __device__ inline std::int32_t small_align_zeroed_ints(std::int32_t num_experts,
                                                                int own = 1) {
  return ((own * kSmallAlignWarps + 2) * num_experts + 3) / 4 * 4;
}
inline std::size_t small_align_shared_bytes(std::int32_t num_experts, int cluster = 1,
                                            int own = 1) {
  return (static_cast<std::size_t>(small_align_zeroed_ints(num_experts, own)) +
          (cluster > 1 ? 3 : 2) * static_cast<std::size_t>(num_experts)) *
         4;
}
// Steps each block owns in the clustered instance of `steps` steps: 1 up to 128, then 2 (the
// 256-step instance) and 4 (512), so the grid stays at <= 128 blocks. The launcher takes the
// 512-step instance (4 per block) at 129-256 steps too where the 256-step one's clusters would not
// all be resident at once.
inline constexpr int small_align_own(int steps) {
  return steps > 128 ? steps / 128 : 1;
}
// Steps of the template instance for `num_slots`: 1, 2, 4, ..., 512.
inline int small_align_steps(std::int64_t num_slots) {
  int steps = 1;
  while (static_cast<std::int64_t>(steps) * kSmallAlignThreads < num_slots) steps *= 2;
  return steps;
}
// Output entries (padding and tails included) per block: one SM writing a large padded buffer
// alone is bound by its store rate (measured: ~12,000 cycles for 16,000 entries on an H100).
inline constexpr std::int64_t kSmallAlignEntriesPerBlock = 2048;
inline constexpr int kSmallAlignMaxGrid = 64;
// Blocks: one per `own` 512-slot steps, and at least one per kSmallAlignEntriesPerBlock output
// entries (extra blocks own no slots; they count, and write their share of padding and tails);
// clustered, rounded up to whole clusters.
inline int small_align_grid(std::int64_t num_slots, std::int64_t out_entries, int cluster = 1,
                            int own = 1) {
  const std::int64_t steps =
      (num_slots + kSmallAlignThreads * own - 1) / (kSmallAlignThreads * own);
  const std::int64_t by_out =
      (out_entries + kSmallAlignEntriesPerBlock - 1) / kSmallAlignEntriesPerBlock;
  const std::int64_t g = std::max<std::int64_t>(
      1, std::max(steps, std::min<std::int64_t>(by_out, kSmallAlignMaxGrid)));
  return static_cast<int>((g + cluster - 1) / cluster * cluster);
}

// ex[i] = the (mapped) expert of slot i * 512 + thread, or -1 (past N, invalid, or mapped away).
// All loads are issued before any is used (branch-free in the unrolled loops), so they are in
// flight together.
// ex[i] is step (b * kOwn + i % kOwn) of block b = (first + i / kOwn) * stride + offset (chunked
// loads past 32 steps; the clustered instances take every stride-th block's steps).
template <int kSteps, typename Id, int kOwn = 1>
__device__ __forceinline__ void small_load_ids(const SortParams& p, std::int32_t (&ex)[kSteps],
                                               int first = 0, int stride = 1, int offset = 0) {
  const auto* ids = static_cast<const Id*>(p.ids);
  const auto n = static_cast<std::int32_t>(p.num_slots);
  Id raw[kSteps];
#pragma unroll
  for (int i = 0; i < kSteps; ++i) {
    const std::int32_t s =
        (((first + i / kOwn) * stride + offset) * kOwn + i % kOwn) * kSmallAlignThreads +
        static_cast<std::int32_t>(threadIdx.x);
    raw[i] = s < n ? __ldg(ids + s) : Id{-1};
  }
  // One unsigned compare per id: negative ids wrap to huge values.
  const auto u = [](Id v) { return static_cast<std::uint64_t>(static_cast<std::int64_t>(v)); };
  if (p.expert_map == nullptr) {
    const auto E = static_cast<std::uint64_t>(p.num_experts);
#pragma unroll
    for (int i = 0; i < kSteps; ++i) ex[i] = u(raw[i]) < E ? static_cast<std::int32_t>(raw[i]) : -1;
  } else {
    const auto map_size = static_cast<std::uint64_t>(p.map_size);  // < 2^30 (launcher)
#pragma unroll
    for (int i = 0; i < kSteps; ++i) {
      ex[i] = u(raw[i]) < map_size ? __ldg(p.expert_map + static_cast<std::int64_t>(raw[i])) : -1;
    }
    const auto E = static_cast<std::uint32_t>(p.num_experts);
#pragma unroll
    for (int i = 0; i < kSteps; ++i) ex[i] = static_cast<std::uint32_t>(ex[i]) < E ? ex[i] : -1;
  }
}

// Division by the block size B (B <= 2^20, x + B < 2^31): a shift when B is a power of two.
struct SmallDiv {
  std::int32_t b;
  int shift;  // log2(b) when b is a power of two, else -1
  static __device__ SmallDiv of(std::int32_t v) {
    return {v, (v & (v - 1)) == 0 ? __ffs(v) - 1 : -1};
  }
  __device__ std::int32_t div(std::int32_t x) const { return shift >= 0 ? x >> shift : x / b; }
  __device__ std::int32_t ceil_div(std::int32_t x) const { return div(x + b - 1); }
};

// p[begin, end) = v by the grid's threads (tid of nthreads): 16-byte stores between a scalar head
// and tail. p is 4-byte aligned.
__device__ __forceinline__ void small_fill(std::int32_t* p, std::int32_t begin, std::int32_t end,
                                           std::int32_t v, std::int32_t tid,
                                           std::int32_t nthreads) {
  if (begin >= end) return;
  const auto mis =
      static_cast<std::int32_t>((reinterpret_cast<std::uintptr_t>(p + begin) >> 2) & 3u);
  const std::int32_t body = min(end, begin + ((4 - mis) & 3));
  if (tid < body - begin) p[begin + tid] = v;
  const std::int32_t n4 = (end - body) >> 2;
  auto* q = reinterpret_cast<int4*>(p + body);
#pragma unroll 1
  for (std::int32_t i = tid; i < n4; i += nthreads) q[i] = make_int4(v, v, v, v);
  const std::int32_t tail = body + n4 * 4;
  if (tid < end - tail) p[tail + tid] = v;
}

#define SY_SMALL_TRACE(k) \
  if (p.trace != nullptr && threadIdx.x == 0 && blockIdx.x == 0) p.trace[k] = clock64()

template <int kSteps, int kCluster = 1, int kOwn = 1>
__device__ __forceinline__ void align_small_body(const SortParams& p, unsigned char* smem,
                                                 std::int32_t* scan_scratch) {
  static_assert(kCluster == 1 || (kCluster <= 8 && kSteps % (kCluster * kOwn) == 0));
  constexpr int kRows = kOwn * kSmallAlignWarps;  // rows of per-warp counts: [own step][warp]
  SY_SMALL_TRACE(0);
  const std::int32_t E = p.num_experts;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int id_bits = 32 - __clz(E);
  const auto B = static_cast<std::int32_t>(p.pad);
  const SmallDiv div = SmallDiv::of(B);
  const auto N = static_cast<std::int32_t>(p.num_slots);
  const auto own = static_cast<int>(blockIdx.x);
  auto* rows = reinterpret_cast<std::int32_t*>(smem);  // [kRows][E]
  std::int32_t* before = rows + kRows * E;
  std::int32_t* after = before + E;
  std::int32_t* seg = rows + small_align_zeroed_ints(E, kOwn);
  std::int32_t* total = seg + E;
  std::int32_t* own_counts = total + E;  // clustered instances: this step's count of each expert

  // Outputs past `bound` hold sentinels whatever the ids are: the padded total is at most
  // N + min(E, N) * (B - 1) (every expert hit adds at most B - 1 padding slots). Written now,
  // before the id loads are issued (stores do not wait; issuing them after the
  // loads would keep the loaded ids' registers live across them); the rest of the tails waits for
  // the scan. (Recomputed in phase 3 rather than kept live across the barriers: registers.)
  const auto bound_of = [&] { return N + min(E, N) * (B - 1); };
  const auto tid_of = [&] {
    return own * kSmallAlignThreads + static_cast<std::int32_t>(threadIdx.x);
  };
  const auto nthreads_of = [] { return static_cast<std::int32_t>(gridDim.x) * kSmallAlignThreads; };
  if (p.output == SortOutput::kAlign) {
    const std::int32_t bound = bound_of(), tid = tid_of(), nthreads = nthreads_of();
    small_fill(p.sorted_ids, bound, static_cast<std::int32_t>(p.sorted_numel), N, tid, nthreads);
    small_fill(p.block_experts, div.div(bound), static_cast<std::int32_t>(p.block_experts_numel),
               -1, tid, nthreads);
  } else {
    const std::int32_t bound = bound_of(), tid = tid_of(), nthreads = nthreads_of();
#pragma unroll 1
    for (std::int32_t j = bound + tid; j < static_cast<std::int32_t>(p.dst_numel); j += nthreads)
      p.dst_to_src[j] = -1;
  }
  // ---- 1. load every step's id, zero the tables (16-byte stores), count. Block b owns steps
  // [b * kOwn, b * kOwn + kOwn). Unclustered, a block counts every step; clustered, block r of a
  // cluster counts the steps of blocks j * kCluster + r (its positions j), so the cluster's
  // blocks count every step once between them. Up to 32 ids per thread every id is loaded before
  // the first is counted; past that, chunks of kSmallAlignChunk ids, the next chunk's loads in
  // flight while this one is counted (all would spill).
  constexpr int kPositions = kSteps / (kCluster * kOwn);
  constexpr int kChunkPos = kPositions * kOwn <= 32 ? kPositions : kSmallAlignChunk / kOwn;
  constexpr int kChunk = kChunkPos * kOwn;  // ids per chunk
  const int rank = own % kCluster;          // in the cluster (1-D grid of whole clusters)
  const int own_pos = own / kCluster;       // the position holding this block's own steps
  const auto load = [&](std::int32_t(&dst)[kChunk], int first) {
    if (p.ids_int64) {
      small_load_ids<kChunk, std::int64_t, kOwn>(p, dst, first, kCluster, rank);
    } else {
      small_load_ids<kChunk, std::int32_t, kOwn>(p, dst, first, kCluster, rank);
    }
  };
  std::int32_t ex[kChunk];
  load(ex, 0);
  {
    auto* z = reinterpret_cast<int4*>(rows);
    const std::int32_t n4 = small_align_zeroed_ints(E, kOwn) / 4;
#pragma unroll 1
    for (std::int32_t i = threadIdx.x; i < n4; i += kSmallAlignThreads)
      z[i] = make_int4(0, 0, 0, 0);
  }
  __syncthreads();
  SY_SMALL_TRACE(1);
  // Straight-line code kept short: at these sizes the kernel's time is mostly fixed latency
  // (instruction fetch included), so one match_peers outside the unrolled loop.
  // Clustered: before / after count the positions before / after own_pos, i.e. the steps
  // before / after this block's cluster (the cluster's own steps come from its blocks' rows).
  std::int32_t mine[kOwn];
#pragma unroll
  for (int u = 0; u < kOwn; ++u) mine[u] = -1;
  const auto count_chunk = [&](const std::int32_t(&src)[kChunk], int first) {
#pragma unroll
    for (int i = 0; i < kChunk; ++i) {
      const int pos = first + i / kOwn;
      mine[i % kOwn] = pos == own_pos ? src[i] : mine[i % kOwn];
      if (pos != own_pos && src[i] >= 0) atomicAdd((pos < own_pos ? before : after) + src[i], 1);
    }
  };
  if constexpr (kChunkPos == kPositions) {
    count_chunk(ex, 0);
  } else {
#pragma unroll 1
    for (int c = 0; c < kPositions; c += kChunkPos) {
      // Past the last position every slot index is >= N: the loads are predicated off (ids -1).
      std::int32_t next[kChunk];
      load(next, c + kChunkPos);
      count_chunk(ex, c);
#pragma unroll
      for (int i = 0; i < kChunk; ++i) ex[i] = next[i];
    }
  }
  // Steps past the last own no slots (block-uniform branches).
  unsigned peers[kOwn];
#pragma unroll
  for (int u = 0; u < kOwn; ++u) {
    peers[u] = (own * kOwn + u) * kSmallAlignThreads < N ? match_peers(mine[u], id_bits) : 0u;
    if (mine[u] >= 0 && lane == __ffs(peers[u]) - 1)
      rows[(u * kSmallAlignWarps + warp) * E + mine[u]] += __popc(peers[u]);
  }
  __syncthreads();
  SY_SMALL_TRACE(2);

  // ---- 2. totals, per-warp starting ranks, segment starts
  const auto e = static_cast<std::int32_t>(threadIdx.x);
  // One own step: the column in registers; more: read twice (kRows registers would spill).
  std::int32_t col[kOwn == 1 ? kSmallAlignWarps : 1];
  std::int32_t count = 0, first = 0;
  if constexpr (kOwn == 1) {
    if (e < E) {
#pragma unroll
      for (int w = 0; w < kSmallAlignWarps; ++w) col[w] = rows[w * E + e];
    }
  }
  if constexpr (kCluster > 1) {
    // Publish this block's count of expert e; after the cluster barrier (release / acquire) add
    // every block's before / after and the own counts of the cluster's blocks before / after
    // this one (distributed shared memory).
    if (e < E) {
      std::int32_t own_count = 0;
#pragma unroll
      for (int r = 0; r < kRows; ++r)
        own_count += kOwn == 1 ? col[r % kSmallAlignWarps] : rows[r * E + e];
      own_counts[e] = own_count;
    }
    cluster_arrive();
    cluster_wait();
    if (e < E) {
      std::int32_t lo = 0, hi = 0;
#pragma unroll
      for (int q = 0; q < kCluster; ++q) {
        const auto u = static_cast<unsigned>(q);
        const std::int32_t b = *cluster_map(before + e, u);
        const std::int32_t a = *cluster_map(after + e, u);
        const std::int32_t o = q == rank ? 0 : *cluster_map(own_counts + e, u);
        lo += b + (q < rank ? o : 0);
        hi += a + (q > rank ? o : 0);
      }
      first = lo;
      count = hi;  // the own step's slots are added below
    }
  } else if (e < E) {
    first = before[e];
    count = after[e];
  }
  if (e < E) {
    // Column e only (no other thread touches it): rows[u][w][e] becomes the rank, within expert
    // e, of warp w's first slot of e in this block's own step u; phase 3 adds the segment start.
    std::int32_t acc = first;
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      const std::int32_t v = kOwn == 1 ? col[r % kSmallAlignWarps] : rows[r * E + e];
      rows[r * E + e] = acc;
      acc += v;
    }
    count += acc;
  }
  // Exclusive scan of the padded block counts with one barrier: warp scans, then every thread
  // adds the totals of the warps before its own (16 values, four 16-byte shared loads).
  const std::int32_t blocks = e < E ? div.ceil_div(count) : 0;
  const std::int32_t incl = warp_inclusive_scan(blocks);
  if (lane == 31) scan_scratch[warp] = incl;
  __syncthreads();
  // Every remote value was used above (the counts scanned): this block is done with the others'
  // shared memory. The matching wait ends the body, so no block leaves while others may read it.
  if constexpr (kCluster > 1) cluster_arrive_relaxed();
  std::int32_t total_blocks = 0, first_block = incl - blocks;
  {
    const auto* sums = reinterpret_cast<const int4*>(scan_scratch);
#pragma unroll
    for (int q = 0; q < kSmallAlignWarps / 4; ++q) {
      const int4 v = sums[q];
      const int w = 4 * q;
      first_block += (w < warp ? v.x : 0) + (w + 1 < warp ? v.y : 0) + (w + 2 < warp ? v.z : 0) +
                     (w + 3 < warp ? v.w : 0);
      total_blocks += v.x + v.y + v.z + v.w;
    }
  }
  if (e < E) {
    seg[e] = first_block * B;
    total[e] = count;
  }
  __syncthreads();
  SY_SMALL_TRACE(3);

  // ---- 3. own slots, padding and labels (a warp per expert), tails
  const bool align = p.output == SortOutput::kAlign;
  const std::int32_t tid = tid_of(), nthreads = nthreads_of(), bound = bound_of();
#pragma unroll
  for (int u = 0; u < kOwn; ++u) {
    const std::int32_t s =
        (own * kOwn + u) * kSmallAlignThreads + static_cast<std::int32_t>(threadIdx.x);
    const std::int32_t m = mine[u];
    if (m >= 0) {
      const unsigned lower = (1u << lane) - 1u;
      const std::int32_t dst =
          seg[m] + rows[(u * kSmallAlignWarps + warp) * E + m] + __popc(peers[u] & lower);
      if (align) {
        p.sorted_ids[dst] = s;
      } else {
        p.src_to_dst[s] = dst;
        p.dst_to_src[dst] = s;
      }
    } else if (!align && s < N) {
      p.src_to_dst[s] = -1;  // dropped slot
    }
  }
  const int grid_warps = static_cast<int>(gridDim.x) * kSmallAlignWarps;
#pragma unroll 1
  for (std::int32_t x = own * kSmallAlignWarps + warp; x < E; x += grid_warps) {
    const std::int32_t start = seg[x], n = total[x], nb = div.ceil_div(n);
    const std::int32_t stop = start + nb * B;
    for (std::int32_t j = start + n + lane; j < stop; j += 32) {
      if (align) {
        p.sorted_ids[j] = N;
      } else {
        p.dst_to_src[j] = -1;
      }
    }
    if (align) {
      const std::int32_t b0 = div.div(start);
      for (std::int32_t b = b0 + lane; b < b0 + nb; b += 32) p.block_experts[b] = x;
    } else if (lane == 0) {
      p.counts[x] = n;
      p.offsets[x] = start;
    }
  }
  // Tails up to `bound` (the rest was written in phase 1; the launcher keeps these sizes below
  // 2^30 on this path).
  const std::int32_t used = total_blocks * B;
  if (align) {
    const auto numel = static_cast<std::int32_t>(min(p.sorted_numel, std::int64_t{bound}));
    const auto bnumel =
        static_cast<std::int32_t>(min(p.block_experts_numel, std::int64_t{div.div(bound)}));
    small_fill(p.sorted_ids, used, numel, N, tid, nthreads);
    small_fill(p.block_experts, total_blocks, bnumel, -1, tid, nthreads);
    if (tid == 0) *p.post_pad = used;
  } else {
    const auto numel = static_cast<std::int32_t>(min(p.dst_numel, std::int64_t{bound}));
#pragma unroll 1
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
  if constexpr (kCluster > 1) cluster_wait();
}

// kSteps: 512-slot steps covered (1, 2, 4, ..., 512). kPasses = 1 in the library. kPasses = 2
// (diagnostics, tests/align_cuda_test.cpp's phase trace only): the same code runs twice in one
// launch (a real loop, not unrolled), so the second pass's trace shows the phases with a warm
// instruction cache and the first L2 misses already taken. Every pass writes the same outputs.
// kCluster: 1, or the blocks of a thread block cluster (launched with that cluster size, the grid
// a multiple of it) that share the counting of the other steps.
// kOwn: the steps each block owns (small_align_own).
template <int kSteps, int kPasses, int kCluster = 1, int kOwn = 1>
__global__ void __launch_bounds__(kSmallAlignThreads) align_small_kernel(const SortParams p) {
  extern __shared__ __align__(16) unsigned char smem[];
  __shared__ __align__(16) std::int32_t scan_scratch[32];
  // Launched as a PDL secondary (launch/align.cu): wait for the previous kernel (the routing),
  // then let a consumer launched with PDL (the fused decode path's GEMM1) become resident; it
  // waits for this grid's completion before it reads anything (kernels/pdl.cuh).
  pdl_begin_warm(sort_param_lines(p));
#pragma unroll 1
  for (int pass = 0; pass < kPasses; ++pass) {
    if (pass > 0) __syncthreads();
    align_small_body<kSteps, kCluster, kOwn>(p, smem, scan_scratch);
  }
}

#undef SY_SMALL_TRACE

}  // namespace switchyard::kernels
