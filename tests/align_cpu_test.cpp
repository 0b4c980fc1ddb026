// Alignment, expert layouts, permute and combine on the CPU backend: invariants on seeded skewed
// routing, hand cases, edge cases, a permute -> combine round trip, permute with the inverse map
// (same output; maps that are not mutually inverse rejected), and argument errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "common/dtype_convert.h"
#include "common/exact_math.h"
#include "common/rng.h"
#include "switchyard/align.h"
#include "switchyard/routing.h"

namespace switchyard::testing {
namespace {

// Seeded ids [M, K] with a hot expert and some -1 / out-of-range entries; distinct per row.
std::vector<std::int32_t> make_ids(std::int64_t M, int K, int E, std::uint64_t seed, bool hot) {
  tools::Rng rng(seed);
  std::vector<std::int32_t> ids(static_cast<std::size_t>(M * K));
  for (std::int64_t t = 0; t < M; ++t) {
    for (int k = 0; k < K; ++k) {
      std::int32_t e = static_cast<std::int32_t>(rng.below(static_cast<std::uint64_t>(E)));
      if (hot && k == 0) e = E / 2;
      if (rng.below(50) == 0) e = -1;
      if (rng.below(97) == 0) e = E + 3;
      ids[static_cast<std::size_t>(t * K + k)] = e;
    }
  }
  return ids;
}

struct Aligned {
  std::vector<std::int32_t> sorted, experts;
  std::int32_t total = -1;
};

Aligned align(const std::vector<std::int32_t>& ids, std::int64_t M, int K, int E, int B,
              const std::vector<std::int32_t>& map = {}) {
  Aligned r;
  r.sorted.assign(static_cast<std::size_t>(align_max_padded(M * K, E, B)), -7);
  r.experts.assign(static_cast<std::size_t>(align_max_blocks(M * K, E, B)), -7);
  AlignArgs a;
  a.top_k_ids =
      TensorView::contiguous(const_cast<std::int32_t*>(ids.data()), DType::kInt32, {M, K});
  if (!map.empty()) {
    a.expert_map = TensorView::contiguous(const_cast<std::int32_t*>(map.data()), DType::kInt32,
                                          {static_cast<std::int64_t>(map.size())});
  }
  a.sorted_token_ids = TensorView::contiguous(r.sorted.data(), DType::kInt32,
                                              {static_cast<std::int64_t>(r.sorted.size())});
  a.expert_ids = TensorView::contiguous(r.experts.data(), DType::kInt32,
                                        {static_cast<std::int64_t>(r.experts.size())});
  a.num_tokens_post_pad = TensorView::contiguous(&r.total, DType::kInt32, {1});
  const Status st = moe_align_block_size_cpu({E, B}, a);
  EXPECT_TRUE(st.ok()) << st.to_string();
  return r;
}

// Every valid slot exactly once, in its expert's segment, ascending; segments padded to B with
// the sentinel; blocks labelled with their expert; everything past the end is sentinel / -1.
void check_align_invariants(const std::vector<std::int32_t>& ids, std::int64_t M, int K, int E,
                            int B, const Aligned& r, const std::string& id) {
  const std::int32_t sentinel = static_cast<std::int32_t>(M * K);
  ASSERT_EQ(r.total % B, 0) << id;
  std::vector<int> seen(static_cast<std::size_t>(M * K), 0);
  std::int64_t expected_total = 0;
  std::vector<std::int64_t> count(static_cast<std::size_t>(E), 0);
  for (std::int32_t e : ids)
    if (e >= 0 && e < E) ++count[static_cast<std::size_t>(e)];
  for (std::int64_t c : count) expected_total += (c + B - 1) / B * B;
  ASSERT_EQ(r.total, expected_total) << id;
  std::int32_t last_slot = -1, last_expert = -1;
  for (std::int32_t i = 0; i < r.total; ++i) {
    const std::int32_t block_expert = r.experts[static_cast<std::size_t>(i / B)];
    ASSERT_GE(block_expert, 0) << id;
    ASSERT_GE(block_expert, last_expert) << id << ": experts out of order";
    if (block_expert != last_expert) last_slot = -1;
    last_expert = block_expert;
    const std::int32_t s = r.sorted[static_cast<std::size_t>(i)];
    if (s == sentinel) continue;
    ASSERT_GE(s, 0) << id;
    ASSERT_LT(s, sentinel) << id;
    ASSERT_EQ(ids[static_cast<std::size_t>(s)], block_expert)
        << id << ": slot in the wrong segment";
    ASSERT_GT(s, last_slot) << id << ": segment not ascending";
    last_slot = s;
    ++seen[static_cast<std::size_t>(s)];
  }
  for (std::int64_t s = 0; s < M * K; ++s) {
    const bool valid =
        ids[static_cast<std::size_t>(s)] >= 0 && ids[static_cast<std::size_t>(s)] < E;
    ASSERT_EQ(seen[static_cast<std::size_t>(s)], valid ? 1 : 0) << id << " slot " << s;
  }
  for (std::size_t i = static_cast<std::size_t>(r.total); i < r.sorted.size(); ++i)
    ASSERT_EQ(r.sorted[i], sentinel) << id;
  for (std::size_t b = static_cast<std::size_t>(r.total / B); b < r.experts.size(); ++b)
    ASSERT_EQ(r.experts[b], -1) << id;
}

TEST(AlignCpu, HandComputedCase) {
  // slots 0..3 -> experts 0, 2, 2, 1
  const auto r = align({0, 2, 2, 1}, 2, 2, 3, 16);
  EXPECT_EQ(r.total, 48);
  EXPECT_EQ(r.sorted[0], 0);
  EXPECT_EQ(r.sorted[1], 4);  // sentinel M*K
  EXPECT_EQ(r.sorted[16], 3);
  EXPECT_EQ(r.sorted[32], 1);
  EXPECT_EQ(r.sorted[33], 2);
  EXPECT_EQ(r.sorted[34], 4);
  EXPECT_EQ(r.experts[0], 0);
  EXPECT_EQ(r.experts[1], 1);
  EXPECT_EQ(r.experts[2], 2);
  EXPECT_EQ(r.experts[3], -1);
}

TEST(AlignCpu, InvariantsOnSeededSkewedRouting) {
  for (int E : {1, 3, 8, 160, 256, 384, 8192}) {
    for (int B : {16, 64, 256}) {
      for (std::int64_t M : {0, 1, 7, 1000}) {
        for (bool hot : {false, true}) {
          const int K = std::min(E, 8);
          const std::string id = "align/E" + std::to_string(E) + "/B" + std::to_string(B) + "/M" +
                                 std::to_string(M) + (hot ? "/hot" : "");
          const auto ids = make_ids(M, K, E, tools::seed_from_name(id), hot);
          check_align_invariants(ids, M, K, E, B, align(ids, M, K, E, B), id);
        }
      }
    }
  }
}

TEST(AlignCpu, AllDroppedAndOneHotExpert) {
  const std::vector<std::int32_t> dropped(64, -1);
  const auto r = align(dropped, 16, 4, 8, 16);
  EXPECT_EQ(r.total, 0);
  EXPECT_EQ(r.experts[0], -1);
  std::vector<std::int32_t> hot(64, 5);
  const auto h = align(hot, 64, 1, 8, 16);
  EXPECT_EQ(h.total, 64);
  for (int i = 0; i < 64; ++i) EXPECT_EQ(h.sorted[static_cast<std::size_t>(i)], i);
  for (int b = 0; b < 4; ++b) EXPECT_EQ(h.experts[static_cast<std::size_t>(b)], 5);
}

TEST(AlignCpu, ExpertMapKeepsOnlyLocalExperts) {
  // Global experts 0..3; this rank owns 1 and 3 as local 0 and 1.
  const auto r = align({0, 1, 3, 2, 3, 1}, 3, 2, 2, 16, {-1, 0, -1, 1});
  EXPECT_EQ(r.total, 32);
  EXPECT_EQ(r.sorted[0], 1);
  EXPECT_EQ(r.sorted[1], 5);
  EXPECT_EQ(r.sorted[16], 2);
  EXPECT_EQ(r.sorted[17], 4);
  EXPECT_EQ(r.experts[0], 0);
  EXPECT_EQ(r.experts[1], 1);
}

TEST(AlignCpu, SizesUse64BitArithmetic) {
  // 2^31 slots would overflow 32-bit offsets; the size formulas must not.
  const std::int64_t slots = std::int64_t{3} << 30;
  EXPECT_EQ(align_max_padded(slots, 8192, 256), slots + 8192LL * 255);
  ExpertLayoutParams p;
  p.num_experts = 256;
  p.alignment = 128;
  EXPECT_EQ(layout_max_rows(p, slots), slots + 256LL * 127);
  p.max_rows_per_expert = std::int64_t{1} << 24;
  EXPECT_EQ(layout_max_rows(p, slots), std::int64_t{1} << 32);
}

TEST(AlignCpu, RejectsInvalidArguments) {
  std::vector<std::int32_t> ids(8, 0), out(1024), experts(64);
  std::int32_t total = 0;
  AlignArgs a;
  a.top_k_ids = TensorView::contiguous(ids.data(), DType::kInt32, {4, 2});
  a.sorted_token_ids = TensorView::contiguous(out.data(), DType::kInt32, {1024});
  a.expert_ids = TensorView::contiguous(experts.data(), DType::kInt32, {64});
  a.num_tokens_post_pad = TensorView::contiguous(&total, DType::kInt32, {1});
  Status st = moe_align_block_size_cpu({8, 8}, a);
  EXPECT_NE(st.message().find("block_size = 8: expected 16 <= block_size <= 256"),
            std::string::npos)
      << st.message();
  st = moe_align_block_size_cpu({0, 16}, a);
  EXPECT_NE(st.message().find("num_experts = 0"), std::string::npos) << st.message();
  a.sorted_token_ids = TensorView::contiguous(out.data(), DType::kInt32, {100});
  st = moe_align_block_size_cpu({8, 16}, a);
  EXPECT_NE(st.message().find("sorted_token_ids.numel = 100: expected >= 128"), std::string::npos)
      << st.message();
  a.top_k_ids.dtype = DType::kFloat32;
  st = moe_align_block_size_cpu({8, 16}, a);
  EXPECT_NE(st.message().find("top_k_ids.dtype = float32"), std::string::npos) << st.message();
  a.top_k_ids = TensorView::contiguous(ids.data(), DType::kInt32, {std::int64_t{1} << 30, 4});
  st = moe_align_block_size_cpu({8, 16}, a);
  EXPECT_NE(st.message().find("top_k_ids.numel = 4294967296: expected < 2^31"), std::string::npos)
      << st.message();
}

// ---- layouts, permute, combine ---------------------------------------------------------------

struct Layout {
  std::vector<std::int32_t> counts;
  std::vector<std::int64_t> offsets, src_to_dst, dst_to_src;
  std::int64_t overflow = -1;
};

Layout layout(const std::vector<std::int32_t>& ids, std::int64_t M, int K,
              const ExpertLayoutParams& p) {
  Layout l;
  l.counts.assign(static_cast<std::size_t>(p.num_experts), -7);
  l.offsets.assign(static_cast<std::size_t>(p.num_experts) + 1, -7);
  l.src_to_dst.assign(static_cast<std::size_t>(M * K), -7);
  l.dst_to_src.assign(static_cast<std::size_t>(layout_max_rows(p, M * K)), -7);
  ExpertLayoutArgs a;
  a.top_k_ids =
      TensorView::contiguous(const_cast<std::int32_t*>(ids.data()), DType::kInt32, {M, K});
  a.expert_counts = TensorView::contiguous(l.counts.data(), DType::kInt32, {p.num_experts});
  a.expert_offsets = TensorView::contiguous(l.offsets.data(), DType::kInt64, {p.num_experts + 1});
  a.src_to_dst = TensorView::contiguous(l.src_to_dst.data(), DType::kInt64, {M * K});
  a.dst_to_src = TensorView::contiguous(l.dst_to_src.data(), DType::kInt64,
                                        {static_cast<std::int64_t>(l.dst_to_src.size())});
  a.overflow = TensorView::contiguous(&l.overflow, DType::kInt64, {1});
  const Status st = expert_layout_cpu(p, a);
  EXPECT_TRUE(st.ok()) << st.to_string();
  return l;
}

// route_and_align_cpu equals route_cpu followed by moe_align_block_size_cpu on the routed ids,
// and rejects align ids that are not the routing output.
TEST(RouteAndAlignCpu, EqualsTheTwoStages) {
  const std::int64_t M = 333;
  const int E = 160, K = 6;
  tools::Rng rng(7);
  std::vector<float> logits(static_cast<std::size_t>(M * E)), w(static_cast<std::size_t>(M * K));
  for (float& v : logits) v = static_cast<float>(rng.normal());
  std::vector<std::int32_t> ids(static_cast<std::size_t>(M * K));
  RoutingParams rp;
  rp.num_experts = E;
  rp.top_k = K;
  rp.renormalize = true;
  RoutingArgs ra;
  ra.logits = TensorView::contiguous(logits.data(), DType::kFloat32, {M, E});
  ra.top_k_weights = TensorView::contiguous(w.data(), DType::kFloat32, {M, K});
  ra.top_k_ids = TensorView::contiguous(ids.data(), DType::kInt32, {M, K});
  AlignParams ap;
  ap.num_experts = E;
  ap.block_size = 64;
  const std::int64_t padded = align_max_padded(M * K, E, 64),
                     blocks = align_max_blocks(M * K, E, 64);
  std::vector<std::int32_t> sorted(static_cast<std::size_t>(padded)),
      bexp(static_cast<std::size_t>(blocks)), post(1);
  AlignArgs aa;
  aa.sorted_token_ids = TensorView::contiguous(sorted.data(), DType::kInt32, {padded});
  aa.expert_ids = TensorView::contiguous(bexp.data(), DType::kInt32, {blocks});
  aa.num_tokens_post_pad = TensorView::contiguous(post.data(), DType::kInt32, {1});
  ASSERT_TRUE(route_and_align_cpu(rp, ra, ap, aa).ok());
  const Aligned ref = align(ids, M, K, E, 64);
  EXPECT_EQ(post[0], ref.total);
  EXPECT_EQ(sorted, ref.sorted);
  EXPECT_EQ(bexp, ref.experts);

  std::vector<std::int32_t> other(ids.size());
  aa.top_k_ids = TensorView::contiguous(other.data(), DType::kInt32, {M, K});
  const Status st = route_and_align_cpu(rp, ra, ap, aa);
  EXPECT_NE(st.message().find("align_args.top_k_ids"), std::string::npos) << st.message();
  aa.top_k_ids = ra.top_k_ids;  // the same tensor is accepted
  EXPECT_TRUE(route_and_align_cpu(rp, ra, ap, aa).ok());
  aa.expert_ids = TensorView::contiguous(bexp.data(), DType::kInt32, {3});
  EXPECT_FALSE(route_and_align_cpu(rp, ra, ap, aa).ok());
}

TEST(ExpertLayoutCpu, ContiguousAndMaskedInvariants) {
  for (int E : {3, 160, 384}) {
    for (int alignment : {1, 128}) {
      const std::int64_t M = 500;
      const int K = 8;
      const auto ids =
          make_ids(M, K, E, tools::seed_from_name("layout/E" + std::to_string(E)), true);
      ExpertLayoutParams p;
      p.num_experts = E;
      p.alignment = alignment;
      const Layout l = layout(ids, M, K, p);
      std::int64_t valid = 0;
      for (std::int64_t s = 0; s < M * K; ++s) {
        const std::int32_t e = ids[static_cast<std::size_t>(s)];
        if (e < 0 || e >= E) {
          ASSERT_EQ(l.src_to_dst[static_cast<std::size_t>(s)], -1);
          continue;
        }
        ++valid;
        const std::int64_t d = l.src_to_dst[static_cast<std::size_t>(s)];
        ASSERT_GE(d, l.offsets[static_cast<std::size_t>(e)]);
        ASSERT_LT(d, l.offsets[static_cast<std::size_t>(e) + 1]);
        ASSERT_EQ(l.dst_to_src[static_cast<std::size_t>(d)], s);
      }
      std::int64_t total = 0;
      for (int e = 0; e < E; ++e) {
        total += l.counts[static_cast<std::size_t>(e)];
        ASSERT_EQ(l.offsets[static_cast<std::size_t>(e)] % alignment, 0);
      }
      ASSERT_EQ(total, valid);
      ASSERT_EQ(l.overflow, 0);
    }
    // Masked: a hot expert overflows max_m; counts are clamped, the rest is dropped and counted.
    const std::int64_t M = 300;
    const auto ids = make_ids(M, 4, E, 42, true);
    ExpertLayoutParams p;
    p.num_experts = E;
    p.max_rows_per_expert = 64;
    const Layout l = layout(ids, M, 4, p);
    std::int64_t hot = 0;
    for (std::int32_t e : ids) hot += e == E / 2;
    EXPECT_EQ(l.counts[static_cast<std::size_t>(E / 2)], 64);
    EXPECT_GE(l.overflow, hot - 64);
    EXPECT_EQ(l.offsets[static_cast<std::size_t>(E)], E * 64);
  }
}

template <typename T>
std::vector<T> encode(const std::vector<float>& v) {
  std::vector<T> out(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) {
    if constexpr (std::is_same_v<T, float>) {
      out[i] = v[i];
    } else if constexpr (std::is_same_v<T, detail::bf16_t>) {
      out[i] = detail::float_to_bf16(v[i]);
    } else {
      out[i] = detail::float_to_fp16(v[i]);
    }
  }
  return out;
}

// permute -> identity expert -> combine equals rsf * sum_k w * x[t], bit for bit against the same
// fused multiply-add order, for every H (tails included) and dtype.
template <typename T>
void round_trip(DType dtype) {
  for (std::int64_t H : {1, 7, 2880, 7168}) {
    const std::int64_t M = H > 1000 ? 33 : 257;
    const int K = 4, E = 9;
    const std::string id = std::string("roundtrip/") + dtype_name(dtype) + "/H" + std::to_string(H);
    tools::Rng rng(tools::seed_from_name(id));
    const auto ids = make_ids(M, K, E, rng.next_u64(), true);
    std::vector<float> xf(static_cast<std::size_t>(M * H)), w(static_cast<std::size_t>(M * K));
    for (float& v : xf) v = static_cast<float>(rng.normal());
    for (float& v : w) v = static_cast<float>(rng.uniform());
    const std::vector<T> x = encode<T>(xf);
    ExpertLayoutParams p;
    p.num_experts = E;
    p.alignment = 16;
    const Layout l = layout(ids, M, K, p);
    const std::int64_t R = static_cast<std::int64_t>(l.dst_to_src.size());
    std::vector<T> rows(static_cast<std::size_t>(R * H), encode<T>({123.0f})[0]);
    PermuteArgs pa;
    pa.x = TensorView::contiguous(const_cast<T*>(x.data()), dtype, {M, H});
    pa.dst_to_src =
        TensorView::contiguous(const_cast<std::int64_t*>(l.dst_to_src.data()), DType::kInt64, {R});
    pa.top_k = K;
    pa.out = TensorView::contiguous(rows.data(), dtype, {R, H});
    ASSERT_TRUE(permute_cpu(pa).ok());
    // With the inverse map (the token-major CUDA path's argument): the same bytes.
    std::vector<T> rows_inv(rows.size(), encode<T>({-5.0f})[0]);
    PermuteArgs pi = pa;
    pi.out = TensorView::contiguous(rows_inv.data(), dtype, {R, H});
    pi.src_to_dst = TensorView::contiguous(const_cast<std::int64_t*>(l.src_to_dst.data()),
                                           DType::kInt64, {M * K});
    const Status inv_st = permute_cpu(pi);
    ASSERT_TRUE(inv_st.ok()) << inv_st.to_string();
    ASSERT_EQ(std::memcmp(rows.data(), rows_inv.data(), rows.size() * sizeof(T)), 0) << id;
    for (std::int64_t r = 0; r < R; ++r) {  // padding rows are zeroed, others copy their token
      const std::int64_t s = l.dst_to_src[static_cast<std::size_t>(r)];
      for (std::int64_t h = 0; h < H; h += std::max<std::int64_t>(1, H / 5)) {
        const float got = detail::to_float(rows[static_cast<std::size_t>(r * H + h)]);
        ASSERT_EQ(got,
                  s < 0 ? 0.0f : detail::to_float(x[static_cast<std::size_t>((s / K) * H + h)]))
            << id;
      }
    }
    std::vector<T> out(static_cast<std::size_t>(M * H));
    CombineArgs ca;
    ca.y = pa.out;
    ca.src_to_dst = TensorView::contiguous(const_cast<std::int64_t*>(l.src_to_dst.data()),
                                           DType::kInt64, {M * K});
    ca.top_k_weights = TensorView::contiguous(w.data(), DType::kFloat32, {M, K});
    ca.out = TensorView::contiguous(out.data(), dtype, {M, H});
    ASSERT_TRUE(combine_cpu({2.5f}, ca).ok());
    for (std::int64_t t = 0; t < M; ++t) {
      for (std::int64_t h = 0; h < H; ++h) {
        float acc = 0.0f;
        double exact = 0.0;
        const float xv = detail::to_float(x[static_cast<std::size_t>(t * H + h)]);
        for (int k = 0; k < K; ++k) {
          const std::int32_t e = ids[static_cast<std::size_t>(t * K + k)];
          if (e < 0 || e >= E) continue;
          acc = detail::exact_fma(w[static_cast<std::size_t>(t * K + k)], xv, acc);
          exact += double{w[static_cast<std::size_t>(t * K + k)]} * xv;
        }
        const float want = detail::to_float(encode<T>({2.5f * acc})[0]);
        ASSERT_EQ(detail::to_float(out[static_cast<std::size_t>(t * H + h)]), want)
            << id << " t" << t << " h" << h;
        ASSERT_NEAR(want, 2.5 * exact, 1e-2 * (1.0 + std::fabs(2.5 * exact))) << id;
      }
    }
  }
}

TEST(PermuteCombineCpu, RoundTripFloat32) {
  round_trip<float>(DType::kFloat32);
}
TEST(PermuteCombineCpu, RoundTripBFloat16) {
  round_trip<detail::bf16_t>(DType::kBFloat16);
}
TEST(PermuteCombineCpu, RoundTripFloat16) {
  round_trip<detail::fp16_t>(DType::kFloat16);
}

TEST(PermuteCombineCpu, RejectsBadMapsAndShapes) {
  std::vector<float> x(8), out(8), w(4);
  std::vector<std::int64_t> map = {0, 5, -1, 1};
  PermuteArgs pa;
  pa.x = TensorView::contiguous(x.data(), DType::kFloat32, {2, 4});
  pa.dst_to_src = TensorView::contiguous(map.data(), DType::kInt64, {4});
  pa.top_k = 2;
  pa.out = TensorView::contiguous(out.data(), DType::kFloat32, {2, 4});
  Status st = permute_cpu(pa);
  EXPECT_NE(st.message().find("out.shape = [2, 4]: expected [4, 4]"), std::string::npos)
      << st.message();
  std::vector<float> out4(16);
  pa.out = TensorView::contiguous(out4.data(), DType::kFloat32, {4, 4});
  st = permute_cpu(pa);
  EXPECT_NE(st.message().find("dst_to_src[1] = 5: expected -1 or a slot in [0, 4)"),
            std::string::npos)
      << st.message();
  CombineArgs ca;
  ca.y = TensorView::contiguous(x.data(), DType::kFloat32, {2, 4});
  ca.src_to_dst = TensorView::contiguous(map.data(), DType::kInt64, {4});
  ca.top_k_weights = TensorView::contiguous(w.data(), DType::kFloat32, {2, 2});
  ca.out = TensorView::contiguous(out.data(), DType::kBFloat16, {2, 4});
  st = combine_cpu({}, ca);
  EXPECT_NE(st.message().find("out.dtype = bfloat16: expected float32"), std::string::npos)
      << st.message();
  ca.out = TensorView::contiguous(out.data(), DType::kFloat32, {2, 4});
  st = combine_cpu({}, ca);
  EXPECT_NE(st.message().find("src_to_dst[1] = 5: expected -1 or a row of y in [0, 2)"),
            std::string::npos)
      << st.message();
}

// ---- combine with absent weights / src_to_dst (moe_sum_reduce) ------------------------------

// The naive oracle of combine: rsf * sum_k w * y[row] with one fused multiply-add per term in
// ascending k; a null map is the identity row t*K + k, null weights are 1.
template <typename T>
std::vector<T> naive_combine(const T* y, std::int64_t y_stride, const std::int64_t* map,
                             const float* w, std::int64_t M, std::int64_t K, std::int64_t H,
                             float rsf) {
  std::vector<T> out(static_cast<std::size_t>(M * H));
  for (std::int64_t t = 0; t < M; ++t) {
    for (std::int64_t h = 0; h < H; ++h) {
      float acc = 0.0f;
      for (std::int64_t k = 0; k < K; ++k) {
        const std::int64_t s = t * K + k, row = map ? map[s] : s;
        if (row < 0) continue;
        acc = detail::exact_fma(w ? w[s] : 1.0f, detail::to_float(y[row * y_stride + h]), acc);
      }
      out[static_cast<std::size_t>(t * H + h)] = encode<T>({rsf * acc})[0];
    }
  }
  return out;
}

// Every combination of absent weights / absent map against the naive oracle, bit for bit, and
// against the full path given explicit unit weights / the identity map (the bytes moe_sum_reduce
// produced before the options existed); no weights and no map equals a plain float sum.
template <typename T>
void combine_optional_args(DType dtype) {
  struct Shape {
    std::int64_t M, K, H, y_stride;  // y_stride > H: strided y rows (no src_to_dst only)
  };
  for (const Shape& sh : {Shape{0, 4, 8, 8}, Shape{1, 1, 7, 7}, Shape{6, 1, 16, 16},
                          Shape{17, 8, 40, 40}, Shape{9, 9, 7, 10}, Shape{3, 40, 2880, 2880}}) {
    const std::int64_t M = sh.M, K = sh.K, H = sh.H;
    const std::string id = std::string("combine_optional/") + dtype_name(dtype) + "/M" +
                           std::to_string(M) + "/K" + std::to_string(K) + "/H" + std::to_string(H) +
                           "/stride" + std::to_string(sh.y_stride);
    SCOPED_TRACE(id);
    tools::Rng rng(tools::seed_from_name(id));
    std::vector<float> yf(static_cast<std::size_t>(std::max<std::int64_t>(M * K * sh.y_stride, 1))),
        w(static_cast<std::size_t>(std::max<std::int64_t>(M * K, 1)));
    for (float& v : yf) v = static_cast<float>(rng.normal());
    for (float& v : w) v = static_cast<float>(rng.uniform());
    const std::vector<T> y = encode<T>(yf);
    std::vector<std::int64_t> identity(w.size()), map(w.size());
    for (std::size_t s = 0; s < identity.size(); ++s) {
      identity[s] = static_cast<std::int64_t>(s);
      // Rows in any order (repeats allowed), some slots dropped (-1).
      map[s] = rng.below(7) == 0 ? -1 : static_cast<std::int64_t>(rng.below(identity.size()));
    }
    const TensorView y_view = [&] {
      TensorView v = TensorView::contiguous(const_cast<T*>(y.data()), dtype, {M * K, H});
      v.strides[0] = sh.y_stride;
      return v;
    }();
    const TensorView w_view = TensorView::contiguous(w.data(), DType::kFloat32, {M, K});
    const TensorView id_view = TensorView::contiguous(identity.data(), DType::kInt64, {M * K});
    const TensorView map_view = TensorView::contiguous(map.data(), DType::kInt64, {M * K});
    const std::vector<float> ones(w.size(), 1.0f);
    const TensorView ones_view =
        TensorView::contiguous(const_cast<float*>(ones.data()), DType::kFloat32, {M, K});
    for (float rsf : {2.5f, -0.75f}) {
      for (int variant = 0; variant < 3; ++variant) {
        const bool has_map = variant == 2, has_w = variant == 1;
        const std::string what = std::string(has_map ? "map" : "no map") + ", " +
                                 (has_w ? "weights" : "no weights") + ", rsf " +
                                 std::to_string(rsf);
        CombineArgs a;
        a.y = y_view;
        if (has_map) a.src_to_dst = map_view;
        if (has_w) {
          a.top_k_weights = w_view;
        } else {
          a.top_k = static_cast<std::int32_t>(K);
        }
        std::vector<T> got(static_cast<std::size_t>(std::max<std::int64_t>(M * H, 1)),
                           encode<T>({123.0f})[0]);
        a.out = TensorView::contiguous(got.data(), dtype, {M, H});
        const Status st = combine_cpu({rsf}, a);
        ASSERT_TRUE(st.ok()) << what << ": " << st.to_string();
        got.resize(static_cast<std::size_t>(M * H));
        const std::vector<T> want =
            naive_combine<T>(y.data(), M * K > 1 ? sh.y_stride : H, has_map ? map.data() : nullptr,
                             has_w ? w.data() : nullptr, M, K, H, rsf);
        ASSERT_EQ(std::memcmp(got.data(), want.data(), want.size() * sizeof(T)), 0) << what;
        // The full path with the explicit identity map / unit weights: the same bytes.
        CombineArgs full = a;
        full.top_k = 0;
        full.src_to_dst = has_map ? map_view : id_view;
        full.top_k_weights = has_w ? w_view : ones_view;
        std::vector<T> explicit_out(static_cast<std::size_t>(std::max<std::int64_t>(M * H, 1)));
        full.out = TensorView::contiguous(explicit_out.data(), dtype, {M, H});
        ASSERT_TRUE(combine_cpu({rsf}, full).ok()) << what;
        ASSERT_EQ(std::memcmp(got.data(), explicit_out.data(), want.size() * sizeof(T)), 0) << what;
        if (!has_map && !has_w) {  // fma(1, y, acc) is y + acc rounded once: a plain float sum
          for (std::int64_t t = 0; t < M; ++t) {
            for (std::int64_t h = 0; h < H; ++h) {
              float acc = 0.0f;
              for (std::int64_t k = 0; k < K; ++k) {
                acc = acc + detail::to_float(y[static_cast<std::size_t>(
                                (t * K + k) * (M * K > 1 ? sh.y_stride : H) + h)]);
              }
              ASSERT_EQ(detail::to_float(got[static_cast<std::size_t>(t * H + h)]),
                        detail::to_float(encode<T>({rsf * acc})[0]))
                  << what << " t" << t << " h" << h;
            }
          }
        }
      }
    }
  }
}

TEST(CombineCpu, AbsentWeightsAndMapFloat32) {
  combine_optional_args<float>(DType::kFloat32);
}
TEST(CombineCpu, AbsentWeightsAndMapBFloat16) {
  combine_optional_args<detail::bf16_t>(DType::kBFloat16);
}
TEST(CombineCpu, AbsentWeightsAndMapFloat16) {
  combine_optional_args<detail::fp16_t>(DType::kFloat16);
}

// Empty tensors keep their shape, so they count as given even with a null data pointer (vectors
// and frameworks hand out null for no elements): no tokens with weights [0, K] and map [0] over a
// layout with padding rows still validates against the weights, as before the options existed;
// K = 0 through weights [M, 0] gives rsf * 0.
TEST(CombineCpu, EmptyTensorsAreGivenNotAbsent) {
  std::vector<float> y(8 * 4, 1.0f), out(3 * 4, 7.0f);
  CombineArgs a;
  a.y = TensorView::contiguous(y.data(), DType::kFloat32, {8, 4});
  a.src_to_dst = TensorView::contiguous(nullptr, DType::kInt64, {0});
  a.top_k_weights = TensorView::contiguous(nullptr, DType::kFloat32, {0, 8});
  a.out = TensorView::contiguous(nullptr, DType::kFloat32, {0, 4});
  Status st = combine_cpu({2.0f}, a);
  EXPECT_TRUE(st.ok()) << st.to_string();
  a.top_k_weights = TensorView::contiguous(nullptr, DType::kFloat32, {3, 0});
  a.out = TensorView::contiguous(out.data(), DType::kFloat32, {3, 4});
  st = combine_cpu({2.0f}, a);
  ASSERT_TRUE(st.ok()) << st.to_string();
  for (float v : out) EXPECT_EQ(v, 0.0f);
  // No tokens without weights or map: y has M*K = 0 rows.
  a = CombineArgs{};
  a.y = TensorView::contiguous(nullptr, DType::kBFloat16, {0, 4});
  a.top_k = 8;
  a.out = TensorView::contiguous(nullptr, DType::kBFloat16, {0, 4});
  st = combine_cpu({1.0f}, a);
  EXPECT_TRUE(st.ok()) << st.to_string();
  // A shaped view with elements but no data is an error, not an absent argument.
  a.y = TensorView::contiguous(y.data(), DType::kFloat32, {8, 4});
  a.out = TensorView::contiguous(out.data(), DType::kFloat32, {2, 4});
  a.top_k = 0;
  a.top_k_weights = TensorView::contiguous(nullptr, DType::kFloat32, {2, 4});
  st = combine_cpu({1.0f}, a);
  EXPECT_NE(
      st.message().find("combine_cpu: top_k_weights.data = null: expected a non-null pointer"),
      std::string::npos)
      << st.message();
}

// Argument errors of the optional forms name the argument, its value and what was expected.
TEST(CombineCpu, RejectsBadOptionalArguments) {
  std::vector<float> y(40, 1.0f), out(16), w(4, 1.0f);
  std::vector<std::int64_t> map = {0, 5, -1, 1}, wide(8, 0);
  CombineArgs a;
  a.y = TensorView::contiguous(y.data(), DType::kFloat32, {8, 4});
  a.out = TensorView::contiguous(out.data(), DType::kFloat32, {2, 4});
  const auto expect_error = [&](const std::string& what) {
    const Status e = combine_cpu({}, a);
    EXPECT_EQ(e.code(), StatusCode::kInvalidArgument) << what;
    EXPECT_NE(e.message().find(what), std::string::npos) << e.message();
  };
  // K from nowhere.
  expect_error(
      "combine_cpu: top_k = 0: expected >= 1 when top_k_weights is absent (K is "
      "top_k_weights.shape[1] or top_k)");
  a.top_k = -1;
  expect_error("top_k = -1: expected >= 0 (0: K = top_k_weights.shape[1])");
  // top_k disagreeing with the weights.
  a.top_k_weights = TensorView::contiguous(w.data(), DType::kFloat32, {2, 2});
  a.top_k = 3;
  expect_error("top_k = 3: expected 0 or top_k_weights.shape[1] = 2");
  a.top_k = 2;  // agreeing: accepted; no map, so y needs M*K = 4 rows
  expect_error(
      "y.shape = [8, 4]: expected [4, 4] (num_tokens * top_k rows: src_to_dst is absent, so slot "
      "t*K + k reads row t*K + k)");
  // No weights: K = top_k, M = out.shape[0].
  a.top_k_weights = TensorView{};
  a.top_k = 3;
  expect_error("y.shape = [8, 4]: expected [6, 4]");
  a.top_k = 4;
  ASSERT_TRUE(combine_cpu({}, a).ok());
  a.out = TensorView::contiguous(out.data(), DType::kFloat32, {2, 5});
  expect_error("out.shape = [2, 5]: expected [2, 4]");
  a.out = TensorView::contiguous(out.data(), DType::kFloat32, {8});
  expect_error("out.shape = [8]: expected [8, 4]");
  a.out = TensorView::contiguous(out.data(), DType::kFloat16, {2, 4});
  expect_error("out.dtype = float16: expected float32");
  a.out = TensorView::contiguous(out.data(), DType::kFloat32, {2, 4});
  // A map without weights: its shape, dtype, strides and entries are checked as with weights.
  a.top_k = 2;
  a.src_to_dst = TensorView::contiguous(map.data(), DType::kInt64, {3});
  expect_error("src_to_dst.shape = [3]: expected [4]");
  a.src_to_dst = TensorView::contiguous(map.data(), DType::kInt32, {4});
  expect_error("src_to_dst.dtype = int32: expected int64");
  a.src_to_dst = TensorView::contiguous(wide.data(), DType::kInt64, {4});
  a.src_to_dst.strides[0] = 2;
  expect_error("src_to_dst.strides = [2]: expected a contiguous (row-major) tensor");
  a.src_to_dst = TensorView::contiguous(map.data(), DType::kInt64, {4});
  map[1] = 8;
  expect_error("src_to_dst[1] = 8: expected -1 or a row of y in [0, 8)");
  map[1] = 7;
  ASSERT_TRUE(combine_cpu({}, a).ok());  // with a map, y may have any number of rows
  a.top_k_weights = TensorView::contiguous(w.data(), DType::kInt32, {2, 2});
  a.top_k = 0;
  expect_error("top_k_weights.dtype = int32: expected float32");
}

// permute_cpu with src_to_dst over every layout kind expert_layout_cpu produces (contiguous with
// alignment padding, masked with overflow, expert_map, all dropped, no tokens): accepted, and the
// output equals the one without it.
TEST(PermuteCpu, InverseMapSameOutputEveryLayout) {
  struct LayoutCase {
    std::int64_t M;
    int K, E, alignment;
    std::int64_t max_m;
    bool mapped, all_dropped;
  };
  for (const LayoutCase& lc :
       {LayoutCase{200, 8, 16, 1, 0, false, false}, LayoutCase{200, 8, 16, 128, 0, false, false},
        LayoutCase{150, 4, 9, 1, 40, false, false}, LayoutCase{120, 6, 8, 16, 0, true, false},
        LayoutCase{64, 4, 8, 128, 0, false, true}, LayoutCase{0, 8, 8, 128, 0, false, false}}) {
    const std::string id = "inverse/M" + std::to_string(lc.M) + "/a" +
                           std::to_string(lc.alignment) + "/m" + std::to_string(lc.max_m) +
                           (lc.mapped ? "/map" : "") + (lc.all_dropped ? "/dropped" : "");
    const std::int64_t M = lc.M, H = 12;
    const int K = lc.K;
    auto ids = make_ids(M, K, lc.mapped ? 2 * lc.E : lc.E, tools::seed_from_name(id), true);
    if (lc.all_dropped) std::fill(ids.begin(), ids.end(), -1);
    std::vector<std::int32_t> emap;
    ExpertLayoutParams p;
    p.num_experts = lc.E;
    p.alignment = lc.alignment;
    p.max_rows_per_expert = lc.max_m;
    Layout l;
    if (lc.mapped) {  // global experts 0..2E-1, the odd ones local
      for (int e = 0; e < 2 * lc.E; ++e) emap.push_back(e % 2 ? e / 2 : -1);
      l.counts.assign(static_cast<std::size_t>(lc.E), -7);
      l.offsets.assign(static_cast<std::size_t>(lc.E) + 1, -7);
      l.src_to_dst.assign(static_cast<std::size_t>(M * K), -7);
      l.dst_to_src.assign(static_cast<std::size_t>(layout_max_rows(p, M * K)), -7);
      ExpertLayoutArgs a;
      a.top_k_ids = TensorView::contiguous(ids.data(), DType::kInt32, {M, K});
      a.expert_map = TensorView::contiguous(emap.data(), DType::kInt32, {2 * lc.E});
      a.expert_counts = TensorView::contiguous(l.counts.data(), DType::kInt32, {lc.E});
      a.expert_offsets = TensorView::contiguous(l.offsets.data(), DType::kInt64, {lc.E + 1});
      a.src_to_dst = TensorView::contiguous(l.src_to_dst.data(), DType::kInt64, {M * K});
      a.dst_to_src = TensorView::contiguous(l.dst_to_src.data(), DType::kInt64,
                                            {static_cast<std::int64_t>(l.dst_to_src.size())});
      ASSERT_TRUE(expert_layout_cpu(p, a).ok()) << id;
    } else {
      l = layout(ids, M, K, p);
    }
    const std::int64_t R = static_cast<std::int64_t>(l.dst_to_src.size());
    std::vector<float> x(static_cast<std::size_t>(M * H));
    tools::Rng rng(tools::seed_from_name(id + "/x"));
    for (float& v : x) v = static_cast<float>(rng.normal());
    std::vector<float> want(static_cast<std::size_t>(R * H), 7.0f),
        got(static_cast<std::size_t>(R * H), -7.0f);
    PermuteArgs pa;
    pa.x = TensorView::contiguous(x.data(), DType::kFloat32, {M, H});
    pa.dst_to_src = TensorView::contiguous(l.dst_to_src.data(), DType::kInt64, {R});
    pa.top_k = K;
    pa.out = TensorView::contiguous(want.data(), DType::kFloat32, {R, H});
    ASSERT_TRUE(permute_cpu(pa).ok()) << id;
    pa.out = TensorView::contiguous(got.data(), DType::kFloat32, {R, H});
    pa.src_to_dst = TensorView::contiguous(l.src_to_dst.data(), DType::kInt64, {M * K});
    // No tokens: an empty inverse map has no data pointer, so it counts as not given.
    if (M == 0) pa.src_to_dst.data = l.dst_to_src.data();
    const Status st = permute_cpu(pa);
    ASSERT_TRUE(st.ok()) << id << ": " << st.to_string();
    ASSERT_EQ(std::memcmp(want.data(), got.data(), want.size() * sizeof(float)), 0) << id;
  }
}

// src_to_dst that is not dst_to_src's inverse, and bad shapes, dtypes and devices: errors naming
// src_to_dst, its value and what was expected.
TEST(PermuteCpu, RejectsInverseMapViolationsAndBadShapes) {
  // M = 2 tokens, K = 2: slots 0..3; rows: 0 <- slot 2, 1 <- slot 0, 2 padding, 3 <- slot 3;
  // slot 1 dropped.
  std::vector<float> x(8, 1.0f), out(16);
  std::vector<std::int64_t> d2s = {2, 0, -1, 3};
  const std::vector<std::int64_t> good = {1, -1, 0, 3};
  std::vector<std::int64_t> s2d = good;
  PermuteArgs pa;
  pa.x = TensorView::contiguous(x.data(), DType::kFloat32, {2, 4});
  pa.dst_to_src = TensorView::contiguous(d2s.data(), DType::kInt64, {4});
  pa.top_k = 2;
  pa.out = TensorView::contiguous(out.data(), DType::kFloat32, {4, 4});
  pa.src_to_dst = TensorView::contiguous(s2d.data(), DType::kInt64, {4});
  Status st = permute_cpu(pa);
  ASSERT_TRUE(st.ok()) << st.to_string();
  const auto expect_error = [&](const std::string& what) {
    const Status e = permute_cpu(pa);
    EXPECT_EQ(e.code(), StatusCode::kInvalidArgument) << what;
    EXPECT_NE(e.message().find(what), std::string::npos) << e.message();
  };
  s2d[1] = 9;  // out of range
  expect_error("permute_cpu: src_to_dst[1] = 9: expected -1 or a row in [0, 4)");
  s2d[1] = -2;
  expect_error("src_to_dst[1] = -2: expected -1 or a row in [0, 4)");
  s2d[1] = 2;  // a padding row
  expect_error("src_to_dst[1] = 2: expected the inverse of dst_to_src (dst_to_src[2] = -1, not 1)");
  s2d = good;
  std::swap(s2d[0], s2d[2]);  // both in range, swapped
  expect_error("src_to_dst[0] = 0: expected the inverse of dst_to_src (dst_to_src[0] = 2, not 0)");
  s2d = good;
  s2d[3] = -1;  // row 3 holds slot 3, but slot 3 claims to be dropped
  expect_error("src_to_dst[3] = -1: expected 3, the inverse of dst_to_src (dst_to_src[3] = 3)");
  s2d = good;
  s2d[2] = 1;  // slot 2 -> row 1, which holds slot 0 (and slot 0 -> row 1 too)
  expect_error("src_to_dst[2] = 1: expected the inverse of dst_to_src (dst_to_src[1] = 0, not 2)");
  s2d = good;
  // Shapes, dtypes, devices, strides.
  pa.src_to_dst = TensorView::contiguous(s2d.data(), DType::kInt64, {3});
  expect_error("src_to_dst.shape = [3]: expected [4]");
  pa.src_to_dst = TensorView::contiguous(s2d.data(), DType::kInt64, {2, 2});
  expect_error("src_to_dst.shape = [2, 2]: expected [4]");
  pa.src_to_dst = TensorView::contiguous(s2d.data(), DType::kInt32, {4});
  expect_error("src_to_dst.dtype = int32: expected int64");
  pa.src_to_dst = TensorView::contiguous(s2d.data(), DType::kInt64, {4}, Device::kCuda);
  expect_error("src_to_dst.device = cuda: expected cpu");
  std::vector<std::int64_t> wide(8, -1);
  pa.src_to_dst = TensorView::contiguous(wide.data(), DType::kInt64, {4});
  pa.src_to_dst.strides[0] = 2;
  expect_error("src_to_dst.strides");
  // A bad dst_to_src is reported first, as without src_to_dst.
  pa.src_to_dst = TensorView::contiguous(s2d.data(), DType::kInt64, {4});
  d2s[0] = 4;
  expect_error("dst_to_src[0] = 4: expected -1 or a slot in [0, 4)");
}

TEST(TensorView, ContiguityIgnoresUnitAndEmptyDimensions) {
  TensorView t;
  t.data = reinterpret_cast<void*>(std::uintptr_t{256});
  t.dtype = DType::kInt32;
  t.ndim = 2;
  t.shape = {2, 3};
  t.strides = {3, 1};
  EXPECT_TRUE(t.is_contiguous());
  t.strides = {1, 2};
  EXPECT_FALSE(t.is_contiguous());
  t.shape = {1, 3};
  t.strides = {7, 1};  // a size-1 dimension's stride is never used
  EXPECT_TRUE(t.is_contiguous());
  // Empty views (array libraries give them arbitrary strides, e.g. torch [17, 0]: (1, 1)).
  t.shape = {17, 0};
  t.strides = {1, 1};
  EXPECT_TRUE(t.is_contiguous());
  t.shape = {0, 4};
  t.strides = {1, 9};
  EXPECT_TRUE(t.is_contiguous());
}

}  // namespace
}  // namespace switchyard::testing
