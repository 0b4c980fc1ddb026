// Host side of the one-token fused MoE kernel (kernels/experts_token.cuh; contract in
// experts_token_launch.h).
#include <cstdint>
#include <mutex>

#include "../../common/check.h"
#include "../cuda_status.h"
#include "../device_attrs.h"
#include "../kernels/experts_token.cuh"
#include "experts_token_launch.h"
#include "pdl_launch.h"

namespace switchyard::detail {

namespace {

// The kernel's static shared memory and whether the build has its sm_90 code (binaryVersion of
// the code the device would run), per device; the bf16 and fp16 instances are alike.
struct TokenKernelAttrs {
  bool sm90_code = false;
  std::size_t static_smem = 0;
};

Status token_kernel_attrs(int device, TokenKernelAttrs* out) {
  constexpr int kMaxDevices = 64;
  static std::mutex mu;
  static TokenKernelAttrs cache[kMaxDevices];
  static bool cached[kMaxDevices] = {};
  std::lock_guard<std::mutex> lock(mu);
  if (device >= 0 && device < kMaxDevices && cached[device]) {
    *out = cache[device];
    return Status::Ok();
  }
  cudaFuncAttributes fa{};
  SY_RETURN_IF_ERROR(cuda_status(cudaFuncGetAttributes(&fa, kernels::experts_token_kernel<bf16_t>),
                                 "experts_token_kernel"));
  TokenKernelAttrs a;
  a.sm90_code = fa.binaryVersion >= 90;
  a.static_smem = fa.sharedSizeBytes;
  if (device >= 0 && device < kMaxDevices) {
    cache[device] = a;
    cached[device] = true;
  }
  *out = a;
  return Status::Ok();
}

}  // namespace

bool token_kernel_fits(const ExpertsParams& p, std::int64_t num_tokens, std::int64_t top_k,
                       TokenLaunch* out) {
  DeviceAttrs dev;
  if (!current_device_attrs(&dev).ok() || dev.cc_major < 9) return false;
  TokenKernelAttrs ka;
  if (!token_kernel_attrs(dev.device, &ka).ok() || !ka.sm90_code) return false;
  heuristics::TokenShape shape;
  if (!heuristics::token_kernel_shape(
          p.hidden_size, p.intermediate_size, num_tokens, top_k, dev.sms,
          dev.max_smem_optin - static_cast<std::int64_t>(ka.static_smem), &shape)) {
    return false;
  }
  out->rows_per_cta = shape.rows_per_cta;
  out->ctas = shape.ctas;
  out->staged_slots = shape.staged_slots;
  out->smem = static_cast<std::size_t>(shape.smem);
  return true;
}

Status launch_token_kernel(const ExpertsParams& p, const ExpertsArgs& a, void* h_scratch,
                           const TokenLaunch& l, cudaStream_t stream) {
  kernels::TokenParams k{};
  k.x = a.x.data;
  k.w13 = a.w13.data;
  k.w2 = a.w2.data;
  k.b13 = a.b13.data;
  k.b13_f32 = a.b13.defined() && a.b13.dtype == DType::kFloat32;
  k.b2 = a.b2.data;
  k.b2_f32 = a.b2.defined() && a.b2.dtype == DType::kFloat32;
  k.ids = a.top_k_ids.data;
  k.ids_int64 = a.top_k_ids.dtype == DType::kInt64;
  k.weights = static_cast<const float*>(a.top_k_weights.data);
  k.expert_map = static_cast<const std::int32_t*>(a.expert_map.data);
  k.map_size = a.expert_map.defined() ? a.expert_map.numel() : 0;
  k.num_tokens = static_cast<std::int32_t>(a.x.size(0));
  k.num_experts = p.num_experts;
  k.top_k = static_cast<std::int32_t>(a.top_k_ids.size(1));
  k.hidden = p.hidden_size;
  k.inter = p.intermediate_size;
  const bool gated = p.activation != Activation::kRelu2;
  k.w13_rows = gated ? 2 * p.intermediate_size : p.intermediate_size;
  k.activation = p.activation;
  const bool interleaved = experts_w13_interleaved(p);  // gate / up rows 2j, 2j+1 (else j, I+j)
  k.gate_step = interleaved ? 2 : 1;
  k.up_offset = interleaved ? 1 : p.intermediate_size;
  k.alpha = p.swiglu_alpha;
  k.limit = p.swiglu_limit;
  k.rsf = p.routed_scaling_factor;
  k.weight_on_input = p.apply_router_weight_on_input;
  k.h = h_scratch;
  k.out = a.out.data;
  k.rows_per_cta = l.rows_per_cta;
  k.staged_slots = l.staged_slots;

  LaunchShape shape;
  shape.grid = dim3(static_cast<unsigned>(l.ctas));
  shape.block = dim3(kernels::kTokenThreads);
  shape.smem = l.smem;
  shape.cooperative = true;
  const bool bf16 = a.x.dtype == DType::kBFloat16;
  const auto kernel =
      bf16 ? kernels::experts_token_kernel<bf16_t> : kernels::experts_token_kernel<fp16_t>;
  SY_RETURN_IF_ERROR(
      cuda_status(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       static_cast<int>(l.smem)),
                  "fused_experts_cuda: one-token kernel shared memory"));
  return cuda_status(launch_ex(kernel, shape, stream, true, k),
                     "fused_experts_cuda: one-token kernel launch");
}

}  // namespace switchyard::detail
