// The CUDA entry points of a build without CUDA: they report kUnsupported.
#include "align_internal.h"
#include "routing_internal.h"
#include "switchyard/align.h"
#include "switchyard/routing.h"

namespace switchyard {

Status route_cuda(const RoutingParams& params, const RoutingArgs& args, void*, std::size_t,
                  cudaStream_t) {
  (void)params;
  (void)args;
  return Status::Unsupported(
      "route_cuda: this Switchyard build has no CUDA backend "
      "(configure with -DSWITCHYARD_CUDA=ON)");
}

Status permute_cuda(const PermuteArgs&, cudaStream_t) {
  return Status::Unsupported("permute_cuda: this Switchyard build has no CUDA backend");
}
Status combine_cuda(const CombineParams&, const CombineArgs&, cudaStream_t) {
  return Status::Unsupported("combine_cuda: this Switchyard build has no CUDA backend");
}

Status moe_align_block_size_cuda(const AlignParams&, const AlignArgs&, void*, std::size_t,
                                 cudaStream_t) {
  return Status::Unsupported(
      "moe_align_block_size_cuda: this Switchyard build has no CUDA backend");
}
Status expert_layout_cuda(const ExpertLayoutParams&, const ExpertLayoutArgs&, void*, std::size_t,
                          cudaStream_t) {
  return Status::Unsupported("expert_layout_cuda: this Switchyard build has no CUDA backend");
}

namespace detail {
void set_align_trace(long long*) {}
Status moe_align_block_size_cuda_grid(const AlignParams& p, const AlignArgs& a, void* w,
                                      std::size_t b, int, cudaStream_t s) {
  return moe_align_block_size_cuda(p, a, w, b, s);
}
Status expert_layout_cuda_grid(const ExpertLayoutParams& p, const ExpertLayoutArgs& a, void* w,
                               std::size_t b, int, cudaStream_t s) {
  return expert_layout_cuda(p, a, w, b, s);
}
Status route_cuda_layout(const RoutingParams& params, const RoutingArgs& args, int, cudaStream_t) {
  return route_cuda(params, args, nullptr, 0, nullptr);
}
}  // namespace detail

}  // namespace switchyard

#include "switchyard/runtime.h"

namespace switchyard {
bool built_with_cuda() {
  return false;
}
bool cuda_device_available() {
  return false;
}
std::string cuda_device_description() {
  return "";
}
}  // namespace switchyard
