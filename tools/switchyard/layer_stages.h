// The stages of `switchyard run` after routing, on the CPU backend: alignment, the contiguous
// expert layout, permute, an identity expert (until the expert GEMMs exist), and combine. The
// check: the layer output equals rsf * sum_k w[t, k] * x[t] bit for bit (same fused order).
#pragma once

#include <cstdint>
#include <string>

#include <vector>

#include "../../src/common/dtype_convert.h"
#include "../common/json.h"
#include "../common/moe_weights.h"
#include "../common/routing_harness.h"
#include "switchyard/models.h"

namespace switchyard::cli {

struct LayerStageOptions {
  std::int32_t hidden_size = 0;  // H
  std::int32_t block_size = 64;  // moe_align_block_size
  std::int32_t alignment = 1;    // rows per expert in the contiguous layout
  std::uint64_t seed = 0;
  // Experts: nullptr = identity (the output check applies); else fused_experts_cpu with these.
  const tools::MoeLayerWeights* weights = nullptr;
  Activation activation = Activation::kSiluAndMul;
};

// Seeded hidden states [M, H] in [-1, 1), bf16.
std::vector<detail::bf16_t> make_hidden_states(std::int64_t tokens, std::int64_t hidden,
                                               std::uint64_t seed);
// Seeded weights for a preset at (H, I): router and w13 / w2 scaled by 1/sqrt(fan-in), bias
// where the preset has one. Errors when they would exceed `max_bytes`.
Status make_random_weights(const ModelPreset& m, std::int32_t hidden, std::int32_t intermediate,
                           std::uint64_t seed, std::size_t max_bytes, tools::MoeLayerWeights* out);
// The router GEMM: logits[t, e] = sum_h x[t, h] * router[e, h] in float32.
std::vector<float> router_logits(const std::vector<detail::bf16_t>& x, std::int64_t hidden,
                                 const tools::MoeLayerWeights& w);
// Writes `w` as layer `layer` of a safetensors shard with Hugging Face tensor names.
Status save_weights(const std::string& path, const tools::MoeLayerWeights& w, int layer);

struct LayerStageReport {
  std::int32_t hidden_size = 0;
  double align_ms = 0, layout_ms = 0, permute_ms = 0, combine_ms = 0, check_ms = 0;
  bool reference_experts = false;
  double experts_ms = 0, experts_flop = 0;
  double output_checksum = 0;      // sum of |out| in float64, to compare runs
  std::int64_t padded_slots = 0;   // num_tokens_post_pad
  std::int64_t layout_rows = 0;    // rows of the contiguous layout in use
  std::int64_t dropped_slots = 0;  // slots with no local expert (e.g. fused shared columns)
  std::int64_t values_checked = 0, values_wrong = 0;
  std::string first_mismatch;
};

Status run_layer_stages_cpu(const tools::RoutingProblem& pr, const tools::RoutingResult& routing,
                            const std::vector<detail::bf16_t>& x, const LayerStageOptions& options,
                            LayerStageReport* report);

void print_layer_stages(const LayerStageReport& r);
void json_layer_stages(tools::JsonWriter& j, const LayerStageReport& r);

}  // namespace switchyard::cli
