// One MoE layer's weights from a Hugging Face checkpoint shard (safetensors), in Switchyard's
// layouts: router [E, H], correction bias [E], w13 [E, 2I, H] (gate rows, then up rows) and
// w2 [E, H, I]. Tensor names, tried in this order:
//   model.layers.N.mlp.{gate.weight, gate.e_score_correction_bias,
//                       experts.e.{gate_proj, up_proj, down_proj}.weight}   DeepSeek, Qwen, Kimi
//   model.layers.N.block_sparse_moe.{gate.weight, experts.e.{w1, w3, w2}.weight}   Mixtral
// and, where the preset has shared experts (shared_intermediate_size > 0), the dense shared MLP:
//   model.layers.N.mlp.shared_experts.{gate_proj, up_proj, down_proj}.weight         DeepSeek, Kimi
// (Llama-4's feed_forward.shared_expert and fused expert tensors are not read yet.)
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "safetensors.h"
#include "switchyard/models.h"

namespace switchyard::tools {

struct MoeLayerWeights {
  DType dtype = DType::kBFloat16;  // of w13 / w2 (bfloat16 or float16)
  std::int32_t num_experts = 0, hidden_size = 0, intermediate_size = 0;
  std::vector<float> router;  // [E, H], converted to float32
  std::vector<float> bias;    // [E] or empty
  std::vector<std::uint8_t> w13, w2;
  // The shared experts as one dense gated MLP: w13 [2 Is, H] (gate rows, then up rows) and
  // w2 [H, Is] in `dtype`; empty when shared_intermediate_size == 0.
  std::int32_t shared_intermediate_size = 0;
  std::vector<std::uint8_t> shared_w13, shared_w2;
};

// Checks every tensor against the preset's E, H and I; errors name the tensor.
Status load_moe_layer(const SafetensorsFile& file, const ModelPreset& preset, int layer,
                      MoeLayerWeights* out);

}  // namespace switchyard::tools
