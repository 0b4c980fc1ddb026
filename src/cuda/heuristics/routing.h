// Problem -> launch configuration for routing. Pure host code (no CUDA headers), unit-testable.
//
// Every layout (lanes x vals = next_pow2(E)) returns the same bits (src/common/routing_row.h), so
// this choice is about speed only and may depend on the number of rows without breaking batch
// invariance. Measured on an H100 (bench/results/, --vals sweeps): one lane group of min(32, C)
// lanes per row is as fast as any other layout for C >= 64 at every M, and the best for small M;
// for C <= 32 at >= 8192 rows four lanes per row beat eight (Mixtral, 32768 rows: 7.95 vs 10.35
// us) and one lane per row is much slower (18.5 us: too few blocks and a long serial chain).
#pragma once

#include <cstdint>

#include "../../common/routing_row.h"

namespace switchyard::heuristics {

struct RoutingLaunchConfig {
  int lanes;    // lanes per row (lane group width)
  int vals;     // experts per lane; lanes * vals = next_pow2(E)
  int threads;  // threads per block
  int rows_per_block;
  std::int64_t blocks;  // grid size (0 when M == 0)
};

inline constexpr int kRoutingThreadsPerBlock = 128;
inline constexpr int kRoutingMaxVals = 32;
inline constexpr int kSmallRowLanes = 4;  // lanes per row for C <= 32 with many rows
inline constexpr std::int64_t kSmallRowMinRows = 8192;

// A layout with an instance: vals a power of two in 1..32, lanes = C / vals in 1..32, and not
// (vals >= 16 with lanes <= 2): those hold 16-32 values and 16-32 output slots per thread and
// spill registers.
inline bool routing_layout_valid(int lanes, int vals) {
  return vals >= 1 && vals <= kRoutingMaxVals && (vals & (vals - 1)) == 0 && lanes >= 1 &&
         lanes <= 32 && (lanes & (lanes - 1)) == 0 && !(vals >= 16 && lanes <= 2);
}
inline bool routing_vals_valid(int num_experts, int vals) {
  const int capacity = detail::routing_row_capacity(num_experts);
  return vals >= 1 && vals <= capacity && capacity % vals == 0 &&
         routing_layout_valid(capacity / vals, vals);
}

// vals_override: 0 for the heuristic, else a value for which routing_vals_valid() holds.
inline RoutingLaunchConfig routing_launch_config(int num_experts, std::int64_t num_tokens,
                                                 int vals_override = 0) {
  const int capacity = detail::routing_row_capacity(num_experts);
  int vals = capacity > 32 ? capacity / 32 : 1;  // min(32, C) lanes per row
  if (capacity <= 32 && num_tokens >= kSmallRowMinRows && capacity > kSmallRowLanes) {
    vals = capacity / kSmallRowLanes;
  }
  if (vals_override > 0) vals = vals_override;
  const int lanes = capacity / vals;
  const int rows_per_block = kRoutingThreadsPerBlock / lanes;
  return RoutingLaunchConfig{lanes, vals, kRoutingThreadsPerBlock, rows_per_block,
                             (num_tokens + rows_per_block - 1) / rows_per_block};
}

}  // namespace switchyard::heuristics
