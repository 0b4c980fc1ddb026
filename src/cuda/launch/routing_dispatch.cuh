// Dispatch from runtime (E layout, id dtype) to a routing_kernel instance, for one logits dtype.
// Instantiated once per dtype in routing_<dtype>.cu so the instances compile in parallel.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "../heuristics/routing.h"
#include "../kernels/routing.cuh"

namespace switchyard::launch {

template <typename T, typename IdT, int kLanes, int kVals>
cudaError_t launch_routing_instance(const detail::RoutingKernelParams& kp, bool vec_ok,
                                    std::int64_t blocks, cudaStream_t stream) {
  static_assert(kLanes * kVals <= kMaxRoutingExperts || kVals == 32, "layout");
  kernels::routing_kernel<T, IdT, kLanes, kVals>
      <<<static_cast<unsigned>(blocks), kernels::kRoutingThreads, 0, stream>>>(kp, vec_ok);
  return cudaGetLastError();
}

// Returns cudaErrorInvalidConfiguration for a layout with no instance (unreachable after
// routing_check, which bounds E).
template <typename T, typename IdT>
cudaError_t launch_routing_layout(const detail::RoutingKernelParams& kp, bool vec_ok,
                                  const heuristics::RoutingLaunchConfig& cfg, cudaStream_t stream) {
  static_assert(heuristics::kRoutingThreadsPerBlock == kernels::kRoutingThreads, "threads");
#define SY_ROUTING_LAYOUT(L, V) \
  if (cfg.lanes == (L) && cfg.vals == (V)) return launch_routing_instance<T, IdT, L, V>(kp, vec_ok, cfg.blocks, stream)
  SY_ROUTING_LAYOUT(1, 1);
  SY_ROUTING_LAYOUT(2, 1);
  SY_ROUTING_LAYOUT(4, 1);
  SY_ROUTING_LAYOUT(8, 1);
  SY_ROUTING_LAYOUT(16, 1);
  SY_ROUTING_LAYOUT(32, 1);
  SY_ROUTING_LAYOUT(32, 2);
  SY_ROUTING_LAYOUT(32, 4);
  SY_ROUTING_LAYOUT(32, 8);
  SY_ROUTING_LAYOUT(32, 16);
  SY_ROUTING_LAYOUT(32, 32);
#undef SY_ROUTING_LAYOUT
  return cudaErrorInvalidConfiguration;
}

template <typename T>
cudaError_t launch_routing_for_dtype(const detail::RoutingKernelParams& kp, bool ids_int64,
                                     bool vec_ok, const heuristics::RoutingLaunchConfig& cfg,
                                     cudaStream_t stream) {
  return ids_int64 ? launch_routing_layout<T, std::int64_t>(kp, vec_ok, cfg, stream)
                   : launch_routing_layout<T, std::int32_t>(kp, vec_ok, cfg, stream);
}

}  // namespace switchyard::launch
