// layer_kernels.h in a build without CUDA: the device versions report kUnsupported.
#include "layer_kernels.h"

namespace switchyard::tools {

Status gather_row_routing_cuda(const std::int32_t*, const float*, const std::int64_t*, std::int64_t,
                               std::int32_t*, float*, cudaStream_t) {
  return Status::Unsupported("gather_row_routing_cuda: this build has no CUDA backend");
}

Status add_outputs_cuda(DType, const void*, const void*, void*, std::int64_t, cudaStream_t) {
  return Status::Unsupported("add_outputs_cuda: this build has no CUDA backend");
}

}  // namespace switchyard::tools
