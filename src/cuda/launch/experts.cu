// fused_experts_cuda: validate -> plan -> layout -> experts -> combine (no allocation, no host
// synchronisation, graph capturable; every launch goes to `stream`).
//
// Pipeline (S = M*K slots; layout rows R = S, contiguous layout with alignment 1):
//   expert_layout_cuda        ids (+ expert_map) -> offsets [E+1], src_to_dst, dst_to_src
//                             (skipped with slot items, one token: GEMM1 writes src_to_dst)
//   one or two tokens (plan.decode_fused_token, where it fits: launch/experts_token_launch.h):
//     one cooperative kernel (kernels/experts_token.cuh): GEMM1 + activation, a grid barrier,
//     GEMM2 from w2 rows staged in shared memory meanwhile, and the combine (no layout kernel)
//   decode path (few rows per expert, kernels/experts_decode.cuh):
//     GEMM1 + activation      x rows gathered through dst_to_src -> act [R, I] (one rounding)
//     GEMM2                   act -> y [R, H] (+ b2, one rounding)
//   grouped-GEMM path (experts/grouped_gemm.h, CUTLASS sm90a):
//     permute_cuda            x -> xp [R, H], token-major (src_to_dst given: each x row read once)
//                             (then x * w rounded, for apply_router_weight_on_input)
//     GEMM1 + activation      interleaved gate/up rows on the 64-row tile
//                             (heuristics::gemm1_fuses_activation): xp @ w13^T, + b13, act in
//                             the epilogue -> act [R, I], rounded once (experts/gated_epilogue.cuh)
//     or GEMM1                xp @ w13^T -> h [R, 2I] float32 (the input dtype with a
//                             plan's gemm1_rounded)
//        activation           h (+ b13) -> act [R, I] in float32, rounded once
//     GEMM2                   act @ w2^T -> y [R, H] (with b2: float32, then + b2 and one rounding)
//   combine_cuda              out[t] = rsf * sum_k w[t,k] * y[row(t,k)] (weights 1 with
//                             apply_router_weight_on_input), float32, k ascending
//
// Why GEMM1 fuses the activation only with interleaved rows: with SGLang's halves gate column i
// and up column I + i sit in different 256-column tiles, so the epilogue cannot pair them; with
// interleaved rows (ExpertsParams::w13_interleaved, packed once by interleave_w13_cuda; gpt-oss's
// layout anyway) columns 2i and 2i + 1 are adjacent accumulators of one thread. Otherwise the
// float32 intermediate keeps the contract's single rounding (h is never rounded) at the cost of
// writing and reading R x 2I x 4 bytes and one kernel (Qwen3-30B 4096 tokens: 10% of the call).
// The decode path fuses it with either layout.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <utility>

#include "../../common/align_check.h"
#include "../../common/align_internal.h"
#include "../../common/check.h"
#include "../../common/experts_check.h"
#include "../cuda_status.h"
#include "../device_attrs.h"
#include "../experts/experts_internal.h"
#include "../experts/grouped_gemm.h"
#include "../kernels/experts_decode.cuh"
#include "../kernels/experts_pointwise.cuh"
#include "experts_token_launch.h"
#include "pdl_launch.h"
#include "permute_combine_internal.h"
#include "switchyard/align.h"
#include "switchyard/experts.h"

namespace switchyard {

namespace {

constexpr const char* kOp = "fused_experts_cuda";
constexpr std::int64_t kMaxPointwiseBlocks = 8192;

std::size_t round256(std::size_t b) {
  return (b + 255) / 256 * 256;
}

// Offsets (bytes from the 256-aligned base) and sizes of every workspace region; the size query
// and the run share this one definition.
struct WorkspacePlan {
  std::size_t offsets, counts, src_to_dst, dst_to_src, layout, act, xy, f32, gemm, total;
  std::size_t layout_bytes, gemm_bytes;
};

WorkspacePlan workspace_plan(const ExpertsParams& p, std::int64_t num_slots) {
  const auto S = static_cast<std::size_t>(std::max<std::int64_t>(num_slots, 0));
  const auto E = static_cast<std::size_t>(std::max(p.num_experts, 0));
  const auto H = static_cast<std::size_t>(std::max(p.hidden_size, 0));
  const auto I = static_cast<std::size_t>(std::max(p.intermediate_size, 0));
  const auto N13 = static_cast<std::size_t>(std::max<std::int64_t>(detail::experts_rows13(p), 0));
  ExpertLayoutParams lp;
  lp.num_experts = p.num_experts;
  lp.alignment = 1;
  WorkspacePlan w{};
  w.layout_bytes = expert_layout_workspace_size(lp, num_slots);
  w.gemm_bytes = detail::grouped_gemm_workspace_size(p.num_experts);
  std::size_t at = 0;
  const auto take = [&](std::size_t bytes) {
    const std::size_t here = at;
    at += round256(bytes);
    return here;
  };
  w.offsets = take(8 * (E + 1));
  w.counts = take(4 * E);
  w.src_to_dst = take(8 * S);
  w.dst_to_src = take(8 * S);
  w.layout = take(w.layout_bytes);
  w.act = take(2 * S * I);
  w.xy = take(2 * S * H);
  w.f32 = take(4 * S * std::max(N13, H));
  w.gemm = take(w.gemm_bytes);
  w.total = at + 256;  // slack to align a 16-byte aligned caller pointer up to 256
  return w;
}

// Views of the carved workspace.
struct Buffers {
  std::int64_t* offsets;
  std::int32_t* counts;
  std::int64_t* src_to_dst;
  std::int64_t* dst_to_src;
  void* layout;
  void* act;
  void* xy;
  float* f32;
  void* gemm;
  WorkspacePlan plan;
};

Buffers carve(const WorkspacePlan& w, void* workspace) {
  auto base = reinterpret_cast<std::uintptr_t>(workspace);
  base = (base + 255) / 256 * 256;
  char* b = reinterpret_cast<char*>(base);
  Buffers out{};
  out.offsets = reinterpret_cast<std::int64_t*>(b + w.offsets);
  out.counts = reinterpret_cast<std::int32_t*>(b + w.counts);
  out.src_to_dst = reinterpret_cast<std::int64_t*>(b + w.src_to_dst);
  out.dst_to_src = reinterpret_cast<std::int64_t*>(b + w.dst_to_src);
  out.layout = b + w.layout;
  out.act = b + w.act;
  out.xy = b + w.xy;
  out.f32 = reinterpret_cast<float*>(b + w.f32);
  out.gemm = b + w.gemm;
  out.plan = w;
  return out;
}

Status check_cuda_shape(const ExpertsParams& p, const ExpertsArgs& a) {
  const std::int64_t max_dim = std::int64_t{65535} * kernels::kDecodeOutputsPerCta;
  if (p.hidden_size % 8 != 0 || p.hidden_size > max_dim) {
    return detail::invalid_arg(
        kOp, "hidden_size", p.hidden_size,
        "a multiple of 8 (16-byte rows for TMA and vector loads), <= " + std::to_string(max_dim));
  }
  if (p.intermediate_size % 8 != 0 || p.intermediate_size > max_dim) {
    return detail::invalid_arg(
        kOp, "intermediate_size", p.intermediate_size,
        "a multiple of 8 (16-byte rows for TMA and vector loads), <= " + std::to_string(max_dim));
  }
  // 16-byte vector loads (decode) and TMA (grouped GEMM) need 16-byte aligned bases; a view at
  // an odd element offset would fault the device instead of failing here.
  for (const auto& [name, t] : {std::pair<const char*, const TensorView*>{"x.data", &a.x},
                                {"w13.data", &a.w13},
                                {"w2.data", &a.w2}}) {
    if ((reinterpret_cast<std::uintptr_t>(t->data) & 15u) != 0) {
      return detail::invalid_arg(kOp, name, "misaligned", "a 16-byte aligned device pointer");
    }
  }
  if (a.top_k_ids.numel() > std::int64_t{1} << 30) {
    return detail::invalid_arg(kOp, "top_k_ids.numel", a.top_k_ids.numel(),
                               "<= 2^30 slots (GEMM row counts are int32)");
  }
  return Status::Ok();
}

bool is_f32(const TensorView& t) {
  return t.defined() && t.dtype == DType::kFloat32;
}

int pointwise_blocks(std::int64_t rows) {
  return static_cast<int>(std::max<std::int64_t>(1, std::min(rows, kMaxPointwiseBlocks)));
}

// Column blocks of kDecodeOutputsPerCta outputs in a decode GEMM's output row.
std::int64_t decode_column_blocks(const kernels::DecodeParams& d) {
  return (d.n_out + kernels::kDecodeOutputsPerCta - 1) / kernels::kDecodeOutputsPerCta;
}

// Column blocks per decode CTA: several when one block streams little (short k: GEMM2 of
// Qwen3-30B, 48 KB per block), so that the per-CTA setup (the item search, the token rows, the
// launch) is paid once per ~kDecodeCtaBytes; but never fewer than kDecodeCtasPerSm CTAs per SM over
// the expected hit experts, and at most kDecodeMaxBlocksPerCta.
constexpr std::int64_t kDecodeCtaBytes = 256 << 10;
constexpr std::int64_t kDecodeCtasPerSm = 4;
constexpr std::int64_t kDecodeMaxBlocksPerCta = 8;
static_assert(heuristics::kDecodeDeepMaxK == 4 * kernels::kDecodeWarpsK * kernels::kDecodeChunk,
              "deep: one round trip of 4 chunks per k warp");

std::int32_t decode_blocks_per_cta(const kernels::DecodeParams& d, std::int64_t hit, int sms) {
  const std::int64_t rows_per_block =
      static_cast<std::int64_t>(kernels::kDecodeOutputsPerCta) * (d.w_rows > d.n_out ? 2 : 1);
  const std::int64_t block_bytes = rows_per_block * d.k * 2;
  const std::int64_t blocks = decode_column_blocks(d);
  std::int64_t per = std::clamp<std::int64_t>(
      kDecodeCtaBytes / std::max<std::int64_t>(block_bytes, 1), 1, kDecodeMaxBlocksPerCta);
  while (per > 1 && hit * ((blocks + per - 1) / per) < kDecodeCtasPerSm * sms) --per;
  return static_cast<std::int32_t>(per);
}

// The deep GEMM2 (one round trip per column block, k <= kDecodeDeepMaxK): the fewest CTAs that
// still fill one wave of kDecodeDeepResidentCtas per SM, when at most kDecodeMaxBlocksPerCta
// column blocks per CTA get there; else decode_blocks_per_cta. H200, same process, Qwen3-30B
// (bench/NOTES.md, session 7): 1 token 2 blocks per CTA 28.1 -> 27.3 us, 2 tokens 4 blocks 54.8 ->
// 52.0, 4 tokens 8 blocks 82.7 -> 81.8; at 8 tokens no count fits one wave.
constexpr std::int64_t kDecodeDeepResidentCtas = 2;  // 122 registers, 256 threads
std::int32_t decode_deep_blocks_per_cta(const kernels::DecodeParams& d, std::int64_t busy,
                                        int sms) {
  const std::int64_t blocks = decode_column_blocks(d);
  for (std::int64_t per = 1; per <= kDecodeMaxBlocksPerCta; ++per) {
    if (busy * ((blocks + per - 1) / per) <= kDecodeDeepResidentCtas * sms) {
      return static_cast<std::int32_t>(per);
    }
  }
  return decode_blocks_per_cta(d, busy, sms);
}

// SWITCHYARD_DECODE_PIPELINE=0 in the environment issues a decode CTA's next column block's loads
// after the current block's reduction and epilogue instead of before them
// (DecodeParams::pipeline_blocks). For A/B measurements.
bool decode_pipeline_enabled() {
  static const bool enabled = [] {
    const char* v = std::getenv("SWITCHYARD_DECODE_PIPELINE");
    return v == nullptr || std::strcmp(v, "0") != 0;
  }();
  return enabled;
}

// SWITCHYARD_DECODE_BLOCKS=n1:n2 (or n1,n2) forces the column blocks per CTA of the decode GEMM1 /
// GEMM2 (0 or absent: the rules above), clamped to the blocks there are. For measurements.
std::int32_t decode_blocks_override(int gemm) {
  static const std::pair<int, int> forced = [] {
    const char* v = std::getenv("SWITCHYARD_DECODE_BLOCKS");
    int a = 0, b = 0;
    if (v != nullptr) {
      char* end = nullptr;
      a = static_cast<int>(std::strtol(v, &end, 10));
      if (end != nullptr && (*end == ',' || *end == ':')) {
        b = static_cast<int>(std::strtol(end + 1, nullptr, 10));
      }
    }
    return std::make_pair(std::max(a, 0), std::max(b, 0));
  }();
  return gemm == 1 ? forced.first : forced.second;
}

// SWITCHYARD_DECODE_BALANCED=n in the environment replaces the plan's decode_balanced bits (1:
// GEMM1, 2: GEMM2 on the balanced grid; 0: both fixed). For A/B measurements.
int decode_balanced_bits(const heuristics::ExpertsPlan& plan) {
  static const int forced = [] {
    const char* v = std::getenv("SWITCHYARD_DECODE_BALANCED");
    return v == nullptr ? -1 : static_cast<int>(std::strtol(v, nullptr, 10));
  }();
  return forced >= 0 ? forced : plan.decode_balanced;
}

// CTAs of a decode GEMM expected to have rows: `busy` work items x its column groups.
std::int64_t decode_busy_ctas(const kernels::DecodeParams& d, std::int64_t busy) {
  return busy * ((decode_column_blocks(d) + d.blocks_per_cta - 1) / d.blocks_per_cta);
}

// The decode kernels' parameters that depend on the problem, not on the buffers.
struct DecodeShape {
  std::int64_t items;  // work items (grid x): hit experts + slots / (8 kTiles), or every slot
  std::int64_t busy;   // the work items expected to have rows
};

DecodeShape decode_shape(const heuristics::ExpertsPlan& plan, std::int32_t num_experts,
                         std::int64_t num_slots) {
  const bool slot_items = plan.decode_slot_items && plan.decode_token_tiles == 1;
  const std::int64_t hit = std::min<std::int64_t>(num_experts, num_slots);
  const int tiles = plan.decode_token_tiles;  // the instance run_decode dispatches to
  const std::int64_t t = tiles <= 1 ? 1 : (tiles == 2 ? 2 : (tiles <= 4 ? 4 : 8));
  return {slot_items ? num_slots : hit + num_slots / (8 * t), slot_items ? num_slots : hit};
}

// The GEMM2 parameters' shape fields (k, outputs, weight rows) for the rules below.
kernels::DecodeParams decode_gemm2_shape(const ExpertsParams& p) {
  kernels::DecodeParams g2{};
  g2.k = p.intermediate_size;
  g2.n_out = p.hidden_size;
  g2.w_rows = p.hidden_size;
  return g2;
}

// SWITCHYARD_DECODE_NARROW3=grid in the environment chooses GEMM2's narrow / narrow3 instance by
// the fixed grid's rule (decode_gemm2_with_grid) even on the balanced grid, as before session 33.
// For A/B measurements.
bool decode_narrow3_by_fixed_grid() {
  static const bool forced = [] {
    const char* v = std::getenv("SWITCHYARD_DECODE_NARROW3");
    return v != nullptr && std::strcmp(v, "grid") == 0;
  }();
  return forced;
}

heuristics::DecodeGemm2 decode_gemm2_kind(const ExpertsParams& p,
                                          const heuristics::ExpertsPlan& plan,
                                          std::int64_t num_slots, int sms) {
  kernels::DecodeParams g2 = decode_gemm2_shape(p);
  const DecodeShape shape = decode_shape(plan, p.num_experts, num_slots);
  if ((decode_balanced_bits(plan) & heuristics::kDecodeBalancedGemm2) != 0 &&
      !decode_narrow3_by_fixed_grid()) {
    return heuristics::decode_gemm2_on_balanced_grid(plan, p.intermediate_size,
                                                     shape.busy * decode_column_blocks(g2), sms);
  }
  g2.blocks_per_cta = decode_blocks_per_cta(g2, shape.busy, sms);
  return heuristics::decode_gemm2_with_grid(plan, p.intermediate_size,
                                            decode_busy_ctas(g2, shape.busy), sms);
}

template <typename T, int kTiles>
cudaError_t launch_decode_tiles(kernels::DecodeParams gemm1, kernels::DecodeParams gemm2,
                                bool gated, heuristics::DecodeGemm2 gemm2_kind, DecodeShape shape,
                                int balanced, int sms, cudaStream_t stream) {
  gemm1.blocks_per_cta = decode_blocks_per_cta(gemm1, shape.busy, sms);
  gemm2.blocks_per_cta = kTiles == 1 && gemm2_kind == heuristics::DecodeGemm2::kDeep
                             ? decode_deep_blocks_per_cta(gemm2, shape.busy, sms)
                             : decode_blocks_per_cta(gemm2, shape.busy, sms);
  if (const std::int32_t n = decode_blocks_override(1); n > 0) {
    gemm1.blocks_per_cta =
        static_cast<std::int32_t>(std::min<std::int64_t>(n, decode_column_blocks(gemm1)));
  }
  if (const std::int32_t n = decode_blocks_override(2); n > 0) {
    gemm2.blocks_per_cta =
        static_cast<std::int32_t>(std::min<std::int64_t>(n, decode_column_blocks(gemm2)));
  }
  // The balanced grid: the resident CTAs of the instance, by its __launch_bounds__
  // (kernels/experts_decode.cuh); with slot items the kernels count S = shape.items.
  gemm1.balanced = (balanced & heuristics::kDecodeBalancedGemm1) != 0;
  gemm2.balanced = (balanced & heuristics::kDecodeBalancedGemm2) != 0;
  gemm1.slot_count = gemm2.slot_count =
      gemm1.offsets == nullptr ? static_cast<std::int32_t>(shape.items) : 0;
  const int resident1 = kTiles <= 2 ? 2 : 1;
  const int resident2 =
      kTiles == 1 && gemm2_kind == heuristics::DecodeGemm2::kNarrow3 ? 3 : resident1;
  const auto grid = [&](const kernels::DecodeParams& d) {
    if (d.balanced) {
      return dim3(static_cast<unsigned>((&d == &gemm1 ? resident1 : resident2) * sms), 1);
    }
    const std::int64_t blocks = decode_column_blocks(d);
    return dim3(static_cast<unsigned>(shape.items),
                static_cast<unsigned>((blocks + d.blocks_per_cta - 1) / d.blocks_per_cta));
  };

  // Both with programmatic dependent launch (kernels/pdl.cuh): GEMM1's blocks are resident when
  // the layout kernel ends, and GEMM2 prefetches its weights while GEMM1 finishes.
  const dim3 block(kernels::kDecodeThreads);
  cudaError_t err =
      gated ? detail::launch_maybe_pdl(kernels::experts_decode_kernel<T, kTiles, true, true>,
                                       grid(gemm1), block, stream, true, gemm1)
            : detail::launch_maybe_pdl(kernels::experts_decode_kernel<T, kTiles, false, true>,
                                       grid(gemm1), block, stream, true, gemm1);
  if (err != cudaSuccess) return err;
  // GEMM2's instance (decode_gemm2_kind): deep or narrow3 only with one token tile.
  if constexpr (kTiles == 1) {
    if (gemm2_kind == heuristics::DecodeGemm2::kDeep) {
      return detail::launch_maybe_pdl(kernels::experts_decode_kernel<T, 1, false, false, true>,
                                      grid(gemm2), block, stream, true, gemm2);
    }
    if (gemm2_kind == heuristics::DecodeGemm2::kNarrow3) {
      return detail::launch_maybe_pdl(
          kernels::experts_decode_kernel<T, 1, false, false, false, true>, grid(gemm2), block,
          stream, true, gemm2);
    }
  }
  return detail::launch_maybe_pdl(kernels::experts_decode_kernel<T, kTiles, false, false>,
                                  grid(gemm2), block, stream, true, gemm2);
}

template <typename T>
Status run_decode(const ExpertsParams& p, const ExpertsArgs& a, const Buffers& w,
                  const heuristics::ExpertsPlan& plan, std::int64_t num_slots,
                  cudaStream_t stream) {
  const int tiles = plan.decode_token_tiles;
  const bool slot_items = plan.decode_slot_items && tiles == 1;
  const bool gated = p.activation != Activation::kRelu2;
  kernels::DecodeParams g1{};
  g1.weights = a.w13.data;
  g1.input = a.x.data;
  g1.dst_to_src = slot_items ? nullptr : w.dst_to_src;
  g1.slot_scale =
      p.apply_router_weight_on_input ? static_cast<const float*>(a.top_k_weights.data) : nullptr;
  g1.top_k = static_cast<std::int32_t>(a.top_k_ids.size(1));
  g1.offsets = slot_items ? nullptr : w.offsets;
  g1.num_experts = p.num_experts;
  if (slot_items) {  // no layout kernel ran: items come from the ids; GEMM1 writes the map
    g1.slot_ids = a.top_k_ids.data;
    g1.slot_ids_int64 = a.top_k_ids.dtype == DType::kInt64;
    g1.expert_map = static_cast<const std::int32_t*>(a.expert_map.data);
    g1.map_size = a.expert_map.defined() ? a.expert_map.numel() : 0;
    g1.src_to_dst_out = w.src_to_dst;
  }
  g1.k = p.hidden_size;
  g1.n_out = p.intermediate_size;
  g1.w_rows = static_cast<std::int32_t>(detail::experts_rows13(p));
  g1.bias = a.b13.data;
  g1.bias_f32 = is_f32(a.b13);
  g1.activation = p.activation;
  const bool interleaved = experts_w13_interleaved(p);  // gate / up rows 2o, 2o+1 (else o, I+o)
  g1.gate_step = interleaved ? 2 : 1;
  g1.up_offset = interleaved ? 1 : p.intermediate_size;
  g1.apply_relu2 = !gated;
  g1.alpha = p.swiglu_alpha;
  g1.limit = p.swiglu_limit;
  g1.out = w.act;
  g1.pipeline_blocks = decode_pipeline_enabled();
  kernels::DecodeParams g2 = g1;
  g2.weights = a.w2.data;
  g2.input = w.act;
  g2.dst_to_src = nullptr;
  g2.slot_scale = nullptr;
  g2.k = p.intermediate_size;
  g2.n_out = p.hidden_size;
  g2.w_rows = p.hidden_size;
  g2.bias = a.b2.data;
  g2.bias_f32 = is_f32(a.b2);
  g2.apply_relu2 = false;
  g2.out = w.xy;
  g2.src_to_dst_out = nullptr;
  detail::DeviceAttrs dev;
  SY_RETURN_IF_ERROR(detail::current_device_attrs(&dev));
  const DecodeShape shape = decode_shape(plan, p.num_experts, num_slots);
  // The kernels number their work units (item, column block) in 32 bits.
  const std::int64_t units =
      shape.items * std::max(decode_column_blocks(g1), decode_column_blocks(g2));
  if (units > std::numeric_limits<std::int32_t>::max()) {
    return detail::invalid_arg(kOp, "decode plan work units", units,
                               "< 2^31 (fewer slots, or a grouped GEMM plan)");
  }
  const heuristics::DecodeGemm2 kind = decode_gemm2_kind(p, plan, num_slots, dev.sms);
  const int balanced = decode_balanced_bits(plan);
  cudaError_t err;
  if (tiles <= 1) {
    err = launch_decode_tiles<T, 1>(g1, g2, gated, kind, shape, balanced, dev.sms, stream);
  } else if (tiles == 2) {
    err = launch_decode_tiles<T, 2>(g1, g2, gated, kind, shape, balanced, dev.sms, stream);
  } else if (tiles <= 4) {
    err = launch_decode_tiles<T, 4>(g1, g2, gated, kind, shape, balanced, dev.sms, stream);
  } else {
    err = launch_decode_tiles<T, 8>(g1, g2, gated, kind, shape, balanced, dev.sms, stream);
  }
  if (err == cudaSuccess) err = cudaGetLastError();
  return detail::cuda_status(err, "fused_experts_cuda: decode kernel launch");
}

template <typename T>
Status run_grouped_gemm(const ExpertsParams& p, const ExpertsArgs& a, const Buffers& w,
                        const heuristics::ExpertsPlan& plan, std::int64_t num_slots,
                        cudaStream_t stream) {
  const std::int64_t S = num_slots, H = p.hidden_size, I = p.intermediate_size;
  const std::int64_t K = a.top_k_ids.size(1);
  const DType dtype = a.x.dtype;
  const int blocks = pointwise_blocks(S);

  PermuteArgs pa;
  pa.x = a.x;
  pa.dst_to_src = TensorView::contiguous(w.dst_to_src, DType::kInt64, {S}, Device::kCuda);
  pa.top_k = static_cast<std::int32_t>(K);
  pa.out = TensorView::contiguous(w.xy, dtype, {S, H}, Device::kCuda);
  // expert_layout_cuda wrote both maps: the token-major path reads each x row once.
  pa.src_to_dst = TensorView::contiguous(w.src_to_dst, DType::kInt64, {S}, Device::kCuda);
  SY_RETURN_IF_ERROR(permute_cuda(pa, stream));
  if (p.apply_router_weight_on_input) {
    kernels::scale_rows_kernel<T><<<blocks, kernels::kPointwiseThreads, 0, stream>>>(
        w.offsets, p.num_experts, w.dst_to_src, static_cast<const float*>(a.top_k_weights.data),
        p.hidden_size, static_cast<T*>(w.xy));
    SY_RETURN_IF_ERROR(
        detail::cuda_status(cudaGetLastError(), "fused_experts_cuda: scale_rows launch"));
  }

  detail::GroupedGemmArgs g1;
  g1.dtype = dtype;
  g1.out_dtype = plan.gemm1_rounded ? dtype : DType::kFloat32;  // w.f32 holds either
  g1.a = w.xy;
  g1.b = a.w13.data;
  g1.c = w.f32;
  g1.offsets = w.offsets;
  g1.num_groups = p.num_experts;
  g1.rows = S;
  g1.n = static_cast<std::int32_t>(detail::experts_rows13(p));
  g1.k = p.hidden_size;
  g1.dynamic_tiles = plan.gemm_dynamic_tiles;
  const bool interleaved = experts_w13_interleaved(p);
  if (heuristics::gemm1_fuses_activation(plan, interleaved)) {
    // Interleaved gate/up rows: GEMM1's epilogue applies bias and activation and writes act.
    detail::GroupedGemmGated gated;
    gated.activation = p.activation;
    gated.alpha = p.swiglu_alpha;
    gated.limit = p.swiglu_limit;
    gated.bias = a.b13.data;
    gated.bias_f32 = is_f32(a.b13);
    gated.round_inputs = plan.gemm1_rounded;
    g1.gated = &gated;
    g1.out_dtype = dtype;
    g1.c = w.act;
    if (detail::gemm_pair_runs(p, plan, a.b2.defined())) {
      // GEMM1 and GEMM2 as one kernel (experts/gemm_pair.cuh): y = act @ w2^T into w.xy.
      detail::GroupedGemmArgs g2 = g1;
      g2.gated = nullptr;
      g2.a = w.act;
      g2.b = a.w2.data;
      g2.c = w.xy;
      g2.n = p.hidden_size;
      g2.k = p.intermediate_size;
      return detail::grouped_gemm_pair_cuda(g1, g2, w.gemm, w.plan.gemm_bytes, stream);
    }
    SY_RETURN_IF_ERROR(
        detail::grouped_gemm_cuda(g1, plan.gemm_tile, w.gemm, w.plan.gemm_bytes, stream));
    g1.gated = nullptr;
  } else {
    SY_RETURN_IF_ERROR(
        detail::grouped_gemm_cuda(g1, plan.gemm_tile, w.gemm, w.plan.gemm_bytes, stream));
    if (plan.gemm1_rounded) {
      kernels::activation_kernel<T, T><<<blocks, kernels::kPointwiseThreads, 0, stream>>>(
          reinterpret_cast<const T*>(w.f32), w.offsets, p.num_experts, p.intermediate_size,
          p.activation, interleaved, p.swiglu_alpha, p.swiglu_limit, a.b13.data, is_f32(a.b13),
          static_cast<T*>(w.act));
    } else {
      kernels::activation_kernel<T><<<blocks, kernels::kPointwiseThreads, 0, stream>>>(
          w.f32, w.offsets, p.num_experts, p.intermediate_size, p.activation, interleaved,
          p.swiglu_alpha, p.swiglu_limit, a.b13.data, is_f32(a.b13), static_cast<T*>(w.act));
    }
    SY_RETURN_IF_ERROR(detail::cuda_status(cudaGetLastError(), "fused_experts_cuda: activation"));
  }

  detail::GroupedGemmArgs g2 = g1;
  g2.a = w.act;
  g2.b = a.w2.data;
  g2.n = p.hidden_size;
  g2.k = p.intermediate_size;
  if (a.b2.defined()) {  // float32 out, then + b2 and one rounding
    g2.out_dtype = DType::kFloat32;
    g2.c = w.f32;
    SY_RETURN_IF_ERROR(
        detail::grouped_gemm_cuda(g2, plan.gemm2_tile, w.gemm, w.plan.gemm_bytes, stream));
    kernels::bias_round_kernel<T><<<blocks, kernels::kPointwiseThreads, 0, stream>>>(
        w.f32, w.offsets, p.num_experts, p.hidden_size, a.b2.data, is_f32(a.b2),
        static_cast<T*>(w.xy));
  } else {
    g2.out_dtype = dtype;
    g2.c = w.xy;
    SY_RETURN_IF_ERROR(
        detail::grouped_gemm_cuda(g2, plan.gemm2_tile, w.gemm, w.plan.gemm_bytes, stream));
  }
  (void)I;
  return detail::cuda_status(cudaGetLastError(), "fused_experts_cuda: kernel launch");
}

}  // namespace

std::size_t fused_experts_workspace_size(const ExpertsParams& params, std::int64_t num_tokens,
                                         std::int32_t top_k) {
  return workspace_plan(params, std::max<std::int64_t>(num_tokens, 0) * std::max(top_k, 0)).total;
}

namespace detail {

heuristics::DecodeGemm2 decode_gemm2_instance(const ExpertsParams& p, std::int64_t num_tokens,
                                              std::int32_t top_k,
                                              const heuristics::ExpertsPlan& plan) {
  DeviceAttrs dev;
  if (!current_device_attrs(&dev).ok()) {
    return heuristics::decode_gemm2_for(plan, p.intermediate_size);
  }
  return decode_gemm2_kind(p, plan, std::max<std::int64_t>(num_tokens, 0) * std::max(top_k, 0),
                           dev.sms);
}

bool token_kernel_runs(const ExpertsParams& p, std::int64_t num_tokens, std::int32_t top_k,
                       const heuristics::ExpertsPlan& plan, TokenLaunch* launch) {
  TokenLaunch token;
  return plan.path == heuristics::ExpertsPath::kDecode && plan.decode_token_tiles == 1 &&
         plan.decode_fused_token &&
         token_kernel_fits(p, num_tokens, top_k, launch ? launch : &token);
}

bool token_kernel_runs(const ExpertsParams& p, std::int64_t num_tokens, std::int32_t top_k,
                       const heuristics::ExpertsPlan& plan) {
  return token_kernel_runs(p, num_tokens, top_k, plan, nullptr);
}

bool gemm_tiles_from_counter(const heuristics::ExpertsPlan& plan) {
  if (plan.path != heuristics::ExpertsPath::kGroupedGemm) return false;
  const bool single64 = plan.gemm_tile == heuristics::GemmTile::kRows64Single ||
                        plan.gemm2_tile == heuristics::GemmTile::kRows64Single;
  return single64 && grouped_gemm_dynamic_tiles(plan.gemm_dynamic_tiles);
}

bool gemm_pair_runs(const ExpertsParams& p, const heuristics::ExpertsPlan& plan, bool has_b2) {
  return plan.path == heuristics::ExpertsPath::kGroupedGemm &&
         heuristics::gemm1_fuses_activation(plan, experts_w13_interleaved(p)) &&
         plan.gemm2_tile == heuristics::GemmTile::kRows64Single && !has_b2 &&
         grouped_gemm_pair(plan.gemm_pair);
}

Status fused_experts_cuda_plan(const ExpertsParams& p, const ExpertsArgs& a, void* workspace,
                               std::size_t workspace_bytes, cudaStream_t stream,
                               const heuristics::ExpertsPlan* forced) {
  SY_RETURN_IF_ERROR(experts_check(kOp, p, a, Device::kCuda));
  SY_RETURN_IF_ERROR(check_cuda_shape(p, a));
  const std::int64_t M = a.x.size(0), K = a.top_k_ids.size(1), S = M * K;
  const WorkspacePlan wp = workspace_plan(p, S);
  if (workspace_bytes < wp.total) {
    return invalid_arg(kOp, "workspace_bytes", workspace_bytes,
                       ">= fused_experts_workspace_size() = " + std::to_string(wp.total));
  }
  if (workspace == nullptr && wp.total > 0 && M > 0 && K > 0) {
    return invalid_arg(kOp, "workspace", "null", "a device pointer");
  }
  if (M == 0 || K == 0) {
    if (M > 0) {  // every column dropped: zeros
      return cuda_status(
          cudaMemsetAsync(a.out.data, 0, static_cast<std::size_t>(a.out.numel()) * 2, stream),
          "fused_experts_cuda: zero the output");
    }
    return Status::Ok();
  }
  const Buffers w = carve(wp, workspace);

  ExpertLayoutParams lp;
  lp.num_experts = p.num_experts;
  lp.alignment = 1;
  ExpertLayoutArgs la;
  la.top_k_ids = a.top_k_ids;
  la.expert_map = a.expert_map;
  la.expert_counts =
      TensorView::contiguous(w.counts, DType::kInt32, {p.num_experts}, Device::kCuda);
  la.expert_offsets =
      TensorView::contiguous(w.offsets, DType::kInt64, {p.num_experts + 1}, Device::kCuda);
  la.src_to_dst = TensorView::contiguous(w.src_to_dst, DType::kInt64, {S}, Device::kCuda);
  la.dst_to_src = TensorView::contiguous(w.dst_to_src, DType::kInt64, {S}, Device::kCuda);
  const heuristics::ExpertsPlan plan =
      forced ? *forced
             : heuristics::plan_experts(M, static_cast<std::int32_t>(K), p.num_experts,
                                        p.hidden_size, p.intermediate_size,
                                        experts_w13_interleaved(p), a.b2.defined());
  // Decode with slot items takes its work items from the ids (GEMM1 writes src_to_dst), and the
  // one-token kernel (one or two tokens, where it fits) reads them itself: no layout kernel, but
  // the same argument checks.
  const bool slot_items = plan.path == heuristics::ExpertsPath::kDecode &&
                          plan.decode_token_tiles == 1 && plan.decode_slot_items;
  TokenLaunch token;
  const bool token_kernel = token_kernel_runs(p, M, static_cast<std::int32_t>(K), plan, &token);
  const Status st = slot_items || token_kernel
                        ? detail::layout_check("expert_layout_cuda", lp, la, Device::kCuda,
                                               detail::kMaxCudaAlignExperts)
                        : expert_layout_cuda(lp, la, w.layout, wp.layout_bytes, stream);
  if (!st.ok()) return Status(st.code(), std::string(kOp) + " (routing): " + st.message());

  // GEMM1, GEMM2 and the combine in one kernel (no combine below).
  if (token_kernel) return launch_token_kernel(p, a, w.act, token, stream);

  const bool bf16 = a.x.dtype == DType::kBFloat16;
  if (plan.path == heuristics::ExpertsPath::kDecode) {
    SY_RETURN_IF_ERROR(bf16 ? run_decode<detail::bf16_t>(p, a, w, plan, S, stream)
                            : run_decode<detail::fp16_t>(p, a, w, plan, S, stream));
  } else {
    SY_RETURN_IF_ERROR(bf16 ? run_grouped_gemm<detail::bf16_t>(p, a, w, plan, S, stream)
                            : run_grouped_gemm<detail::fp16_t>(p, a, w, plan, S, stream));
  }

  CombineParams cp;
  cp.routed_scaling_factor = p.routed_scaling_factor;
  CombineArgs ca;
  ca.y = TensorView::contiguous(w.xy, a.x.dtype, {S, p.hidden_size}, Device::kCuda);
  ca.src_to_dst = la.src_to_dst;
  if (p.apply_router_weight_on_input) {
    // The router weight went into x: combine with no weights (each 1; same float operations).
    ca.top_k = static_cast<std::int32_t>(K);
  } else {
    ca.top_k_weights = a.top_k_weights;
  }
  ca.out = a.out;
  // After the decode kernels (which trigger their dependents early) the combine launches with PDL
  // too; after the grouped GEMM path it is an ordinary launch.
  return combine_cuda_launch(cp, ca, stream, plan.path == heuristics::ExpertsPath::kDecode);
}

}  // namespace detail

Status fused_experts_cuda(const ExpertsParams& params, const ExpertsArgs& args, void* workspace,
                          std::size_t workspace_bytes, cudaStream_t stream) {
  return detail::fused_experts_cuda_plan(params, args, workspace, workspace_bytes, stream, nullptr);
}

}  // namespace switchyard
