// Routing kernel instances for detail::fp16_t logits.
#include "routing_dispatch.cuh"

namespace switchyard::launch {
template cudaError_t launch_routing_for_dtype<detail::fp16_t>(const detail::RoutingKernelParams&, bool, bool,
                                                   const heuristics::RoutingLaunchConfig&,
                                                   cudaStream_t);
}  // namespace switchyard::launch
