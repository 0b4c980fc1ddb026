#include "synthetic.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <numeric>

#include "../../src/common/check.h"
#include "../../src/common/dtype_convert.h"
#include "rng.h"

namespace switchyard::tools {

std::string RoutingSkew::describe() const {
  switch (kind) {
    case Kind::kUniform:
      return "uniform";
    case Kind::kZipf:
      return "zipf:" + std::to_string(zipf_s);
    case Kind::kHot:
      return "hot:" + std::to_string(hot_fraction);
  }
  return "?";
}

Status parse_routing_skew(const std::string& text, RoutingSkew* out) {
  RoutingSkew s;
  auto number = [&](const std::string& tail, double lo, double hi, double* v) {
    char* end = nullptr;
    *v = std::strtod(tail.c_str(), &end);
    return !tail.empty() && end && *end == '\0' && std::isfinite(*v) && *v >= lo && *v <= hi;
  };
  const auto bad = [&](const char* expected) {
    return Status::InvalidArgument("--routing = " + text + ": expected " + expected);
  };
  if (text == "uniform") {
    s.kind = RoutingSkew::Kind::kUniform;
  } else if (text.rfind("zipf:", 0) == 0) {
    s.kind = RoutingSkew::Kind::kZipf;
    if (!number(text.substr(5), 0.0, 10.0, &s.zipf_s)) return bad("zipf:<s> with 0 <= s <= 10");
  } else if (text.rfind("hot:", 0) == 0) {
    s.kind = RoutingSkew::Kind::kHot;
    if (!number(text.substr(4), 0.0, 1.0, &s.hot_fraction)) {
      return bad("hot:<fraction> with 0 <= fraction <= 1");
    }
  } else {
    return bad("uniform, zipf:<s> or hot:<fraction>");
  }
  *out = s;
  return Status::Ok();
}

std::string ExpertIdMode::describe() const {
  return balanced ? "balanced (every expert M*K/E rows, rounded)" : skew.describe();
}

Status parse_expert_id_mode(const std::string& text, ExpertIdMode* out) {
  ExpertIdMode m;
  if (text == "balanced") {
    m.balanced = true;
  } else if (text == "uniform" || text.rfind("zipf:", 0) == 0 || text.rfind("hot:", 0) == 0) {
    SY_RETURN_IF_ERROR(parse_routing_skew(text, &m.skew));
  } else {
    return Status::InvalidArgument("--routing = " + text +
                                   ": expected uniform, balanced, zipf:<s> or hot:<fraction>");
  }
  *out = m;
  return Status::Ok();
}

Status make_expert_ids(std::int64_t num_tokens, int top_k, int num_experts,
                       const ExpertIdMode& mode, std::uint64_t seed,
                       std::vector<std::int32_t>* out) {
  using detail::invalid_arg;
  const char* op = "make_expert_ids";
  if (num_tokens < 0) return invalid_arg(op, "num_tokens", num_tokens, ">= 0");
  if (num_experts < 1) return invalid_arg(op, "num_experts", num_experts, ">= 1");
  if (top_k < 1 || top_k > num_experts) {
    return invalid_arg(op, "top_k", top_k,
                       "1 <= top_k <= num_experts = " + std::to_string(num_experts));
  }
  Rng rng(seed);
  const std::int64_t slots = num_tokens * top_k;
  std::vector<std::int32_t>& ids = *out;
  ids.clear();
  ids.reserve(static_cast<std::size_t>(slots));
  if (mode.balanced) {
    const auto rot = static_cast<std::int64_t>(rng.below(static_cast<std::uint64_t>(num_experts)));
    for (std::int64_t s = 0; s < slots; ++s) {
      ids.push_back(static_cast<std::int32_t>((s + rot) % num_experts));
    }
    return Status::Ok();
  }
  if (mode.skew.kind != RoutingSkew::Kind::kUniform) {
    const std::vector<float> logits =
        make_router_logits(num_tokens, num_experts, mode.skew, rng.next_u64());
    std::vector<std::int32_t> order(static_cast<std::size_t>(num_experts));
    for (std::int64_t t = 0; t < num_tokens; ++t) {
      const float* row = logits.data() + t * num_experts;
      std::iota(order.begin(), order.end(), 0);
      std::partial_sort(order.begin(), order.begin() + top_k, order.end(),
                        [row](std::int32_t a, std::int32_t b) {
                          return row[a] > row[b] || (row[a] == row[b] && a < b);
                        });
      ids.insert(ids.end(), order.begin(), order.begin() + top_k);
    }
    return Status::Ok();
  }
  for (std::int64_t t = 0; t < num_tokens; ++t) {
    const std::size_t first = ids.size();
    while (ids.size() - first < static_cast<std::size_t>(top_k)) {
      const auto e = static_cast<std::int32_t>(rng.below(static_cast<std::uint64_t>(num_experts)));
      if (std::find(ids.begin() + static_cast<std::ptrdiff_t>(first), ids.end(), e) == ids.end()) {
        ids.push_back(e);
      }
    }
  }
  return Status::Ok();
}

std::vector<float> make_router_logits(std::int64_t num_tokens, int num_experts,
                                      const RoutingSkew& skew, std::uint64_t seed) {
  Rng rng(seed);
  // Popularity order: a seeded permutation, so the hot experts are not simply the low ids.
  std::vector<int> rank_of(static_cast<std::size_t>(num_experts));
  std::iota(rank_of.begin(), rank_of.end(), 0);
  for (int i = num_experts - 1; i > 0; --i) {
    std::swap(rank_of[static_cast<std::size_t>(i)],
              rank_of[rng.below(static_cast<std::uint64_t>(i) + 1)]);
  }
  std::vector<float> expert_bias(static_cast<std::size_t>(num_experts), 0.0f);
  int hot_expert = 0;
  for (int e = 0; e < num_experts; ++e) {
    const int r = rank_of[static_cast<std::size_t>(e)];
    if (skew.kind == RoutingSkew::Kind::kZipf) {
      expert_bias[static_cast<std::size_t>(e)] =
          static_cast<float>(-skew.zipf_s * std::log(r + 1.0));
    }
    if (r == 0) hot_expert = e;
  }
  std::vector<float> logits(static_cast<std::size_t>(num_tokens) *
                            static_cast<std::size_t>(num_experts));
  for (std::int64_t t = 0; t < num_tokens; ++t) {
    float* row = logits.data() + t * num_experts;
    for (int e = 0; e < num_experts; ++e) {
      row[e] = static_cast<float>(rng.normal()) + expert_bias[static_cast<std::size_t>(e)];
    }
    if (skew.kind == RoutingSkew::Kind::kHot && rng.uniform() < skew.hot_fraction) {
      row[hot_expert] += 8.0f;
    }
  }
  return logits;
}

std::vector<float> make_logit_skew(std::int64_t num_tokens, int num_experts,
                                   const RoutingSkew& skew, std::uint64_t seed) {
  if (skew.kind == RoutingSkew::Kind::kUniform) return {};
  Rng rng(seed ^ 0x736b6577ull);
  std::vector<int> rank_of(static_cast<std::size_t>(num_experts));
  std::iota(rank_of.begin(), rank_of.end(), 0);
  for (int i = num_experts - 1; i > 0; --i) {
    std::swap(rank_of[static_cast<std::size_t>(i)],
              rank_of[rng.below(static_cast<std::uint64_t>(i) + 1)]);
  }
  std::vector<float> out(static_cast<std::size_t>(num_tokens) *
                         static_cast<std::size_t>(num_experts));
  for (std::int64_t t = 0; t < num_tokens; ++t) {
    float* row = out.data() + t * num_experts;
    for (int e = 0; e < num_experts; ++e) {
      const int r = rank_of[static_cast<std::size_t>(e)];
      if (skew.kind == RoutingSkew::Kind::kZipf) {
        row[e] = static_cast<float>(-skew.zipf_s * std::log(r + 1.0));
      } else if (r == 0 && rng.uniform() < skew.hot_fraction) {
        row[e] = 8.0f;
      }
    }
  }
  return out;
}

std::vector<float> make_correction_bias(int num_experts, std::uint64_t seed) {
  Rng rng(seed ^ 0x5eedb1a5ull);
  std::vector<float> bias(static_cast<std::size_t>(num_experts));
  for (float& b : bias) b = static_cast<float>(rng.uniform() * 0.01 - 0.005);
  return bias;
}

std::vector<std::uint8_t> encode_floats(const std::vector<float>& values, DType dtype) {
  const std::size_t n = values.size();
  std::vector<std::uint8_t> out(n * dtype_size(dtype));
  for (std::size_t i = 0; i < n; ++i) {
    if (dtype == DType::kFloat32) {
      std::memcpy(out.data() + 4 * i, &values[i], 4);
    } else if (dtype == DType::kBFloat16) {
      const auto h = detail::float_to_bf16(values[i]);
      std::memcpy(out.data() + 2 * i, &h.bits, 2);
    } else {
      const auto h = detail::float_to_fp16(values[i]);
      std::memcpy(out.data() + 2 * i, &h.bits, 2);
    }
  }
  return out;
}

}  // namespace switchyard::tools
