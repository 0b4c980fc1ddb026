// Runs routing kernels on the host SIMT emulator against route_cpu, bit for bit: the CUDA tests'
// matrix and fuzz cases, without a GPU. Built and run by CTest (tests/CMakeLists.txt; GCC builds).
// Kernels (KERNELS, default rowblock):
//  - rowblock: the row-block kernel (routing_row_block.cuh) in every row-block layout
//    (routing_row_block_emu.matrix / .fuzz);
//  - prefilter: the lane-group kernel with the approximate pre-filter (routing_prefilter.cuh,
//    layout code 64), whose approximate score is modelled as the exact sigmoid_f plus an
//    adversarial perturbation of up to 2^-19, more than twice the proven bound
//    (routing_lane_group_emu.prefilter_matrix / _fuzz / _presets / _cases); also prints how many
//    rows the pre-filter settled and the candidate counts.
//  - quad: the quad kernel (routing_quad.cuh, layout code 66) where it serves the routing;
//  - staged: the staged kernel (routing_staged.cuh, layout code 67) where it serves the routing
//    (its halves and cp.async have host models; the approximate sigmoid is perturbed as above);
//  - warp: the warp kernel (routing_warp.cuh, layout code 68) for E <= 32, and the wide warp
//    kernel (routing_warp_wide.cuh, code 69) for 33 <= E <= 512;
//  - packed: the packed kernel (routing_packed.cuh, layout codes 71..73) in each of its layouts
//    (8, 16, 32 experts per lane) where it serves the routing (16-bit logits);
//  - lut: the LUT kernel (routing_lut.cuh, layout code 74) where it serves the routing (bf16
//    sigmoid rows), on a grid of at most 2 blocks so that warps stride over the rows.
//   build-cpu/tests/routing_row_block_emu matrix | fuzz [cases] | presets | preset NAME M | cases
//                                         | lutcases [KERNELS]
// (cases: for_each_prefilter_case of routing_test_util.h, meant for KERNELS = prefilter.)
//   build-cpu/tests/routing_row_block_emu bound     (checks |sigmoid_f - sigmoid| <= 2^-21)
#include "cuda_emu.h"
// The row-block kernel's dynamic shared memory (`extern __shared__`, thread_local here: build with
// -fno-extern-tls-init, or GCC calls a missing TLS initialiser): room for 2 x 1024 words (ord and
// score for E <= 1024 in every layout) with margin.
namespace switchyard::kernels {
alignas(16) thread_local std::uint32_t row_block_leaves[2 * 2048];
// The lane-group kernel's group scores: up to 4 rows per block (32 lanes) x 32 groups, then
// drop_groups' words (4 rows x up to 512); the LUT kernel's fallback: up to 24 warps x 16 groups.
thread_local std::uint32_t group_smem[4 * 32 + 4 * 512];
// The wide warp kernel's drop_groups words: 4 warps x up to 512.
thread_local std::uint32_t wide_words[4 * 512];
// The staged kernel's dynamic shared memory (its largest layout: E = 512 float logits, ~147 KB).
alignas(16) thread_local unsigned char staged_smem[160 * 1024];
}  // namespace switchyard::kernels
// Whether the runners give drop_groups its words (SWITCHYARD_ROUTING_GROUP_WORDS=0: not).
inline bool group_words() {
  const char* v = std::getenv("SWITCHYARD_ROUTING_GROUP_WORDS");
  return v == nullptr || std::strcmp(v, "0") != 0;
}
// Pre-filter statistics (SY_PREFILTER_STATS hooks in routing_prefilter.cuh).
namespace emu_stats {
inline long long rows_prefiltered = 0, rows_fallback = 0, candidates = 0, max_candidates = 0;
}  // namespace emu_stats
#define SY_PREFILTER_STATS(ok, n)                                                   \
  do {                                                                              \
    if (emu::lane() == 0) {                                                         \
      (ok) ? ++emu_stats::rows_prefiltered : ++emu_stats::rows_fallback;            \
      if (ok) emu_stats::candidates += (n);                                         \
      if ((ok) && (n) > emu_stats::max_candidates) emu_stats::max_candidates = (n); \
    }                                                                               \
  } while (0)
#define SY_QUAD_STATS(lane, ok, n)                                                  \
  do {                                                                              \
    if ((lane) == 0) {                                                              \
      (ok) ? ++emu_stats::rows_prefiltered : ++emu_stats::rows_fallback;            \
      if (ok) emu_stats::candidates += (n);                                         \
      if ((ok) && (n) > emu_stats::max_candidates) emu_stats::max_candidates = (n); \
    }                                                                               \
  } while (0)
#define SY_STAGED_STATS(ok, n)                                                    \
  do {                                                                            \
    (ok) ? ++emu_stats::rows_prefiltered : ++emu_stats::rows_fallback;            \
    if (ok) emu_stats::candidates += (n);                                         \
    if ((ok) && (n) > emu_stats::max_candidates) emu_stats::max_candidates = (n); \
  } while (0)
#define SY_PACKED_STATS(lane, ok)                                                       \
  do {                                                                                  \
    if ((lane) == 0) (ok) ? ++emu_stats::rows_prefiltered : ++emu_stats::rows_fallback; \
  } while (0)
#define SY_LUT_STATS(lane, ok)                                                          \
  do {                                                                                  \
    if ((lane) == 0) (ok) ? ++emu_stats::rows_prefiltered : ++emu_stats::rows_fallback; \
  } while (0)
// clang-format off
#include "cuda/kernels/routing_lut.cuh"
#include "cuda/kernels/routing_packed.cuh"
#include "cuda/kernels/routing_row_block.cuh"
#include "cuda/kernels/routing_staged.cuh"
#include "cuda/kernels/routing_quad.cuh"
#include "cuda/kernels/routing_warp.cuh"
#include "cuda/kernels/routing_warp_wide.cuh"
// clang-format on
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "common/routing_kernel_params.h"
#include "cuda/heuristics/routing.h"
#include "routing_test_util.h"
#include "switchyard/models.h"

using namespace switchyard;
using namespace switchyard::testing;

// Model of the hardware approximate sigmoid: the exact score plus a perturbation in
// [-2^-19, 2^-19] (a hash of x picks +-2^-19, +-2^-20, +-2^-23 or 0; the extremes most often),
// clamped to [0, 1] like rcp(1 + e) is. routing_prefilter.cuh proves the hardware's error <= 2^-20.
namespace switchyard::kernels {
float host_approx_sigmoid(float x) {
  const float s = detail::sigmoid_f(x);
  if (s != s) return s;
  std::uint32_t h = detail::float_to_bits(x) * 0x9e3779b1u;
  h ^= h >> 15;
  h *= 0x85ebca77u;
  h ^= h >> 13;
  static const float kSteps[8] = {0x1p-19f, -0x1p-19f, 0x1p-19f, -0x1p-19f,
                                  0x1p-20f, -0x1p-20f, 0x1p-23f, 0.0f};
  const float a = s + kSteps[h & 7u];
  return a < 0.0f ? 0.0f : (a > 1.0f ? 1.0f : a);
}
}  // namespace switchyard::kernels

namespace {

bool g_prefilter = false;  // KERNELS = prefilter
bool g_quad = false;       // KERNELS = quad
bool g_staged = false;     // KERNELS = staged
bool g_warp = false;       // KERNELS = warp
bool g_packed = false;     // KERNELS = packed
bool g_lut = false;        // KERNELS = lut

int g_packed_vals = 8;  // the packed layout check() runs (8, 16 or 32 experts per lane)

template <typename T, int kVals, int kLanes>
void run_packed_layout(const detail::RoutingKernelParams& kp, bool vec_ok, bool ids64) {
  const std::int64_t rows = kernels::kPackedThreads / kLanes;
  const unsigned blocks = static_cast<unsigned>((kp.num_tokens + rows - 1) / rows);
  auto run = [&](auto kernel) { emu::launch(blocks, kernels::kPackedThreads, kernel); };
  const int K = kp.p.top_k;
  if (K == 1) {
    run([&]() { kernels::routing_packed_kernel<T, kVals, kLanes, 1>(kp, vec_ok, ids64); });
  } else if (K <= 4) {
    run([&]() { kernels::routing_packed_kernel<T, kVals, kLanes, 4>(kp, vec_ok, ids64); });
  } else {
    run([&]() { kernels::routing_packed_kernel<T, kVals, kLanes, 8>(kp, vec_ok, ids64); });
  }
}
template <typename T>
void run_packed(int vals, const detail::RoutingKernelParams& kp, bool vec_ok, bool ids64) {
  const int lanes = detail::routing_row_capacity(kp.p.num_experts) / vals;
#define SY_EMU_PACKED(V, L) \
  if (vals == (V) && lanes == (L)) return run_packed_layout<T, V, L>(kp, vec_ok, ids64);
  SY_EMU_PACKED(16, 4)
  SY_EMU_PACKED(8, 8)
  SY_EMU_PACKED(32, 4)
  SY_EMU_PACKED(16, 8)
  SY_EMU_PACKED(8, 16)
  SY_EMU_PACKED(32, 8)
  SY_EMU_PACKED(16, 16)
  SY_EMU_PACKED(8, 32)
  SY_EMU_PACKED(32, 16)
  SY_EMU_PACKED(16, 32)
#undef SY_EMU_PACKED
}

template <int kVals, int kLanes, bool kGrouped>
void run_lut_layout(const detail::RoutingKernelParams& kp, bool vec_ok, bool ids64) {
  const std::int64_t tiles = (kp.num_tokens + 32 / kLanes - 1) / (32 / kLanes);
  const unsigned blocks = static_cast<unsigned>(tiles < 2 ? tiles : 2);  // warps stride
  emu::launch(
      blocks, static_cast<unsigned>(kernels::lut_threads(kLanes, kVals)),
      [&]() { kernels::routing_lut_kernel<kVals, kLanes, kGrouped>(kp, vec_ok, ids64); },
      [] { std::memset(kernels::group_smem, 0xab, sizeof kernels::group_smem); });
}
bool g_lut_wide8 = false;  // run the 8 x 48 layout (heuristics::routing_lut_layout at many rows)
void run_lut(const detail::RoutingKernelParams& kp, bool vec_ok, bool ids64) {
  const int E = kp.p.num_experts;
  if (g_lut_wide8) return run_lut_layout<48, 8, false>(kp, vec_ok, ids64);
  const int vals = detail::routing_lut_vals(E), lanes = detail::routing_lut_lanes(E);
  if (kp.p.group_score != GroupScore::kNone) {
    if (lanes == 4) return run_lut_layout<32, 4, true>(kp, vec_ok, ids64);
    if (lanes == 8) return run_lut_layout<32, 8, true>(kp, vec_ok, ids64);
    return run_lut_layout<32, 16, true>(kp, vec_ok, ids64);
  }
#define SY_EMU_LUT(V, L) \
  if (vals == (V) && lanes == (L)) return run_lut_layout<V, L, false>(kp, vec_ok, ids64);
  SY_EMU_LUT(16, 4)
  SY_EMU_LUT(24, 4)
  SY_EMU_LUT(32, 4)
  SY_EMU_LUT(24, 8)
  SY_EMU_LUT(32, 8)
  SY_EMU_LUT(24, 16)
  SY_EMU_LUT(32, 16)
#undef SY_EMU_LUT
}

// The warp kernel (E <= 32) or the wide warp kernel (33..512: next_pow2(E) / 32 per lane).
template <typename T, ScoreFunc kF>
void run_warp_instance(const detail::RoutingKernelParams& kp, bool vec_ok, bool ids64) {
  constexpr std::int64_t kRows = kernels::kWarpRoutingRows;
  const unsigned blocks = static_cast<unsigned>((kp.num_tokens + kRows - 1) / kRows);
  auto run = [&](auto kernel) {
    emu::launch(blocks, kernels::kWarpRoutingThreads, kernel,
                [] { std::memset(kernels::wide_words, 0xab, sizeof kernels::wide_words); });
  };
  // drop_groups' words where the launcher adds them (launch/routing.cu), unless
  // SWITCHYARD_ROUTING_GROUP_WORDS=0 (the butterflies per group).
  const int vals = detail::routing_row_capacity(kp.p.num_experts) / 32;
  emu::dynamic_smem_bytes = group_words() && vals > 1 && kp.p.group_score != GroupScore::kNone
                                ? static_cast<unsigned>(kernels::kWarpRoutingRows * 32 * vals * 4)
                                : 0u;
  switch (detail::routing_row_capacity(kp.p.num_experts) / 32) {
    case 0:
    case 1:
      return run([&]() { kernels::routing_warp_kernel<T, kF>(kp, ids64); });
    case 2:
      return run([&]() { kernels::routing_warp_wide_kernel<T, kF, 2>(kp, vec_ok, ids64); });
    case 4:
      return run([&]() { kernels::routing_warp_wide_kernel<T, kF, 4>(kp, vec_ok, ids64); });
    case 8:
      return run([&]() { kernels::routing_warp_wide_kernel<T, kF, 8>(kp, vec_ok, ids64); });
    default:
      return run([&]() { kernels::routing_warp_wide_kernel<T, kF, 16>(kp, vec_ok, ids64); });
  }
}
template <typename T>
void run_warp_kernel(const detail::RoutingKernelParams& kp, bool vec_ok, bool ids64) {
  switch (kp.p.score_func) {
    case ScoreFunc::kSoftmax:
      return run_warp_instance<T, ScoreFunc::kSoftmax>(kp, vec_ok, ids64);
    case ScoreFunc::kSigmoid:
      return run_warp_instance<T, ScoreFunc::kSigmoid>(kp, vec_ok, ids64);
    case ScoreFunc::kSqrtSoftplus:
      return run_warp_instance<T, ScoreFunc::kSqrtSoftplus>(kp, vec_ok, ids64);
    case ScoreFunc::kTopkThenSoftmax:
      return run_warp_instance<T, ScoreFunc::kTopkThenSoftmax>(kp, vec_ok, ids64);
    case ScoreFunc::kTopkThenSigmoid:
      return run_warp_instance<T, ScoreFunc::kTopkThenSigmoid>(kp, vec_ok, ids64);
  }
}

template <typename T, int kSegs, bool kGrouped>
void run_staged_kernel(const detail::RoutingKernelParams& kp, bool ids64) {
  constexpr std::int64_t kRows = kernels::kStagedWarps * kernels::kStagedWarpRows;
  const unsigned blocks = static_cast<unsigned>((kp.num_tokens + kRows - 1) / kRows);
  emu::launch(
      blocks, kernels::kStagedThreads,
      [&]() { kernels::routing_staged_kernel<T, kSegs, kGrouped>(kp, ids64); },
      [] {
        std::memset(kernels::staged_smem, 0xab, sizeof kernels::staged_smem);
        std::memset(kernels::group_smem, 0xab, sizeof kernels::group_smem);
      });
}

template <typename T>
void run_staged(int segs, const detail::RoutingKernelParams& kp, bool ids64) {
  const bool grouped = kp.p.group_score != GroupScore::kNone;
  if (segs <= 8) {
    grouped ? run_staged_kernel<T, 8, true>(kp, ids64) : run_staged_kernel<T, 8, false>(kp, ids64);
  } else {
    grouped ? run_staged_kernel<T, 16, true>(kp, ids64)
            : run_staged_kernel<T, 16, false>(kp, ids64);
  }
}

// The staged kernel's rule, with aligned rows (the problems here have them).
bool staged_serves(const RoutingParams& p) {
  return detail::routing_staged_segs(p.num_experts, p.top_k, p.score_func, p.softcap > 0.0f,
                                     p.group_score, p.num_groups, p.topk_groups) > 0;
}

template <typename T, int V, bool kApprox, int kGroup>
void run_quad_kernel(const detail::RoutingKernelParams& kp, bool vec_ok, bool ids64) {
  const unsigned blocks =
      static_cast<unsigned>((kp.num_tokens + kernels::kQuadRows - 1) / kernels::kQuadRows);
  emu::launch(
      blocks, 128,
      [&]() { kernels::routing_quad_kernel<T, V, kApprox, kGroup>(kp, vec_ok, ids64); },
      [] { std::memset(kernels::group_smem, 0xab, sizeof kernels::group_smem); });
}

template <typename T, int V>
void run_quad_mode(const detail::RoutingKernelParams& kp, bool vec_ok, bool ids64) {
  if (kp.p.score_func != ScoreFunc::kSigmoid) {
    run_quad_kernel<T, V, false, 0>(kp, vec_ok, ids64);
  } else if (kp.p.group_score != GroupScore::kNone) {
    run_quad_kernel<T, V, true, 32>(kp, vec_ok, ids64);
  } else {
    run_quad_kernel<T, V, true, 0>(kp, vec_ok, ids64);
  }
}

template <typename T>
void run_quad_vals(int V, const detail::RoutingKernelParams& kp, bool vec_ok, bool ids64) {
  if (V == 32) run_quad_mode<T, 32>(kp, vec_ok, ids64);
  if (V == 64) run_quad_mode<T, 64>(kp, vec_ok, ids64);
  if (V == 96) run_quad_mode<T, 96>(kp, vec_ok, ids64);
}

template <typename T, int V>
void run_prefilter_kernel(const detail::RoutingKernelParams& kp, bool vec_ok, bool ids64) {
  const unsigned blocks = static_cast<unsigned>((kp.num_tokens + 3) / 4);
  const bool grouped = kp.p.group_score != GroupScore::kNone;
  emu::dynamic_smem_bytes =
      grouped ? static_cast<unsigned>(4 * (kp.p.num_groups + (group_words() ? 32 * V : 0)) * 4)
              : 0u;
  emu::launch(
      blocks, 128,
      [&]() { kernels::routing_kernel<T, 32, V, false, true>(kp, vec_ok, ids64, nullptr); },
      [] { std::memset(kernels::group_smem, 0xab, sizeof kernels::group_smem); });
}

template <typename T>
void run_prefilter_vals(int V, const detail::RoutingKernelParams& kp, bool vec_ok, bool ids64) {
  if (V == 2) run_prefilter_kernel<T, 2>(kp, vec_ok, ids64);
  if (V == 4) run_prefilter_kernel<T, 4>(kp, vec_ok, ids64);
  if (V == 8) run_prefilter_kernel<T, 8>(kp, vec_ok, ids64);
  if (V == 16) run_prefilter_kernel<T, 16>(kp, vec_ok, ids64);
}

template <typename T, int V>
void run_kernel(const detail::RoutingKernelParams& kp, bool vec_ok, bool ids64, unsigned threads) {
  const kernels::RowBlockPlan plan =
      kernels::make_row_block_plan(kp.p, static_cast<int>(threads), V);
  emu::launch(
      static_cast<unsigned>(kp.num_tokens), threads,
      [&]() { kernels::routing_row_block_kernel<T, V, false>(kp, plan, vec_ok, ids64, nullptr); },
      [] { std::memset(kernels::row_block_leaves, 0xab, sizeof kernels::row_block_leaves); });
}

template <typename T>
void run_vals(int V, const detail::RoutingKernelParams& kp, bool vec_ok, bool ids64,
              unsigned threads) {
  if (V == 1) run_kernel<T, 1>(kp, vec_ok, ids64, threads);
  if (V == 2) run_kernel<T, 2>(kp, vec_ok, ids64, threads);
  if (V == 4) run_kernel<T, 4>(kp, vec_ok, ids64, threads);
  if (V == 8) run_kernel<T, 8>(kp, vec_ok, ids64, threads);
  if (V == 16) run_kernel<T, 16>(kp, vec_ok, ids64, threads);
}

// Emulated GPU run of the row-block layout with V experts per thread.
Status run_emu(const tools::RoutingProblem& pr, int V, tools::RoutingResult* out) {
  const std::size_t n =
      static_cast<std::size_t>(pr.num_tokens) * static_cast<std::size_t>(pr.columns());
  out->weights.assign(n, 0.0f);
  if (n) std::memset(out->weights.data(), 0x7b, n * 4);
  std::vector<std::uint8_t> ids(n * dtype_size(pr.id_dtype), 0x7b);
  const std::int32_t np = pr.num_tokens_non_padded;
  RoutingArgs a = tools::routing_args(pr, Device::kCpu, pr.logits.data(), pr.bias.data(), &np,
                                      pr.placement.data(), pr.replica_counts.data(),
                                      pr.expert_map.data(), out->weights.data(), ids.data());
  Status st = routing_check(pr.params, a, Device::kCpu);
  if (!st.ok()) return st;
  const detail::RoutingKernelParams kp = detail::make_routing_kernel_params(pr.params, a);
  if (kp.num_tokens > 0) {
    const std::size_t elem = dtype_size(a.logits.dtype);
    const bool vec_ok = reinterpret_cast<std::uintptr_t>(kp.logits) % 16 == 0 &&
                        (static_cast<std::size_t>(kp.row_stride) * elem) % 16 == 0;
    const bool ids64 = a.top_k_ids.dtype == DType::kInt64;
    const unsigned threads =
        static_cast<unsigned>(heuristics::routing_row_block_threads(pr.params.num_experts, V));
    if (g_lut) {
      if (!lut_serves(pr)) return Status::Internal("emu: the LUT kernel does not serve this");
      run_lut(kp, vec_ok, ids64);
    } else if (g_packed) {
      if (!packed_serves(pr) ||
          !heuristics::routing_packed_vals_valid(pr.params.num_experts, g_packed_vals)) {
        return Status::Internal("emu: the packed kernel does not serve this");
      }
      if (a.logits.dtype == DType::kBFloat16) {
        run_packed<detail::bf16_t>(g_packed_vals, kp, vec_ok, ids64);
      } else {
        run_packed<detail::fp16_t>(g_packed_vals, kp, vec_ok, ids64);
      }
    } else if (g_warp) {
      switch (a.logits.dtype) {
        case DType::kFloat32:
          run_warp_kernel<float>(kp, vec_ok, ids64);
          break;
        case DType::kBFloat16:
          run_warp_kernel<detail::bf16_t>(kp, vec_ok, ids64);
          break;
        default:
          run_warp_kernel<detail::fp16_t>(kp, vec_ok, ids64);
          break;
      }
    } else if (g_staged) {
      const RoutingParams& p = pr.params;
      const int segs =
          detail::routing_staged_segs(p.num_experts, p.top_k, p.score_func, p.softcap > 0.0f,
                                      p.group_score, p.num_groups, p.topk_groups);
      if (!vec_ok || segs == 0)
        return Status::Internal("emu: the staged kernel does not serve this");
      switch (a.logits.dtype) {
        case DType::kFloat32:
          run_staged<float>(segs, kp, ids64);
          break;
        case DType::kBFloat16:
          run_staged<detail::bf16_t>(segs, kp, ids64);
          break;
        default:
          run_staged<detail::fp16_t>(segs, kp, ids64);
          break;
      }
    } else if (g_quad) {
      const RoutingParams& p = pr.params;
      const int qv =
          detail::routing_quad_vals(p.num_experts, p.top_k, p.score_func, p.softcap > 0.0f,
                                    p.group_score, p.num_groups, p.topk_groups);
      switch (a.logits.dtype) {
        case DType::kFloat32:
          run_quad_vals<float>(qv, kp, vec_ok, ids64);
          break;
        case DType::kBFloat16:
          run_quad_vals<detail::bf16_t>(qv, kp, vec_ok, ids64);
          break;
        default:
          run_quad_vals<detail::fp16_t>(qv, kp, vec_ok, ids64);
          break;
      }
    } else if (g_prefilter) {
      const int pv = detail::routing_row_capacity(pr.params.num_experts) / 32;
      switch (a.logits.dtype) {
        case DType::kFloat32:
          run_prefilter_vals<float>(pv, kp, vec_ok, ids64);
          break;
        case DType::kBFloat16:
          run_prefilter_vals<detail::bf16_t>(pv, kp, vec_ok, ids64);
          break;
        default:
          run_prefilter_vals<detail::fp16_t>(pv, kp, vec_ok, ids64);
          break;
      }
    } else {
      switch (a.logits.dtype) {
        case DType::kFloat32:
          run_vals<float>(V, kp, vec_ok, ids64, threads);
          break;
        case DType::kBFloat16:
          run_vals<detail::bf16_t>(V, kp, vec_ok, ids64, threads);
          break;
        default:
          run_vals<detail::fp16_t>(V, kp, vec_ok, ids64, threads);
          break;
      }
    }
  }
  out->ids.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    if (pr.id_dtype == DType::kInt64) {
      std::int64_t v;
      std::memcpy(&v, ids.data() + 8 * i, 8);
      out->ids[i] = v;
    } else {
      std::int32_t v;
      std::memcpy(&v, ids.data() + 4 * i, 4);
      out->ids[i] = v;
    }
  }
  return Status::Ok();
}

int g_cases = 0, g_fail = 0;

void check(const tools::RoutingProblem& pr, const std::string& id) {
  tools::RoutingResult cpu;
  Status st = tools::run_routing_cpu(pr, &cpu);
  if (!st.ok()) {
    std::printf("%s cpu: %s\n", id.c_str(), st.to_string().c_str());
    ++g_fail;
    return;
  }
  for (int V : {1, 2, 4, 8, 16}) {
    if (g_lut) {
      // In the LUT layout (code 74) when it serves the routing; ungrouped rows of 257..384
      // experts also in 8 lanes of 48 (V = 2: what code 74 takes from kLutWide8Rows rows).
      const int E = pr.params.num_experts;
      const bool wide8 = pr.params.group_score == GroupScore::kNone && E > 256 && E <= 384;
      if (!lut_serves(pr) || V > 2 || (V == 2 && !wide8)) continue;
      g_lut_wide8 = V == 2;
    } else if (g_packed) {
      // One run per packed layout (codes 71..73: V = 1, 2, 4 stand for 8, 16, 32 experts per
      // lane) that serves the routing.
      if (V > 4 || !packed_serves(pr) ||
          !heuristics::routing_packed_vals_valid(pr.params.num_experts, 8 * V)) {
        continue;
      }
      g_packed_vals = 8 * V;
    } else if (g_warp) {
      // One run, in the warp layout (code 68, E <= 32; code 69, 33 <= E <= 512).
      const int E = pr.params.num_experts;
      if (V != 1 || !(heuristics::routing_layout_code_valid(E, heuristics::kRoutingWarpCode) ||
                      heuristics::routing_layout_code_valid(E, heuristics::kRoutingWarpWideCode))) {
        continue;
      }
    } else if (g_staged) {
      // One run, in the staged layout (code 67), when it serves the routing.
      if (V != 1 || !staged_serves(pr.params)) continue;
    } else if (g_quad) {
      // One run, in the quad layout (code 66), when it serves the routing.
      if (V != 1 || !quad_serves(pr.params)) continue;
    } else if (g_prefilter) {
      // One run, in the pre-filter layout (code 64), when E has it.
      if (V != 1 || !heuristics::routing_layout_code_valid(pr.params.num_experts,
                                                           heuristics::kRoutingPrefilterCode)) {
        continue;
      }
    } else if (!heuristics::routing_row_block_valid(pr.params.num_experts, V)) {
      continue;
    }
    tools::RoutingResult gpu;
    st = run_emu(pr, V, &gpu);
    ++g_cases;
    if (!st.ok()) {
      std::printf("%s V%d emu: %s\n", id.c_str(), V, st.to_string().c_str());
      ++g_fail;
      continue;
    }
    const tools::RoutingDiff d = tools::compare_routing(pr, cpu, gpu);
    if (d.rows_wrong) {
      std::printf("FAIL %s V%d: %lld rows; %s\n", id.c_str(), V,
                  static_cast<long long>(d.rows_wrong), d.first_detail.c_str());
      ++g_fail;
    }
  }
}

}  // namespace

// |sigmoid_f(x) - sigmoid(x)| <= 2^-21 (step (a) of routing_prefilter.cuh's bound) on every
// 61st float of the whole range (both signs), and on every float in [-1, 1] step 2^-12.
int check_bound() {
  double worst = 0.0;
  float worst_x = 0.0f;
  auto one = [&](float x) {
    if (!detail::is_finite(x)) return;
    const double sig = 1.0 / (1.0 + std::exp(-static_cast<double>(x)));
    const double err = std::fabs(static_cast<double>(detail::sigmoid_f(x)) - sig);
    if (err > worst) {
      worst = err;
      worst_x = x;
    }
  };
  for (std::uint64_t u = 0; u < 0x100000000ull; u += 61)
    one(detail::bits_to_float(static_cast<std::uint32_t>(u)));
  for (int i = -4096; i <= 4096; ++i) one(static_cast<float>(i) * 0x1p-12f);
  std::printf("max |sigmoid_f - sigmoid| = %.3g (2^%.2f) at x = %.9g; bound 2^-21\n", worst,
              std::log2(worst > 0 ? worst : 1e-300), static_cast<double>(worst_x));
  return worst <= 0x1p-21 ? 0 : 1;
}

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "matrix";
  if (mode == "bound") return check_bound();
  for (int i = 2; i < argc; ++i) {
    if (std::string(argv[i]) == "prefilter") g_prefilter = true;
    if (std::string(argv[i]) == "quad") g_quad = true;
    if (std::string(argv[i]) == "staged") g_staged = true;
    if (std::string(argv[i]) == "warp") g_warp = true;
    if (std::string(argv[i]) == "packed") g_packed = true;
    if (std::string(argv[i]) == "lut") g_lut = true;
  }
  if (mode == "matrix") {
    const std::vector<int> experts = {1, 2, 3, 8, 33, 64, 128, 160, 256, 288, 384, 512, 1024};
    const std::vector<int> ks = {1, 2, 4, 6, 8, 9, 16, 32};
    const DType dtypes[] = {DType::kBFloat16, DType::kFloat32, DType::kFloat16};
    for (Variant v : all_variants()) {
      for (int E : experts) {
        for (int K : ks) {
          RoutingParams p;
          if (!variant_params(v, E, K, &p)) continue;
          const std::int64_t M = E >= 512 ? 3 : 6;
          const std::string id = std::string("routing/") + variant_name(v) + "/E" +
                                 std::to_string(E) + "/K" + std::to_string(K);
          tools::RoutingProblem pr = make_problem(p, M, dtypes[(E + K) % 3], cached_logits(E, M),
                                                  variant_has_bias(v), tools::seed_from_name(id));
          if ((E + K) % 5 == 0) pr.id_dtype = DType::kInt64;
          check(pr, id);
        }
      }
      std::printf("variant %s done: cases %d failures %d\n", variant_name(v), g_cases, g_fail);
      std::fflush(stdout);
    }
  } else if (mode == "fuzz" || mode == "gpufuzz") {
    const int num_cases = argc > 2 ? std::atoi(argv[2]) : 100;
    for (int c = 0; c < num_cases; ++c) {
      FuzzCase fc;
      // Near-tied rows and biases (kind 4 and a third of the biased cases) for the pre-filter.
      // gpufuzz: the cases of the GPU test OptionsAndSpecialValuesFuzz at small scale.
      if (!(mode == "gpufuzz"
                ? make_fuzz_case(c, 200, 10, /*huge_rows=*/false, /*near_ties=*/false, &fc)
                : make_fuzz_case(c, 12, 6, /*huge_rows=*/true,
                                 /*near_ties=*/g_prefilter || g_staged || g_lut, &fc))) {
        continue;
      }
      check(fc.problem, fc.id + " " + variant_name(fc.variant) + " E" + std::to_string(fc.E) +
                            " K" + std::to_string(fc.K) + " M" +
                            std::to_string(fc.problem.num_tokens));
    }
  } else if (mode == "cases") {
    // The pre-filter's cases (for_each_prefilter_case), at 16 rows; the CUDA test
    // PrefilterLayoutMatchesCpu runs them on the GPU.
    // KERNELS = quad adds the exact-key functions (the CUDA test QuadLayoutMatchesCpu's list).
    const std::vector<Variant> quad_variants = {Variant::kSigmoidBias, Variant::kGroupedTop2Sum,
                                                Variant::kSoftmax, Variant::kTopkSoftmax,
                                                Variant::kTopkSigmoid};
    for_each_prefilter_case(
        g_quad || g_staged || g_packed || g_lut ? 40 : 16, {1, 2, 4, 8, 9, 16, 32},
        [&](const PrefilterCase& pc) {
          check(pc.problem, pc.id);
          return true;
        },
        g_quad || g_packed ? &quad_variants : nullptr);
  } else if (mode == "lutcases") {
    // The LUT kernel's near-tie cases (lut_cases), 24 rows each; the CUDA test
    // LutLayoutMatchesCpu runs them on the GPU.
    for (const NamedProblem& c : lut_cases(96)) check(c.problem, c.id);
  } else if (mode == "preset") {
    const ModelPreset* m = find_model_preset(argv[2]);
    const std::int64_t M = std::atoi(argv[3]);
    const RoutingParams p = m->routing;
    const int E = p.num_experts;
    tools::RoutingProblem pr =
        make_problem(p, M, DType::kBFloat16, cached_logits(E, M), m->has_bias, 3);
    check(pr, m->name);
  } else if (mode == "presets") {
    for (const ModelPreset& m : model_presets()) {
      for (std::int64_t M : {1, 33}) {
        const RoutingParams p = m.routing;
        tools::Rng rng(tools::seed_from_name("routing_trace/" + m.name));
        const int E = p.num_experts;
        std::vector<float> lf(static_cast<std::size_t>(M * E));
        for (float& v : lf) v = static_cast<float>(rng.normal());
        tools::RoutingProblem pr = make_problem(p, M, DType::kBFloat16, lf, m.has_bias, 3);
        check(pr, m.name + " M" + std::to_string(M));
      }
    }
    // The list finish's special rows (the GPU test RoutingCuda.ListFinishSpecialRows).
    for (const NamedProblem& c : list_finish_cases()) check(c.problem, c.id);
  }
  if (g_prefilter || g_quad || g_staged || g_packed || g_lut) {
    std::printf(
        "%s: %lld rows settled (candidates: mean %.2f, max %lld), %lld rows on the "
        "exact path\n",
        g_lut ? "lut"
              : (g_packed ? "packed" : (g_staged ? "staged" : (g_quad ? "quad" : "pre-filter"))),
        emu_stats::rows_prefiltered,
        emu_stats::rows_prefiltered ? static_cast<double>(emu_stats::candidates) /
                                          static_cast<double>(emu_stats::rows_prefiltered)
                                    : 0.0,
        emu_stats::max_candidates, emu_stats::rows_fallback);
  }
  std::printf("cases %d failures %d\n", g_cases, g_fail);
  return g_fail != 0;
}
