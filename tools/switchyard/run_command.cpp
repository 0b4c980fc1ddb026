// `switchyard run`: the main job. One MoE layer of a model preset end to end on generated (or
// checkpoint) weights: router GEMM -> routing -> alignment -> expert layout -> permute -> experts
// -> combine (+ shared experts), on the CPU or on the GPU (layer_stages.h), checked against the
// CPU, with per-stage times, the experts' TFLOP/s and TB/s, and the expert-load histogram.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <utility>

#include "../common/gpu_bench.h"
#include "../common/safetensors.h"
#include "args.h"
#include "commands.h"
#include "common.h"
#include "layer_stages.h"
#include "switchyard/runtime.h"

namespace switchyard::cli {

namespace {

// Generated weights are scaled down by this factor unless --shrink says otherwise, so that the
// run with no arguments takes seconds on a 2-core CPU (deepseek-v3: H=448, I=128, 4096 tokens).
constexpr std::int64_t kDefaultShrink = 16;
constexpr std::size_t kMaxRandomWeightBytes = std::size_t{4} << 30;

const std::vector<FlagSpec>& run_flags() {
  static const std::vector<FlagSpec> specs = {
      {"model", true, "model preset: " + model_preset_names() + " (default deepseek-v3)"},
      {"tokens", true, "number of tokens M, 0..10000000 (default 4096)"},
      {"routing", true,
       "uniform | zipf:<s> | hot:<fraction> (default uniform; with real experts added to the "
       "router GEMM's logits)"},
      {"device", true, "cpu | cuda (default cuda where a GPU exists, else cpu)"},
      {"dtype", true, "logits dtype of --experts identity: bf16 | fp16 | fp32 (default bf16)"},
      {"seed", true, "seed of the generated inputs (default 0)"},
      {"experts", true,
       "fused: real experts, fused_experts_cpu / fused_experts_cuda (default; 'reference' is the "
       "same) | identity: y = x, the layer output is checked bit for bit"},
      {"shrink", true,
       "divide the preset's H, I and shared I by this, rounded down to a multiple of 8 (default " +
           std::to_string(kDefaultShrink) +
           " with generated weights, else 1; --hidden / --intermediate override)"},
      {"hidden", true,
       "hidden size H of the layer stages (default: the preset's / --shrink; 0 "
       "skips them)"},
      {"intermediate", true, "expert intermediate size I (default: the preset's / --shrink)"},
      {"shared-intermediate", true,
       "intermediate size of the shared experts' MLP, 0 for none (default: the preset's, scaled "
       "like I)"},
      {"block-size", true, "moe_align_block_size block, 16..256 (default 64)"},
      {"alignment", true, "rows per expert in the contiguous layout, 1..1024 (default 1)"},
      {"check-tokens", true,
       "tokens checked against the CPU oracle with real experts, 0..4096 (default 64)"},
      {"weights", true, "a safetensors shard with the layer's Hugging Face tensors"},
      {"layer", true, "the layer index in --weights / --save-weights (default 0)"},
      {"save-weights", true, "write the generated weights to this file"},
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

// A preset size divided by `shrink`, rounded down to a multiple of 8 (the GPU's row alignment).
std::int64_t shrunk(std::int64_t size, std::int64_t shrink) {
  if (shrink == 1 || size == 0) return size;
  return std::max<std::int64_t>(8, size / shrink / 8 * 8);
}

}  // namespace

int run_command(int argc, char** argv, int first) {
  Args args;
  if (Status st = Args::parse("switchyard run", run_flags(), argc, argv, first, &args); !st.ok()) {
    return usage_error(st);
  }
  if (args.has("help")) {
    std::printf(
        "usage: switchyard run [flags]\n\nRuns one MoE layer of a preset end to end and checks "
        "the GPU against the CPU:\nrouter GEMM (CPU) -> routing -> align -> expert layout -> "
        "permute -> experts -> combine\n(+ shared experts), every stage after the router GEMM on "
        "--device. Real experts by default,\nwith seeded weights at the preset's shape / "
        "--shrink.\n\n%s",
        flags_help(run_flags()).c_str());
    return kExitOk;
  }
  const std::string model_name = args.get("model", "deepseek-v3");
  const ModelPreset* model = find_model_preset(model_name);
  if (!model) {
    return usage_error(Status::InvalidArgument("--model = " + model_name + ": expected one of " +
                                               model_preset_names()));
  }
  std::string experts = args.get("experts", "fused");
  if (experts == "reference") experts = "fused";
  if (experts != "identity" && experts != "fused") {
    return usage_error(Status::InvalidArgument("--experts = " + experts +
                                               ": expected fused, identity or reference"));
  }
  const bool fused = experts == "fused";
  if (!fused && (args.has("weights") || args.has("save-weights"))) {
    return usage_error(Status::InvalidArgument(
        "--experts = identity: --weights and --save-weights need real experts (--experts fused)"));
  }
  const bool generated = fused && !args.has("weights");
  std::int64_t tokens = 0, seed = 0, hidden = 0, block_size = 0, alignment = 0, intermediate = 0,
               shared_intermediate = 0, layer_index = 0, shrink = 1, check_tokens = 0;
  tools::RoutingSkew skew;
  DType dtype = DType::kBFloat16;
  Device device = Device::kCpu;
  for (Status st : {args.get_int("tokens", 4096, 0, 10'000'000, &tokens),
                    args.get_int("seed", 0, 0, INT64_MAX, &seed),
                    args.get_int("shrink", generated ? kDefaultShrink : 1, 1, 1024, &shrink),
                    args.get_int("block-size", 64, 16, 256, &block_size),
                    args.get_int("alignment", 1, 1, 1024, &alignment),
                    args.get_int("layer", 0, 0, 100000, &layer_index),
                    args.get_int("check-tokens", 64, 0, 4096, &check_tokens),
                    tools::parse_routing_skew(args.get("routing", "uniform"), &skew),
                    parse_dtype(args.get("dtype", "bf16"), &dtype)}) {
    if (!st.ok()) return usage_error(st);
  }
  for (Status st : {args.get_int("hidden", shrunk(model->hidden_size, shrink), 0, 65536, &hidden),
                    args.get_int("intermediate", shrunk(model->intermediate_size, shrink), 1, 65536,
                                 &intermediate)}) {
    if (!st.ok()) return usage_error(st);
  }
  // The shared MLP scales with I (num_shared_experts * I for every preset).
  if (Status st = args.get_int("shared-intermediate",
                               static_cast<std::int64_t>(model->shared_intermediate_size) *
                                   intermediate / model->intermediate_size,
                               0, 65536, &shared_intermediate);
      !st.ok()) {
    return usage_error(st);
  }
  if (Status st = pick_device(args.get("device", ""), &device); !st.ok()) return usage_error(st);
  const bool json = args.has("json");
  const bool explicit_experts =
      args.has("experts") || args.has("weights") || args.has("save-weights");
  if (hidden == 0 && fused && explicit_experts) {
    return usage_error(Status::InvalidArgument(
        "--hidden = 0: --experts fused and --weights need the layer stages (--hidden > 0)"));
  }
  const bool layer_stages = hidden > 0 && tokens > 0;
  const bool real = fused && hidden > 0;
  if (real && device == Device::kCuda) {  // fused_experts_cuda: 16-byte rows
    for (const auto& [flag, value] : {std::pair<const char*, std::int64_t>{"hidden", hidden},
                                      {"intermediate", intermediate},
                                      {"shared-intermediate", shared_intermediate}}) {
      if (value % 8 != 0) {
        return usage_error(Status::InvalidArgument(std::string("--") + flag + " = " +
                                                   std::to_string(value) +
                                                   ": expected a multiple of 8 for real experts on "
                                                   "cuda (--experts identity takes any H)"));
      }
    }
  }

  // Hidden states, and for real experts the weights and the router GEMM that makes the logits.
  auto t0 = std::chrono::steady_clock::now();
  std::vector<detail::bf16_t> x;
  if (hidden > 0) x = make_hidden_states(tokens, hidden, static_cast<std::uint64_t>(seed));
  tools::MoeLayerWeights weights;
  std::string weights_desc;
  if (real) {
    ModelPreset shape = *model;
    shape.hidden_size = static_cast<std::int32_t>(hidden);
    shape.intermediate_size = static_cast<std::int32_t>(intermediate);
    shape.shared_intermediate_size = static_cast<std::int32_t>(shared_intermediate);
    Status st;
    if (args.has("weights")) {
      tools::SafetensorsFile file;
      st = tools::SafetensorsFile::open(args.get("weights", ""), &file);
      if (st.ok()) st = tools::load_moe_layer(file, shape, static_cast<int>(layer_index), &weights);
      weights_desc = "layer " + std::to_string(layer_index) + " of " + args.get("weights", "");
    } else {
      st = make_random_weights(shape, static_cast<std::int32_t>(hidden),
                               static_cast<std::int32_t>(intermediate),
                               static_cast<std::int32_t>(shared_intermediate),
                               static_cast<std::uint64_t>(seed), kMaxRandomWeightBytes, &weights);
      weights_desc = "generated (seed " + std::to_string(seed) + ")";
    }
    if (st.ok() && args.has("save-weights"))
      st = save_weights(args.get("save-weights", ""), weights, static_cast<int>(layer_index));
    if (!st.ok()) return usage_error(st);
  }
  const double gen_ms = ms_since(t0);

  t0 = std::chrono::steady_clock::now();
  tools::RoutingProblem pr;
  double router_ms = -1;
  if (real) {  // logits from the router GEMM, in float32 as the engines compute them
    pr.params = model->routing;
    pr.num_tokens = tokens;
    pr.logits_dtype = DType::kFloat32;
    std::vector<float> logits = router_logits(x, hidden, weights);
    const std::vector<float> offsets = tools::make_logit_skew(
        tokens, model->routing.num_experts, skew, static_cast<std::uint64_t>(seed));
    for (std::size_t i = 0; i < offsets.size(); ++i) logits[i] += offsets[i];
    pr.logits = tools::encode_floats(logits, DType::kFloat32);
    pr.bias = weights.bias;
    router_ms = ms_since(t0);
  } else {
    pr = make_preset_problem(*model, tokens, skew, static_cast<std::uint64_t>(seed), dtype);
  }

  t0 = std::chrono::steady_clock::now();
  tools::RoutingResult cpu;
  if (Status st = tools::run_routing_cpu(pr, &cpu); !st.ok()) {
    std::fprintf(stderr, "switchyard run: routing on cpu failed: %s\n", st.to_string().c_str());
    return kExitRuntime;
  }
  const double cpu_ms = ms_since(t0);

  LayerStageReport layer;
  if (layer_stages) {
    LayerStageOptions lo;
    lo.hidden_size = static_cast<std::int32_t>(hidden);
    lo.block_size = static_cast<std::int32_t>(block_size);
    lo.alignment = static_cast<std::int32_t>(alignment);
    lo.seed = static_cast<std::uint64_t>(seed);
    lo.weights = real ? &weights : nullptr;
    lo.activation = model->activation;
    lo.router_weight_on_input = model->router_weight_on_input;
    lo.check_tokens = check_tokens;
    const Status st = device == Device::kCuda ? run_layer_stages_cuda(pr, cpu, x, lo, &layer)
                                              : run_layer_stages_cpu(pr, cpu, x, lo, &layer);
    if (!st.ok()) {
      std::fprintf(stderr, "switchyard run: layer stages on %s failed: %s\n", device_name(device),
                   st.to_string().c_str());
      return kExitRuntime;
    }
  }

  // Routing on the GPU: inside the layer when it runs there, else alone.
  double cuda_us = -1;
  std::int64_t wrong = 0;
  std::string wrong_detail;
  if (device == Device::kCuda && layer.routing_compared) {
    cuda_us = layer.routing_us;
    wrong = layer.routing_rows_wrong;
    wrong_detail = layer.routing_first_mismatch;
  } else if (device == Device::kCuda) {
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
  const ExpertLoad load = expert_load(pr, cpu);
  const std::string device_desc = device == Device::kCuda ? cuda_device_description() : "cpu";
  const char* router_note =
      "float32, on the CPU for every --device: no GPU GEMM in the library yet";
  std::string shape_desc;
  if (real) {
    const bool shrunk_shape = shrink > 1 && !args.has("hidden") && !args.has("intermediate");
    shape_desc = "H=" + std::to_string(hidden) + " I=" + std::to_string(intermediate) +
                 (weights.shared_intermediate_size > 0
                      ? " shared I=" + std::to_string(weights.shared_intermediate_size)
                      : "") +
                 ", " + activation_name(model->activation) +
                 (model->router_weight_on_input ? ", router weight on the input" : "") +
                 ", weights " + weights_desc +
                 (shrunk_shape ? ", the preset's shape / " + std::to_string(shrink) +
                                     " (--shrink 1 for the full shape)"
                               : "");
  } else if (hidden > 0) {
    shape_desc = "H=" + std::to_string(hidden) + ", identity experts";
  }

  if (json) {
    tools::JsonWriter j;
    j.begin_object();
    j.field("command", "run").field("model", model->name).field("router", describe_router(*model));
    j.field("tokens", tokens)
        .field("routing", skew.describe())
        .field("dtype", dtype_name(pr.logits_dtype));
    j.field("seed", seed).field("device", device_name(device)).field("device_name", device_desc);
    j.field("experts", real ? "fused" : "identity").field("shrink", shrink);
    j.field("hidden_size", hidden)
        .field("intermediate_size", real ? intermediate : std::int64_t{0})
        .field("shared_intermediate_size",
               static_cast<std::int64_t>(weights.shared_intermediate_size));
    j.key("stages").begin_array();
    j.begin_object()
        .field("stage", "generate_inputs")
        .field("backend", "host")
        .field("ms", gen_ms)
        .end_object();
    if (router_ms >= 0) {
      j.begin_object()
          .field("stage", "router_gemm")
          .field("backend", "cpu")
          .field("ms", router_ms)
          .field("note", router_note)
          .end_object();
    }
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
    if (layer_stages) json_layer_stages(j, layer);
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
    std::printf("  tokens %lld, logits %s%s, routing %s, seed %lld, device %s\n",
                static_cast<long long>(tokens), dtype_name(pr.logits_dtype),
                real ? " (router GEMM)" : "", skew.describe().c_str(), static_cast<long long>(seed),
                device_desc.c_str());
    if (!shape_desc.empty()) std::printf("  layer: %s\n", shape_desc.c_str());
    std::printf("stage                      time\n");
    std::printf("  generate inputs (host)   %10.3f ms\n", gen_ms);
    if (router_ms >= 0) {
      std::printf("  router GEMM (cpu)        %10.3f ms  (%s)\n", router_ms, router_note);
    }
    std::printf("  routing (cpu)            %10.3f ms\n", cpu_ms);
    if (device == Device::kCuda && !layer.routing_compared) {
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
    if (layer_stages) {
      print_layer_stages(layer);
    } else if (hidden > 0) {
      std::printf("layer stages: skipped (no tokens)\n");
    }
    print_expert_load(load);
  }
  return wrong == 0 && layer.values_wrong == 0 ? kExitOk : kExitWrong;
}

}  // namespace switchyard::cli
