// Shared by the routing tests: the variants of SEMANTICS.md section 1 and seeded problems.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <map>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "common/rng.h"
#include "common/routing_harness.h"
#include "common/synthetic.h"
#include "cuda/heuristics/routing.h"
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

// Cases for the row block's list finish (finish_sigmoid_lists: one expert per thread, sigmoid-like
// scores, K <= 8), whose special branches the fuzz cases reach rarely: sqrt-softplus of +Inf is
// +Inf, so rows with one and with two +Inf logits take the weights' +Inf renormalisation; also a
// row with +Inf, NaN and -Inf, a row of -Inf, a row of NaN (no finite logit) and a plain row.
// DeepSeek-V3's grouping (256 experts = 8 groups of 32, 4 kept) and Kimi K2's 384 experts; K 1, 2,
// 5 and 8; 0..2 shared experts; renormalised or not; the routed scaling on the output or not.
struct NamedProblem {
  std::string id;
  tools::RoutingProblem problem;
};
inline std::vector<NamedProblem> list_finish_cases() {
  std::vector<NamedProblem> out;
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  int index = 0;
  for (int E : {256, 384}) {
    for (ScoreFunc f : {ScoreFunc::kSqrtSoftplus, ScoreFunc::kSigmoid}) {
      for (int K : {1, 2, 5, 8}) {
        for (int S = 0; S <= 2; ++S) {
          for (int opts = 0; opts < 4; ++opts) {
            const bool renorm = (opts & 1) != 0;
            RoutingParams p;
            p.num_experts = E;
            p.top_k = K;
            p.score_func = f;
            p.renormalize = renorm;
            p.num_shared_experts = S;
            p.routed_scaling_factor = 2.5f;
            p.apply_rsf_on_output = (opts & 2) != 0;
            if (E == 256) {
              p.group_score = GroupScore::kTop2Sum;
              p.num_groups = 8;
              p.topk_groups = 4;
            }
            const std::string id = "routing/list_finish/" + std::to_string(index++);
            const std::uint64_t seed = tools::seed_from_name(id);
            const std::int64_t M = 6;
            std::vector<float> lf = tools::make_router_logits(M, E, tools::RoutingSkew{}, seed);
            float* row = lf.data();
            row[E + 37] = inf;     // row 1: one +Inf
            row[2 * E + 5] = inf;  // row 2: two +Inf in different groups
            row[2 * E + 200] = inf;
            row[3 * E + 3] = inf;  // row 3: +Inf, NaN, -Inf
            row[3 * E + 4] = nan;
            row[3 * E + 100] = -inf;
            for (int e = 0; e < E; ++e) {
              row[4 * E + e] = -inf;  // row 4: every logit -Inf
              row[5 * E + e] = nan;   // row 5: no finite logit
            }
            out.push_back({id, make_problem(p, M, DType::kFloat32, lf, true, seed)});
          }
        }
      }
    }
  }
  return out;
}

// One seeded random case of the routing fuzz tests ("routing/fuzz/<c>"): a variant, E, K and
// options; M in [0, max_tokens); logits where one row in `row_kinds` each gets a few specials
// (NaN, +-Inf, +-0, +-1e30), no finite logit, ties everywhere, (huge_rows) a few +-1e30 values,
// and (near_ties) logits 0.25 + i 2^-21, i < 16: near-ties far below the approximate pre-filter's
// error bound (exact ties after bf16 rounding); a logits dtype, a bias (near_ties: in a third of
// the biased cases i 2^-22, i < 4), int64 ids, padding, a placement and an expert map. The same
// case index and options give the same case in every caller (the CUDA test and the host emulator
// of the routing kernels); near_ties off leaves the random stream as it was without it. Returns
// false when the variant has no parameters for (E, K).
struct FuzzCase {
  std::string id;
  Variant variant = Variant::kSoftmax;
  int E = 0, K = 0;
  tools::RoutingProblem problem;
};
inline bool make_fuzz_case(int c, std::int64_t max_tokens, std::uint64_t row_kinds, bool huge_rows,
                           bool near_ties, FuzzCase* out) {
  static const std::vector<int> experts = {1, 3, 8, 16, 33, 64, 128, 160, 256, 384, 1000, 1024};
  out->id = "routing/fuzz/" + std::to_string(c);
  tools::Rng rng(tools::seed_from_name(out->id));
  const Variant v = all_variants()[rng.below(all_variants().size())];
  const int E = experts[rng.below(experts.size())];
  const int K = 1 + static_cast<int>(rng.below(static_cast<std::uint64_t>(std::min(E, 16))));
  out->variant = v;
  out->E = E;
  out->K = K;
  RoutingParams p;
  if (!variant_params(v, E, K, &p)) return false;
  p.num_shared_experts = static_cast<int>(rng.below(3));
  if (K + p.num_shared_experts > kMaxRoutingColumns) p.num_shared_experts = 0;
  p.renormalize = rng.below(2) != 0;
  p.apply_rsf_on_output = rng.below(2) != 0;
  p.routed_scaling_factor = static_cast<float>(0.5 + rng.uniform() * 3.0);
  if (rng.below(3) == 0) p.softcap = static_cast<float>(5.0 + rng.uniform() * 30.0);
  const auto M = static_cast<std::int64_t>(rng.below(static_cast<std::uint64_t>(max_tokens)));
  std::vector<float> logits = tools::make_router_logits(M, E, {}, rng.next_u64());
  const float specials[] = {std::numeric_limits<float>::quiet_NaN(),
                            std::numeric_limits<float>::infinity(),
                            -std::numeric_limits<float>::infinity(),
                            0.0f,
                            -0.0f,
                            1e30f,
                            -1e30f};
  for (std::int64_t t = 0; t < M; ++t) {
    const std::uint64_t kind = rng.below(row_kinds);
    float* row = logits.data() + t * E;
    if (kind == 0) {  // a few specials
      for (int i = 0; i < 3; ++i)
        row[rng.below(static_cast<std::uint64_t>(E))] = specials[rng.below(7)];
    } else if (kind == 1) {  // no finite logit
      for (int e = 0; e < E; ++e) row[e] = specials[rng.below(3)];
    } else if (kind == 2) {  // ties everywhere
      for (int e = 0; e < E; ++e) row[e] = static_cast<float>(rng.below(3));
    } else if (kind == 3 && huge_rows) {  // a few huge values: +Inf weights after renormalising
      for (int i = 0; i < 4; ++i)
        row[rng.below(static_cast<std::uint64_t>(E))] = specials[1 + rng.below(2) * 4];
    } else if (kind == 4 && near_ties) {
      for (int e = 0; e < E; ++e) row[e] = 0.25f + static_cast<float>(rng.below(16)) * 0x1p-21f;
    }
  }
  const DType dt =
      std::vector<DType>{DType::kFloat32, DType::kBFloat16, DType::kFloat16}[rng.below(3)];
  tools::RoutingProblem& pr = out->problem;
  pr =
      make_problem(p, M, dt, logits,
                   variant_has_bias(v) || (v == Variant::kSoftmax && rng.below(2)), rng.next_u64());
  if (near_ties && !pr.bias.empty() && rng.below(3) == 0) {
    for (float& b : pr.bias) b = static_cast<float>(rng.below(4)) * 0x1p-22f;
  }
  if (rng.below(2)) pr.id_dtype = DType::kInt64;
  if (rng.below(3) == 0)
    pr.num_tokens_non_padded =
        static_cast<std::int32_t>(rng.below(static_cast<std::uint64_t>(M) + 2));
  const std::uint64_t placement = rng.below(3);
  if (placement == 1) {  // static map onto P = E + 5 physical slots
    pr.num_physical_experts = E + 5;
    for (int e = 0; e < E; ++e) pr.placement.push_back((e * 7 + 3) % (E + 5));
  } else if (placement == 2) {  // replica table with up to 3 replicas
    pr.placement_replicas = 3;
    pr.num_physical_experts = 3 * E;
    for (int e = 0; e < E; ++e) {
      for (int r = 0; r < 3; ++r) pr.placement.push_back(e + r * E);
      pr.replica_counts.push_back(1 + static_cast<std::int32_t>(rng.below(3)));
    }
  }
  if (rng.below(3) == 0) {
    const int P = pr.placement.empty() ? E : pr.num_physical_experts;
    pr.num_local_experts = (P + 1) / 2;
    for (int e = 0; e < P; ++e) pr.expert_map.push_back(e % 2 == 0 ? e / 2 : -1);
  }
  return true;
}

// Whether layout code 64 (heuristics::kRoutingPrefilterCode) runs the approximate pre-filter on
// rows of p rather than only its exact path: the rule the kernel applies
// (detail::routing_prefilter_applies in src/common/routing_row.h).
inline bool prefilter_serves(const RoutingParams& p) {
  return heuristics::routing_prefilter_applies(
      p.num_experts, p.score_func == ScoreFunc::kSigmoid && !(p.softcap > 0.0f),
      p.group_score == GroupScore::kNone ? 0 : p.num_groups);
}

inline bool quad_serves(const RoutingParams& p) {
  return detail::routing_quad_vals(p.num_experts, p.top_k, p.score_func, p.softcap > 0.0f,
                                   p.group_score, p.num_groups, p.topk_groups) > 0;
}

// The staged kernel's rule (its launcher also needs 16-byte aligned logits rows).
inline bool staged_serves(const RoutingParams& p) {
  return detail::routing_staged_segs(p.num_experts, p.top_k, p.score_func, p.softcap > 0.0f,
                                     p.group_score, p.num_groups, p.topk_groups) > 0;
}

// The packed kernel's rule for a problem (src/common/routing_row.h: its logits dtype and bias
// decide too).
inline bool packed_serves(const tools::RoutingProblem& pr) {
  const RoutingParams& p = pr.params;
  return detail::routing_packed_serves(p.num_experts, p.top_k, p.score_func, p.softcap > 0.0f,
                                       p.group_score, !pr.bias.empty(),
                                       static_cast<int>(dtype_size(pr.logits_dtype)));
}

// The LUT kernel's rule for a problem (src/common/routing_row.h: bf16 logits only).
inline bool lut_serves(const tools::RoutingProblem& pr) {
  const RoutingParams& p = pr.params;
  return detail::routing_lut_serves(p.num_experts, p.top_k, p.score_func, p.softcap > 0.0f,
                                    p.group_score, p.num_groups,
                                    pr.logits_dtype == DType::kBFloat16);
}

// Cases for the LUT kernel's exactness checks (routing_lut.cuh, step 5): bf16 sigmoid routings
// (with and without bias; DeepSeek-V3-style groups of 32 at E = 128 / 256 / 512) whose keys tie
// or nearly tie in its 23-bit fixed-point map, so that words with equal q decide the selection
// and the column order. Biases: absent; random; multiples of 2^-24 (keys one ulp apart); random
// plus one outlier of +-2^4..2^12 (the map's resolution drops to ~2^-19..2^-11, and ordinary keys
// collide); one beyond 2^64 or NaN, or all 2^30 (every key equal; the block's exact path). Rows (t
// % 8): the router's logits; one value everywhere; logits from {-1, -0.5, 0, 0.5, 1}; a few NaN /
// +-Inf; the router's logits with pairs of equal logits; values spaced by bf16 ulps around 1; three
// leaders in every lane's run of experts, the second and third equal (a group's second and third
// keys tie in q, group scores nearly tie: with K = 1 and one kept group such rows settle on the
// group stage); 9..12 equal leaders in one lane's run (more than its top 8 tie). K in {1, 2, 6, 8};
// options (renormalisation, shared experts, rsf on the output, int64 ids) seeded per case.
inline std::vector<NamedProblem> lut_cases(std::int64_t M) {
  std::vector<NamedProblem> out;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  for (int E : {33, 64, 96, 128, 160, 192, 256, 384, 512}) {
    for (int grouped = 0; grouped < 2; ++grouped) {
      if (grouped && E % 32 != 0) continue;
      const int groups = E / 32;
      if (grouped && !(groups == 4 || groups == 8 || groups == 16)) continue;
      for (int K : {1, 2, 6, 8}) {
        for (int bias_mode = 0; bias_mode < 5; ++bias_mode) {
          const std::string id = "routing/lut/E" + std::to_string(E) + "/g" +
                                 std::to_string(grouped) + "/K" + std::to_string(K) + "/b" +
                                 std::to_string(bias_mode);
          tools::Rng rng(tools::seed_from_name(id));
          RoutingParams p;
          p.num_experts = E;
          p.top_k = K;
          p.score_func = ScoreFunc::kSigmoid;
          p.renormalize = rng.below(4) != 0;
          p.apply_rsf_on_output = rng.below(2) != 0;
          p.routed_scaling_factor = 2.5f;
          p.num_shared_experts = static_cast<int>(rng.below(3));
          if (grouped) {
            p.group_score = GroupScore::kTop2Sum;
            p.num_groups = groups;
            // (K = 1 with one kept group: rows of kind 6 then settle and hinge on the group scores)
            p.topk_groups =
                K == 1 ? 1 : 1 + static_cast<int>(rng.below(static_cast<std::uint64_t>(groups)));
          }
          std::vector<float> logits = tools::make_router_logits(M, E, {}, rng.next_u64());
          for (std::int64_t t = 0; t < M; ++t) {
            float* row = logits.data() + t * E;
            auto some = [&] { return row + rng.below(static_cast<std::uint64_t>(E)); };
            const int run = detail::routing_lut_vals(E);  // experts per lane
            switch (t % 8) {
              case 0:
                break;
              case 1: {
                const float v = static_cast<float>(rng.below(5)) * 0.5f - 1.0f;
                for (int e = 0; e < E; ++e) row[e] = v;
                break;
              }
              case 2:
                for (int e = 0; e < E; ++e) row[e] = static_cast<float>(rng.below(5)) * 0.5f - 1.0f;
                break;
              case 3:
                for (int i = 0; i < 3; ++i)
                  *some() = rng.below(2) ? nan : (rng.below(2) ? inf : -inf);
                break;
              case 4:
                for (int i = 0; i < E / 4; ++i) *some() = *some();
                break;
              case 5:
                for (int e = 0; e < E; ++e) {
                  row[e] = 1.0f + static_cast<float>(rng.below(6)) * 0x1p-7f;  // bf16 ulps at 1
                }
                break;
              case 6:
                for (int e = 0; e < E; ++e) row[e] = -4.0f;
                for (int g0 = 0; g0 < E; g0 += run) {
                  const int n = E - g0 < run ? E - g0 : run;
                  for (int i = 0; i < 3; ++i) {
                    row[g0 + static_cast<int>(rng.below(static_cast<std::uint64_t>(n)))] =
                        i == 0 ? 0.0f : -1.0f;
                  }
                }
                break;
              default: {
                for (int e = 0; e < E; ++e) row[e] = -4.0f;
                const int g0 =
                    run * static_cast<int>(rng.below(static_cast<std::uint64_t>(E / run)));
                for (int i = 0; i < 9 + static_cast<int>(rng.below(4)); ++i) {
                  row[g0 + static_cast<int>(rng.below(static_cast<std::uint64_t>(run)))] = 1.0f;
                }
                break;
              }
            }
          }
          tools::RoutingProblem pr =
              make_problem(p, M, DType::kBFloat16, logits, bias_mode != 0, rng.next_u64());
          if (bias_mode == 2) {
            for (float& b : pr.bias) b = static_cast<float>(rng.below(8)) * 0x1p-24f;
          } else if (bias_mode == 3) {
            const float outlier = std::ldexp(1.0f, 4 + static_cast<int>(rng.below(9)));
            pr.bias[rng.below(static_cast<std::uint64_t>(E))] = rng.below(2) ? outlier : -outlier;
          } else if (bias_mode == 4) {
            const std::uint64_t r = rng.below(3);
            if (r == 2) {  // all 2^30: hi + 1 rounds to hi, every key is 2^30
              for (float& b : pr.bias) b = 0x1p30f;
            } else {
              pr.bias[rng.below(static_cast<std::uint64_t>(E))] = r == 0 ? nan : 0x1p65f;
            }
          }
          if (rng.below(4) == 0) pr.id_dtype = DType::kInt64;
          out.push_back({id, std::move(pr)});
        }
      }
    }
  }
  return out;
}

// The seeded cases of the pre-filter tests ("routing/prefilter/..."; the CUDA test
// PrefilterLayoutMatchesCpu, and the host emulator's `cases prefilter` mode): sigmoid routings with
// and without bias (Kimi K2 style) and grouped top-2-sum ones (DeepSeek-V3 noaux_tc: the variant's
// groups, and 1..32 groups at E = 48..512, some on a partly filled warp), 33 <= E <= 512, each K of
// `ks`, M rows that cycle through: the router's logits as they come, a few specials (NaN, +-Inf,
// +-0, +-1e30), no finite logit, ties everywhere or signed zeros on top, near-ties far below the
// pre-filter's error bound (0.25 + i 2^-21: ties after bf16 / fp16 rounding, near-ties in fp32) or
// near-tied groups (two leaders 0.5 + i 2^-21 per group of the row, the rest far below), a few
// +-1e30, one or two finite logits among -Inf, NaN everywhere but a few. Biases: absent, random,
// near-tied (i 2^-22), or random with NaN / +-Inf entries. Dtypes rotate; renormalisation, shared
// experts, rsf on the output, int64 ids, padding, placement and expert map are seeded per case.
// Some cases are not served (prefilter_serves: unaligned groups) and take layout 64's exact path.
// fn returns false to stop.
struct PrefilterCase {
  std::string id;
  bool served = false;  // prefilter_serves(problem.params)
  tools::RoutingProblem problem;
};
// variants: the plain (ungrouped) variants to run at every E instead of kSigmoidBias, plus
// kGroupedTop2Sum if listed (the quad test adds the exact-key functions); null: the pre-filter's.
template <typename Fn>
void for_each_prefilter_case(std::int64_t M, const std::vector<int>& ks, Fn&& fn,
                             const std::vector<Variant>* variants = nullptr) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  const float specials[] = {nan, inf, -inf, 0.0f, -0.0f, 1e30f, -1e30f};
  const DType dtypes[] = {DType::kFloat32, DType::kBFloat16, DType::kFloat16};
  struct Shape {
    Variant v;
    int E, groups, topk_groups;  // groups 0: the variant's own (variant_params)
  };
  std::vector<Shape> shapes;
  const std::vector<Variant> plain = {Variant::kSigmoidBias, Variant::kGroupedTop2Sum};
  for (int E : {33, 64, 100, 128, 160, 256, 288, 384, 512}) {
    for (Variant v : variants ? *variants : plain) shapes.push_back({v, E, 0, 0});
  }
  for (const auto& [E, G, keep] : std::vector<std::tuple<int, int, int>>{{256, 1, 1},
                                                                         {256, 2, 1},
                                                                         {256, 4, 2},
                                                                         {256, 16, 5},
                                                                         {256, 32, 7},
                                                                         {64, 32, 31},
                                                                         {128, 4, 3},
                                                                         {512, 16, 4},
                                                                         {512, 32, 32},
                                                                         {48, 3, 2},
                                                                         {320, 5, 2},
                                                                         {384, 6, 3},
                                                                         {96, 4, 2}}) {
    shapes.push_back({Variant::kGroupedTop2Sum, E, G, keep});
  }
  int index = 0;
  for (const Shape& sh : shapes) {
    for (int K : ks) {
      for (int bias_mode = 0; bias_mode < 4; ++bias_mode) {
        RoutingParams p;
        if (!variant_params(sh.v, sh.E, K, &p)) continue;
        if (bias_mode != 0 && !variant_has_bias(sh.v)) continue;  // (top-k functions: no bias)
        if (sh.groups > 0) {
          p.num_groups = sh.groups;
          p.topk_groups = sh.topk_groups;
          if (K > p.topk_groups * (sh.E / sh.groups)) continue;
        }
        const int E = sh.E;
        PrefilterCase pc;
        pc.id = std::string("routing/prefilter/") + variant_name(sh.v) + "/E" + std::to_string(E) +
                "/G" + std::to_string(p.num_groups) + "." + std::to_string(p.topk_groups) + "/K" +
                std::to_string(K) + "/b" + std::to_string(bias_mode);
        tools::Rng rng(tools::seed_from_name(pc.id));
        p.renormalize = rng.below(4) != 0;
        p.apply_rsf_on_output = rng.below(2) != 0;
        p.num_shared_experts = static_cast<int>(rng.below(3));
        if (K + p.num_shared_experts > kMaxRoutingColumns) p.num_shared_experts = 0;
        std::vector<float> logits = tools::make_router_logits(M, E, {}, rng.next_u64());
        for (std::int64_t t = 0; t < M; ++t) {
          float* row = logits.data() + t * E;
          auto some = [&] { return row + rng.below(static_cast<std::uint64_t>(E)); };
          switch (t % 8) {
            case 0:  // the router's logits as they come
              break;
            case 1:  // a few specials
              for (int i = 0; i < 3; ++i) *some() = specials[rng.below(7)];
              break;
            case 2:  // no finite logit (the exact path's fixed answer)
              for (int e = 0; e < E; ++e) row[e] = specials[rng.below(3)];
              break;
            case 3:
              if (t % 16 == 3) {  // ties everywhere
                for (int e = 0; e < E; ++e) row[e] = static_cast<float>(rng.below(3));
              } else {  // signed zeros on top (tied: the lower index first) over negatives
                for (int e = 0; e < E; ++e) row[e] = -1.0f - static_cast<float>(rng.below(8));
                const int zeros = 1 + static_cast<int>(rng.below(12));
                for (int i = 0; i < zeros; ++i) *some() = rng.below(2) ? 0.0f : -0.0f;
              }
              break;
            case 4:
              if (t % 16 == 4) {  // near-ties far below the error bound
                for (int e = 0; e < E; ++e) {
                  row[e] = 0.25f + static_cast<float>(rng.below(16)) * 0x1p-21f;
                }
              } else {  // near-tied groups: two near-tied leaders per group, the rest far below
                // (in fp32 the groups' scores differ by less than the error bound, and few
                // candidates remain: a group stage without its margins picks wrong groups)
                const int chunk = p.num_groups > 1 ? E / p.num_groups : 32;
                for (int e = 0; e < E; ++e) {
                  row[e] = -4.0f + static_cast<float>(rng.below(64)) * 0x1p-10f;
                }
                for (int g0 = 0; g0 < E; g0 += chunk) {
                  const int n = E - g0 < chunk ? E - g0 : chunk;
                  for (int i = 0; i < 2; ++i) {
                    row[g0 + static_cast<int>(rng.below(static_cast<std::uint64_t>(n)))] =
                        0.5f + static_cast<float>(rng.below(64)) * 0x1p-21f;
                  }
                }
              }
              break;
            case 5:  // a few huge values
              for (int i = 0; i < 4; ++i) *some() = rng.below(2) ? 1e30f : -1e30f;
              break;
            case 6:  // one or two finite logits among -Inf
              for (int e = 0; e < E; ++e) row[e] = -inf;
              for (int i = 0; i < 2; ++i) *some() = static_cast<float>(rng.normal());
              break;
            default:  // NaN everywhere but a few
              for (int e = 0; e < E; ++e) row[e] = nan;
              for (int i = 0; i < 3; ++i) *some() = static_cast<float>(rng.normal());
              break;
          }
        }
        tools::RoutingProblem& pr = pc.problem;
        pr = make_problem(p, M, dtypes[index % 3], logits, bias_mode != 0, rng.next_u64());
        if (bias_mode == 2) {
          for (float& b : pr.bias) b = static_cast<float>(rng.below(4)) * 0x1p-22f;
        } else if (bias_mode == 3) {
          for (int i = 0; i < 3; ++i) {
            pr.bias[rng.below(static_cast<std::uint64_t>(E))] = specials[rng.below(3)];
          }
        }
        if (rng.below(2)) pr.id_dtype = DType::kInt64;
        if (rng.below(4) == 0) {
          pr.num_tokens_non_padded =
              static_cast<std::int32_t>(rng.below(static_cast<std::uint64_t>(M) + 1));
        }
        if (rng.below(4) == 0) {  // static map onto P = E + 5 physical slots, maybe half local
          pr.num_physical_experts = E + 5;
          for (int e = 0; e < E; ++e) pr.placement.push_back((e * 7 + 3) % (E + 5));
          if (rng.below(2)) {
            pr.num_local_experts = (E + 6) / 2;
            for (int e = 0; e < E + 5; ++e) pr.expert_map.push_back(e % 2 == 0 ? e / 2 : -1);
          }
        }
        pc.served = prefilter_serves(pr.params);
        ++index;
        if (!fn(static_cast<const PrefilterCase&>(pc))) return;
      }
    }
  }
}

// SWITCHYARD_TEST_SCALE=small shrinks the big sweeps (used under compute-sanitizer).
inline bool small_scale() {
  const char* s = std::getenv("SWITCHYARD_TEST_SCALE");
  return s && std::string(s) == "small";
}

}  // namespace switchyard::testing
