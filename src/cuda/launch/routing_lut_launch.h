// Launcher of the LUT routing kernel (kernels/routing_lut.cuh), called by route_cuda_layout.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "../../common/routing_kernel_params.h"
#include "../heuristics/routing.h"

namespace switchyard::launch {

// Calls of up to this many rows launch as PDL secondaries, as the other routing kernels
// (routing_dispatch.cuh, kRoutingPdlMaxRows).
inline constexpr std::int64_t kRoutingLutPdlMaxRows = 512;

// cfg from heuristics::routing_launch_config with cfg.lut; sms: the device's multiprocessors (one
// block per SM at most; the warps take tiles of rows round-robin, kernels/routing_lut.cuh).
cudaError_t launch_routing_lut(const detail::RoutingKernelParams& kp, bool vec_ok, bool ids_int64,
                               const heuristics::RoutingLaunchConfig& cfg, int sms,
                               cudaStream_t stream);

}  // namespace switchyard::launch
