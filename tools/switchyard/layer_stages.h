// The stages of `switchyard run` after routing, on the CPU backend: alignment, the contiguous
// expert layout, permute, an identity expert (until the expert GEMMs exist), and combine. The
// check: the layer output equals rsf * sum_k w[t, k] * x[t] bit for bit (same fused order).
#pragma once

#include <cstdint>
#include <string>

#include "../common/json.h"
#include "../common/routing_harness.h"
#include "switchyard/models.h"

namespace switchyard::cli {

struct LayerStageOptions {
  std::int32_t hidden_size = 0;  // H (0: the preset's)
  std::int32_t block_size = 64;  // moe_align_block_size
  std::int32_t alignment = 1;    // rows per expert in the contiguous layout
  std::uint64_t seed = 0;
};

struct LayerStageReport {
  std::int32_t hidden_size = 0;
  double hidden_ms = 0, align_ms = 0, layout_ms = 0, permute_ms = 0, combine_ms = 0, check_ms = 0;
  std::int64_t padded_slots = 0;   // num_tokens_post_pad
  std::int64_t layout_rows = 0;    // rows of the contiguous layout in use
  std::int64_t dropped_slots = 0;  // slots with no local expert (e.g. fused shared columns)
  std::int64_t values_checked = 0, values_wrong = 0;
  std::string first_mismatch;
};

Status run_layer_stages_cpu(const tools::RoutingProblem& pr, const tools::RoutingResult& routing,
                            const LayerStageOptions& options, LayerStageReport* report);

void print_layer_stages(const LayerStageReport& r);
void json_layer_stages(tools::JsonWriter& j, const LayerStageReport& r);

}  // namespace switchyard::cli
