#include "layer_stages.h"

#include <chrono>
#include <cstdio>
#include <cstring>
#include <vector>

#include "../../src/common/dtype_convert.h"
#include "../../src/common/exact_math.h"
#include "../common/rng.h"
#include "switchyard/align.h"

namespace switchyard::cli {

namespace {
double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

Status run_layer_stages_cpu(const tools::RoutingProblem& pr, const tools::RoutingResult& routing,
                            const LayerStageOptions& o, LayerStageReport* r) {
  const std::int64_t M = pr.num_tokens, H = o.hidden_size;
  const int E = pr.params.num_experts, K = pr.params.top_k, C = pr.columns();
  r->hidden_size = o.hidden_size;
  using clock = std::chrono::steady_clock;

  // Hidden states: seeded values in [-1, 1), stored as bf16.
  auto t0 = clock::now();
  std::vector<detail::bf16_t> x(static_cast<std::size_t>(M * H));
  tools::Rng rng(o.seed ^ 0x68696464656eull);
  for (auto& v : x) v = detail::float_to_bf16(static_cast<float>(rng.uniform() * 2.0 - 1.0));
  r->hidden_ms = ms_since(t0);

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
  pa.x = TensorView::contiguous(x.data(), DType::kBFloat16, {M, H});
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
  std::printf("  hidden states (host)     %10.3f ms  (H=%d, bf16)\n", r.hidden_ms, r.hidden_size);
  std::printf("  align (cpu)              %10.3f ms  (%lld padded slots)\n", r.align_ms,
              static_cast<long long>(r.padded_slots));
  std::printf("  expert layout (cpu)      %10.3f ms  (%lld rows, %lld slots dropped)\n",
              r.layout_ms, static_cast<long long>(r.layout_rows),
              static_cast<long long>(r.dropped_slots));
  std::printf("  permute (cpu)            %10.3f ms\n", r.permute_ms);
  std::printf("  experts                  identity (expert GEMMs: next issue)\n");
  std::printf("  combine (cpu)            %10.3f ms\n", r.combine_ms);
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
  j.field("hidden_size", r.hidden_size).field("expert", "identity");
  j.field("hidden_ms", r.hidden_ms).field("align_ms", r.align_ms).field("layout_ms", r.layout_ms);
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
