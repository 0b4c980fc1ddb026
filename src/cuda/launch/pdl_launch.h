// Host side of programmatic dependent launch: a kernel launch with the programmatic stream
// serialization attribute, so that the grid may start while the previous kernel in the stream
// finishes (the kernel must follow the contract in kernels/pdl.cuh). Captured into CUDA graphs as
// a programmatic edge. SWITCHYARD_PDL=0 in the environment turns it off (read once), for A/B
// measurements and as an escape hatch.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
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

// How a kernel is launched: grid, block, dynamic shared memory, a cluster size (0: none), and
// whether the launch is cooperative (every block resident at once, or the launch fails; needed by
// cooperative_groups' grid barrier).
struct LaunchShape {
  dim3 grid;
  dim3 block;
  std::size_t smem = 0;
  unsigned cluster_x = 0;
  bool cooperative = false;
};

// Launches `kernel` with `shape`, as a PDL secondary when `pdl` is set (and PDL is enabled and
// supported: see above). A kernel launched so must follow kernels/pdl.cuh's contract.
template <typename... KernelArgs, typename... Args>
cudaError_t launch_ex(void (*kernel)(KernelArgs...), const LaunchShape& shape, cudaStream_t stream,
                      bool pdl, Args&&... args) {
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = shape.grid;
  cfg.blockDim = shape.block;
  cfg.dynamicSmemBytes = shape.smem;
  cfg.stream = stream;
  cudaLaunchAttribute attr[3];
  unsigned n = 0;
  if (pdl && pdl_enabled() && pdl_supported()) {
    attr[n].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[n].val.programmaticStreamSerializationAllowed = 1;
    ++n;
  }
  if (shape.cluster_x > 0) {
    attr[n].id = cudaLaunchAttributeClusterDimension;
    attr[n].val.clusterDim.x = shape.cluster_x;
    attr[n].val.clusterDim.y = 1;
    attr[n].val.clusterDim.z = 1;
    ++n;
  }
  if (shape.cooperative) {
    attr[n].id = cudaLaunchAttributeCooperative;
    attr[n].val.cooperative = 1;
    ++n;
  }
  cfg.attrs = attr;
  cfg.numAttrs = n;
  return cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...);
}

template <typename... KernelArgs, typename... Args>
cudaError_t launch_maybe_pdl(void (*kernel)(KernelArgs...), dim3 grid, dim3 block,
                             cudaStream_t stream, bool pdl, Args&&... args) {
  return launch_ex(kernel, LaunchShape{grid, block}, stream, pdl, std::forward<Args>(args)...);
}

}  // namespace switchyard::detail
