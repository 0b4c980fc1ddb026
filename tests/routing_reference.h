// A naive double-precision routing reference written from SEMANTICS.md section 1, sharing no code
// with src/ (no exact_math.h, no pairwise sums). It ranks by double keys, so tests feed it inputs
// whose key gaps are far above float rounding, or skip rows that have near-ties.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <vector>

#include "switchyard/routing.h"

namespace switchyard::testing {

struct ReferenceRow {
  std::vector<int> ids;
  std::vector<double> weights;
  double min_gap = std::numeric_limits<double>::infinity();  // smallest key gap that decided it
};

inline ReferenceRow reference_route_row(const RoutingParams& p, const float* logits,
                                        const std::vector<float>& bias) {
  const int E = p.num_experts, K = p.top_k, S = p.num_shared_experts;
  ReferenceRow out;
  std::vector<double> x(static_cast<std::size_t>(E)), key(static_cast<std::size_t>(E)),
      score(static_cast<std::size_t>(E));
  bool any_finite = false;
  for (int e = 0; e < E; ++e) {
    double v = logits[e];
    any_finite = any_finite || std::isfinite(v);
    if (p.softcap > 0) v = p.softcap * std::tanh(v / p.softcap);
    x[static_cast<std::size_t>(e)] = v;
    double s = v;
    if (p.score_func == ScoreFunc::kSigmoid) s = 1.0 / (1.0 + std::exp(-v));
    if (p.score_func == ScoreFunc::kSqrtSoftplus) s = std::sqrt(std::log1p(std::exp(v)));
    score[static_cast<std::size_t>(e)] = s;
    key[static_cast<std::size_t>(e)] = s + (bias.empty() ? 0.0 : bias[static_cast<std::size_t>(e)]);
  }
  // Total order: NaN lowest, then by value, ties to the lower index.
  auto better = [&](int a, int b) {
    const double ka = key[static_cast<std::size_t>(a)], kb = key[static_cast<std::size_t>(b)];
    if (std::isnan(ka) != std::isnan(kb)) return std::isnan(kb);
    if (!std::isnan(ka) && ka != kb) return ka > kb;
    return a < b;
  };
  std::vector<int> allowed(static_cast<std::size_t>(E));
  std::iota(allowed.begin(), allowed.end(), 0);
  if (p.group_score != GroupScore::kNone) {
    const int size = E / p.num_groups;
    std::vector<double> gscore(static_cast<std::size_t>(p.num_groups));
    for (int g = 0; g < p.num_groups; ++g) {
      std::vector<int> members(static_cast<std::size_t>(size));
      std::iota(members.begin(), members.end(), g * size);
      std::sort(members.begin(), members.end(), better);
      double v = key[static_cast<std::size_t>(members[0])];
      if (p.group_score == GroupScore::kTop2Sum && size > 1)
        v += key[static_cast<std::size_t>(members[1])];
      gscore[static_cast<std::size_t>(g)] = v;
    }
    std::vector<int> groups(static_cast<std::size_t>(p.num_groups));
    std::iota(groups.begin(), groups.end(), 0);
    std::stable_sort(groups.begin(), groups.end(), [&](int a, int b) {
      const double ga = gscore[static_cast<std::size_t>(a)],
                   gb = gscore[static_cast<std::size_t>(b)];
      if (std::isnan(ga) != std::isnan(gb)) return std::isnan(gb);
      return !std::isnan(ga) && ga > gb;
    });
    if (p.topk_groups < p.num_groups) {
      out.min_gap = std::min(
          out.min_gap,
          std::fabs(
              gscore[static_cast<std::size_t>(
                  groups[static_cast<std::size_t>(p.topk_groups - 1)])] -
              gscore[static_cast<std::size_t>(groups[static_cast<std::size_t>(p.topk_groups)])]));
    }
    allowed.clear();
    for (int r = 0; r < p.topk_groups; ++r) {
      for (int e = groups[static_cast<std::size_t>(r)] * size;
           e < (groups[static_cast<std::size_t>(r)] + 1) * size; ++e)
        allowed.push_back(e);
    }
  }
  std::sort(allowed.begin(), allowed.end(), better);
  for (int k = 0; k + 1 < static_cast<int>(allowed.size()) && k < K; ++k) {
    out.min_gap = std::min(
        out.min_gap,
        std::fabs(key[static_cast<std::size_t>(allowed[static_cast<std::size_t>(k)])] -
                  key[static_cast<std::size_t>(allowed[static_cast<std::size_t>(k + 1)])]));
  }
  std::vector<double> w(static_cast<std::size_t>(K), 0.0);
  for (int k = 0; k < K; ++k)
    out.ids.push_back(any_finite ? allowed[static_cast<std::size_t>(k)] : k);
  if (any_finite) {
    if (p.score_func == ScoreFunc::kSoftmax) {
      double mx = -std::numeric_limits<double>::infinity(), sum = 0;
      for (double k : key)
        if (!std::isnan(k)) mx = std::max(mx, k);
      for (double k : key)
        if (!std::isnan(k)) sum += std::exp(k - mx);
      for (int k = 0; k < K; ++k)
        w[static_cast<std::size_t>(k)] =
            std::exp(key[static_cast<std::size_t>(out.ids[static_cast<std::size_t>(k)])] - mx) /
            sum;
    } else if (p.score_func == ScoreFunc::kTopkThenSoftmax) {
      double sum = 0;
      const double top = key[static_cast<std::size_t>(out.ids[0])];
      for (int k = 0; k < K; ++k)
        sum += std::exp(key[static_cast<std::size_t>(out.ids[static_cast<std::size_t>(k)])] - top);
      for (int k = 0; k < K; ++k)
        w[static_cast<std::size_t>(k)] =
            std::exp(key[static_cast<std::size_t>(out.ids[static_cast<std::size_t>(k)])] - top) /
            sum;
    } else if (p.score_func == ScoreFunc::kTopkThenSigmoid) {
      for (int k = 0; k < K; ++k)
        w[static_cast<std::size_t>(k)] =
            1.0 /
            (1.0 + std::exp(-key[static_cast<std::size_t>(out.ids[static_cast<std::size_t>(k)])]));
    } else {
      for (int k = 0; k < K; ++k)
        w[static_cast<std::size_t>(k)] =
            score[static_cast<std::size_t>(out.ids[static_cast<std::size_t>(k)])];
    }
  }
  if (p.renormalize) {
    double sum = std::accumulate(w.begin(), w.end(), 0.0);
    if (sum > 0)
      for (double& v : w) v /= sum;
  }
  const double routed_sum = std::accumulate(w.begin(), w.end(), 0.0);
  for (double& v : w) v = p.apply_rsf_on_output ? v * p.routed_scaling_factor : v;
  out.weights = w;
  for (int i = 0; i < S; ++i) {
    out.ids.push_back(E + i);
    out.weights.push_back(p.apply_rsf_on_output ? routed_sum
                                                : routed_sum / p.routed_scaling_factor);
  }
  return out;
}

}  // namespace switchyard::testing
