// The device half of device_fill.h.
#include <cuda_runtime.h>

#include "../../src/common/dtype_convert.h"
#include "../../src/cuda/cuda_status.h"
#include "device_fill.h"
#include "device_fill_values.h"

namespace switchyard::tools {

namespace {

template <typename T>
__global__ void fill_random_kernel(T* __restrict__ out, std::size_t count, float scale,
                                   std::uint64_t seed) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    out[i] = switchyard::detail::from_float<T>(detail::fill_uniform(seed, i) * scale);
  }
}

}  // namespace

Status fill_device_random(void* dst, DType dtype, std::size_t count, float scale,
                          std::uint64_t seed) {
  if (count == 0) return Status::Ok();
  constexpr int kThreads = 256;
  const unsigned blocks = static_cast<unsigned>(
      std::min<std::size_t>((count + kThreads - 1) / kThreads, std::size_t{1} << 16));
  if (dtype == DType::kBFloat16) {
    fill_random_kernel<<<blocks, kThreads>>>(static_cast<switchyard::detail::bf16_t*>(dst), count,
                                             scale, seed);
  } else if (dtype == DType::kFloat16) {
    fill_random_kernel<<<blocks, kThreads>>>(static_cast<switchyard::detail::fp16_t*>(dst), count,
                                             scale, seed);
  } else if (dtype == DType::kFloat32) {
    fill_random_kernel<<<blocks, kThreads>>>(static_cast<float*>(dst), count, scale, seed);
  } else {
    return Status::InvalidArgument(std::string("fill_device_random: dtype = ") + dtype_name(dtype) +
                                   ": expected bfloat16, float16 or float32");
  }
  const Status st = switchyard::detail::cuda_status(cudaGetLastError(), "fill_device_random");
  if (!st.ok()) return st;
  return switchyard::detail::cuda_status(cudaDeviceSynchronize(), "fill_device_random: sync");
}

}  // namespace switchyard::tools
