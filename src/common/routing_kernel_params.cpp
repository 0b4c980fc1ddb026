#include "routing_kernel_params.h"

namespace switchyard::detail {

RoutingKernelParams make_routing_kernel_params(const RoutingParams& p, const RoutingArgs& a) {
  RoutingKernelParams kp{};
  kp.p = p;
  kp.logits = a.logits.data;
  kp.num_tokens = a.logits.size(0);
  kp.row_stride = kp.num_tokens > 1 ? a.logits.stride(0) : p.num_experts;
  kp.bias = static_cast<const float*>(a.bias.data);
  kp.num_tokens_non_padded = static_cast<const std::int32_t*>(a.num_tokens_non_padded.data);
  kp.placement = static_cast<const std::int32_t*>(a.placement.data);
  kp.replica_counts = static_cast<const std::int32_t*>(a.replica_counts.data);
  kp.max_replicas = a.placement.defined() && a.placement.ndim == 2
                        ? static_cast<std::int32_t>(a.placement.size(1))
                        : 1;
  kp.num_physical_experts = a.placement.defined() ? a.num_physical_experts : p.num_experts;
  kp.expert_map = static_cast<const std::int32_t*>(a.expert_map.data);
  kp.num_local_experts = a.num_local_experts;
  kp.weights = static_cast<float*>(a.top_k_weights.data);
  kp.ids = a.top_k_ids.data;
  return kp;
}

}  // namespace switchyard::detail
