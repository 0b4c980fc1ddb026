// `switchyard bench align|permute|combine`: the layer's data-movement stages at a preset's shape
// (H, E, K), on routing computed from generated logits. Bytes are the distinct DRAM bytes an op
// must move (docs/benchmarks.md), read and written counted apart:
//   align:   read ids; written sorted_token_ids and expert_ids (whole buffers) + 4
//   permute: read x (each token row once) + dst_to_src (+ src_to_dst with --permute-map both);
//            written the layout rows. --permute-map both (default) passes src_to_dst: the
//            token-major kernel reads each x row once; dst times the row-major kernel, whose K
//            re-reads of each x row come from L2 only while x stays there (not at 4096 tokens of
//            DeepSeek-V3: 58.7 MB of x next to 470 MB of streaming output)
//   combine: read expert rows (one per valid slot) + weights + src_to_dst; written the output
// floor_us = read / (measured streaming-read GB/s) + written / (measured streaming-write GB/s), in
// the same process; pct_ceiling = 100 * floor_us / median_us; GB/s = (read + written) / median.
// over_empty_us = median us - an empty kernel timed the same way and launched as the op's kernels
// are (align: a PDL secondary; its multi-block kernels above 8192 slots launch plainly) (CUDA
// only).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <vector>

#include "../../src/common/check.h"
#include "../common/gpu_bench.h"
#include "../common/rng.h"
#include "args.h"
#include "commands.h"
#include "common.h"
#include "switchyard/align.h"
#include "switchyard/runtime.h"

namespace switchyard::cli {

namespace {

const std::vector<FlagSpec>& layer_flags() {
  static const std::vector<FlagSpec> specs = {
      {"models", true,
       "all or a comma list of presets (default deepseek-v3,qwen3-30b-a3b,mixtral-8x7b)"},
      {"tokens", true, "comma list of token counts (default 1,32,512,4096)"},
      {"hidden", true, "hidden size H (default: each preset's)"},
      {"dtype", true, "activation dtype bf16 | fp16 | fp32 (default bf16)"},
      {"alignment", true, "rows per expert in the contiguous layout (default 1)"},
      {"block-size", true, "align: block size of moe_align_block_size (default 64)"},
      {"permute-map", true,
       "permute: dst (dst_to_src only: one block per layout row) | both (with src_to_dst: one "
       "block per token, x read once; default)"},
      {"routing", true, "uniform | zipf:<s> | hot:<fraction> (default uniform)"},
      {"device", true, "cpu | cuda (default cuda where a GPU exists)"},
      {"format", true, "table | json | csv (default table)"},
      {"output", true, "write the results to this file instead of stdout"},
      {"ceiling-gbps", true, "use this memory ceiling instead of measuring it"},
      {"seed", true, "seed of the generated inputs (default 0)"},
      {"help", false, "show this help"},
  };
  return specs;
}

// Everything one (preset, tokens) case needs on the host.
struct LayerCase {
  std::int64_t tokens = 0, hidden = 0, rows = 0;
  int top_k = 0;
  DType dtype = DType::kBFloat16;
  std::vector<std::uint8_t> x, y;  // x [M, H]; y [rows, H] = the permuted x (identity expert)
  std::vector<std::int64_t> src_to_dst, dst_to_src;
  std::vector<std::int32_t> ids;  // [M, K] routed ids
  int experts = 0, block_size = 64;
  std::vector<float> weights;
  std::int64_t valid_slots = 0;
  bool permute_src_to_dst = true;  // --permute-map both: pass src_to_dst to permute
};

Status make_case(const ModelPreset& m, std::int64_t M, std::int64_t H, DType dtype, int alignment,
                 const tools::RoutingSkew& skew, std::uint64_t seed, bool need_rows, LayerCase* c) {
  const tools::RoutingProblem pr = make_preset_problem(m, M, skew, seed, DType::kFloat32);
  tools::RoutingResult r;
  SY_RETURN_IF_ERROR(tools::run_routing_cpu(pr, &r));
  const int E = m.routing.num_experts, K = m.routing.top_k, C = pr.columns();
  std::vector<std::int32_t>& ids = c->ids;
  ids.assign(static_cast<std::size_t>(M * K), 0);
  c->experts = E;
  c->weights.resize(static_cast<std::size_t>(M * K));
  for (std::int64_t t = 0; t < M; ++t) {
    for (int k = 0; k < K; ++k) {
      ids[static_cast<std::size_t>(t * K + k)] =
          static_cast<std::int32_t>(r.ids[static_cast<std::size_t>(t * C + k)]);
      c->weights[static_cast<std::size_t>(t * K + k)] =
          r.weights[static_cast<std::size_t>(t * C + k)];
    }
  }
  ExpertLayoutParams lp;
  lp.num_experts = E;
  lp.alignment = alignment;
  const std::int64_t max_rows = layout_max_rows(lp, M * K);
  std::vector<std::int32_t> counts(static_cast<std::size_t>(E));
  std::vector<std::int64_t> offsets(static_cast<std::size_t>(E) + 1);
  c->src_to_dst.resize(static_cast<std::size_t>(M * K));
  c->dst_to_src.resize(static_cast<std::size_t>(max_rows));
  ExpertLayoutArgs la;
  la.top_k_ids = TensorView::contiguous(ids.data(), DType::kInt32, {M, K});
  la.expert_counts = TensorView::contiguous(counts.data(), DType::kInt32, {E});
  la.expert_offsets = TensorView::contiguous(offsets.data(), DType::kInt64, {E + 1});
  la.src_to_dst = TensorView::contiguous(c->src_to_dst.data(), DType::kInt64, {M * K});
  la.dst_to_src = TensorView::contiguous(c->dst_to_src.data(), DType::kInt64, {max_rows});
  SY_RETURN_IF_ERROR(expert_layout_cpu(lp, la));
  c->tokens = M;
  c->hidden = H;
  c->top_k = K;
  c->dtype = dtype;
  c->rows = offsets[static_cast<std::size_t>(E)];
  c->dst_to_src.resize(static_cast<std::size_t>(c->rows));
  for (std::int64_t d : c->src_to_dst) c->valid_slots += d >= 0;
  if (!need_rows) return Status::Ok();  // align needs only the ids
  std::vector<float> xf(static_cast<std::size_t>(M * H));
  tools::Rng rng(seed ^ 0x78ull);
  for (float& v : xf) v = static_cast<float>(rng.uniform() * 2.0 - 1.0);
  c->x = tools::encode_floats(xf, dtype);
  c->y.resize(static_cast<std::size_t>(c->rows * H) * dtype_size(dtype));
  PermuteArgs pa;
  pa.x = TensorView::contiguous(c->x.data(), dtype, {M, H});
  pa.dst_to_src = TensorView::contiguous(c->dst_to_src.data(), DType::kInt64, {c->rows});
  pa.top_k = K;
  pa.out = TensorView::contiguous(c->y.data(), dtype, {c->rows, H});
  return permute_cpu(pa);
}

struct OpTraffic {
  std::int64_t read = 0, written = 0;
};

OpTraffic op_traffic(const std::string& op, const LayerCase& c) {
  const auto esz = static_cast<std::int64_t>(dtype_size(c.dtype));
  if (op == "align") {
    const std::int64_t n = c.tokens * c.top_k;
    return {n * 4, align_max_padded(n, c.experts, c.block_size) * 4 +
                       align_max_blocks(n, c.experts, c.block_size) * 4 + 4};
  }
  if (op == "permute") {
    const std::int64_t maps = c.rows * 8 + (c.permute_src_to_dst ? c.tokens * c.top_k * 8 : 0);
    return {c.tokens * c.hidden * esz + maps, c.rows * c.hidden * esz};
  }
  return {c.valid_slots * c.hidden * esz + c.tokens * c.top_k * 12, c.tokens * c.hidden * esz};
}

// moe_align_block_size once on `device`; `out` receives sorted_token_ids, expert_ids and
// num_tokens_post_pad, concatenated.
Status run_align(const LayerCase& c, Device device, std::vector<std::uint8_t>* out,
                 tools::GraphTiming* timing) {
  const std::int64_t M = c.tokens, K = c.top_k, n = M * K;
  AlignParams p;
  p.num_experts = c.experts;
  p.block_size = c.block_size;
  const std::int64_t padded = align_max_padded(n, c.experts, c.block_size),
                     blocks = align_max_blocks(n, c.experts, c.block_size);
  const std::size_t bytes = static_cast<std::size_t>(padded + blocks + 1) * 4;
  out->assign(bytes, 0);
  auto views = [&](void* ids, std::uint8_t* o, Device d) {
    AlignArgs a;
    a.top_k_ids = TensorView::contiguous(ids, DType::kInt32, {M, K}, d);
    a.sorted_token_ids = TensorView::contiguous(o, DType::kInt32, {padded}, d);
    a.expert_ids = TensorView::contiguous(o + padded * 4, DType::kInt32, {blocks}, d);
    a.num_tokens_post_pad =
        TensorView::contiguous(o + (padded + blocks) * 4, DType::kInt32, {1}, d);
    return a;
  };
  if (device == Device::kCpu) {
    const auto t0 = std::chrono::steady_clock::now();
    const Status st = moe_align_block_size_cpu(
        p, views(const_cast<std::int32_t*>(c.ids.data()), out->data(), Device::kCpu));
    if (timing) {
      timing->median_us_per_call =
          std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
    }
    return st;
  }
  tools::DeviceBuffer ids, dout, ws;
  const std::size_t ws_bytes = align_workspace_size(p, n);
  SY_RETURN_IF_ERROR(tools::DeviceBuffer::allocate(c.ids.size() * 4, &ids));
  SY_RETURN_IF_ERROR(tools::copy_to_device(ids.get(), c.ids.data(), c.ids.size() * 4));
  SY_RETURN_IF_ERROR(tools::DeviceBuffer::allocate(bytes, &dout));
  SY_RETURN_IF_ERROR(tools::fill_device_bytes(dout.get(), 0x7b, bytes));
  SY_RETURN_IF_ERROR(tools::DeviceBuffer::allocate(ws_bytes, &ws));
  const AlignArgs a = views(ids.get(), static_cast<std::uint8_t*>(dout.get()), Device::kCuda);
  auto enqueue = [&](int, cudaStream_t s) {
    return moe_align_block_size_cuda(p, a, ws.get(), ws_bytes, s);
  };
  SY_RETURN_IF_ERROR(enqueue(0, nullptr));
  SY_RETURN_IF_ERROR(tools::device_synchronize());
  SY_RETURN_IF_ERROR(tools::copy_to_host(out->data(), dout.get(), bytes));
  if (timing) SY_RETURN_IF_ERROR(tools::time_graph(40, 7, enqueue, timing));
  return Status::Ok();
}

// Runs the op once on `device` from host data; `out` receives the output bytes.
Status run_op(const std::string& op, const LayerCase& c, Device device,
              std::vector<std::uint8_t>* out, tools::GraphTiming* timing) {
  if (op == "align") return run_align(c, device, out, timing);
  const std::int64_t M = c.tokens, H = c.hidden, K = c.top_k;
  const std::size_t esz = dtype_size(c.dtype);
  const std::size_t out_bytes = static_cast<std::size_t>((op == "permute" ? c.rows : M) * H) * esz;
  out->assign(out_bytes, 0);
  if (device == Device::kCpu) {
    const auto t0 = std::chrono::steady_clock::now();
    Status st;
    if (op == "permute") {
      PermuteArgs a;
      a.x = TensorView::contiguous(const_cast<std::uint8_t*>(c.x.data()), c.dtype, {M, H});
      a.dst_to_src = TensorView::contiguous(const_cast<std::int64_t*>(c.dst_to_src.data()),
                                            DType::kInt64, {c.rows});
      a.top_k = static_cast<int>(K);
      a.out = TensorView::contiguous(out->data(), c.dtype, {c.rows, H});
      if (c.permute_src_to_dst) {  // the oracle checks that the maps are mutually inverse
        a.src_to_dst = TensorView::contiguous(const_cast<std::int64_t*>(c.src_to_dst.data()),
                                              DType::kInt64, {M * K});
      }
      st = permute_cpu(a);
    } else {
      CombineArgs a;
      a.y = TensorView::contiguous(const_cast<std::uint8_t*>(c.y.data()), c.dtype, {c.rows, H});
      a.src_to_dst = TensorView::contiguous(const_cast<std::int64_t*>(c.src_to_dst.data()),
                                            DType::kInt64, {M * K});
      a.top_k_weights =
          TensorView::contiguous(const_cast<float*>(c.weights.data()), DType::kFloat32, {M, K});
      a.out = TensorView::contiguous(out->data(), c.dtype, {M, H});
      st = combine_cpu({2.5f}, a);
    }
    if (timing) {
      timing->median_us_per_call =
          std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
    }
    return st;
  }
  tools::DeviceBuffer in, map, inverse, w, dout;
  const bool permute = op == "permute";
  const std::vector<std::uint8_t>& src = permute ? c.x : c.y;
  SY_RETURN_IF_ERROR(tools::DeviceBuffer::allocate(src.size(), &in));
  SY_RETURN_IF_ERROR(tools::copy_to_device(in.get(), src.data(), src.size()));
  const std::vector<std::int64_t>& m = permute ? c.dst_to_src : c.src_to_dst;
  SY_RETURN_IF_ERROR(tools::DeviceBuffer::allocate(m.size() * 8, &map));
  SY_RETURN_IF_ERROR(tools::copy_to_device(map.get(), m.data(), m.size() * 8));
  const bool token_major = permute && c.permute_src_to_dst;
  if (token_major) {
    SY_RETURN_IF_ERROR(tools::DeviceBuffer::allocate(c.src_to_dst.size() * 8, &inverse));
    SY_RETURN_IF_ERROR(
        tools::copy_to_device(inverse.get(), c.src_to_dst.data(), c.src_to_dst.size() * 8));
  }
  SY_RETURN_IF_ERROR(tools::DeviceBuffer::allocate(c.weights.size() * 4, &w));
  SY_RETURN_IF_ERROR(tools::copy_to_device(w.get(), c.weights.data(), c.weights.size() * 4));
  SY_RETURN_IF_ERROR(tools::DeviceBuffer::allocate(out_bytes, &dout));
  SY_RETURN_IF_ERROR(tools::fill_device_bytes(dout.get(), 0x7b, out_bytes));
  PermuteArgs pa;
  CombineArgs ca;
  if (permute) {
    pa.x = TensorView::contiguous(in.get(), c.dtype, {M, H}, Device::kCuda);
    pa.dst_to_src = TensorView::contiguous(map.get(), DType::kInt64, {c.rows}, Device::kCuda);
    pa.top_k = static_cast<int>(K);
    pa.out = TensorView::contiguous(dout.get(), c.dtype, {c.rows, H}, Device::kCuda);
    if (token_major) {
      pa.src_to_dst = TensorView::contiguous(inverse.get(), DType::kInt64, {M * K}, Device::kCuda);
    }
  } else {
    ca.y = TensorView::contiguous(in.get(), c.dtype, {c.rows, H}, Device::kCuda);
    ca.src_to_dst = TensorView::contiguous(map.get(), DType::kInt64, {M * K}, Device::kCuda);
    ca.top_k_weights = TensorView::contiguous(w.get(), DType::kFloat32, {M, K}, Device::kCuda);
    ca.out = TensorView::contiguous(dout.get(), c.dtype, {M, H}, Device::kCuda);
  }
  auto enqueue = [&](int, cudaStream_t s) {
    return permute ? permute_cuda(pa, s) : combine_cuda({2.5f}, ca, s);
  };
  SY_RETURN_IF_ERROR(enqueue(0, nullptr));
  SY_RETURN_IF_ERROR(tools::device_synchronize());
  SY_RETURN_IF_ERROR(tools::copy_to_host(out->data(), dout.get(), out_bytes));
  // The working set of these shapes is far above L2 at the sizes that matter; one buffer set.
  if (timing) SY_RETURN_IF_ERROR(tools::time_graph(10, 7, enqueue, timing));
  return Status::Ok();
}

}  // namespace

int bench_layer_op(const std::string& op, int argc, char** argv, int first) {
  const std::string cmd = "switchyard bench " + op;
  Args args;
  if (Status st = Args::parse(cmd, layer_flags(), argc, argv, first, &args); !st.ok()) {
    return fail(cmd.c_str(), st, kExitUsage);
  }
  if (args.has("help")) {
    std::printf("usage: %s [flags]\n\n%s", cmd.c_str(), flags_help(layer_flags()).c_str());
    return kExitOk;
  }
  std::vector<std::int64_t> tokens;
  std::int64_t seed = 0, hidden = 0, alignment = 1, block_size = 64;
  DType dtype = DType::kBFloat16;
  Device device = Device::kCpu;
  tools::RoutingSkew skew;
  double ceiling_arg = 0;
  for (Status st :
       {args.get_int_list("tokens", "1,32,512,4096", 0, 1'000'000, &tokens),
        args.get_int("seed", 0, 0, INT64_MAX, &seed), args.get_int("hidden", 0, 0, 65536, &hidden),
        args.get_int("alignment", 1, 1, 1024, &alignment),
        args.get_int("block-size", 64, 16, 256, &block_size),
        parse_dtype(args.get("dtype", "bf16"), &dtype),
        tools::parse_routing_skew(args.get("routing", "uniform"), &skew),
        pick_device(args.get("device", ""), &device),
        args.get_double("ceiling-gbps", 0, 0, 1e6, &ceiling_arg)}) {
    if (!st.ok()) return fail(cmd.c_str(), st, kExitUsage);
  }
  std::string format;
  if (Status st = parse_format(args, &format); !st.ok()) return fail(cmd.c_str(), st, kExitUsage);
  const std::string permute_map = args.get("permute-map", "both");
  if (permute_map != "dst" && permute_map != "both") {
    return fail(
        cmd.c_str(),
        Status::InvalidArgument("--permute-map = " + permute_map + ": expected dst or both"),
        kExitUsage);
  }
  std::vector<const ModelPreset*> models;
  if (Status st = parse_models(args, "deepseek-v3,qwen3-30b-a3b,mixtral-8x7b", &models); !st.ok()) {
    return fail(cmd.c_str(), st, kExitUsage);
  }
  const bool cuda = device == Device::kCuda;
  tools::MemoryCeiling ceiling;
  ceiling.read_gbps = ceiling_arg;
  if (cuda && ceiling_arg == 0) {
    if (Status st = tools::measure_memory_ceiling(std::size_t{2} << 30, &ceiling); !st.ok()) {
      return fail(cmd.c_str(), st, kExitRuntime);
    }
  }
  // The empty kernel is launched as the op's kernels are: alignment's as PDL secondaries.
  const bool op_pdl = op == "align";
  tools::GraphTiming empty, empty_plain;
  if (cuda) {
    if (Status st = tools::time_empty_kernel(40, 7, &empty, op_pdl); !st.ok()) {
      return fail(cmd.c_str(), st, kExitRuntime);
    }
    if (Status st = tools::time_empty_kernel(40, 7, &empty_plain); !st.ok()) {
      return fail(cmd.c_str(), st, kExitRuntime);
    }
  }
  tools::JsonWriter j;
  j.begin_object()
      .field("bench", op)
      .field("card", cuda ? cuda_device_description() : std::string("cpu"));
  j.field("date", utc_timestamp())
      .field("dtype", dtype_name(dtype))
      .field("routing", skew.describe());
  j.field("ceiling_read_gbps", ceiling.read_gbps)
      .field("ceiling_write_gbps", ceiling.write_gbps)
      .field("empty_kernel_us", empty.median_us_per_call)
      .field("empty_kernel_launch",
             op_pdl ? "PDL secondary, as the op's kernels (plain under SWITCHYARD_PDL=0)" : "plain")
      .field("empty_plain_kernel_us", empty_plain.median_us_per_call);
  if (op == "align") j.field("block_size", block_size);
  if (op == "permute") j.field("permute_map", permute_map);
  j.key("rows").begin_array();
  std::string table =
      "| model | E | K | H | tokens | median us | over empty us | GB/s | % ceiling | floor us | x "
      "floor | wrong |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  std::string csv =
      "model,E,K,H,tokens,median_us,over_empty_us,gbps,pct_ceiling,floor_us,x_floor,wrong\n";
  std::int64_t any_wrong = 0;
  std::size_t done = 0;
  for (const ModelPreset* m : models) {
    for (std::int64_t M : tokens) {
      ++done;
      const std::int64_t H = hidden > 0 ? hidden : m->hidden_size;
      LayerCase c;
      if (Status st = make_case(*m, M, H, dtype, static_cast<int>(alignment), skew,
                                static_cast<std::uint64_t>(seed), op != "align", &c);
          !st.ok()) {
        return fail(cmd.c_str(), st, kExitRuntime);
      }
      c.block_size = static_cast<int>(block_size);
      c.permute_src_to_dst = permute_map == "both";
      std::vector<std::uint8_t> ref, got;
      tools::GraphTiming t;
      std::int64_t wrong = -1;
      if (cuda) {
        if (Status st = run_op(op, c, Device::kCpu, &ref, nullptr); !st.ok())
          return fail(cmd.c_str(), st, kExitRuntime);
        if (Status st = run_op(op, c, Device::kCuda, &got, &t); !st.ok())
          return fail(cmd.c_str(), st, kExitRuntime);
        // Rows of H elements (align: rows of 64 int32).
        const std::size_t row_bytes =
            op == "align" ? 256 : static_cast<std::size_t>(H) * dtype_size(dtype);
        wrong = 0;
        for (std::size_t r = 0; r * row_bytes < ref.size(); ++r) {
          const std::size_t len = std::min(row_bytes, ref.size() - r * row_bytes);
          wrong += std::memcmp(ref.data() + r * row_bytes, got.data() + r * row_bytes, len) != 0;
        }
        any_wrong += wrong;
      } else {
        std::vector<double> us;
        for (int rep = 0; rep < 5; ++rep) {
          if (Status st = run_op(op, c, Device::kCpu, &got, &t); !st.ok())
            return fail(cmd.c_str(), st, kExitRuntime);
          us.push_back(t.median_us_per_call);
        }
        std::sort(us.begin(), us.end());
        t.median_us_per_call = us[us.size() / 2];
      }
      const OpTraffic traffic = op_traffic(op, c);
      const std::int64_t bytes = traffic.read + traffic.written;
      const double gbps = static_cast<double>(bytes) / (t.median_us_per_call * 1e3);
      const double write_gbps = ceiling.write_gbps > 0 ? ceiling.write_gbps : ceiling.read_gbps;
      const double floor_us = ceiling.read_gbps > 0
                                  ? static_cast<double>(traffic.read) / (ceiling.read_gbps * 1e3) +
                                        static_cast<double>(traffic.written) / (write_gbps * 1e3)
                                  : 0.0;
      const double pct = floor_us > 0 ? 100.0 * floor_us / t.median_us_per_call : 0.0;
      const double x_floor = floor_us > 0 ? t.median_us_per_call / floor_us : 0.0;
      const double over_empty = cuda ? t.median_us_per_call - empty.median_us_per_call : 0.0;
      std::fprintf(stderr, "[%zu/%zu] %-18s M=%-7lld %10.2f us %8.1f GB/s wrong=%lld\n", done,
                   models.size() * tokens.size(), m->name.c_str(), static_cast<long long>(M),
                   t.median_us_per_call, gbps, static_cast<long long>(wrong));
      j.begin_object()
          .field("model", m->name)
          .field("E", m->routing.num_experts)
          .field("K", c.top_k);
      j.field("H", H)
          .field("tokens", M)
          .field("median_us", t.median_us_per_call)
          .field("over_empty_us", over_empty)
          .field("bytes", bytes)
          .field("bytes_read", traffic.read)
          .field("bytes_written", traffic.written);
      j.field("gbps", gbps)
          .field("pct_ceiling", pct)
          .field("floor_us", floor_us)
          .field("x_floor", x_floor);
      j.field("wrong", wrong).end_object();
      char buf[256];
      std::snprintf(
          buf, sizeof buf,
          "| %s | %d | %d | %lld | %lld | %.2f | %.2f | %.0f | %.1f | %.2f | %.2f | %s |\n",
          m->name.c_str(), m->routing.num_experts, c.top_k, static_cast<long long>(H),
          static_cast<long long>(M), t.median_us_per_call, over_empty, gbps, pct, floor_us, x_floor,
          wrong < 0 ? "-" : std::to_string(wrong).c_str());
      table += buf;
      std::snprintf(buf, sizeof buf, "%s,%d,%d,%lld,%lld,%.3f,%.3f,%.1f,%.1f,%.3f,%.2f,%lld\n",
                    m->name.c_str(), m->routing.num_experts, c.top_k, static_cast<long long>(H),
                    static_cast<long long>(M), t.median_us_per_call, over_empty, gbps, pct,
                    floor_us, x_floor, static_cast<long long>(wrong));
      csv += buf;
    }
  }
  j.end_array().end_object();
  const std::string text = format == "json" ? j.str() + "\n" : (format == "csv" ? csv : table);
  return finish_bench(args, cmd.c_str(), format, table, text, any_wrong);
}

}  // namespace switchyard::cli
