// cuBLAS dense bf16 GEMM ceiling (gemm_ceiling.h): C = A^T B with A, B, C [n, n] bfloat16,
// float32 compute (cublasGemmEx, default algorithm), random inputs (tensor-core power depends on
// the data), 5 warm-up calls, then 20 calls each timed with CUDA events; the median is reported.
#include "gemm_ceiling.h"

#if defined(SWITCHYARD_WITH_CUBLAS)
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <string>
#include <vector>

#include "../../src/common/check.h"
#include "../common/device_fill.h"
#include "../common/gpu_bench.h"
#endif

namespace switchyard::cli {

#if defined(SWITCHYARD_WITH_CUBLAS)

namespace {

Status cublas_status(cublasStatus_t st, const char* what) {
  if (st == CUBLAS_STATUS_SUCCESS) return Status::Ok();
  return Status::CudaError(std::string("cuBLAS ") + what + ": status " +
                           std::to_string(static_cast<int>(st)));
}

}  // namespace

Status measure_gemm_ceiling(int n, GemmCeiling* out) {
  const std::size_t elems = static_cast<std::size_t>(n) * static_cast<std::size_t>(n);
  tools::DeviceBuffer a, b, c;
  SY_RETURN_IF_ERROR(tools::DeviceBuffer::allocate(elems * 2, &a));
  SY_RETURN_IF_ERROR(tools::DeviceBuffer::allocate(elems * 2, &b));
  SY_RETURN_IF_ERROR(tools::DeviceBuffer::allocate(elems * 2, &c));
  SY_RETURN_IF_ERROR(tools::fill_device_random(a.get(), DType::kBFloat16, elems, 1.0f, 1));
  SY_RETURN_IF_ERROR(tools::fill_device_random(b.get(), DType::kBFloat16, elems, 1.0f, 2));
  cublasHandle_t handle = nullptr;
  SY_RETURN_IF_ERROR(cublas_status(cublasCreate(&handle), "cublasCreate"));
  const float alpha = 1.0f, beta = 0.0f;
  const auto gemm = [&] {
    return cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, n, n, n, &alpha, a.get(), CUDA_R_16BF, n,
                        b.get(), CUDA_R_16BF, n, &beta, c.get(), CUDA_R_16BF, n, CUBLAS_COMPUTE_32F,
                        CUBLAS_GEMM_DEFAULT);
  };
  Status st = Status::Ok();
  for (int i = 0; i < 5 && st.ok(); ++i) st = cublas_status(gemm(), "cublasGemmEx");
  cudaEvent_t start = nullptr, stop = nullptr;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  std::vector<float> ms;
  for (int i = 0; i < 20 && st.ok(); ++i) {
    cudaEventRecord(start);
    st = cublas_status(gemm(), "cublasGemmEx");
    cudaEventRecord(stop);
    if (cudaEventSynchronize(stop) != cudaSuccess) {
      st = Status::CudaError("cublasGemmEx: cudaEventSynchronize failed");
      break;
    }
    float t = 0;
    cudaEventElapsedTime(&t, start, stop);
    ms.push_back(t);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  cublasDestroy(handle);
  if (!st.ok()) return st;
  std::sort(ms.begin(), ms.end());
  out->n = n;
  out->median_ms = ms[ms.size() / 2];
  out->tflops = 2.0 * n * static_cast<double>(n) * n / (out->median_ms * 1e9);
  return Status::Ok();
}

#else

Status measure_gemm_ceiling(int, GemmCeiling*) {
  return Status::Unsupported("the dense GEMM ceiling needs a CUDA build (cuBLAS)");
}

#endif

}  // namespace switchyard::cli
