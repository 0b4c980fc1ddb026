// The benchmarks' synthetic expert ids (tools/common/synthetic.h): bench experts --routing.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <set>
#include <vector>

#include "../tools/common/synthetic.h"

namespace switchyard::tools {
namespace {

std::vector<std::int64_t> counts_of(const std::vector<std::int32_t>& ids, int experts) {
  std::vector<std::int64_t> c(static_cast<std::size_t>(experts), 0);
  for (std::int32_t e : ids) {
    EXPECT_GE(e, 0);
    EXPECT_LT(e, experts);
    if (e >= 0 && e < experts) ++c[static_cast<std::size_t>(e)];
  }
  return c;
}

void expect_distinct_rows(const std::vector<std::int32_t>& ids, int k) {
  for (std::size_t t = 0; t * k < ids.size(); ++t) {
    const std::set<std::int32_t> row(ids.begin() + static_cast<std::ptrdiff_t>(t * k),
                                     ids.begin() + static_cast<std::ptrdiff_t>((t + 1) * k));
    ASSERT_EQ(row.size(), static_cast<std::size_t>(k)) << "token " << t;
  }
}

std::vector<std::int32_t> expert_ids(std::int64_t M, int K, int E, const ExpertIdMode& mode,
                                     std::uint64_t seed) {
  std::vector<std::int32_t> ids;
  const Status st = tools::make_expert_ids(M, K, E, mode, seed, &ids);
  EXPECT_TRUE(st.ok()) << st.message();
  return ids;
}

ExpertIdMode mode_of(const char* text) {
  ExpertIdMode m;
  EXPECT_TRUE(parse_expert_id_mode(text, &m).ok()) << text;
  return m;
}

TEST(ExpertIds, BalancedGivesEveryExpertTheSameRowsUpToOne) {
  for (auto [M, K, E] :
       {std::tuple{4096, 8, 128}, {333, 8, 160}, {7, 6, 160}, {5, 2, 8}, {100, 4, 4}, {9, 1, 3}}) {
    const auto ids = expert_ids(M, K, E, mode_of("balanced"), 11);
    ASSERT_EQ(ids.size(), static_cast<std::size_t>(M * K));
    const auto c = counts_of(ids, E);
    const auto [lo, hi] = std::minmax_element(c.begin(), c.end());
    EXPECT_LE(*hi - *lo, 1) << M << " " << K << " " << E;
    expect_distinct_rows(ids, K);
  }
}

TEST(ExpertIds, UniformAndSkewedRowsAreDistinctAndSeeded) {
  for (const char* text : {"uniform", "zipf:1.2", "hot:0.5"}) {
    const ExpertIdMode m = mode_of(text);
    const auto a = expert_ids(512, 8, 256, m, 3), b = expert_ids(512, 8, 256, m, 3);
    EXPECT_EQ(a, b) << text;
    EXPECT_NE(a, expert_ids(512, 8, 256, m, 4)) << text;
    counts_of(a, 256);
    expect_distinct_rows(a, 8);
  }
}

TEST(ExpertIds, SkewConcentratesRows) {
  const auto uni = counts_of(expert_ids(4096, 8, 256, mode_of("uniform"), 5), 256);
  const auto hot = counts_of(expert_ids(4096, 8, 256, mode_of("hot:0.9"), 5), 256);
  // hot:0.9: nine tokens in ten put the hot expert in their top K.
  EXPECT_GE(*std::max_element(hot.begin(), hot.end()), 4096 * 8 / 10);
  EXPECT_LT(*std::max_element(uni.begin(), uni.end()), 4096 * 8 / 64);
}

TEST(ExpertIds, BadShapesAreRejected) {
  std::vector<std::int32_t> ids = {7};
  const ExpertIdMode m = mode_of("uniform");
  const Status k = tools::make_expert_ids(4, 9, 8, m, 1, &ids);
  ASSERT_FALSE(k.ok());
  EXPECT_NE(k.message().find("top_k = 9"), std::string::npos) << k.message();
  const Status z = tools::make_expert_ids(4, 0, 8, mode_of("zipf:1"), 1, &ids);
  ASSERT_FALSE(z.ok());
  EXPECT_NE(z.message().find("top_k = 0"), std::string::npos) << z.message();
  const Status e = tools::make_expert_ids(4, 1, 0, mode_of("balanced"), 1, &ids);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.message().find("num_experts = 0"), std::string::npos) << e.message();
  const Status t = tools::make_expert_ids(-1, 1, 4, m, 1, &ids);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.message().find("num_tokens = -1"), std::string::npos) << t.message();
  EXPECT_EQ(ids, std::vector<std::int32_t>{7});  // untouched on error
}

TEST(ExpertIds, BadModesNameTheFlagAndValue) {
  ExpertIdMode m;
  const Status st = parse_expert_id_mode("balance", &m);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("--routing = balance"), std::string::npos) << st.message();
  const Status z = parse_expert_id_mode("zipf:-1", &m);
  ASSERT_FALSE(z.ok());
  EXPECT_NE(z.message().find("zipf:<s> with 0 <= s <= 10"), std::string::npos) << z.message();
}

}  // namespace
}  // namespace switchyard::tools
