// The device half of layer_kernels.h.
#include <cuda_runtime.h>

#include <algorithm>
#include <string>

#include "../../src/common/dtype_convert.h"
#include "../../src/cuda/cuda_status.h"
#include "layer_kernels.h"

namespace switchyard::tools {

namespace {

constexpr int kThreads = 256;

unsigned grid_for(std::int64_t n) {
  return static_cast<unsigned>(
      std::max<std::int64_t>(1, std::min<std::int64_t>((n + kThreads - 1) / kThreads, 1 << 16)));
}

__global__ void gather_row_routing_kernel(const std::int32_t* __restrict__ ids,
                                          const float* __restrict__ weights,
                                          const std::int64_t* __restrict__ dst_to_src,
                                          std::int64_t num_rows,
                                          std::int32_t* __restrict__ row_experts,
                                          float* __restrict__ row_weights) {
  for (std::int64_t r = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
       r < num_rows; r += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t slot = dst_to_src[r];
    row_experts[r] = slot >= 0 ? ids[slot] : -1;
    if (row_weights) row_weights[r] = slot >= 0 ? weights[slot] : 0.0f;
  }
}

template <typename T>
__global__ void add_outputs_kernel(const T* __restrict__ a, const T* __restrict__ b,
                                   T* __restrict__ out, std::int64_t n) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    // A plain add: nothing to contract into an FMA, so the host gives the same bits.
    out[i] = switchyard::detail::from_float<T>(switchyard::detail::to_float(a[i]) +
                                               switchyard::detail::to_float(b[i]));
  }
}

}  // namespace

Status gather_row_routing_cuda(const std::int32_t* ids, const float* weights,
                               const std::int64_t* dst_to_src, std::int64_t num_rows,
                               std::int32_t* row_experts, float* row_weights, cudaStream_t stream) {
  if (num_rows <= 0) return Status::Ok();
  gather_row_routing_kernel<<<grid_for(num_rows), kThreads, 0, stream>>>(
      ids, weights, dst_to_src, num_rows, row_experts, row_weights);
  return switchyard::detail::cuda_status(cudaGetLastError(), "gather_row_routing_cuda");
}

Status add_outputs_cuda(DType dtype, const void* a, const void* b, void* out, std::int64_t n,
                        cudaStream_t stream) {
  if (n <= 0) return Status::Ok();
  using switchyard::detail::bf16_t;
  using switchyard::detail::fp16_t;
  if (dtype == DType::kBFloat16) {
    add_outputs_kernel<<<grid_for(n), kThreads, 0, stream>>>(
        static_cast<const bf16_t*>(a), static_cast<const bf16_t*>(b), static_cast<bf16_t*>(out), n);
  } else if (dtype == DType::kFloat16) {
    add_outputs_kernel<<<grid_for(n), kThreads, 0, stream>>>(
        static_cast<const fp16_t*>(a), static_cast<const fp16_t*>(b), static_cast<fp16_t*>(out), n);
  } else {
    return Status::InvalidArgument(std::string("add_outputs_cuda: dtype = ") + dtype_name(dtype) +
                                   ": expected bfloat16 or float16");
  }
  return switchyard::detail::cuda_status(cudaGetLastError(), "add_outputs_cuda");
}

}  // namespace switchyard::tools
