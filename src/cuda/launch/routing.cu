// route_cuda: validate -> pick config -> dispatch -> launch.
#include <cuda_runtime.h>

#include <cstdint>
#include <limits>

#include "../../common/check.h"
#include "../../common/dtype_convert.h"
#include "../../common/routing_kernel_params.h"
#include "../cuda_status.h"
#include "../heuristics/routing.h"
#include "switchyard/routing.h"

namespace switchyard {
namespace launch {
template <typename T>
cudaError_t launch_routing_for_dtype(const detail::RoutingKernelParams& kp, bool ids_int64,
                                     bool vec_ok, const heuristics::RoutingLaunchConfig& cfg,
                                     cudaStream_t stream);
extern template cudaError_t launch_routing_for_dtype<float>(
    const detail::RoutingKernelParams&, bool, bool, const heuristics::RoutingLaunchConfig&,
    cudaStream_t);
extern template cudaError_t launch_routing_for_dtype<detail::bf16_t>(
    const detail::RoutingKernelParams&, bool, bool, const heuristics::RoutingLaunchConfig&,
    cudaStream_t);
extern template cudaError_t launch_routing_for_dtype<detail::fp16_t>(
    const detail::RoutingKernelParams&, bool, bool, const heuristics::RoutingLaunchConfig&,
    cudaStream_t);
}  // namespace launch

Status route_cuda(const RoutingParams& params, const RoutingArgs& args, void* /*workspace*/,
                  std::size_t /*workspace_bytes*/, cudaStream_t stream) {
  SY_RETURN_IF_ERROR(routing_check(params, args, Device::kCuda));
  const detail::RoutingKernelParams kp = detail::make_routing_kernel_params(params, args);
  if (kp.num_tokens == 0) return Status::Ok();
  const heuristics::RoutingLaunchConfig cfg =
      heuristics::routing_launch_config(params.num_experts, kp.num_tokens);
  if (cfg.blocks > std::numeric_limits<int>::max()) {
    return detail::invalid_arg("route_cuda", "logits.shape[0]", kp.num_tokens,
                               "at most " + std::to_string(std::int64_t{std::numeric_limits<int>::max()} *
                                                           cfg.rows_per_block) +
                                   " rows per call");
  }
  const std::size_t elem = dtype_size(args.logits.dtype);
  const bool vec_ok = reinterpret_cast<std::uintptr_t>(kp.logits) % 16 == 0 &&
                      (static_cast<std::size_t>(kp.row_stride) * elem) % 16 == 0;
  const bool ids_int64 = args.top_k_ids.dtype == DType::kInt64;
  cudaError_t err = cudaErrorInvalidValue;
  switch (args.logits.dtype) {
    case DType::kFloat32:
      err = launch::launch_routing_for_dtype<float>(kp, ids_int64, vec_ok, cfg, stream);
      break;
    case DType::kBFloat16:
      err = launch::launch_routing_for_dtype<detail::bf16_t>(kp, ids_int64, vec_ok, cfg, stream);
      break;
    case DType::kFloat16:
      err = launch::launch_routing_for_dtype<detail::fp16_t>(kp, ids_int64, vec_ok, cfg, stream);
      break;
    default:
      return Status::Internal("route_cuda: logits dtype passed validation but has no kernel");
  }
  return detail::cuda_status(err, "route_cuda: kernel launch");
}

}  // namespace switchyard
