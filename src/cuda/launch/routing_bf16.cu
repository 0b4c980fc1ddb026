// Routing kernel instances for detail::bf16_t logits.
#include "routing_dispatch.cuh"

namespace switchyard::launch {
template cudaError_t launch_routing_for_dtype<detail::bf16_t>(
    const detail::RoutingKernelParams&, bool, bool, const heuristics::RoutingLaunchConfig&,
    std::size_t, cudaStream_t);
}  // namespace switchyard::launch
