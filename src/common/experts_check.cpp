#include "experts_check.h"

#include <cmath>
#include <cstdint>
#include <string>

#include "check.h"

namespace switchyard::detail {

namespace {

Status check_weight(const char* op, const char* name, const TensorView& t, DType dtype,
                    std::initializer_list<std::int64_t> shape, Device device) {
  SY_RETURN_IF_ERROR(check_tensor_basics(op, name, t, device));
  SY_RETURN_IF_ERROR(check_dtype(op, name, t, {dtype}));
  SY_RETURN_IF_ERROR(check_shape(op, name, t, shape));
  return check_contiguous(op, name, t);
}

Status check_bias(const char* op, const char* name, const TensorView& t, DType dtype,
                  std::initializer_list<std::int64_t> shape, Device device) {
  if (!t.defined()) return Status::Ok();
  SY_RETURN_IF_ERROR(check_tensor_basics(op, name, t, device));
  SY_RETURN_IF_ERROR(check_dtype(op, name, t, {DType::kFloat32, dtype}));
  SY_RETURN_IF_ERROR(check_shape(op, name, t, shape));
  return check_contiguous(op, name, t);
}

}  // namespace

std::int64_t experts_rows13(const ExpertsParams& p) {
  return p.activation == Activation::kRelu2 ? p.intermediate_size : 2LL * p.intermediate_size;
}

Status experts_check(const char* op, const ExpertsParams& p, const ExpertsArgs& a, Device device) {
  if (p.num_experts < 1) return invalid_arg(op, "num_experts", p.num_experts, ">= 1");
  if (p.hidden_size < 1) return invalid_arg(op, "hidden_size", p.hidden_size, ">= 1");
  if (p.intermediate_size < 1) {
    return invalid_arg(op, "intermediate_size", p.intermediate_size, ">= 1");
  }
  if (static_cast<int>(p.activation) > static_cast<int>(Activation::kRelu2)) {
    return invalid_arg(op, "activation", static_cast<int>(p.activation), "an Activation value");
  }
  if (!std::isfinite(p.routed_scaling_factor)) {
    return invalid_arg(op, "routed_scaling_factor", p.routed_scaling_factor, "finite");
  }
  if (!(std::isfinite(p.swiglu_alpha) && std::isfinite(p.swiglu_limit) && p.swiglu_limit > 0)) {
    return invalid_arg(op, "swiglu_limit", p.swiglu_limit, "finite and > 0 (alpha finite)");
  }
  const std::int64_t E = p.num_experts, H = p.hidden_size, I = p.intermediate_size;
  SY_RETURN_IF_ERROR(check_tensor_basics(op, "x", a.x, device));
  SY_RETURN_IF_ERROR(check_dtype(op, "x", a.x, {DType::kBFloat16, DType::kFloat16}));
  if (a.x.ndim != 2 || a.x.size(1) != H) {
    return invalid_arg(op, "x.shape", a.x.describe(),
                       "[num_tokens, hidden_size] with hidden_size = " + std::to_string(H));
  }
  SY_RETURN_IF_ERROR(check_contiguous(op, "x", a.x));
  const std::int64_t M = a.x.size(0);
  SY_RETURN_IF_ERROR(check_weight(op, "w13", a.w13, a.x.dtype, {E, experts_rows13(p), H}, device));
  SY_RETURN_IF_ERROR(check_weight(op, "w2", a.w2, a.x.dtype, {E, H, I}, device));
  SY_RETURN_IF_ERROR(check_bias(op, "b13", a.b13, a.x.dtype, {E, experts_rows13(p)}, device));
  SY_RETURN_IF_ERROR(check_bias(op, "b2", a.b2, a.x.dtype, {E, H}, device));
  SY_RETURN_IF_ERROR(check_tensor_basics(op, "top_k_ids", a.top_k_ids, device));
  if (a.top_k_ids.ndim != 2 || a.top_k_ids.size(0) != M) {
    return invalid_arg(op, "top_k_ids.shape", a.top_k_ids.describe(),
                       "[num_tokens, top_k] with num_tokens = " + std::to_string(M));
  }
  const std::int64_t K = a.top_k_ids.size(1);
  SY_RETURN_IF_ERROR(
      check_weight(op, "top_k_weights", a.top_k_weights, DType::kFloat32, {M, K}, device));
  if (p.apply_router_weight_on_input && K != 1) {
    return invalid_arg(op, "apply_router_weight_on_input", "true",
                       "top_k == 1 (got " + std::to_string(K) + ")");
  }
  return check_weight(op, "out", a.out, a.x.dtype, {M, H}, device);
}

Status interleave_w13_check(const char* op, const TensorView& src, const TensorView& dst,
                            Device device, std::int64_t* half_rows, std::int64_t* row_bytes) {
  SY_RETURN_IF_ERROR(check_tensor_basics(op, "src", src, device));
  SY_RETURN_IF_ERROR(check_tensor_basics(op, "dst", dst, device));
  if (src.ndim != 2 && src.ndim != 3) {
    return invalid_arg(op, "src", src.describe(), "rank 2 ([E, 2I]) or 3 ([E, 2I, H])");
  }
  if (src.size(1) % 2 != 0) {
    return invalid_arg(op, "src.shape[1]", src.size(1), "even (2I: gate rows, then up rows)");
  }
  SY_RETURN_IF_ERROR(check_dtype(op, "dst", dst, {src.dtype}));
  bool same_shape = dst.ndim == src.ndim;
  for (int d = 0; same_shape && d < src.ndim; ++d) same_shape = dst.size(d) == src.size(d);
  if (!same_shape) return invalid_arg(op, "dst", dst.describe(), "src's shape " + src.describe());
  SY_RETURN_IF_ERROR(check_contiguous(op, "src", src));
  SY_RETURN_IF_ERROR(check_contiguous(op, "dst", dst));
  const auto bytes = static_cast<std::uintptr_t>(src.numel()) * dtype_size(src.dtype);
  const auto s0 = reinterpret_cast<std::uintptr_t>(src.data);
  const auto d0 = reinterpret_cast<std::uintptr_t>(dst.data);
  if (bytes > 0 && s0 < d0 + bytes && d0 < s0 + bytes) {
    return invalid_arg(op, "dst", "a buffer overlapping src", "separate buffers");
  }
  *half_rows = src.size(1) / 2;
  *row_bytes = (src.ndim == 3 ? src.size(2) : 1) * static_cast<std::int64_t>(dtype_size(src.dtype));
  return Status::Ok();
}

}  // namespace switchyard::detail
