// Internal entry points of the CUDA fused MoE forward, for tests and benchmarks that need to
// force a path (plain C++ header).
#pragma once

#include <cstddef>

#include "../heuristics/experts.h"
#include "switchyard/experts.h"

namespace switchyard::detail {

// fused_experts_cuda with the given plan instead of heuristics::plan_experts() (nullptr: the
// heuristic's). Every plan is correct for every routing; the plan only changes speed.
Status fused_experts_cuda_plan(const ExpertsParams& params, const ExpertsArgs& args,
                               void* workspace, std::size_t workspace_bytes, cudaStream_t stream,
                               const heuristics::ExpertsPlan* plan);

}  // namespace switchyard::detail
