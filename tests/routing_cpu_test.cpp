// Routing semantics on the CPU backend: hand-computed cases, the special-value rules, options,
// an independent double-precision reference, invariance, and argument validation.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "routing_reference.h"
#include "routing_test_util.h"
#include "switchyard/runtime.h"

namespace switchyard::testing {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

RoutingParams params(int E, int K, ScoreFunc f, bool renorm = false) {
  RoutingParams p;
  p.num_experts = E;
  p.top_k = K;
  p.score_func = f;
  p.renormalize = renorm;
  return p;
}

// Routes float32 logits [M, E] on the CPU.
tools::RoutingResult route(const RoutingParams& p, const std::vector<float>& logits,
                           std::vector<float> bias = {}, std::int32_t non_padded = -1) {
  tools::RoutingProblem pr;
  pr.params = p;
  pr.num_tokens = static_cast<std::int64_t>(logits.size()) / p.num_experts;
  pr.logits_dtype = DType::kFloat32;
  pr.logits = tools::encode_floats(logits, DType::kFloat32);
  pr.bias = std::move(bias);
  pr.num_tokens_non_padded = non_padded;
  tools::RoutingResult r;
  const Status st = tools::run_routing_cpu(pr, &r);
  EXPECT_TRUE(st.ok()) << st.to_string();
  return r;
}

double sigmoid(double x) {
  return 1.0 / (1.0 + std::exp(-x));
}

// ---- hand-computed cases ------------------------------------------------------------------

TEST(RoutingCpu, SigmoidPicksLargestScores) {
  const auto r = route(params(4, 2, ScoreFunc::kSigmoid), {0.0f, 2.0f, -1.0f, 1.0f});
  EXPECT_EQ(r.ids, (std::vector<std::int64_t>{1, 3}));
  EXPECT_NEAR(r.weights[0], sigmoid(2.0), 1e-7);
  EXPECT_NEAR(r.weights[1], sigmoid(1.0), 1e-7);
}

TEST(RoutingCpu, SoftmaxWeightsNormaliseOverAllExperts) {
  const auto r = route(params(4, 2, ScoreFunc::kSoftmax), {1.0f, 2.0f, 3.0f, 4.0f});
  const double sum = std::exp(1.0) + std::exp(2.0) + std::exp(3.0) + std::exp(4.0);
  EXPECT_EQ(r.ids, (std::vector<std::int64_t>{3, 2}));
  EXPECT_NEAR(r.weights[0], std::exp(4.0) / sum, 1e-7);
  EXPECT_NEAR(r.weights[1], std::exp(3.0) / sum, 1e-7);
}

TEST(RoutingCpu, SoftmaxBiasChangesTheWeight) {
  const auto r = route(params(2, 1, ScoreFunc::kSoftmax), {0.0f, 0.0f}, {0.0f, std::log(3.0f)});
  EXPECT_EQ(r.ids[0], 1);
  EXPECT_NEAR(r.weights[0], 0.75, 1e-7);
}

TEST(RoutingCpu, TiesGoToTheLowerIndex) {
  const auto r = route(params(6, 3, ScoreFunc::kSoftmax), std::vector<float>(6, 0.0f));
  EXPECT_EQ(r.ids, (std::vector<std::int64_t>{0, 1, 2}));
  for (float w : r.weights) EXPECT_NEAR(w, 1.0 / 6.0, 1e-7);
  const auto renorm = route(params(6, 3, ScoreFunc::kSoftmax, true), std::vector<float>(6, 0.0f));
  for (float w : renorm.weights) EXPECT_NEAR(w, 1.0 / 3.0, 1e-7);
  // -0 and +0 are equal keys: the lower index wins whichever sign it has.
  EXPECT_EQ(route(params(2, 1, ScoreFunc::kTopkThenSoftmax), {-0.0f, 0.0f}).ids[0], 0);
  EXPECT_EQ(route(params(2, 1, ScoreFunc::kTopkThenSoftmax), {0.0f, -0.0f}).ids[0], 0);
}

// DeepSeek-V3 noaux_tc: sigmoid scores, bias only for ranking, groups by top-2 sum.
TEST(RoutingCpu, GroupedTop2SumDropsGroupsBeforeSelection) {
  RoutingParams p = params(8, 2, ScoreFunc::kSigmoid, true);
  p.group_score = GroupScore::kTop2Sum;
  p.num_groups = 4;
  p.topk_groups = 2;
  p.routed_scaling_factor = 2.5f;
  p.num_shared_experts = 1;
  // keys 0.5 + b = [.6 .5 | .8 .2 | .7 .7 | .4 .55]: group sums 1.1, 1.0, 1.4, 0.95 keep groups
  // 2 and 0; expert 2 (key .8) is dropped with its group; experts 4 and 5 tie at .7.
  const std::vector<float> bias = {0.1f, 0.0f, 0.3f, -0.3f, 0.2f, 0.2f, -0.1f, 0.05f};
  const auto r = route(p, std::vector<float>(8, 0.0f), bias);
  EXPECT_EQ(r.ids, (std::vector<std::int64_t>{4, 5, 8}));
  EXPECT_FLOAT_EQ(r.weights[0], 0.5f);
  EXPECT_FLOAT_EQ(r.weights[1], 0.5f);
  EXPECT_FLOAT_EQ(r.weights[2], 1.0f / 2.5f);  // shared: routed_sum / rsf

  p.apply_rsf_on_output = true;
  const auto o = route(p, std::vector<float>(8, 0.0f), bias);
  EXPECT_FLOAT_EQ(o.weights[0], 1.25f);
  EXPECT_FLOAT_EQ(o.weights[2], 1.0f);  // counts exactly once
}

TEST(RoutingCpu, GroupTop2SumOfTwoEqualMaximaIsTwiceTheMax) {
  RoutingParams p = params(4, 1, ScoreFunc::kSoftmax);
  p.group_score = GroupScore::kTop2Sum;
  p.num_groups = 2;
  p.topk_groups = 1;
  // group 0: {3, 3} sums to 6; group 1: {5, 0.5} sums to 5.5: group 0 wins despite the max 5.
  const auto r = route(p, {3.0f, 3.0f, 5.0f, 0.5f});
  EXPECT_EQ(r.ids[0], 0);
}

// DeepSeek-V2: softmax, group score = max; weights normalise over all E, not the kept groups.
TEST(RoutingCpu, GroupedMaxKeepsBestGroup) {
  RoutingParams p = params(6, 2, ScoreFunc::kSoftmax);
  p.group_score = GroupScore::kMax;
  p.num_groups = 3;
  p.topk_groups = 1;
  const std::vector<float> x = {5.0f, 0.0f, 4.0f, 4.5f, 0.0f, 1.0f};
  const auto r = route(p, x);
  EXPECT_EQ(r.ids, (std::vector<std::int64_t>{0, 1}));
  double sum = 0;
  for (float v : x) sum += std::exp(v - 5.0);
  EXPECT_NEAR(r.weights[0], 1.0 / sum, 1e-7);
  EXPECT_NEAR(r.weights[1], std::exp(-5.0) / sum, 1e-8);
}

TEST(RoutingCpu, GroupTiesKeepTheLowerGroup) {
  RoutingParams p = params(4, 1, ScoreFunc::kSoftmax);
  p.group_score = GroupScore::kMax;
  p.num_groups = 2;
  p.topk_groups = 1;
  EXPECT_EQ(route(p, {1.0f, 0.0f, 0.0f, 1.0f}).ids[0], 0);
}

TEST(RoutingCpu, TopkThenSoftmaxAndSigmoid) {
  const auto s = route(params(4, 2, ScoreFunc::kTopkThenSoftmax), {1.0f, 3.0f, 2.0f, 0.0f});
  EXPECT_EQ(s.ids, (std::vector<std::int64_t>{1, 2}));
  EXPECT_NEAR(s.weights[0], 1.0 / (1.0 + std::exp(-1.0)), 1e-7);
  EXPECT_NEAR(s.weights[1], std::exp(-1.0) / (1.0 + std::exp(-1.0)), 1e-7);
  const auto g = route(params(4, 1, ScoreFunc::kTopkThenSigmoid), {-1.0f, 0.5f, 0.25f, 0.0f});
  EXPECT_EQ(g.ids[0], 1);
  EXPECT_NEAR(g.weights[0], sigmoid(0.5), 1e-7);
}

TEST(RoutingCpu, SqrtSoftplusScores) {
  const auto r = route(params(3, 1, ScoreFunc::kSqrtSoftplus), {0.0f, 1.0f, -2.0f});
  EXPECT_EQ(r.ids[0], 1);
  EXPECT_NEAR(r.weights[0], std::sqrt(std::log1p(std::exp(1.0))), 1e-6);
}

TEST(RoutingCpu, SoftcapAppliesBeforeEverything) {
  RoutingParams p = params(2, 1, ScoreFunc::kTopkThenSigmoid);
  p.softcap = 2.0f;
  const auto r = route(p, {10.0f, 1.0f});
  EXPECT_EQ(r.ids[0], 0);
  EXPECT_NEAR(r.weights[0], sigmoid(2.0 * std::tanh(5.0)), 1e-6);
}

// ---- NaN / Inf rules -------------------------------------------------------------------------

TEST(RoutingCpu, NaNRanksLowestAndInfHighest) {
  const std::vector<float> x = {kNaN, -kInf, 1.0f, kInf};
  const auto r = route(params(4, 4, ScoreFunc::kSoftmax), x);
  EXPECT_EQ(r.ids, (std::vector<std::int64_t>{3, 2, 1, 0}));
  EXPECT_EQ(r.weights, (std::vector<float>{1.0f, 0.0f, 0.0f, 0.0f}));  // the +Inf limit
  const auto s = route(params(3, 3, ScoreFunc::kSigmoid), {kNaN, 1.0f, 2.0f});
  EXPECT_EQ(s.ids, (std::vector<std::int64_t>{2, 1, 0}));
  EXPECT_NEAR(s.weights[0], sigmoid(2.0), 1e-7);
  EXPECT_EQ(s.weights[2], 0.0f);  // never NaN
}

TEST(RoutingCpu, RowWithoutFiniteLogitReturnsFirstIdsWithZeroWeight) {
  for (const std::vector<float>& row : std::vector<std::vector<float>>{
           {kNaN, kNaN, kNaN, kNaN}, {-kInf, -kInf, -kInf, -kInf}, {kInf, kNaN, kInf, -kInf}}) {
    for (ScoreFunc f : {ScoreFunc::kSoftmax, ScoreFunc::kSigmoid, ScoreFunc::kTopkThenSoftmax}) {
      RoutingParams p = params(4, 2, f, true);
      p.num_shared_experts = 1;
      const auto r = route(p, row);
      EXPECT_EQ(r.ids, (std::vector<std::int64_t>{0, 1, 4}));
      EXPECT_EQ(r.weights, (std::vector<float>{0.0f, 0.0f, 0.0f}));
    }
  }
}

TEST(RoutingCpu, RenormalizeWithZeroSumDividesByOne) {
  const auto r = route(params(2, 2, ScoreFunc::kSigmoid, true), {-1000.0f, -1000.0f});
  EXPECT_EQ(r.weights, (std::vector<float>{0.0f, 0.0f}));
}

TEST(RoutingCpu, RenormalizeWithInfiniteSumSharesAmongInfiniteWeights) {
  const auto r = route(params(3, 3, ScoreFunc::kSqrtSoftplus, true), {kInf, 1.0f, kInf});
  EXPECT_EQ(r.ids, (std::vector<std::int64_t>{0, 2, 1}));
  EXPECT_EQ(r.weights, (std::vector<float>{0.5f, 0.5f, 0.0f}));
}

TEST(RoutingCpu, IdsAreAlwaysDistinctAndInRange) {
  tools::Rng rng(99);
  for (int c = 0; c < 400; ++c) {
    const int E = 1 + static_cast<int>(rng.below(64));
    const int K = 1 + static_cast<int>(rng.below(static_cast<std::uint64_t>(std::min(E, 32))));
    std::vector<float> x(static_cast<std::size_t>(E));
    for (float& v : x) {
      const float pool[] = {kNaN, kInf, -kInf, 0.0f, -0.0f, 1.0f};
      v = pool[rng.below(6)];
    }
    const auto r = route(params(E, K, ScoreFunc::kSoftmax, true), x);
    std::vector<bool> seen(static_cast<std::size_t>(E));
    for (std::int64_t id : r.ids) {
      ASSERT_GE(id, 0);
      ASSERT_LT(id, E);
      ASSERT_FALSE(seen[static_cast<std::size_t>(id)]) << "duplicate id " << id;
      seen[static_cast<std::size_t>(id)] = true;
    }
    for (float w : r.weights) ASSERT_FALSE(std::isnan(w));
  }
}

// ---- options ---------------------------------------------------------------------------------

TEST(RoutingCpu, PaddedRowsGetMinusOneAndZero) {
  RoutingParams p = params(4, 2, ScoreFunc::kSoftmax);
  p.num_shared_experts = 1;
  const auto r = route(p, std::vector<float>(12, 1.0f), {}, 1);
  for (int c = 3; c < 9; ++c) {
    EXPECT_EQ(r.ids[static_cast<std::size_t>(c)], -1);
    EXPECT_EQ(r.weights[static_cast<std::size_t>(c)], 0.0f);
  }
  EXPECT_EQ(r.ids[0], 0);
}

TEST(RoutingCpu, PlacementStaticMapReplicaTableAndExpertMap) {
  tools::RoutingProblem pr;
  pr.params = params(4, 2, ScoreFunc::kSoftmax);
  pr.params.num_shared_experts = 1;
  pr.num_tokens = 3;
  pr.logits_dtype = DType::kFloat32;
  pr.logits = tools::encode_floats({0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3}, DType::kFloat32);
  // Static map: logical e -> 10 - e (P = 11).
  pr.placement = {10, 9, 8, 7};
  pr.num_physical_experts = 11;
  tools::RoutingResult r;
  ASSERT_TRUE(tools::run_routing_cpu(pr, &r).ok());
  EXPECT_EQ(r.ids[0], 7);   // logical 3
  EXPECT_EQ(r.ids[1], 8);   // logical 2
  EXPECT_EQ(r.ids[2], 11);  // shared: P + 0

  // Replica table: expert e has replicas {e, e + 4}; expert 3 has 2 of them, expert 2 one.
  pr.placement = {0, 4, 1, 5, 2, 6, 3, 7};
  pr.placement_replicas = 2;
  pr.replica_counts = {2, 2, 1, 2};
  pr.num_physical_experts = 8;
  ASSERT_TRUE(tools::run_routing_cpu(pr, &r).ok());
  // column k of row t uses replica (t*K + k) % count
  EXPECT_EQ(r.ids[0 * 3 + 0], 3);  // t0 k0: slot 0 % 2 = 0
  EXPECT_EQ(r.ids[0 * 3 + 1], 2);  // count 1
  EXPECT_EQ(r.ids[1 * 3 + 0], 3);  // t1 k0: slot 2 % 2 = 0
  EXPECT_EQ(r.ids[2 * 3 + 1], 2);
  pr.replica_counts = {2, 2, 2, 2};
  ASSERT_TRUE(tools::run_routing_cpu(pr, &r).ok());
  EXPECT_EQ(r.ids[0 * 3 + 1], 6);  // t0 k1: slot 1 % 2 = 1 -> replica e + 4

  // Expert-parallel view: even physical ids live here as id / 2, odd ones are remote.
  pr.expert_map = {0, -1, 1, -1, 2, -1, 3, -1};
  pr.num_local_experts = 4;
  ASSERT_TRUE(tools::run_routing_cpu(pr, &r).ok());
  EXPECT_EQ(r.ids[0], -1);        // physical 3
  EXPECT_EQ(r.ids[1], 3);         // physical 6
  EXPECT_EQ(r.ids[2], 4);         // shared: num_local_experts + 0
  EXPECT_GT(r.weights[0], 0.0f);  // the weight is kept for remote experts
}

TEST(RoutingCpu, Int64IdsAndHalfPrecisionLogits) {
  for (DType dt : {DType::kBFloat16, DType::kFloat16}) {
    tools::RoutingProblem pr;
    pr.params = params(4, 2, ScoreFunc::kSigmoid);
    pr.num_tokens = 1;
    pr.logits_dtype = dt;
    pr.id_dtype = DType::kInt64;
    pr.logits = tools::encode_floats({0.0f, 2.0f, -1.0f, 1.0f}, dt);
    tools::RoutingResult r;
    ASSERT_TRUE(tools::run_routing_cpu(pr, &r).ok());
    EXPECT_EQ(r.ids, (std::vector<std::int64_t>{1, 3}));
    EXPECT_NEAR(r.weights[0], sigmoid(2.0), 1e-7);
  }
}

// ---- against the independent reference -------------------------------------------------------

// Tie-free inputs (distinct logits 8/E apart); rows whose deciding key gap is under 1e-5 are
// skipped, and at least 95% of rows must be compared.
TEST(RoutingCpu, MatchesDoublePrecisionReference) {
  int rows = 0, compared = 0;
  for (Variant v : all_variants()) {
    for (int E : {1, 2, 3, 8, 64, 128, 160, 256, 384, 1024}) {
      for (int K : {1, 2, 6, 8, 16, 32}) {
        RoutingParams p;
        if (!variant_params(v, E, K, &p)) continue;
        const std::string id = std::string("reference/") + variant_name(v) + "/E" +
                               std::to_string(E) + "/K" + std::to_string(K);
        tools::Rng rng(tools::seed_from_name(id));
        p.num_shared_experts = K < 32 ? static_cast<int>(rng.below(2)) : 0;
        p.apply_rsf_on_output = rng.below(2) != 0;
        const int M = 24;
        std::vector<float> logits(static_cast<std::size_t>(M * E));
        for (int t = 0; t < M; ++t) {
          std::vector<int> perm(static_cast<std::size_t>(E));
          std::iota(perm.begin(), perm.end(), 0);
          for (int i = E - 1; i > 0; --i)
            std::swap(perm[static_cast<std::size_t>(i)],
                      perm[rng.below(static_cast<std::uint64_t>(i) + 1)]);
          for (int e = 0; e < E; ++e) {
            logits[static_cast<std::size_t>(t * E + e)] =
                -4.0f + 8.0f * static_cast<float>(perm[static_cast<std::size_t>(e)]) /
                            static_cast<float>(E);
          }
        }
        std::vector<float> bias;
        if (variant_has_bias(v)) {
          for (int e = 0; e < E; ++e) bias.push_back(static_cast<float>(rng.uniform() * 0.2 - 0.1));
        }
        const auto got = route(p, logits, bias);
        const int C = K + p.num_shared_experts;
        for (int t = 0; t < M; ++t) {
          ++rows;
          const ReferenceRow ref = reference_route_row(p, logits.data() + t * E, bias);
          if (ref.min_gap < 1e-5) continue;
          ++compared;
          for (int c = 0; c < C; ++c) {
            const std::size_t i = static_cast<std::size_t>(t * C + c);
            ASSERT_EQ(got.ids[i], ref.ids[static_cast<std::size_t>(c)])
                << id << " row " << t << " col " << c;
            const double want = ref.weights[static_cast<std::size_t>(c)];
            ASSERT_NEAR(got.weights[i], want, 4e-6 * std::fabs(want) + 1e-9)
                << id << " row " << t << " col " << c;
          }
        }
      }
    }
  }
  EXPECT_GE(compared, rows * 95 / 100) << compared << " of " << rows;
}

// ---- invariance --------------------------------------------------------------------------------

// A row's bits do not depend on the batch size, its position, or the threads the batch used.
TEST(RoutingCpu, BatchAndThreadInvariance) {
  for (Variant v : all_variants()) {
    RoutingParams p;
    ASSERT_TRUE(variant_params(v, 256, 8, &p));
    const std::int64_t M = 5000;  // large enough to run on several threads
    const std::vector<float>& all = cached_logits(256, M);
    const auto bias = variant_has_bias(v) ? std::vector<float>(256, 0.01f) : std::vector<float>{};
    const auto big = route(p, all, bias);
    for (std::int64_t row : {std::int64_t{0}, std::int64_t{2500}, M - 1}) {
      std::vector<float> two(all.begin() + (row ^ 1) * 256, all.begin() + ((row ^ 1) + 1) * 256);
      two.insert(two.end(), all.begin() + row * 256, all.begin() + (row + 1) * 256);
      const auto small = route(p, two, bias);  // the row at position 1 of a batch of 2
      for (int c = 0; c < 8; ++c) {
        const std::size_t a = static_cast<std::size_t>(row * 8 + c),
                          b = static_cast<std::size_t>(8 + c);
        ASSERT_EQ(big.ids[a], small.ids[b]) << variant_name(v);
        ASSERT_EQ(std::memcmp(&big.weights[a], &small.weights[b], 4), 0) << variant_name(v);
      }
    }
  }
}

// ---- argument validation ---------------------------------------------------------------------

struct BadCase {
  const char* name;
  std::function<void(RoutingParams&, RoutingArgs&)> mutate;
  const char* expect;  // substring of the message: argument, value, expectation
};

TEST(RoutingCpu, RejectsInvalidArgumentsWithClearMessages) {
  std::vector<float> logits(2 * 8, 0.0f), w(2 * 2), bias(8), w3(6);
  std::vector<std::int32_t> ids(2 * 2), ids3(6);
  auto base = [&](RoutingParams& p, RoutingArgs& a) {
    p = params(8, 2, ScoreFunc::kSoftmax);
    a = RoutingArgs{};
    a.logits = TensorView::contiguous(logits.data(), DType::kFloat32, {2, 8});
    a.top_k_weights = TensorView::contiguous(w.data(), DType::kFloat32, {2, 2});
    a.top_k_ids = TensorView::contiguous(ids.data(), DType::kInt32, {2, 2});
  };
  const std::vector<BadCase> cases = {
      {"k_gt_e", [](RoutingParams& p, RoutingArgs&) { p.top_k = 9; },
       "top_k = 9: expected 1 <= top_k <= num_experts (8)"},
      {"k_zero", [](RoutingParams& p, RoutingArgs&) { p.top_k = 0; }, "top_k = 0"},
      {"e_too_big", [](RoutingParams& p, RoutingArgs&) { p.num_experts = 2000; },
       "num_experts = 2000: expected 1 <= num_experts <= 1024"},
      {"groups_not_divisor",
       [](RoutingParams& p, RoutingArgs&) {
         p.group_score = GroupScore::kMax;
         p.num_groups = 3;
       },
       "num_groups = 3: expected a divisor of num_experts (8)"},
      {"topk_group_gt_groups",
       [](RoutingParams& p, RoutingArgs&) {
         p.group_score = GroupScore::kMax;
         p.num_groups = 4;
         p.topk_groups = 5;
       },
       "topk_groups = 5: expected 1 <= topk_groups <= num_groups (4)"},
      {"k_gt_selectable",
       [](RoutingParams& p, RoutingArgs&) {
         p.group_score = GroupScore::kMax;
         p.num_groups = 4;
         p.topk_groups = 1;
         p.top_k = 3;
       },
       "top_k = 3: expected top_k <= topk_groups * num_experts / num_groups (2)"},
      {"groups_without_grouping", [](RoutingParams& p, RoutingArgs&) { p.num_groups = 4; },
       "num_groups = 4: expected 1 when group_score is none"},
      {"k_gt_32",
       [](RoutingParams& p, RoutingArgs&) {
         p.num_experts = 64;
         p.top_k = 33;
       },
       "top_k = 33: expected top_k <= 32"},
      {"too_many_columns", [](RoutingParams& p, RoutingArgs&) { p.num_shared_experts = 31; },
       "num_shared_experts = 31"},
      {"bad_rsf", [](RoutingParams& p, RoutingArgs&) { p.routed_scaling_factor = 0.0f; },
       "routed_scaling_factor = 0.000000: expected finite and > 0"},
      {"bad_softcap", [](RoutingParams& p, RoutingArgs&) { p.softcap = -1.0f; },
       "softcap = -1.000000"},
      {"null_logits", [](RoutingParams&, RoutingArgs& a) { a.logits.data = nullptr; },
       "logits.data = null: expected a non-null pointer"},
      {"misaligned_logits",
       [&](RoutingParams&, RoutingArgs& a) {
         a.logits.data = reinterpret_cast<char*>(logits.data()) + 2;
       },
       "logits.data = 0x"},
      {"logits_wrong_experts",
       [&](RoutingParams&, RoutingArgs& a) {
         a.logits = TensorView::contiguous(logits.data(), DType::kFloat32, {4, 4});
       },
       "logits.shape = [4, 4] float32 cpu: expected [num_tokens, num_experts] with num_experts = "
       "8"},
      {"logits_int", [](RoutingParams&, RoutingArgs& a) { a.logits.dtype = DType::kInt32; },
       "logits.dtype = int32: expected float32 or bfloat16 or float16"},
      {"weights_shape",
       [&](RoutingParams&, RoutingArgs& a) {
         a.top_k_weights = TensorView::contiguous(w3.data(), DType::kFloat32, {2, 3});
       },
       "top_k_weights.shape = [2, 3]: expected [2, 2]"},
      {"ids_dtype", [](RoutingParams&, RoutingArgs& a) { a.top_k_ids.dtype = DType::kFloat32; },
       "top_k_ids.dtype = float32: expected int32 or int64"},
      {"ids_strided",
       [&](RoutingParams&, RoutingArgs& a) {
         a.top_k_ids = TensorView::contiguous(ids3.data(), DType::kInt32, {2, 2});
         a.top_k_ids.strides[0] = 3;
       },
       "top_k_ids.strides = [3, 1]: expected a contiguous"},
      {"device_mismatch", [](RoutingParams&, RoutingArgs& a) { a.logits.device = Device::kCuda; },
       "logits.device = cuda: expected cpu"},
      {"bias_with_topk",
       [&](RoutingParams& p, RoutingArgs& a) {
         p.score_func = ScoreFunc::kTopkThenSoftmax;
         a.bias = TensorView::contiguous(bias.data(), DType::kFloat32, {8});
       },
       "bias = given: expected no bias with score_func topk_softmax"},
      {"bias_shape",
       [&](RoutingParams&, RoutingArgs& a) {
         a.bias = TensorView::contiguous(bias.data(), DType::kFloat32, {4});
       },
       "bias.shape = [4]: expected [8]"},
      {"replica_table_without_counts",
       [&](RoutingParams&, RoutingArgs& a) {
         a.placement = TensorView::contiguous(ids3.data(), DType::kInt32, {8, 2});
         a.num_physical_experts = 16;
       },
       "replica_counts = null"},
      {"expert_map_without_count",
       [&](RoutingParams&, RoutingArgs& a) {
         a.expert_map = TensorView::contiguous(ids3.data(), DType::kInt32, {8});
       },
       "num_local_experts = 0: expected >= 1"},
  };
  for (const BadCase& c : cases) {
    RoutingParams p;
    RoutingArgs a;
    base(p, a);
    c.mutate(p, a);
    w.assign(w.size(), 7.0f);
    const Status st = route_cpu(p, a);
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << c.name;
    EXPECT_NE(st.message().find(c.expect), std::string::npos)
        << c.name << ": got \"" << st.message() << "\"";
    EXPECT_EQ(w[0], 7.0f) << c.name << ": output written despite the error";
  }
}

TEST(RoutingCpu, ZeroTokensIsANoOp) {
  RoutingParams p = params(8, 2, ScoreFunc::kSoftmax);
  RoutingArgs a;
  a.logits = TensorView::contiguous(nullptr, DType::kBFloat16, {0, 8});
  a.top_k_weights = TensorView::contiguous(nullptr, DType::kFloat32, {0, 2});
  a.top_k_ids = TensorView::contiguous(nullptr, DType::kInt32, {0, 2});
  EXPECT_TRUE(route_cpu(p, a).ok());
}

TEST(RoutingCpu, CudaEntryPointReportsUnsupportedWithoutCuda) {
  if (built_with_cuda()) GTEST_SKIP() << "this build has CUDA";
  RoutingParams p = params(8, 2, ScoreFunc::kSoftmax);
  RoutingArgs a;
  const Status st = route_cuda(p, a, nullptr, 0, nullptr);
  EXPECT_EQ(st.code(), StatusCode::kUnsupported);
  EXPECT_NE(st.message().find("no CUDA backend"), std::string::npos);
}

}  // namespace
}  // namespace switchyard::testing
