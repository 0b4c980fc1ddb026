// The row-block routing kernel, for small batches: one block per row, kVals consecutive experts
// per thread (blockDim = 32 * ceil(E / (32 * kVals)) <= kRowBlockMaxThreads). The exact per-expert
// math then runs on E / kVals threads at once instead of one warp, and the selection is a short
// chain of warp-wide steps instead of K argmax rounds. Same bits as every other layout and as the
// CPU (routing_row.h); docs/routing.md "Row blocks" has the design and the predicted timings.
//
// Per row:
//  1. every thread: load, keys, order keys (to shared memory); per warp: softmax max, a threshold
//     pair (v, c) (c of the warp's experts have an order key >= v, see warp_kth), and the warp's
//     top two keys where groups are whole warps. Barrier A (__syncthreads_or: "any finite logit").
//  2. softmax only, every warp: its subtree of the denominator; barrier C. Warps 1.. exit.
//  3. warp 0: group scores (from the warps' top two, or one lane per group over shared memory),
//     the kept groups by exact rank; threshold tau = the largest v such that the warps at or above
//     it hold >= K experts >= v, so the K best all have order key >= tau; one pass over the order
//     keys collects the experts >= tau (about K + a few) as candidates.
//  4. warp 0: exact rank of every candidate by counting (order, index) comparisons (slot k = the
//     candidate of rank k); if there were more than kRowBlockCandidates (heavy ties), K exact
//     argmax rounds over the shared order keys instead. Then weights, renormalisation, shared
//     experts, stores, one output column per lane.
// One expert per thread (kVals = 1; plan.lists, where groups do not apply or each group is one
// warp), steps 1-4 take ranked warp lists instead of the threshold:
//  1. every warp ranks its experts (warp_list) and writes its best max(K, 2) in order to its list;
//     with groups, the lane of rank 1 writes the group's candidate (from the warp's maximum and
//     its own key: the group's top two). Barrier A (and C for softmax).
//  3. every warp finds the live warps (kept groups, or all), every live warp ranks its list's
//     entries among all live lists' (rank_own_list) and writes the first K to the slots. Barrier B.
//     Warps 1.. exit; warp 0 continues at the weights with the slots (sigmoid-like scores with
//     K <= 8: finish_sigmoid_lists, straight-line code with the slot sums in registers).
// The parallel ranking replaces warp 0's serial group / threshold / collection / rank chain. One
// warp runs each step alone on its SM sub-partition, so every dependent instruction's latency
// shows: the counts are trees (tree_count), not chains, and loads are issued before the loop exits
// and branches that would hold them back.
// Sums keep the pairwise trees of routing_row.h: a warp's XOR butterfly is the subtree of its
// 32 * kVals leaves, warp 0 adds the warps' subtrees with a butterfly over lanes (subtrees of
// absent warps are zero, and x + 0 == x for the non-negative terms: the levels above are skipped).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "routing.cuh"

namespace switchyard::kernels {

inline constexpr int kRowBlockMaxThreads = 512;
inline constexpr int kRowBlockMaxWarps = kRowBlockMaxThreads / 32;
inline constexpr int kRowBlockCandidates = 64;  // exact-rank capacity (two per lane of warp 0)
inline constexpr int kRowBlockTracePoints = 8;  // mark(0..7)
inline constexpr unsigned kFullWarp = 0xffffffffu;

// Row-uniform constants of a call, computed on the host (make_row_block_plan): no integer
// division in the kernel.
struct RowBlockPlan {
  int kprime;           // threshold pairs: experts per warp to aim for (see warp_kth)
  int group_size;       // E / num_groups (grouping only)
  bool aligned_groups;  // every group is whole warps: group top-2 from the warps' top-2
  int warps_per_group;  // aligned groups only
  // x / d == (x * mul) >> 32 for 0 <= x <= 1024 and 1 <= d <= 1024, mul = ceil(2^32 / d): the
  // error x * (mul - 2^32 / d) / 2^32 < 2^-22 never crosses an integer, since x / d's fraction is
  // at most 1 - 1 / d <= 1 - 2^-10.
  std::uint64_t group_mul;       // d = group_size
  std::uint64_t warp_group_mul;  // d = warps_per_group
  // Ranked warp lists (one expert per thread; see warp_list): each warp's best list_keep experts
  // in order, list_width = 2^list_log2 >= list_keep entries per warp (the rest 0).
  bool lists;
  int list_keep;
  int list_log2;
  int slots_pow2;  // next_pow2(K): the slot trees' width
};

__host__ __device__ inline std::uint64_t div_mul(int d) {
  return ((std::uint64_t{1} << 32) + static_cast<std::uint64_t>(d) - 1) /
         static_cast<std::uint64_t>(d);
}
__device__ __forceinline__ int div_by_mul(int x, std::uint64_t mul) {
  return static_cast<int>((static_cast<std::uint64_t>(x) * mul) >> 32);
}

// SWITCHYARD_ROUTING_LISTS in the environment (read once), for A/B measurements: 0 keeps the row
// block on its threshold collection over all experts instead of the ranked warp lists; 2 takes
// the lists wherever they serve, at any number of rows (with one expert per thread: bench
// --vals -1); unset or 1, the heuristic's rule (heuristics::routing_row_block_lists_pay).
inline int row_block_lists_mode() {
  static const int mode = [] {
    const char* v = std::getenv("SWITCHYARD_ROUTING_LISTS");
    return v == nullptr || *v == '\0' ? 1 : std::atoi(v);
  }();
  return mode;
}
inline bool row_block_lists_enabled() {
  return row_block_lists_mode() != 0;
}
inline bool row_block_lists_forced() {
  return row_block_lists_mode() == 2;
}

inline RowBlockPlan make_row_block_plan(const RoutingParams& p, int threads, int vals) {
  const int warps = threads / 32;
  const bool grouped = p.group_score != GroupScore::kNone;
  RowBlockPlan plan{};
  plan.group_size = grouped ? p.num_experts / p.num_groups : p.num_experts;
  plan.aligned_groups = grouped && plan.group_size % (32 * vals) == 0;
  plan.warps_per_group = plan.aligned_groups ? plan.group_size / (32 * vals) : 1;
  plan.group_mul = div_mul(plan.group_size);
  plan.warp_group_mul = div_mul(plan.warps_per_group);
  // Warps expected to hold selectable experts, each asked for about K / active of them.
  int active = warps;
  if (grouped) {
    active = (warps * p.topk_groups + p.num_groups / 2) / p.num_groups;
    active = active < 1 ? 1 : active;
  }
  plan.kprime = (p.top_k + active - 1) / active;
  plan.kprime = plan.kprime > 32 ? 32 : plan.kprime;
  // Lists wherever a warp's experts are one group or groups do not apply (other groupings keep
  // the threshold path). At least two per warp: the group scores.
  plan.lists = vals == 1 &&
               detail::routing_row_block_lists_serve(p.num_experts, grouped ? p.num_groups : 0) &&
               row_block_lists_enabled();
  plan.list_keep = p.top_k < 2 ? 2 : p.top_k;
  plan.list_log2 = 1;
  while ((1 << plan.list_log2) < plan.list_keep) ++plan.list_log2;
  plan.slots_pow2 = detail::next_pow2(p.top_k);
  return plan;
}

// Dynamic shared memory of a row block: order keys and scores, one per thread-held expert.
inline std::size_t row_block_dynamic_smem(int threads, int vals) {
  return static_cast<std::size_t>(threads) * static_cast<std::size_t>(vals) * 8u;
}

// Static shared memory of a row. The dynamic part holds blockDim.x * kVals order keys (`ord`, 0:
// not selectable; warp 0 clears the dropped groups') and as many bias-free scores of the
// sigmoid-like functions (`score`).
struct RowBlockShared {
  alignas(16) std::uint64_t list[kRowBlockMaxWarps][32];  // ranked warp lists (plan.lists)
  std::uint64_t cand[kRowBlockCandidates];        // candidates (order, expert) with order >= tau
  std::uint64_t slot[kMaxRoutingColumns];         // the selection: slot k = output column k
  uint2 warp_kth[kRowBlockMaxWarps];              // (v, c) per warp, see warp_kth
  std::uint32_t warp_top2[kRowBlockMaxWarps][2];  // top-2 order keys per warp (aligned groups)
  std::uint32_t warp_max[kRowBlockMaxWarps];      // softmax: max order key per warp
  float warp_sum[kRowBlockMaxWarps];              // softmax: denominator subtree per warp
  alignas(16) std::uint64_t gcand[kRowBlockMaxWarps];  // lists, groups: one per warp
  alignas(16) float slot_w[kMaxRoutingColumns];        // lists: the slots' scores (sigmoid-like)
};

__device__ __forceinline__ int lane_id() {
  return static_cast<int>(threadIdx.x & 31u);
}
__device__ __forceinline__ unsigned lanes_below() {
  return (1u << (threadIdx.x & 31u)) - 1u;
}

// Top two order keys of a warp with duplicates kept (as top2_insert over all of them); (lb, ls)
// are the lane's own top two.
__device__ __forceinline__ void warp_top2(std::uint32_t lb, std::uint32_t ls, std::uint32_t& b,
                                          std::uint32_t& s) {
  b = __reduce_max_sync(kFullWarp, lb);
  const bool holder = lb == b;
  const unsigned holders = __ballot_sync(kFullWarp, holder);
  const std::uint32_t rest = __reduce_max_sync(kFullWarp, holder ? ls : lb);
  s = __popc(holders) > 1 ? b : rest;
}

// Threshold pair of a warp from one value per lane (x: the lane's best order key, 0 = none):
// (v, c) with c = the number of lanes whose x >= v, v the largest value with c >= kprime (or the
// smallest nonzero x when fewer lanes have one; (0, 0) when none). So the warp holds at least c
// experts with order key >= v. One redux + ballot per distinct value, at most kprime of them.
__device__ __forceinline__ uint2 warp_kth(std::uint32_t x, int kprime) {
  std::uint32_t v = 0;
  unsigned c = 0;
  for (;;) {
    const std::uint32_t m = __reduce_max_sync(kFullWarp, x);
    if (m == 0u) break;
    v = m;
    c += static_cast<unsigned>(__popc(__ballot_sync(kFullWarp, x == m)));
    if (c >= static_cast<unsigned>(kprime)) break;
    x = x == m ? 0u : x;
  }
  return make_uint2(v, c);
}

// The kept groups as a bit mask (bit g = group g): lane g < num_groups holds candidate(score
// order key, g), the other lanes 0. A group is kept when fewer than `keep` groups beat it (exact:
// candidates are distinct), which is the set the CPU's `keep` rounds of argmax pick.
__device__ __forceinline__ unsigned keep_groups(std::uint64_t mine, int num_groups, int keep) {
  int beaten_by = 0;
#pragma unroll 4
  for (int h = 0; h < num_groups; ++h) {
    beaten_by += __shfl_sync(kFullWarp, mine, h) > mine ? 1 : 0;
  }
  return __ballot_sync(kFullWarp, mine != 0u && beaten_by < keep);
}

// Lane g < num_groups: candidate(group score order key, g) of group g, from the warps' top two
// (aligned groups) or from its own pass over the group's order keys; other lanes 0.
__device__ __forceinline__ std::uint64_t group_candidate(const RowBlockShared& sh,
                                                         const std::uint32_t* ord,
                                                         const RoutingParams& p,
                                                         const RowBlockPlan& plan) {
  const int g = lane_id();
  if (g >= p.num_groups) return 0u;
  std::uint32_t b = 0, s = 0;
  if (plan.aligned_groups) {
    for (int u = g * plan.warps_per_group; u < (g + 1) * plan.warps_per_group; ++u) {
      detail::top2_insert(b, s, sh.warp_top2[u][0]);
      detail::top2_insert(b, s, sh.warp_top2[u][1]);
    }
  } else {
    for (int e = g * plan.group_size; e < (g + 1) * plan.group_size; ++e) {
      detail::top2_insert(b, s, ord[e]);
    }
  }
  return detail::candidate(detail::order_key(detail::group_score_value(p.group_score, b, s)), g);
}

// Threshold tau of the row from the warps' (v, c) pairs (warps whose bit in `live` is clear count
// as (0, 0)): order the pairs by v (ties: lower warp first) and take the v at which the running
// sum of c reaches K. At least K selectable experts then have an order key >= tau, so the K best
// do. 1 (every selectable expert) when all warps together hold fewer than K.
__device__ __forceinline__ std::uint32_t row_threshold(const uint2* kth, int warps, unsigned live,
                                                       int K) {
  const int lane = lane_id();
  uint2 mine = make_uint2(0u, 0u);
  if (lane < warps && ((live >> lane) & 1u)) mine = kth[lane];
  unsigned before = 0;
#pragma unroll 4
  for (int u = 0; u < warps; ++u) {
    const uint2 o = kth[u];
    const bool first = o.x > mine.x || (o.x == mine.x && u < lane);
    before += first && ((live >> u) & 1u) ? o.y : 0u;
  }
  const unsigned k = static_cast<unsigned>(K);
  const unsigned hit = __ballot_sync(kFullWarp, mine.y > 0u && before < k && before + mine.y >= k);
  const std::uint32_t tau = __shfl_sync(kFullWarp, mine.x, hit ? __ffs(hit) - 1 : 0);
  return hit ? tau : 1u;
}

// Whether expert e (< E) lies in a dropped group (kept: bit g = group g kept).
__device__ __forceinline__ bool in_dropped_group(int e, unsigned kept, const RowBlockPlan& plan) {
  return !((kept >> div_by_mul(e, plan.group_mul)) & 1u);
}

// Warp 0, groups that are not whole warps: clears the dropped groups' order keys in shared memory
// and returns the lane's best remaining key (lane l owns experts l, l + 32, ...).
__device__ __forceinline__ std::uint32_t drop_groups_lane_best(std::uint32_t* ord, int E,
                                                               unsigned kept,
                                                               const RowBlockPlan& plan) {
  std::uint32_t best = 0;
  for (int e = lane_id(); e < E; e += 32) {
    if (in_dropped_group(e, kept, plan)) {
      ord[e] = 0u;
    } else {
      best = ord[e] > best ? ord[e] : best;
    }
  }
  return best;
}

// Warp 0: appends the experts with order key >= tau (tau >= 1) to sh.cand in expert order, up to
// the capacity, and returns how many there are (possibly more than the capacity). With aligned
// groups the dropped groups' keys are cleared on the way (the exact fallback reads them).
__device__ __forceinline__ int collect_candidates(RowBlockShared& sh, std::uint32_t* ord, int E,
                                                  std::uint32_t tau, bool clear_dropped,
                                                  unsigned kept, const RowBlockPlan& plan) {
  const int lane = lane_id();
  const unsigned below = lanes_below();
  int n = 0;
  for (int base = 0; base < E; base += 32) {
    const int e = base + lane;
    std::uint32_t o = e < E ? ord[e] : 0u;
    if (clear_dropped && o != 0u && in_dropped_group(e, kept, plan)) {
      o = 0u;
      ord[e] = 0u;
    }
    const unsigned hits = __ballot_sync(kFullWarp, o >= tau);
    const int pos = n + __popc(hits & below);
    if (o >= tau && pos < kRowBlockCandidates) sh.cand[pos] = detail::candidate(o, e);
    n += __popc(hits);
  }
  __syncwarp();
  return n;
}

// Warp 0: the exact rank of each of the n candidates (K <= n <= capacity) = how many candidates
// beat it; the one of rank k < K goes to slot k.
__device__ __forceinline__ void rank_candidates(RowBlockShared& sh, int n, int K) {
  const int lane = lane_id();
  const std::uint64_t c0 = lane < n ? sh.cand[lane] : 0u;
  const std::uint64_t c1 = lane + 32 < n ? sh.cand[lane + 32] : 0u;
  int r0 = 0, r1 = 0;
  if (n <= 32) {
#pragma unroll 4
    for (int i = 0; i < n; ++i) r0 += sh.cand[i] > c0 ? 1 : 0;
  } else {
#pragma unroll 4
    for (int i = 0; i < n; ++i) {
      const std::uint64_t o = sh.cand[i];
      r0 += o > c0 ? 1 : 0;
      r1 += o > c1 ? 1 : 0;
    }
  }
  if (lane < n && r0 < K) sh.slot[r0] = c0;
  if (lane + 32 < n && r1 < K) sh.slot[r1] = c1;
  __syncwarp();
}

// Warp 0, the exact fallback: K rounds of argmax over ord[0..E) (dropped groups already 0).
// Lane l owns experts l, l + 32, ...; only the round's winner rescans its experts.
__device__ __forceinline__ void select_exact(RowBlockShared& sh, std::uint32_t* ord, int E, int K) {
  const int lane = lane_id();
  auto lane_best = [&]() {
    std::uint64_t best = 0;
    for (int e = lane; e < E; e += 32) {
      const std::uint32_t o = ord[e];
      const std::uint64_t c = o != 0u ? detail::candidate(o, e) : 0u;
      best = c > best ? c : best;
    }
    return best;
  };
  std::uint64_t best = lane_best();
  for (int k = 0; k < K; ++k) {
    const std::uint32_t bo = detail::candidate_order(best);
    const std::uint32_t m = __reduce_max_sync(kFullWarp, bo);
    const unsigned winner = __reduce_min_sync(
        kFullWarp, bo == m && best != 0u ? static_cast<unsigned>(detail::candidate_expert(best))
                                         : 0xffffffffu);
    if (winner >= static_cast<unsigned>(E)) break;  // unreachable: routing_check keeps K <= E
    if (lane == 0) sh.slot[k] = detail::candidate(m, static_cast<int>(winner));
    if (static_cast<int>(winner & 31u) == lane) {
      ord[winner] = 0u;
      best = lane_best();
    }
  }
  __syncwarp();
}

// Two consecutive 64-bit words of shared memory (p 16-byte aligned) in one 16-byte load.
__device__ __forceinline__ void load_pair(const std::uint64_t* p, std::uint64_t& a,
                                          std::uint64_t& b) {
#if defined(__CUDA_ARCH__)
  const ulonglong2 v = *reinterpret_cast<const ulonglong2*>(p);
  a = v.x;
  b = v.y;
#else
  a = p[0];  // host builds (the SIMT emulator)
  b = p[1];
#endif
}

// Sum of kN (a power of two) 0/1 counts as a tree: log2(kN) dependent adds instead of a chain.
template <int kN>
__device__ __forceinline__ int tree_count(int (&t)[kN]) {
#pragma unroll
  for (int s = 1; s < kN; s *= 2) {
#pragma unroll
    for (int q = 0; q + s < kN; q += 2 * s) t[q] += t[q + s];
  }
  return t[0];
}

// Ranked warp lists (one expert per thread, plan.lists), before barrier A: lane `lane` of warp
// `warp` holds order key o (0: outside the row) of expert e. Its rank in the warp is the number
// of the warp's experts that beat (o, e): higher order key, or equal with a lower index. Counting
// only the higher keys gives the rank wherever the warp has no ties among its selectable keys,
// which the sum of those counts tells (distinct ranks 0..n-1 sum to n(n-1)/2, a tie lowers the
// sum); with ties the equal keys below the lane are counted too. The lanes of rank < list_keep
// write their candidate to list[warp][rank], the rest of the list_width entries are 0. `ord` is
// the block's order keys in shared memory.
__device__ __forceinline__ void warp_list(RowBlockShared& sh, const std::uint32_t* ord, int warp,
                                          std::uint32_t o, int e, const RowBlockPlan& plan,
                                          bool grouped, GroupScore gs) {
  const int lane = lane_id();
  __syncwarp();  // the warp's order keys are in shared memory
  const uint4* w4 = reinterpret_cast<const uint4*>(ord + warp * 32);
  int beats[32];
#pragma unroll
  for (int q = 0; q < 8; ++q) {
    const uint4 v = w4[q];
    beats[4 * q] = v.x > o ? 1 : 0;
    beats[4 * q + 1] = v.y > o ? 1 : 0;
    beats[4 * q + 2] = v.z > o ? 1 : 0;
    beats[4 * q + 3] = v.w > o ? 1 : 0;
  }
  int rank = tree_count<32>(beats);
  const bool valid = o != 0u;
  const int n = __popc(__ballot_sync(kFullWarp, valid));
  const unsigned sum = __reduce_add_sync(kFullWarp, valid ? static_cast<unsigned>(rank) : 0u);
  if (sum != static_cast<unsigned>(n * (n - 1) / 2)) {  // ties (warp-uniform)
#pragma unroll
    for (int q = 0; q < 8; ++q) {
      const uint4 v = w4[q];
      rank += v.x == o && 4 * q < lane ? 1 : 0;
      rank += v.y == o && 4 * q + 1 < lane ? 1 : 0;
      rank += v.z == o && 4 * q + 2 < lane ? 1 : 0;
      rank += v.w == o && 4 * q + 3 < lane ? 1 : 0;
    }
  }
  const int keep = n < plan.list_keep ? n : plan.list_keep;
  if (valid && rank < plan.list_keep) sh.list[warp][rank] = detail::candidate(o, e);
  if (lane >= keep && lane < (1 << plan.list_log2)) sh.list[warp][lane] = 0u;
  if (grouped) {
    // The group candidate (group score order key, group) from the group's top two order keys
    // (duplicates kept, as top2_insert), written by the lane of rank 1 (of rank 0 where only one
    // expert is selectable, lane 0 where none is): group_candidate's value.
    const std::uint32_t best = __reduce_max_sync(kFullWarp, o);
    const bool writer = n == 0 ? lane == 0 : valid && rank == (n >= 2 ? 1 : 0);
    if (writer) {
      const std::uint32_t second = n >= 2 ? o : 0u;
      sh.gcand[warp] =
          detail::candidate(detail::order_key(detail::group_score_value(gs, best, second)), warp);
    }
  }
}

// Lists, after barrier A (and C), every warp: the live warps (bit w: warp w's experts are
// selectable; with groups, warp w is group w and live when fewer than topk_groups groups beat it,
// the set the CPU's rounds of argmax keep). The K best of the live warps are among their lists.
__device__ __forceinline__ unsigned live_warps(const RowBlockShared& sh, int warps, bool grouped,
                                               int keep) {
  const unsigned all = warps < 32 ? (1u << warps) - 1u : kFullWarp;
  if (!grouped) return all;
  const int g = lane_id();
  const std::uint64_t mine = g < warps ? sh.gcand[g] : 0u;
  // Every entry at once (no loop exit between the loads); those from `warps` on count nothing.
  std::uint64_t other[kRowBlockMaxWarps];
#pragma unroll
  for (int h = 0; h < kRowBlockMaxWarps; h += 2) load_pair(&sh.gcand[h], other[h], other[h + 1]);
  int beats[kRowBlockMaxWarps];
#pragma unroll
  for (int h = 0; h < kRowBlockMaxWarps; ++h) beats[h] = h < warps && other[h] > mine ? 1 : 0;
  return __ballot_sync(kFullWarp, g < warps && tree_count<kRowBlockMaxWarps>(beats) < keep);
}

// Entries q0 .. q0 + kN of list `w`, and how many of them beat candidate c.
template <int kN>
__device__ __forceinline__ void load_list_block(const RowBlockShared& sh, int w, int q0,
                                                std::uint64_t (&v)[kN]) {
#pragma unroll
  for (int q = 0; q < kN; q += 2) load_pair(&sh.list[w][q0 + q], v[q], v[q + 1]);
}
template <int kN>
__device__ __forceinline__ int count_beats(const std::uint64_t (&v)[kN], std::uint64_t c) {
  int beats[kN];
#pragma unroll
  for (int q = 0; q < kN; ++q) beats[q] = v[q] > c ? 1 : 0;
  return tree_count<kN>(beats);
}

// The first list of `rest` (a set of warps; 0 when empty: list 0, counted as nothing).
__device__ __forceinline__ int first_list(unsigned rest) {
  return rest != 0u ? __ffs(static_cast<int>(rest)) - 1 : 0;
}

// Lists, every live warp: the exact rank of each entry of its own list among all live lists'
// entries = how many of them beat it (their zero entries beat nothing). Lane l compares list
// position l % width against the live lists of order l / width, l / width + 32 / width, ...
// (`rest`: the lane's live lists from its current one on); a butterfly adds the counts. The next
// live list's entries are loaded before the current one's are counted (widths <= 8). The entry
// of rank k < K goes to sh.slot[k] (its score to sh.slot_w[k] where `score` is given). The
// candidates are distinct, so the K slots are written exactly once. kLog2 = plan.list_log2.
template <int kLog2>
__device__ __forceinline__ void rank_own_list(RowBlockShared& sh, int warp, unsigned live, int K,
                                              const float* score) {
  constexpr int kWidth = 1 << kLog2, kChunks = 32 / kWidth;
  constexpr int kBlock = kWidth < 8 ? kWidth : 8;  // entries held in registers at once
  const int lane = lane_id();
  const int p = lane & (kWidth - 1);
  const std::uint64_t c = sh.list[warp][p];
  // The candidate's score (zero entries have none), read now so that the load overlaps the
  // ranking.
  const float c_score = score != nullptr && c != 0u ? score[detail::candidate_expert(c)] : 0.0f;
  unsigned rest = live;
#pragma unroll
  for (int i = 0; i + 1 < kChunks; ++i) rest = i < (lane >> kLog2) ? rest & (rest - 1u) : rest;
  const int lists = __popc(live);
  int beaten_by = 0;
  std::uint64_t v[kBlock];
  load_list_block<kBlock>(sh, first_list(rest), 0, v);
#pragma unroll
  for (int base = 0; base < kRowBlockMaxWarps; base += kChunks) {
    unsigned next = rest;
#pragma unroll
    for (int i = 0; i < kChunks; ++i) next &= next - 1u;
    std::uint64_t nv[kBlock];
    if constexpr (kBlock == kWidth) {
      if (base + kChunks < kRowBlockMaxWarps) {
        load_list_block<kBlock>(sh, first_list(next), 0, nv);  // before the loop exit below
      }
    }
    int n = count_beats<kBlock>(v, c);
#pragma unroll
    for (int q0 = kBlock; q0 < kWidth; q0 += kBlock) {
      std::uint64_t more[kBlock];
      load_list_block<kBlock>(sh, first_list(rest), q0, more);
      n += count_beats<kBlock>(more, c);
    }
    beaten_by += rest != 0u ? n : 0;
    if (base + kChunks >= lists || base + kChunks >= kRowBlockMaxWarps) break;  // uniform
    rest = next;
    if constexpr (kBlock == kWidth) {
#pragma unroll
      for (int q = 0; q < kBlock; ++q) v[q] = nv[q];
    } else {
      load_list_block<kBlock>(sh, first_list(rest), 0, v);
    }
  }
#pragma unroll
  for (int off = kWidth; off < 32; off *= 2) {
    beaten_by += __shfl_xor_sync(kFullWarp, beaten_by, off);
  }
  if (lane < kWidth && c != 0u && beaten_by < K) {
    sh.slot[beaten_by] = c;
    if (score != nullptr) sh.slot_w[beaten_by] = c_score;
  }
}

// Warp-wide sum of one value per lane as the pairwise tree over the first `width` lanes (a power
// of two; the lanes from `width` on hold zero subtrees, which the tree's upper levels would add
// to non-negative values without changing them). Returns lane 0's total on every lane.
__device__ __forceinline__ float warp_tree_sum(float v, int width) {
  for (int off = 1; off < width; off *= 2) v = v + __shfl_xor_sync(kFullWarp, v, off);
  return __shfl_sync(kFullWarp, v, 0);
}

// The columns of a row, lane k of warp 0 column k: routed columns (weight w, expert `expert`)
// below K, the fused shared experts' (the routed sum) from K to cols.
__device__ __forceinline__ void store_row_columns(const detail::RoutingKernelParams& kp,
                                                  bool ids_int64, std::int64_t row, int lane,
                                                  float w, int expert, float routed_sum) {
  using namespace detail;
  const RoutingParams& p = kp.p;
  const int K = p.top_k, cols = K + p.num_shared_experts;
  const float rsf = p.routed_scaling_factor;
  // Both kinds of column are computed on every lane and selected, so that the warp runs one
  // store sequence instead of two branches one after the other.
  const float shared_w =
      p.num_shared_experts > 0 && !p.apply_rsf_on_output ? div_f(routed_sum, rsf) : routed_sum;
  const bool routed = lane < K;
  std::int32_t id = shared_expert_id(kp, lane - K);
  if (routed) id = map_routed_id(kp, expert, row, lane);  // may read tables: routed lanes only
  if (lane < cols) {
    kp.weights[row * cols + lane] = routed ? (p.apply_rsf_on_output ? w * rsf : w) : shared_w;
    store_routing_id(kp, ids_int64, row * cols + lane, id);
  }
}

// Lists with sigmoid-like scores and K <= kLocalSlots (DeepSeek-V3, Kimi K2), warp 0 after
// barrier B: the finish as straight-line code (one warp runs it alone, so every instruction's
// latency shows). Every lane reads the K slot scores in two 16-byte loads and sums them as the
// slot tree in registers: the leaves from K on are 0, and x + 0 == x for these non-negative
// weights, so this is the tree of any width >= K. The routed sum for the shared experts is a
// butterfly over 16 lanes (32 where K + S > 16), which leaves the total on every lane that
// stores it, without a broadcast. The same bits as the general finish below.
inline constexpr int kLocalSlots = 8;

__device__ __forceinline__ float slot_tree8(const float (&v)[kLocalSlots]) {
  return ((v[0] + v[1]) + (v[2] + v[3])) + ((v[4] + v[5]) + (v[6] + v[7]));
}

template <typename Mark>
__device__ __forceinline__ void finish_sigmoid_lists(const detail::RoutingKernelParams& kp,
                                                     const RowBlockShared& sh, std::int64_t row,
                                                     bool any_finite, bool ids_int64,
                                                     const Mark& mark) {
  using namespace detail;
  const RoutingParams& p = kp.p;
  const int lane = lane_id(), K = p.top_k;
  float v[kLocalSlots];
  float w = 0.0f;
  int expert = lane;  // rows with no finite logit
  if (any_finite) {
#if defined(__CUDA_ARCH__)
    const float4 a = reinterpret_cast<const float4*>(sh.slot_w)[0];
    const float4 b = reinterpret_cast<const float4*>(sh.slot_w)[1];
    v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
#else
    for (int i = 0; i < kLocalSlots; ++i) v[i] = sh.slot_w[i];  // host builds (the emulator)
#endif
#pragma unroll
    for (int i = 0; i < kLocalSlots; ++i) v[i] = i < K ? nan_to_zero(v[i]) : 0.0f;
    if (lane < K) {
      w = nan_to_zero(sh.slot_w[lane]);
      expert = candidate_expert(sh.slot[lane]);
    }
  } else {
#pragma unroll
    for (int i = 0; i < kLocalSlots; ++i) v[i] = 0.0f;
  }
  if (p.renormalize) {
    float sum = slot_tree8(v);
    if (sum == pos_inf()) {
#pragma unroll
      for (int i = 0; i < kLocalSlots; ++i) v[i] = v[i] == pos_inf() ? 1.0f : 0.0f;
      w = w == pos_inf() ? 1.0f : 0.0f;
      sum = slot_tree8(v);
    }
    if (sum > 0.0f) w = div_f(w, sum);
  }
  mark(6);
  float routed_sum = 0.0f;
  if (p.num_shared_experts > 0) {
    routed_sum = w;  // 0 on lanes K..
#pragma unroll
    for (int off = 1; off < 16; off *= 2) {
      routed_sum = routed_sum + __shfl_xor_sync(kFullWarp, routed_sum, off);
    }
    if (K + p.num_shared_experts > 16) {
      routed_sum = routed_sum + __shfl_xor_sync(kFullWarp, routed_sum, 16);
    }
  }
  store_row_columns(kp, ids_int64, row, lane, w, expert, routed_sum);
}

// kTrace (diagnostics, tests/routing_trace_test.cu only): thread 0 of row 0 (it runs every phase)
// writes clock64() at each phase boundary into trace[0..kRowBlockTracePoints).
template <typename T, int kVals, bool kTrace = false>
__global__ void __launch_bounds__(kRowBlockMaxThreads, 2)
    routing_row_block_kernel(const detail::RoutingKernelParams kp, const RowBlockPlan plan,
                             const bool vec_ok, const bool ids_int64, long long* trace = nullptr) {
  pdl_begin_warm(routing_param_lines(kp) ^
                 static_cast<std::uint64_t>(plan.group_mul));  // first: kernels/pdl.cuh
  using namespace detail;
  __shared__ RowBlockShared sh;
  extern __shared__ __align__(16) std::uint32_t row_block_leaves[];  // ord, then score
  const RoutingParams& p = kp.p;
  const std::int64_t row = blockIdx.x;
  const int tid = static_cast<int>(threadIdx.x), warp = tid >> 5, lane = tid & 31;
  const int warps = static_cast<int>(blockDim.x) >> 5;
  auto mark = [&](int point) {
    if constexpr (kTrace) {
      if (row == 0 && tid == 0) trace[point] = clock64();
    }
  };
  mark(0);
  const int E = p.num_experts, K = p.top_k, S = p.num_shared_experts, cols = K + S;
  const ScoreFunc f = p.score_func;
  const bool grouped = p.group_score != GroupScore::kNone;
  const int first = tid * kVals;
  std::uint32_t* const ord = row_block_leaves;
  float* const score = reinterpret_cast<float*>(row_block_leaves + blockDim.x * kVals);

  // 1. Loads (the padding count too, so that its latency overlaps the logits'), keys.
  float raw[kVals], bias[kVals];
  load_chunk<T, kVals>(static_cast<const T*>(kp.logits) + row * kp.row_stride, first, E, vec_ok,
                       raw);
  load_bias<kVals>(kp.bias, first, E, bias);
  const std::int64_t non_padded = routing_non_padded_rows(kp);
  mark(1);
  bool finite = false;
#pragma unroll
  for (int j = 0; j < kVals; ++j) finite = finite || (first + j < E && is_finite(raw[j]));
  if (p.softcap > 0.0f) {
#pragma unroll
    for (int j = 0; j < kVals; ++j) raw[j] = softcapped(raw[j], p.softcap);
  }
  float key[kVals];
  if (f == ScoreFunc::kSigmoid || f == ScoreFunc::kSqrtSoftplus) {
#pragma unroll
    for (int j = 0; j < kVals; ++j) {
      const float s = f == ScoreFunc::kSigmoid ? sigmoid_f(raw[j]) : exact_sqrt(softplus_f(raw[j]));
      score[first + j] = s;
      key[j] = s + bias[j];
    }
  } else {
#pragma unroll
    for (int j = 0; j < kVals; ++j) key[j] = raw[j] + bias[j];
  }
  std::uint32_t lane_best = 0, lane_second = 0;
#pragma unroll
  for (int j = 0; j < kVals; ++j) {
    const std::uint32_t o = first + j < E ? order_key(key[j]) : 0u;
    ord[first + j] = o;
    top2_insert(lane_best, lane_second, o);
  }
  mark(2);

  // Per-warp partials for barrier A.
  if (f == ScoreFunc::kSoftmax) {
    const std::uint32_t m = __reduce_max_sync(kFullWarp, lane_best);
    if (lane == 0) sh.warp_max[warp] = m;
  }
  if (kVals == 1 && plan.lists) {
    warp_list(sh, ord, warp, lane_best, first, plan, grouped, p.group_score);
  } else if (plan.aligned_groups) {
    std::uint32_t b, s;
    warp_top2(lane_best, lane_second, b, s);
    // The warp's top two are its experts' (the threshold pair when kprime <= 2).
    const uint2 kth = plan.kprime > 2 ? warp_kth(lane_best, plan.kprime)
                      : s != 0u       ? make_uint2(s, 2u)
                                      : make_uint2(b, b != 0u ? 1u : 0u);
    if (lane == 0) {
      sh.warp_top2[warp][0] = b;
      sh.warp_top2[warp][1] = s;
      sh.warp_kth[warp] = kth;
    }
  } else if (!grouped) {
    const uint2 kth = warp_kth(lane_best, plan.kprime);
    if (lane == 0) sh.warp_kth[warp] = kth;
  }
  if (row >= non_padded) {  // padding row (uniform over the block)
    if (warp == 0 && lane < cols) {
      kp.weights[row * cols + lane] = 0.0f;
      store_routing_id(kp, ids_int64, row * cols + lane, -1);
    }
    return;
  }
  const bool any_finite = __syncthreads_or(finite) != 0;  // barrier A
  mark(3);

  // 2. Softmax: max, and each warp's subtree of the denominator.
  float max_key = neg_inf();
  if (f == ScoreFunc::kSoftmax) {
    const std::uint32_t m =
        __reduce_max_sync(kFullWarp, lane < warps ? sh.warp_max[lane] : 0u);  // NaN keys: 1
    max_key = m > 1u ? order_key_value(m) : neg_inf();
    float terms[kVals];
#pragma unroll
    for (int j = 0; j < kVals; ++j) terms[j] = first + j < E ? softmax_term(key[j], max_key) : 0.0f;
    float part = local_pairwise_sum<kVals>(terms);
#pragma unroll
    for (int off = 1; off < 32; off *= 2) part = part + __shfl_xor_sync(kFullWarp, part, off);
    if (lane == 0) sh.warp_sum[warp] = part;
    __syncthreads();  // barrier C
  }
  // 3-4, lists: every warp takes the live warps, every live warp ranks its list; barrier B.
  const bool sigmoid_like = f == ScoreFunc::kSigmoid || f == ScoreFunc::kSqrtSoftplus;
  if (kVals == 1 && plan.lists && any_finite) {
    const unsigned live = live_warps(sh, warps, grouped, p.topk_groups);
    if ((live >> warp) & 1u) {
      const float* const sc = sigmoid_like ? score : nullptr;
      switch (plan.list_log2) {
        case 1:
          rank_own_list<1>(sh, warp, live, K, sc);
          break;
        case 2:
          rank_own_list<2>(sh, warp, live, K, sc);
          break;
        case 3:
          rank_own_list<3>(sh, warp, live, K, sc);
          break;
        case 4:
          rank_own_list<4>(sh, warp, live, K, sc);
          break;
        default:
          rank_own_list<5>(sh, warp, live, K, sc);
          break;
      }
    }
    __syncthreads();  // barrier B
    mark(4);
  }
  if (warp != 0) return;
  if (kVals == 1 && plan.lists && sigmoid_like && K <= kLocalSlots) {
    mark(5);
    finish_sigmoid_lists(kp, sh, row, any_finite, ids_int64, mark);
    mark(7);
    return;
  }

  // 3. Warp 0: groups, threshold, candidates.
  int sel_expert = lane;  // the answer for rows with no finite logit
  std::uint32_t sel_ord = 0;
  if (kVals == 1 && plan.lists) {
    if (any_finite && lane < K) {
      const std::uint64_t c = sh.slot[lane];
      sel_ord = candidate_order(c);
      sel_expert = candidate_expert(c);
    }
  } else if (any_finite) {
    unsigned kept = kFullWarp, live = kFullWarp;
    if (grouped) {
      kept = keep_groups(group_candidate(sh, ord, p, plan), p.num_groups, p.topk_groups);
    }
    if (grouped && plan.aligned_groups) {
      live = __ballot_sync(kFullWarp,
                           lane < warps && ((kept >> div_by_mul(lane, plan.warp_group_mul)) & 1u));
    }
    std::uint32_t tau;
    if (grouped && !plan.aligned_groups) {
      __syncwarp();  // the group passes above read keys that the drop below clears
      tau = warp_kth(drop_groups_lane_best(ord, E, kept, plan), K).x;
      tau = tau == 0u ? 1u : tau;
    } else {
      tau = row_threshold(sh.warp_kth, warps, live, K);
    }
    const int n = collect_candidates(sh, ord, E, tau, grouped && plan.aligned_groups, kept, plan);
    mark(4);

    // 4. Selection.
    if (n >= K && n <= kRowBlockCandidates) {
      rank_candidates(sh, n, K);
    } else {
      select_exact(sh, ord, E, K);
    }
    if (lane < K) {
      const std::uint64_t c = sh.slot[lane];
      sel_ord = candidate_order(c);
      sel_expert = candidate_expert(c);
    }
  }
  mark(5);

  // Weights, renormalisation, shared experts, stores: lane k holds output column k.
  const float softmax_sum =
      f == ScoreFunc::kSoftmax
          ? warp_tree_sum(lane < warps ? sh.warp_sum[lane] : 0.0f, next_pow2(warps))
          : 0.0f;
  const float sel_key = order_key_value(sel_ord);
  const float top_key = __shfl_sync(kFullWarp, sel_key, 0);
  const float softmax_top = is_nan(top_key) ? neg_inf() : top_key;
  float w = 0.0f;
  if (lane < K && any_finite) {
    if (sigmoid_like) {
      w = kVals == 1 && plan.lists ? sh.slot_w[lane] : score[sel_expert];
    } else if (f == ScoreFunc::kSoftmax) {
      w = safe_div(softmax_term(sel_key, max_key), softmax_sum);
    } else if (f == ScoreFunc::kTopkThenSoftmax) {
      w = softmax_term(sel_key, softmax_top);  // normalised below
    } else {
      w = sigmoid_f(sel_key);
    }
    w = nan_to_zero(w);
  }
  const int slots_pow2 = plan.slots_pow2;  // next_pow2(K): slot leaves from K on are zero
  if (f == ScoreFunc::kTopkThenSoftmax) {
    const float sum = warp_tree_sum(w, slots_pow2);
    w = safe_div(w, sum);
  }
  if (p.renormalize) {
    float sum = warp_tree_sum(w, slots_pow2);
    if (sum == pos_inf()) {
      w = w == pos_inf() ? 1.0f : 0.0f;
      sum = warp_tree_sum(w, slots_pow2);
    }
    if (sum > 0.0f) w = div_f(w, sum);
  }
  mark(6);
  const float routed_sum = S > 0 ? warp_tree_sum(w, slots_pow2) : 0.0f;
  store_row_columns(kp, ids_int64, row, lane, w, sel_expert, routed_sum);
  mark(7);
}

}  // namespace switchyard::kernels
