// exact_math.h: accuracy against double-precision libm, IEEE special values, and the host fma
// emulation against std::fma (which is correctly rounded, however slowly libm computes it).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "common/dtype_convert.h"
#include "common/exact_math.h"
#include "common/rng.h"
#include "common/routing_row.h"
#include "common/sigmoid_bf16_table.h"

namespace switchyard::detail {
namespace {

// Distance in units in the last place of `want` (rounded to float).
double ulps(float got, double want) {
  const float w = static_cast<float>(want);
  const double ulp =
      std::fabs(static_cast<double>(std::nextafter(w, std::numeric_limits<float>::infinity())) - w);
  return std::fabs(static_cast<double>(got) - want) / ulp;
}

TEST(ExactMath, ExpWithinTwoUlp) {
  for (float x = -87.0f; x < 88.7f; x += 0.0137f)
    ASSERT_LE(ulps(exp_f(x), std::exp(double{x})), 2.0) << x;
  EXPECT_EQ(exp_f(0.0f), 1.0f);
  EXPECT_EQ(exp_f(-std::numeric_limits<float>::infinity()), 0.0f);
  EXPECT_EQ(exp_f(std::numeric_limits<float>::infinity()), std::numeric_limits<float>::infinity());
  EXPECT_EQ(exp_f(100.0f), std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(exp_f(std::numeric_limits<float>::quiet_NaN())));
}

// exp_f_nonpos is exp_f bit for bit on [-87, 0]: both use only correctly rounded operations, so
// the host's answer is the device's. CTest runs every 61st float of the domain plus the
// neighbourhoods of the rounding boundaries of n = rint(x log2 e) (the whole domain, 1.1e9 floats,
// passed once: SWITCHYARD_EXP_STRIDE=1).
TEST(ExactMath, ExpNonposIsExpOnItsDomain) {
  const char* env = std::getenv("SWITCHYARD_EXP_STRIDE");
  const std::uint32_t stride = env ? static_cast<std::uint32_t>(std::atoi(env)) : 61u;
  auto same = [](float x) {
    const float a = exp_f(x), b = exp_f_nonpos(x);
    return std::memcmp(&a, &b, sizeof a) == 0;
  };
  std::uint64_t checked = 0;
  // Negative floats from -0 (0x80000000) to -87 (0xc2ae0000).
  for (std::uint64_t u = 0x80000000u; u <= 0xc2ae0000u; u += stride > 0 ? stride : 1u) {
    const float x = bits_to_float(static_cast<std::uint32_t>(u));
    ASSERT_TRUE(same(x)) << x;
    ++checked;
  }
  for (int n = 0; n >= -126; --n) {  // around x = (n + 1/2) ln 2, where n switches
    const float mid = (static_cast<float>(n) - 0.5f) * 0.693147182f;
    float x = mid;
    for (int i = 0; i < 64; ++i) x = std::nextafter(x, 1.0f);
    for (int i = 0; i < 128 && x >= -87.0f; ++i, x = std::nextafter(x, -1.0f)) {
      ASSERT_TRUE(same(x)) << x;
    }
  }
  ASSERT_TRUE(same(0.0f));
  ASSERT_TRUE(same(-87.0f));
  EXPECT_GT(checked, 1000u);
}

TEST(ExactMath, TranscendentalsAreAccurate) {
  for (float x = -30.0f; x < 30.0f; x += 0.0173f) {
    ASSERT_LE(ulps(sigmoid_f(x), 1.0 / (1.0 + std::exp(-double{x}))), 3.0) << x;
    ASSERT_LE(ulps(softplus_f(x), std::log1p(std::exp(double{x}))), 4.0) << x;
    ASSERT_LE(std::fabs(tanh_f(x) - std::tanh(double{x})), 2e-7) << x;
  }
  for (float x = 1e-6f; x < 1e6f; x *= 1.37f)
    ASSERT_LE(ulps(log_f(x), std::log(double{x})), 3.0) << x;
  EXPECT_TRUE(std::isnan(log_f(-1.0f)));
  EXPECT_EQ(log_f(0.0f), -std::numeric_limits<float>::infinity());
}

TEST(ExactMath, DivisionWithinOneUlpAndIeeeSpecials) {
  tools::Rng rng(5);
  for (int i = 0; i < 2000000; ++i) {
    const float a = static_cast<float>((rng.uniform() - 0.5) *
                                       std::ldexp(1.0, static_cast<int>(rng.below(60)) - 30));
    const float b = static_cast<float>((rng.uniform() - 0.5) *
                                       std::ldexp(1.0, static_cast<int>(rng.below(60)) - 30));
    if (b == 0.0f) continue;
    const double want = static_cast<double>(a) / b;
    if (std::fabs(want) < 1e-37) continue;  // subnormal results: same bits on both sides, not IEEE
    ASSERT_LE(ulps(div_f(a, b), want), 1.0) << a << " / " << b;
  }
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(div_f(1.0f, 0.0f), inf);
  EXPECT_EQ(div_f(-1.0f, 0.0f), -inf);
  EXPECT_TRUE(std::isnan(div_f(0.0f, 0.0f)));
  EXPECT_TRUE(std::isnan(div_f(inf, inf)));
  EXPECT_EQ(div_f(3.0f, inf), 0.0f);
  EXPECT_EQ(div_f(inf, 2.0f), inf);
  EXPECT_EQ(div_f(6.0f, 3.0f), 2.0f);
  EXPECT_EQ(div_f(1.0f, 3e38f), static_cast<float>(1.0 / 3e38));
}

TEST(ExactMath, HostFmaIsCorrectlyRounded) {
  tools::Rng rng(11);
  for (int i = 0; i < 3000000; ++i) {
    float a, b, c;
    if (i % 2 == 0) {  // random bit patterns
      const std::uint32_t ua = static_cast<std::uint32_t>(rng.next_u64()),
                          ub = static_cast<std::uint32_t>(rng.next_u64()),
                          uc = static_cast<std::uint32_t>(rng.next_u64());
      std::memcpy(&a, &ua, 4);
      std::memcpy(&b, &ub, 4);
      std::memcpy(&c, &uc, 4);
    } else {  // products on a float midpoint, nudged below double precision: the hard cases
      a = 1.0f + std::ldexp(static_cast<float>(1 + rng.below(4095)), -12);
      b = 1.0f + std::ldexp(static_cast<float>(1 + rng.below(4095)), -12);
      c = std::ldexp(static_cast<float>(1 + rng.below(1000)), -70) * (rng.below(2) ? 1.0f : -1.0f);
    }
    const float got = host_fmaf(a, b, c), want = std::fma(a, b, c);
    if (std::isnan(got) && std::isnan(want)) continue;
    ASSERT_EQ(std::memcmp(&got, &want, 4), 0) << a << " * " << b << " + " << c;
  }
}

TEST(RoutingRow, OrderKeyIsTheDocumentedTotalOrder) {
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(order_key(std::numeric_limits<float>::quiet_NaN()), 1u);
  EXPECT_EQ(order_key(-std::numeric_limits<float>::quiet_NaN()), 1u);
  EXPECT_GT(order_key(-inf), order_key(std::numeric_limits<float>::quiet_NaN()));
  EXPECT_GT(order_key(-3.4e38f), order_key(-inf));
  EXPECT_EQ(order_key(-0.0f), order_key(0.0f));
  EXPECT_GT(order_key(1e-45f), order_key(0.0f));
  EXPECT_GT(order_key(inf), order_key(3.4e38f));
  for (float x : {-inf, -1.5f, 0.0f, 2.25f, inf}) EXPECT_EQ(order_key_value(order_key(x)), x);
  // Candidates: higher order first, then the lower index.
  EXPECT_GT(candidate(order_key(1.0f), 5), candidate(order_key(1.0f), 6));
  EXPECT_GT(candidate(order_key(2.0f), 900), candidate(order_key(1.0f), 0));
  EXPECT_EQ(candidate_expert(candidate(7u, 1023)), 1023);
}

TEST(RoutingRow, PairwiseSumIsTheBalancedTree) {
  float v[8] = {1e8f, 1.0f, -1e8f, 1.0f, 0.5f, 0.25f, 0.0f, 0.0f};
  // ((1e8 + 1) + (-1e8 + 1)) + ((0.5 + 0.25) + 0): 1e8 + 1 rounds to 1e8 in float.
  EXPECT_EQ(pairwise_sum(v, 8), ((1e8f + 1.0f) + (-1e8f + 1.0f)) + 0.75f);
  EXPECT_EQ(routing_row_capacity(1), 1);
  EXPECT_EQ(routing_row_capacity(160), 256);
  EXPECT_EQ(routing_row_capacity(1024), 1024);
}

// The LUT routing kernel's table (sigmoid_bf16_table.h): every bf16 pattern but NaN reads
// sigmoid_f's bits at sigmoid_bf16_index.
TEST(ExactMath, SigmoidBf16TableIsSigmoidOfEveryBf16) {
  int checked = 0;
  for (std::uint32_t b = 0; b <= 0xffffu; ++b) {
    if ((b & 0x7fffu) > 0x7f80u) continue;  // NaN
    const auto bits = static_cast<std::uint16_t>(b);
    const float want = sigmoid_f(to_float(bf16_t{bits}));
    const std::uint32_t idx = sigmoid_bf16_index(bits);
    ASSERT_LT(idx, kSigmoidBf16Entries) << b;
    ASSERT_EQ(kSigmoidBf16Table[idx], float_to_bits(want)) << "bf16 " << b;
    ++checked;
  }
  EXPECT_EQ(checked, 65536 - 2 * 127);
  EXPECT_EQ(sigmoid_bf16_index(0x0000u), 0u);                    // +0: 0.5
  EXPECT_EQ(sigmoid_bf16_index(0x8000u), kSigmoidBf16Span);      // -0: 0.5
  EXPECT_EQ(sigmoid_bf16_index(0x7f80u), kSigmoidBf16Span - 1);  // +Inf: 1
}

}  // namespace
}  // namespace switchyard::detail
