// Internal entry points of the CUDA fused MoE forward, for tests and benchmarks that need to
// force a path (plain C++ header).
#pragma once

#include <cstddef>
#include <cstdint>

#include "../heuristics/experts.h"
#include "switchyard/experts.h"

namespace switchyard::detail {

// fused_experts_cuda with the given plan instead of heuristics::plan_experts() (nullptr: the
// heuristic's). Every plan is correct for every routing; the plan only changes speed.
Status fused_experts_cuda_plan(const ExpertsParams& params, const ExpertsArgs& args,
                               void* workspace, std::size_t workspace_bytes, cudaStream_t stream,
                               const heuristics::ExpertsPlan* plan);

// The one-tile decode GEMM2 instance fused_experts_cuda_plan runs with `plan` on the current
// device (kNarrow, kDeep or kNarrow3: heuristics::decode_gemm2_with_grid), for benchmark labels.
heuristics::DecodeGemm2 decode_gemm2_instance(const ExpertsParams& params, std::int64_t num_tokens,
                                              std::int32_t top_k,
                                              const heuristics::ExpertsPlan& plan);

// Whether fused_experts_cuda_plan runs the one-token kernel (kernels/experts_token.cuh) for this
// problem and plan on the current device (plan.decode_fused_token, one token, a shape it fits).
bool token_kernel_runs(const ExpertsParams& params, std::int64_t num_tokens, std::int32_t top_k,
                       const heuristics::ExpertsPlan& plan);

// Whether a grouped-GEMM plan runs GEMM1 or GEMM2 with its tiles from a counter (the 64-row
// unclustered tile with plan.gemm_dynamic_tiles, unless SWITCHYARD_GEMM_DYNAMIC overrides), for
// benchmark labels.
bool gemm_tiles_from_counter(const heuristics::ExpertsPlan& plan);

// Whether a plan runs GEMM1 and GEMM2 as one kernel (grouped_gemm_pair_cuda): the fused GEMM1,
// GEMM2 on kRows64Single, no b2 and plan.gemm_pair (unless SWITCHYARD_GEMM_PAIR overrides). The
// dispatch and the benchmark labels share it.
bool gemm_pair_runs(const ExpertsParams& params, const heuristics::ExpertsPlan& plan,
                    bool has_b2 = false);

}  // namespace switchyard::detail
