// The CUDA fused MoE forward in a build without CUDA: it reports kUnsupported.
#include "../cuda/experts/experts_internal.h"
#include "switchyard/experts.h"

namespace switchyard {

std::size_t fused_experts_workspace_size(const ExpertsParams&, std::int64_t, std::int32_t) {
  return 0;
}

Status fused_experts_cuda(const ExpertsParams&, const ExpertsArgs&, void*, std::size_t,
                          cudaStream_t) {
  return Status::Unsupported(
      "fused_experts_cuda: this Switchyard build has no CUDA backend "
      "(configure with -DSWITCHYARD_CUDA=ON)");
}

Status interleave_w13_cuda(const TensorView&, const TensorView&, cudaStream_t) {
  return Status::Unsupported(
      "interleave_w13_cuda: this Switchyard build has no CUDA backend "
      "(configure with -DSWITCHYARD_CUDA=ON)");
}

namespace detail {

Status fused_experts_cuda_plan(const ExpertsParams& params, const ExpertsArgs& args,
                               void* workspace, std::size_t workspace_bytes, cudaStream_t stream,
                               const heuristics::ExpertsPlan*) {
  return fused_experts_cuda(params, args, workspace, workspace_bytes, stream);
}

heuristics::DecodeGemm2 decode_gemm2_instance(const ExpertsParams& params, std::int64_t,
                                              std::int32_t, const heuristics::ExpertsPlan& plan) {
  return heuristics::decode_gemm2_for(plan, params.intermediate_size);
}

bool token_kernel_runs(const ExpertsParams&, std::int64_t, std::int32_t,
                       const heuristics::ExpertsPlan&) {
  return false;  // no CUDA backend
}

bool gemm_tiles_from_counter(const heuristics::ExpertsPlan&) {
  return false;  // no CUDA backend
}

bool gemm_pair_runs(const ExpertsParams&, const heuristics::ExpertsPlan&, bool) {
  return false;  // no CUDA backend
}

}  // namespace detail

}  // namespace switchyard
