// moe_align_block_size and the contiguous expert layout for few experts (E <= 32, e.g. Mixtral's
// 8) and up to 1024 slots: one block, one slot per thread, one or two block barriers. Same output,
// bit for bit, as the CPU.
//   1. every thread prefills its share of every output (sentinel N / -1, coalesced 16-byte
//      stores) and loads its slot's expert x;
//   2. each warp takes one ballot per expert: ballot(x == e) is the set of the warp's lanes with
//      expert e, so a lane's rank among them is popc(ballot & lower lanes), and lane e writes the
//      warp's count of e to cnt[w][e]. Block barrier (it also orders the prefill before the stores
//      below);
//   3. lane e of every warp gets e's slots in earlier warps and its total: up to 8 warps, each
//      warp adds up cnt[.][e] itself; beyond, warp e turns column e into prefixes (lane w holds
//      warp w's count: one load, a shuffle scan, one store; warp w also takes experts w + W, ...
//      when E > W) behind a second barrier. The padded block counts are scanned over the lanes
//      (shuffles), and a lane with a slot of expert x takes x's base from lane x and stores the
//      slot. Warp 0 writes the block labels (align) or counts and offsets (layout). Padding and
//      tails are the prefill's.
// Measured (H200, bench/NOTES.md, sessions 14 and 17), us over an empty launch for Mixtral at 64 /
// 256 / 512 tokens: 1.22 / 1.48 / 1.92, against align_small_kernel's 2.2-2.3 (bar: 2.0). Session
// 14's kernel (1.30 / 1.72 / 2.17 in the same process) had warp 0 scan every column itself (32
// loads, adds and stores per lane at 32 warps) and one ballot per loop iteration.
#pragma once

#include <cstdint>

#include "align.cuh"
#include "align_cluster.cuh"  // slot_expert_of, prefill_outputs
#include "align_small.cuh"
#include "pdl.cuh"

namespace switchyard::kernels {

inline constexpr std::int32_t kFewAlignMaxExperts = 32;  // lane e: expert e
inline constexpr int kFewAlignMaxWarps = 32;
inline constexpr std::int64_t kFewAlignMaxSlots = 32 * kFewAlignMaxWarps;  // 1024
// Up to this many warps each warp sums the warps' counts itself (O(W^2) shared loads in all);
// beyond, one warp per expert turns them into prefixes behind one more barrier (measured: 32
// warps summing redundantly made 512 Mixtral tokens 0.6 us slower than align_small_kernel).
inline constexpr int kFewAlignRedundantWarps = 8;
// Row stride of the per-warp counts cnt[w][e] in shared memory: one padding int, so that a warp
// reading a column (lane w: cnt[w][e]) touches 32 different banks.
inline constexpr int kFewCntStride = kFewAlignMaxExperts + 1;
// Output entries one block prefills at most (beyond, align_small_kernel's grid writes them).
inline constexpr std::int64_t kFewAlignMaxEntries = 16384;

// Threads of the launch: a warp per 32 slots, at least 4 warps (the prefill), at most 32.
inline int few_align_threads(std::int64_t num_slots) {
  const auto warps = static_cast<int>((num_slots + 31) / 32);
  return 32 * (warps < 4 ? 4 : warps);
}

#define SY_FEW_TRACE(k) \
  if (p.trace != nullptr && threadIdx.x == 0) p.trace[k] = clock64()

// The kernel's body: one block of few_align_threads(N) threads; `cnt` is [32][kFewCntStride] + [32]
// ints of shared memory.
template <bool kAlign>
__device__ __forceinline__ void align_few_body(const SortParams& p, std::int32_t* cnt) {
  SY_FEW_TRACE(0);
  const std::int32_t E = p.num_experts;
  const auto N = static_cast<std::int32_t>(p.num_slots);
  const auto B = static_cast<std::int32_t>(p.pad);
  const SmallDiv div = SmallDiv::of(B);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const auto W = static_cast<int>(blockDim.x >> 5);
  const auto s = static_cast<std::int32_t>(threadIdx.x),
             nthreads = static_cast<std::int32_t>(blockDim.x);

  // ---- 1. this thread's slot (load first), the prefill
  const std::int32_t x = slot_expert_of(p, s);
  prefill_outputs<kAlign>(p, s, nthreads);
  // ---- 2. one ballot per expert, four experts per iteration (independent ballots back to back;
  // an expert id >= E matches no slot and only sets the unused count of a lane >= E to 0)
  unsigned peers = 0u;
  std::int32_t my_count = 0;  // lane e: this warp's slots of expert e
#pragma unroll 1
  for (std::int32_t e0 = 0; e0 < E; e0 += 4) {
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      const std::int32_t e = e0 + q;
      const unsigned m = __ballot_sync(0xffffffffu, x == e);
      peers = x == e ? m : peers;
      my_count = lane == e ? __popc(m) : my_count;
    }
  }
  if (lane < E) cnt[warp * kFewCntStride + lane] = my_count;
  __syncthreads();
  SY_FEW_TRACE(1);

  // ---- 3. per warp: totals, earlier warps' counts, the scan over the lanes, the slots
  std::int32_t before = 0, total = 0;
  if (W <= kFewAlignRedundantWarps) {  // every warp reads the W rows itself
    if (lane < E) {
#pragma unroll 4
      for (int w = 0; w < W; ++w) {
        const std::int32_t c = cnt[w * kFewCntStride + lane];
        before += w < warp ? c : 0;
        total += c;
      }
    }
  } else {  // warp e turns column e into prefixes over the warps, one more barrier
    std::int32_t* tot = cnt + kFewAlignMaxWarps * kFewCntStride;
#pragma unroll 1
    for (std::int32_t e = warp; e < E; e += W) {           // warp-uniform
      std::int32_t* col = cnt + lane * kFewCntStride + e;  // lane w: warp w's count of e
      const std::int32_t c = lane < W ? *col : 0;
      const std::int32_t incl = warp_inclusive_scan(c);
      if (lane < W) *col = incl - c;
      if (lane == 31) tot[e] = incl;
    }
    __syncthreads();
    if (lane < E) {
      before = cnt[warp * kFewCntStride + lane];
      total = tot[lane];
    }
  }
  const std::int32_t nb = lane < E ? div.ceil_div(total) : 0;
  const std::int32_t incl = warp_inclusive_scan(nb);
  const std::int32_t first_block = incl - nb;
  const std::int32_t total_blocks = __shfl_sync(0xffffffffu, incl, 31);
  const std::int32_t base = first_block * B + before;
  const std::int32_t xb = __shfl_sync(0xffffffffu, base, x >= 0 ? x : 0);
  SY_FEW_TRACE(2);
  if (x >= 0) {
    const std::int32_t dst = xb + __popc(peers & ((1u << lane) - 1u));
    if (kAlign) {
      p.sorted_ids[dst] = s;
    } else {
      p.src_to_dst[s] = dst;
      p.dst_to_src[dst] = s;
    }
  } else if (!kAlign && s < N) {
    p.src_to_dst[s] = -1;  // dropped slot
  }
  if (warp == 0) {
    const std::int32_t used = total_blocks * B;
    if (lane < E) {
      if (kAlign) {
#pragma unroll 1
        for (std::int32_t b = first_block; b < first_block + nb; ++b) p.block_experts[b] = lane;
      } else {
        p.counts[lane] = total;
        p.offsets[lane] = first_block * B;
      }
    }
    if (lane == 0) {
      if (kAlign) {
        *p.post_pad = used;
      } else {
        p.offsets[E] = used;
        if (p.overflow != nullptr) *p.overflow = 0;  // contiguous: nothing is dropped for space
      }
    }
  }
  if (p.trace != nullptr && threadIdx.x == 0) {
    const long long c = clock64();
    for (int k = 3; k < kSortTracePoints; ++k) p.trace[k] = c;
  }
}

#undef SY_FEW_TRACE

// kPasses = 1 in the library; 2 (diagnostics: the phase trace's warm pass) runs the body twice in
// one launch. One block of few_align_threads(N) threads.
template <bool kAlign, int kPasses>
__global__ void __launch_bounds__(1024) align_few_kernel(const SortParams p) {
  __shared__ std::int32_t cnt[kFewAlignMaxWarps * kFewCntStride + kFewAlignMaxExperts];
  pdl_begin_warm(sort_param_lines(p));  // first, as in align_small_kernel
#pragma unroll 1
  for (int pass = 0; pass < kPasses; ++pass) {
    if (pass > 0) __syncthreads();
    align_few_body<kAlign>(p, cnt);
  }
}

}  // namespace switchyard::kernels
