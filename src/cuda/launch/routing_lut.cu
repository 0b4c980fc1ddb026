// The LUT routing kernel's instances (kernels/routing_lut.cuh; bf16 logits only), in their own
// translation unit so they compile in parallel with the other routing instances.
#include "routing_lut_launch.h"

#include "../kernels/routing_lut.cuh"
#include "pdl_launch.h"

namespace switchyard::launch {
namespace {

template <int kVals, int kLanes, bool kGrouped>
cudaError_t launch_lut_instance(const detail::RoutingKernelParams& kp, bool vec_ok, bool ids_int64,
                                unsigned blocks, cudaStream_t stream) {
  // The exact path's group scores: one row per warp.
  constexpr int kThreads = kernels::lut_threads(kLanes, kVals);
  const std::size_t smem =
      kGrouped ? static_cast<std::size_t>(kThreads / 32) * kp.p.num_groups * 4 : 0;
  return detail::launch_ex(kernels::routing_lut_kernel<kVals, kLanes, kGrouped>,
                           detail::LaunchShape{dim3(blocks), dim3(kThreads), smem}, stream,
                           kp.num_tokens <= kRoutingLutPdlMaxRows, kp, vec_ok, ids_int64);
}

}  // namespace

cudaError_t launch_routing_lut(const detail::RoutingKernelParams& kp, bool vec_ok, bool ids_int64,
                               const heuristics::RoutingLaunchConfig& cfg, int sms,
                               cudaStream_t stream) {
  static_assert(heuristics::lut_threads_per_block(4, 32) == kernels::lut_threads(4, 32) &&
                    heuristics::lut_threads_per_block(16, 24) == kernels::lut_threads(16, 24) &&
                    heuristics::lut_threads_per_block(8, 48) == kernels::lut_threads(8, 48),
                "threads");
  // One block per SM at most, none without a tile of rows (32 / lanes rows per warp).
  const std::int64_t tiles = (kp.num_tokens + 32 / cfg.lanes - 1) / (32 / cfg.lanes);
  const std::int64_t cap = sms > 0 ? sms : 1;
  const auto blocks = static_cast<unsigned>(tiles < cap ? tiles : cap);
  const bool grouped = kp.p.group_score != GroupScore::kNone;
#define SY_LUT_CASE(V, L)                                                           \
  if (cfg.vals == (V) && cfg.lanes == (L)) {                                        \
    return launch_lut_instance<V, L, false>(kp, vec_ok, ids_int64, blocks, stream); \
  }
#define SY_LUT_GROUPED(V, L)                                                       \
  if (cfg.vals == (V) && cfg.lanes == (L)) {                                       \
    return launch_lut_instance<V, L, true>(kp, vec_ok, ids_int64, blocks, stream); \
  }
  if (grouped) {
    SY_LUT_GROUPED(32, 4)
    SY_LUT_GROUPED(32, 8)
    SY_LUT_GROUPED(32, 16)
  } else {
    SY_LUT_CASE(16, 4)
    SY_LUT_CASE(24, 4)
    SY_LUT_CASE(32, 4)
    SY_LUT_CASE(24, 8)
    SY_LUT_CASE(32, 8)
    SY_LUT_CASE(48, 8)
    SY_LUT_CASE(24, 16)
    SY_LUT_CASE(32, 16)
  }
#undef SY_LUT_CASE
#undef SY_LUT_GROUPED
  return cudaErrorInvalidConfiguration;  // unreachable: detail::routing_lut_serves
}

}  // namespace switchyard::launch
