// Deterministic counting sort of routing slots by expert: the one kernel behind
// moe_align_block_size_cuda and expert_layout_cuda (outputs: SGLang/vLLM alignment buffers, or the
// contiguous / masked layout maps).
//
// Every warp owns a contiguous chunk of slots (chunks ascend with the global warp index) and a
// private per-expert histogram in shared memory. Phases:
//   1. count: per-warp histograms (match_peers groups equal experts in a 32-slot step, the
//      group's lowest lane adds the group size: no atomics); multi-block: the block's sums go to
//      block_hist[block][e] in the workspace.
//   2. (multi-block, after a grid barrier) one warp per expert turns column e of block_hist into
//      exclusive prefixes over blocks and writes the expert's total.
//   3. (after a grid barrier) every block scans the padded totals into segment starts, turns its
//      warp histograms into per-warp starting ranks, and each warp re-reads its chunk and writes
//      each valid slot at  segment_start[e] + rank, rank = (slots of e in earlier chunks) +
//      (earlier lanes of the same step) — so slots ascend inside every segment, on any grid. The
//      same phase fills padding (sentinels / -1) and the per-expert metadata with grid-stride
//      loops; every output element is written exactly once.
// Single-block launches (small inputs) skip phase 2 and replace the grid barriers by
// __syncthreads(); multi-block launches are cooperative (all blocks co-resident).
#pragma once

#include <cooperative_groups.h>

#include <cstdint>

namespace switchyard::kernels {

enum class SortOutput : int { kAlign = 0, kContiguous = 1, kMasked = 2 };

struct SortParams {
  const void* ids = nullptr;  // [num_slots] int32 or int64
  bool ids_int64 = false;
  std::int64_t num_slots = 0;
  const std::int32_t* expert_map = nullptr;  // optional [map_size]
  std::int64_t map_size = 0;
  std::int32_t num_experts = 0;
  std::int32_t hist_warps = 1;  // warps per block (each with its own histogram)
  SortOutput output = SortOutput::kAlign;
  std::int64_t pad = 1;  // kAlign: block size; kContiguous: alignment; kMasked: max_m
  // Workspace: block_hist [gridDim.x][E] (multi-block only), totals [E].
  std::int32_t* block_hist = nullptr;
  std::int32_t* totals = nullptr;
  // kAlign outputs.
  std::int32_t* sorted_ids = nullptr;
  std::int64_t sorted_numel = 0;
  std::int32_t* block_experts = nullptr;
  std::int64_t block_experts_numel = 0;
  std::int32_t* post_pad = nullptr;
  // Layout outputs.
  std::int32_t* counts = nullptr;
  std::int64_t* offsets = nullptr;
  std::int64_t* src_to_dst = nullptr;
  std::int64_t* dst_to_src = nullptr;
  std::int64_t dst_numel = 0;
  std::int64_t* overflow = nullptr;
  // Diagnostics (tests only): when set, block 0 / thread 0 writes clock64() at each phase
  // boundary into trace[0..kSortTracePoints).
  long long* trace = nullptr;
};
inline constexpr int kSortTracePoints = 12;

// One word of each 64-byte parameter line of SortParams (the first kernel parameter): for
// pdl_begin_warm() (kernels/pdl.cuh).
__host__ __device__ inline std::uint64_t sort_param_lines(const SortParams& p) {
  return static_cast<std::uint64_t>(p.num_slots) ^ static_cast<std::uint64_t>(p.pad) ^
         static_cast<std::uint64_t>(p.dst_numel);
}

// Dynamic shared memory: hist_warps * E int32 histograms (rounded up to 16 bytes), then (E + 1)
// int64 segment starts.
__host__ __device__ inline std::size_t sort_hist_bytes(std::int32_t num_experts,
                                                       std::int32_t hist_warps) {
  return (static_cast<std::size_t>(hist_warps) * num_experts * 4 + 15) / 16 * 16;
}
inline std::size_t sort_shared_bytes(std::int32_t num_experts, std::int32_t hist_warps) {
  return sort_hist_bytes(num_experts, hist_warps) + (static_cast<std::size_t>(num_experts) + 1) * 8;
}

__device__ __forceinline__ std::int32_t slot_expert(const SortParams& p, std::int64_t s) {
  std::int64_t e = p.ids_int64 ? static_cast<const std::int64_t*>(p.ids)[s]
                               : static_cast<const std::int32_t*>(p.ids)[s];
  if (p.expert_map != nullptr) e = (e >= 0 && e < p.map_size) ? p.expert_map[e] : -1;
  return (e >= 0 && e < p.num_experts) ? static_cast<std::int32_t>(e) : -1;
}

// Largest e in [0, E) with seg[e] <= j (seg ascending, seg[0] = 0 <= j).
__device__ __forceinline__ std::int32_t segment_of(const std::int64_t* seg, std::int32_t E,
                                                   std::int64_t j) {
  std::int32_t lo = 0, hi = E - 1;
  while (lo < hi) {
    const std::int32_t mid = (lo + hi + 1) >> 1;
    if (seg[mid] <= j) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  return lo;
}

// Inclusive scan of v over the warp's lanes.
template <typename T>
__device__ __forceinline__ T warp_inclusive_scan(T v) {
  const int lane = threadIdx.x & 31;
  for (int d = 1; d < 32; d <<= 1) {
    const T o = __shfl_up_sync(0xffffffffu, v, d);
    if (lane >= d) v += o;
  }
  return v;
}

// Exclusive scan of v over the block's threads (blockDim.x a multiple of 32, <= 1024); returns
// the block total through *total. `scratch` holds 32 T; the block must call it together.
template <typename T>
__device__ __forceinline__ T block_exclusive_scan(T v, T* scratch, T* total) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  const T inc = warp_inclusive_scan(v);
  if (lane == 31) scratch[warp] = inc;
  __syncthreads();
  if (warp == 0) scratch[lane] = warp_inclusive_scan(lane < warps ? scratch[lane] : T{0});
  __syncthreads();
  const T before = (warp > 0 ? scratch[warp - 1] : T{0}) + inc - v;
  *total = scratch[warps - 1];
  __syncthreads();  // scratch may be reused right after
  return before;
}

template <bool kMulti>
__device__ __forceinline__ void grid_barrier() {
  if constexpr (kMulti) {
    cooperative_groups::this_grid().sync();
  } else {
    __syncthreads();
  }
}

inline constexpr int kSortThreadsMax = 1024;
// Steps (32 slots each) a warp keeps in registers between counting and placing; longer chunks
// re-read their ids.
inline constexpr int kCachedSteps = 8;
inline constexpr int kColumnCells = 8;

// Lanes of the warp whose `e` equals this lane's: __match_any_sync emulated with one ballot per
// bit of the id (match.any is microcoded, ~70 cycles per call per SM with many distinct values,
// which made it the kernel's bottleneck). `bits` = bit width of E: valid ids (< E) never have all
// those bits set, so -1 (all ones) never matches a valid id.
__device__ __forceinline__ unsigned match_peers(std::int32_t e, int bits) {
  const auto v = static_cast<std::uint32_t>(e);
  unsigned m = 0xffffffffu;
  for (int b = 0; b < bits; ++b) {
    const bool bit = (v >> b) & 1u;
    const unsigned ones = __ballot_sync(0xffffffffu, bit);
    m &= bit ? ones : ~ones;
  }
  return m;
}

__device__ __forceinline__ std::int64_t round_up(std::int32_t count, std::int64_t pad) {
  // count < 2^31 and pad <= 1024 (align / contiguous): 32-bit unsigned division.
  const auto c = static_cast<std::uint32_t>(count), q = static_cast<std::uint32_t>(pad);
  return static_cast<std::int64_t>((c + q - 1u) / q * q);
}

#define SY_SORT_TRACE(k) \
  if (p.trace != nullptr && threadIdx.x == 0 && blockIdx.x == 0) p.trace[k] = clock64()

template <bool kMulti>
__global__ void __launch_bounds__(kSortThreadsMax) expert_sort_kernel(const SortParams p) {
  SY_SORT_TRACE(0);
  extern __shared__ __align__(16) unsigned char smem[];
  __shared__ std::int64_t scan_scratch[32];
  __shared__ std::int32_t group_sums[kSortThreadsMax];  // [groups][E] partial histogram sums
  __shared__ unsigned long long overflow_sum;
  const std::int32_t E = p.num_experts;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int threads = blockDim.x, W = p.hist_warps;
  const bool masked = p.output == SortOutput::kMasked;
  const int id_bits = 32 - __clz(E);  // bit width of E
  auto* hist_all = reinterpret_cast<std::int32_t*>(smem);
  auto* seg = reinterpret_cast<std::int64_t*>(smem + sort_hist_bytes(E, W));
  std::int32_t* hist = hist_all + static_cast<std::int64_t>(warp) * E;
  // Warp groups for the histogram scans: with E < threads, `groups` threads share an expert,
  // each summing a contiguous range of W / groups warps (groups * E <= threads: group_sums fits).
  const bool grouped = E < threads;
  const int groups = grouped ? max(1, min(W, threads / E)) : 1;
  const int warps_per_group = (W + groups - 1) / groups;

  // This warp's chunk [begin, end), a multiple of 32 slots.
  const std::int64_t total_warps = static_cast<std::int64_t>(gridDim.x) * W;
  const std::int64_t gwarp = static_cast<std::int64_t>(blockIdx.x) * W + warp;
  // 32-bit division (a 64-bit one costs ~100 instructions): num_slots < 2^31, warps < 2^31.
  const std::int64_t chunk =
      ((static_cast<std::uint32_t>(p.num_slots) + static_cast<std::uint32_t>(total_warps) - 1u) /
           static_cast<std::uint32_t>(total_warps) +
       31u) /
      32u * 32u;
  const std::int64_t begin = min(p.num_slots, gwarp * chunk);
  const std::int64_t end = min(p.num_slots, begin + chunk);
  const int steps = static_cast<int>((end - begin + 31) / 32);
  const bool cached = steps <= kCachedSteps;  // warp-uniform
  std::int32_t ex[kCachedSteps];
#pragma unroll
  for (int i = 0; i < kCachedSteps; ++i) {  // all loads in flight at once
    const std::int64_t s = begin + i * 32 + lane;
    ex[i] = (cached && i < steps && s < end) ? slot_expert(p, s) : -1;
  }
  auto expert_at = [&](int i) {
    const std::int64_t s = begin + static_cast<std::int64_t>(i) * 32 + lane;
    return s < end ? slot_expert(p, s) : -1;
  };

  // ---- phase 1: per-warp counts
  for (std::int64_t i = threadIdx.x; i < static_cast<std::int64_t>(W) * E; i += threads)
    hist_all[i] = 0;
  if (threadIdx.x == 0) overflow_sum = 0;
  __syncthreads();
  SY_SORT_TRACE(1);
  auto count = [&](std::int32_t e) {
    const unsigned peers = match_peers(e, id_bits);
    if (e >= 0 && lane == __ffs(peers) - 1) hist[e] += __popc(peers);
    __syncwarp();
  };
  if (cached) {
#pragma unroll
    for (int i = 0; i < kCachedSteps; ++i)
      if (i < steps) count(ex[i]);
  } else {
    for (int i = 0; i < steps; ++i) count(expert_at(i));
  }
  __syncthreads();
  SY_SORT_TRACE(2);
  if (grouped) {
    for (int idx = threadIdx.x; idx < groups * E; idx += threads) {
      const int g = idx / E, e = idx - g * E;
      std::int32_t sum = 0;
      for (int w = g * warps_per_group; w < min(W, (g + 1) * warps_per_group); ++w)
        sum += hist_all[static_cast<std::int64_t>(w) * E + e];
      group_sums[idx] = sum;
    }
    __syncthreads();
  }
  SY_SORT_TRACE(3);
  std::int32_t my_total = 0;  // single block, E <= threads: thread e keeps total[e]
  for (std::int32_t e = threadIdx.x; e < E; e += threads) {
    std::int32_t sum = 0;
    if (grouped) {
      for (int g = 0; g < groups; ++g) sum += group_sums[g * E + e];
    } else {
      for (int w = 0; w < W; ++w) sum += hist_all[static_cast<std::int64_t>(w) * E + e];
    }
    if constexpr (kMulti) {
      p.block_hist[static_cast<std::int64_t>(blockIdx.x) * E + e] = sum;
    } else {
      p.totals[e] = sum;
      my_total = sum;
    }
  }
  grid_barrier<kMulti>();
  SY_SORT_TRACE(4);

  // ---- phase 2 (multi-block): column scans of block_hist, one warp per expert
  if constexpr (kMulti) {
    const int G = gridDim.x;
    const int per_lane = (G + 31) / 32;
    for (std::int64_t e = gwarp; e < E; e += total_warps) {
      const int b0 = min(G, lane * per_lane), b1 = min(G, b0 + per_lane);
      // The lane's cells in registers (all loads in flight together: the in-place rewrite
      // below could otherwise serialise them), kColumnCells per lane covers grids <= 256.
      std::int32_t cells[kColumnCells];
      const bool in_regs = b1 - b0 <= kColumnCells;  // warp-uniform
      std::int32_t part = 0;
      if (in_regs) {
#pragma unroll
        for (int i = 0; i < kColumnCells; ++i) {
          cells[i] = b0 + i < b1 ? p.block_hist[static_cast<std::int64_t>(b0 + i) * E + e] : 0;
          part += cells[i];
        }
      } else {
        for (int b = b0; b < b1; ++b) part += p.block_hist[static_cast<std::int64_t>(b) * E + e];
      }
      const std::int32_t inc = warp_inclusive_scan(part);
      std::int32_t run = inc - part;
      if (in_regs) {
#pragma unroll
        for (int i = 0; i < kColumnCells; ++i) {
          if (b0 + i < b1) p.block_hist[static_cast<std::int64_t>(b0 + i) * E + e] = run;
          run += cells[i];
        }
      } else {
        for (int b = b0; b < b1; ++b) {
          std::int32_t* cell = p.block_hist + static_cast<std::int64_t>(b) * E + e;
          const std::int32_t c = *cell;
          *cell = run;
          run += c;
        }
      }
      if (lane == 31) p.totals[e] = inc;
    }
    grid_barrier<kMulti>();
  }
  SY_SORT_TRACE(5);

  // ---- phase 3a: segment starts (padded exclusive scan of the totals)
  if (masked) {
    for (std::int32_t e = threadIdx.x; e <= E; e += threads) seg[e] = e * p.pad;
  } else {
    const std::int32_t per = (E + threads - 1) / threads;
    const std::int32_t e0 = min(E, static_cast<std::int32_t>(threadIdx.x) * per),
                       e1 = min(E, e0 + per);
    // One expert per thread (E <= threads): its total is read once (single block: already in a
    // register); otherwise a contiguous range, read twice.
    std::int32_t first = 0;
    if (per == 1 && e0 < E) first = kMulti ? p.totals[e0] : my_total;
    std::int64_t local = 0;
    for (std::int32_t e = e0; e < e1; ++e) local += round_up(per == 1 ? first : p.totals[e], p.pad);
    std::int64_t grand = 0;
    std::int64_t run = block_exclusive_scan(local, scan_scratch, &grand);
    for (std::int32_t e = e0; e < e1; ++e) {
      seg[e] = run;
      run += round_up(per == 1 ? first : p.totals[e], p.pad);
    }
    if (threadIdx.x == 0) seg[E] = grand;
  }
  SY_SORT_TRACE(6);
  // ---- phase 3b: per-warp starting ranks inside each segment
  for (int idx = threadIdx.x; idx < groups * E; idx += threads) {
    const int g = idx / E, e = idx - g * E;
    std::int32_t acc = kMulti ? p.block_hist[static_cast<std::int64_t>(blockIdx.x) * E + e] : 0;
    for (int h = 0; h < g; ++h) acc += group_sums[h * E + e];
    for (int w = g * warps_per_group; w < min(W, (g + 1) * warps_per_group); ++w) {
      std::int32_t* cell = hist_all + static_cast<std::int64_t>(w) * E + e;
      const std::int32_t c = *cell;
      *cell = acc;
      acc += c;
    }
  }
  __syncthreads();
  SY_SORT_TRACE(7);

  // ---- phase 3c: place every slot of this warp's chunk
  auto place = [&](std::int32_t e, std::int64_t s) {
    const unsigned peers = match_peers(e, id_bits);
    if (e >= 0) {
      const std::int64_t rank =
          hist[e] + __popc(peers & ((1u << lane) - 1u));  // earlier chunks + earlier lanes
      if (p.output == SortOutput::kAlign) {
        p.sorted_ids[seg[e] + rank] = static_cast<std::int32_t>(s);
      } else if (masked && rank >= p.pad) {
        p.src_to_dst[s] = -1;  // the masked expert is full: dropped, counted in overflow
      } else {
        const std::int64_t dst = seg[e] + rank;
        p.src_to_dst[s] = dst;
        p.dst_to_src[dst] = s;
      }
    } else if (s < end && p.output != SortOutput::kAlign) {
      p.src_to_dst[s] = -1;
    }
    __syncwarp();
    if (e >= 0 && lane == __ffs(peers) - 1) hist[e] += __popc(peers);
    __syncwarp();
  };
  if (cached) {
#pragma unroll
    for (int i = 0; i < kCachedSteps; ++i)
      if (i < steps) place(ex[i], begin + i * 32 + lane);
  } else {
    for (int i = 0; i < steps; ++i)
      place(expert_at(i), begin + static_cast<std::int64_t>(i) * 32 + lane);
  }

  SY_SORT_TRACE(8);
  // ---- phase 3d: padding and metadata (disjoint from the slots written above): one warp per
  // expert for its segment's padding and block labels, grid-stride loops for the buffers' tails.
  // (A thread per expert plus a binary search per block measured 2-4x slower here: serial
  // scattered stores.) Align offsets are < 2^31 + E * 255 < 2^32: 32-bit division.
  const std::int64_t used_total = seg[E];
  const auto block_size = static_cast<std::uint32_t>(p.pad);
  for (std::int64_t e0 = gwarp; e0 < E; e0 += 32 * total_warps) {
    // The totals of this warp's next 32 experts in one round trip, then one expert at a time.
    const std::int64_t mine = e0 + lane * total_warps;
    const std::int32_t lane_total = mine < E ? p.totals[mine] : 0;
    for (int k = 0; k < 32; ++k) {
      const std::int64_t e = e0 + k * total_warps;
      const std::int64_t t = __shfl_sync(0xffffffffu, lane_total, k);
      if (e >= E) break;  // warp-uniform
      const std::int64_t start = seg[e], stop = seg[e + 1];
      const std::int64_t used = masked ? min(t, p.pad) : t;
      if (p.output == SortOutput::kAlign) {
        const auto sentinel = static_cast<std::int32_t>(p.num_slots);
        for (std::int64_t j = start + used + lane; j < stop; j += 32) p.sorted_ids[j] = sentinel;
        const std::uint32_t b1 = static_cast<std::uint32_t>(stop) / block_size;
        for (std::uint32_t i = static_cast<std::uint32_t>(start) / block_size + lane; i < b1;
             i += 32)
          p.block_experts[i] = static_cast<std::int32_t>(e);
      } else {
        for (std::int64_t j = start + used + lane; j < stop; j += 32) p.dst_to_src[j] = -1;
        if (lane == 0) {
          p.counts[e] = static_cast<std::int32_t>(used);
          p.offsets[e] = start;
        }
      }
    }
  }
  const std::int64_t gthreads = static_cast<std::int64_t>(gridDim.x) * threads;
  const std::int64_t gtid = static_cast<std::int64_t>(blockIdx.x) * threads + threadIdx.x;
  SY_SORT_TRACE(9);
  if (p.output == SortOutput::kAlign) {
    const auto sentinel = static_cast<std::int32_t>(p.num_slots);
    for (std::int64_t j = used_total + gtid; j < p.sorted_numel; j += gthreads)
      p.sorted_ids[j] = sentinel;
    for (std::int64_t i = static_cast<std::uint32_t>(used_total) / block_size + gtid;
         i < p.block_experts_numel; i += gthreads)
      p.block_experts[i] = -1;
    if (gtid == 0) *p.post_pad = static_cast<std::int32_t>(used_total);
  } else {
    for (std::int64_t j = used_total + gtid; j < p.dst_numel; j += gthreads) p.dst_to_src[j] = -1;
    if (gtid == 0) p.offsets[E] = used_total;
    if (p.overflow != nullptr && blockIdx.x == 0) {
      for (std::int32_t e = threadIdx.x; e < E; e += threads) {
        const std::int64_t t = p.totals[e];
        if (masked && t > p.pad)
          atomicAdd(&overflow_sum, static_cast<unsigned long long>(t - p.pad));
      }
      __syncthreads();
      if (threadIdx.x == 0) *p.overflow = static_cast<std::int64_t>(overflow_sum);
    }
  }
  SY_SORT_TRACE(10);
}

#undef SY_SORT_TRACE

}  // namespace switchyard::kernels
