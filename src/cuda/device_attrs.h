// Attributes of the current CUDA device that launchers size grids and features by, queried once
// per device and cached (host code; no synchronisation, safe during graph capture).
#pragma once

#include <cuda_runtime.h>

#include <mutex>

#include "../common/check.h"
#include "cuda_status.h"

namespace switchyard::detail {

struct DeviceAttrs {
  int device = 0;
  int sms = 0;             // multiprocessors
  int cc_major = 0;        // compute capability, major (9: Hopper; PDL needs >= 9)
  int max_smem_optin = 0;  // bytes of dynamic shared memory a block may opt in to
};

inline Status current_device_attrs(DeviceAttrs* out) {
  constexpr int kMaxDevices = 64;
  static std::mutex mu;
  static DeviceAttrs cache[kMaxDevices];
  int dev = 0;
  SY_RETURN_IF_ERROR(cuda_status(cudaGetDevice(&dev), "cudaGetDevice"));
  const bool cacheable = dev >= 0 && dev < kMaxDevices;
  std::lock_guard<std::mutex> lock(mu);
  if (cacheable && cache[dev].sms > 0) {
    *out = cache[dev];
    return Status::Ok();
  }
  DeviceAttrs a;
  a.device = dev;
  SY_RETURN_IF_ERROR(
      cuda_status(cudaDeviceGetAttribute(&a.sms, cudaDevAttrMultiProcessorCount, dev), "SM count"));
  SY_RETURN_IF_ERROR(
      cuda_status(cudaDeviceGetAttribute(&a.cc_major, cudaDevAttrComputeCapabilityMajor, dev),
                  "compute capability"));
  SY_RETURN_IF_ERROR(cuda_status(
      cudaDeviceGetAttribute(&a.max_smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev),
      "shared memory limit"));
  if (cacheable) cache[dev] = a;
  *out = a;
  return Status::Ok();
}

}  // namespace switchyard::detail
