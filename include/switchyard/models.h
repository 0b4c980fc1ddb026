// Model presets: the MoE layer shapes of ../shared/SEMANTICS.md section 6 and their routers.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "switchyard/experts.h"
#include "switchyard/routing.h"

namespace switchyard {

struct ModelPreset {
  std::string name;                 // CLI name, e.g. "deepseek-v3"
  std::int32_t hidden_size;         // H
  std::int32_t intermediate_size;   // I (per expert, no tensor parallelism)
  std::int32_t num_shared_experts;  // shared experts of the model (fused or not)
  // Router. routing.num_shared_experts is the number fused into the routing output: presets fuse
  // the shared expert only where the model renormalises (DeepSeek-V3, Kimi K2), the only case in
  // which "routed_sum / rsf" gives the shared expert weight 1.
  RoutingParams routing;
  bool has_bias;                                    // e_score_correction_bias
  Activation activation = Activation::kSiluAndMul;  // of the routed experts
  // The shared experts as one dense gated MLP (SiLU) run on every token and added to the routed
  // output with weight 1 (routed_scaling_factor scales the routed experts only): its intermediate
  // size, num_shared_experts * I for every preset (Hugging Face's DeepSeek builds the shared
  // experts so); 0: none.
  std::int32_t shared_intermediate_size = 0;
  // The router weight scales the expert input instead of its output (Llama-4; top_k == 1).
  bool router_weight_on_input = false;
};

// All presets, in a stable order.
const std::vector<ModelPreset>& model_presets();
// The preset of that name, or nullptr.
const ModelPreset* find_model_preset(std::string_view name);
// "deepseek-v3|kimi-k2|..." for messages.
std::string model_preset_names();

}  // namespace switchyard
