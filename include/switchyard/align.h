// Alignment, expert-major layouts, permutation and combine (SEMANTICS.md sections 2 and 3).
//
// Slots: the routing output of token t, column k is slot s = t * K + k (M tokens, K columns).
// A slot is *valid* when its id, after the optional expert_map, is in [0, num_experts); other
// slots (-1 padding, non-local experts, out-of-range ids) are dropped, never bucketed.
// Everything here is deterministic: inside each expert's segment, slots are in ascending order.
//
// Backends: CPU for everything (the oracle) and CUDA for everything, with the same structs. The
// CUDA ops are one launch each, allocate nothing, never synchronise with the host and can be
// captured in a CUDA graph; their results equal the CPU's bit for bit. Alignment and layout take a
// caller-owned workspace whose size comes from the *_workspace_size queries (16-byte aligned; its
// contents need no initialisation and are scratch between calls). On sm_90 and later the
// alignment and layout kernels without a grid barrier (up to 262144 slots and 512 experts, as far
// as their clusters fit on the device at once: one block, one thread block cluster, a few
// independent blocks that each sort every slot, or clusters of 8 blocks that share the counting)
// launch with programmatic dependent launch, as routing does (routing.h); the cooperative
// grid-barrier sort that takes larger problems does not.
#pragma once

#include <cstddef>
#include <cstdint>

#include "switchyard/routing.h"
#include "switchyard/status.h"
#include "switchyard/stream.h"
#include "switchyard/tensor.h"

namespace switchyard {

// ---- moe_align_block_size (SGLang / vLLM compatible outputs) ---------------------------------

struct AlignParams {
  std::int32_t num_experts = 0;  // E (local experts when expert_map is given), 1..65536
  std::int32_t block_size = 0;   // B, 16..256
};

struct AlignArgs {
  TensorView top_k_ids;   // [M, K] int32 or int64
  TensorView expert_map;  // optional [E_global] int32: id -> local id or -1, applied first
  // Outputs. Each expert's valid slots, in ascending slot order, padded with the sentinel M*K to
  // a multiple of B; experts in ascending order; entries past num_tokens_post_pad hold M*K.
  TensorView sorted_token_ids;  // [>= align_max_padded(...)] int32
  TensorView expert_ids;  // [>= align_max_blocks(...)] int32: expert of each block, -1 past the end
  TensorView num_tokens_post_pad;  // [1] int32: the padded total (a multiple of B)
};

// Buffer sizes (the upstream formulas): max_padded = M*K + E*(B-1), max_blocks =
// ceil(max_padded/B).
std::int64_t align_max_padded(std::int64_t num_slots, std::int32_t num_experts,
                              std::int32_t block_size);
std::int64_t align_max_blocks(std::int64_t num_slots, std::int32_t num_experts,
                              std::int32_t block_size);

Status moe_align_block_size_cpu(const AlignParams& params, const AlignArgs& args);

// Workspace bytes of moe_align_block_size_cuda: 4 * E * (1 + min(1024, max(1, 2^20 / E))) (per-
// expert totals and per-block histograms; independent of the token count and of the card).
// CUDA limits: num_experts <= 16384.
std::size_t align_workspace_size(const AlignParams& params, std::int64_t num_slots);
Status moe_align_block_size_cuda(const AlignParams& params, const AlignArgs& args, void* workspace,
                                 std::size_t workspace_bytes, cudaStream_t stream);

// ---- routing + alignment in one call, for the engines that always do both ---------------------
// Routes, then aligns the routing output ids (all K+S columns): align_args.top_k_ids must be left
// undefined (it becomes routing_args.top_k_ids) or be that same tensor. Both argument sets are
// validated before anything runs. CUDA: two launches (route, align), no host synchronisation.
// Workspace: routing's rounded up to 256 bytes, then alignment's.
std::size_t route_and_align_workspace_size(const RoutingParams& routing, const AlignParams& align,
                                           std::int64_t num_tokens);
Status route_and_align_cpu(const RoutingParams& routing, const RoutingArgs& routing_args,
                           const AlignParams& align, const AlignArgs& align_args);
Status route_and_align_cuda(const RoutingParams& routing, const RoutingArgs& routing_args,
                            const AlignParams& align, const AlignArgs& align_args, void* workspace,
                            std::size_t workspace_bytes, cudaStream_t stream);

// ---- expert-major layouts: metadata
// --------------------------------------------------------------

// Contiguous layout (max_rows_per_expert == 0): expert e owns rows [offsets[e], offsets[e+1]),
// its count rounded up to `alignment` (DeepGEMM uses 128); padding rows map to no slot.
// Masked layout (max_rows_per_expert = max_m > 0): expert e owns rows [e*max_m, e*max_m + max_m)
// of a [E, max_m, H] buffer; masked_m[e] = min(count[e], max_m); slots past max_m are dropped
// (their src_to_dst is -1) and counted in `overflow`.
struct ExpertLayoutParams {
  std::int32_t num_experts = 0;          // E (local), 1..65536
  std::int32_t alignment = 1;            // contiguous layout: 1..1024
  std::int64_t max_rows_per_expert = 0;  // masked layout when > 0
};

struct ExpertLayoutArgs {
  TensorView top_k_ids;       // [M, K] int32 or int64
  TensorView expert_map;      // optional [E_global] int32
  TensorView expert_counts;   // out [E] int32: valid slots per expert (masked: masked_m)
  TensorView expert_offsets;  // out [E+1] int64: first row of each expert; [E] = rows in use
  TensorView src_to_dst;      // out [M*K] int64: layout row of each slot, -1 when dropped
  TensorView dst_to_src;      // out [layout_max_rows(...)] int64: slot of each row, -1 for padding
  TensorView overflow;        // optional out [1] int64: slots dropped by a full masked expert
};

// Rows of the layout buffer: contiguous M*K + E*(alignment-1); masked E*max_m.
std::int64_t layout_max_rows(const ExpertLayoutParams& params, std::int64_t num_slots);

Status expert_layout_cpu(const ExpertLayoutParams& params, const ExpertLayoutArgs& args);

// Workspace bytes of expert_layout_cuda: the same formula as align_workspace_size.
std::size_t expert_layout_workspace_size(const ExpertLayoutParams& params, std::int64_t num_slots);
Status expert_layout_cuda(const ExpertLayoutParams& params, const ExpertLayoutArgs& args,
                          void* workspace, std::size_t workspace_bytes, cudaStream_t stream);

// ---- permute and combine
// --------------------------------------------------------------------------

// out[r] = x[dst_to_src[r] / K] for every layout row r (rows with no slot are zeroed).
//
// Two CUDA paths, one result (bitwise equal to permute_cpu either way):
//   - dst_to_src only (row-major): one block per layout row gathers x[dst_to_src[r] / K]. Each x
//     row is read K times, at scattered times; once x no longer fits in the L2 next to the
//     streaming output (DeepSeek-V3: x = 58.7 MB at 4096 tokens) the re-reads go to DRAM.
//   - with src_to_dst (token-major): one block per token reads its x row once and stores it to
//     the K layout rows src_to_dst[t*K + k]; extra blocks of the same launch zero the layout rows
//     that have no slot (dst_to_src[r] not in [0, M*K): alignment padding, rows past the rows in
//     use). Pass src_to_dst whenever you have it (expert_layout_cpu/cuda produce both maps).
// src_to_dst contract: it must be the inverse of dst_to_src as expert_layout_* produce it: for
// every slot s, src_to_dst[s] is the row r with dst_to_src[r] == s, or -1 when no row holds s
// (a dropped slot); every row r with a slot s = dst_to_src[r] >= 0 has src_to_dst[s] == r.
// permute_cpu checks this (an error naming src_to_dst otherwise) and then computes the same
// output as without it. permute_cuda does not check it (the maps live in device memory): with
// maps that are not mutually inverse, rows are left unwritten or written twice (no access goes
// out of bounds: rows outside [0, R) are skipped), so the output is unspecified.
struct PermuteArgs {
  TensorView x;            // [M, H] float32/bfloat16/float16, rows contiguous
  TensorView dst_to_src;   // [R] int64 (from expert_layout)
  std::int32_t top_k = 0;  // K
  TensorView out;          // [R, H] same dtype as x, contiguous
  TensorView src_to_dst;   // optional [M*K] int64: the inverse of dst_to_src (expert_layout gives
                           // both); when given, permute_cuda reads each x row once
};
Status permute_cpu(const PermuteArgs& args);
// CUDA: one launch (either path), no allocation, no host synchronisation, graph capturable. Map
// entries out of range (checked with an error on the CPU) read nothing here and count as -1.
Status permute_cuda(const PermuteArgs& args, cudaStream_t stream);

// out[t] = rsf * sum_k w[t, k] * y[src_to_dst[t*K + k]], accumulated in float32 with k ascending,
// one fused multiply-add per term (acc = fma(w, y, acc)); dropped slots (-1) add nothing. Output
// dtype = y dtype.
//
// Optional weights and map (moe_sum_reduce: out[t] = rsf * sum_k y[t*K + k] allocates nothing):
//   - top_k_weights absent: every weight is 1 (acc = fma(1, y, acc), the same float operations).
//   - src_to_dst absent: the identity, slot t*K + k reads row t*K + k of y, which must then have
//     exactly M*K rows (y is [M, K, H] viewed as [M*K, H]).
//   - K: top_k_weights.shape[1] when the weights are given (top_k: 0 or that same K), else top_k
//     (>= 1, required). M: top_k_weights.shape[0] when given, else out.shape[0].
// "Absent" means TensorView{} (no data and no shape, None in Python). An empty tensor (e.g.
// weights [0, K] with M = 0, whose data pointer may be null) is given, not absent.
struct CombineParams {
  float routed_scaling_factor = 1.0f;
};
struct CombineArgs {
  TensorView y;              // [R, H] float32/bfloat16/float16: expert outputs in layout order
  TensorView src_to_dst;     // optional [M*K] int64 (absent: the identity, R must be M*K)
  TensorView top_k_weights;  // optional [M, K] float32 (absent: every weight is 1)
  TensorView out;            // [M, H] same dtype as y, contiguous
  std::int32_t top_k = 0;    // K; 0: top_k_weights.shape[1] (then the weights are required)
};
Status combine_cpu(const CombineParams& params, const CombineArgs& args);
// CUDA: one launch, bitwise identical to combine_cpu (same fused order and rounding).
Status combine_cuda(const CombineParams& params, const CombineArgs& args, cudaStream_t stream);

}  // namespace switchyard
