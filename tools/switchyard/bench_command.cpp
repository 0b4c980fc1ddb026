// `switchyard bench routing|ceiling`: fixed metric definitions (docs/benchmarks.md):
//   median_us     time per call: CUDA graph of 40 calls over rotating buffers (>= 2x L2),
//                 median of 7 replays / 40; CPU: median of repeated calls
//   GB/s          (bytes read + bytes written) / median_us; bytes = logits + bias + weights + ids
//   pct_ceiling   GB/s / measured streaming-read ceiling of the card (same process)
//   floor_us      bytes / ceiling; x_floor = median_us / floor_us
//   empty_us      an empty kernel timed the same way, and launched the same way (a PDL secondary,
//                 as the routing kernels are); over_empty_us = median_us - empty_us
//   wrong         rows whose ids or weight bits differ from the CPU backend
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <vector>

#include "../../src/cuda/heuristics/routing.h"
#include "../common/gpu_bench.h"
#include "args.h"
#include "commands.h"
#include "common.h"
#include "gemm_ceiling.h"
#include "switchyard/runtime.h"

namespace switchyard::cli {

namespace {

const std::vector<FlagSpec>& bench_flags() {
  static const std::vector<FlagSpec> specs = {
      {"models", true, "all or a comma list of presets (default all)"},
      {"tokens", true, "comma list of token counts (default 1,32,512,4096,32768)"},
      {"dtype", true, "logits dtype bf16 | fp16 | fp32 (default bf16)"},
      {"routing", true, "uniform | zipf:<s> | hot:<fraction> (default uniform)"},
      {"device", true, "cpu | cuda (default cuda where a GPU exists)"},
      {"format", true, "table | json | csv (default table)"},
      {"output", true, "write the results to this file instead of stdout"},
      {"ceiling-gbps", true, "use this memory ceiling instead of measuring it"},
      {"seed", true, "seed of the generated inputs (default 0)"},
      {"vals", true,
       "force the CUDA kernel layout: v > 0 lane groups with v experts per lane (1..32), -v row "
       "blocks with v experts per thread (-1, -2, -4, -8, -16), 64 lane groups of 32 lanes with "
       "the approximate pre-filter (33 <= E <= 512), 65 a thread per row (E <= 32), 66 the quad "
       "kernel, 67 the staged kernel, 68 a warp per row (E <= 32), 69 a warp per row (33 <= E <= "
       "512), 70 the packed kernel, 71 / 72 / 73 the packed kernel with 8 / 16 / 32 experts per "
       "lane (default: heuristic)"},
      {"resident", false,
       "one buffer set for all calls (inputs stay in L2, as a router GEMM's fresh output would); "
       "default: rotate over >= 2x L2 so every call reads DRAM"},
      {"help", false, "show this help"},
  };
  return specs;
}

struct Row {
  std::string model;
  int experts = 0, top_k = 0;
  std::int64_t tokens = 0;
  double median_us = 0, gbps = 0, pct_ceiling = 0, floor_us = 0, x_floor = 0, over_empty_us = 0;
  std::int64_t bytes = 0;
  std::int64_t wrong = -1;  // -1: not checked (the CPU backend is the oracle)
};

double cpu_median_us(const tools::RoutingProblem& pr) {
  std::vector<double> us;
  const int reps = pr.num_tokens >= 4096 ? 5 : 21;
  for (int i = 0; i < reps; ++i) {
    tools::RoutingResult r;
    const auto t0 = std::chrono::steady_clock::now();
    (void)tools::run_routing_cpu(pr, &r);
    us.push_back(
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(us.begin(), us.end());
  return us[us.size() / 2];
}

int bench_routing(const Args& args) {
  const char* cmd = "switchyard bench routing";
  std::vector<std::int64_t> tokens;
  std::int64_t seed = 0;
  DType dtype = DType::kBFloat16;
  Device device = Device::kCpu;
  tools::RoutingSkew skew;
  double ceiling_arg = 0;
  std::int64_t vals = 0;
  for (Status st : {args.get_int("vals", 0, -16, heuristics::kRoutingLutCode, &vals)}) {
    if (!st.ok()) return fail(cmd, st, kExitUsage);
  }
  // A layout code: 0, +-(a power of two) up to 32 / 16, 64 (the pre-filter's), 65 (the row
  // thread's), 66 (the quad kernel's), 67 (the staged kernel's), 68 / 69 (the warp kernels') or
  // 70..73 (the packed kernel's) or 74 (the LUT kernel's), the only codes above 32.
  const std::int64_t vals_abs = vals < 0 ? -vals : vals;
  if (vals != heuristics::kRoutingRowThreadCode && vals != heuristics::kRoutingQuadCode &&
      vals != heuristics::kRoutingStagedCode && vals != heuristics::kRoutingWarpCode &&
      vals != heuristics::kRoutingWarpWideCode && vals != heuristics::kRoutingLutCode &&
      !(vals >= heuristics::kRoutingPackedCode && vals <= heuristics::kRoutingPacked32Code) &&
      ((vals_abs & (vals_abs - 1)) != 0 ||
       (vals > 32 && vals != heuristics::kRoutingPrefilterCode))) {
    return fail(cmd,
                Status::InvalidArgument("--vals: got " + std::to_string(vals) +
                                        ", expected 0 or +-(a power of two): 1..32 lane groups, "
                                        "-1..-16 row blocks, 64 lane groups with the "
                                        "approximate pre-filter, 65 a thread per row, 66 the "
                                        "quad kernel, 67 the staged kernel, 68 a warp per row, "
                                        "69 a warp per row of 33..512 experts, 70..73 the "
                                        "packed kernel, or 74 the LUT kernel"),
                kExitUsage);
  }
  for (Status st : {args.get_int_list("tokens", "1,32,512,4096,32768", 0, 10'000'000, &tokens),
                    args.get_int("seed", 0, 0, INT64_MAX, &seed),
                    parse_dtype(args.get("dtype", "bf16"), &dtype),
                    tools::parse_routing_skew(args.get("routing", "uniform"), &skew),
                    pick_device(args.get("device", ""), &device),
                    args.get_double("ceiling-gbps", 0, 0, 1e6, &ceiling_arg)}) {
    if (!st.ok()) return fail(cmd, st, kExitUsage);
  }
  std::string format;
  if (Status st = parse_format(args, &format); !st.ok()) return fail(cmd, st, kExitUsage);
  std::vector<const ModelPreset*> models;
  if (Status st = parse_models(args, "all", &models); !st.ok()) {
    return fail(cmd, st, kExitUsage);
  }

  const bool cuda = device == Device::kCuda;
  tools::MemoryCeiling ceiling;
  tools::GraphTiming empty, empty_plain;
  constexpr int kCalls = 40, kReplays = 7;
  if (cuda) {
    std::fprintf(stderr, "[bench] measuring the memory ceiling and the empty-kernel launch...\n");
    if (ceiling_arg > 0) {
      ceiling.read_gbps = ceiling_arg;
    } else if (Status st = tools::measure_memory_ceiling(std::size_t{2} << 30, &ceiling);
               !st.ok()) {
      return fail(cmd, st, kExitRuntime);
    }
    if (Status st = tools::time_empty_kernel(kCalls, kReplays, &empty, /*pdl=*/true); !st.ok()) {
      return fail(cmd, st, kExitRuntime);
    }
    if (Status st = tools::time_empty_kernel(kCalls, kReplays, &empty_plain); !st.ok()) {
      return fail(cmd, st, kExitRuntime);
    }
  } else {
    ceiling.read_gbps = ceiling_arg;
  }
  const bool resident = args.has("resident");
  const std::size_t rotate =
      resident ? 0 : std::max<std::size_t>(2 * tools::device_l2_bytes(), std::size_t{64} << 20);

  std::vector<Row> rows;
  const std::size_t total = models.size() * tokens.size();
  std::size_t done = 0;
  std::int64_t any_wrong = 0;
  for (const ModelPreset* m : models) {
    for (std::int64_t M : tokens) {
      ++done;
      const tools::RoutingProblem pr =
          make_preset_problem(*m, M, skew, static_cast<std::uint64_t>(seed), dtype);
      Row r;
      r.model = m->name;
      r.experts = m->routing.num_experts;
      r.top_k = m->routing.top_k;
      r.tokens = M;
      r.bytes = static_cast<std::int64_t>(pr.input_bytes() + pr.output_bytes());
      if (cuda) {
        // A forced layout that does not exist for this E (or, the quad, staged, packed and LUT
        // kernels, this routing) falls back to the heuristic; the check against the CPU runs the
        // layout that is timed.
        const RoutingParams& rp = m->routing;
        const bool quad_serves =
            detail::routing_quad_vals(rp.num_experts, rp.top_k, rp.score_func, rp.softcap > 0.0f,
                                      rp.group_score, rp.num_groups, rp.topk_groups) > 0;
        const bool staged_serves =
            detail::routing_staged_segs(rp.num_experts, rp.top_k, rp.score_func, rp.softcap > 0.0f,
                                        rp.group_score, rp.num_groups, rp.topk_groups) > 0;
        const bool packed_serves = detail::routing_packed_serves(
            rp.num_experts, rp.top_k, rp.score_func, rp.softcap > 0.0f, rp.group_score,
            !pr.bias.empty(), static_cast<int>(dtype_size(pr.logits_dtype)));
        const bool lut_serves = detail::routing_lut_serves(
            rp.num_experts, rp.top_k, rp.score_func, rp.softcap > 0.0f, rp.group_score,
            rp.num_groups, pr.logits_dtype == DType::kBFloat16);
        const bool packed_code =
            vals >= heuristics::kRoutingPackedCode && vals <= heuristics::kRoutingPacked32Code;
        const int v =
            heuristics::routing_layout_code_valid(rp.num_experts, static_cast<int>(vals)) &&
                    (vals != heuristics::kRoutingQuadCode || quad_serves) &&
                    (vals != heuristics::kRoutingStagedCode || staged_serves) &&
                    (!packed_code || packed_serves) &&
                    (vals != heuristics::kRoutingLutCode || lut_serves)
                ? static_cast<int>(vals)
                : 0;
        tools::RoutingResult ref, got;
        Status st = tools::run_routing_cpu(pr, &ref);
        if (st.ok()) st = tools::run_routing_cuda(pr, &got, v);
        tools::GraphTiming t;
        if (st.ok()) st = tools::time_routing_cuda(pr, rotate, kCalls, kReplays, &t, nullptr, v);
        if (!st.ok()) return fail(cmd, st, kExitRuntime);
        r.wrong = tools::compare_routing(pr, ref, got).rows_wrong;
        any_wrong += r.wrong;
        r.median_us = t.median_us_per_call;
        r.over_empty_us = r.median_us - empty.median_us_per_call;
      } else {
        r.median_us = cpu_median_us(pr);
      }
      r.gbps = static_cast<double>(r.bytes) / (r.median_us * 1e3);
      if (ceiling.read_gbps > 0) {
        r.pct_ceiling = 100.0 * r.gbps / ceiling.read_gbps;
        r.floor_us = static_cast<double>(r.bytes) / (ceiling.read_gbps * 1e3);
        r.x_floor = r.median_us / r.floor_us;
      }
      std::fprintf(stderr, "[%zu/%zu] %-18s M=%-7lld %10.2f us %8.1f GB/s wrong=%lld\n", done,
                   total, m->name.c_str(), static_cast<long long>(M), r.median_us, r.gbps,
                   static_cast<long long>(r.wrong));
      rows.push_back(r);
    }
  }

  const std::string card = cuda ? cuda_device_description() : "cpu";
  std::string text;
  if (format == "json") {
    tools::JsonWriter j;
    j.begin_object().field("bench", "routing").field("card", card).field("date", utc_timestamp());
    j.field("dtype", dtype_name(dtype)).field("routing", skew.describe()).field("seed", seed);
    j.field("vals_per_lane", vals == 0 ? std::string("heuristic") : std::to_string(vals));
    j.field("method", !cuda ? "CPU: median of repeated calls"
                      : resident
                          ? "CUDA graph of 40 calls on one buffer set (L2-resident inputs), "
                            "median of 7 replays / 40; bytes = logits + bias + weights + ids"
                          : "CUDA graph of 40 calls over rotating buffers (>= 2x L2), median "
                            "of 7 replays / 40; bytes = logits + bias + weights + ids");
    j.field("ceiling_read_gbps", ceiling.read_gbps).field("ceiling_copy_gbps", ceiling.copy_gbps);
    j.field("empty_kernel_us", empty.median_us_per_call)
        .field("empty_kernel_launch",
               "PDL secondary, as the routing kernels (plain under SWITCHYARD_PDL=0)")
        .field("empty_plain_kernel_us", empty_plain.median_us_per_call);
    j.key("rows").begin_array();
    for (const Row& r : rows) {
      j.begin_object().field("model", r.model).field("E", r.experts).field("K", r.top_k);
      j.field("tokens", r.tokens).field("median_us", r.median_us).field("bytes", r.bytes);
      j.field("gbps", r.gbps).field("pct_ceiling", r.pct_ceiling).field("floor_us", r.floor_us);
      j.field("x_floor", r.x_floor).field("over_empty_us", r.over_empty_us).field("wrong", r.wrong);
      j.end_object();
    }
    j.end_array().end_object();
    text = j.str() + "\n";
  } else if (format == "csv") {
    text =
        "model,E,K,tokens,median_us,empty_us,over_empty_us,gbps,pct_ceiling,floor_us,x_floor,"
        "wrong\n";
    char buf[256];
    for (const Row& r : rows) {
      std::snprintf(buf, sizeof buf, "%s,%d,%d,%lld,%.3f,%.3f,%.3f,%.1f,%.1f,%.3f,%.2f,%lld\n",
                    r.model.c_str(), r.experts, r.top_k, static_cast<long long>(r.tokens),
                    r.median_us, empty.median_us_per_call, r.over_empty_us, r.gbps, r.pct_ceiling,
                    r.floor_us, r.x_floor, static_cast<long long>(r.wrong));
      text += buf;
    }
  }
  std::string table;
  {
    char buf[256];
    std::snprintf(buf, sizeof buf,
                  "routing bench on %s, logits %s, %s; ceiling %.0f GB/s; empty kernel %.2f us "
                  "(PDL, as routing; plain %.2f)\n",
                  card.c_str(), dtype_name(dtype), skew.describe().c_str(), ceiling.read_gbps,
                  empty.median_us_per_call, empty_plain.median_us_per_call);
    table = buf;
    table +=
        "| model | E | K | tokens | median us | over empty us | GB/s | % ceiling | floor us | x "
        "floor | wrong |\n";
    table += "|---|---|---|---|---|---|---|---|---|---|---|\n";
    for (const Row& r : rows) {
      std::snprintf(buf, sizeof buf,
                    "| %s | %d | %d | %lld | %.2f | %.2f | %.0f | %.1f | %.2f | %.2f | %s |\n",
                    r.model.c_str(), r.experts, r.top_k, static_cast<long long>(r.tokens),
                    r.median_us, r.over_empty_us, r.gbps, r.pct_ceiling, r.floor_us, r.x_floor,
                    r.wrong < 0 ? "-" : std::to_string(r.wrong).c_str());
      table += buf;
    }
  }
  // The table always goes to stdout; --output receives the chosen format (table, json or csv).
  return finish_bench(args, cmd, format, table, format == "table" ? table : text, any_wrong);
}

int bench_ceiling(const Args& args) {
  const char* cmd = "switchyard bench ceiling";
  std::int64_t mib = 0;
  if (Status st = args.get_int("bytes-mib", 2048, 16, 65536, &mib); !st.ok())
    return fail(cmd, st, kExitUsage);
  if (!cuda_device_available()) {
    return fail(cmd, Status::Unsupported("no CUDA device is available"), kExitRuntime);
  }
  tools::MemoryCeiling c;
  tools::GraphTiming empty;
  if (Status st = tools::measure_memory_ceiling(static_cast<std::size_t>(mib) << 20, &c);
      !st.ok()) {
    return fail(cmd, st, kExitRuntime);
  }
  if (Status st = tools::time_empty_kernel(40, 7, &empty); !st.ok())
    return fail(cmd, st, kExitRuntime);
  GemmCeiling gemm;  // cuBLAS dense bf16 GEMM, 8192^3
  if (Status st = measure_gemm_ceiling(8192, &gemm); !st.ok()) return fail(cmd, st, kExitRuntime);
  tools::JsonWriter j;
  j.begin_object().field("bench", "ceiling").field("card", cuda_device_description());
  j.field("date", utc_timestamp()).field("bytes", static_cast<std::int64_t>(c.bytes));
  j.field("read_gbps", c.read_gbps).field("write_gbps", c.write_gbps);
  j.field("copy_gbps", c.copy_gbps);
  j.field("empty_kernel_us", empty.median_us_per_call);
  j.field("gemm_bf16_n", gemm.n).field("gemm_bf16_ms", gemm.median_ms);
  j.field("gemm_bf16_tflops", gemm.tflops).end_object();
  const std::string text = j.str() + "\n";
  if (Status st = emit(args.get("output", ""), text); !st.ok()) return fail(cmd, st, kExitUsage);
  return kExitOk;
}

}  // namespace

int bench_command(int argc, char** argv, int first) {
  const std::string usage =
      "usage: switchyard bench routing [flags]   sweep token counts x presets\n"
      "       switchyard bench align|permute|combine [flags]   sweep tokens x presets at the "
      "model's shape\n"
      "       switchyard bench experts [flags]   fused MoE forward: tokens x presets\n"
      "       switchyard bench ceiling [--bytes-mib N] [--output FILE]   memory and GEMM "
      "ceilings\n";
  if (first >= argc) {
    std::fprintf(stderr, "switchyard bench: missing routine\n%s", usage.c_str());
    return kExitUsage;
  }
  const std::string routine = argv[first];
  if (routine == "--help" || routine == "help") {
    std::printf("%s\nflags of bench routing:\n%s", usage.c_str(),
                flags_help(bench_flags()).c_str());
    return kExitOk;
  }
  if (routine == "routing") {
    Args args;
    if (Status st =
            Args::parse("switchyard bench routing", bench_flags(), argc, argv, first + 1, &args);
        !st.ok()) {
      std::fprintf(stderr, "%s\n", st.message().c_str());
      return kExitUsage;
    }
    if (args.has("help")) {
      std::printf("%s\nflags:\n%s", usage.c_str(), flags_help(bench_flags()).c_str());
      return kExitOk;
    }
    return bench_routing(args);
  }
  if (routine == "align" || routine == "permute" || routine == "combine")
    return bench_layer_op(routine, argc, argv, first + 1);
  if (routine == "experts") return bench_experts(argc, argv, first + 1);
  if (routine == "ceiling") {
    static const std::vector<FlagSpec> specs = {
        {"bytes-mib", true, "buffer size in MiB (default 2048)"},
        {"output", true, "write the JSON to this file"}};
    Args args;
    if (Status st = Args::parse("switchyard bench ceiling", specs, argc, argv, first + 1, &args);
        !st.ok()) {
      std::fprintf(stderr, "%s\n", st.message().c_str());
      return kExitUsage;
    }
    return bench_ceiling(args);
  }
  std::fprintf(stderr,
               "switchyard bench: unknown routine '%s': expected routing, align, permute, combine, "
               "experts or ceiling\n%s",
               routine.c_str(), usage.c_str());
  return kExitUsage;
}

}  // namespace switchyard::cli
