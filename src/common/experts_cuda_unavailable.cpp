// The CUDA fused MoE forward in a build without CUDA: it reports kUnsupported.
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

}  // namespace switchyard
