// Host side of programmatic dependent launch: a kernel launch with the programmatic stream
// serialization attribute, so that the grid may start while the previous kernel in the stream
// finishes (the kernel must follow the contract in kernels/pdl.cuh). Captured into CUDA graphs as
// a programmatic edge. SWITCHYARD_PDL=0 in the environment turns it off (read once), for A/B
// measurements and as an escape hatch.
#pragma once

#include <cuda_runtime.h>

#include <cstdlib>
#include <cstring>
#include <utility>

#include "../device_attrs.h"

namespace switchyard::detail {

inline bool pdl_enabled() {
  static const bool enabled = [] {
    const char* v = std::getenv("SWITCHYARD_PDL");
    return v == nullptr || std::strcmp(v, "0") != 0;
  }();
  return enabled;
}

// Whether the current device has PDL (compute capability 9.0 and later): the attribute is only
// requested there (an sm_80 build of the decode path launches plainly).
inline bool pdl_supported() {
  DeviceAttrs a;
  return current_device_attrs(&a).ok() && a.cc_major >= 9;
}

template <typename... KernelArgs, typename... Args>
cudaError_t launch_maybe_pdl(void (*kernel)(KernelArgs...), dim3 grid, dim3 block,
                             cudaStream_t stream, bool pdl, Args&&... args) {
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = 0;
  cfg.stream = stream;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr;
  cfg.numAttrs = pdl && pdl_enabled() && pdl_supported() ? 1 : 0;
  return cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...);
}

}  // namespace switchyard::detail
