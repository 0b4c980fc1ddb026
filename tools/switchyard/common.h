// Pieces shared by the CLI commands.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "../common/json.h"
#include "../common/routing_harness.h"
#include "../common/synthetic.h"
#include "args.h"
#include "switchyard/models.h"

namespace switchyard::cli {

Status parse_dtype(const std::string& text, DType* out);  // bf16|fp16|fp32
// Prints "<cmd>: <status>" to stderr and returns `code`.
int fail(const char* cmd, const Status& st, int code);
// Writes `text` to `path`, or to stdout when `path` is empty.
Status emit(const std::string& path, const std::string& text);
// "" -> cuda when a GPU is visible, else cpu. "cuda" without a GPU is an error.
Status pick_device(const std::string& text, Device* out);
std::string describe_router(const ModelPreset& m);
// --format: table (default), json or csv.
Status parse_format(const Args& args, std::string* out);
// --models: "all" or a comma list of preset names (`fallback` when the flag is absent). An
// unknown name or an empty list is an error naming the flag.
Status parse_models(const Args& args, const std::string& fallback,
                    std::vector<const ModelPreset*>* out);
std::string utc_timestamp();  // 2026-11-27T23:59:00Z
// The end of every bench: `text` (the chosen --format) to --output or stdout; the table also to
// stdout when --output receives another format. Returns the exit code (kExitWrong on any wrong).
int finish_bench(const Args& args, const char* cmd, const std::string& format,
                 const std::string& table, const std::string& text, std::int64_t any_wrong);

// The routing problem of a preset: synthetic skewed logits (and bias where the model has one).
tools::RoutingProblem make_preset_problem(const ModelPreset& m, std::int64_t num_tokens,
                                          const tools::RoutingSkew& skew, std::uint64_t seed,
                                          DType dtype);

struct ExpertLoad {
  std::vector<std::int64_t> tokens_per_expert;  // routed columns only
  std::int64_t min = 0, max = 0;
  double mean = 0, imbalance = 0;  // imbalance = max / mean
};
ExpertLoad expert_load(const tools::RoutingProblem& pr, const tools::RoutingResult& r);
void print_expert_load(const ExpertLoad& load);
void json_expert_load(tools::JsonWriter& j, const ExpertLoad& load);

}  // namespace switchyard::cli
