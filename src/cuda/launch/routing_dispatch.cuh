// Dispatch from a runtime layout (lane groups: lanes, vals; row blocks: vals) to a kernel
// instance, for one logits dtype. Instantiated once per dtype in routing_<dtype>.cu so the
// instances compile in parallel.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "../heuristics/routing.h"
#include "../kernels/routing.cuh"
#include "../kernels/routing_packed.cuh"
#include "../kernels/routing_quad.cuh"
#include "../kernels/routing_row_block.cuh"
#include "../kernels/routing_row_thread.cuh"
#include "../kernels/routing_staged.cuh"
#include "../kernels/routing_warp.cuh"
#include "../kernels/routing_warp_wide.cuh"
#include "pdl_launch.h"

namespace switchyard::launch {

// Every routing kernel starts with pdl_begin() (kernels/pdl.cuh). Calls of up to
// kRoutingPdlMaxRows rows launch as PDL secondaries: the launch overlaps the previous kernel in the
// stream (the router GEMM in a layer, the previous call in a benchmark's graph) and the next
// kernel may launch while this one runs (H200, session 18: 0.40-0.50 us less per call at 1-512
// rows). Larger calls launch plainly: at 4096 rows PDL cost up to 17% (DeepSeek-V2's lane
// groups; Qwen3-30B's wide warp kernel +16%), at 32768 DeepSeek-V3's staged kernel +6%
// (docs/routing.md, "Launch overlap"). The first kernel argument is always `kp`.
inline constexpr std::int64_t kRoutingPdlMaxRows = 512;

template <typename... KernelArgs, typename... Rest>
cudaError_t launch_routing_kernel(void (*kernel)(KernelArgs...), unsigned blocks, unsigned threads,
                                  std::size_t smem_bytes, cudaStream_t stream,
                                  const detail::RoutingKernelParams& kp, Rest&&... rest) {
  return detail::launch_ex(kernel, detail::LaunchShape{dim3(blocks), dim3(threads), smem_bytes},
                           stream, kp.num_tokens <= kRoutingPdlMaxRows, kp,
                           std::forward<Rest>(rest)...);
}

template <typename T, int kLanes, int kVals>
cudaError_t launch_routing_instance(const detail::RoutingKernelParams& kp, bool vec_ok,
                                    bool ids_int64, const heuristics::RoutingLaunchConfig& cfg,
                                    std::size_t smem_bytes, cudaStream_t stream) {
  return launch_routing_kernel(kernels::routing_kernel<T, kLanes, kVals>,
                               static_cast<unsigned>(cfg.blocks), kernels::kRoutingThreads,
                               smem_bytes, stream, kp, vec_ok, ids_int64,
                               static_cast<long long*>(nullptr));
}

template <typename T, int kVals>
cudaError_t launch_prefilter_instance(const detail::RoutingKernelParams& kp, bool vec_ok,
                                      bool ids_int64, const heuristics::RoutingLaunchConfig& cfg,
                                      std::size_t smem_bytes, cudaStream_t stream) {
  return launch_routing_kernel(kernels::routing_kernel<T, 32, kVals, false, true>,
                               static_cast<unsigned>(cfg.blocks), kernels::kRoutingThreads,
                               smem_bytes, stream, kp, vec_ok, ids_int64,
                               static_cast<long long*>(nullptr));
}

// The packed instances (16-bit logits only): 8, 16 or 32 experts per lane with 4..32 lanes per
// row (heuristics::routing_packed_vals_valid), the list length K rounded up to 1, 4 or 8.
template <typename T, int kVals, int kLanes>
cudaError_t launch_packed_layout(const detail::RoutingKernelParams& kp, bool vec_ok, bool ids_int64,
                                 const heuristics::RoutingLaunchConfig& cfg, cudaStream_t stream) {
  const unsigned blocks = static_cast<unsigned>(cfg.blocks);
  const int K = kp.p.top_k;
  if (K == 1) {
    return launch_routing_kernel(kernels::routing_packed_kernel<T, kVals, kLanes, 1>, blocks,
                                 kernels::kPackedThreads, 0, stream, kp, vec_ok, ids_int64);
  }
  if (K <= 4) {
    return launch_routing_kernel(kernels::routing_packed_kernel<T, kVals, kLanes, 4>, blocks,
                                 kernels::kPackedThreads, 0, stream, kp, vec_ok, ids_int64);
  }
  return launch_routing_kernel(kernels::routing_packed_kernel<T, kVals, kLanes, 8>, blocks,
                               kernels::kPackedThreads, 0, stream, kp, vec_ok, ids_int64);
}
template <typename T>
cudaError_t launch_packed(const detail::RoutingKernelParams& kp, bool vec_ok, bool ids_int64,
                          const heuristics::RoutingLaunchConfig& cfg, cudaStream_t stream) {
  if constexpr (std::is_same_v<T, float>) {
    return cudaErrorInvalidConfiguration;  // unreachable: routing_packed_serves
  } else {
#define SY_PACKED_CASE(V, L)                                                  \
  if (cfg.vals == (V) && cfg.lanes == (L)) {                                  \
    return launch_packed_layout<T, V, L>(kp, vec_ok, ids_int64, cfg, stream); \
  }
    SY_PACKED_CASE(16, 4)
    SY_PACKED_CASE(8, 8)
    SY_PACKED_CASE(32, 4)
    SY_PACKED_CASE(16, 8)
    SY_PACKED_CASE(8, 16)
    SY_PACKED_CASE(32, 8)
    SY_PACKED_CASE(16, 16)
    SY_PACKED_CASE(8, 32)
    SY_PACKED_CASE(32, 16)
    SY_PACKED_CASE(16, 32)
#undef SY_PACKED_CASE
    return cudaErrorInvalidConfiguration;  // unreachable: routing_packed_serves
  }
}

template <typename T, int kVals, bool kApprox, int kGroupSize>
cudaError_t launch_quad_instance(const detail::RoutingKernelParams& kp, bool vec_ok, bool ids_int64,
                                 const heuristics::RoutingLaunchConfig& cfg, std::size_t smem_bytes,
                                 cudaStream_t stream) {
  return launch_routing_kernel(kernels::routing_quad_kernel<T, kVals, kApprox, kGroupSize>,
                               static_cast<unsigned>(cfg.blocks), kernels::kRoutingThreads,
                               smem_bytes, stream, kp, vec_ok, ids_int64);
}

// The quad instances: sigmoid (approximate keys) without groups or with groups of 32, and the
// exact-key functions without groups; vals from detail::routing_quad_vals.
template <typename T>
cudaError_t launch_quad(const detail::RoutingKernelParams& kp, bool vec_ok, bool ids_int64,
                        const heuristics::RoutingLaunchConfig& cfg, std::size_t smem_bytes,
                        cudaStream_t stream) {
  const bool approx = kp.p.score_func == ScoreFunc::kSigmoid;
  const bool grouped = kp.p.group_score != GroupScore::kNone;
#define SY_QUAD_APPROX(V)                                                                        \
  if (grouped) {                                                                                 \
    return launch_quad_instance<T, V, true, 32>(kp, vec_ok, ids_int64, cfg, smem_bytes, stream); \
  }                                                                                              \
  return launch_quad_instance<T, V, true, 0>(kp, vec_ok, ids_int64, cfg, smem_bytes, stream);
#define SY_QUAD_CASE(V)                                                                            \
  case V:                                                                                          \
    if (!approx) {                                                                                 \
      return launch_quad_instance<T, V, false, 0>(kp, vec_ok, ids_int64, cfg, smem_bytes, stream); \
    }                                                                                              \
    SY_QUAD_APPROX(V)
  switch (cfg.vals) {
    SY_QUAD_CASE(32)
    SY_QUAD_CASE(64)
    SY_QUAD_CASE(96)
    default:
      return cudaErrorInvalidConfiguration;  // unreachable: routing_quad_vals
  }
#undef SY_QUAD_CASE
#undef SY_QUAD_APPROX
}

template <typename T, int kSegs, bool kGrouped>
cudaError_t launch_staged_instance(const detail::RoutingKernelParams& kp, bool ids_int64,
                                   const heuristics::RoutingLaunchConfig& cfg,
                                   cudaStream_t stream) {
  const kernels::StagedLayout l = kernels::staged_layout(
      kp.p.num_experts, static_cast<int>(sizeof(T)), kGrouped ? kp.p.num_groups : 0);
  auto* kernel = kernels::routing_staged_kernel<T, kSegs, kGrouped>;
  if (l.total_bytes > 48 * 1024) {
    const cudaError_t err =
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, l.total_bytes);
    if (err != cudaSuccess) return err;
  }
  return launch_routing_kernel(kernel, static_cast<unsigned>(cfg.blocks), kernels::kStagedThreads,
                               static_cast<std::size_t>(l.total_bytes), stream, kp, ids_int64);
}

// The staged instances: segments held 8 (E <= 256) or 16, with or without groups.
template <typename T>
cudaError_t launch_staged(const detail::RoutingKernelParams& kp, bool ids_int64,
                          const heuristics::RoutingLaunchConfig& cfg, cudaStream_t stream) {
  const bool grouped = kp.p.group_score != GroupScore::kNone;
  if (cfg.vals <= 8) {
    return grouped ? launch_staged_instance<T, 8, true>(kp, ids_int64, cfg, stream)
                   : launch_staged_instance<T, 8, false>(kp, ids_int64, cfg, stream);
  }
  return grouped ? launch_staged_instance<T, 16, true>(kp, ids_int64, cfg, stream)
                 : launch_staged_instance<T, 16, false>(kp, ids_int64, cfg, stream);
}

template <typename T, int kVals>
cudaError_t launch_row_block_instance(const detail::RoutingKernelParams& kp, bool vec_ok,
                                      bool ids_int64, const heuristics::RoutingLaunchConfig& cfg,
                                      cudaStream_t stream) {
  kernels::RowBlockPlan plan = kernels::make_row_block_plan(kp.p, cfg.threads, kVals);
  plan.lists = plan.lists && (kernels::row_block_lists_forced() ||
                              heuristics::routing_row_block_lists_pay(kp.num_tokens));
  return launch_routing_kernel(
      kernels::routing_row_block_kernel<T, kVals>, static_cast<unsigned>(cfg.blocks),
      static_cast<unsigned>(cfg.threads), kernels::row_block_dynamic_smem(cfg.threads, kVals),
      stream, kp, plan, vec_ok, ids_int64, static_cast<long long*>(nullptr));
}

// One instance per score function (and, for the wide warp kernel, per experts per lane).
template <typename T, ScoreFunc kF>
cudaError_t launch_routing_warp_vals(const detail::RoutingKernelParams& kp, bool vec_ok,
                                     bool ids_int64, int vals, unsigned blocks, unsigned threads,
                                     std::size_t smem_bytes, cudaStream_t stream) {
  switch (vals) {
    case 1:
      return launch_routing_kernel(kernels::routing_warp_kernel<T, kF>, blocks, threads, 0, stream,
                                   kp, ids_int64);
    case 2:
      return launch_routing_kernel(kernels::routing_warp_wide_kernel<T, kF, 2>, blocks, threads,
                                   smem_bytes, stream, kp, vec_ok, ids_int64);
    case 4:
      return launch_routing_kernel(kernels::routing_warp_wide_kernel<T, kF, 4>, blocks, threads,
                                   smem_bytes, stream, kp, vec_ok, ids_int64);
    case 8:
      return launch_routing_kernel(kernels::routing_warp_wide_kernel<T, kF, 8>, blocks, threads,
                                   smem_bytes, stream, kp, vec_ok, ids_int64);
    case 16:
      return launch_routing_kernel(kernels::routing_warp_wide_kernel<T, kF, 16>, blocks, threads,
                                   smem_bytes, stream, kp, vec_ok, ids_int64);
    default:
      return cudaErrorInvalidConfiguration;  // unreachable: routing_launch_config
  }
  return cudaGetLastError();
}

template <typename T>
cudaError_t launch_routing_warp_instance(const detail::RoutingKernelParams& kp, bool vec_ok,
                                         bool ids_int64, int vals, unsigned blocks,
                                         unsigned threads, std::size_t smem_bytes,
                                         cudaStream_t stream) {
  switch (kp.p.score_func) {
    case ScoreFunc::kSoftmax:
      return launch_routing_warp_vals<T, ScoreFunc::kSoftmax>(kp, vec_ok, ids_int64, vals, blocks,
                                                              threads, smem_bytes, stream);
    case ScoreFunc::kSigmoid:
      return launch_routing_warp_vals<T, ScoreFunc::kSigmoid>(kp, vec_ok, ids_int64, vals, blocks,
                                                              threads, smem_bytes, stream);
    case ScoreFunc::kSqrtSoftplus:
      return launch_routing_warp_vals<T, ScoreFunc::kSqrtSoftplus>(
          kp, vec_ok, ids_int64, vals, blocks, threads, smem_bytes, stream);
    case ScoreFunc::kTopkThenSoftmax:
      return launch_routing_warp_vals<T, ScoreFunc::kTopkThenSoftmax>(
          kp, vec_ok, ids_int64, vals, blocks, threads, smem_bytes, stream);
    case ScoreFunc::kTopkThenSigmoid:
      return launch_routing_warp_vals<T, ScoreFunc::kTopkThenSigmoid>(
          kp, vec_ok, ids_int64, vals, blocks, threads, smem_bytes, stream);
  }
  return cudaErrorInvalidConfiguration;
}

template <typename T, int kCap, int kCols>
cudaError_t launch_row_thread_instance(const detail::RoutingKernelParams& kp, bool vec_ok,
                                       bool ids_int64, const heuristics::RoutingLaunchConfig& cfg,
                                       cudaStream_t stream) {
  return launch_routing_kernel(kernels::routing_row_thread_kernel<T, kCap, kCols>,
                               static_cast<unsigned>(cfg.blocks), kernels::kRoutingThreads, 0,
                               stream, kp, vec_ok, ids_int64);
}

template <typename T, int kCap>
cudaError_t launch_row_thread_cols(const detail::RoutingKernelParams& kp, bool vec_ok,
                                   bool ids_int64, const heuristics::RoutingLaunchConfig& cfg,
                                   cudaStream_t stream) {
  switch (cfg.lanes) {
    case 2:
      return launch_row_thread_instance<T, kCap, 2>(kp, vec_ok, ids_int64, cfg, stream);
    case 8:
      return launch_row_thread_instance<T, kCap, 8>(kp, vec_ok, ids_int64, cfg, stream);
    case 32:
      return launch_row_thread_instance<T, kCap, 32>(kp, vec_ok, ids_int64, cfg, stream);
    default:
      return cudaErrorInvalidConfiguration;  // unreachable: row_thread_columns
  }
}

// Every layout for which heuristics::routing_layout_valid() holds (lanes, vals).
// clang-format off
#define SY_ROUTING_LAYOUTS(X)                                                                   \
  X(1, 1) X(2, 1) X(1, 2) X(4, 1) X(2, 2) X(1, 4) X(8, 1) X(4, 2) X(2, 4) X(1, 8) X(16, 1)      \
  X(8, 2) X(4, 4) X(2, 8) X(32, 1) X(16, 2) X(8, 4) X(4, 8) X(32, 2) X(16, 4) X(8, 8)            \
  X(4, 16) X(32, 4) X(16, 8) X(8, 16) X(4, 32) X(32, 8) X(16, 16) X(8, 32) X(32, 16) X(16, 32)   \
  X(32, 32)
// clang-format on

template <typename T>
cudaError_t launch_routing_for_dtype(const detail::RoutingKernelParams& kp, bool ids_int64,
                                     bool vec_ok, const heuristics::RoutingLaunchConfig& cfg,
                                     std::size_t smem_bytes, cudaStream_t stream) {
  static_assert(heuristics::kRoutingThreadsPerBlock == kernels::kRoutingThreads, "threads");
  static_assert(heuristics::kRowBlockMaxThreads == kernels::kRowBlockMaxThreads, "threads");
  static_assert(heuristics::kRowThreadMaxExperts == kernels::kRowThreadMaxExperts, "experts");
  if (cfg.row_thread) {
    switch (cfg.vals) {
      case 8:
        return launch_row_thread_cols<T, 8>(kp, vec_ok, ids_int64, cfg, stream);
      case 16:
        return launch_row_thread_cols<T, 16>(kp, vec_ok, ids_int64, cfg, stream);
      case 32:
        return launch_row_thread_cols<T, 32>(kp, vec_ok, ids_int64, cfg, stream);
      default:
        return cudaErrorInvalidConfiguration;  // unreachable: row_thread_experts
    }
  }
  static_assert(heuristics::kStagedThreadsPerBlock == kernels::kStagedThreads, "threads");
  static_assert(heuristics::kStagedRowsPerBlock == kernels::kStagedWarps * kernels::kStagedWarpRows,
                "rows");
  if (cfg.staged) return launch_staged<T>(kp, ids_int64, cfg, stream);
  static_assert(heuristics::kPackedThreadsPerBlock == kernels::kPackedThreads, "threads");
  if (cfg.packed) return launch_packed<T>(kp, vec_ok, ids_int64, cfg, stream);
  static_assert(heuristics::kWarpRoutingThreadsPerBlock == kernels::kWarpRoutingThreads, "threads");
  static_assert(heuristics::kWarpRoutingMaxExperts == kernels::kWarpRoutingMaxExperts, "experts");
  static_assert(heuristics::kWarpWideMinExperts == kernels::kWarpWideMinExperts, "experts");
  static_assert(heuristics::kWarpWideMaxExperts == kernels::kWarpWideMaxExperts, "experts");
  if (cfg.warp) {
    // One row: one warp (the other three would only exit; fewer warps to start).
    return launch_routing_warp_instance<T>(
        kp, vec_ok, ids_int64, cfg.vals, static_cast<unsigned>(cfg.blocks),
        kp.num_tokens < kernels::kWarpRoutingRows ? 32u * static_cast<unsigned>(kp.num_tokens)
                                                  : kernels::kWarpRoutingThreads,
        smem_bytes, stream);
  }
  if (cfg.quad) return launch_quad<T>(kp, vec_ok, ids_int64, cfg, smem_bytes, stream);
  if (cfg.row_block) {
    switch (cfg.vals) {
      case 1:
        return launch_row_block_instance<T, 1>(kp, vec_ok, ids_int64, cfg, stream);
      case 2:
        return launch_row_block_instance<T, 2>(kp, vec_ok, ids_int64, cfg, stream);
      case 4:
        return launch_row_block_instance<T, 4>(kp, vec_ok, ids_int64, cfg, stream);
      case 8:
        return launch_row_block_instance<T, 8>(kp, vec_ok, ids_int64, cfg, stream);
      case 16:
        return launch_row_block_instance<T, 16>(kp, vec_ok, ids_int64, cfg, stream);
      default:
        return cudaErrorInvalidConfiguration;  // unreachable: routing_row_block_valid
    }
  }
  if (cfg.prefilter) {
    switch (cfg.vals) {
      case 2:
        return launch_prefilter_instance<T, 2>(kp, vec_ok, ids_int64, cfg, smem_bytes, stream);
      case 4:
        return launch_prefilter_instance<T, 4>(kp, vec_ok, ids_int64, cfg, smem_bytes, stream);
      case 8:
        return launch_prefilter_instance<T, 8>(kp, vec_ok, ids_int64, cfg, smem_bytes, stream);
      case 16:
        return launch_prefilter_instance<T, 16>(kp, vec_ok, ids_int64, cfg, smem_bytes, stream);
      default:
        return cudaErrorInvalidConfiguration;  // unreachable: routing_layout_code_valid
    }
  }
#define SY_ROUTING_CASE(L, V)                                                                \
  if (cfg.lanes == (L) && cfg.vals == (V)) {                                                 \
    return launch_routing_instance<T, L, V>(kp, vec_ok, ids_int64, cfg, smem_bytes, stream); \
  }
  SY_ROUTING_LAYOUTS(SY_ROUTING_CASE)
#undef SY_ROUTING_CASE
  return cudaErrorInvalidConfiguration;  // unreachable: routing_check bounds E, heuristics vals
}

}  // namespace switchyard::launch
