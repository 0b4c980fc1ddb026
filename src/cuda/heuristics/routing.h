// Problem -> launch configuration for routing. Pure host code (no CUDA headers), unit-testable.
//
// Three kernels, every layout of which returns the same bits (src/common/routing_row.h), so this
// choice is about speed only and may depend on the number of rows without breaking batch
// invariance:
//  - lane groups (kernels/routing.cuh): `lanes` lanes per row, `vals` experts per lane, lanes x
//    vals = next_pow2(E). Measured on an H100 (bench/results/, --vals sweeps): one lane group of
//    min(32, C) lanes per row is as fast as any other lane-group layout for C >= 64 at every M;
//    for C <= 32 at >= 8192 rows four lanes per row beat eight (Mixtral, 32768 rows: 7.95 vs
//    10.35 us) and one lane per row is much slower (18.5 us: too few blocks, long serial chain).
//  - row blocks (kernels/routing_row_block.cuh): one block of 32 * ceil(E / (32 * vals)) threads
//    per row, `vals` experts per thread (1..16): the latency layout for small batches, where a
//    lane group leaves the GPU idle behind one warp's serial chain (measured: see
//    routing_row_blocks_pay and docs/routing.md);
//  - the row thread (kernels/routing_row_thread.cuh): one thread per row of E <= 32, no
//    cross-lane step at all: the throughput layout for many short rows (routing_row_thread_pays).
//  - the quad kernel (kernels/routing_quad.cuh): 4 lanes per row, a threshold pre-filter and an
//    exact finish over a few candidates; the throughput layout for many rows of 97..384 experts
//    where detail::routing_quad_vals serves the routing (routing_quad_pays).
//  - the staged kernel (kernels/routing_staged.cuh): two threads per row, rows staged in shared
//    memory, the quad kernel's threshold and exact finish; the throughput layout for many sigmoid
//    rows of 128..512 experts where detail::routing_staged_segs serves the routing and the logits
//    rows are 16-byte aligned (routing_staged_pays).
//  - the warp kernel (kernels/routing_warp.cuh): one warp per row of E <= 32, lane e holding
//    expert e, single-instruction warp reductions for the selection: the latency layout for
//    short rows (routing_warp_pays).
//  - the wide warp kernel (kernels/routing_warp_wide.cuh): the warp kernel for rows of 33..512
//    experts, next_pow2(E) / 32 consecutive experts per lane (routing_warp_wide_rows; grouped
//    rows whose groups are not whole runs of lanes score them from shared-memory words,
//    routing_groups_need_words).
//  - the packed kernel (kernels/routing_packed.cuh): 16-bit logits keyed by the logit itself
//    (detail::routing_packed_serves), order key and expert index in one 32-bit word, selection by
//    sorting networks and merges across 4..32 lanes; taken ahead of the row blocks, the wide warp
//    and the quad kernels where it serves (routing_packed_rows, routing_packed_vals).
//  - the LUT kernel (kernels/routing_lut.cuh): bf16 sigmoid rows (detail::routing_lut_serves),
//    exact scores from a table of every bf16 number, the packed kernel's selection on a
//    fixed-point key; persistent blocks (routing_lut_rows).
//
// Layout codes of the test and bench override (detail::route_cuda_layout, bench --vals):
// 0 = the heuristic, v > 0 = lane groups with v experts per lane, -v = row blocks with v experts
// per thread, kRoutingPrefilterCode = lane groups of one warp per row with the approximate
// pre-filter (kernels/routing_prefilter.cuh; the heuristic's choice above kRowBlockMaxRows rows
// where it applies and rows are long: see routing_prefilter_pays), kRoutingRowThreadCode = one
// thread per row (kernels/routing_row_thread.cuh, E <= 32), kRoutingQuadCode = the quad kernel
// (where detail::routing_quad_vals serves the routing), kRoutingStagedCode = the staged kernel
// (where detail::routing_staged_segs serves the routing, 16-byte aligned rows), kRoutingWarpCode =
// the warp kernel (E <= 32), kRoutingWarpWideCode = the wide warp kernel (33 <= E <= 512),
// kRoutingPackedCode..kRoutingPacked32Code = the packed kernel (where it serves the routing),
// kRoutingLutCode = the LUT kernel (where it serves the routing).
#pragma once

#include <cstddef>
#include <cstdint>

#include "../../common/routing_row.h"

namespace switchyard::heuristics {

struct RoutingLaunchConfig {
  bool row_thread;  // the row-thread kernel: `vals` experts and `lanes` output columns per thread
  bool row_block;   // the row-block kernel (else lane groups)
  int lanes;        // lanes per row (lane group width); 0 for row blocks
  bool prefilter;   // lane groups with the approximate pre-filter (32 lanes)
  bool quad;        // the quad kernel: 4 lanes per row, `vals` experts per lane
  bool staged;      // the staged kernel: two threads per row, `vals` segments of 32 experts
  bool warp;        // the warp kernels: one warp per row, `vals` experts per lane (1: lane e
                    // holds expert e, E <= 32; 2..16: the wide warp kernel)
  bool packed;      // the packed kernel: `lanes` lanes per row, `vals` experts per lane
  bool lut;         // the LUT kernel: `lanes` lanes per row, `vals` experts per lane; `blocks`
                    // is the rows' need, the launcher caps it (persistent blocks)
  int vals;         // experts per lane (lane groups: lanes * vals = next_pow2(E)) or per thread
  int threads;      // threads per block
  int rows_per_block;
  std::int64_t blocks;  // grid size (0 when M == 0)
};

inline constexpr int kRoutingThreadsPerBlock = 128;
// Layout code of the lane-group kernel with the approximate pre-filter: 32 lanes per row,
// next_pow2(E) / 32 in 2..16 experts per lane (33 <= E <= 512; 32 per lane spills registers).
inline constexpr int kRoutingPrefilterCode = 64;
// Layout code of the row-thread kernel: one thread per row holding its <= 32 experts (8, 16 or
// 32) and its K + S output columns (2, 8 or 32).
inline constexpr int kRoutingRowThreadCode = 65;
// Layout code of the quad kernel: 4 lanes per row, detail::routing_quad_vals experts per lane.
inline constexpr int kRoutingQuadCode = 66;
// Layout code of the staged kernel: two threads per row, rows staged in shared memory.
inline constexpr int kRoutingStagedCode = 67;
// Layout code of the warp kernel: one warp per row of E <= 32 experts.
inline constexpr int kRoutingWarpCode = 68;
// Layout code of the wide warp kernel: one warp per row of 33..512 experts, next_pow2(E) / 32 per
// lane.
inline constexpr int kRoutingWarpWideCode = 69;
// Layout codes of the packed kernel: 70 with routing_packed_vals experts per lane, 71 / 72 / 73
// with 8 / 16 / 32 (where next_pow2(E) / that is 4..32 lanes per row).
inline constexpr int kRoutingPackedCode = 70;
inline constexpr int kRoutingPacked8Code = 71;
inline constexpr int kRoutingPacked32Code = 73;
// Experts per lane of a packed layout code (0: not one).
inline int routing_packed_code_vals(int code) {
  return code >= kRoutingPacked8Code && code <= kRoutingPacked32Code
             ? 8 << (code - kRoutingPacked8Code)
             : 0;
}
// Whether the packed kernel has a layout of `vals` experts per lane for E.
inline bool routing_packed_vals_valid(int num_experts, int vals) {
  const int lanes = detail::routing_row_capacity(num_experts) / vals;
  return num_experts >= 33 && num_experts <= 512 && lanes >= 4 && lanes <= 32;
}
inline constexpr int kPackedThreadsPerBlock = 128;  // = kernels::kPackedThreads
// Layout code of the LUT kernel (detail::routing_lut_lanes / _vals).
inline constexpr int kRoutingLutCode = 74;
// Threads per block of the LUT kernel (= kernels::lut_threads): 768 up to 8 lanes per row and 32
// experts per lane, else 512. Its launcher starts at most one block per SM.
constexpr int lut_threads_per_block(int lanes, int vals) {
  return lanes >= 16 || vals > 32 ? 512 : 768;
}
inline constexpr int kWarpWideMinExperts = 33;           // = kernels::kWarpWideMinExperts
inline constexpr int kWarpWideMaxExperts = 512;          // = kernels::kWarpWideMaxExperts
inline constexpr int kWarpRoutingMaxExperts = 32;        // = kernels::kWarpRoutingMaxExperts
inline constexpr int kWarpRoutingThreadsPerBlock = 128;  // = kernels::kWarpRoutingThreads
inline constexpr int kStagedThreadsPerBlock = 128;       // = kernels::kStagedThreads
inline constexpr int kStagedRowsPerBlock = 64;           // two threads per row
inline constexpr int kRowThreadMaxExperts = 32;          // = kernels::kRowThreadMaxExperts
inline constexpr int kRoutingMaxVals = 32;
inline constexpr int kSmallRowLanes = 4;  // lanes per row for C <= 32 with many rows
inline constexpr std::int64_t kSmallRowMinRows = 8192;

// Row blocks: up to kRowBlockMaxRows rows (the decode sizes, where one warp's latency chain per
// row is the cost); above, lane groups. Measured crossover on an H100 (bench --vals -8 vs the
// default, us at 1024 / 4096 / 32768 rows): DeepSeek-V3 8.31 / 15.26 / 101.4 vs 7.44 / 16.69 /
// 104.4, Qwen3 6.22 / 9.90 / 58.6 vs 4.27 / 7.55 / 38.6, Kimi K2 7.55 / 20.4 / 137 vs 8.22 /
// 18.9 / 124: no layout wins everywhere above 512 rows, so lane groups stay there. Up to
// kRowBlockWideRows rows, up to 512 threads per row (the shortest chain); above, up to 256, so that
// <= 512 blocks fit in one wave on 132 SMs.
inline constexpr int kRowBlockMaxThreads = 512;  // = kernels::kRowBlockMaxThreads
inline constexpr std::int64_t kRowBlockMaxRows = 512;
inline constexpr std::int64_t kRowBlockWideRows = 128;

// A layout with an instance: vals a power of two in 1..32, lanes = C / vals in 1..32, and not
// (vals >= 16 with lanes <= 2): those hold 16-32 values and 16-32 output slots per thread and
// spill registers.
inline bool routing_layout_valid(int lanes, int vals) {
  return vals >= 1 && vals <= kRoutingMaxVals && (vals & (vals - 1)) == 0 && lanes >= 1 &&
         lanes <= 32 && (lanes & (lanes - 1)) == 0 && !(vals >= 16 && lanes <= 2);
}
inline bool routing_vals_valid(int num_experts, int vals) {
  const int capacity = detail::routing_row_capacity(num_experts);
  return vals >= 1 && vals <= capacity && capacity % vals == 0 &&
         routing_layout_valid(capacity / vals, vals);
}

// Threads of a row block: whole warps covering E experts at `vals` per thread.
inline int routing_row_block_threads(int num_experts, int vals) {
  const int per_warp = 32 * vals;
  return 32 * ((num_experts + per_warp - 1) / per_warp);
}
// A row-block layout with an instance: vals 1, 2, 4, 8 or 16 (8 and 16: one or two warps per row
// for E <= 512, an experiment for large M; the heuristic uses 1..4) and at most
// kRowBlockMaxThreads threads.
inline bool routing_row_block_valid(int num_experts, int vals) {
  return vals >= 1 && vals <= 16 && (vals & (vals - 1)) == 0 && num_experts >= 1 &&
         routing_row_block_threads(num_experts, vals) <= kRowBlockMaxThreads;
}
// A layout code (see the top of this file) that has an instance for E.
inline bool routing_layout_code_valid(int num_experts, int code) {
  if (code == 0) return true;
  if (code == kRoutingRowThreadCode) return num_experts <= kRowThreadMaxExperts;
  if (code == kRoutingWarpCode) return num_experts <= kWarpRoutingMaxExperts;
  if (code == kRoutingWarpWideCode) {
    return num_experts >= kWarpWideMinExperts && num_experts <= kWarpWideMaxExperts;
  }
  if (code == kRoutingQuadCode) return num_experts >= 65 && num_experts <= 384;  // + quad_vals > 0
  if (code == kRoutingPackedCode) return num_experts >= 33 && num_experts <= 512;  // + serves
  if (routing_packed_code_vals(code) > 0) {
    return routing_packed_vals_valid(num_experts, routing_packed_code_vals(code));  // + serves
  }
  if (code == kRoutingLutCode) return num_experts >= 33 && num_experts <= 512;      // + serves
  if (code == kRoutingStagedCode) return num_experts >= 128 && num_experts <= 512;  // + staged_segs
  if (code == kRoutingPrefilterCode) {
    const int capacity = detail::routing_row_capacity(num_experts);
    return capacity >= 64 && capacity <= 512;
  }
  return code > 0 ? routing_vals_valid(num_experts, code)
                  : routing_row_block_valid(num_experts, -code);
}

// layout_code: 0 for the heuristic, else a code for which routing_layout_code_valid() holds.
// Whether row blocks beat lane groups at small M for a routing of this kind. Measured on an H100
// (bench routing, tokens 1 / 512, lane groups -> row blocks, us): DeepSeek-V3 6.67 -> 4.18 /
// 6.97 -> 4.81, Kimi K2 7.14 -> 4.22, DeepSeek-V2 9.60 -> 4.34, Qwen3 (K 8) 3.90 -> 3.80, but
// gpt-oss (K 4) 2.63 -> 3.03 and Llama 4 (K 1) 2.13 -> 2.80: a row block has ~4,500 cycles of
// fixed phases, which only pays where a lane group's row is long (many argmax rounds or a group
// stage). Short rows of E <= 32 (Mixtral, K 2: one warp either way) were 0.17-0.27 us faster as
// a row block on both cards: H100 3.33 -> 3.16 (1 token); H200 (session 8, same process) 1 / 32 /
// 512 tokens 3.23 / 3.49 / 3.68 -> 3.06 / 3.21 / 3.47 us. (Since session 15 the warp kernel takes
// those rows first: routing_warp_pays.)
inline bool routing_row_blocks_pay(int num_experts, int top_k, bool grouped) {
  return grouped || top_k >= 6 || num_experts <= 32;
}

// Ranked warp lists in a row block of one expert per thread (kernels/routing_row_block.cuh,
// RowBlockPlan::lists): where groups do not apply or every group is 32 experts (one warp), and
// up to kRowBlockListsMaxRows rows. Up to there the heuristic gives such rows one expert per
// thread (up to 512 threads). The lists add a barrier and shared-memory traffic per row, so with
// many rows the threshold path's fewer instructions catch up. Measured on an H200 (bench routing,
// us over the PDL empty launch, same process, median of three): session 20 put DeepSeek-V3's edge
// between 256 and 288 rows (then a product rule, rows x threads <= 256 x 256, left Kimi K2 from
// 171 rows on two experts per thread). Session 21 (call 3, the straight-line list phase and
// finish), heuristic -> lists forced: DeepSeek-V3 (256 threads) 288 / 384 / 512 rows 3.86 / 3.94
// / 3.93 -> 3.88 / 3.90 / 3.97 (even); Kimi K2 (384 threads) 192 / 256 rows 3.84 / 3.83 (two
// experts per thread) -> 3.03 / 3.07, but 288 / 512 rows 3.94 / 4.12 -> 5.63 / 5.87 (past 264
// blocks, two waves of two 384-thread blocks per SM). Lists at or below 256 rows:
// DeepSeek-V3 1 / 128 / 256 rows 3.39 / 3.73 / 3.71 (threshold) -> 2.07 / 2.32 / 2.65.
inline constexpr std::int64_t kRowBlockListsMaxRows = 256;
using detail::routing_row_block_lists_serve;
inline bool routing_row_block_lists_pay(std::int64_t num_tokens) {
  return num_tokens <= kRowBlockListsMaxRows;
}

// Whether the pre-filter serves a routing: detail::routing_prefilter_applies (routing_row.h),
// the rule the kernel applies too.
using detail::routing_prefilter_applies;
// Above kRowBlockMaxRows rows, the pre-filter layout replaces plain lane groups where it applies
// and rows are long (the row-block criterion: grouped, or K >= 6). Measured on an H200 (bench
// routing, us at 4096 / 32768 rows, lane groups -> pre-filter): DeepSeek-V3 16.56 -> 12.45 /
// 104.3 -> 63.8, Kimi K2 18.79 -> 14.99 / 124.3 -> 91.4; at 1 / 512 rows it was slower than the
// row blocks (DeepSeek-V3 4.08 -> 5.16 / 4.77 -> 5.44), which keep those sizes.
inline bool routing_prefilter_pays(bool applies, bool row_blocks_pay, std::int64_t num_tokens) {
  return applies && row_blocks_pay && num_tokens > kRowBlockMaxRows;
}

// Whether grouped rows of E experts in num_groups groups, vals experts per lane, take
// drop_groups' general path (kernels/routing.cuh): a group is not a power-of-two run of whole
// lanes (DeepSeek-V2: groups of 20 over 8 experts per lane). There each row gets lanes x vals
// words of shared memory (at most kRoutingGroupWordsMaxBytes per block in all), so that lane g
// scores group g from them instead of one butterfly over the row's lanes per group.
inline constexpr std::size_t kRoutingGroupWordsMaxBytes = 48 << 10;
inline bool routing_groups_need_words(int num_experts, int num_groups, int vals) {
  if (num_groups < 1 || vals < 1 || num_experts % num_groups != 0) return false;
  const int group_size = num_experts / num_groups;
  const int lanes_per_group = group_size / vals;
  return !(group_size % vals == 0 && (lanes_per_group & (lanes_per_group - 1)) == 0);
}

// The row-thread kernel's instance for E experts and `columns` = K + S outputs.
inline int row_thread_experts(int num_experts) {
  return num_experts <= 8 ? 8 : (num_experts <= 16 ? 16 : 32);
}
inline int row_thread_columns(int columns) {
  return columns <= 2 ? 2 : (columns <= 8 ? 8 : 32);
}

// Whether the heuristic takes the row thread: rows of E <= 32 without groups and with K + S <= 8
// (the 2- and 8-column instances), from kRowThreadMinRows rows. Measured on an H200 (session 8,
// bench routing, Mixtral, same process, us, row thread vs the heuristic before it): 8192 / 16384 /
// 32768 rows 4.00 / 4.07 / 4.51 vs 5.05 / 5.31 / 7.74 (lane groups of 4); 4096 / 6144 rows 3.98 /
// 3.99 vs 3.85 / 3.94 (lane groups of 8); 1 / 32 / 512 rows 3.79 / 3.79 / 3.89 vs 3.03 / 3.17 /
// 3.45 (row blocks): one thread's serial chain is the longest at small M.
inline constexpr std::int64_t kRowThreadMinRows = 8192;
inline bool routing_row_thread_pays(int num_experts, int columns, bool grouped,
                                    std::int64_t num_tokens) {
  return num_experts <= kRowThreadMaxExperts && columns >= 1 && columns <= 8 && !grouped &&
         num_tokens >= kRowThreadMinRows;
}

// The quad kernel wherever it serves the routing (quad_vals > 0) from kQuadMinRows rows, from
// kQuadMinRowsWide for rows of more than 256 experts. Below, a quad's serial chain (one lane does
// a quarter of the row, a warp of 8 rows runs ~3,000 instructions) is longer than a lane group's,
// and too few blocks are in flight to hide it. Measured on an H200 (session 11, bench routing, us,
// lane groups / pre-filter (call 5) -> quad (call 8); 4096 / 8192 / 32768 rows): DeepSeek-V3
// 12.7 / 20.5 / 66.0 -> 15.6 / 18.1 / 36.5; Kimi K2 15.2 / 27.4 / 93.0 -> 11.0 / 14.0 / 42.0;
// Qwen3 7.4 / 11.9 / 38.6 -> 10.2 / 11.1 / 23.4; gpt-oss 4.8 / 7.4 / 22.0 -> 5.6 / 6.2 / 12.6;
// Llama 4 3.6 / 5.8 / 16.2 -> 4.3 / 5.0 / 9.9 (docs/routing.md, "Quad kernel").
inline constexpr std::int64_t kQuadMinRows = 8192;
inline constexpr std::int64_t kQuadMinRowsWide = 4096;
inline bool routing_quad_pays(int quad_vals, std::int64_t num_tokens) {
  return quad_vals > 0 && num_tokens >= (quad_vals > 64 ? kQuadMinRowsWide : kQuadMinRows);
}

// The staged kernel wherever it serves the routing (staged_segs > 0: the rule and aligned rows)
// from kStagedMinRows rows. Below, its warps (16 rows each) are too few to hide a row's serial
// chain. Measured on an H200 (session 12, calls 3 and 4, bench routing, quad -> staged in one
// process, us; 4096 / 8192 / 16384 / 32768 rows): DeepSeek-V3 16.3 / 17.8 / 27.2 / 36.6 -> 19.1 /
// 19.8 / 22.5 / 29.7; Kimi K2 11.2 / 14.1 / 23.6 / 42.2 -> 15.4 / 16.2 / 20.6 / 36.5
// (docs/routing.md, "Staged kernel").
inline constexpr std::int64_t kStagedMinRows = 16384;
inline bool routing_staged_pays(int staged_segs, std::int64_t num_tokens) {
  return staged_segs > 0 && num_tokens >= kStagedMinRows;
}

// The warp kernel for rows of E <= 32 below kRowThreadMinRows rows (from there the row thread,
// where it serves the routing). Measured on an H200 (session 15, bench routing, Mixtral, same
// process, us, the heuristic before -> the warp kernel): 1 / 32 / 512 / 2048 / 4096 rows 3.03
// / 3.18 / 3.46 / 3.68 / 3.80 -> 2.44 / 2.50 / 2.72 / 2.89 / 3.70 (row blocks, then lane groups of
// 8 from 1024 rows); 8192 rows 5.59 against the row thread's 4.02.
inline bool routing_warp_pays(int num_experts, std::int64_t num_tokens) {
  return num_experts <= kWarpRoutingMaxExperts && num_tokens >= 1 && num_tokens < kRowThreadMinRows;
}

// The most rows for which the heuristic takes the wide warp kernel (0: never): ungrouped routings
// whose keys need no transcendental per expert before the selection (softmax ranks its keys and
// needs one exact exp per expert for the denominator, which now interleave; the top-k-then
// functions need none), 33..128 experts up to kWarpWideMaxRows rows (where the quad kernel takes
// over), 129..256 up to kWarpWideMaxRowsLong. Sigmoid-like rows need one exact sigmoid (or
// sqrt-softplus) per expert before the selection, ~70 instructions each on one warp, where a row
// block spreads them over many warps; grouped rows with groups that are not whole runs of lanes
// take drop_groups' general loop. Measured on an H200 (session 16, bench routing, same process,
// us over the empty launch, the heuristic before -> the wide warp kernel (v2, committed); 1 / 32 /
// 512 / 2048 / 4096 rows): Qwen3-30B (softmax, E 128, K 8) 2.93 / 3.08 / 3.34 / 4.05 / 6.71 ->
// 2.16 / 2.23 / 2.40 / 3.30 / 5.80; gpt-oss-120b (top-k then softmax, K 4) 1.73 / 1.81 / 1.99 /
// 2.39 / 4.08 -> 1.40 / 1.45 / 1.63 / 2.25 / 3.84; Llama 4 (top-k then sigmoid, K 1) 1.27 /
// 1.37 / 1.53 / 1.80 / 2.85 -> 1.09 / 1.15 / 1.33 / 1.58 / 2.50; Qwen3-Coder (softmax, E 160, 8
// per lane; 1 / 32 / 512 rows) 3.02 / 3.20 / 3.43 -> 2.75 / 2.81 / 2.99. Above those sizes (call 6,
// lane groups -> forced; 4097 / 6144 / 8191 rows): Qwen3-30B 6.65 / 8.92 / 11.00 -> 5.78 / 7.75 /
// 9.82, Llama 4 2.81 / 3.81 / 4.57 -> 2.42 / 3.35 / 4.28, gpt-oss 3.90 / 5.20 / 6.35 -> 3.70 /
// 5.13 / 6.45; Qwen3-Coder (513 / 1024 / 2048 / 4096 rows) 4.61 / 4.89 / 6.17 / 9.89 -> 3.01 /
// 3.47 / 4.97 / 8.88. Forced where it does not apply, 1 row: DeepSeek-V3 (sigmoid, grouped) 3.35
// -> 5.29, Kimi K2 (sigmoid, 16 per lane) 3.40 -> 5.17, DeepSeek-V2 (softmax, groups of 20) 3.51 ->
// 7.20.
//
// Grouped softmax-like rows of 129..256 experts whose groups are not whole runs of lanes
// (group_words: routing_groups_need_words for its 8 experts per lane, and the scratch enabled)
// take it at every M above the row blocks' kRowBlockMaxRows (routing_launch_config keeps those),
// with drop_groups scoring the groups from shared memory. Measured on an H200 (session 30, call 5,
// DeepSeek-V2: softmax, E 160, 8 groups of 20, K 6; bench routing, us; 1024 / 2048 / 4096 / 8192 /
// 32768 rows): lane groups (the heuristic before) 10.71 / 13.29 / 22.02 / 40.34 / 145.2, with the
// shared-memory group scores 7.84 / 9.55 / 15.14 / 26.83 / 95.2, the wide warp kernel with them
// 6.04 / 8.07 / 13.88 / 24.43 / 86.5; at 1 / 32 / 512 rows the row blocks 3.99 / 4.11 / 4.51
// against 4.55 / 4.65 / 4.79.
inline constexpr std::int64_t kWarpWideMaxRows = 8191;  // = kQuadMinRows - 1
inline constexpr std::int64_t kWarpWideMaxRowsLong = 4096;
inline constexpr std::int64_t kWarpWideMaxRowsGrouped = std::int64_t{1} << 40;  // every M
inline std::int64_t routing_warp_wide_rows(int num_experts, ScoreFunc f, bool grouped,
                                           bool group_words = false) {
  const bool softmax_like = f == ScoreFunc::kSoftmax || f == ScoreFunc::kTopkThenSoftmax ||
                            f == ScoreFunc::kTopkThenSigmoid;
  if (grouped) {
    return softmax_like && group_words && num_experts > 128 && num_experts <= 256
               ? kWarpWideMaxRowsGrouped
               : 0;
  }
  if (!softmax_like || num_experts < kWarpWideMinExperts) return 0;
  if (num_experts <= 128) return kWarpWideMaxRows;
  return num_experts <= 256 ? kWarpWideMaxRowsLong : 0;
}

// The packed kernel wherever it serves the routing (detail::routing_packed_serves): softmax rows
// at every M, the top-k-then functions from kPackedMinRowsTopk rows (below, the wide warp kernel's
// single warp per row is as fast or faster: measured on an H200, session 25, forced 8 per lane
// against the heuristic before, us at 1 / 128 / 256 / 512 rows: gpt-oss 1.63 / 1.76 / 1.79 / 1.83
// -> 1.74 / 1.75 / 1.78 / 1.79, Llama 4 1.34 / 1.48 / 1.52 / 1.54 -> 1.45 / 1.47 / 1.47 / 1.49;
// softmax: Qwen3-30B 2.40 / 2.54 / 2.56 / 2.61 -> 2.03 / 2.10 / 2.11 / 2.11, Qwen3-Coder 2.97 /
// 3.13 / 3.15 / 3.20 -> 2.20 / 2.41 / 2.43 / 2.48). routing_packed_rows gives the first M (0:
// never). Experts per lane (routing_packed_vals): fewer at fewer rows (a shorter chain per row,
// more warps), more at many rows (fewer instructions per row: the cross-lane merges shrink).
// Measured (same card and session, us, 8 / 16 / 32 per lane; 512 / 2048 / 4096 / 8192 / 32768
// rows): Qwen3-30B 2.16 / 2.96 / 4.63 / 6.76 / 18.8, 2.48 / 3.03 / 3.94 / 5.44 / 13.6, 2.87 /
// 3.46 / 3.99 / 4.92 / 11.6; gpt-oss 1.78 / 2.45 / 3.46 / 4.92 / 12.6, 1.81 / 2.42 / 3.16 / 3.99
// / 8.72, 1.95 / 2.46 / 3.21 / 3.70 / 7.73; Qwen3-Coder (E 160) 2.51 / 4.64 / 7.37 / 12.2 / 41.0,
// 3.19 / 4.01 / 6.25 / 9.46 / 29.5, 4.72 / 5.64 / 5.99 / 9.28 / 28.2 (docs/routing.md, "Packed
// kernel").
inline constexpr std::int64_t kPackedMinRowsTopk = 256;
inline std::int64_t routing_packed_rows(bool packed_serves, ScoreFunc f) {
  if (!packed_serves) return 0;
  return f == ScoreFunc::kSoftmax ? 1 : kPackedMinRowsTopk;
}
inline int routing_packed_vals(int num_experts, std::int64_t num_tokens) {
  const int capacity = detail::routing_row_capacity(num_experts);
  int vals = num_tokens >= (capacity >= 256 ? 4096 : 8192) ? 32 : (num_tokens >= 2048 ? 16 : 8);
  while (capacity / vals > 32) vals *= 2;
  while (capacity / vals < 4) vals /= 2;
  return vals;
}

// The LUT kernel wherever it serves the routing (detail::routing_lut_serves) from
// routing_lut_rows rows: kLutMinRows, or kLutMinRowsWide for rows of 16 lanes (257..512 experts).
// Below, the table's load (29.8 KB per block) and a warp's serial chain cost more than the row
// blocks' or the pre-filter's exact keys. Measured on an H200 (session 26, call 4, bench routing,
// the heuristic before -> forced 74, same process, us; 512 / 1024 / 2048 / 4096 / 8192 / 16384 /
// 32768 rows): DeepSeek-V3 4.39 / 5.89 / 7.67 / 12.85 / 18.26 / 22.93 / 30.16 -> 5.25 / 5.72 /
// 6.31 / 7.25 / 9.59 / 14.81 / 22.51; Kimi K2 (16 x 24) 4.57 / 6.87 / 8.61 / 11.56 / 14.60 / 21.16
// / 37.63 -> 4.37 / 4.93 / 6.16 / 7.70 / 11.53 / 19.18 / 38.02 (docs/routing.md, "LUT kernel").
inline constexpr std::int64_t kLutMinRows = 1024;
inline constexpr std::int64_t kLutMinRowsWide = 513;
inline std::int64_t routing_lut_rows(bool lut_serves, int num_experts) {
  if (!lut_serves) return 0;
  return detail::routing_lut_lanes(num_experts) >= 16 ? kLutMinRowsWide : kLutMinRows;
}
// The LUT kernel's layout (lanes, vals) at M rows: detail::routing_lut_lanes / _vals, except for
// ungrouped rows of 257..384 experts from kLutWide8Rows rows: 8 lanes of 48 (fewer merge levels,
// 512 threads). Measured (session 26, call 7, Kimi K2, 16 x 24 -> 8 x 48, us; 1024 / 2048 /
// 4096 / 8192 / 16384 / 32768 rows): 4.95 / 6.16 / 7.74 / 11.68 / 19.2 / 38.1 -> 5.67 / 6.48 /
// 7.58 / 10.62 / 16.4 / 31.6 (the staged kernel: 37.8 at 32768).
inline constexpr std::int64_t kLutWide8Rows = 4096;
struct LutLayout {
  int lanes, vals;
};
inline LutLayout routing_lut_layout(int num_experts, bool grouped, std::int64_t num_tokens) {
  if (!grouped && num_experts > 256 && num_experts <= 384 && num_tokens >= kLutWide8Rows) {
    return {8, 48};
  }
  return {detail::routing_lut_lanes(num_experts), detail::routing_lut_vals(num_experts)};
}

// columns = K + S (0: not given, no row thread unless forced); grouped: a grouped routing (both
// for the row thread only); quad_vals: detail::routing_quad_vals of the routing (0: no quad);
// staged_segs: detail::routing_staged_segs of the routing where its logits rows are 16-byte
// aligned (0: no staged kernel); warp_wide_rows: routing_warp_wide_rows of the routing;
// lists_serve: routing_row_block_lists_serve of the routing; packed_rows: routing_packed_rows of
// the routing (0: no packed kernel; > 0 also allows the packed layout codes); lut_rows:
// routing_lut_rows of the routing (0: no LUT kernel; > 0 also allows its layout code).
inline RoutingLaunchConfig routing_launch_config(
    int num_experts, std::int64_t num_tokens, int layout_code = 0, bool row_blocks_pay = true,
    bool prefilter_applies = false, int columns = 0, bool grouped = false, int quad_vals = 0,
    int staged_segs = 0, std::int64_t warp_wide_rows = 0, bool lists_serve = false,
    std::int64_t packed_rows = 0, std::int64_t lut_rows = 0) {
  if (lut_rows > 0 &&
      (layout_code == kRoutingLutCode || (layout_code == 0 && num_tokens >= lut_rows))) {
    RoutingLaunchConfig c{};
    c.lut = true;
    const LutLayout l = routing_lut_layout(num_experts, grouped, num_tokens);
    c.lanes = l.lanes;
    c.vals = l.vals;
    c.threads = lut_threads_per_block(c.lanes, c.vals);
    c.rows_per_block = c.threads / c.lanes;
    c.blocks = (num_tokens + c.rows_per_block - 1) / c.rows_per_block;
    return c;
  }
  if (packed_rows > 0 &&
      (layout_code == kRoutingPackedCode || routing_packed_code_vals(layout_code) > 0 ||
       (layout_code == 0 && num_tokens >= packed_rows))) {
    RoutingLaunchConfig c{};
    c.packed = true;
    c.vals = routing_packed_code_vals(layout_code) > 0
                 ? routing_packed_code_vals(layout_code)
                 : routing_packed_vals(num_experts, num_tokens);
    c.lanes = detail::routing_row_capacity(num_experts) / c.vals;
    c.threads = kPackedThreadsPerBlock;
    c.rows_per_block = kPackedThreadsPerBlock / c.lanes;
    c.blocks = (num_tokens + c.rows_per_block - 1) / c.rows_per_block;
    return c;
  }
  if (staged_segs > 0 && (layout_code == kRoutingStagedCode ||
                          (layout_code == 0 && routing_staged_pays(staged_segs, num_tokens)))) {
    RoutingLaunchConfig c{};
    c.staged = true;
    c.lanes = 1;
    c.vals = staged_segs;
    c.threads = kStagedThreadsPerBlock;
    c.rows_per_block = kStagedRowsPerBlock;
    c.blocks = (num_tokens + c.rows_per_block - 1) / c.rows_per_block;
    return c;
  }
  if (layout_code == kRoutingRowThreadCode ||
      (layout_code == 0 && routing_row_thread_pays(num_experts, columns, grouped, num_tokens))) {
    RoutingLaunchConfig c{};
    c.row_thread = true;
    c.vals = row_thread_experts(num_experts);
    c.lanes = row_thread_columns(columns);
    c.threads = kRoutingThreadsPerBlock;
    c.rows_per_block = kRoutingThreadsPerBlock;
    c.blocks = (num_tokens + c.rows_per_block - 1) / c.rows_per_block;
    return c;
  }
  if (layout_code == kRoutingWarpCode ||
      (layout_code == 0 && routing_warp_pays(num_experts, num_tokens))) {
    RoutingLaunchConfig c{};
    c.warp = true;
    c.lanes = 32;
    c.vals = 1;
    c.threads = kWarpRoutingThreadsPerBlock;
    c.rows_per_block = kWarpRoutingThreadsPerBlock / 32;
    c.blocks = (num_tokens + c.rows_per_block - 1) / c.rows_per_block;
    return c;
  }
  if (layout_code == kRoutingWarpWideCode ||
      (layout_code == 0 && num_tokens >= 1 && num_tokens <= warp_wide_rows &&
       !(grouped && row_blocks_pay && num_tokens <= kRowBlockMaxRows))) {
    RoutingLaunchConfig c{};
    c.warp = true;
    c.lanes = 32;
    c.vals = detail::routing_row_capacity(num_experts) / 32;
    c.threads = kWarpRoutingThreadsPerBlock;
    c.rows_per_block = kWarpRoutingThreadsPerBlock / 32;
    c.blocks = (num_tokens + c.rows_per_block - 1) / c.rows_per_block;
    return c;
  }
  if (quad_vals > 0 && (layout_code == kRoutingQuadCode ||
                        (layout_code == 0 && routing_quad_pays(quad_vals, num_tokens)))) {
    RoutingLaunchConfig c{};
    c.quad = true;
    c.lanes = 4;
    c.vals = quad_vals;
    c.threads = kRoutingThreadsPerBlock;
    c.rows_per_block = kRoutingThreadsPerBlock / 4;
    c.blocks = (num_tokens + c.rows_per_block - 1) / c.rows_per_block;
    return c;
  }
  int row_block_vals = 0;
  if (layout_code < 0) {
    row_block_vals = -layout_code;
  } else if (layout_code == 0 && row_blocks_pay && num_tokens <= kRowBlockMaxRows) {
    const int max_threads = num_tokens <= kRowBlockWideRows ? kRowBlockMaxThreads : 256;
    row_block_vals = 1;
    const int threads1 = routing_row_block_threads(num_experts, 1);
    const bool lists =
        lists_serve && threads1 <= kRowBlockMaxThreads && routing_row_block_lists_pay(num_tokens);
    while (!lists && row_block_vals < 4 &&
           routing_row_block_threads(num_experts, row_block_vals) > max_threads) {
      row_block_vals *= 2;
    }
  }
  RoutingLaunchConfig c{};
  if (row_block_vals > 0) {
    c.row_block = true;
    c.vals = row_block_vals;
    c.threads = routing_row_block_threads(num_experts, row_block_vals);
    c.rows_per_block = 1;
    c.blocks = num_tokens;
    return c;
  }
  const int capacity = detail::routing_row_capacity(num_experts);
  int vals = capacity > 32 ? capacity / 32 : 1;  // min(32, C) lanes per row
  if (capacity <= 32 && num_tokens >= kSmallRowMinRows && capacity > kSmallRowLanes) {
    vals = capacity / kSmallRowLanes;
  }
  if (layout_code == kRoutingPrefilterCode ||
      (layout_code == 0 && routing_prefilter_pays(prefilter_applies, row_blocks_pay, num_tokens))) {
    c.prefilter = true;
    vals = capacity / 32;
  } else if (layout_code > 0) {
    vals = layout_code;
  }
  c.lanes = capacity / vals;
  c.vals = vals;
  c.threads = kRoutingThreadsPerBlock;
  c.rows_per_block = kRoutingThreadsPerBlock / c.lanes;
  c.blocks = (num_tokens + c.rows_per_block - 1) / c.rows_per_block;
  return c;
}

}  // namespace switchyard::heuristics
