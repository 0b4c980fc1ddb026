// `switchyard run`: the main job. Today: generate router logits for a model preset and route them;
// later stages (alignment, experts, combine) join this same command.
#include <chrono>
#include <cstdio>

#include "../common/gpu_bench.h"
#include "../common/safetensors.h"
#include "args.h"
#include "commands.h"
#include "common.h"
#include "layer_stages.h"
#include "switchyard/runtime.h"

namespace switchyard::cli {

namespace {

const std::vector<FlagSpec>& run_flags() {
  static const std::vector<FlagSpec> specs = {
      {"model", true, "model preset: " + model_preset_names() + " (default deepseek-v3)"},
      {"tokens", true, "number of tokens M, 0..10000000 (default 4096)"},
      {"routing", true, "uniform | zipf:<s> | hot:<fraction> (default uniform)"},
      {"device", true, "cpu | cuda (default cuda where a GPU exists, else cpu)"},
      {"dtype", true, "logits dtype bf16 | fp16 | fp32 (default bf16)"},
      {"seed", true, "seed of the generated inputs (default 0)"},
      {"hidden", true, "hidden size H of the layer stages (default: the preset's; 0 skips them)"},
      {"block-size", true, "moe_align_block_size block, 16..256 (default 64)"},
      {"alignment", true, "rows per expert in the contiguous layout, 1..1024 (default 1)"},
      {"experts", true, "identity | reference: the CPU fused_experts oracle (default identity)"},
      {"intermediate", true,
       "expert intermediate size I for --experts reference (default: the preset's)"},
      {"weights", true,
       "a safetensors shard with the layer's Hugging Face tensors (implies reference)"},
      {"layer", true, "the layer index in --weights / --save-weights (default 0)"},
      {"save-weights", true, "write the generated weights of --experts reference to this file"},
      {"json", false, "print one JSON object instead of the summary"},
      {"help", false, "show this help"},
  };
  return specs;
}

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

int usage_error(const Status& st) {
  std::fprintf(stderr, "switchyard run: %s\n", st.message().c_str());
  return kExitUsage;
}

}  // namespace

int run_command(int argc, char** argv, int first) {
  Args args;
  if (Status st = Args::parse("switchyard run", run_flags(), argc, argv, first, &args); !st.ok()) {
    return usage_error(st);
  }
  if (args.has("help")) {
    std::printf(
        "usage: switchyard run [flags]\n\nRuns one MoE layer stage by stage on generated "
        "inputs and checks the GPU against the CPU.\nStages: routing (CPU, CUDA); align, expert "
        "layout, permute, experts (identity or the CPU reference), combine (CPU).\n\n%s",
        flags_help(run_flags()).c_str());
    return kExitOk;
  }
  const std::string model_name = args.get("model", "deepseek-v3");
  const ModelPreset* model = find_model_preset(model_name);
  if (!model) {
    return usage_error(Status::InvalidArgument("--model = " + model_name + ": expected one of " +
                                               model_preset_names()));
  }
  std::int64_t tokens = 0, seed = 0, hidden = 0, block_size = 0, alignment = 0, intermediate = 0,
               layer_index = 0;
  tools::RoutingSkew skew;
  DType dtype = DType::kBFloat16;
  Device device = Device::kCpu;
  for (Status st : {args.get_int("tokens", 4096, 0, 10'000'000, &tokens),
                    args.get_int("seed", 0, 0, INT64_MAX, &seed),
                    args.get_int("hidden", model->hidden_size, 0, 65536, &hidden),
                    args.get_int("block-size", 64, 16, 256, &block_size),
                    args.get_int("alignment", 1, 1, 1024, &alignment),
                    args.get_int("intermediate", model->intermediate_size, 1, 65536, &intermediate),
                    args.get_int("layer", 0, 0, 100000, &layer_index),
                    tools::parse_routing_skew(args.get("routing", "uniform"), &skew),
                    parse_dtype(args.get("dtype", "bf16"), &dtype)}) {
    if (!st.ok()) return usage_error(st);
  }
  if (Status st = pick_device(args.get("device", ""), &device); !st.ok()) return usage_error(st);
  const bool json = args.has("json");
  const std::string experts = args.get("experts", args.has("weights") ? "reference" : "identity");
  if (experts != "identity" && experts != "reference") {
    return usage_error(
        Status::InvalidArgument("--experts = " + experts + ": expected identity or reference"));
  }
  const bool reference = experts == "reference";
  if (!reference && (args.has("weights") || args.has("save-weights"))) {
    return usage_error(Status::InvalidArgument(
        "--experts = identity: --weights and --save-weights need --experts reference"));
  }
  if (reference && hidden == 0) {
    return usage_error(Status::InvalidArgument(
        "--hidden = 0: --experts reference needs the layer stages (--hidden > 0)"));
  }

  // Hidden states, and for real experts the weights and the router GEMM that makes the logits.
  std::vector<detail::bf16_t> x;
  if (hidden > 0) x = make_hidden_states(tokens, hidden, static_cast<std::uint64_t>(seed));
  tools::MoeLayerWeights weights;
  if (reference) {
    ModelPreset shape = *model;
    shape.hidden_size = static_cast<std::int32_t>(hidden);
    shape.intermediate_size = static_cast<std::int32_t>(intermediate);
    Status st;
    if (args.has("weights")) {
      tools::SafetensorsFile file;
      st = tools::SafetensorsFile::open(args.get("weights", ""), &file);
      if (st.ok()) st = tools::load_moe_layer(file, shape, static_cast<int>(layer_index), &weights);
    } else {
      st = make_random_weights(shape, static_cast<std::int32_t>(hidden),
                               static_cast<std::int32_t>(intermediate),
                               static_cast<std::uint64_t>(seed), std::size_t{4} << 30, &weights);
    }
    if (st.ok() && args.has("save-weights"))
      st = save_weights(args.get("save-weights", ""), weights, static_cast<int>(layer_index));
    if (!st.ok()) return usage_error(st);
  }

  auto t0 = std::chrono::steady_clock::now();
  tools::RoutingProblem pr;
  if (reference) {  // logits from the router GEMM, in float32 as the engines compute them
    pr.params = model->routing;
    pr.num_tokens = tokens;
    pr.logits_dtype = DType::kFloat32;
    pr.logits = tools::encode_floats(router_logits(x, hidden, weights), DType::kFloat32);
    pr.bias = weights.bias;
  } else {
    pr = make_preset_problem(*model, tokens, skew, static_cast<std::uint64_t>(seed), dtype);
  }
  const double gen_ms = ms_since(t0);

  t0 = std::chrono::steady_clock::now();
  tools::RoutingResult cpu;
  if (Status st = tools::run_routing_cpu(pr, &cpu); !st.ok()) {
    std::fprintf(stderr, "switchyard run: routing on cpu failed: %s\n", st.to_string().c_str());
    return kExitRuntime;
  }
  const double cpu_ms = ms_since(t0);

  double cuda_us = -1;
  std::int64_t wrong = 0;
  std::string wrong_detail;
  if (device == Device::kCuda) {
    tools::RoutingResult gpu;
    tools::GraphTiming timing;
    Status st = tools::run_routing_cuda(pr, &gpu);
    if (st.ok()) st = tools::time_routing_cuda(pr, 0, 20, 7, &timing, nullptr);
    if (!st.ok()) {
      std::fprintf(stderr, "switchyard run: routing on cuda failed: %s\n", st.to_string().c_str());
      return kExitRuntime;
    }
    cuda_us = timing.median_us_per_call;
    const tools::RoutingDiff diff = tools::compare_routing(pr, cpu, gpu);
    wrong = diff.rows_wrong;
    wrong_detail = diff.first_detail;
  }
  LayerStageReport layer;
  if (hidden > 0) {
    LayerStageOptions lo;
    lo.hidden_size = static_cast<std::int32_t>(hidden);
    lo.block_size = static_cast<std::int32_t>(block_size);
    lo.alignment = static_cast<std::int32_t>(alignment);
    lo.seed = static_cast<std::uint64_t>(seed);
    lo.weights = reference ? &weights : nullptr;
    lo.activation = model->activation;
    if (Status st = run_layer_stages_cpu(pr, cpu, x, lo, &layer); !st.ok()) {
      std::fprintf(stderr, "switchyard run: layer stages failed: %s\n", st.to_string().c_str());
      return kExitRuntime;
    }
  }
  const ExpertLoad load = expert_load(pr, cpu);
  const std::string device_desc = device == Device::kCuda ? cuda_device_description() : "cpu";

  if (json) {
    tools::JsonWriter j;
    j.begin_object();
    j.field("command", "run").field("model", model->name).field("router", describe_router(*model));
    j.field("tokens", tokens).field("routing", skew.describe()).field("dtype", dtype_name(dtype));
    j.field("seed", seed).field("device", device_name(device)).field("device_name", device_desc);
    j.key("stages").begin_array();
    j.begin_object()
        .field("stage", "generate_inputs")
        .field("backend", "host")
        .field("ms", gen_ms)
        .end_object();
    j.begin_object()
        .field("stage", "routing")
        .field("backend", "cpu")
        .field("ms", cpu_ms)
        .end_object();
    if (device == Device::kCuda) {
      j.begin_object()
          .field("stage", "routing")
          .field("backend", "cuda")
          .field("us", cuda_us)
          .field("method", "CUDA graph of 20 calls, median of 7 replays")
          .end_object();
    }
    j.end_array();
    if (hidden > 0) json_layer_stages(j, layer);
    j.key("check")
        .begin_object()
        .field("compared", device == Device::kCuda)
        .field("rows_wrong", wrong)
        .field("first_mismatch", wrong_detail)
        .end_object();
    json_expert_load(j, load);
    j.end_object();
    std::printf("%s\n", j.str().c_str());
  } else {
    std::printf("switchyard run: %s (%s)\n", model->name.c_str(), describe_router(*model).c_str());
    std::printf("  tokens %lld, logits %s, routing %s, seed %lld, device %s\n",
                static_cast<long long>(tokens), dtype_name(dtype), skew.describe().c_str(),
                static_cast<long long>(seed), device_desc.c_str());
    std::printf("stage                      time\n");
    std::printf("  generate inputs (host)   %10.3f ms\n", gen_ms);
    std::printf("  routing (cpu)            %10.3f ms\n", cpu_ms);
    if (device == Device::kCuda) {
      std::printf("  routing (cuda)           %10.2f us  (CUDA graph, median of 7 replays)\n",
                  cuda_us);
      if (wrong == 0) {
        std::printf("  check cuda vs cpu        ok: %lld rows bitwise identical\n",
                    static_cast<long long>(tokens));
      } else {
        std::printf("  check cuda vs cpu        WRONG: %lld rows differ; first: %s\n",
                    static_cast<long long>(wrong), wrong_detail.c_str());
      }
    }
    if (hidden > 0) print_layer_stages(layer);
    print_expert_load(load);
  }
  return wrong == 0 && layer.values_wrong == 0 ? kExitOk : kExitWrong;
}

}  // namespace switchyard::cli
