// `switchyard bench experts`: the fused MoE forward (fused_experts_cuda, heuristic plan) at the
// presets' shapes over a token sweep, with seeded random weights (generated on the device) and
// random routing (--routing: K distinct experts per token, uniform by default; balanced gives every
// expert the same row count, zipf / hot skew it). Metric definitions (docs/benchmarks.md):
//   median_us   CUDA graph of `calls` back-to-back calls rotating over 4 routings (calls chosen so
//               that a replay takes ~20 ms, 1..20), median of 5 replays / calls
//   hit_bytes   bytes of the w13 and w2 of the experts the routing hits (mean over the calls)
//   tbps        hit_bytes / median_us: the decode bar is pct_mem >= 85
//   tflops      2 * routed slots * (N13 * H + H * I) / median_us (the experts' GEMM flops)
//   pct_mem     tbps / the card's streaming-read ceiling, measured in the same process
//   pct_gemm    tflops / the card's cuBLAS dense bf16 GEMM ceiling (8192^3), same process
//   wrong       elements of the first --check-tokens tokens' outputs out of tolerance against
//               fused_experts_cpu on the same inputs (the tests' metric); -1: not checked
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "../../src/common/check.h"
#include "../../src/common/dtype_convert.h"
#include "../../src/cuda/experts/experts_internal.h"
#include "../../src/cuda/heuristics/experts.h"
#include "../common/device_fill.h"
#include "../common/gpu_bench.h"
#include "../common/rng.h"
#include "../common/synthetic.h"
#include "args.h"
#include "commands.h"
#include "common.h"
#include "gemm_ceiling.h"
#include "switchyard/experts.h"
#include "switchyard/runtime.h"

namespace switchyard::cli {

namespace {

constexpr int kRotations = 4;
constexpr int kReplays = 5;
constexpr double kTargetReplayMs = 20.0;

const std::vector<FlagSpec>& experts_flags() {
  static const std::vector<FlagSpec> specs = {
      {"models", true,
       "all or a comma list of presets (default mixtral-8x7b,qwen3-30b-a3b,deepseek-v3)"},
      {"tokens", true,
       "comma list of token counts (default 1,2,4,8,16,32,64,128,256,512,1024,2048,4096,8192,"
       "16384)"},
      {"dtype", true, "bf16 | fp16 (default bf16)"},
      {"check-tokens", true, "tokens per case checked against the CPU oracle (default 1; 0: off)"},
      {"plan", true,
       "auto (the heuristic, default) | decode:1|2|4|8 (8-row tiles per work item) | "
       "decode:1:narrow|deep|narrow3 (one tile, that GEMM2 instance) | "
       "decode:1:slots|layout|fused (one tile, slot items or the layout kernel, or at one or two "
       "tokens the one-kernel path where it fits; both kinds of suffix combine, e.g. "
       "decode:1:slots:deep) "
       "| "
       "gemm:64|128|64:single|128:single[:rounded][:unfused] "
       "(grouped GEMM row tile; rounded: GEMM1 out in the input dtype; unfused: the float32 "
       "GEMM1 and the activation kernel even with interleaved w13): force a path, to measure "
       "the heuristic's choices (the 64-row tile keeps the heuristic's tile scheduler for the "
       "token count, /counter in the path; SWITCHYARD_GEMM_DYNAMIC=0|2 forces it off|on)"},
      {"routing", true,
       "uniform | balanced | zipf:<s> | hot:<fraction> (default uniform): K distinct experts per "
       "token drawn uniformly, the same rows for every expert, or skewed router logits' top K"},
      {"w13", true,
       "interleaved | halves (default interleaved): gate/up rows of w13 interleaved (packed once "
       "at load time; the grouped-GEMM path fuses the activation into GEMM1) or SGLang's halves"},
      {"format", true, "table | json | csv (default table)"},
      {"output", true, "write the results to this file instead of stdout"},
      {"ceiling-gbps", true, "use this memory ceiling instead of measuring it"},
      {"gemm-tflops", true, "use this dense GEMM ceiling instead of measuring it"},
      {"seed", true, "seed of the generated inputs (default 0)"},
      {"help", false, "show this help"},
  };
  return specs;
}

struct Row {
  std::string model, path;
  int experts = 0, top_k = 0, hidden = 0, inter = 0;
  std::int64_t tokens = 0, calls = 0;
  double experts_hit = 0, hit_bytes = 0, flops = 0;
  double median_us = 0, tbps = 0, tflops = 0, pct_mem = 0, pct_gemm = 0;
  std::int64_t wrong = -1;
};

// K distinct experts per token (tools::make_expert_ids); weights in (0.05, 1.05).
struct Routing {
  std::vector<std::int32_t> ids;
  std::vector<float> weights;
  std::set<std::int32_t> hit;
};

Status make_routing(std::int64_t M, int K, int E, const tools::ExpertIdMode& mode,
                    std::uint64_t seed, Routing* r) {
  SY_RETURN_IF_ERROR(tools::make_expert_ids(M, K, E, mode, seed, &r->ids));
  tools::Rng rng(seed ^ 0x9e3779b97f4a7c15ULL);
  r->weights.clear();
  r->weights.reserve(r->ids.size());
  r->hit.clear();
  for (std::int32_t e : r->ids) {
    r->hit.insert(e);
    r->weights.push_back(static_cast<float>(0.05 + rng.uniform()));
  }
  return Status::Ok();
}

// --plan: "auto" leaves the heuristic's plan; "decode:T", "decode:1:narrow|deep|narrow3"
// (GEMM2's one-tile instance), "decode:1:slots" / "decode:1:layout" (slot items or not) /
// "decode:1:fused" (slot items, and at one or two tokens the one-kernel path where it fits; the two
// kinds of suffix combine: "decode:1:slots:deep"), "gemm:R" or "gemm:R:rounded" force one.
Status parse_plan(const std::string& text, heuristics::ExpertsPlan* plan, bool* force) {
  *force = text != "auto";
  if (!*force) return Status::Ok();
  if (text == "decode:1" || text == "decode:2" || text == "decode:4" || text == "decode:8") {
    plan->path = heuristics::ExpertsPath::kDecode;
    plan->decode_token_tiles = text.back() - '0';
    return Status::Ok();
  }
  using heuristics::DecodeGemm2;
  if (text.rfind("decode:1:", 0) == 0) {  // one tile with up to one suffix of each kind
    bool items = false, instance = false, ok = text.size() > 9;
    std::string rest = text.substr(9);
    while (ok && !rest.empty()) {
      const std::size_t colon = rest.find(':');
      const std::string part = rest.substr(0, colon);
      rest = colon == std::string::npos ? "" : rest.substr(colon + 1);
      ok = colon == std::string::npos || !rest.empty();
      if (part == "slots" || part == "layout" || part == "fused") {
        ok = ok && !items;
        items = true;
        plan->decode_slot_items = part != "layout";
        plan->decode_fused_token = part == "fused";
        continue;
      }
      bool found = false;
      for (DecodeGemm2 v : {DecodeGemm2::kNarrow, DecodeGemm2::kDeep, DecodeGemm2::kNarrow3}) {
        if (part == heuristics::decode_gemm2_name(v)) {
          found = true;
          plan->decode_gemm2 = v;
        }
      }
      ok = ok && found && !instance;
      instance = true;
    }
    if (ok) {
      plan->path = heuristics::ExpertsPath::kDecode;
      plan->decode_token_tiles = 1;
      return Status::Ok();
    }
  }
  // gemm:T[+T2][:rounded][:unfused]: T for GEMM1 (and GEMM2 unless T2 is given).
  std::string body = text;
  const auto strip = [&body](const std::string& suffix) {
    if (body.size() > suffix.size() &&
        body.compare(body.size() - suffix.size(), suffix.size(), suffix) == 0) {
      body.resize(body.size() - suffix.size());
      return true;
    }
    return false;
  };
  const bool unfused = strip(":unfused");
  const bool rounded = strip(":rounded");
  if (body.rfind("gemm:", 0) == 0) {
    const std::string tiles = body.substr(5);
    const std::size_t plus = tiles.find('+');
    const auto tile_of = [](const std::string& name, heuristics::GemmTile* t) {
      for (heuristics::GemmTile tile : heuristics::kAllGemmTiles) {
        if (name == heuristics::gemm_tile_plan_name(tile)) {
          *t = tile;
          return true;
        }
      }
      return false;
    };
    heuristics::GemmTile t1, t2;
    if (tile_of(tiles.substr(0, plus), &t1) &&
        (plus == std::string::npos ? (t2 = t1, true) : tile_of(tiles.substr(plus + 1), &t2))) {
      plan->path = heuristics::ExpertsPath::kGroupedGemm;
      plan->gemm_tile = t1;
      plan->gemm2_tile = t2;
      plan->gemm1_rounded = rounded;
      plan->gemm1_unfused = unfused;
      return Status::Ok();
    }
  }
  return Status::InvalidArgument(
      "--plan = " + text +
      ": expected auto, decode:1|2|4|8, decode:1[:slots|layout|fused][:narrow|deep|narrow3] or "
      "gemm:T[+T2][:rounded][:unfused] with tiles T, T2 (GEMM1, GEMM2) of "
      "64|128|64:single|128:single");
}

struct ModelBuffers {
  tools::DeviceBuffer w13, w2, x, out, workspace;
  std::size_t workspace_bytes = 0;
  std::uint64_t seed_w13 = 0, seed_w2 = 0, seed_x = 0;
  float scale13 = 0, scale2 = 0;
};

ExpertsParams params_of(const ModelPreset& m, bool w13_interleaved) {
  ExpertsParams p;
  p.w13_interleaved = w13_interleaved;
  p.num_experts = m.routing.num_experts;
  p.hidden_size = m.hidden_size;
  p.intermediate_size = m.intermediate_size;
  p.activation = m.activation;
  p.routed_scaling_factor = m.routing.routed_scaling_factor;
  return p;
}

std::int64_t rows13(const ExpertsParams& p) {
  return p.activation == Activation::kRelu2 ? p.intermediate_size : 2LL * p.intermediate_size;
}

float decode16(const std::uint8_t* p, DType dt) {
  const auto bits = static_cast<std::uint16_t>(p[0] | (p[1] << 8));
  return dt == DType::kBFloat16 ? detail::to_float(detail::bf16_t{bits})
                                : detail::to_float(detail::fp16_t{bits});
}

// The first `check_tokens` tokens on the CPU oracle, with only the experts they hit (their weights
// regenerated on the host from the same seeds); returns the elements out of tolerance.
Status check_sample(const ModelPreset& m, const ExpertsParams& p, DType dt, const ModelBuffers& b,
                    const Routing& r, std::int64_t check_tokens, std::int64_t* wrong) {
  const std::int64_t H = p.hidden_size, I = p.intermediate_size, N13 = rows13(p);
  const int K = m.routing.top_k;
  std::vector<std::int32_t> experts;  // local index -> global expert
  std::vector<std::int32_t> ids(static_cast<std::size_t>(check_tokens * K));
  for (std::size_t s = 0; s < ids.size(); ++s) {
    const std::int32_t e = r.ids[s];
    auto it = std::find(experts.begin(), experts.end(), e);
    if (it == experts.end()) {
      experts.push_back(e);
      it = experts.end() - 1;
    }
    ids[s] = static_cast<std::int32_t>(it - experts.begin());
  }
  const auto E = static_cast<std::int64_t>(experts.size());
  const std::size_t n13 = static_cast<std::size_t>(N13 * H), n2 = static_cast<std::size_t>(H * I);
  std::vector<std::uint8_t> w13(static_cast<std::size_t>(E) * n13 * 2),
      w2(static_cast<std::size_t>(E) * n2 * 2);
  // Regenerate the hit experts' weights in 4M-element pieces on every core.
  struct Piece {
    std::uint8_t* dst;
    std::size_t first, count;
    float scale;
    std::uint64_t seed;
  };
  std::vector<Piece> pieces;
  constexpr std::size_t kPiece = std::size_t{4} << 20;
  for (std::int64_t l = 0; l < E; ++l) {
    const auto g = static_cast<std::size_t>(experts[static_cast<std::size_t>(l)]);
    const auto li = static_cast<std::size_t>(l);
    for (std::size_t i = 0; i < n13; i += kPiece) {
      pieces.push_back({w13.data() + (li * n13 + i) * 2, g * n13 + i, std::min(kPiece, n13 - i),
                        b.scale13, b.seed_w13});
    }
    for (std::size_t i = 0; i < n2; i += kPiece) {
      pieces.push_back({w2.data() + (li * n2 + i) * 2, g * n2 + i, std::min(kPiece, n2 - i),
                        b.scale2, b.seed_w2});
    }
  }
  std::atomic<std::size_t> next{0};
  const unsigned workers = std::max(1u, std::min(16u, std::thread::hardware_concurrency()));
  std::vector<std::thread> pool;
  for (unsigned w = 0; w < workers; ++w) {
    pool.emplace_back([&] {
      for (std::size_t i = next++; i < pieces.size(); i = next++) {
        const Piece& pc = pieces[i];
        const auto enc = tools::encode_floats(
            tools::random_fill_values(dt, pc.first, pc.count, pc.scale, pc.seed), dt);
        std::copy(enc.begin(), enc.end(), pc.dst);
      }
    });
  }
  for (std::thread& t : pool) t.join();
  const auto x = tools::encode_floats(
      tools::random_fill_values(dt, 0, static_cast<std::size_t>(check_tokens * H), 1.0f, b.seed_x),
      dt);
  std::vector<float> weights(r.weights.begin(),
                             r.weights.begin() + static_cast<std::ptrdiff_t>(check_tokens * K));
  std::vector<std::uint8_t> cpu(static_cast<std::size_t>(check_tokens * H) * 2), gpu(cpu.size());
  SY_RETURN_IF_ERROR(tools::copy_to_host(gpu.data(), b.out.get(), gpu.size()));
  ExpertsParams lp = p;
  lp.num_experts = static_cast<std::int32_t>(E);
  ExpertsArgs a;
  a.x = TensorView::contiguous(const_cast<std::uint8_t*>(x.data()), dt, {check_tokens, H});
  a.w13 = TensorView::contiguous(w13.data(), dt, {E, N13, H});
  a.w2 = TensorView::contiguous(w2.data(), dt, {E, H, I});
  a.top_k_ids = TensorView::contiguous(ids.data(), DType::kInt32, {check_tokens, K});
  a.top_k_weights = TensorView::contiguous(weights.data(), DType::kFloat32, {check_tokens, K});
  a.out = TensorView::contiguous(cpu.data(), dt, {check_tokens, H});
  SY_RETURN_IF_ERROR(fused_experts_cpu(lp, a));
  const double tol = dt == DType::kBFloat16 ? 1.0 / 64 : 1.0 / 256;
  double scale = 0;
  for (std::size_t i = 0; i < cpu.size() / 2; ++i)
    scale = std::max(scale, static_cast<double>(std::fabs(decode16(&cpu[2 * i], dt))));
  *wrong = 0;
  for (std::size_t i = 0; i < cpu.size() / 2; ++i) {
    const double c = decode16(&cpu[2 * i], dt), g = decode16(&gpu[2 * i], dt);
    if (!(std::isfinite(g) && std::fabs(g - c) <= tol * (std::fabs(c) + scale))) ++*wrong;
  }
  return Status::Ok();
}

int bench_experts_main(const Args& args) {
  const char* cmd = "switchyard bench experts";
  std::vector<std::int64_t> tokens;
  std::int64_t seed = 0, check_tokens = 1;
  DType dtype = DType::kBFloat16;
  double ceiling_arg = 0, gemm_arg = 0;
  for (Status st :
       {args.get_int_list("tokens", "1,2,4,8,16,32,64,128,256,512,1024,2048,4096,8192,16384", 1,
                          1 << 20, &tokens),
        args.get_int("seed", 0, 0, INT64_MAX, &seed),
        args.get_int("check-tokens", 1, 0, 64, &check_tokens),
        args.get_double("ceiling-gbps", 0, 0, 1e6, &ceiling_arg),
        args.get_double("gemm-tflops", 0, 0, 1e6, &gemm_arg)}) {
    if (!st.ok()) return fail(cmd, st, kExitUsage);
  }
  const std::string dt_text = args.get("dtype", "bf16");
  if (dt_text == "bf16") {
    dtype = DType::kBFloat16;
  } else if (dt_text == "fp16") {
    dtype = DType::kFloat16;
  } else {
    return fail(cmd, Status::InvalidArgument("--dtype = " + dt_text + ": expected bf16 or fp16"),
                kExitUsage);
  }
  const std::string w13_text = args.get("w13", "interleaved");
  if (w13_text != "interleaved" && w13_text != "halves") {
    return fail(cmd,
                Status::InvalidArgument("--w13 = " + w13_text + ": expected interleaved or halves"),
                kExitUsage);
  }
  const bool w13_interleaved = w13_text == "interleaved";
  tools::ExpertIdMode routing_mode;
  if (Status st = tools::parse_expert_id_mode(args.get("routing", "uniform"), &routing_mode);
      !st.ok()) {
    return fail(cmd, st, kExitUsage);
  }
  std::string format;
  if (Status st = parse_format(args, &format); !st.ok()) return fail(cmd, st, kExitUsage);
  heuristics::ExpertsPlan forced;
  bool force = false;
  if (Status st = parse_plan(args.get("plan", "auto"), &forced, &force); !st.ok()) {
    return fail(cmd, st, kExitUsage);
  }
  std::vector<const ModelPreset*> models;
  if (Status st = parse_models(args, "mixtral-8x7b,qwen3-30b-a3b,deepseek-v3", &models); !st.ok()) {
    return fail(cmd, st, kExitUsage);
  }
  if (!cuda_device_available()) {
    return fail(cmd, Status::Unsupported("no CUDA device is available (the bench is GPU-only)"),
                kExitRuntime);
  }

  tools::MemoryCeiling mem;
  GemmCeiling gemm;
  std::fprintf(stderr, "[bench] measuring the memory and dense-GEMM ceilings...\n");
  if (ceiling_arg > 0) {
    mem.read_gbps = ceiling_arg;
  } else if (Status st = tools::measure_memory_ceiling(std::size_t{2} << 30, &mem); !st.ok()) {
    return fail(cmd, st, kExitRuntime);
  }
  if (gemm_arg > 0) {
    gemm.tflops = gemm_arg;
  } else if (Status st = measure_gemm_ceiling(8192, &gemm); !st.ok()) {
    return fail(cmd, st, kExitRuntime);
  }
  std::fprintf(stderr, "[bench] memory ceiling %.0f GB/s, dense bf16 GEMM ceiling %.0f TFLOP/s\n",
               mem.read_gbps, gemm.tflops);

  const std::int64_t max_tokens = *std::max_element(tokens.begin(), tokens.end());
  std::vector<Row> rows;
  std::int64_t any_wrong = 0;
  std::size_t done = 0;
  const std::size_t total = models.size() * tokens.size();
  for (const ModelPreset* m : models) {
    const ExpertsParams p = params_of(*m, w13_interleaved);
    const int E = p.num_experts, K = m->routing.top_k;
    const std::int64_t H = p.hidden_size, I = p.intermediate_size, N13 = rows13(p);
    const std::size_t esz = dtype_size(dtype);
    const double expert_bytes =
        static_cast<double>((N13 * H + H * I) * static_cast<std::int64_t>(esz));
    ModelBuffers b;
    b.seed_w13 = tools::seed_from_name(m->name + "/w13", static_cast<std::uint64_t>(seed));
    b.seed_w2 = tools::seed_from_name(m->name + "/w2", static_cast<std::uint64_t>(seed));
    b.seed_x = tools::seed_from_name(m->name + "/x", static_cast<std::uint64_t>(seed));
    b.scale13 = static_cast<float>(2.0 / std::sqrt(static_cast<double>(H)));
    b.scale2 = static_cast<float>(2.0 / std::sqrt(static_cast<double>(I)));
    const std::size_t n13 = static_cast<std::size_t>(E * N13 * H),
                      n2 = static_cast<std::size_t>(E * H * I),
                      nx = static_cast<std::size_t>(max_tokens * H);
    std::fprintf(stderr, "[bench] %s: generating %.1f GB of weights on the device...\n",
                 m->name.c_str(), static_cast<double>((n13 + n2) * esz) / 1e9);
    b.workspace_bytes = fused_experts_workspace_size(p, max_tokens, K);
    for (Status st : {tools::DeviceBuffer::allocate(n13 * esz, &b.w13),
                      tools::DeviceBuffer::allocate(n2 * esz, &b.w2),
                      tools::DeviceBuffer::allocate(nx * esz, &b.x),
                      tools::DeviceBuffer::allocate(nx * esz, &b.out),
                      tools::DeviceBuffer::allocate(b.workspace_bytes, &b.workspace)}) {
      if (!st.ok()) return fail(cmd, st, kExitRuntime);
    }
    for (Status st : {tools::fill_device_random(b.w13.get(), dtype, n13, b.scale13, b.seed_w13),
                      tools::fill_device_random(b.w2.get(), dtype, n2, b.scale2, b.seed_w2),
                      tools::fill_device_random(b.x.get(), dtype, nx, 1.0f, b.seed_x)}) {
      if (!st.ok()) return fail(cmd, st, kExitRuntime);
    }
    for (std::int64_t M : tokens) {
      ++done;
      // Routings of this case (device copies), rotated over the calls.
      std::vector<Routing> routings;
      std::vector<tools::DeviceBuffer> d_ids(kRotations), d_w(kRotations);
      for (int rot = 0; rot < kRotations; ++rot) {
        routings.emplace_back();
        if (Status st =
                make_routing(M, K, E, routing_mode,
                             tools::seed_from_name(m->name + "/routing/" + std::to_string(M) + "/" +
                                                       std::to_string(rot),
                                                   static_cast<std::uint64_t>(seed)),
                             &routings.back());
            !st.ok()) {
          return fail(cmd, st, kExitUsage);
        }
        const Routing& r = routings.back();
        for (Status st : {tools::DeviceBuffer::allocate(r.ids.size() * 4, &d_ids[rot]),
                          tools::DeviceBuffer::allocate(r.weights.size() * 4, &d_w[rot])}) {
          if (!st.ok()) return fail(cmd, st, kExitRuntime);
        }
        for (Status st :
             {tools::copy_to_device(d_ids[rot].get(), r.ids.data(), r.ids.size() * 4),
              tools::copy_to_device(d_w[rot].get(), r.weights.data(), r.weights.size() * 4)}) {
          if (!st.ok()) return fail(cmd, st, kExitRuntime);
        }
      }
      const auto args_for = [&](int rot) {
        ExpertsArgs a;
        a.x = TensorView::contiguous(b.x.get(), dtype, {M, H}, Device::kCuda);
        a.w13 = TensorView::contiguous(b.w13.get(), dtype, {E, N13, H}, Device::kCuda);
        a.w2 = TensorView::contiguous(b.w2.get(), dtype, {E, H, I}, Device::kCuda);
        a.top_k_ids =
            TensorView::contiguous(d_ids[rot].get(), DType::kInt32, {M, K}, Device::kCuda);
        a.top_k_weights =
            TensorView::contiguous(d_w[rot].get(), DType::kFloat32, {M, K}, Device::kCuda);
        a.out = TensorView::contiguous(b.out.get(), dtype, {M, H}, Device::kCuda);
        return a;
      };
      const heuristics::ExpertsPlan heuristic = heuristics::plan_experts(
          M, K, E, p.hidden_size, p.intermediate_size, experts_w13_interleaved(p));
      // A forced plan keeps the heuristic's tile scheduler for this M (tiles from a counter or
      // not): --plan changes the path and the tiles; SWITCHYARD_GEMM_DYNAMIC forces the scheduler.
      heuristics::ExpertsPlan forced_here = forced;
      forced_here.gemm_dynamic_tiles = heuristic.gemm_dynamic_tiles;
      forced_here.gemm_pair = heuristic.gemm_pair;
      const auto enqueue = [&](int call, cudaStream_t s) {
        return detail::fused_experts_cuda_plan(p, args_for(call % kRotations), b.workspace.get(),
                                               b.workspace_bytes, s,
                                               force ? &forced_here : nullptr);
      };
      Row row;
      row.model = m->name;
      row.experts = E;
      row.top_k = K;
      row.hidden = static_cast<int>(H);
      row.inter = static_cast<int>(I);
      row.tokens = M;
      const heuristics::ExpertsPlan plan = force ? forced_here : heuristic;
      row.path =
          plan.path == heuristics::ExpertsPath::kDecode
              ? "decode/" + std::to_string(8 * plan.decode_token_tiles)
              : std::string("gemm/") + heuristics::gemm_tile_plan_name(plan.gemm_tile) +
                    (plan.gemm2_tile == plan.gemm_tile
                         ? std::string()
                         : std::string("+") + heuristics::gemm_tile_plan_name(plan.gemm2_tile));
      std::replace(row.path.begin(), row.path.end(), ':', '/');
      if (plan.gemm1_rounded) row.path += "/rounded";
      if (plan.path == heuristics::ExpertsPath::kGroupedGemm &&
          heuristics::gemm1_fuses_activation(plan, experts_w13_interleaved(p))) {
        row.path += "/fused";
      }
      if (detail::gemm_tiles_from_counter(plan)) row.path += "/counter";
      if (detail::gemm_pair_runs(p, plan)) row.path += "/pair";
      if (detail::token_kernel_runs(p, M, K, plan)) {
        row.path += "/fused";  // the token kernel: no GEMM2 instance
      } else if (plan.path == heuristics::ExpertsPath::kDecode && plan.decode_token_tiles == 1) {
        if (plan.decode_slot_items) row.path += "/slots";
        row.path += std::string("/") +
                    heuristics::decode_gemm2_name(detail::decode_gemm2_instance(p, M, K, plan));
      }
      // Correctness on the rotation-0 routing, then a one-call timing to size the graph.
      Status st = enqueue(0, nullptr);
      if (st.ok()) st = tools::device_synchronize();
      if (st.ok() && check_tokens > 0) {
        st = check_sample(*m, p, dtype, b, routings[0], std::min(check_tokens, M), &row.wrong);
        any_wrong += row.wrong;
      }
      tools::GraphTiming probe, t;
      if (st.ok()) st = tools::time_graph(1, 3, enqueue, &probe);
      if (st.ok()) {
        row.calls = std::clamp<std::int64_t>(
            static_cast<std::int64_t>(kTargetReplayMs * 1e3 /
                                      std::max(probe.median_us_per_call, 1.0)),
            1, 20);
        st = tools::time_graph(static_cast<int>(row.calls), kReplays, enqueue, &t);
      }
      if (!st.ok()) return fail(cmd, st, kExitRuntime);
      double hit = 0;
      for (std::int64_t c = 0; c < row.calls; ++c) {
        hit += static_cast<double>(routings[static_cast<std::size_t>(c % kRotations)].hit.size());
      }
      row.experts_hit = hit / static_cast<double>(row.calls);
      row.hit_bytes = row.experts_hit * expert_bytes;
      row.flops = 2.0 * static_cast<double>(M * K) * static_cast<double>(N13 * H + H * I);
      row.median_us = t.median_us_per_call;
      row.tbps = row.hit_bytes / (row.median_us * 1e6);
      row.tflops = row.flops / (row.median_us * 1e6);
      row.pct_mem = mem.read_gbps > 0 ? 100.0 * row.tbps * 1e3 / mem.read_gbps : 0;
      row.pct_gemm = gemm.tflops > 0 ? 100.0 * row.tflops / gemm.tflops : 0;
      std::fprintf(stderr,
                   "[%zu/%zu] %-14s M=%-6lld %-10s %10.1f us %6.2f TB/s (%5.1f%%) %7.1f TFLOP/s "
                   "(%5.1f%%) wrong=%lld\n",
                   done, total, m->name.c_str(), static_cast<long long>(M), row.path.c_str(),
                   row.median_us, row.tbps, row.pct_mem, row.tflops, row.pct_gemm,
                   static_cast<long long>(row.wrong));
      rows.push_back(row);
    }
  }

  const std::string card = cuda_device_description();
  std::string text;
  if (format == "json") {
    tools::JsonWriter j;
    j.begin_object().field("bench", "experts").field("card", card).field("date", utc_timestamp());
    j.field("dtype", dtype_name(dtype)).field("routing", routing_mode.describe());
    j.field("seed", seed).field("w13", w13_text);
    j.field("method",
            "CUDA graph of `calls` calls rotating over 4 routings, median of 5 replays / calls; "
            "TB/s over the weights of the experts hit; TFLOP/s = 2 * slots * (N13*H + H*I)");
    j.field("ceiling_read_gbps", mem.read_gbps).field("gemm_ceiling_tflops", gemm.tflops);
    j.key("rows").begin_array();
    for (const Row& r : rows) {
      j.begin_object().field("model", r.model).field("E", r.experts).field("K", r.top_k);
      j.field("H", r.hidden).field("I", r.inter).field("tokens", r.tokens).field("path", r.path);
      j.field("calls", r.calls).field("experts_hit", r.experts_hit);
      j.field("hit_bytes", r.hit_bytes).field("flops", r.flops).field("median_us", r.median_us);
      j.field("tbps", r.tbps).field("pct_mem", r.pct_mem).field("tflops", r.tflops);
      j.field("pct_gemm", r.pct_gemm).field("wrong", r.wrong);
      j.end_object();
    }
    j.end_array().end_object();
    text = j.str() + "\n";
  } else if (format == "csv") {
    text = "model,E,K,H,I,tokens,path,experts_hit,median_us,tbps,pct_mem,tflops,pct_gemm,wrong\n";
    char buf[320];
    for (const Row& r : rows) {
      std::snprintf(buf, sizeof buf, "%s,%d,%d,%d,%d,%lld,%s,%.1f,%.2f,%.3f,%.1f,%.1f,%.1f,%lld\n",
                    r.model.c_str(), r.experts, r.top_k, r.hidden, r.inter,
                    static_cast<long long>(r.tokens), r.path.c_str(), r.experts_hit, r.median_us,
                    r.tbps, r.pct_mem, r.tflops, r.pct_gemm, static_cast<long long>(r.wrong));
      text += buf;
    }
  }
  std::string table;
  {
    char buf[320];
    std::snprintf(buf, sizeof buf,
                  "experts bench on %s, %s, routing %s; memory ceiling %.0f GB/s, dense GEMM "
                  "ceiling %.0f TFLOP/s\n",
                  card.c_str(), dtype_name(dtype), routing_mode.describe().c_str(), mem.read_gbps,
                  gemm.tflops);
    table = buf;
    table +=
        "| model | tokens | path | experts hit | median us | TB/s | % mem | TFLOP/s | % GEMM | "
        "wrong |\n|---|---|---|---|---|---|---|---|---|---|\n";
    for (const Row& r : rows) {
      std::snprintf(buf, sizeof buf,
                    "| %s | %lld | %s | %.1f | %.1f | %.2f | %.1f | %.1f | %.1f | %s |\n",
                    r.model.c_str(), static_cast<long long>(r.tokens), r.path.c_str(),
                    r.experts_hit, r.median_us, r.tbps, r.pct_mem, r.tflops, r.pct_gemm,
                    r.wrong < 0 ? "-" : std::to_string(r.wrong).c_str());
      table += buf;
    }
  }
  return finish_bench(args, cmd, format, table, format == "table" ? table : text, any_wrong);
}

}  // namespace

int bench_experts(int argc, char** argv, int first) {
  Args args;
  if (Status st =
          Args::parse("switchyard bench experts", experts_flags(), argc, argv, first, &args);
      !st.ok()) {
    std::fprintf(stderr, "%s\n", st.message().c_str());
    return kExitUsage;
  }
  if (args.has("help")) {
    std::printf("usage: switchyard bench experts [flags]\n\nflags:\n%s",
                flags_help(experts_flags()).c_str());
    return kExitOk;
  }
  return bench_experts_main(args);
}

}  // namespace switchyard::cli
