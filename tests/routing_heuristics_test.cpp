// The routing launch heuristics are pure host code: every (E, M) must map to a layout that has a
// kernel instance, covers the row, and keeps at most 32 lanes per row.
#include <gtest/gtest.h>

#include "cuda/heuristics/routing.h"

namespace switchyard::heuristics {
namespace {

TEST(RoutingHeuristics, EveryShapeGetsAnInstantiatedLayout) {
  for (int E = 1; E <= kMaxRoutingExperts; ++E) {
    const int capacity = detail::routing_row_capacity(E);
    for (std::int64_t M : {0, 1, 7, 512, 2047, 2048, 4096, 100000}) {
      const RoutingLaunchConfig c = routing_launch_config(E, M);
      ASSERT_TRUE(routing_layout_valid(c.lanes, c.vals)) << "E" << E << " M" << M;
      ASSERT_EQ(c.lanes * c.vals, capacity) << "E" << E << " M" << M;
      ASSERT_EQ(c.rows_per_block * c.lanes, c.threads);
      ASSERT_GE(c.blocks * c.rows_per_block, M);
      ASSERT_LT((c.blocks - 1) * c.rows_per_block, std::max<std::int64_t>(M, 1));
    }
  }
}

TEST(RoutingHeuristics, MeasuredChoices) {
  EXPECT_EQ(routing_launch_config(256, 1).lanes, 32);
  EXPECT_EQ(routing_launch_config(256, 32768).lanes, 32);
  EXPECT_EQ(routing_launch_config(8, 1).lanes, 8);
  EXPECT_EQ(routing_launch_config(8, 4096).lanes, 8);
  EXPECT_EQ(routing_launch_config(8, 32768).lanes, 4);
  EXPECT_EQ(routing_launch_config(1024, 1).vals, 32);
}

TEST(RoutingHeuristics, ForcedLayoutsAreChecked) {
  EXPECT_TRUE(routing_vals_valid(256, 8));
  EXPECT_FALSE(routing_vals_valid(256, 3));    // not a power of two
  EXPECT_FALSE(routing_vals_valid(1024, 16));  // 64 lanes
  EXPECT_FALSE(routing_vals_valid(32, 16));    // 16 values with 2 lanes spills
  EXPECT_FALSE(routing_vals_valid(8, 16));     // more values than experts
  EXPECT_EQ(routing_launch_config(256, 1, 16).lanes, 16);
}

}  // namespace
}  // namespace switchyard::heuristics
