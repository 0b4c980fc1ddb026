// Problem -> launch configuration for routing. Pure host code (no CUDA headers), unit-testable.
// The row layout depends on E only (never on M): that is what keeps results batch invariant.
#pragma once

#include <cstdint>

#include "../../common/routing_row.h"

namespace switchyard::heuristics {

struct RoutingLaunchConfig {
  int lanes;               // lanes per row (lane group width)
  int vals;                // experts per lane
  int threads;             // threads per block
  int rows_per_block;
  std::int64_t blocks;     // grid size (0 when M == 0)
};

inline constexpr int kRoutingThreadsPerBlock = 128;

inline RoutingLaunchConfig routing_launch_config(int num_experts, std::int64_t num_tokens) {
  const detail::RowLayout layout = detail::routing_layout(num_experts);
  const int rows_per_block = kRoutingThreadsPerBlock / layout.lanes;
  return RoutingLaunchConfig{layout.lanes, layout.vals, kRoutingThreadsPerBlock, rows_per_block,
                             (num_tokens + rows_per_block - 1) / rows_per_block};
}

}  // namespace switchyard::heuristics
