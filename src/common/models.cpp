#include "switchyard/models.h"

namespace switchyard {

namespace {

RoutingParams router(int E, int K, ScoreFunc f, bool renorm, float rsf = 1.0f) {
  RoutingParams p;
  p.num_experts = E;
  p.top_k = K;
  p.score_func = f;
  p.renormalize = renorm;
  p.routed_scaling_factor = rsf;
  return p;
}

RoutingParams grouped(RoutingParams p, GroupScore g, int groups, int keep) {
  p.group_score = g;
  p.num_groups = groups;
  p.topk_groups = keep;
  return p;
}

RoutingParams fused_shared(RoutingParams p, int s) {
  p.num_shared_experts = s;
  return p;
}

// Shared experts: one dense MLP of num_shared_experts * I (DeepSeek-V2: 2 x 1536).
std::vector<ModelPreset> make_presets() {
  using F = ScoreFunc;
  return {
      {"deepseek-v3", 7168, 2048, 1,
       fused_shared(grouped(router(256, 8, F::kSigmoid, true, 2.5f), GroupScore::kTop2Sum, 8, 4),
                    1),
       true, Activation::kSiluAndMul, 2048},
      {"kimi-k2", 7168, 2048, 1, fused_shared(router(384, 8, F::kSigmoid, true, 2.827f), 1), true,
       Activation::kSiluAndMul, 2048},
      {"qwen3-30b-a3b", 2048, 768, 0, router(128, 8, F::kSoftmax, true), false},
      {"qwen3-235b-a22b", 4096, 1536, 0, router(128, 8, F::kSoftmax, true), false},
      {"qwen3-coder-480b", 6144, 2560, 0, router(160, 8, F::kSoftmax, true), false},
      {"mixtral-8x7b", 4096, 14336, 0, router(8, 2, F::kSoftmax, true), false},
      {"gpt-oss-120b", 2880, 2880, 0, router(128, 4, F::kTopkThenSoftmax, false), false,
       Activation::kSwigluOai},
      {"llama4-maverick", 5120, 8192, 1, router(128, 1, F::kTopkThenSigmoid, false), false,
       Activation::kSiluAndMul, 8192, true},
      {"deepseek-v2", 5120, 1536, 2,
       grouped(router(160, 6, F::kSoftmax, false, 16.0f), GroupScore::kMax, 8, 3), false,
       Activation::kSiluAndMul, 3072},
  };
}

}  // namespace

const std::vector<ModelPreset>& model_presets() {
  static const std::vector<ModelPreset> presets = make_presets();
  return presets;
}

const ModelPreset* find_model_preset(std::string_view name) {
  for (const ModelPreset& m : model_presets()) {
    if (m.name == name) return &m;
  }
  return nullptr;
}

std::string model_preset_names() {
  std::string s;
  for (const ModelPreset& m : model_presets()) {
    if (!s.empty()) s += "|";
    s += m.name;
  }
  return s;
}

}  // namespace switchyard
