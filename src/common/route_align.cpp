// route_and_align_{cpu,cuda}: validate both stages, then route and align the routed ids.
#include <cstdint>
#include <string>

#include "align_check.h"
#include "align_internal.h"
#include "check.h"
#include "switchyard/align.h"
#include "switchyard/routing.h"

namespace switchyard {

namespace {

std::size_t routing_part(const RoutingParams& routing, std::int64_t num_tokens) {
  return (routing_workspace_size(routing, num_tokens) + 255) / 256 * 256;
}

// align_args with top_k_ids taken from the routing output; an error when the caller passed
// different ids.
Status bind_ids(const char* op, const RoutingArgs& r, const AlignArgs& a, AlignArgs* out) {
  if (a.top_k_ids.defined() && a.top_k_ids.data != r.top_k_ids.data) {
    return detail::invalid_arg(op, "align_args.top_k_ids", "another tensor",
                               "undefined or routing_args.top_k_ids (the routed ids are aligned)");
  }
  *out = a;
  out->top_k_ids = r.top_k_ids;
  return Status::Ok();
}

}  // namespace

std::size_t route_and_align_workspace_size(const RoutingParams& routing, const AlignParams& align,
                                           std::int64_t num_tokens) {
  const std::int64_t slots = num_tokens * (routing.top_k + routing.num_shared_experts);
  return routing_part(routing, num_tokens) + align_workspace_size(align, slots);
}

Status route_and_align_cpu(const RoutingParams& routing, const RoutingArgs& routing_args,
                           const AlignParams& align, const AlignArgs& align_args) {
  const char* op = "route_and_align_cpu";
  AlignArgs a;
  SY_RETURN_IF_ERROR(bind_ids(op, routing_args, align_args, &a));
  SY_RETURN_IF_ERROR(routing_check(routing, routing_args, Device::kCpu));
  SY_RETURN_IF_ERROR(detail::align_check(op, align, a, Device::kCpu, detail::kMaxCpuAlignExperts));
  SY_RETURN_IF_ERROR(route_cpu(routing, routing_args));
  return moe_align_block_size_cpu(align, a);
}

Status route_and_align_cuda(const RoutingParams& routing, const RoutingArgs& routing_args,
                            const AlignParams& align, const AlignArgs& align_args, void* workspace,
                            std::size_t workspace_bytes, cudaStream_t stream) {
  const char* op = "route_and_align_cuda";
  AlignArgs a;
  SY_RETURN_IF_ERROR(bind_ids(op, routing_args, align_args, &a));
  SY_RETURN_IF_ERROR(routing_check(routing, routing_args, Device::kCuda));
  SY_RETURN_IF_ERROR(
      detail::align_check(op, align, a, Device::kCuda, detail::kMaxCudaAlignExperts));
  const std::int64_t tokens = routing_args.top_k_ids.size(0);
  const std::size_t need = route_and_align_workspace_size(routing, align, tokens);
  if (workspace_bytes < need || (workspace == nullptr && need > 0)) {
    return detail::invalid_arg(op, "workspace_bytes", workspace_bytes,
                               ">= " + std::to_string(need) + " (route_and_align_workspace_size)");
  }
  const std::size_t r = routing_part(routing, tokens);
  auto* base = static_cast<unsigned char*>(workspace);
  SY_RETURN_IF_ERROR(route_cuda(routing, routing_args, base, r, stream));
  return moe_align_block_size_cuda(align, a, base + r, workspace_bytes - r, stream);
}

}  // namespace switchyard
