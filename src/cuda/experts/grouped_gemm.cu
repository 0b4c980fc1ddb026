// grouped_gemm_cuda: checks, workspace carving and dtype dispatch (the CUTLASS instances live in
// grouped_gemm_{bf16,f16}.cu; this file includes no CUTLASS header).
#include "grouped_gemm.h"

#include <cuda_runtime.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <string>

#include "../../common/check.h"
#include "../cuda_status.h"

namespace switchyard::detail {

bool grouped_gemm_dynamic_tiles(bool requested) {
  static const long mode = [] {
    const char* v = std::getenv("SWITCHYARD_GEMM_DYNAMIC");
    return v == nullptr ? 1L : std::strtol(v, nullptr, 10);
  }();
  return mode == 2 || (mode != 0 && requested);
}

bool grouped_gemm_pair(bool requested) {
  static const long mode = [] {
    const char* v = std::getenv("SWITCHYARD_GEMM_PAIR");
    return v == nullptr ? 1L : std::strtol(v, nullptr, 10);
  }();
  return mode == 2 || (mode != 0 && requested);
}

namespace {

bool aligned16(const void* p) {
  return (reinterpret_cast<std::uintptr_t>(p) & 15u) == 0;
}

std::string hex(const void* p) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%llx",
                static_cast<unsigned long long>(reinterpret_cast<std::uintptr_t>(p)));
  return buf;
}

// The kernels are compiled for sm_90a only (wgmma, TMA multicast): other devices are refused.
Status check_device(const char* op) {
#ifdef SWITCHYARD_NO_SM90A
  (void)op;
  return Status::Unsupported(std::string(op) +
                             ": this build has no sm_90a code (SWITCHYARD_CUDA_ARCHITECTURES "
                             "lacks 90a), and the grouped GEMM needs wgmma/TMA");
#else
  static std::atomic<int> cached[64] = {};  // major * 10 + minor + 1, per device
  int dev = 0;
  SY_RETURN_IF_ERROR(cuda_status(cudaGetDevice(&dev), "grouped_gemm: cudaGetDevice"));
  int c = cached[dev & 63].load(std::memory_order_relaxed);
  if (c == 0) {
    int major = 0, minor = 0;
    SY_RETURN_IF_ERROR(cuda_status(
        cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev), "cc major"));
    SY_RETURN_IF_ERROR(cuda_status(
        cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev), "cc minor"));
    c = major * 10 + minor + 1;
    cached[dev & 63].store(c, std::memory_order_relaxed);
  }

  if (c - 1 != 90) {
    return Status::Unsupported(std::string(op) + ": the grouped GEMM is built for sm_90a only " +
                               "(device is sm_" + std::to_string(c - 1) + ")");
  }
  return Status::Ok();
#endif
}

}  // namespace

std::size_t grouped_gemm_workspace_size(std::int32_t num_groups) {
  const std::size_t arrays =
      (kGroupedGemmBytesPerGroup * static_cast<std::size_t>(num_groups > 0 ? num_groups : 0) +
       255) /
      256 * 256;
  return arrays + kGroupedGemmKernelWorkspace;
}

Status grouped_gemm_check(const char* op, const GroupedGemmArgs& a) {
  if (a.dtype != DType::kBFloat16 && a.dtype != DType::kFloat16) {
    return invalid_arg(op, "dtype", dtype_name(a.dtype), "bfloat16 or float16");
  }
  if (a.out_dtype != DType::kFloat32 && a.out_dtype != a.dtype) {
    return invalid_arg(op, "out_dtype", dtype_name(a.out_dtype),
                       std::string("float32 or ") + dtype_name(a.dtype));
  }
  if (a.num_groups < 1) return invalid_arg(op, "num_groups", a.num_groups, ">= 1");
  if (a.rows < 0 || a.rows > std::numeric_limits<std::int32_t>::max()) {
    return invalid_arg(op, "rows", a.rows, "0 <= rows < 2^31");
  }
  if (a.n < 8 || a.n % 8 != 0) {
    return invalid_arg(op, "n", a.n, "a positive multiple of 8 (16-byte rows for TMA)");
  }
  if (a.k < 8 || a.k % 8 != 0) {
    return invalid_arg(op, "k", a.k, "a positive multiple of 8 (16-byte rows for TMA)");
  }
  if (a.gated != nullptr) {
    if (a.gated->activation == Activation::kRelu2) {
      return invalid_arg(op, "gated.activation", activation_name(a.gated->activation),
                         "a gated activation");
    }
    if (a.out_dtype != a.dtype) {
      return invalid_arg(op, "out_dtype", dtype_name(a.out_dtype),
                         std::string(dtype_name(a.dtype)) + " (the fused epilogue writes act)");
    }
    if (a.n % 16 != 0) {
      return invalid_arg(op, "n", a.n, "a multiple of 16 with the fused epilogue (2I, I % 8 == 0)");
    }
  }
  const struct {
    const char* name;
    const void* ptr;
  } ptrs[] = {{"a", a.a}, {"b", a.b}, {"c", a.c}, {"offsets", a.offsets}};
  for (const auto& p : ptrs) {
    if (p.ptr == nullptr) return invalid_arg(op, p.name, "null", "a device pointer");
    if (!aligned16(p.ptr)) return invalid_arg(op, p.name, hex(p.ptr), "16-byte aligned");
  }
  return Status::Ok();
}

Status grouped_gemm_cuda(const GroupedGemmArgs& args, heuristics::GemmTile tile, void* workspace,
                         std::size_t workspace_bytes, cudaStream_t stream) {
  const char* op = "grouped_gemm_cuda";
  SY_RETURN_IF_ERROR(grouped_gemm_check(op, args));
  const std::size_t need = grouped_gemm_workspace_size(args.num_groups);
  if (workspace_bytes < need) {
    return invalid_arg(op, "workspace_bytes", workspace_bytes,
                       ">= grouped_gemm_workspace_size() = " + std::to_string(need));
  }
  if (workspace == nullptr || (reinterpret_cast<std::uintptr_t>(workspace) & 255u) != 0) {
    return invalid_arg(op, "workspace", hex(workspace), "a 256-byte aligned device pointer");
  }
  if (args.rows == 0) return Status::Ok();
  SY_RETURN_IF_ERROR(check_device(op));
  if (args.dtype == DType::kBFloat16) {
    return grouped_gemm_sm90_bf16(args, tile, workspace, stream);
  }
  return grouped_gemm_sm90_f16(args, tile, workspace, stream);
}

Status grouped_gemm_pair_cuda(const GroupedGemmArgs& g1, const GroupedGemmArgs& g2, void* workspace,
                              std::size_t workspace_bytes, cudaStream_t stream) {
  const char* op = "grouped_gemm_pair_cuda";
  SY_RETURN_IF_ERROR(grouped_gemm_check(op, g1));
  SY_RETURN_IF_ERROR(grouped_gemm_check(op, g2));
  if (g1.gated == nullptr) return invalid_arg(op, "gemm1.gated", "null", "the fused GEMM1");
  if (g2.gated != nullptr) return invalid_arg(op, "gemm2.gated", "set", "null (GEMM2 is linear)");
  if (g2.dtype != g1.dtype) {
    return invalid_arg(op, "gemm2.dtype", dtype_name(g2.dtype), dtype_name(g1.dtype));
  }
  if (g2.out_dtype != g1.dtype) {
    return invalid_arg(op, "gemm2.out_dtype", dtype_name(g2.out_dtype),
                       std::string(dtype_name(g1.dtype)) + " (the input dtype)");
  }
  if (g2.a != g1.c) return invalid_arg(op, "gemm2.a", hex(g2.a), "gemm1.c " + hex(g1.c));
  if (g2.k != g1.n / 2)
    return invalid_arg(op, "gemm2.k", g2.k, "gemm1.n / 2 = " + std::to_string(g1.n / 2));
  if (g2.offsets != g1.offsets) {
    return invalid_arg(op, "gemm2.offsets", hex(g2.offsets), "gemm1.offsets " + hex(g1.offsets));
  }
  if (g2.num_groups != g1.num_groups) {
    return invalid_arg(op, "gemm2.num_groups", g2.num_groups, std::to_string(g1.num_groups));
  }
  if (g2.rows != g1.rows) return invalid_arg(op, "gemm2.rows", g2.rows, std::to_string(g1.rows));
  const std::size_t need = grouped_gemm_workspace_size(g1.num_groups);
  if (workspace_bytes < need) {
    return invalid_arg(op, "workspace_bytes", workspace_bytes,
                       ">= grouped_gemm_workspace_size() = " + std::to_string(need));
  }
  if (workspace == nullptr || (reinterpret_cast<std::uintptr_t>(workspace) & 255u) != 0) {
    return invalid_arg(op, "workspace", hex(workspace), "a 256-byte aligned device pointer");
  }
  if (g1.rows == 0) return Status::Ok();
  SY_RETURN_IF_ERROR(check_device(op));
  if (g1.dtype == DType::kBFloat16) return grouped_gemm_pair_sm90_bf16(g1, g2, workspace, stream);
  return grouped_gemm_pair_sm90_f16(g1, g2, workspace, stream);
}

}  // namespace switchyard::detail
