// interleave_w13_cuda: SGLang's gate/up halves of w13 (or b13) -> interleaved rows (experts.h).
// One grid-stride kernel over the destination in units of the largest power of two (<= 16 bytes)
// that divides a row and both base pointers.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "../../common/check.h"
#include "../../common/experts_check.h"
#include "../cuda_status.h"
#include "switchyard/experts.h"

namespace switchyard {

namespace {

template <typename Unit>
__global__ void interleave_rows_kernel(const Unit* __restrict__ src, Unit* __restrict__ dst,
                                       std::int64_t half, std::int64_t row_units,
                                       std::int64_t total_units) {
  const std::int64_t step = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t u = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
       u < total_units; u += step) {
    const std::int64_t row = u / row_units, col = u % row_units;  // destination row 2i + j
    const std::int64_t e = row / (2 * half), r = row % (2 * half);
    const std::int64_t src_row = e * 2 * half + (r & 1) * half + (r >> 1);
    dst[u] = src[src_row * row_units + col];
  }
}

template <typename Unit>
cudaError_t launch(const void* src, void* dst, std::int64_t half, std::int64_t row_bytes,
                   std::int64_t total_bytes, cudaStream_t stream) {
  const std::int64_t row_units = row_bytes / static_cast<std::int64_t>(sizeof(Unit));
  const std::int64_t total = total_bytes / static_cast<std::int64_t>(sizeof(Unit));
  constexpr int kThreads = 256;
  const std::int64_t blocks = std::min<std::int64_t>((total + kThreads - 1) / kThreads, 8192);
  interleave_rows_kernel<Unit><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(
      static_cast<const Unit*>(src), static_cast<Unit*>(dst), half, row_units, total);
  return cudaGetLastError();
}

}  // namespace

Status interleave_w13_cuda(const TensorView& src, const TensorView& dst, cudaStream_t stream) {
  std::int64_t half = 0, row_bytes = 0;
  SY_RETURN_IF_ERROR(detail::interleave_w13_check("interleave_w13_cuda", src, dst, Device::kCuda,
                                                  &half, &row_bytes));
  const std::int64_t total = src.numel() * static_cast<std::int64_t>(dtype_size(src.dtype));
  if (total == 0) return Status::Ok();
  const auto align = static_cast<std::int64_t>(reinterpret_cast<std::uintptr_t>(src.data) |
                                               reinterpret_cast<std::uintptr_t>(dst.data)) |
                     row_bytes;
  cudaError_t err;
  if (align % 16 == 0) {
    err = launch<uint4>(src.data, dst.data, half, row_bytes, total, stream);
  } else if (align % 8 == 0) {
    err = launch<uint2>(src.data, dst.data, half, row_bytes, total, stream);
  } else if (align % 4 == 0) {
    err = launch<std::uint32_t>(src.data, dst.data, half, row_bytes, total, stream);
  } else if (align % 2 == 0) {
    err = launch<std::uint16_t>(src.data, dst.data, half, row_bytes, total, stream);
  } else {
    err = launch<std::uint8_t>(src.data, dst.data, half, row_bytes, total, stream);
  }
  return detail::cuda_status(err, "interleave_w13_cuda: kernel launch");
}

}  // namespace switchyard
