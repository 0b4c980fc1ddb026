#include "common.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <numeric>

#include "commands.h"
#include "switchyard/runtime.h"

namespace switchyard::cli {

Status parse_dtype(const std::string& text, DType* out) {
  if (text == "bf16" || text == "bfloat16") {
    *out = DType::kBFloat16;
  } else if (text == "fp16" || text == "float16") {
    *out = DType::kFloat16;
  } else if (text == "fp32" || text == "float32") {
    *out = DType::kFloat32;
  } else {
    return Status::InvalidArgument("--dtype = " + text + ": expected bf16, fp16 or fp32");
  }
  return Status::Ok();
}

int fail(const char* cmd, const Status& st, int code) {
  std::fprintf(stderr, "%s: %s\n", cmd, st.to_string().c_str());
  return code;
}

Status emit(const std::string& path, const std::string& text) {
  if (path.empty()) {
    std::fwrite(text.data(), 1, text.size(), stdout);
    return Status::Ok();
  }
  std::ofstream f(path);
  f << text;
  if (!f) return Status::InvalidArgument("--output = " + path + ": cannot write the file");
  return Status::Ok();
}

Status pick_device(const std::string& text, Device* out) {
  if (text.empty()) {
    *out = cuda_device_available() ? Device::kCuda : Device::kCpu;
  } else if (text == "cpu") {
    *out = Device::kCpu;
  } else if (text == "cuda") {
    if (!cuda_device_available()) {
      return Status::Unsupported(std::string("--device = cuda: no CUDA device is available") +
                                 (built_with_cuda() ? "" : " (this build has no CUDA backend)"));
    }
    *out = Device::kCuda;
  } else {
    return Status::InvalidArgument("--device = " + text + ": expected cpu or cuda");
  }
  return Status::Ok();
}

std::string describe_router(const ModelPreset& m) {
  const RoutingParams& p = m.routing;
  std::string s = "E=" + std::to_string(p.num_experts) + " K=" + std::to_string(p.top_k) + " " +
                  score_func_name(p.score_func) + (m.has_bias ? "+bias" : "");
  if (p.group_score != GroupScore::kNone) {
    s += std::string(" grouped(") + group_score_name(p.group_score) + ", " +
         std::to_string(p.num_groups) + " groups keep " + std::to_string(p.topk_groups) + ")";
  }
  if (p.renormalize) s += " renorm";
  if (p.routed_scaling_factor != 1.0f) {
    char buf[32];
    std::snprintf(buf, sizeof buf, " rsf=%g", static_cast<double>(p.routed_scaling_factor));
    s += buf;
  }
  if (p.num_shared_experts) s += " +" + std::to_string(p.num_shared_experts) + " fused shared";
  return s;
}

Status parse_format(const Args& args, std::string* out) {
  *out = args.get("format", "table");
  if (*out != "table" && *out != "json" && *out != "csv") {
    return Status::InvalidArgument("--format = " + *out + ": expected table, json or csv");
  }
  return Status::Ok();
}

Status parse_models(const Args& args, const std::string& fallback,
                    std::vector<const ModelPreset*>* out) {
  out->clear();
  const std::string list = args.get("models", fallback);
  if (list == "all") {
    for (const ModelPreset& m : model_presets()) out->push_back(&m);
    return Status::Ok();
  }
  for (const std::string& name : args.get_list("models", list)) {
    const ModelPreset* m = find_model_preset(name);
    if (!m) {
      return Status::InvalidArgument("--models item '" + name + "': expected all or " +
                                     model_preset_names());
    }
    out->push_back(m);
  }
  if (out->empty()) {
    return Status::InvalidArgument("--models = '" + list + "': expected all or at least one of " +
                                   model_preset_names());
  }
  return Status::Ok();
}

int finish_bench(const Args& args, const char* cmd, const std::string& format,
                 const std::string& table, const std::string& text, std::int64_t any_wrong) {
  const std::string output = args.get("output", "");
  if (format != "table" && !output.empty()) std::fwrite(table.data(), 1, table.size(), stdout);
  if (Status st = emit(output, text); !st.ok()) return fail(cmd, st, kExitUsage);
  return any_wrong == 0 ? kExitOk : kExitWrong;
}

std::string utc_timestamp() {
  const std::time_t t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

tools::RoutingProblem make_preset_problem(const ModelPreset& m, std::int64_t num_tokens,
                                          const tools::RoutingSkew& skew, std::uint64_t seed,
                                          DType dtype) {
  tools::RoutingProblem pr;
  pr.params = m.routing;
  pr.num_tokens = num_tokens;
  pr.logits_dtype = dtype;
  pr.logits = tools::encode_floats(
      tools::make_router_logits(num_tokens, m.routing.num_experts, skew, seed), dtype);
  if (m.has_bias) pr.bias = tools::make_correction_bias(m.routing.num_experts, seed);
  return pr;
}

ExpertLoad expert_load(const tools::RoutingProblem& pr, const tools::RoutingResult& r) {
  ExpertLoad l;
  const int E = pr.params.num_experts, K = pr.params.top_k, C = pr.columns();
  l.tokens_per_expert.assign(static_cast<std::size_t>(E), 0);
  for (std::int64_t t = 0; t < pr.num_tokens; ++t) {
    for (int k = 0; k < K; ++k) {
      const std::int64_t id = r.ids[static_cast<std::size_t>(t * C + k)];
      if (id >= 0 && id < E) ++l.tokens_per_expert[static_cast<std::size_t>(id)];
    }
  }
  const auto [mn, mx] = std::minmax_element(l.tokens_per_expert.begin(), l.tokens_per_expert.end());
  l.min = *mn;
  l.max = *mx;
  l.mean = static_cast<double>(std::accumulate(l.tokens_per_expert.begin(),
                                               l.tokens_per_expert.end(), std::int64_t{0})) /
           E;
  l.imbalance = l.mean > 0 ? static_cast<double>(l.max) / l.mean : 0.0;
  return l;
}

void print_expert_load(const ExpertLoad& l) {
  const int E = static_cast<int>(l.tokens_per_expert.size());
  std::printf("expert load (routed slots per expert, %d experts):\n", E);
  std::printf("  min %lld  mean %.1f  max %lld  imbalance (max/mean) %.2f\n",
              static_cast<long long>(l.min), l.mean, static_cast<long long>(l.max), l.imbalance);
  // Histogram: how many experts fall into each of 8 load bins between min and max.
  constexpr int kBins = 8;
  const double span = static_cast<double>(l.max - l.min) + 1.0;
  int counts[kBins] = {};
  for (std::int64_t v : l.tokens_per_expert) {
    int b = static_cast<int>(static_cast<double>(v - l.min) / span * kBins);
    counts[std::min(b, kBins - 1)]++;
  }
  const int peak = *std::max_element(counts, counts + kBins);
  for (int b = 0; b < kBins; ++b) {
    const double lo = static_cast<double>(l.min) + span * b / kBins;
    const double hi = static_cast<double>(l.min) + span * (b + 1) / kBins;
    const int bar = peak ? (counts[b] * 40 + peak - 1) / peak : 0;
    std::printf("  %8.0f..%-8.0f %5d experts %s\n", lo, hi, counts[b],
                std::string(static_cast<std::size_t>(bar), '#').c_str());
  }
  std::vector<int> order(static_cast<std::size_t>(E));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
    return l.tokens_per_expert[static_cast<std::size_t>(a)] >
           l.tokens_per_expert[static_cast<std::size_t>(b)];
  });
  std::printf("  hottest:");
  for (int i = 0; i < std::min(E, 5); ++i) {
    std::printf(
        " e%d=%lld", order[static_cast<std::size_t>(i)],
        static_cast<long long>(
            l.tokens_per_expert[static_cast<std::size_t>(order[static_cast<std::size_t>(i)])]));
  }
  std::printf("\n");
}

void json_expert_load(tools::JsonWriter& j, const ExpertLoad& l) {
  j.key("expert_load").begin_object();
  j.field("min", l.min).field("mean", l.mean).field("max", l.max).field("imbalance", l.imbalance);
  j.key("tokens_per_expert").begin_array();
  for (std::int64_t v : l.tokens_per_expert) j.value(v);
  j.end_array().end_object();
}

}  // namespace switchyard::cli
