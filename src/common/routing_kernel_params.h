// The raw-pointer form of a validated routing call, consumed by both backends' row loops.
#pragma once

#include <cstdint>

#include "host_device.h"
#include "switchyard/routing.h"

namespace switchyard::detail {

struct RoutingKernelParams {
  RoutingParams p;
  const void* logits;  // [num_tokens, E] at row_stride elements
  std::int64_t row_stride;
  std::int64_t num_tokens;                    // M
  const float* bias;                          // [E] or null
  const std::int32_t* num_tokens_non_padded;  // scalar or null
  const std::int32_t* placement;              // [E] or [E, max_replicas] or null
  const std::int32_t* replica_counts;         // [E] or null (static map)
  std::int32_t max_replicas;
  std::int32_t num_physical_experts;  // P
  const std::int32_t* expert_map;     // [P] or null
  std::int32_t num_local_experts;
  float* weights;  // [M, K+S]
  void* ids;       // [M, K+S] int32 or int64
};

RoutingKernelParams make_routing_kernel_params(const RoutingParams& p, const RoutingArgs& a);

// Routed expert `expert` of column k of `row`: logical -> physical -> local. Never reads outside
// the tables: out-of-range table contents give -1.
SY_HD std::int32_t map_routed_id(const RoutingKernelParams& kp, int expert, std::int64_t row,
                                 int k) {
  std::int32_t id = expert;
  if (kp.placement) {
    if (kp.replica_counts) {
      std::int32_t count = kp.replica_counts[expert];
      count = count < 1 ? 1 : (count > kp.max_replicas ? kp.max_replicas : count);
      const std::int64_t slot = row * kp.p.top_k + k;
      id = kp.placement[static_cast<std::int64_t>(expert) * kp.max_replicas + slot % count];
    } else {
      id = kp.placement[expert];
    }
  }
  if (kp.expert_map) {
    id = (id >= 0 && id < kp.num_physical_experts) ? kp.expert_map[id] : -1;
  }
  return id;
}

// Id of fused shared expert i (column K + i).
SY_HD std::int32_t shared_expert_id(const RoutingKernelParams& kp, int i) {
  return (kp.expert_map ? kp.num_local_experts : kp.num_physical_experts) + i;
}

}  // namespace switchyard::detail
