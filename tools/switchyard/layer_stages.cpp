#include "layer_stages.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

#include "../../src/common/check.h"
#include "../../src/common/dtype_convert.h"
#include "../../src/common/exact_math.h"
#include "../../src/cpu/parallel.h"
#include "../common/layer_kernels.h"
#include "../common/rng.h"
#include "../common/synthetic.h"
#include "switchyard/align.h"
#include "switchyard/experts.h"

namespace switchyard::cli {

namespace {

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

std::int64_t rows13(std::int64_t intermediate, Activation act) {
  return act == Activation::kRelu2 ? intermediate : 2 * intermediate;
}

double decode(const std::uint8_t* p, DType dtype) {
  switch (dtype) {
    case DType::kFloat32: {
      float f;
      std::memcpy(&f, p, 4);
      return f;
    }
    case DType::kBFloat16:
    case DType::kFloat16: {
      std::uint16_t b;
      std::memcpy(&b, p, 2);
      return dtype == DType::kBFloat16 ? detail::to_float(detail::bf16_t{b})
                                       : detail::to_float(detail::fp16_t{b});
    }
    case DType::kInt32: {
      std::int32_t v;
      std::memcpy(&v, p, 4);
      return v;
    }
    case DType::kInt64: {
      std::int64_t v;
      std::memcpy(&v, p, 8);
      return static_cast<double>(v);
    }
  }
  return 0;
}

LayerStage cpu_stage(std::string name, double ms, std::string detail) {
  LayerStage s;
  s.name = std::move(name);
  s.backend = "cpu";
  s.ms = ms;
  s.detail = std::move(detail);
  return s;
}

std::string format_value(double v) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

}  // namespace

std::vector<detail::bf16_t> make_hidden_states(std::int64_t tokens, std::int64_t hidden,
                                               std::uint64_t seed) {
  std::vector<detail::bf16_t> x(static_cast<std::size_t>(tokens * hidden));
  tools::Rng rng(seed ^ 0x68696464656eull);
  for (auto& v : x) v = detail::float_to_bf16(static_cast<float>(rng.uniform() * 2.0 - 1.0));
  return x;
}

Status make_random_weights(const ModelPreset& m, std::int32_t hidden, std::int32_t intermediate,
                           std::int32_t shared_intermediate, std::uint64_t seed,
                           std::size_t max_bytes, tools::MoeLayerWeights* out) {
  const std::int64_t E = m.routing.num_experts, H = hidden, I = intermediate,
                     Is = shared_intermediate, N13 = rows13(I, m.activation);
  const auto bytes = static_cast<std::size_t>((E * (N13 + I) + 3 * Is) * H * 2);
  if (bytes > max_bytes) {
    return Status::InvalidArgument(
        "--experts: random weights for " + m.name + " at H=" + std::to_string(H) +
        ", I=" + std::to_string(I) + ", shared I=" + std::to_string(Is) + " take " +
        std::to_string(bytes >> 20) + " MiB: expected at most " + std::to_string(max_bytes >> 20) +
        " MiB (raise --shrink, lower --hidden / --intermediate, or pass --weights)");
  }
  tools::Rng rng(seed ^ 0x776569676874ull);
  tools::MoeLayerWeights w;
  w.dtype = DType::kBFloat16;
  w.num_experts = static_cast<std::int32_t>(E);
  w.hidden_size = hidden;
  w.intermediate_size = intermediate;
  auto draw = [&](std::size_t n, double scale) {
    std::vector<float> v(n);
    for (float& f : v) f = static_cast<float>((rng.uniform() * 2.0 - 1.0) * scale);
    return v;
  };
  const double s13 = 1.0 / std::sqrt(static_cast<double>(H));
  // Router logits of unit variance on the [-1, 1) hidden states, like the synthetic logits of
  // --experts identity, so that --routing zipf / hot skew them alike.
  w.router = draw(static_cast<std::size_t>(E * H), 3.0 * s13);
  if (m.has_bias) w.bias = draw(static_cast<std::size_t>(E), 0.01);
  w.w13 = tools::encode_floats(draw(static_cast<std::size_t>(E * N13 * H), s13), DType::kBFloat16);
  w.w2 = tools::encode_floats(
      draw(static_cast<std::size_t>(E * H * I), 1.0 / std::sqrt(static_cast<double>(I))),
      DType::kBFloat16);
  if (Is > 0) {  // drawn after the routed experts: their values do not depend on Is
    w.shared_intermediate_size = shared_intermediate;
    w.shared_w13 =
        tools::encode_floats(draw(static_cast<std::size_t>(2 * Is * H), s13), DType::kBFloat16);
    w.shared_w2 = tools::encode_floats(
        draw(static_cast<std::size_t>(H * Is), 1.0 / std::sqrt(static_cast<double>(Is))),
        DType::kBFloat16);
  }
  *out = std::move(w);
  return Status::Ok();
}

std::vector<float> router_logits(const std::vector<detail::bf16_t>& x, std::int64_t hidden,
                                 const tools::MoeLayerWeights& w) {
  const std::int64_t M = static_cast<std::int64_t>(x.size()) / std::max<std::int64_t>(hidden, 1),
                     E = w.num_experts;
  std::vector<float> logits(static_cast<std::size_t>(M * E));
  // Rows are independent: the split over threads never changes the bits.
  detail::parallel_for(M, 16, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t t = begin; t < end; ++t) {
      for (std::int64_t e = 0; e < E; ++e) {
        float acc = 0.0f;
        for (std::int64_t h = 0; h < hidden; ++h) {
          acc += detail::to_float(x[static_cast<std::size_t>(t * hidden + h)]) *
                 w.router[static_cast<std::size_t>(e * hidden + h)];
        }
        logits[static_cast<std::size_t>(t * E + e)] = acc;
      }
    }
  });
  return logits;
}

Status save_weights(const std::string& path, const tools::MoeLayerWeights& w, int layer) {
  const std::int64_t E = w.num_experts, H = w.hidden_size, I = w.intermediate_size;
  const std::string mlp = "model.layers." + std::to_string(layer) + ".mlp.";
  const std::size_t esz = dtype_size(w.dtype), proj = static_cast<std::size_t>(I * H) * esz;
  std::vector<tools::SafetensorsTensor> t;
  t.push_back({mlp + "gate.weight",
               DType::kFloat32,
               {E, H},
               tools::encode_floats(w.router, DType::kFloat32)});
  if (!w.bias.empty()) {
    t.push_back({mlp + "gate.e_score_correction_bias",
                 DType::kFloat32,
                 {E},
                 tools::encode_floats(w.bias, DType::kFloat32)});
  }
  for (std::int64_t e = 0; e < E; ++e) {
    const std::string ex = mlp + "experts." + std::to_string(e) + ".";
    const auto* w13 = w.w13.data() + static_cast<std::size_t>(e) * 2 * proj;
    t.push_back(
        {ex + "gate_proj.weight", w.dtype, {I, H}, std::vector<std::uint8_t>(w13, w13 + proj)});
    t.push_back({ex + "up_proj.weight",
                 w.dtype,
                 {I, H},
                 std::vector<std::uint8_t>(w13 + proj, w13 + 2 * proj)});
    const auto* w2 = w.w2.data() + static_cast<std::size_t>(e) * proj;
    t.push_back(
        {ex + "down_proj.weight", w.dtype, {H, I}, std::vector<std::uint8_t>(w2, w2 + proj)});
  }
  if (w.shared_intermediate_size > 0) {
    const std::int64_t Is = w.shared_intermediate_size;
    const std::string sh = mlp + "shared_experts.";
    const std::size_t sproj = static_cast<std::size_t>(Is * H) * esz;
    const std::uint8_t* s13 = w.shared_w13.data();
    t.push_back(
        {sh + "gate_proj.weight", w.dtype, {Is, H}, std::vector<std::uint8_t>(s13, s13 + sproj)});
    t.push_back({sh + "up_proj.weight",
                 w.dtype,
                 {Is, H},
                 std::vector<std::uint8_t>(s13 + sproj, s13 + 2 * sproj)});
    t.push_back({sh + "down_proj.weight", w.dtype, {H, Is}, w.shared_w2});
  }
  return tools::write_safetensors(path, t);
}

void LayerStageReport::add(LayerStage s) {
  if (s.name != "routing") {
    values_checked += s.checked;
    if (s.wrong > 0 && values_wrong == 0) first_mismatch = s.name + ": " + s.first_mismatch;
    values_wrong += s.wrong;
  }
  stages.push_back(std::move(s));
}

const LayerStage* LayerStageReport::find(const std::string& name) const {
  for (const LayerStage& s : stages) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

// ---- pieces shared by both paths --------------------------------------------------------------
namespace layer {

Shape make_shape(const tools::RoutingProblem& pr, const LayerStageOptions& o) {
  Shape s;
  s.M = pr.num_tokens;
  s.H = o.hidden_size;
  s.C = pr.columns();
  s.E = pr.params.num_experts;
  s.dtype = o.weights ? o.weights->dtype : DType::kBFloat16;
  s.esz = dtype_size(s.dtype);
  s.rsf = pr.params.apply_rsf_on_output ? 1.0f : pr.params.routed_scaling_factor;
  s.weight_on_input = o.weights != nullptr && o.router_weight_on_input;
  s.max_padded = align_max_padded(s.M * s.C, s.E, o.block_size);
  s.max_blocks = align_max_blocks(s.M * s.C, s.E, o.block_size);
  ExpertLayoutParams lp;
  lp.num_experts = s.E;
  lp.alignment = o.alignment;
  s.max_rows = layout_max_rows(lp, s.M * s.C);
  return s;
}

std::vector<std::int32_t> routing_ids(const tools::RoutingResult& r) {
  std::vector<std::int32_t> ids(r.ids.size());
  for (std::size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<std::int32_t>(r.ids[i]);
  return ids;
}

std::vector<float> combine_weights(const Shape& s, const tools::RoutingResult& r) {
  if (s.weight_on_input) return std::vector<float>(r.weights.size(), 1.0f);
  return r.weights;
}

std::vector<std::uint8_t> layer_input(const std::vector<detail::bf16_t>& x, DType dtype) {
  if (dtype == DType::kBFloat16) {
    const auto* p = reinterpret_cast<const std::uint8_t*>(x.data());
    return std::vector<std::uint8_t>(p, p + x.size() * 2);
  }
  std::vector<float> f(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) f[i] = detail::to_float(x[i]);
  return tools::encode_floats(f, dtype);
}

ExpertsParams routed_params(const Shape& s, const LayerStageOptions& o) {
  ExpertsParams p;
  p.num_experts = s.E;
  p.hidden_size = static_cast<std::int32_t>(s.H);
  p.intermediate_size = o.weights ? o.weights->intermediate_size : 0;
  p.activation = o.activation;
  p.apply_router_weight_on_input = s.weight_on_input;
  p.routed_scaling_factor = 1.0f;  // one slot per row: combine applies the weights and rsf
  return p;
}

ExpertsParams shared_params(const Shape& s, const tools::MoeLayerWeights& w) {
  ExpertsParams p;
  p.num_experts = 1;
  p.hidden_size = static_cast<std::int32_t>(s.H);
  p.intermediate_size = w.shared_intermediate_size;
  p.activation = Activation::kSiluAndMul;
  return p;
}

// The shared experts' dense MLP on the CPU: out[n, H] = mlp(x) for every row (fused_experts_cpu
// with one expert, every row on it with weight 1).
Status shared_experts_cpu(const Shape& s, const tools::MoeLayerWeights& w, const TensorView& x,
                          std::uint8_t* out) {
  const std::int64_t n = x.size(0), H = s.H, Is = w.shared_intermediate_size;
  std::vector<std::int32_t> zero(static_cast<std::size_t>(n), 0);
  std::vector<float> one(static_cast<std::size_t>(n), 1.0f);
  ExpertsArgs sa;
  sa.x = x;
  sa.w13 = TensorView::contiguous(const_cast<std::uint8_t*>(w.shared_w13.data()), s.dtype,
                                  {1, 2 * Is, H});
  sa.w2 =
      TensorView::contiguous(const_cast<std::uint8_t*>(w.shared_w2.data()), s.dtype, {1, H, Is});
  sa.top_k_ids = TensorView::contiguous(zero.data(), DType::kInt32, {n, 1});
  sa.top_k_weights = TensorView::contiguous(one.data(), DType::kFloat32, {n, 1});
  sa.out = TensorView::contiguous(out, s.dtype, {n, H});
  return fused_experts_cpu(shared_params(s, w), sa);
}

ExpertWork routed_work(const Shape& s, const tools::MoeLayerWeights& w,
                       const std::vector<std::int32_t>& counts, Activation act) {
  ExpertWork k;
  const double H = static_cast<double>(s.H), I = w.intermediate_size,
               N13 = static_cast<double>(rows13(w.intermediate_size, act));
  for (std::int32_t c : counts) {
    k.rows += c;
    k.experts_hit += c > 0;
  }
  const double rows = static_cast<double>(k.rows), esz = static_cast<double>(s.esz);
  k.flop = 2.0 * rows * (N13 * H + H * I);
  k.bytes = static_cast<double>(k.experts_hit) * (N13 * H + H * I) * esz + 2.0 * rows * H * esz;
  return k;
}

ExpertWork shared_work(const Shape& s, const tools::MoeLayerWeights& w) {
  ExpertWork k;
  const double H = static_cast<double>(s.H), Is = w.shared_intermediate_size,
               M = static_cast<double>(s.M), esz = static_cast<double>(s.esz);
  k.rows = s.M;
  k.experts_hit = s.M > 0 ? 1 : 0;
  k.flop = 2.0 * M * 3.0 * Is * H;
  k.bytes = 3.0 * Is * H * esz + 2.0 * M * H * esz;
  return k;
}

LayerStage check_identity_output(const Shape& s, const std::vector<std::int32_t>& ids,
                                 const tools::RoutingResult& r,
                                 const std::vector<detail::bf16_t>& x,
                                 const std::vector<std::uint8_t>& out) {
  LayerStage st;
  st.name = "layer output";
  st.check = "equal rsf * sum_k w * x bit for bit";
  const std::int64_t M = s.M, H = s.H, C = s.C;
  std::vector<float> acc(static_cast<std::size_t>(H));
  for (std::int64_t t = 0; t < M; ++t) {
    std::fill(acc.begin(), acc.end(), 0.0f);
    for (std::int64_t k = 0; k < C; ++k) {
      const std::int32_t e = ids[static_cast<std::size_t>(t * C + k)];
      if (e < 0 || e >= s.E) continue;
      const float wk = r.weights[static_cast<std::size_t>(t * C + k)];
      for (std::int64_t h = 0; h < H; ++h) {
        acc[static_cast<std::size_t>(h)] =
            detail::exact_fma(wk, detail::to_float(x[static_cast<std::size_t>(t * H + h)]),
                              acc[static_cast<std::size_t>(h)]);
      }
    }
    for (std::int64_t h = 0; h < H; ++h) {
      const detail::bf16_t want = detail::float_to_bf16(s.rsf * acc[static_cast<std::size_t>(h)]);
      std::uint16_t got;
      std::memcpy(&got, out.data() + 2 * (t * H + h), 2);
      ++st.checked;
      if (want.bits != got && st.wrong++ == 0) {
        st.first_mismatch = "token " + std::to_string(t) + " h " + std::to_string(h) + ": " +
                            format_value(detail::to_float(detail::bf16_t{got})) + " vs " +
                            format_value(detail::to_float(want));
      }
    }
  }
  return st;
}

Status check_sampled_tokens(const Shape& s, const LayerStageOptions& o,
                            const std::vector<std::int32_t>& ids, const tools::RoutingResult& r,
                            const std::vector<std::uint8_t>& x,
                            const std::vector<std::uint8_t>& out, LayerStage* st) {
  const tools::MoeLayerWeights& w = *o.weights;
  const std::int64_t n = std::min(o.check_tokens, s.M), H = s.H, C = s.C;
  st->name = "layer output";
  st->check = "within tolerance of fused_experts_cpu on " + std::to_string(n) + " tokens";
  if (n <= 0) return Status::Ok();
  // Tokens spread evenly over the batch (first and last included when n > 1).
  std::vector<std::int64_t> tokens(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    tokens[static_cast<std::size_t>(i)] = n > 1 ? i * (s.M - 1) / (n - 1) : 0;
  }
  const std::size_t row = static_cast<std::size_t>(H) * s.esz;
  std::vector<std::uint8_t> xs(static_cast<std::size_t>(n) * row), routed(xs.size()),
      shared(xs.size()), ref(xs.size());
  std::vector<std::int32_t> ids_s(static_cast<std::size_t>(n * C));
  std::vector<float> w_s(ids_s.size());
  for (std::int64_t i = 0; i < n; ++i) {
    const auto t = static_cast<std::size_t>(tokens[static_cast<std::size_t>(i)]);
    std::memcpy(xs.data() + static_cast<std::size_t>(i) * row, x.data() + t * row, row);
    for (std::int64_t k = 0; k < C; ++k) {
      const std::size_t from = t * static_cast<std::size_t>(C) + static_cast<std::size_t>(k);
      ids_s[static_cast<std::size_t>(i * C + k)] = ids[from];
      w_s[static_cast<std::size_t>(i * C + k)] = r.weights[from];
    }
  }
  // The oracle: the fused op on the sub-batch, nothing of the staged pipeline.
  ExpertsParams p = routed_params(s, o);
  p.routed_scaling_factor = s.rsf;
  if (p.apply_router_weight_on_input && C != 1) {
    return Status::InvalidArgument("the router weight on the input needs one routing column, got " +
                                   std::to_string(C));
  }
  ExpertsArgs a;
  a.x = TensorView::contiguous(xs.data(), s.dtype, {n, H});
  a.w13 = TensorView::contiguous(const_cast<std::uint8_t*>(w.w13.data()), s.dtype,
                                 {s.E, rows13(w.intermediate_size, o.activation), H});
  a.w2 = TensorView::contiguous(const_cast<std::uint8_t*>(w.w2.data()), s.dtype,
                                {s.E, H, w.intermediate_size});
  a.top_k_ids = TensorView::contiguous(ids_s.data(), DType::kInt32, {n, C});
  a.top_k_weights = TensorView::contiguous(w_s.data(), DType::kFloat32, {n, C});
  a.out = TensorView::contiguous(routed.data(), s.dtype, {n, H});
  SY_RETURN_IF_ERROR(fused_experts_cpu(p, a));
  if (w.shared_intermediate_size > 0) {
    SY_RETURN_IF_ERROR(shared_experts_cpu(s, w, a.x, shared.data()));
    SY_RETURN_IF_ERROR(
        tools::add_outputs_cpu(s.dtype, routed.data(), shared.data(), ref.data(), n * H));
  } else {
    ref = routed;
  }
  const double tol = s.dtype == DType::kBFloat16 ? 1.0 / 64 : 1.0 / 256;
  double scale = 0;
  for (std::size_t i = 0; i < ref.size(); i += s.esz) {
    scale = std::max(scale, std::fabs(decode(ref.data() + i, s.dtype)));
  }
  for (std::int64_t i = 0; i < n; ++i) {
    const auto t = static_cast<std::size_t>(tokens[static_cast<std::size_t>(i)]);
    for (std::int64_t h = 0; h < H; ++h) {
      const double want = decode(
          ref.data() + static_cast<std::size_t>(i) * row + static_cast<std::size_t>(h) * s.esz,
          s.dtype);
      const double got =
          decode(out.data() + t * row + static_cast<std::size_t>(h) * s.esz, s.dtype);
      ++st->checked;
      if (std::isfinite(got) && std::fabs(got - want) <= tol * (std::fabs(want) + scale)) continue;
      if (st->wrong++ == 0) {
        st->first_mismatch = "token " + std::to_string(t) + " h " + std::to_string(h) + ": " +
                             format_value(got) + " vs " + format_value(want) + " (tol " +
                             format_value(tol) + " x (|ref| + " + format_value(scale) + "))";
      }
    }
  }
  return Status::Ok();
}

void compare_bitwise(const void* want, const void* got, std::size_t count, DType dtype,
                     std::int64_t row, LayerStage* st) {
  const std::size_t esz = dtype_size(dtype);
  const auto* a = static_cast<const std::uint8_t*>(want);
  const auto* b = static_cast<const std::uint8_t*>(got);
  st->check = "bitwise vs cpu";
  st->checked += static_cast<std::int64_t>(count);
  for (std::size_t i = 0; i < count; ++i) {
    if (std::memcmp(a + i * esz, b + i * esz, esz) == 0) continue;
    if (st->wrong++ == 0) {
      const auto r = static_cast<std::int64_t>(i) / std::max<std::int64_t>(row, 1);
      const auto c = static_cast<std::int64_t>(i) % std::max<std::int64_t>(row, 1);
      st->first_mismatch = "row " + std::to_string(r) + " col " + std::to_string(c) + ": " +
                           format_value(decode(b + i * esz, dtype)) + " vs " +
                           format_value(decode(a + i * esz, dtype));
    }
  }
}

std::string layout_detail(const tools::RoutingProblem& pr, std::int64_t rows,
                          std::int64_t dropped) {
  std::string d = std::to_string(rows) + " rows, " + std::to_string(dropped) + " slots dropped";
  if (dropped > 0 && dropped == pr.num_tokens * pr.params.num_shared_experts) {
    d += ": the fused shared-expert columns";
  }
  return d;
}

double checksum(const std::vector<std::uint8_t>& out, DType dtype) {
  double sum = 0;
  const std::size_t esz = dtype_size(dtype);
  for (std::size_t i = 0; i < out.size(); i += esz) sum += std::fabs(decode(out.data() + i, dtype));
  return sum;
}

}  // namespace layer

// ---- the CPU backend --------------------------------------------------------------------------

Status run_layer_stages_cpu(const tools::RoutingProblem& pr, const tools::RoutingResult& routing,
                            const std::vector<detail::bf16_t>& x_bf16, const LayerStageOptions& o,
                            LayerStageReport* r) {
  using clock = std::chrono::steady_clock;
  const layer::Shape s = layer::make_shape(pr, o);
  const std::int64_t M = s.M, H = s.H, C = s.C;
  const int E = s.E;
  r->backend = "cpu";
  r->timing = "wall clock of one call";
  r->hidden_size = o.hidden_size;
  r->dtype = s.dtype;
  r->real_experts = o.weights != nullptr;
  if (o.weights) {
    r->intermediate_size = o.weights->intermediate_size;
    r->shared_intermediate_size = o.weights->shared_intermediate_size;
  }
  std::vector<std::int32_t> ids = layer::routing_ids(routing);
  std::vector<float> cw = layer::combine_weights(s, routing);
  std::vector<std::uint8_t> x = layer::layer_input(x_bf16, s.dtype);
  const TensorView ids_view = TensorView::contiguous(ids.data(), DType::kInt32, {M, C});

  auto t0 = clock::now();
  std::vector<std::int32_t> sorted(static_cast<std::size_t>(s.max_padded));
  std::vector<std::int32_t> block_expert(static_cast<std::size_t>(s.max_blocks));
  std::int32_t post_pad = 0;
  AlignArgs aa;
  aa.top_k_ids = ids_view;
  aa.sorted_token_ids = TensorView::contiguous(sorted.data(), DType::kInt32, {s.max_padded});
  aa.expert_ids = TensorView::contiguous(block_expert.data(), DType::kInt32, {s.max_blocks});
  aa.num_tokens_post_pad = TensorView::contiguous(&post_pad, DType::kInt32, {1});
  SY_RETURN_IF_ERROR(moe_align_block_size_cpu({E, o.block_size}, aa));
  r->padded_slots = post_pad;
  r->add(cpu_stage("align", ms_since(t0), std::to_string(post_pad) + " padded slots"));

  t0 = clock::now();
  ExpertLayoutParams lp;
  lp.num_experts = E;
  lp.alignment = o.alignment;
  std::vector<std::int32_t> counts(static_cast<std::size_t>(E));
  std::vector<std::int64_t> offsets(static_cast<std::size_t>(E) + 1),
      src_to_dst(static_cast<std::size_t>(M * C)), dst_to_src(static_cast<std::size_t>(s.max_rows));
  ExpertLayoutArgs la;
  la.top_k_ids = ids_view;
  la.expert_counts = TensorView::contiguous(counts.data(), DType::kInt32, {E});
  la.expert_offsets = TensorView::contiguous(offsets.data(), DType::kInt64, {E + 1});
  la.src_to_dst = TensorView::contiguous(src_to_dst.data(), DType::kInt64, {M * C});
  la.dst_to_src = TensorView::contiguous(dst_to_src.data(), DType::kInt64, {s.max_rows});
  SY_RETURN_IF_ERROR(expert_layout_cpu(lp, la));
  const std::int64_t rows = offsets[static_cast<std::size_t>(E)];
  std::vector<std::int32_t> row_experts(static_cast<std::size_t>(rows));
  std::vector<float> row_weights(s.weight_on_input ? static_cast<std::size_t>(rows) : 0);
  if (o.weights) {
    tools::gather_row_routing_cpu(ids.data(), routing.weights.data(), dst_to_src.data(), rows,
                                  row_experts.data(),
                                  s.weight_on_input ? row_weights.data() : nullptr);
  }
  r->layout_rows = rows;
  for (std::int64_t d : src_to_dst) r->dropped_slots += d < 0;
  r->add(
      cpu_stage("expert layout", ms_since(t0), layer::layout_detail(pr, rows, r->dropped_slots)));

  // Permute only the rows in use.
  t0 = clock::now();
  std::vector<std::uint8_t> permuted(static_cast<std::size_t>(rows * H) * s.esz);
  PermuteArgs pa;
  pa.x = TensorView::contiguous(x.data(), s.dtype, {M, H});
  pa.dst_to_src = TensorView::contiguous(dst_to_src.data(), DType::kInt64, {rows});
  pa.top_k = static_cast<std::int32_t>(C);
  pa.out = TensorView::contiguous(permuted.data(), s.dtype, {rows, H});
  pa.src_to_dst = la.src_to_dst;  // checked to be dst_to_src's inverse
  SY_RETURN_IF_ERROR(permute_cpu(pa));
  r->add(cpu_stage("permute", ms_since(t0), ""));

  // Experts on the permuted rows (identity: y is the permuted x).
  std::vector<std::uint8_t> y;
  if (o.weights) {
    const tools::MoeLayerWeights& w = *o.weights;
    y.resize(permuted.size());
    std::vector<float> ones(s.weight_on_input ? 0 : static_cast<std::size_t>(rows), 1.0f);
    ExpertsArgs ea;
    ea.x = pa.out;
    ea.w13 = TensorView::contiguous(const_cast<std::uint8_t*>(w.w13.data()), s.dtype,
                                    {E, rows13(w.intermediate_size, o.activation), H});
    ea.w2 = TensorView::contiguous(const_cast<std::uint8_t*>(w.w2.data()), s.dtype,
                                   {E, H, w.intermediate_size});
    ea.top_k_ids = TensorView::contiguous(row_experts.data(), DType::kInt32, {rows, 1});
    ea.top_k_weights = TensorView::contiguous(s.weight_on_input ? row_weights.data() : ones.data(),
                                              DType::kFloat32, {rows, 1});
    ea.out = TensorView::contiguous(y.data(), s.dtype, {rows, H});
    t0 = clock::now();
    SY_RETURN_IF_ERROR(fused_experts_cpu(layer::routed_params(s, o), ea));
    r->experts = layer::routed_work(s, w, counts, o.activation);
    r->experts.ms = ms_since(t0);
    r->add(cpu_stage("experts", r->experts.ms,
                     "fused_experts_cpu on the permuted rows, " +
                         std::to_string(r->experts.experts_hit) + " experts hit"));
  }

  t0 = clock::now();
  std::vector<std::uint8_t> routed(static_cast<std::size_t>(M * H) * s.esz);
  CombineArgs ca;
  ca.y = TensorView::contiguous(o.weights ? y.data() : permuted.data(), s.dtype, {rows, H});
  ca.src_to_dst = la.src_to_dst;
  ca.top_k_weights = TensorView::contiguous(cw.data(), DType::kFloat32, {M, C});
  ca.out = TensorView::contiguous(routed.data(), s.dtype, {M, H});
  SY_RETURN_IF_ERROR(combine_cpu({s.rsf}, ca));
  r->add(cpu_stage("combine", ms_since(t0), ""));

  std::vector<std::uint8_t> out;
  if (o.weights && o.weights->shared_intermediate_size > 0) {
    const tools::MoeLayerWeights& w = *o.weights;
    const std::int64_t Is = w.shared_intermediate_size;
    std::vector<std::uint8_t> shared(routed.size());
    out.resize(routed.size());
    t0 = clock::now();
    SY_RETURN_IF_ERROR(layer::shared_experts_cpu(s, w, pa.x, shared.data()));
    SY_RETURN_IF_ERROR(
        tools::add_outputs_cpu(s.dtype, routed.data(), shared.data(), out.data(), M * H));
    r->shared = layer::shared_work(s, w);
    r->shared.ms = ms_since(t0);
    r->add(cpu_stage("shared experts", r->shared.ms,
                     "dense MLP, I=" + std::to_string(Is) + ", added to the routed output"));
  } else {
    out = std::move(routed);
  }
  r->output_checksum = layer::checksum(out, s.dtype);

  t0 = clock::now();
  LayerStage check;
  if (o.weights) {
    SY_RETURN_IF_ERROR(layer::check_sampled_tokens(s, o, ids, routing, x, out, &check));
  } else {
    check = layer::check_identity_output(s, ids, routing, x_bf16, out);
  }
  check.backend = "cpu";
  check.ms = ms_since(t0);
  r->add(std::move(check));
  return Status::Ok();
}

// ---- output -----------------------------------------------------------------------------------

namespace {

std::string check_text(const LayerStage& s) {
  if (s.check.empty()) return "";
  if (s.wrong == 0) {
    return "ok: " + std::to_string(s.checked) + (s.name == "routing" ? " rows " : " values ") +
           s.check;
  }
  return "WRONG: " + std::to_string(s.wrong) + " of " + std::to_string(s.checked) + " " + s.check +
         "; first: " + s.first_mismatch;
}

}  // namespace

void print_layer_stages(const LayerStageReport& r) {
  std::printf("layer stages on %s (H=%d, %s", r.backend.c_str(), r.hidden_size,
              dtype_name(r.dtype));
  if (r.real_experts) {
    std::printf(", experts I=%d", r.intermediate_size);
    if (r.shared_intermediate_size > 0) std::printf(", shared I=%d", r.shared_intermediate_size);
  } else {
    std::printf(", identity experts");
  }
  std::printf("; %s)\n", r.timing.c_str());
  for (const LayerStage& s : r.stages) {
    const std::string label = s.name + " (" + s.backend + ")";
    if (s.name == "layer output") {
      std::printf("  %-24s %s\n", "check layer output", check_text(s).c_str());
      continue;
    }
    if (s.backend == "cuda") {
      std::printf("  %-24s %10.2f us", label.c_str(), s.ms * 1e3);
    } else {
      std::printf("  %-24s %10.3f ms", label.c_str(), s.ms);
    }
    if (!s.detail.empty()) std::printf("  (%s)", s.detail.c_str());
    if (!s.check.empty()) std::printf("  %s", check_text(s).c_str());
    std::printf("\n");
  }
  if (r.layer_ms >= 0) {
    std::printf("  %-24s %10.2f us  (every stage above in one CUDA graph)\n", "layer (cuda)",
                r.layer_ms * 1e3);
  }
  if (!r.real_experts) {
    std::printf("  experts                  identity (--experts fused for real experts)\n");
    return;
  }
  const auto work = [](const char* name, const ExpertWork& k) {
    std::printf(
        "  %-24s %.4g TFLOP/s, %.4g TB/s (%.4g GFLOP, %.4g MB: %lld rows, %lld experts "
        "hit)\n",
        name, k.tflops(), k.tbps(), k.flop / 1e9, k.bytes / 1e6, static_cast<long long>(k.rows),
        static_cast<long long>(k.experts_hit));
  };
  work("experts achieved", r.experts);
  if (r.shared_intermediate_size > 0) work("shared experts achieved", r.shared);
  std::printf("  layer output             sum |out| = %.6g\n", r.output_checksum);
}

void json_layer_stages(tools::JsonWriter& j, const LayerStageReport& r) {
  const auto find_ms = [&](const char* name) {
    const LayerStage* s = r.find(name);
    return s ? s->ms : 0.0;
  };
  j.key("layer").begin_object();
  j.field("backend", r.backend)
      .field("hidden_size", r.hidden_size)
      .field("dtype", dtype_name(r.dtype));
  j.field("experts", r.real_experts ? "fused" : "identity")
      .field("intermediate_size", r.intermediate_size)
      .field("shared_intermediate_size", r.shared_intermediate_size);
  j.field("timing", r.timing);
  // Flat per-stage times (ms) of the earlier format, kept for scripts.
  j.field("align_ms", find_ms("align"))
      .field("layout_ms", find_ms("expert layout"))
      .field("permute_ms", find_ms("permute"));
  j.field("experts_ms", find_ms("experts"))
      .field("shared_experts_ms", find_ms("shared experts"))
      .field("combine_ms", find_ms("combine"))
      .field("check_ms", find_ms("layer output"));
  if (r.layer_ms >= 0) j.field("layer_ms", r.layer_ms);
  j.key("stages").begin_array();
  for (const LayerStage& s : r.stages) {
    j.begin_object().field("stage", s.name).field("backend", s.backend).field("ms", s.ms);
    if (s.backend == "cuda") j.field("us", s.ms * 1e3);
    j.field("detail", s.detail).field("check", s.check);
    j.field("checked", s.checked)
        .field("wrong", s.wrong)
        .field("first_mismatch", s.first_mismatch)
        .end_object();
  }
  j.end_array();
  const auto work = [&](const char* key, const ExpertWork& k) {
    j.key(key).begin_object();
    j.field("ms", k.ms).field("flop", k.flop).field("bytes", k.bytes);
    j.field("tflops", k.tflops()).field("tbps", k.tbps());
    j.field("rows", k.rows).field("experts_hit", k.experts_hit).end_object();
  };
  if (r.real_experts) {
    work("experts_work", r.experts);
    if (r.shared_intermediate_size > 0) work("shared_experts_work", r.shared);
  }
  j.field("experts_flop", r.experts.flop).field("output_checksum", r.output_checksum);
  j.field("padded_slots", r.padded_slots)
      .field("layout_rows", r.layout_rows)
      .field("dropped_slots", r.dropped_slots);
  j.field("values_checked", r.values_checked)
      .field("values_wrong", r.values_wrong)
      .field("first_mismatch", r.first_mismatch);
  j.end_object();
}

}  // namespace switchyard::cli
