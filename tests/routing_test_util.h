// Shared by the routing tests: the variants of SEMANTICS.md section 1 and seeded problems.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "common/rng.h"
#include "common/routing_harness.h"
#include "common/synthetic.h"
#include "switchyard/routing.h"

namespace switchyard::testing {

enum class Variant {
  kSoftmax,           // Mixtral / Qwen (+ softcap and bias on some cases)
  kSigmoidBias,       // Kimi K2
  kSqrtSoftplusBias,  // DeepSeek-V4
  kGroupedMax,        // DeepSeek-V2
  kGroupedTop2Sum,    // DeepSeek-V3 noaux_tc
  kTopkSoftmax,       // gpt-oss
  kTopkSigmoid,       // Llama-4
};

inline const std::vector<Variant>& all_variants() {
  static const std::vector<Variant> v = {Variant::kSoftmax,          Variant::kSigmoidBias,
                                         Variant::kSqrtSoftplusBias, Variant::kGroupedMax,
                                         Variant::kGroupedTop2Sum,   Variant::kTopkSoftmax,
                                         Variant::kTopkSigmoid};
  return v;
}

inline const char* variant_name(Variant v) {
  switch (v) {
    case Variant::kSoftmax:
      return "softmax";
    case Variant::kSigmoidBias:
      return "sigmoid_bias";
    case Variant::kSqrtSoftplusBias:
      return "sqrtsoftplus_bias";
    case Variant::kGroupedMax:
      return "grouped_max";
    case Variant::kGroupedTop2Sum:
      return "grouped_top2sum";
    case Variant::kTopkSoftmax:
      return "topk_softmax";
    case Variant::kTopkSigmoid:
      return "topk_sigmoid";
  }
  return "?";
}

inline bool variant_has_bias(Variant v) {
  return v == Variant::kSigmoidBias || v == Variant::kSqrtSoftplusBias ||
         v == Variant::kGroupedTop2Sum;
}

// Parameters of a variant for (E, K); false where the combination is invalid.
inline bool variant_params(Variant v, int E, int K, RoutingParams* out) {
  if (K < 1 || K > E || K > kMaxRoutingColumns) return false;
  RoutingParams p;
  p.num_experts = E;
  p.top_k = K;
  p.renormalize = true;
  switch (v) {
    case Variant::kSoftmax:
      p.score_func = ScoreFunc::kSoftmax;
      break;
    case Variant::kSigmoidBias:
      p.score_func = ScoreFunc::kSigmoid;
      p.routed_scaling_factor = 2.827f;
      break;
    case Variant::kSqrtSoftplusBias:
      p.score_func = ScoreFunc::kSqrtSoftplus;
      p.routed_scaling_factor = 1.5f;
      break;
    case Variant::kGroupedMax:
    case Variant::kGroupedTop2Sum: {
      p.score_func = v == Variant::kGroupedMax ? ScoreFunc::kSoftmax : ScoreFunc::kSigmoid;
      p.group_score = v == Variant::kGroupedMax ? GroupScore::kMax : GroupScore::kTop2Sum;
      p.renormalize = v == Variant::kGroupedTop2Sum;
      p.routed_scaling_factor = v == Variant::kGroupedMax ? 16.0f : 2.5f;
      int groups = 1;
      for (int g : {8, 4, 2, 1}) {
        if (E % g == 0) {
          groups = g;
          break;
        }
      }
      const int size = E / groups;
      int keep = 0;
      for (int t = (groups + 1) / 2; t <= groups; ++t) {
        if (K <= t * size) {
          keep = t;
          break;
        }
      }
      if (keep == 0) return false;
      p.num_groups = groups;
      p.topk_groups = keep;
      break;
    }
    case Variant::kTopkSoftmax:
      p.score_func = ScoreFunc::kTopkThenSoftmax;
      p.renormalize = false;
      break;
    case Variant::kTopkSigmoid:
      p.score_func = ScoreFunc::kTopkThenSigmoid;
      p.renormalize = false;
      break;
  }
  *out = p;
  return true;
}

// Logits are expensive to draw; cache them per (E, M) for the whole test binary.
inline const std::vector<float>& cached_logits(int E, std::int64_t M) {
  static std::map<std::pair<int, std::int64_t>, std::vector<float>> cache;
  auto key = std::make_pair(E, M);
  auto it = cache.find(key);
  if (it == cache.end()) {
    const std::string name = "logits/E" + std::to_string(E) + "/M" + std::to_string(M);
    it = cache
             .emplace(key, tools::make_router_logits(M, E, tools::RoutingSkew{},
                                                     tools::seed_from_name(name)))
             .first;
  }
  return it->second;
}

inline tools::RoutingProblem make_problem(const RoutingParams& p, std::int64_t M, DType dtype,
                                          const std::vector<float>& logits, bool with_bias,
                                          std::uint64_t seed) {
  tools::RoutingProblem pr;
  pr.params = p;
  pr.num_tokens = M;
  pr.logits_dtype = dtype;
  pr.logits = tools::encode_floats(logits, dtype);
  if (with_bias) {
    // Larger than the CLI's bias so that it changes selections.
    tools::Rng rng(seed ^ 0xb1a5ull);
    pr.bias.resize(static_cast<std::size_t>(p.num_experts));
    for (float& b : pr.bias) b = static_cast<float>(rng.uniform() * 0.2 - 0.1);
  }
  return pr;
}

// SWITCHYARD_TEST_SCALE=small shrinks the big sweeps (used under compute-sanitizer).
inline bool small_scale() {
  const char* s = std::getenv("SWITCHYARD_TEST_SCALE");
  return s && std::string(s) == "small";
}

}  // namespace switchyard::testing
