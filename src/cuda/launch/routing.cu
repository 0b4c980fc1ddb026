// route_cuda: validate -> pick config -> dispatch -> launch.
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "../../common/check.h"
#include "../../common/dtype_convert.h"
#include "../../common/routing_internal.h"
#include "../../common/routing_kernel_params.h"
#include "../cuda_status.h"
#include "../device_attrs.h"
#include "../heuristics/routing.h"
#include "routing_lut_launch.h"
#include "switchyard/routing.h"

namespace switchyard {
namespace launch {
template <typename T>
cudaError_t launch_routing_for_dtype(const detail::RoutingKernelParams& kp, bool ids_int64,
                                     bool vec_ok, const heuristics::RoutingLaunchConfig& cfg,
                                     std::size_t smem_bytes, cudaStream_t stream);
#define SY_EXTERN_ROUTING(T)                                                                  \
  extern template cudaError_t launch_routing_for_dtype<T>(                                    \
      const detail::RoutingKernelParams&, bool, bool, const heuristics::RoutingLaunchConfig&, \
      std::size_t, cudaStream_t);
SY_EXTERN_ROUTING(float)
SY_EXTERN_ROUTING(detail::bf16_t)
SY_EXTERN_ROUTING(detail::fp16_t)
#undef SY_EXTERN_ROUTING
}  // namespace launch

namespace detail {
namespace {

// SWITCHYARD_ROUTING_LUT=0 in the environment keeps the heuristic off the LUT kernel (read once):
// bf16 sigmoid rows then take the kernels they took before it existed (layout 74 still forces
// it). For A/B measurements.
bool lut_kernel_enabled() {
  static const bool enabled = [] {
    const char* v = std::getenv("SWITCHYARD_ROUTING_LUT");
    return v == nullptr || std::strcmp(v, "0") != 0;
  }();
  return enabled;
}

// SWITCHYARD_ROUTING_GROUP_WORDS=0 in the environment (read once): no shared-memory words for
// drop_groups' general path (one butterfly per group instead), and the heuristic keeps such rows on
// the lane groups. For A/B measurements.
bool routing_group_words_enabled() {
  static const bool enabled = [] {
    const char* v = std::getenv("SWITCHYARD_ROUTING_GROUP_WORDS");
    return v == nullptr || std::strcmp(v, "0") != 0;
  }();
  return enabled;
}

}  // namespace

Status route_cuda_layout(const RoutingParams& params, const RoutingArgs& args, int layout,
                         cudaStream_t stream) {
  SY_RETURN_IF_ERROR(routing_check(params, args, Device::kCuda));
  if (!heuristics::routing_layout_code_valid(params.num_experts, layout)) {
    return invalid_arg("route_cuda", "layout", layout,
                       "0, a power of two v <= 32 with next_pow2(num_experts) / v <= 32 (lane "
                       "groups), or -v, v a power of two <= 16 with ceil(num_experts / (32 v)) "
                       "<= 16 (row blocks), or 64 (lane groups with the approximate pre-filter, "
                       "33 <= num_experts <= 512), or 65 (a thread per row, num_experts <= 32), "
                       "or 66 (the quad kernel, where it serves the routing), or 67 (the staged "
                       "kernel, where it serves the routing), or 68 (a warp per row, num_experts "
                       "<= 32), or 69 (a warp per row, 33 <= num_experts <= 512), or 70 (the "
                       "packed kernel, where it serves the routing), or 71 / 72 / 73 (the packed "
                       "kernel with 8 / 16 / 32 experts per lane: 4..32 lanes per row), or 74 (the "
                       "LUT kernel, where it serves the routing)");
  }
  const int quad_vals =
      routing_quad_vals(params.num_experts, params.top_k, params.score_func, params.softcap > 0.0f,
                        params.group_score, params.num_groups, params.topk_groups);
  if (layout == heuristics::kRoutingQuadCode && quad_vals == 0) {
    return invalid_arg("route_cuda", "layout", layout,
                       "a routing the quad kernel serves (num_experts in 97..128, 193..256 or "
                       "289..384, top_k <= 8, no softcap; sigmoid, softmax, or top-k then "
                       "softmax / sigmoid; groups only for sigmoid, 32 experts each)");
  }
  const RoutingKernelParams kp = make_routing_kernel_params(params, args);
  const std::size_t elem = dtype_size(args.logits.dtype);
  const bool vec_ok = reinterpret_cast<std::uintptr_t>(kp.logits) % 16 == 0 &&
                      (static_cast<std::size_t>(kp.row_stride) * elem) % 16 == 0;
  const int staged_segs =
      vec_ok ? routing_staged_segs(params.num_experts, params.top_k, params.score_func,
                                   params.softcap > 0.0f, params.group_score, params.num_groups,
                                   params.topk_groups)
             : 0;
  if (layout == heuristics::kRoutingStagedCode && staged_segs == 0) {
    return invalid_arg("route_cuda", "layout", layout,
                       "a routing the staged kernel serves (sigmoid without softcap, top_k <= 8, "
                       "num_experts a multiple of 32 in 128..512, groups of 32 experts with 3 * "
                       "topk_groups >= top_k) with 16-byte aligned logits rows");
  }
  const bool packed_serves = routing_packed_serves(
      params.num_experts, params.top_k, params.score_func, params.softcap > 0.0f,
      params.group_score, kp.bias != nullptr, static_cast<int>(elem));
  if ((layout == heuristics::kRoutingPackedCode ||
       heuristics::routing_packed_code_vals(layout) > 0) &&
      !packed_serves) {
    return invalid_arg("route_cuda", "layout", layout,
                       "a routing the packed kernel serves (bf16 or fp16 logits; softmax, or "
                       "top-k then softmax / sigmoid; no bias, softcap or groups; num_experts in "
                       "33..512, top_k <= 8)");
  }
  const bool lut_serves = routing_lut_serves(
      params.num_experts, params.top_k, params.score_func, params.softcap > 0.0f,
      params.group_score, params.num_groups, args.logits.dtype == DType::kBFloat16);
  if (layout == heuristics::kRoutingLutCode && !lut_serves) {
    return invalid_arg("route_cuda", "layout", layout,
                       "a routing the LUT kernel serves (bf16 logits; sigmoid with or without "
                       "bias, no softcap; num_experts in 33..512, top_k <= 8; groups only of 32 "
                       "experts, 4, 8 or 16 of them)");
  }
  if (kp.num_tokens == 0) return Status::Ok();
  const bool grouped = params.group_score != GroupScore::kNone;
  const heuristics::RoutingLaunchConfig cfg = heuristics::routing_launch_config(
      params.num_experts, kp.num_tokens, layout,
      heuristics::routing_row_blocks_pay(params.num_experts, params.top_k, grouped),
      heuristics::routing_prefilter_applies(
          params.num_experts, params.score_func == ScoreFunc::kSigmoid && !(params.softcap > 0.0f),
          grouped ? params.num_groups : 0),
      params.top_k + params.num_shared_experts, grouped, quad_vals, staged_segs,
      heuristics::routing_warp_wide_rows(
          params.num_experts, params.score_func, grouped,
          grouped && routing_group_words_enabled() &&
              heuristics::routing_groups_need_words(
                  params.num_experts, params.num_groups,
                  detail::routing_row_capacity(params.num_experts) / 32)),
      heuristics::routing_row_block_lists_serve(params.num_experts,
                                                grouped ? params.num_groups : 0),
      heuristics::routing_packed_rows(packed_serves, params.score_func),
      heuristics::routing_lut_rows(
          lut_serves && (layout == heuristics::kRoutingLutCode || lut_kernel_enabled()),
          params.num_experts));
  if (cfg.blocks > std::numeric_limits<int>::max()) {
    return invalid_arg(
        "route_cuda", "logits.shape[0]", kp.num_tokens,
        "at most " +
            std::to_string(std::int64_t{std::numeric_limits<int>::max()} * cfg.rows_per_block) +
            " rows per call");
  }
  const bool ids_int64 = args.top_k_ids.dtype == DType::kInt64;
  if (cfg.lut) {
    DeviceAttrs attrs;
    SY_RETURN_IF_ERROR(current_device_attrs(&attrs));
    return cuda_status(launch::launch_routing_lut(kp, vec_ok, ids_int64, cfg, attrs.sms, stream),
                       "route_cuda: kernel launch");
  }
  // Lane groups: group scores of each row of a block live in shared memory (only when grouping).
  // Row blocks: the launcher sizes their dynamic shared memory itself.
  std::size_t smem = params.group_score == GroupScore::kNone || cfg.row_block || cfg.row_thread ||
                             cfg.staged || cfg.warp || cfg.packed
                         ? 0
                         : static_cast<std::size_t>(cfg.rows_per_block) *
                               static_cast<std::size_t>(params.num_groups) * 4;
  // drop_groups' scratch (kernels/routing.cuh) for groups that are not whole runs of lanes: each
  // row's lanes x vals words after the group scores (lane groups), or alone (the wide warp kernel).
  if (grouped && !cfg.quad && (cfg.warp ? cfg.vals > 1 : smem > 0) &&
      heuristics::routing_groups_need_words(params.num_experts, params.num_groups, cfg.vals) &&
      routing_group_words_enabled()) {
    const std::size_t words = static_cast<std::size_t>(cfg.rows_per_block) *
                              static_cast<std::size_t>(cfg.lanes) *
                              static_cast<std::size_t>(cfg.vals) * 4;
    if (smem + words <= heuristics::kRoutingGroupWordsMaxBytes) smem += words;
  }
  cudaError_t err = cudaErrorInvalidValue;
  switch (args.logits.dtype) {
    case DType::kFloat32:
      err = launch::launch_routing_for_dtype<float>(kp, ids_int64, vec_ok, cfg, smem, stream);
      break;
    case DType::kBFloat16:
      err = launch::launch_routing_for_dtype<bf16_t>(kp, ids_int64, vec_ok, cfg, smem, stream);
      break;
    case DType::kFloat16:
      err = launch::launch_routing_for_dtype<fp16_t>(kp, ids_int64, vec_ok, cfg, smem, stream);
      break;
    default:
      return Status::Internal("route_cuda: logits dtype passed validation but has no kernel");
  }
  return cuda_status(err, "route_cuda: kernel launch");
}

}  // namespace detail

Status route_cuda(const RoutingParams& params, const RoutingArgs& args, void* /*workspace*/,
                  std::size_t /*workspace_bytes*/, cudaStream_t stream) {
  return detail::route_cuda_layout(params, args, 0, stream);
}

}  // namespace switchyard
