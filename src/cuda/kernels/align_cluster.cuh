// moe_align_block_size and the contiguous expert layout for 65..4096 slots and E <= 512: one
// thread block cluster (sm_90) of up to 8 blocks of 512 threads, block g owning slots
// [512 g, 512 g + 512), one slot per thread. Same output, bit for bit, as the CPU.
//
// align_small_kernel (align_small.cuh) has every block count every slot itself (shared-memory
// atomics on the other blocks' ids); ncu put most of its time there and in the padding phase
// (~740 warp instructions per warp at 512 DeepSeek-V3 tokens, 8.9 cycles each). Here the blocks of
// one cluster exchange their counts through distributed shared memory instead:
//   1. the cluster's threads prefill every output entry (sentinel N / -1) with coalesced 16-byte
//      stores; each warp zeroes its row of `bits`; a lane loads its slot's expert e and ORs its
//      bit into bits[w][e]: that word is the set of lanes of warp w with expert e, so a lane's
//      rank among them is popc(word & lower lanes). Block barrier;
//   2. thread e: the column prefix over the 16 warps (bits[w][e] becomes the count of e in warps
//      before w) and the block's count. Thread e of each slot-owning block pushes that count into
//      recv[g][e] of every other block (st.async, cluster.cuh; a block without slots pushes one
//      word), and every block waits on its mbarrier until all its words have landed: the pushes'
//      release and the wait's acquire (cluster scope) also order every block's prefill before any
//      block's stores below;
//   3. thread e: e's slots in earlier blocks and its total, from recv. Exclusive scan of the
//      padded block counts (one barrier): segment start; base[e] = start + slots in earlier
//      blocks; e's block labels (align) or count and offset (layout), by block e % G. Block
//      barrier;
//   4. each slot's thread stores it at base[e] + bits[w][e] + rank: slots ascend in every
//      segment. No block reads another's shared memory, so none waits for the others at the end.
// The pulling form (kPush = false; SWITCHYARD_ALIGN_PUSH=0, for A/B measurements) publishes the
// counts with a release / acquire cluster barrier instead, each block then loading the others'
// counts through distributed shared memory, and ends with a relaxed cluster barrier that keeps its
// shared memory alive until the others have read it. Pushing measured (H200, session 29, one
// binary; bench/NOTES.md) 0.02-0.11 us less per launch at 129-512 top-8 tokens (DeepSeek-V3 512
// tokens 2.79 -> 2.70 us over the empty launch): the phase trace of block 0 has the exchange
// 670 -> 595 cycles and the scan 1,203 -> 462 (local loads), and no final barrier. Pushing with the
// prefill left until after the scan (every expert's padding run and the tail written then, so that
// no block's stores overlap another's and no ordering is needed) was 0.1-0.7 us slower: those
// stores took 1,900-2,700 cycles at the end of each block, as 4- or 16-byte stores alike.
//
// Measured (H200, session 14; bench/NOTES.md): the release half of a cluster barrier is a
// MEMBAR.ALL.GPU (~700-800 cycles), which is why the pulling form's last barrier is relaxed;
// padding written after the scan by one thread per expert (scattered 4-byte stores) cost
// ~1,000-3,000 cycles per block more than the coalesced prefill. The kernel is 0.1-0.45 us faster
// than align_small_kernel for E = 128..384 at 9-32 and 256-512 tokens of top-8 and as fast
// between; it is 0.05-0.16 us slower for Mixtral's E = 8, which the launcher leaves to
// align_small_kernel. Everything is 32-bit: the launcher only takes this kernel when slots +
// padding < 2^30 and the outputs are at most kClusterAlignMaxEntries entries.
//
// Up to 1024 slots (two slot-owning blocks) the launcher runs the replicated variant instead
// (kRepl, below), from 33 slots for E = 64..512 (ahead of the warp kernel's two slots per lane):
// a plain grid in which every block sorts all the slots (one or two per thread) and writes one
// chunk of the outputs, so no block waits for another. Measured (H200, session 19, one binary
// against SWITCHYARD_ALIGN_REPL=0; bench/results/2026-11-29-h200-s19-align-repl-ab.json), us per
// launch: DeepSeek-V3 9 / 32 / 64 tokens 2.65 / 2.77 / 3.18 -> 2.13 / 2.15 / 2.32, Kimi K2 2.87
// / 2.94 / 3.32 -> 2.23 / 2.24 / 2.38, Qwen3-30B 2.44 / 2.58 / 3.04 -> 2.04 / 2.10 / 2.34, Llama 4
// (top-1) 128 / 512 tokens 2.47 / 3.03 -> 2.06 / 2.31: 0.4-0.9 us, the cluster barrier and more.
// Against the warp kernel's two slots per lane (33..64 slots; ...-s19-align-repl-small-ab.json):
// DeepSeek-V3 5 / 8 tokens 2.26 / 2.25 -> 2.09 / 2.11, gpt-oss 16 tokens 2.23 -> 2.02; at <= 32
// slots the warp kernel's one slot per lane stays faster (1.68-1.84 against 1.96-2.16). Two
// steps against the cluster kernel (513..1024 slots; ...-s19-align-repl-loads-ab.json, the slot
// loads issued together): DeepSeek-V3 65 / 96 / 128 tokens 3.21 / 3.20 / 3.22 -> 2.63 / 2.65 /
// 2.68, gpt-oss 192 / 256 tokens 3.05 / 3.04 -> 2.57 / 2.66.
#pragma once

#include <algorithm>
#include <cstdint>

#include "align.cuh"
#include "align_small.cuh"
#include "cluster.cuh"
#include "pdl.cuh"

namespace switchyard::kernels {

inline constexpr int kClusterAlignThreads = 512;
inline constexpr int kClusterAlignWarps = kClusterAlignThreads / 32;
inline constexpr int kClusterAlignMaxBlocks = 8;  // the portable cluster size
inline constexpr std::int64_t kClusterAlignMaxSlots =
    static_cast<std::int64_t>(kClusterAlignThreads) * kClusterAlignMaxBlocks;  // 4096
inline constexpr std::int32_t kClusterAlignMaxExperts = kClusterAlignThreads;  // thread e: expert e
// The launcher's heuristic takes this kernel from this many experts (measured: faster at E = 128,
// 256, 384; slower at E = 8, where align_small_kernel's shared-memory counting is cheap).
inline constexpr std::int32_t kClusterAlignHeuristicMinExperts = 64;
// Blocks for the output entries (the prefill; the outputs are mostly padding): one per
// kClusterAlignEntriesPerBlock up to kClusterAlignMaxBlocks, and at least one per
// kClusterAlignSmallEntriesPerBlock up to kClusterAlignSmallBlocks (see cluster_align_blocks).
inline constexpr std::int64_t kClusterAlignEntriesPerBlock = 4096;
inline constexpr std::int64_t kClusterAlignSmallEntriesPerBlock = 2048;
inline constexpr std::int64_t kClusterAlignSmallBlocks = 5;
// Beyond this many output entries in all align_small_kernel's larger grid writes them faster.
inline constexpr std::int64_t kClusterAlignMaxEntries =
    std::int64_t{4096} * 4 * kClusterAlignMaxBlocks;

// Shared memory (dynamic, ints): bits [steps * 16][Ep] (Ep = E rounded up to 4: 16-byte row
// zeroing; steps: 512-slot steps per block, 1 but in the replicated variant), warp sums [16]
// (16-byte loads), cnt [E], base [E].
__host__ __device__ inline std::int32_t cluster_align_row(std::int32_t num_experts) {
  return (num_experts + 3) / 4 * 4;
}
// The pushing form (kPush) adds recv [kClusterAlignMaxBlocks][E] and its mbarrier (8-byte aligned,
// last).
__host__ __device__ inline std::size_t cluster_align_shared_bytes(std::int32_t num_experts,
                                                                  int steps = 1,
                                                                  bool push = false) {
  const auto E = static_cast<std::size_t>(num_experts);
  const std::size_t ints =
      static_cast<std::size_t>(steps) * kClusterAlignWarps * cluster_align_row(num_experts) +
      2 * E + kClusterAlignWarps + (push ? kClusterAlignMaxBlocks * E : 0);
  return push ? (ints * 4 + 7) / 8 * 8 + 8 : ints * 4;
}
// Blocks of the cluster: one per 512 slots, and for the outputs one per 4096 entries (up to 8)
// or one per 2048 (up to 5), whichever is more (blocks past the last slot own none: they prefill
// and write labels). H200, session 22, one binary per rule, interleaved
// (bench/results/2026-11-30-h200-s22-align-rule-ab.json), us over the empty launch: a block per
// 2048 entries helped where the 4096 rule gave 3-4 blocks (Qwen3-30B 129 / 256 tokens 2.43 / 2.49
// -> 2.32 / 2.35, gpt-oss 512 2.48 -> 2.33, DeepSeek-V2 192 / 256 2.56 / 2.54 -> 2.47 / 2.48) and
// lost where it gave 7 (Kimi K2 256 / 384 2.91 / 2.96 -> 2.95-2.98 / 3.05-3.06 with 5 or 6 blocks);
// DeepSeek-V3 (5 either way) even.
inline int cluster_align_blocks(std::int64_t num_slots, std::int64_t out_entries) {
  const std::int64_t steps = (num_slots + kClusterAlignThreads - 1) / kClusterAlignThreads;
  const auto by = [out_entries](std::int64_t per_block, std::int64_t most) {
    return std::min<std::int64_t>((out_entries + per_block - 1) / per_block, most);
  };
  return static_cast<int>(
      std::max<std::int64_t>({1, steps, by(kClusterAlignEntriesPerBlock, kClusterAlignMaxBlocks),
                              by(kClusterAlignSmallEntriesPerBlock, kClusterAlignSmallBlocks)}));
}

// The replicated variant (kRepl = steps of 512 slots, 1 or 2: up to kReplAlignMaxSlots slots,
// E <= 512): no cluster. Every block loads and sorts all the slots itself (kRepl per thread,
// slot j * 512 + t in step j; each step's warps keep their own rows of lane masks, so a slot's
// rank counts the rows of earlier steps too) and writes one contiguous chunk of each output:
// entries [g * kReplAlignChunk, (g + 1) * kReplAlignChunk) of sorted_ids / dst_to_src and of the
// block labels, the sentinels first and then the slots and labels that fall in the chunk. A block's
// prefill and its slot stores are ordered by its own barriers, so no block waits for another: the
// cluster barrier (its release half a MEMBAR.ALL.GPU) and the distributed shared memory reads are
// gone. Scalars (post_pad, offsets[E], overflow, src_to_dst, the layout's counts and offsets) have
// one writer.
// Two steps at most: with 4 and 8 (2049..4096 slots; session 19) it was 0.4-3.5 us slower than the
// cluster kernel (DeepSeek-V3 256 / 512 tokens 3.34 / 3.54 -> 4.06 / 6.40 us per launch): every
// block's column prefix then walks 64-128 rows per expert, and every block sorts every slot.
inline constexpr int kReplAlignMaxSteps = 2;
inline constexpr std::int64_t kReplAlignMaxSlots =
    static_cast<std::int64_t>(kClusterAlignThreads) * kReplAlignMaxSteps;  // 1024
// Steps of the instance for N <= kReplAlignMaxSlots slots: 1 up to 512, else 2.
inline int repl_align_steps(std::int64_t num_slots) {
  return num_slots <= kClusterAlignThreads ? 1 : 2;
}
// Entries of each output per block: 2048. H200, session 22, one binary per chunk, interleaved
// (bench/results/2026-11-30-h200-s22-align-chunk-ab.json), us over the empty launch, 4096 -> 2048
// entries: DeepSeek-V3 64 / 128 tokens 1.66 / 2.05 -> 1.57 / 1.92, Qwen3-30B 1.69 / 2.07 -> 1.48 /
// 1.78, gpt-oss 256 tokens 2.04 -> 1.76; 1024 entries was no faster than 2048. A block's share
// of the prefill (the outputs are mostly padding) is what shrinks; each block still sorts every
// slot.
inline constexpr int kReplAlignChunkLog2 = 11;
inline constexpr std::int64_t kReplAlignChunk = std::int64_t{1} << kReplAlignChunkLog2;  // 2048
// Blocks of the replicated variant: one per chunk of the larger output (at least one).
inline int repl_align_blocks(std::int64_t main_entries, std::int64_t label_entries) {
  const std::int64_t n = std::max<std::int64_t>({1, main_entries, label_entries});
  return static_cast<int>((n + kReplAlignChunk - 1) / kReplAlignChunk);
}

// The (mapped) expert of slot s, or -1 (past N, invalid, or mapped away).
template <typename Id>
__device__ __forceinline__ std::int32_t cluster_slot_expert(const SortParams& p, std::int32_t s) {
  if (s >= static_cast<std::int32_t>(p.num_slots)) return -1;
  const Id raw = __ldg(static_cast<const Id*>(p.ids) + s);
  // One unsigned compare per id: negative ids wrap to huge values.
  const auto u = static_cast<std::uint64_t>(static_cast<std::int64_t>(raw));
  if (p.expert_map == nullptr)
    return u < static_cast<std::uint64_t>(p.num_experts) ? static_cast<std::int32_t>(raw) : -1;
  const std::int32_t m = u < static_cast<std::uint64_t>(p.map_size)
                             ? __ldg(p.expert_map + static_cast<std::int64_t>(raw))
                             : -1;
  return static_cast<std::uint32_t>(m) < static_cast<std::uint32_t>(p.num_experts) ? m : -1;
}

// q[begin, end) = v by the cluster's threads (tid of nthreads), 16-byte stores between a scalar
// head and tail; q is aligned to its element size (4 or 8 bytes).
template <typename T>
__device__ __forceinline__ void cluster_fill(T* q, std::int32_t begin, std::int32_t end, T v,
                                             std::int32_t tid, std::int32_t nthreads) {
  static_assert(sizeof(T) == 4 || sizeof(T) == 8);
  constexpr std::int32_t kPer = 16 / sizeof(T);
  if (begin >= end) return;
  const auto mis =
      static_cast<std::int32_t>((reinterpret_cast<std::uintptr_t>(q + begin) / sizeof(T)) % kPer);
  const std::int32_t body = min(end, begin + (kPer - mis) % kPer);
  if (tid < body - begin) q[begin + tid] = v;
  const std::int32_t n16 = (end - body) / kPer;
  if constexpr (sizeof(T) == 4) {
    auto* w = reinterpret_cast<int4*>(q + body);
    const auto x = static_cast<int>(v);
#pragma unroll 1
    for (std::int32_t i = tid; i < n16; i += nthreads) w[i] = make_int4(x, x, x, x);
  } else {
    auto* w = reinterpret_cast<longlong2*>(q + body);
    const auto x = static_cast<long long>(v);
#pragma unroll 1
    for (std::int32_t i = tid; i < n16; i += nthreads) w[i] = make_longlong2(x, x);
  }
  const std::int32_t tail = body + n16 * kPer;
  if (tid < end - tail) q[tail + tid] = v;
}

// x[j] = the (mapped) expert of slot s[j] or -1, as cluster_slot_expert, with every id load (then
// every expert_map load) issued before any is used: per slot, cluster_slot_expert's branches kept
// a second slot's load behind the first one's (~600 cycles more at two slots per thread; session
// 19's phase trace).
template <int kN>
struct SlotExperts {
  std::int32_t x[kN];
};
template <int kN>
__device__ __forceinline__ SlotExperts<kN> cluster_slot_experts(const SortParams& p,
                                                                std::int32_t first,
                                                                std::int32_t stride) {
  // 32-bit words: an id is valid when its high word (int64 ids) is 0 and its low word, unsigned,
  // is below the bound (negative and >= 2^31 ids fail one test or the other).
  const auto N = static_cast<std::int32_t>(p.num_slots);
  const auto* w = static_cast<const std::int32_t*>(p.ids);
  const int shift = p.ids_int64 ? 1 : 0;
  std::int32_t lo[kN], hi[kN];
#pragma unroll
  for (int j = 0; j < kN; ++j) {
    const std::int32_t s = first + j * stride;
    lo[j] = s < N ? __ldg(w + (s << shift)) : -1;
    hi[j] = s < N && shift != 0 ? __ldg(w + (s << shift) + 1) : 0;
  }
  const bool mapped = p.expert_map != nullptr;
  const auto bound = static_cast<std::uint32_t>(mapped ? p.map_size : p.num_experts);
  SlotExperts<kN> r;
#pragma unroll
  for (int j = 0; j < kN; ++j) {
    const bool in = hi[j] == 0 && static_cast<std::uint32_t>(lo[j]) < bound;
    r.x[j] = in ? (mapped ? __ldg(p.expert_map + lo[j]) : lo[j]) : -1;
  }
#pragma unroll
  for (int j = 0; j < kN; ++j) {
    r.x[j] = static_cast<std::uint32_t>(r.x[j]) < static_cast<std::uint32_t>(p.num_experts) ? r.x[j]
                                                                                            : -1;
  }
  return r;
}

// The slot's expert (cluster_slot_expert for the ids' type).
__device__ __forceinline__ std::int32_t slot_expert_of(const SortParams& p, std::int32_t s) {
  return p.ids_int64 ? cluster_slot_expert<std::int64_t>(p, s)
                     : cluster_slot_expert<std::int32_t>(p, s);
}

// Every output entry set to its empty value (alignment: sentinel N in sorted_ids, -1 in the block
// labels; layout: -1 in dst_to_src) by threads tid of nthreads; the kernel's later stores
// overwrite the entries the slots and labels take.
template <bool kAlign>
__device__ __forceinline__ void prefill_outputs(const SortParams& p, std::int32_t tid,
                                                std::int32_t nthreads) {
  if (kAlign) {
    cluster_fill(p.sorted_ids, 0, static_cast<std::int32_t>(p.sorted_numel),
                 static_cast<std::int32_t>(p.num_slots), tid, nthreads);
    cluster_fill(p.block_experts, 0, static_cast<std::int32_t>(p.block_experts_numel),
                 std::int32_t{-1}, tid, nthreads);
  } else {
    cluster_fill(p.dst_to_src, 0, static_cast<std::int32_t>(p.dst_numel), std::int64_t{-1}, tid,
                 nthreads);
  }
}

// The replicated variant's prefill: block g's chunk of every output (prefill_outputs' values) by
// its 512 threads.
template <bool kAlign>
__device__ __forceinline__ void prefill_chunk(const SortParams& p, std::int32_t g, std::int32_t t) {
  const auto lo = static_cast<std::int32_t>(static_cast<std::int64_t>(g) << kReplAlignChunkLog2);
  const auto chunk_end = [&](std::int64_t numel) {
    return static_cast<std::int32_t>(min(numel, static_cast<std::int64_t>(lo) + kReplAlignChunk));
  };
  if (kAlign) {
    cluster_fill(p.sorted_ids, lo, chunk_end(p.sorted_numel),
                 static_cast<std::int32_t>(p.num_slots), t, kClusterAlignThreads);
    cluster_fill(p.block_experts, lo, chunk_end(p.block_experts_numel), std::int32_t{-1}, t,
                 kClusterAlignThreads);
  } else {
    cluster_fill(p.dst_to_src, lo, chunk_end(p.dst_numel), std::int64_t{-1}, t,
                 kClusterAlignThreads);
  }
}

#define SY_CLUSTER_TRACE(k) \
  if (p.trace != nullptr && threadIdx.x == 0 && blockIdx.x == 0) p.trace[k] = clock64()

// The kernel's body. `smem`: cluster_align_shared_bytes(E), 16-byte aligned. Every thread of
// every block of the cluster calls it (cluster rank = blockIdx.x: the grid is one cluster of at
// least one block per 512 slots). kRepl > 0: the replicated variant (no cluster; kRepl steps of
// 512 slots; grid repl_align_blocks), every block on every slot, writing its own chunk of the
// outputs; `smem` then cluster_align_shared_bytes(E, kRepl).
template <bool kAlign, int kRepl = 0, bool kPush = true>
__device__ __forceinline__ void align_cluster_body(const SortParams& p, unsigned char* smem,
                                                   int pass = 0) {
  constexpr bool kR = kRepl > 0;
  constexpr bool kP = kPush && !kR;  // the cluster kernel's pushing form
  constexpr int kSteps = kR ? kRepl : 1;
  SY_CLUSTER_TRACE(0);
  const std::int32_t E = p.num_experts, Ep = cluster_align_row(E);
  const auto N = static_cast<std::int32_t>(p.num_slots);
  const auto B = static_cast<std::int32_t>(p.pad);
  const SmallDiv div = SmallDiv::of(B);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const auto g = static_cast<std::int32_t>(blockIdx.x), G = static_cast<std::int32_t>(gridDim.x);
  const auto t = static_cast<std::int32_t>(threadIdx.x);
  const std::int32_t tid = g * kClusterAlignThreads + t, nthreads = G * kClusterAlignThreads;
  auto* bits = reinterpret_cast<std::uint32_t*>(smem);  // [kSteps * 16][Ep]
  auto* sums = reinterpret_cast<std::int32_t*>(bits + kSteps * kClusterAlignWarps * Ep);
  std::int32_t* cnt = sums + kClusterAlignWarps;
  std::int32_t* base = cnt + E;
  // kP: the counts pushed by the cluster's other blocks (recv [rank][E]) and the mbarrier the
  // pushes complete on.
  std::int32_t* recv = base + E;
  auto* bar = reinterpret_cast<std::uint64_t*>(smem + cluster_align_shared_bytes(E, 1, true) -
                                               sizeof(std::uint64_t));
  const std::int32_t steps = (N + kClusterAlignThreads - 1) / kClusterAlignThreads;
  if constexpr (kP) {
    if (pass == 0 && t == 0) cluster_push_init(bar);
    cluster_arrive_relaxed();  // waited for before the first push: every mbarrier initialised
  }

  // ---- 1. this thread's slot (its load issued before the stores below, whose issue it then
  // overlaps: measured within 0.1 us of issuing it after them, either way); prefill every output
  // (coalesced 16-byte stores); zero this warp's row; the warp's lanes per expert
  // Step j: slot s[j], its expert x[j], its row of lane masks j * 16 + warp.
  std::int32_t s[kSteps];
#pragma unroll
  for (int j = 0; j < kSteps; ++j) s[j] = kR ? j * kClusterAlignThreads + t : tid;
  const SlotExperts<kSteps> sx = cluster_slot_experts<kSteps>(p, s[0], kClusterAlignThreads);
  const auto& x = sx.x;
  if constexpr (kR) {
    prefill_chunk<kAlign>(p, g, t);
  } else {
    prefill_outputs<kAlign>(p, tid, nthreads);
  }
  // kRepl: whether this block's chunk holds entry i of an output (it prefilled it).
  const auto mine = [g](std::int32_t i) { return (i >> kReplAlignChunkLog2) == g; };
#pragma unroll
  for (int j = 0; j < kSteps; ++j) {
    auto* row = reinterpret_cast<int4*>(bits + (j * kClusterAlignWarps + warp) * Ep);
#pragma unroll 1
    for (std::int32_t i = lane; i < Ep / 4; i += 32) row[i] = make_int4(0, 0, 0, 0);
  }
  __syncwarp();
#pragma unroll
  for (int j = 0; j < kSteps; ++j) {
    if (x[j] >= 0) atomicOr(bits + (j * kClusterAlignWarps + warp) * Ep + x[j], 1u << lane);
  }
  __syncwarp();
  unsigned peers[kSteps];
#pragma unroll
  for (int j = 0; j < kSteps; ++j) {
    peers[j] = x[j] >= 0 ? bits[(j * kClusterAlignWarps + warp) * Ep + x[j]] : 0u;
  }
  __syncthreads();
  SY_CLUSTER_TRACE(1);

  // ---- 2. column prefix over the rows (warps, then steps: slot order), the block's count
  std::int32_t own = 0;
  if (t < E) {
    // Every step's rows loaded before any is stored (the stores would keep a later step's loads
    // behind them: the compiler cannot tell the rows apart).
    std::uint32_t col[kSteps][kClusterAlignWarps];
#pragma unroll
    for (int j = 0; j < kSteps; ++j) {
#pragma unroll
      for (int w = 0; w < kClusterAlignWarps; ++w) {
        col[j][w] = bits[(j * kClusterAlignWarps + w) * Ep + t];
      }
    }
#pragma unroll
    for (int j = 0; j < kSteps; ++j) {
#pragma unroll
      for (int w = 0; w < kClusterAlignWarps; ++w) {
        bits[(j * kClusterAlignWarps + w) * Ep + t] = static_cast<std::uint32_t>(own);
        own += __popc(col[j][w]);
      }
    }
    if (!kP) cnt[t] = own;
  }
  SY_CLUSTER_TRACE(2);
  if constexpr (kP) {
    // Every block has initialised its mbarrier; the slot-owning blocks push their counts to every
    // other block, which waits for all the words it gets.
    cluster_wait();
    // A block without slots pushes one word, so that every block's prefill (before its pushes:
    // the block barrier above) happens before every block's stores after its wait.
    const std::int32_t others = G - 1, owners = steps - (g < steps ? 1 : 0);
    if (t == 0) {
      cluster_push_expect(bar, static_cast<std::uint32_t>(4 * (owners * E + others - owners)));
    }
    if (t < (g < steps ? E : 1)) {
#pragma unroll
      for (int r = 0; r < kClusterAlignMaxBlocks; ++r) {
        if (r < G && r != g) {
          cluster_push(reinterpret_cast<std::uint32_t*>(recv + g * E + t), static_cast<unsigned>(r),
                       static_cast<std::uint32_t>(own), bar);
        }
      }
    }
    cluster_push_wait(bar, static_cast<std::uint32_t>(pass & 1));
  } else if constexpr (!kR) {
    cluster_arrive();
    cluster_wait();
  }
  SY_CLUSTER_TRACE(3);

  // ---- 3. the cluster's counts, segment starts, everything but the slots
  std::int32_t before = 0, total = own;
  if (!kR && t < E) {  // kR: this block holds every slot
    std::int32_t v[kClusterAlignMaxBlocks];
#pragma unroll
    for (int r = 0; r < kClusterAlignMaxBlocks; ++r) {
      v[r] = r < steps && r != g
                 ? (kP ? recv[r * E + t] : *cluster_map(cnt + t, static_cast<unsigned>(r)))
                 : 0;
    }
#pragma unroll
    for (int r = 0; r < kClusterAlignMaxBlocks; ++r) {
      before += r < g ? v[r] : 0;
      total += v[r];
    }
  }
  const std::int32_t nb = t < E ? div.ceil_div(total) : 0;
  const std::int32_t incl = warp_inclusive_scan(nb);
  if (lane == 31) sums[warp] = incl;
  __syncthreads();
  SY_CLUSTER_TRACE(4);
  std::int32_t first_block = incl - nb, total_blocks = 0;
  {
    const auto* q = reinterpret_cast<const int4*>(sums);
#pragma unroll
    for (int i = 0; i < kClusterAlignWarps / 4; ++i) {
      const int4 v = q[i];
      const int w = 4 * i;
      first_block += (w < warp ? v.x : 0) + (w + 1 < warp ? v.y : 0) + (w + 2 < warp ? v.z : 0) +
                     (w + 3 < warp ? v.w : 0);
      total_blocks += v.x + v.y + v.z + v.w;
    }
  }
  const std::int32_t used = total_blocks * B;
  SY_CLUSTER_TRACE(5);
  if (t < E) {
    const std::int32_t start = first_block * B;
    base[t] = start + before;
    if (kAlign && kR) {  // the labels in this block's chunk
      const std::int32_t lo = g << kReplAlignChunkLog2;
      const std::int32_t end =
          min(first_block + nb, lo + static_cast<std::int32_t>(kReplAlignChunk));
#pragma unroll 1
      for (std::int32_t b = max(first_block, lo); b < end; ++b) p.block_experts[b] = t;
    } else if (t % G == g) {  // the expert's metadata by one block
      if (kAlign) {
#pragma unroll 1
        for (std::int32_t b = first_block; b < first_block + nb; ++b) p.block_experts[b] = t;
      } else {
        p.counts[t] = total;
        p.offsets[t] = start;
      }
    }
  }
  if (kAlign) {
    if (tid == 0) *p.post_pad = used;
  } else {
    if (tid == 0) {
      p.offsets[E] = used;
      if (p.overflow != nullptr) *p.overflow = 0;  // contiguous: nothing is dropped for space
    }
  }
  SY_CLUSTER_TRACE(6);
  __syncthreads();
  SY_CLUSTER_TRACE(7);

  // ---- 4. the slots
#pragma unroll
  for (int j = 0; j < kSteps; ++j) {
    if (x[j] >= 0) {
      const std::int32_t dst =
          base[x[j]] +
          static_cast<std::int32_t>(bits[(j * kClusterAlignWarps + warp) * Ep + x[j]]) +
          __popc(peers[j] & ((1u << lane) - 1u));
      if (kAlign) {
        if (!kR || mine(dst)) p.sorted_ids[dst] = s[j];
      } else {
        if (!kR || g == 0) p.src_to_dst[s[j]] = dst;
        if (!kR || mine(dst)) p.dst_to_src[dst] = s[j];
      }
    } else if (!kAlign && s[j] < N && (!kR || g == 0)) {
      p.src_to_dst[s[j]] = -1;  // dropped slot
    }
  }
  SY_CLUSTER_TRACE(8);
  // This block is done with the other blocks' shared memory (every remote value was consumed by
  // the scan, before two barriers); the wait keeps its own alive until the others are too. The
  // arrive here rather than right after the scan: measured 0.01-0.06 us faster. (kP: no block
  // reads another's shared memory, and every word pushed to a block landed before it passed its
  // wait, so each block exits when done.)
  if constexpr (!kR && !kP) {
    cluster_arrive_relaxed();
    cluster_wait();
  }
  if (p.trace != nullptr && threadIdx.x == 0 && blockIdx.x == 0) {
    const long long c = clock64();
    for (int k = 9; k < kSortTracePoints; ++k) p.trace[k] = c;
  }
}

// kPasses = 1 in the library; 2 (diagnostics: the phase trace's warm pass) runs the body twice in
// one launch, a cluster barrier between the passes. Launched as one cluster of gridDim.x blocks;
// kRepl > 0 (the replicated variant, kRepl steps) as a plain grid of repl_align_blocks blocks.
template <bool kAlign, int kPasses, int kRepl = 0, bool kPush = true>
__global__ void __launch_bounds__(kClusterAlignThreads) align_cluster_kernel(const SortParams p) {
  extern __shared__ __align__(16) unsigned char smem[];
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 900
  __trap();  // no clusters: the launcher never takes this kernel for code built below sm_90
#endif
  pdl_begin_warm(sort_param_lines(p));  // first (after the arch guard), as in align_small_kernel
#pragma unroll 1
  for (int pass = 0; pass < kPasses; ++pass) {
    if (pass > 0) {
      if constexpr (kRepl > 0) {
        __syncthreads();
      } else {
        cluster_arrive();
        cluster_wait();
      }
    }
    align_cluster_body<kAlign, kRepl, kPush>(p, smem, pass);
  }
}

#undef SY_CLUSTER_TRACE

}  // namespace switchyard::kernels
