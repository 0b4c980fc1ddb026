// fused_experts on the CPU: an exact integer case, every activation against an independent
// double-precision reference (same rounding points), shapes off the 64 grid, the EP map, router
// weight on the input, empty inputs, and argument errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "common/dtype_convert.h"
#include "common/rng.h"
#include "common/synthetic.h"
#include "switchyard/experts.h"

namespace switchyard::testing {
namespace {

struct Problem {
  ExpertsParams p;
  DType dtype = DType::kBFloat16;
  std::int64_t M = 0;
  int K = 1;
  std::vector<float> x, w13, w2, b13, b2, weights;  // values already representable in dtype
  std::vector<std::int32_t> ids, map;
};

float round_dtype(float v, DType dt) {
  return dt == DType::kBFloat16 ? detail::to_float(detail::float_to_bf16(v))
                                : detail::to_float(detail::float_to_fp16(v));
}

std::int64_t rows13(const ExpertsParams& p) {
  return p.activation == Activation::kRelu2 ? p.intermediate_size : 2LL * p.intermediate_size;
}

Status run(const Problem& pr, std::vector<float>* out) {
  const std::int64_t E = pr.p.num_experts, H = pr.p.hidden_size, I = pr.p.intermediate_size;
  const auto x = tools::encode_floats(pr.x, pr.dtype), w13 = tools::encode_floats(pr.w13, pr.dtype),
             w2 = tools::encode_floats(pr.w2, pr.dtype);
  std::vector<std::uint8_t> o(static_cast<std::size_t>(pr.M * H) * 2);
  ExpertsArgs a;
  a.x = TensorView::contiguous(const_cast<std::uint8_t*>(x.data()), pr.dtype, {pr.M, H});
  a.w13 =
      TensorView::contiguous(const_cast<std::uint8_t*>(w13.data()), pr.dtype, {E, rows13(pr.p), H});
  a.w2 = TensorView::contiguous(const_cast<std::uint8_t*>(w2.data()), pr.dtype, {E, H, I});
  if (!pr.b13.empty())
    a.b13 = TensorView::contiguous(const_cast<float*>(pr.b13.data()), DType::kFloat32,
                                   {E, rows13(pr.p)});
  if (!pr.b2.empty())
    a.b2 = TensorView::contiguous(const_cast<float*>(pr.b2.data()), DType::kFloat32, {E, H});
  a.top_k_ids =
      TensorView::contiguous(const_cast<std::int32_t*>(pr.ids.data()), DType::kInt32, {pr.M, pr.K});
  a.top_k_weights =
      TensorView::contiguous(const_cast<float*>(pr.weights.data()), DType::kFloat32, {pr.M, pr.K});
  if (!pr.map.empty()) {
    a.expert_map = TensorView::contiguous(const_cast<std::int32_t*>(pr.map.data()), DType::kInt32,
                                          {static_cast<std::int64_t>(pr.map.size())});
  }
  a.out = TensorView::contiguous(o.data(), pr.dtype, {pr.M, H});
  Status st = fused_experts_cpu(pr.p, a);
  out->resize(static_cast<std::size_t>(pr.M * H));
  for (std::size_t i = 0; i < out->size(); ++i) {
    std::uint16_t bits;
    std::memcpy(&bits, o.data() + 2 * i, 2);
    (*out)[i] = pr.dtype == DType::kBFloat16 ? detail::to_float(detail::bf16_t{bits})
                                             : detail::to_float(detail::fp16_t{bits});
  }
  return st;
}

// The contract of experts.h in double precision, written independently of src/cpu/experts.cpp.
std::vector<double> reference(const Problem& pr) {
  const ExpertsParams& p = pr.p;
  const std::int64_t H = p.hidden_size, I = p.intermediate_size, R = rows13(p);
  std::vector<double> out(static_cast<std::size_t>(pr.M * H), 0.0);
  for (std::int64_t t = 0; t < pr.M; ++t) {
    for (int k = 0; k < pr.K; ++k) {
      std::int64_t e = pr.ids[static_cast<std::size_t>(t * pr.K + k)];
      if (!pr.map.empty())
        e = (e >= 0 && e < static_cast<std::int64_t>(pr.map.size()))
                ? pr.map[static_cast<std::size_t>(e)]
                : -1;
      if (e < 0 || e >= p.num_experts) continue;
      const double w = pr.weights[static_cast<std::size_t>(t * pr.K + k)];
      std::vector<double> in(static_cast<std::size_t>(H)), h(static_cast<std::size_t>(R)),
          a(static_cast<std::size_t>(I));
      for (std::int64_t c = 0; c < H; ++c) {
        const float v = pr.x[static_cast<std::size_t>(t * H + c)];
        in[static_cast<std::size_t>(c)] =
            p.apply_router_weight_on_input ? round_dtype(static_cast<float>(w) * v, pr.dtype) : v;
      }
      for (std::int64_t j = 0; j < R; ++j) {
        double acc = pr.b13.empty() ? 0.0 : pr.b13[static_cast<std::size_t>(e * R + j)];
        for (std::int64_t c = 0; c < H; ++c)
          acc += double{pr.w13[static_cast<std::size_t>((e * R + j) * H + c)]} *
                 in[static_cast<std::size_t>(c)];
        h[static_cast<std::size_t>(j)] = acc;
      }
      for (std::int64_t i = 0; i < I; ++i) {
        double v = 0;
        const double g = h[static_cast<std::size_t>(i)],
                     u = p.activation == Activation::kRelu2 ? 0
                                                            : h[static_cast<std::size_t>(I + i)];
        switch (p.activation) {
          case Activation::kSiluAndMul:
            v = g / (1 + std::exp(-g)) * u;
            break;
          case Activation::kGeluErfAndMul:
            v = 0.5 * g * (1 + std::erf(g / std::sqrt(2.0))) * u;
            break;
          case Activation::kGeluTanhAndMul:
            v = 0.5 * g * (1 + std::tanh(std::sqrt(2 / M_PI) * (g + 0.044715 * g * g * g))) * u;
            break;
          case Activation::kSwigluOai: {
            const double gg = std::min(h[static_cast<std::size_t>(2 * i)], double{p.swiglu_limit});
            const double uu = std::clamp(h[static_cast<std::size_t>(2 * i + 1)],
                                         -double{p.swiglu_limit}, double{p.swiglu_limit});
            v = gg / (1 + std::exp(-p.swiglu_alpha * gg)) * (uu + 1);
            break;
          }
          case Activation::kRelu2:
            v = std::max(g, 0.0) * std::max(g, 0.0);
            break;
        }
        a[static_cast<std::size_t>(i)] = round_dtype(static_cast<float>(v), pr.dtype);
      }
      for (std::int64_t o = 0; o < H; ++o) {
        double acc = pr.b2.empty() ? 0.0 : pr.b2[static_cast<std::size_t>(e * H + o)];
        for (std::int64_t i = 0; i < I; ++i)
          acc += double{pr.w2[static_cast<std::size_t>((e * H + o) * I + i)]} *
                 a[static_cast<std::size_t>(i)];
        out[static_cast<std::size_t>(t * H + o)] +=
            (p.apply_router_weight_on_input ? 1.0 : w) * acc;
      }
    }
  }
  for (double& v : out) v *= p.routed_scaling_factor;
  return out;
}

Problem random_problem(const std::string& id, Activation act, DType dt, int E, int H, int I,
                       std::int64_t M, int K) {
  tools::Rng rng(tools::seed_from_name(id));
  Problem pr;
  pr.p.num_experts = E;
  pr.p.hidden_size = H;
  pr.p.intermediate_size = I;
  pr.p.activation = act;
  pr.p.routed_scaling_factor = 2.5f;
  pr.dtype = dt;
  pr.M = M;
  pr.K = K;
  auto fill = [&](std::vector<float>& v, std::size_t n, double scale) {
    v.resize(n);
    for (float& f : v) f = round_dtype(static_cast<float>((rng.uniform() * 2 - 1) * scale), dt);
  };
  fill(pr.x, static_cast<std::size_t>(M * H), 1.0);
  fill(pr.w13, static_cast<std::size_t>(E * rows13(pr.p) * H), 1.0 / std::sqrt(H));
  fill(pr.w2, static_cast<std::size_t>(E * H * I), 1.0 / std::sqrt(I));
  for (std::int64_t t = 0; t < M; ++t) {
    for (int k = 0; k < K; ++k) {
      pr.ids.push_back(
          rng.below(10) == 0
              ? -1
              : static_cast<std::int32_t>(k == 0 ? 0 : rng.below(static_cast<std::uint64_t>(E))));
      pr.weights.push_back(static_cast<float>(rng.uniform()));
    }
  }
  return pr;
}

// ‖got - ref‖ / ‖ref‖ with bf16/fp16 operands (METHOD: between 1e-3 and 1e-2), and no element
// further off than a few output ulps of the largest magnitude.
void expect_close(const std::vector<float>& got, const std::vector<double>& ref,
                  const std::string& id) {
  double num = 0, den = 0, max_abs = 0;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    num += (got[i] - ref[i]) * (got[i] - ref[i]);
    den += ref[i] * ref[i];
    max_abs = std::max(max_abs, std::fabs(ref[i]));
    ASSERT_FALSE(std::isnan(got[i])) << id;
  }
  EXPECT_LE(std::sqrt(num / std::max(den, 1e-30)), 1e-2) << id;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    ASSERT_NEAR(got[i], ref[i], 0.03 * max_abs + 1e-6) << id << " element " << i;
  }
}

TEST(ExpertsCpu, Relu2WithIntegersIsExact) {
  Problem pr;
  pr.p.num_experts = 2;
  pr.p.hidden_size = 3;
  pr.p.intermediate_size = 2;
  pr.p.activation = Activation::kRelu2;
  pr.M = 2;
  pr.K = 2;
  pr.x = {1, 2, -1, 0, 1, 1};
  pr.w13 = {1, 0, 0, 0, 1, 1, /* e1 */ 1, 1, 1, -1, 0, 0};  // [2, I=2, H=3]
  pr.w2 = {1, 0, 0, 1, 1, 1, /* e1 */ 2, 0, 0, 2, 1, -1};   // [2, H=3, I=2]
  pr.ids = {0, 1, 1, -1};
  pr.weights = {0.5f, 0.25f, 1.0f, 1.0f};
  std::vector<float> out;
  ASSERT_TRUE(run(pr, &out).ok());
  // t0: e0: h=[1, 1] a=[1, 1] y=[1, 1, 2]; e1: h=[2, -1] a=[4, 0] y=[8, 0, 4]
  //     out = 0.5*[1,1,2] + 0.25*[8,0,4] = [2.5, 0.5, 2]
  // t1: e1: h=[2, 0] a=[4, 0] y=[8, 0, 4]; the -1 column is dropped.
  EXPECT_EQ(out, (std::vector<float>{2.5f, 0.5f, 2.0f, 8.0f, 0.0f, 4.0f}));
}

TEST(ExpertsCpu, EveryActivationMatchesTheDoubleReference) {
  for (Activation act : {Activation::kSiluAndMul, Activation::kGeluErfAndMul,
                         Activation::kGeluTanhAndMul, Activation::kSwigluOai, Activation::kRelu2}) {
    for (DType dt : {DType::kBFloat16, DType::kFloat16}) {
      const std::string id = std::string("experts/") + activation_name(act) + "/" + dtype_name(dt);
      Problem pr = random_problem(id, act, dt, 3, 65, 33, 37, 2);  // H, I off the 64 grid, odd E
      if (act == Activation::kSwigluOai) {  // gpt-oss biases, and a limit that clamps
        tools::Rng rng(1);
        pr.p.swiglu_limit = 0.5f;
        for (std::int64_t i = 0; i < 3 * 66; ++i)
          pr.b13.push_back(static_cast<float>(rng.uniform() - 0.5));
        for (std::int64_t i = 0; i < 3 * 65; ++i)
          pr.b2.push_back(static_cast<float>(rng.uniform() - 0.5));
      }
      std::vector<float> out;
      ASSERT_TRUE(run(pr, &out).ok()) << id;
      expect_close(out, reference(pr), id);
    }
  }
}

// Interleaved gate/up rows (ExpertsParams::w13_interleaved) with w13 and b13 packed by
// interleave_w13_cpu give the same bits as SGLang's halves: the same dot products, in a different
// row order.
TEST(ExpertsCpu, InterleavedW13GivesTheSameBits) {
  for (Activation act :
       {Activation::kSiluAndMul, Activation::kGeluErfAndMul, Activation::kGeluTanhAndMul}) {
    const std::string id = std::string("experts/interleaved/") + activation_name(act);
    Problem pr = random_problem(id, act, DType::kBFloat16, 3, 40, 24, 37, 2);
    tools::Rng rng(7);
    for (std::int64_t i = 0; i < 3 * 48; ++i)
      pr.b13.push_back(static_cast<float>(rng.uniform() - 0.5));
    std::vector<float> halves, inter;
    ASSERT_TRUE(run(pr, &halves).ok()) << id;
    Problem packed = pr;
    packed.p.w13_interleaved = true;
    ASSERT_TRUE(
        interleave_w13_cpu(TensorView::contiguous(pr.w13.data(), DType::kFloat32, {3, 48, 40}),
                           TensorView::contiguous(packed.w13.data(), DType::kFloat32, {3, 48, 40}))
            .ok());
    ASSERT_TRUE(
        interleave_w13_cpu(TensorView::contiguous(pr.b13.data(), DType::kFloat32, {3, 48}),
                           TensorView::contiguous(packed.b13.data(), DType::kFloat32, {3, 48}))
            .ok());
    ASSERT_TRUE(run(packed, &inter).ok()) << id;
    EXPECT_EQ(inter, halves) << id;
    // The flag without packing reads other rows: a different answer (the test can fail).
    Problem unpacked = pr;
    unpacked.p.w13_interleaved = true;
    std::vector<float> wrong;
    ASSERT_TRUE(run(unpacked, &wrong).ok()) << id;
    EXPECT_NE(wrong, halves) << id;
  }
}

TEST(ExpertsCpu, InterleaveW13RowsAndErrors) {
  // [1, 4, 2]: rows g0 g1 u0 u1 -> g0 u0 g1 u1.
  std::vector<std::int32_t> src = {0, 1, 10, 11, 20, 21, 30, 31}, dst(8, -1);
  ASSERT_TRUE(interleave_w13_cpu(TensorView::contiguous(src.data(), DType::kInt32, {1, 4, 2}),
                                 TensorView::contiguous(dst.data(), DType::kInt32, {1, 4, 2}))
                  .ok());
  EXPECT_EQ(dst, (std::vector<std::int32_t>{0, 1, 20, 21, 10, 11, 30, 31}));
  const char* op = "interleave_w13_cpu";
  const auto msg = [](const Status& st) { return st.message(); };
  EXPECT_EQ(msg(interleave_w13_cpu(TensorView::contiguous(src.data(), DType::kInt32, {1, 8}),
                                   TensorView::contiguous(dst.data(), DType::kInt32, {1, 8}))),
            "");
  EXPECT_EQ(msg(interleave_w13_cpu(TensorView::contiguous(src.data(), DType::kInt32, {2, 1, 4}),
                                   TensorView::contiguous(dst.data(), DType::kInt32, {2, 1, 4}))),
            std::string(op) + ": src.shape[1] = 1: expected even (2I: gate rows, then up rows)");
  EXPECT_EQ(msg(interleave_w13_cpu(TensorView::contiguous(src.data(), DType::kInt32, {8}),
                                   TensorView::contiguous(dst.data(), DType::kInt32, {8}))),
            std::string(op) + ": src = [8] int32 cpu: expected rank 2 ([E, 2I]) or 3 ([E, 2I, H])");
  EXPECT_EQ(msg(interleave_w13_cpu(TensorView::contiguous(src.data(), DType::kInt32, {2, 4}),
                                   TensorView::contiguous(dst.data(), DType::kFloat32, {2, 4}))),
            std::string(op) + ": dst.dtype = float32: expected int32");
  EXPECT_EQ(msg(interleave_w13_cpu(TensorView::contiguous(src.data(), DType::kInt32, {2, 4}),
                                   TensorView::contiguous(dst.data(), DType::kInt32, {4, 2}))),
            std::string(op) + ": dst = [4, 2] int32 cpu: expected src's shape [2, 4] int32 cpu");
  EXPECT_EQ(msg(interleave_w13_cpu(TensorView::contiguous(src.data(), DType::kInt32, {1, 4}),
                                   TensorView::contiguous(src.data() + 2, DType::kInt32, {1, 4}))),
            std::string(op) + ": dst = a buffer overlapping src: expected separate buffers");
}

TEST(ExpertsCpu, ExpertMapHotExpertAndEmptyExperts) {
  Problem pr =
      random_problem("experts/ep", Activation::kSiluAndMul, DType::kBFloat16, 4, 16, 8, 50, 3);
  pr.map = {-1, 0, 1, -1, 2, 3, -1, -1};  // 8 global experts, 4 local
  for (auto& id : pr.ids) id = id < 0 ? id : (id * 2 + 1) % 8;
  std::vector<float> out;
  ASSERT_TRUE(run(pr, &out).ok());
  expect_close(out, reference(pr), "experts/ep");
  // Every token on one expert; the others stay empty.
  Problem hot = random_problem("experts/hot", Activation::kGeluTanhAndMul, DType::kBFloat16, 5, 24,
                               12, 40, 1);
  std::fill(hot.ids.begin(), hot.ids.end(), 3);
  ASSERT_TRUE(run(hot, &out).ok());
  expect_close(out, reference(hot), "experts/hot");
}

TEST(ExpertsCpu, RouterWeightOnInputAndZeroTokens) {
  Problem pr =
      random_problem("experts/llama4", Activation::kSiluAndMul, DType::kBFloat16, 3, 32, 16, 20, 1);
  pr.p.apply_router_weight_on_input = true;
  std::vector<float> out;
  ASSERT_TRUE(run(pr, &out).ok());
  expect_close(out, reference(pr), "experts/llama4");
  Problem empty =
      random_problem("experts/empty", Activation::kSiluAndMul, DType::kBFloat16, 3, 8, 4, 0, 2);
  EXPECT_TRUE(run(empty, &out).ok());
  EXPECT_TRUE(out.empty());
}

TEST(ExpertsCpu, RejectsInvalidArguments) {
  // Views built once for E=2, H=8, I=4, K=2; each case changes only the parameters.
  const Problem pr =
      random_problem("experts/bad", Activation::kSiluAndMul, DType::kBFloat16, 2, 8, 4, 3, 2);
  const auto x = tools::encode_floats(pr.x, pr.dtype), w13 = tools::encode_floats(pr.w13, pr.dtype),
             w2 = tools::encode_floats(pr.w2, pr.dtype);
  std::vector<std::uint8_t> o(3 * 8 * 2, 0xab);
  ExpertsArgs a;
  a.x = TensorView::contiguous(const_cast<std::uint8_t*>(x.data()), pr.dtype, {3, 8});
  a.w13 = TensorView::contiguous(const_cast<std::uint8_t*>(w13.data()), pr.dtype, {2, 8, 8});
  a.w2 = TensorView::contiguous(const_cast<std::uint8_t*>(w2.data()), pr.dtype, {2, 8, 4});
  a.top_k_ids =
      TensorView::contiguous(const_cast<std::int32_t*>(pr.ids.data()), DType::kInt32, {3, 2});
  a.top_k_weights =
      TensorView::contiguous(const_cast<float*>(pr.weights.data()), DType::kFloat32, {3, 2});
  a.out = TensorView::contiguous(o.data(), pr.dtype, {3, 8});
  ASSERT_TRUE(fused_experts_cpu(pr.p, a).ok());
  struct Case {
    const char* name;
    std::function<void(ExpertsParams&, ExpertsArgs&)> mutate;
    const char* expect;
  };
  const std::vector<Case> cases = {
      {"weight_on_input_k2",
       [](ExpertsParams& p, ExpertsArgs&) { p.apply_router_weight_on_input = true; },
       "apply_router_weight_on_input = true: expected top_k == 1 (got 2)"},
      {"w13_shape", [](ExpertsParams& p, ExpertsArgs&) { p.intermediate_size = 5; },
       "w13.shape = [2, 8, 8]: expected [2, 10, 8]"},
      {"hidden", [](ExpertsParams& p, ExpertsArgs&) { p.hidden_size = 9; },
       "x.shape = [3, 8] bfloat16 cpu: expected [num_tokens, hidden_size] with hidden_size = 9"},
      {"relu2_w13", [](ExpertsParams& p, ExpertsArgs&) { p.activation = Activation::kRelu2; },
       "w13.shape = [2, 8, 8]: expected [2, 4, 8]"},
      {"swiglu_limit", [](ExpertsParams& p, ExpertsArgs&) { p.swiglu_limit = -1; },
       "swiglu_limit = -1"},
      {"w2_dtype", [](ExpertsParams&, ExpertsArgs& args) { args.w2.dtype = DType::kFloat16; },
       "w2.dtype = float16: expected bfloat16"},
      {"x_fp32", [](ExpertsParams&, ExpertsArgs& args) { args.x.dtype = DType::kFloat32; },
       "x.dtype = float32: expected bfloat16 or float16"},
      {"ids_rows", [](ExpertsParams&, ExpertsArgs& args) { args.top_k_ids.shape[0] = 2; },
       "top_k_ids.shape"},
  };
  for (const Case& c : cases) {
    ExpertsParams p = pr.p;
    ExpertsArgs args = a;
    c.mutate(p, args);
    std::fill(o.begin(), o.end(), 0xab);
    const Status st = fused_experts_cpu(p, args);
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << c.name;
    EXPECT_NE(st.message().find(c.expect), std::string::npos) << c.name << ": " << st.message();
    EXPECT_EQ(o[0], 0xab) << c.name << ": output written despite the error";
  }
}

}  // namespace
}  // namespace switchyard::testing
