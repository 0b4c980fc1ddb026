// The routing launch heuristics are pure host code: every (E, M) must map to a layout that has a
// kernel instance and covers the row: lane groups of at most 32 lanes, or row blocks of whole
// warps covering E within the row-block thread limit.
#include <gtest/gtest.h>

#include <utility>

#include "cuda/heuristics/routing.h"

namespace switchyard::heuristics {
namespace {

TEST(RoutingHeuristics, EveryShapeGetsAnInstantiatedLayout) {
  for (int E = 1; E <= kMaxRoutingExperts; ++E) {
    const int capacity = detail::routing_row_capacity(E);
    for (std::int64_t M : {0, 1, 7, 128, 129, 512, 513, 2047, 2048, 4096, 100000}) {
      const RoutingLaunchConfig c = routing_launch_config(E, M);
      const bool warp = E <= kWarpRoutingMaxExperts && M >= 1 && M < kRowThreadMinRows;
      ASSERT_EQ(c.warp, warp) << "E" << E << " M" << M;
      if (c.warp) {
        ASSERT_EQ(c.threads, kWarpRoutingThreadsPerBlock);
        ASSERT_EQ(c.rows_per_block * 32, c.threads);
        ASSERT_GE(c.blocks * c.rows_per_block, M);
        ASSERT_LT((c.blocks - 1) * c.rows_per_block, M);
        continue;
      }
      ASSERT_EQ(c.row_block, M <= kRowBlockMaxRows) << "E" << E << " M" << M;
      if (c.row_block) {
        ASSERT_TRUE(routing_row_block_valid(E, c.vals)) << "E" << E << " M" << M;
        ASSERT_EQ(c.threads % 32, 0);
        ASSERT_GE(c.threads * c.vals, E);
        ASSERT_LT((c.threads - 32) * c.vals, E);
        ASSERT_LE(c.threads, M <= kRowBlockWideRows ? kRowBlockMaxThreads : 256);
        ASSERT_EQ(c.rows_per_block, 1);
        ASSERT_EQ(c.blocks, M);
        continue;
      }
      ASSERT_TRUE(routing_layout_valid(c.lanes, c.vals)) << "E" << E << " M" << M;
      ASSERT_EQ(c.lanes * c.vals, capacity) << "E" << E << " M" << M;
      ASSERT_EQ(c.rows_per_block * c.lanes, c.threads);
      ASSERT_GE(c.blocks * c.rows_per_block, M);
      ASSERT_LT((c.blocks - 1) * c.rows_per_block, std::max<std::int64_t>(M, 1));
    }
  }
}

TEST(RoutingHeuristics, MeasuredChoices) {
  EXPECT_EQ(routing_launch_config(256, 32768).lanes, 32);
  EXPECT_TRUE(routing_launch_config(8, 4096).warp);
  EXPECT_EQ(routing_launch_config(8, 32768).lanes, 4);
  EXPECT_EQ(routing_launch_config(1024, 513).vals, 32);
}

// Decode sizes take row blocks: one thread per expert where it fits (256 experts: 8 warps), two
// or four experts per thread for wide rows, and at most 256 threads above 128 rows.
TEST(RoutingHeuristics, RowBlocksForSmallBatches) {
  const RoutingLaunchConfig dsv3 = routing_launch_config(256, 1);
  EXPECT_TRUE(dsv3.row_block);
  EXPECT_EQ(dsv3.vals, 1);
  EXPECT_EQ(dsv3.threads, 256);
  EXPECT_EQ(dsv3.blocks, 1);
  EXPECT_EQ(routing_launch_config(384, 1).threads, 384);
  EXPECT_EQ(routing_launch_config(384, 512).threads, 192);
  EXPECT_EQ(routing_launch_config(384, 512).vals, 2);
  EXPECT_EQ(routing_launch_config(1024, 1).vals, 2);
  EXPECT_EQ(routing_launch_config(1024, 512).vals, 4);
  EXPECT_EQ(routing_launch_config(8, 1, -1).threads, 32);  // E <= 32: the warp kernel's
  EXPECT_EQ(routing_launch_config(160, 7).threads, 160);
  EXPECT_FALSE(routing_launch_config(256, 513).row_block);
}

// Ranked warp lists (one expert per thread) where groups do not apply or are one warp each, up
// to kRowBlockListsMaxRows rows (measured: DeepSeek-V3 and Kimi K2 gain up to 256 rows); there the
// heuristic keeps one expert per thread above kRowBlockWideRows too.
TEST(RoutingHeuristics, RowBlockListsRule) {
  EXPECT_TRUE(routing_row_block_lists_serve(256, 8));   // DeepSeek-V3: groups of 32
  EXPECT_FALSE(routing_row_block_lists_serve(160, 8));  // DeepSeek-V2: groups of 20
  EXPECT_FALSE(routing_row_block_lists_serve(512, 8));  // groups of 64: two warps each
  EXPECT_TRUE(routing_row_block_lists_serve(384, 0));   // Kimi K2
  EXPECT_TRUE(routing_row_block_lists_pay(256));
  EXPECT_FALSE(routing_row_block_lists_pay(257));
  auto kimi = [](std::int64_t M) {
    return routing_launch_config(384, M, 0, true, false, 9, false, 0, 0, 0, true);
  };
  EXPECT_EQ(kimi(1).vals, 1);
  EXPECT_EQ(kimi(256).vals, 1);
  EXPECT_EQ(kimi(256).threads, 384);
  EXPECT_EQ(kimi(257).vals, 2);
  EXPECT_EQ(kimi(257).threads, 192);
  // Without lists the rule before: at most 256 threads above kRowBlockWideRows rows.
  EXPECT_EQ(routing_launch_config(384, 192, 0, true, false, 9, false, 0, 0, 0, false).vals, 2);
  EXPECT_EQ(routing_launch_config(256, 512, 0, true, false, 9, true, 0, 0, 0, true).vals, 1);
}

// Row blocks only where they pay (measured): grouped routings, K >= 6, and rows of E <= 32 (one
// warp either way; Mixtral K=2); lane groups for the other short rows (Llama 4 K=1, gpt-oss K=4)
// at every M.
TEST(RoutingHeuristics, RowBlocksOnlyWhereTheyPay) {
  EXPECT_TRUE(routing_row_blocks_pay(128, 8, false));
  EXPECT_TRUE(routing_row_blocks_pay(256, 6, true));
  EXPECT_TRUE(routing_row_blocks_pay(160, 1, true));
  EXPECT_TRUE(routing_row_blocks_pay(8, 2, false));
  EXPECT_TRUE(routing_row_blocks_pay(32, 4, false));
  EXPECT_FALSE(routing_row_blocks_pay(33, 4, false));
  EXPECT_FALSE(routing_row_blocks_pay(128, 4, false));
  EXPECT_FALSE(routing_row_blocks_pay(128, 1, false));
  EXPECT_FALSE(routing_launch_config(128, 1, 0, false).row_block);
  EXPECT_TRUE(routing_launch_config(128, 1, 0, true).row_block);
  EXPECT_TRUE(routing_launch_config(128, 1, -1, false).row_block);  // forced layouts stay
  // Mixtral: the warp kernel (not a row block) below kRowThreadMinRows rows, lane groups of 4 or
  // the row thread from there.
  const bool mixtral_pays = routing_row_blocks_pay(8, 2, false);
  EXPECT_FALSE(routing_launch_config(8, 1, 0, mixtral_pays).row_block);
  EXPECT_TRUE(routing_launch_config(8, 1, 0, mixtral_pays).warp);
  EXPECT_TRUE(routing_launch_config(8, kRowBlockMaxRows + 1, 0, mixtral_pays).warp);
  EXPECT_FALSE(routing_launch_config(8, kRowThreadMinRows, 0, mixtral_pays).warp);
}

TEST(RoutingHeuristics, ForcedLayoutsAreChecked) {
  EXPECT_TRUE(routing_vals_valid(256, 8));
  EXPECT_FALSE(routing_vals_valid(256, 3));    // not a power of two
  EXPECT_FALSE(routing_vals_valid(1024, 16));  // 64 lanes
  EXPECT_FALSE(routing_vals_valid(32, 16));    // 16 values with 2 lanes spills
  EXPECT_FALSE(routing_vals_valid(8, 16));     // more values than experts
  EXPECT_EQ(routing_launch_config(256, 1, 16).lanes, 16);
  EXPECT_FALSE(routing_launch_config(256, 1, 16).row_block);
  // Row-block codes: -1, -2, -4, -8, -16 within kRowBlockMaxThreads threads.
  EXPECT_TRUE(routing_layout_code_valid(256, -1));
  EXPECT_TRUE(routing_layout_code_valid(512, -1));
  EXPECT_FALSE(routing_layout_code_valid(1024, -1));  // 1024 threads
  EXPECT_TRUE(routing_layout_code_valid(1024, -2));
  EXPECT_FALSE(routing_layout_code_valid(256, -3));
  EXPECT_TRUE(routing_layout_code_valid(256, -8));  // one warp per row
  EXPECT_TRUE(routing_layout_code_valid(8, -16));
  EXPECT_FALSE(routing_layout_code_valid(256, -32));
  EXPECT_TRUE(routing_layout_code_valid(256, 0));
  const RoutingLaunchConfig forced = routing_launch_config(256, 100000, -2);
  EXPECT_TRUE(forced.row_block);
  EXPECT_EQ(forced.vals, 2);
  EXPECT_EQ(forced.threads, 128);
  EXPECT_EQ(forced.blocks, 100000);
  // The pre-filter (code 64): one warp per row, 2..16 experts per lane.
  EXPECT_FALSE(routing_layout_code_valid(32, kRoutingPrefilterCode));
  EXPECT_TRUE(routing_layout_code_valid(33, kRoutingPrefilterCode));
  EXPECT_TRUE(routing_layout_code_valid(384, kRoutingPrefilterCode));
  EXPECT_FALSE(routing_layout_code_valid(513, kRoutingPrefilterCode));  // 32 per lane spills
  EXPECT_FALSE(routing_layout_code_valid(256, 48));
  // The row thread (code 65): E <= 32; 8 / 16 / 32 experts and 2 / 8 / 32 columns per thread.
  EXPECT_TRUE(routing_layout_code_valid(1, kRoutingRowThreadCode));
  EXPECT_TRUE(routing_layout_code_valid(32, kRoutingRowThreadCode));
  EXPECT_FALSE(routing_layout_code_valid(33, kRoutingRowThreadCode));
  const RoutingLaunchConfig rt =
      routing_launch_config(12, 300, kRoutingRowThreadCode, true, false, /*columns=*/3);
  EXPECT_TRUE(rt.row_thread);
  EXPECT_FALSE(rt.row_block);
  EXPECT_EQ(rt.vals, 16);
  EXPECT_EQ(rt.lanes, 8);
  EXPECT_EQ(rt.blocks, 3);  // 128 rows per block
  EXPECT_EQ(routing_launch_config(8, 1, kRoutingRowThreadCode, true, false, 2).lanes, 2);
  EXPECT_EQ(routing_launch_config(32, 1, kRoutingRowThreadCode, true, false, 9).lanes, 32);
  // The heuristic's from 8192 rows for E <= 32, K + S <= 8, no groups.
  EXPECT_FALSE(routing_launch_config(8, 4096, 0, true, false, 2).row_thread);
  EXPECT_TRUE(routing_launch_config(8, 8192, 0, true, false, 2).row_thread);
  EXPECT_TRUE(routing_launch_config(32, 32768, 0, true, false, 8).row_thread);
  EXPECT_FALSE(routing_launch_config(33, 32768, 0, true, false, 8).row_thread);
  EXPECT_FALSE(routing_launch_config(8, 32768, 0, true, false, 9).row_thread);
  EXPECT_FALSE(routing_launch_config(8, 32768, 0, true, false, 2, /*grouped=*/true).row_thread);
  EXPECT_FALSE(routing_launch_config(8, 32768, 4, true, false, 2).row_thread);  // forced
  // The warp kernel (code 68): E <= 32, one warp per row, 4 rows per block.
  EXPECT_TRUE(routing_layout_code_valid(1, kRoutingWarpCode));
  EXPECT_TRUE(routing_layout_code_valid(32, kRoutingWarpCode));
  EXPECT_FALSE(routing_layout_code_valid(33, kRoutingWarpCode));
  const RoutingLaunchConfig wk = routing_launch_config(8, 9, kRoutingWarpCode, true, false, 2);
  EXPECT_TRUE(wk.warp);
  EXPECT_FALSE(wk.row_block);
  EXPECT_FALSE(wk.row_thread);
  EXPECT_EQ(wk.threads, 128);
  EXPECT_EQ(wk.rows_per_block, 4);
  EXPECT_EQ(wk.blocks, 3);
  EXPECT_EQ(wk.vals, 1);
  // The wide warp kernel (code 69): 33 <= E <= 512, next_pow2(E) / 32 experts per lane.
  EXPECT_FALSE(routing_layout_code_valid(32, kRoutingWarpWideCode));
  EXPECT_TRUE(routing_layout_code_valid(33, kRoutingWarpWideCode));
  EXPECT_TRUE(routing_layout_code_valid(512, kRoutingWarpWideCode));
  EXPECT_FALSE(routing_layout_code_valid(513, kRoutingWarpWideCode));
  for (const auto& [e, vals] : {std::pair{33, 2}, {128, 4}, {160, 8}, {256, 8}, {384, 16}}) {
    const RoutingLaunchConfig ww = routing_launch_config(e, 5, kRoutingWarpWideCode);
    EXPECT_TRUE(ww.warp);
    EXPECT_EQ(ww.lanes, 32);
    EXPECT_EQ(ww.vals, vals) << e;
    EXPECT_EQ(ww.rows_per_block, 4);
    EXPECT_EQ(ww.blocks, 2);
  }
  // The heuristic's for ungrouped softmax-like routings: 33..128 experts up to 8191 rows (the quad
  // kernel's from 8192), 129..256 up to 4096.
  EXPECT_EQ(routing_warp_wide_rows(33, ScoreFunc::kSoftmax, false), 8191);
  EXPECT_EQ(routing_warp_wide_rows(128, ScoreFunc::kSoftmax, false), 8191);
  EXPECT_EQ(routing_warp_wide_rows(128, ScoreFunc::kTopkThenSoftmax, false), 8191);
  EXPECT_EQ(routing_warp_wide_rows(128, ScoreFunc::kTopkThenSigmoid, false), 8191);
  EXPECT_EQ(routing_warp_wide_rows(160, ScoreFunc::kSoftmax, false), 4096);
  EXPECT_EQ(routing_warp_wide_rows(256, ScoreFunc::kSoftmax, false), 4096);
  EXPECT_EQ(routing_warp_wide_rows(257, ScoreFunc::kSoftmax, false), 0);
  EXPECT_EQ(routing_warp_wide_rows(160, ScoreFunc::kSoftmax, true), 0);  // grouped, no words
  // Grouped softmax-like rows of 129..256 experts with groups that need drop_groups' words
  // (DeepSeek-V2: 8 groups of 20 over 8 experts per lane): every M above the row blocks.
  EXPECT_TRUE(routing_groups_need_words(160, 8, 8));
  EXPECT_FALSE(routing_groups_need_words(256, 8, 8));  // DeepSeek-V3: 4 whole lanes per group
  EXPECT_TRUE(routing_groups_need_words(384, 8, 16));  // 3 lanes per group
  EXPECT_EQ(routing_warp_wide_rows(160, ScoreFunc::kSoftmax, true, true), kWarpWideMaxRowsGrouped);
  EXPECT_EQ(routing_warp_wide_rows(128, ScoreFunc::kSoftmax, true, true), 0);
  EXPECT_EQ(routing_warp_wide_rows(160, ScoreFunc::kSigmoid, true, true), 0);
  for (std::int64_t m : {1, 512, 513, 4096, 32768}) {
    const RoutingLaunchConfig g =
        routing_launch_config(160, m, 0, true, false, 6, true, 0, 0, kWarpWideMaxRowsGrouped);
    EXPECT_EQ(g.warp, m > kRowBlockMaxRows) << m;
    EXPECT_EQ(g.row_block, m <= kRowBlockMaxRows) << m;
    if (g.warp) {
      EXPECT_EQ(g.vals, 8) << m;
    }
  }
  EXPECT_EQ(routing_warp_wide_rows(128, ScoreFunc::kSigmoid, false), 0);
  EXPECT_EQ(routing_warp_wide_rows(128, ScoreFunc::kSqrtSoftplus, false), 0);
  EXPECT_EQ(routing_warp_wide_rows(32, ScoreFunc::kSoftmax, false), 0);
  for (std::int64_t m : {1, 32, 512, 4096, 8191}) {
    const RoutingLaunchConfig h =
        routing_launch_config(128, m, 0, true, false, 8, false, 0, 0, /*warp_wide_rows=*/8191);
    EXPECT_TRUE(h.warp) << m;
    EXPECT_EQ(h.vals, 4) << m;
    EXPECT_FALSE(h.row_block) << m;
  }
  EXPECT_FALSE(routing_launch_config(128, 8192, 0, true, false, 8, false, 0, 0, 8191).warp);
  EXPECT_EQ(routing_launch_config(160, 4096, 0, true, false, 8, false, 0, 0, 4096).vals, 8);
  EXPECT_FALSE(routing_launch_config(160, 4097, 0, true, false, 8, false, 0, 0, 4096).warp);
  EXPECT_FALSE(routing_launch_config(128, 512, 0, true, false, 8, false, 0, 0, 0).warp);
  EXPECT_TRUE(routing_launch_config(128, 512, 0, true, false, 8, false, 0, 0, 0).row_block);
  // The heuristic's for E <= 32 below the row thread's kRowThreadMinRows rows.
  EXPECT_TRUE(routing_launch_config(8, 1).warp);
  EXPECT_TRUE(routing_launch_config(32, 8191, 0, true, false, 2).warp);
  EXPECT_FALSE(routing_launch_config(8, 8192, 0, true, false, 2).warp);
  EXPECT_TRUE(routing_launch_config(8, 8192, 0, true, false, 2).row_thread);
  EXPECT_FALSE(routing_launch_config(33, 1).warp);
  EXPECT_FALSE(routing_launch_config(8, 1, -1).warp);  // forced row blocks
  const RoutingLaunchConfig pf = routing_launch_config(256, 32768, kRoutingPrefilterCode);
  EXPECT_TRUE(pf.prefilter);
  EXPECT_FALSE(pf.row_block);
  EXPECT_EQ(pf.lanes, 32);
  EXPECT_EQ(pf.vals, 8);
  EXPECT_EQ(pf.blocks, 8192);
  for (std::int64_t m : {1, 512, 4096, 32768}) {
    EXPECT_FALSE(routing_launch_config(256, m).prefilter);  // not applicable: not the heuristic's
  }
  // The heuristic takes it above the row blocks' range where it applies and rows are long.
  EXPECT_FALSE(routing_launch_config(256, 512, 0, true, true).prefilter);
  EXPECT_TRUE(routing_launch_config(256, 512, 0, true, true).row_block);
  for (std::int64_t m : {513, 4096, 32768}) {
    const RoutingLaunchConfig h = routing_launch_config(256, m, 0, true, true);
    EXPECT_TRUE(h.prefilter) << m;
    EXPECT_EQ(h.lanes, 32);
    EXPECT_EQ(h.vals, 8);
    EXPECT_FALSE(routing_launch_config(256, m, 0, false, true).prefilter) << m;  // short rows
  }
  // Where it applies: sigmoid without softcap, 33 <= E <= 512, groups of whole power-of-two lanes.
  EXPECT_TRUE(routing_prefilter_applies(256, true, 8));    // DeepSeek-V3: 32 experts = 4 lanes
  EXPECT_TRUE(routing_prefilter_applies(384, true, 0));    // Kimi K2, not grouped
  EXPECT_FALSE(routing_prefilter_applies(256, false, 8));  // softmax / softcap
  EXPECT_FALSE(routing_prefilter_applies(32, true, 0));    // E <= 32: one value per lane
  EXPECT_FALSE(routing_prefilter_applies(600, true, 0));   // E > 512
  EXPECT_FALSE(routing_prefilter_applies(256, true, 64));  // groups of 4 experts: half a lane
  EXPECT_FALSE(routing_prefilter_applies(288, true, 3));   // groups of 96 = 6 lanes
}

// The quad kernel (code 66): which routings it serves (detail::routing_quad_vals), its instances
// (vals 32 / 64 / 96) and the heuristic's choice above 512 rows.
TEST(RoutingHeuristics, QuadKernelServesAndIsChosenAbove512Rows) {
  using detail::routing_quad_vals;
  const GroupScore none = GroupScore::kNone, top2 = GroupScore::kTop2Sum;
  EXPECT_EQ(routing_quad_vals(256, 8, ScoreFunc::kSigmoid, false, top2, 8, 4), 64);  // DeepSeek-V3
  EXPECT_EQ(routing_quad_vals(384, 8, ScoreFunc::kSigmoid, false, none, 0, 0), 96);  // Kimi K2
  EXPECT_EQ(routing_quad_vals(128, 8, ScoreFunc::kSoftmax, false, none, 0, 0), 32);  // Qwen3
  EXPECT_EQ(routing_quad_vals(128, 4, ScoreFunc::kTopkThenSoftmax, false, none, 0, 0), 32);
  EXPECT_EQ(routing_quad_vals(128, 1, ScoreFunc::kTopkThenSigmoid, false, none, 0, 0), 32);
  EXPECT_EQ(routing_quad_vals(512, 8, ScoreFunc::kSigmoid, false, top2, 16, 4), 0);  // 128 each
  EXPECT_EQ(routing_quad_vals(384, 8, ScoreFunc::kSoftmax, false, none, 0, 0), 0);   // 128 each
  EXPECT_EQ(routing_quad_vals(384, 8, ScoreFunc::kTopkThenSoftmax, false, none, 0, 0), 96);
  EXPECT_EQ(routing_quad_vals(256, 9, ScoreFunc::kSigmoid, false, none, 0, 0), 0);  // K > 8
  EXPECT_EQ(routing_quad_vals(256, 8, ScoreFunc::kSigmoid, true, none, 0, 0), 0);   // softcap
  EXPECT_EQ(routing_quad_vals(256, 8, ScoreFunc::kSqrtSoftplus, false, none, 0, 0), 0);
  EXPECT_EQ(routing_quad_vals(160, 8, ScoreFunc::kSoftmax, false, GroupScore::kMax, 8, 3), 0);
  EXPECT_EQ(routing_quad_vals(256, 8, ScoreFunc::kSigmoid, false, top2, 16, 4), 0);  // 16 each
  EXPECT_EQ(routing_quad_vals(256, 8, ScoreFunc::kSigmoid, false, top2, 8, 3), 64);  // 3*3 >= 8
  EXPECT_EQ(routing_quad_vals(256, 8, ScoreFunc::kSigmoid, false, top2, 8, 2), 0);   // 3*2 < 8
  // E = 160 (Qwen3-Coder) would be lanes of 64, 64, 32 and 0 experts: slower than lane groups.
  EXPECT_EQ(routing_quad_vals(160, 8, ScoreFunc::kSoftmax, false, none, 0, 0), 0);
  EXPECT_EQ(routing_quad_vals(97, 8, ScoreFunc::kSigmoid, false, none, 0, 0), 32);  // 32 x 3 + 1
  EXPECT_EQ(routing_quad_vals(96, 4, ScoreFunc::kSigmoid, false, none, 0, 0), 0);
  EXPECT_EQ(routing_quad_vals(64, 8, ScoreFunc::kSigmoid, false, none, 0, 0), 0);
  EXPECT_EQ(routing_quad_vals(513, 8, ScoreFunc::kSigmoid, false, none, 0, 0), 0);
  for (int E = 1; E <= kMaxRoutingExperts; ++E) {
    for (ScoreFunc f : {ScoreFunc::kSoftmax, ScoreFunc::kSigmoid, ScoreFunc::kTopkThenSoftmax}) {
      const int v = routing_quad_vals(E, 8, f, false, none, 0, 0);
      if (v == 0) continue;
      ASSERT_TRUE(v == 32 || v == 64 || v == 96);
      ASSERT_GE(4 * v, E);  // the row fits
      ASSERT_GT(E, 3 * v);  // every lane holds experts
      if (f == ScoreFunc::kSoftmax) {
        ASSERT_EQ(4 * v, detail::routing_row_capacity(E));
      }
    }
  }
  const int vals = 64;
  for (std::int64_t m : {1, 512, 513, 8191}) {
    EXPECT_FALSE(routing_launch_config(256, m, 0, true, true, 8, true, vals).quad) << m;
  }
  // From 8192 rows, from 4096 for E > 256 (96 per lane): the measured crossovers.
  EXPECT_TRUE(routing_launch_config(256, 8192, 0, true, true, 8, true, vals).quad);
  EXPECT_TRUE(routing_launch_config(128, 8192, 0, true, false, 8, false, 32).quad);
  EXPECT_FALSE(routing_launch_config(384, 4095, 0, true, true, 8, false, 96).quad);
  EXPECT_TRUE(routing_launch_config(384, 4096, 0, true, true, 8, false, 96).quad);
  const RoutingLaunchConfig q = routing_launch_config(256, 32768, 0, true, true, 8, true, vals);
  EXPECT_TRUE(q.quad);
  EXPECT_FALSE(q.prefilter);
  EXPECT_EQ(q.lanes, 4);
  EXPECT_EQ(q.vals, 64);
  EXPECT_EQ(q.rows_per_block, 32);
  EXPECT_EQ(q.blocks, 1024);
  EXPECT_TRUE(routing_launch_config(256, 1, kRoutingQuadCode, true, true, 8, true, vals).quad);
  EXPECT_FALSE(routing_launch_config(256, 32768, 8, true, true, 8, true, vals).quad);  // forced
  EXPECT_FALSE(routing_launch_config(256, 32768, 0, true, true, 8, true, 0).quad);
  EXPECT_TRUE(routing_layout_code_valid(65, kRoutingQuadCode));
  EXPECT_FALSE(routing_layout_code_valid(64, kRoutingQuadCode));
}

TEST(RoutingHeuristics, PackedKernelServesLogitKeyedRowsOf16BitLogits) {
  using detail::routing_packed_serves;
  const GroupScore none = GroupScore::kNone;
  // Qwen3 (softmax, 128), gpt-oss (top-k then softmax), Llama 4 (top-k then sigmoid), bf16/fp16.
  EXPECT_TRUE(routing_packed_serves(128, 8, ScoreFunc::kSoftmax, false, none, false, 2));
  EXPECT_TRUE(routing_packed_serves(128, 4, ScoreFunc::kTopkThenSoftmax, false, none, false, 2));
  EXPECT_TRUE(routing_packed_serves(128, 1, ScoreFunc::kTopkThenSigmoid, false, none, false, 2));
  EXPECT_TRUE(routing_packed_serves(33, 8, ScoreFunc::kSoftmax, false, none, false, 2));
  EXPECT_TRUE(routing_packed_serves(512, 8, ScoreFunc::kSoftmax, false, none, false, 2));
  // Not served: fp32 logits, a bias, softcap, sigmoid keys, groups, K > 8, E outside 33..512.
  EXPECT_FALSE(routing_packed_serves(128, 8, ScoreFunc::kSoftmax, false, none, false, 4));
  EXPECT_FALSE(routing_packed_serves(128, 8, ScoreFunc::kSoftmax, false, none, true, 2));
  EXPECT_FALSE(routing_packed_serves(128, 8, ScoreFunc::kSoftmax, true, none, false, 2));
  EXPECT_FALSE(routing_packed_serves(128, 8, ScoreFunc::kSigmoid, false, none, false, 2));
  EXPECT_FALSE(
      routing_packed_serves(160, 6, ScoreFunc::kSoftmax, false, GroupScore::kMax, false, 2));
  EXPECT_FALSE(routing_packed_serves(128, 9, ScoreFunc::kSoftmax, false, none, false, 2));
  EXPECT_FALSE(routing_packed_serves(32, 8, ScoreFunc::kSoftmax, false, none, false, 2));
  EXPECT_FALSE(routing_packed_serves(513, 8, ScoreFunc::kSoftmax, false, none, false, 2));
  // Experts per lane by rows: 8 below 2048 rows, 16 up to 8191 (4095 from 256 leaves), then 32;
  // always 4..32 lanes per row.
  EXPECT_EQ(routing_packed_vals(128, 512), 8);
  EXPECT_EQ(routing_packed_vals(128, 2048), 16);
  EXPECT_EQ(routing_packed_vals(128, 8191), 16);
  EXPECT_EQ(routing_packed_vals(128, 8192), 32);
  EXPECT_EQ(routing_packed_vals(160, 4096), 32);
  EXPECT_EQ(routing_packed_vals(64, 32768), 16);  // (4 lanes at least)
  EXPECT_EQ(routing_packed_vals(512, 512), 16);   // (32 lanes at most)
  // Chosen where it serves (softmax from 1 row, the top-k-then functions from kPackedMinRowsTopk),
  // ahead of the wide warp and quad kernels; forced by 70..73.
  EXPECT_EQ(routing_packed_rows(true, ScoreFunc::kSoftmax), 1);
  EXPECT_EQ(routing_packed_rows(true, ScoreFunc::kTopkThenSoftmax), kPackedMinRowsTopk);
  EXPECT_EQ(routing_packed_rows(false, ScoreFunc::kSoftmax), 0);
  const auto at = [](std::int64_t m, int code, bool serves) {
    return routing_launch_config(128, m, code, true, false, 8, false, 32, 0, 8191, false,
                                 serves ? kPackedMinRowsTopk : 0);
  };
  EXPECT_FALSE(at(kPackedMinRowsTopk - 1, 0, true).packed);
  EXPECT_TRUE(at(kPackedMinRowsTopk, 0, true).packed);
  const RoutingLaunchConfig c = at(32768, 0, true);
  EXPECT_TRUE(c.packed);
  EXPECT_FALSE(c.quad);
  EXPECT_EQ(c.lanes, 4);
  EXPECT_EQ(c.vals, 32);
  EXPECT_EQ(c.rows_per_block, 32);
  EXPECT_EQ(c.blocks, 1024);
  const RoutingLaunchConfig f = at(1, kRoutingPacked8Code, true);
  EXPECT_TRUE(f.packed);
  EXPECT_EQ(f.vals, 8);
  EXPECT_EQ(f.lanes, 16);
  EXPECT_EQ(at(1, kRoutingPackedCode, true).vals, 8);
  EXPECT_FALSE(at(32768, 0, false).packed);
  EXPECT_TRUE(routing_layout_code_valid(33, kRoutingPackedCode));
  EXPECT_FALSE(routing_layout_code_valid(32, kRoutingPackedCode));
  EXPECT_FALSE(routing_layout_code_valid(513, kRoutingPackedCode));
  EXPECT_TRUE(routing_layout_code_valid(128, kRoutingPacked8Code));
  EXPECT_TRUE(routing_layout_code_valid(128, kRoutingPacked32Code));
  EXPECT_FALSE(routing_layout_code_valid(64, kRoutingPacked32Code));  // 2 lanes
  EXPECT_FALSE(routing_layout_code_valid(512, kRoutingPacked8Code));  // 64 lanes
}

TEST(RoutingHeuristics, LutKernelServesBf16SigmoidRows) {
  using detail::routing_lut_serves;
  const GroupScore none = GroupScore::kNone, top2 = GroupScore::kTop2Sum;
  // DeepSeek-V3 (8 groups of 32), Kimi K2 (384, no groups), sigmoid without bias, K 1..8.
  EXPECT_TRUE(routing_lut_serves(256, 8, ScoreFunc::kSigmoid, false, top2, 8, true));
  EXPECT_TRUE(routing_lut_serves(384, 8, ScoreFunc::kSigmoid, false, none, 1, true));
  EXPECT_TRUE(routing_lut_serves(33, 1, ScoreFunc::kSigmoid, false, none, 1, true));
  EXPECT_TRUE(routing_lut_serves(512, 8, ScoreFunc::kSigmoid, false, top2, 16, true));
  EXPECT_TRUE(routing_lut_serves(128, 4, ScoreFunc::kSigmoid, false, GroupScore::kMax, 4, true));
  // Not served: fp32 / fp16 logits, other functions, softcap, K > 8, E outside 33..512, groups
  // that are not one lane of 32 each.
  EXPECT_FALSE(routing_lut_serves(256, 8, ScoreFunc::kSigmoid, false, top2, 8, false));
  EXPECT_FALSE(routing_lut_serves(256, 8, ScoreFunc::kSoftmax, false, none, 1, true));
  EXPECT_FALSE(routing_lut_serves(256, 8, ScoreFunc::kSqrtSoftplus, false, none, 1, true));
  EXPECT_FALSE(routing_lut_serves(256, 8, ScoreFunc::kSigmoid, true, none, 1, true));
  EXPECT_FALSE(routing_lut_serves(256, 9, ScoreFunc::kSigmoid, false, none, 1, true));
  EXPECT_FALSE(routing_lut_serves(32, 8, ScoreFunc::kSigmoid, false, none, 1, true));
  EXPECT_FALSE(routing_lut_serves(513, 8, ScoreFunc::kSigmoid, false, none, 1, true));
  EXPECT_FALSE(routing_lut_serves(256, 8, ScoreFunc::kSigmoid, false, top2, 4, true));   // 64 each
  EXPECT_FALSE(routing_lut_serves(256, 8, ScoreFunc::kSigmoid, false, top2, 16, true));  // 16 each
  EXPECT_FALSE(routing_lut_serves(64, 8, ScoreFunc::kSigmoid, false, top2, 2, true));    // 2 lanes
  // Layouts: 4..16 lanes, 16 / 24 / 32 experts per lane.
  EXPECT_EQ(detail::routing_lut_lanes(33), 4);
  EXPECT_EQ(detail::routing_lut_vals(33), 16);
  EXPECT_EQ(detail::routing_lut_vals(65), 24);
  EXPECT_EQ(detail::routing_lut_vals(128), 32);
  EXPECT_EQ(detail::routing_lut_lanes(160), 8);
  EXPECT_EQ(detail::routing_lut_vals(160), 24);
  EXPECT_EQ(detail::routing_lut_lanes(256), 8);
  EXPECT_EQ(detail::routing_lut_vals(256), 32);
  EXPECT_EQ(detail::routing_lut_lanes(384), 16);
  EXPECT_EQ(detail::routing_lut_vals(384), 24);
  EXPECT_EQ(detail::routing_lut_lanes(512), 16);
  EXPECT_EQ(detail::routing_lut_vals(512), 32);
  for (int E = 33; E <= 512; ++E) {
    const int lanes = detail::routing_lut_lanes(E), vals = detail::routing_lut_vals(E);
    ASSERT_GE(lanes * vals, E) << E;
    ASSERT_LT(lanes * (vals - 8), E) << E;  // no lane without experts
    ASSERT_TRUE(vals == 16 || vals == 24 || vals == 32) << E;
  }
  // Chosen where it serves from kLutMinRows rows (kLutMinRowsWide with 16 lanes: Kimi K2), ahead
  // of the staged and quad kernels; forced by 74.
  EXPECT_EQ(routing_lut_rows(false, 256), 0);
  EXPECT_EQ(routing_lut_rows(true, 256), kLutMinRows);
  EXPECT_EQ(routing_lut_rows(true, 384), kLutMinRowsWide);
  // Ungrouped rows of 257..384 experts: 8 lanes of 48 from kLutWide8Rows rows.
  const auto kimi = [](std::int64_t m) {
    return routing_launch_config(384, m, 0, true, true, 9, false, 96, 12, 0, true, 0,
                                 routing_lut_rows(true, 384));
  };
  EXPECT_EQ(kimi(kLutWide8Rows - 1).lanes, 16);
  EXPECT_EQ(kimi(kLutWide8Rows - 1).vals, 24);
  EXPECT_EQ(kimi(kLutWide8Rows).lanes, 8);
  EXPECT_EQ(kimi(kLutWide8Rows).vals, 48);
  EXPECT_EQ(kimi(32768).threads, 512);
  EXPECT_TRUE(kimi(32768).lut);
  EXPECT_EQ(routing_lut_layout(512, false, 32768).lanes, 16);  // (only up to 384)
  EXPECT_EQ(routing_lut_layout(256, false, 32768).vals, 32);
  const auto at = [](std::int64_t m, int code, bool serves) {
    return routing_launch_config(256, m, code, true, true, 9, true, 64, 8, 0, true, 0,
                                 routing_lut_rows(serves, 256));
  };
  EXPECT_FALSE(at(kLutMinRows - 1, 0, true).lut);
  const RoutingLaunchConfig c = at(32768, 0, true);
  EXPECT_TRUE(c.lut);
  EXPECT_FALSE(c.staged);
  EXPECT_EQ(c.lanes, 8);
  EXPECT_EQ(c.vals, 32);
  EXPECT_EQ(c.threads, 768);
  EXPECT_EQ(c.rows_per_block, 96);
  EXPECT_EQ(c.blocks, 342);
  EXPECT_TRUE(at(1, kRoutingLutCode, true).lut);
  EXPECT_FALSE(at(32768, 0, false).lut);
  EXPECT_TRUE(routing_layout_code_valid(33, kRoutingLutCode));
  EXPECT_FALSE(routing_layout_code_valid(32, kRoutingLutCode));
  EXPECT_FALSE(routing_layout_code_valid(513, kRoutingLutCode));
}

TEST(RoutingHeuristics, StagedKernelServesSigmoidRowsAndIsChosenFrom16384Rows) {
  using detail::routing_staged_segs;
  // DeepSeek-V3 (groups of 32), Kimi K2 (no groups): served.
  EXPECT_EQ(routing_staged_segs(256, 8, ScoreFunc::kSigmoid, false, GroupScore::kTop2Sum, 8, 4), 8);
  EXPECT_EQ(routing_staged_segs(384, 8, ScoreFunc::kSigmoid, false, GroupScore::kNone, 1, 1), 12);
  // Not served: softmax, softcap, K > 8, E not a multiple of 32 or outside 128..512, groups that
  // are not the segments, too few kept groups for the pool.
  EXPECT_EQ(routing_staged_segs(256, 8, ScoreFunc::kSoftmax, false, GroupScore::kNone, 1, 1), 0);
  EXPECT_EQ(routing_staged_segs(256, 8, ScoreFunc::kSigmoid, true, GroupScore::kNone, 1, 1), 0);
  EXPECT_EQ(routing_staged_segs(256, 9, ScoreFunc::kSigmoid, false, GroupScore::kNone, 1, 1), 0);
  EXPECT_EQ(routing_staged_segs(160 + 8, 8, ScoreFunc::kSigmoid, false, GroupScore::kNone, 1, 1),
            0);
  EXPECT_EQ(routing_staged_segs(96, 8, ScoreFunc::kSigmoid, false, GroupScore::kNone, 1, 1), 0);
  EXPECT_EQ(routing_staged_segs(544, 8, ScoreFunc::kSigmoid, false, GroupScore::kNone, 1, 1), 0);
  EXPECT_EQ(routing_staged_segs(256, 8, ScoreFunc::kSigmoid, false, GroupScore::kTop2Sum, 4, 2), 0);
  EXPECT_EQ(routing_staged_segs(256, 8, ScoreFunc::kSigmoid, false, GroupScore::kTop2Sum, 8, 2), 0);
  const RoutingLaunchConfig s = routing_launch_config(256, 32768, 0, true, true, 8, true, 64, 8);
  EXPECT_TRUE(s.staged);
  EXPECT_FALSE(s.quad);
  EXPECT_EQ(s.vals, 8);
  EXPECT_EQ(s.rows_per_block, 64);
  EXPECT_EQ(s.blocks, 512);
  EXPECT_FALSE(routing_launch_config(256, 16383, 0, true, true, 8, true, 64, 8).staged);
  EXPECT_TRUE(routing_launch_config(256, 16383, 0, true, true, 8, true, 64, 8).quad);
  EXPECT_TRUE(routing_launch_config(256, 16384, 0, true, true, 8, true, 64, 8).staged);
  // Unaligned rows (staged_segs 0): the quad kernel.
  EXPECT_TRUE(routing_launch_config(256, 32768, 0, true, true, 8, true, 64, 0).quad);
  EXPECT_TRUE(routing_launch_config(256, 1, kRoutingStagedCode, true, true, 8, true, 64, 8).staged);
  EXPECT_FALSE(
      routing_launch_config(256, 32768, kRoutingQuadCode, true, true, 8, true, 64, 8).staged);
  EXPECT_TRUE(routing_layout_code_valid(128, kRoutingStagedCode));
  EXPECT_FALSE(routing_layout_code_valid(96, kRoutingStagedCode));
}

}  // namespace
}  // namespace switchyard::heuristics
