#include "layer_stages.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

#include "../../src/common/dtype_convert.h"
#include "../../src/common/exact_math.h"
#include "../common/rng.h"
#include "../common/synthetic.h"
#include "switchyard/align.h"
#include "switchyard/experts.h"

namespace switchyard::cli {

namespace {
double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
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
                           std::uint64_t seed, std::size_t max_bytes, tools::MoeLayerWeights* out) {
  const std::int64_t E = m.routing.num_experts, H = hidden, I = intermediate;
  const auto bytes = static_cast<std::size_t>(E * 3 * I * H * 2);
  if (bytes > max_bytes) {
    return Status::InvalidArgument("--experts reference: random weights for " + m.name +
                                   " at H=" + std::to_string(H) + ", I=" + std::to_string(I) +
                                   " take " + std::to_string(bytes >> 20) +
                                   " MiB: expected at most " + std::to_string(max_bytes >> 20) +
                                   " MiB (lower --hidden / --intermediate, or pass --weights)");
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
  w.router = draw(static_cast<std::size_t>(E * H), 1.0 / std::sqrt(static_cast<double>(H)));
  if (m.has_bias) w.bias = draw(static_cast<std::size_t>(E), 0.01);
  w.w13 = tools::encode_floats(
      draw(static_cast<std::size_t>(E * 2 * I * H), 1.0 / std::sqrt(static_cast<double>(H))),
      DType::kBFloat16);
  w.w2 = tools::encode_floats(
      draw(static_cast<std::size_t>(E * H * I), 1.0 / std::sqrt(static_cast<double>(I))),
      DType::kBFloat16);
  *out = std::move(w);
  return Status::Ok();
}

std::vector<float> router_logits(const std::vector<detail::bf16_t>& x, std::int64_t hidden,
                                 const tools::MoeLayerWeights& w) {
  const std::int64_t M = static_cast<std::int64_t>(x.size()) / std::max<std::int64_t>(hidden, 1),
                     E = w.num_experts;
  std::vector<float> logits(static_cast<std::size_t>(M * E));
  for (std::int64_t t = 0; t < M; ++t) {
    for (std::int64_t e = 0; e < E; ++e) {
      float acc = 0.0f;
      for (std::int64_t h = 0; h < hidden; ++h) {
        acc += detail::to_float(x[static_cast<std::size_t>(t * hidden + h)]) *
               w.router[static_cast<std::size_t>(e * hidden + h)];
      }
      logits[static_cast<std::size_t>(t * E + e)] = acc;
    }
  }
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
  return tools::write_safetensors(path, t);
}

Status run_layer_stages_cpu(const tools::RoutingProblem& pr, const tools::RoutingResult& routing,
                            const std::vector<detail::bf16_t>& x, const LayerStageOptions& o,
                            LayerStageReport* r) {
  const std::int64_t M = pr.num_tokens, H = o.hidden_size;
  const int E = pr.params.num_experts, K = pr.params.top_k, C = pr.columns();
  r->hidden_size = o.hidden_size;
  using clock = std::chrono::steady_clock;

  auto t0 = clock::now();

  // The routed columns of the routing output (fused shared columns carry ids >= E: dropped here).
  std::vector<std::int32_t> ids(static_cast<std::size_t>(M * K));
  std::vector<float> w(static_cast<std::size_t>(M * K));
  for (std::int64_t t = 0; t < M; ++t) {
    for (int k = 0; k < K; ++k) {
      ids[static_cast<std::size_t>(t * K + k)] =
          static_cast<std::int32_t>(routing.ids[static_cast<std::size_t>(t * C + k)]);
      w[static_cast<std::size_t>(t * K + k)] = routing.weights[static_cast<std::size_t>(t * C + k)];
    }
  }
  const TensorView ids_view = TensorView::contiguous(ids.data(), DType::kInt32, {M, K});

  t0 = clock::now();
  std::vector<std::int32_t> sorted(
      static_cast<std::size_t>(align_max_padded(M * K, E, o.block_size)));
  std::vector<std::int32_t> block_expert(
      static_cast<std::size_t>(align_max_blocks(M * K, E, o.block_size)));
  std::int32_t post_pad = 0;
  AlignArgs aa;
  aa.top_k_ids = ids_view;
  aa.sorted_token_ids = TensorView::contiguous(sorted.data(), DType::kInt32,
                                               {static_cast<std::int64_t>(sorted.size())});
  aa.expert_ids = TensorView::contiguous(block_expert.data(), DType::kInt32,
                                         {static_cast<std::int64_t>(block_expert.size())});
  aa.num_tokens_post_pad = TensorView::contiguous(&post_pad, DType::kInt32, {1});
  if (Status st = moe_align_block_size_cpu({E, o.block_size}, aa); !st.ok()) return st;
  r->align_ms = ms_since(t0);
  r->padded_slots = post_pad;

  t0 = clock::now();
  ExpertLayoutParams lp;
  lp.num_experts = E;
  lp.alignment = o.alignment;
  const std::int64_t max_rows = layout_max_rows(lp, M * K);
  std::vector<std::int32_t> counts(static_cast<std::size_t>(E));
  std::vector<std::int64_t> offsets(static_cast<std::size_t>(E) + 1),
      src_to_dst(static_cast<std::size_t>(M * K)), dst_to_src(static_cast<std::size_t>(max_rows));
  ExpertLayoutArgs la;
  la.top_k_ids = ids_view;
  la.expert_counts = TensorView::contiguous(counts.data(), DType::kInt32, {E});
  la.expert_offsets = TensorView::contiguous(offsets.data(), DType::kInt64, {E + 1});
  la.src_to_dst = TensorView::contiguous(src_to_dst.data(), DType::kInt64, {M * K});
  la.dst_to_src = TensorView::contiguous(dst_to_src.data(), DType::kInt64, {max_rows});
  if (Status st = expert_layout_cpu(lp, la); !st.ok()) return st;
  r->layout_ms = ms_since(t0);
  const std::int64_t rows = offsets[static_cast<std::size_t>(E)];
  r->layout_rows = rows;
  for (std::int64_t d : src_to_dst) r->dropped_slots += d < 0;

  // Permute only the rows in use; the identity expert leaves them as they are.
  t0 = clock::now();
  std::vector<detail::bf16_t> permuted(static_cast<std::size_t>(rows * H));
  PermuteArgs pa;
  pa.x = TensorView::contiguous(const_cast<detail::bf16_t*>(x.data()), DType::kBFloat16, {M, H});
  pa.dst_to_src = TensorView::contiguous(dst_to_src.data(), DType::kInt64, {rows});
  pa.top_k = K;
  pa.out = TensorView::contiguous(permuted.data(), DType::kBFloat16, {rows, H});
  if (Status st = permute_cpu(pa); !st.ok()) return st;
  r->permute_ms = ms_since(t0);

  t0 = clock::now();
  const float rsf = pr.params.apply_rsf_on_output ? 1.0f : pr.params.routed_scaling_factor;
  std::vector<detail::bf16_t> out(static_cast<std::size_t>(M * H));
  CombineArgs ca;
  ca.y = pa.out;
  ca.src_to_dst = la.src_to_dst;
  ca.top_k_weights = TensorView::contiguous(w.data(), DType::kFloat32, {M, K});
  ca.out = TensorView::contiguous(out.data(), DType::kBFloat16, {M, H});
  if (Status st = combine_cpu({rsf}, ca); !st.ok()) return st;
  r->combine_ms = ms_since(t0);

  if (o.weights) {
    // Real experts (the CPU oracle): the layer output is fused_experts' output.
    r->reference_experts = true;
    const tools::MoeLayerWeights& lw = *o.weights;
    ExpertsParams ep;
    ep.num_experts = E;
    ep.hidden_size = o.hidden_size;
    ep.intermediate_size = lw.intermediate_size;
    ep.activation = o.activation;
    ep.routed_scaling_factor = rsf;
    ExpertsArgs ea;
    ea.x = pa.x;
    ea.w13 = TensorView::contiguous(const_cast<std::uint8_t*>(lw.w13.data()), lw.dtype,
                                    {E, 2LL * lw.intermediate_size, H});
    ea.w2 = TensorView::contiguous(const_cast<std::uint8_t*>(lw.w2.data()), lw.dtype,
                                   {E, H, lw.intermediate_size});
    ea.top_k_ids = ids_view;
    ea.top_k_weights = ca.top_k_weights;
    ea.out = ca.out;
    t0 = clock::now();
    if (Status st = fused_experts_cpu(ep, ea); !st.ok()) return st;
    r->experts_ms = ms_since(t0);
    std::int64_t valid = 0;
    for (std::int64_t d : src_to_dst) valid += d >= 0;
    r->experts_flop = 2.0 * static_cast<double>(valid) * 3.0 *
                      static_cast<double>(lw.intermediate_size) * static_cast<double>(H);
    for (const auto& v : out)
      r->output_checksum += std::fabs(static_cast<double>(detail::to_float(v)));
    return Status::Ok();
  }

  // Check: out[t] = rsf * sum_k w[t,k] * x[t] over the valid slots, with the same fused order.
  t0 = clock::now();
  std::vector<float> acc(static_cast<std::size_t>(H));
  for (std::int64_t t = 0; t < M; ++t) {
    std::fill(acc.begin(), acc.end(), 0.0f);
    for (int k = 0; k < K; ++k) {
      const std::int32_t e = ids[static_cast<std::size_t>(t * K + k)];
      if (e < 0 || e >= E) continue;
      const float wk = w[static_cast<std::size_t>(t * K + k)];
      for (std::int64_t h = 0; h < H; ++h) {
        acc[static_cast<std::size_t>(h)] =
            detail::exact_fma(wk, detail::to_float(x[static_cast<std::size_t>(t * H + h)]),
                              acc[static_cast<std::size_t>(h)]);
      }
    }
    for (std::int64_t h = 0; h < H; ++h) {
      const detail::bf16_t want = detail::float_to_bf16(rsf * acc[static_cast<std::size_t>(h)]);
      const detail::bf16_t got = out[static_cast<std::size_t>(t * H + h)];
      ++r->values_checked;
      if (want.bits != got.bits) {
        if (r->values_wrong++ == 0) {
          r->first_mismatch = "token " + std::to_string(t) + " h " + std::to_string(h) + ": " +
                              std::to_string(detail::to_float(got)) + " vs " +
                              std::to_string(detail::to_float(want));
        }
      }
    }
  }
  r->check_ms = ms_since(t0);
  return Status::Ok();
}

void print_layer_stages(const LayerStageReport& r) {
  std::printf("  align (cpu)              %10.3f ms  (%lld padded slots)\n", r.align_ms,
              static_cast<long long>(r.padded_slots));
  std::printf("  expert layout (cpu)      %10.3f ms  (%lld rows, %lld slots dropped)\n",
              r.layout_ms, static_cast<long long>(r.layout_rows),
              static_cast<long long>(r.dropped_slots));
  std::printf("  permute (cpu)            %10.3f ms\n", r.permute_ms);
  std::printf("  combine (cpu)            %10.3f ms\n", r.combine_ms);
  if (r.reference_experts) {
    std::printf("  experts (cpu reference)  %10.3f ms  (%.3f TFLOP/s; fused_experts_cpu, H=%d)\n",
                r.experts_ms, r.experts_flop / (r.experts_ms * 1e9), r.hidden_size);
    std::printf("  layer output             sum |out| = %.6g\n", r.output_checksum);
    return;
  }
  std::printf("  experts                  identity (--experts reference for real experts)\n");
  if (r.values_wrong == 0) {
    std::printf("  check layer output       ok: %lld values equal rsf * sum_k w * x bit for bit\n",
                static_cast<long long>(r.values_checked));
  } else {
    std::printf("  check layer output       WRONG: %lld of %lld values differ; first: %s\n",
                static_cast<long long>(r.values_wrong), static_cast<long long>(r.values_checked),
                r.first_mismatch.c_str());
  }
}

void json_layer_stages(tools::JsonWriter& j, const LayerStageReport& r) {
  j.key("layer").begin_object();
  j.field("hidden_size", r.hidden_size)
      .field("experts", r.reference_experts ? "reference" : "identity");
  j.field("experts_ms", r.experts_ms)
      .field("experts_flop", r.experts_flop)
      .field("output_checksum", r.output_checksum);
  j.field("align_ms", r.align_ms).field("layout_ms", r.layout_ms);
  j.field("permute_ms", r.permute_ms)
      .field("combine_ms", r.combine_ms)
      .field("check_ms", r.check_ms);
  j.field("padded_slots", r.padded_slots)
      .field("layout_rows", r.layout_rows)
      .field("dropped_slots", r.dropped_slots);
  j.field("values_checked", r.values_checked)
      .field("values_wrong", r.values_wrong)
      .field("first_mismatch", r.first_mismatch);
  j.end_object();
}

}  // namespace switchyard::cli
