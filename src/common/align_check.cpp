#include "align_check.h"

#include <cmath>
#include <string>

#include "check.h"

namespace switchyard::detail {

namespace {

Status check_rows(const char* op, const char* name, const TensorView& t, Device device) {
  SY_RETURN_IF_ERROR(check_tensor_basics(op, name, t, device));
  SY_RETURN_IF_ERROR(
      check_dtype(op, name, t, {DType::kFloat32, DType::kBFloat16, DType::kFloat16}));
  if (t.ndim != 2)
    return invalid_arg(op, std::string(name) + ".shape", t.describe(), "[rows, hidden]");
  if (t.size(1) > 1 && t.stride(1) != 1) {
    return invalid_arg(op, std::string(name) + ".strides[1]", t.stride(1), "1 (hidden contiguous)");
  }
  if (t.size(0) > 1 && t.stride(0) < t.size(1)) {
    return invalid_arg(op, std::string(name) + ".strides[0]", t.stride(0), ">= hidden size");
  }
  return Status::Ok();
}

}  // namespace

Status permute_check(const char* op, const PermuteArgs& a, Device device) {
  SY_RETURN_IF_ERROR(check_rows(op, "x", a.x, device));
  if (a.top_k < 1) return invalid_arg(op, "top_k", a.top_k, ">= 1");
  SY_RETURN_IF_ERROR(check_tensor_basics(op, "dst_to_src", a.dst_to_src, device));
  SY_RETURN_IF_ERROR(check_dtype(op, "dst_to_src", a.dst_to_src, {DType::kInt64}));
  SY_RETURN_IF_ERROR(check_contiguous(op, "dst_to_src", a.dst_to_src));
  const std::int64_t R = a.dst_to_src.numel(), H = a.x.size(1);
  SY_RETURN_IF_ERROR(check_tensor_basics(op, "out", a.out, device));
  SY_RETURN_IF_ERROR(check_dtype(op, "out", a.out, {a.x.dtype}));
  SY_RETURN_IF_ERROR(check_shape(op, "out", a.out, {R, H}));
  SY_RETURN_IF_ERROR(check_contiguous(op, "out", a.out));
  return Status::Ok();
}

Status combine_check(const char* op, const CombineParams& p, const CombineArgs& a, Device device) {
  if (!std::isfinite(p.routed_scaling_factor)) {
    return invalid_arg(op, "routed_scaling_factor", p.routed_scaling_factor, "finite");
  }
  SY_RETURN_IF_ERROR(check_rows(op, "y", a.y, device));
  SY_RETURN_IF_ERROR(check_tensor_basics(op, "top_k_weights", a.top_k_weights, device));
  SY_RETURN_IF_ERROR(check_dtype(op, "top_k_weights", a.top_k_weights, {DType::kFloat32}));
  if (a.top_k_weights.ndim != 2) {
    return invalid_arg(op, "top_k_weights.shape", a.top_k_weights.describe(),
                       "[num_tokens, top_k]");
  }
  SY_RETURN_IF_ERROR(check_contiguous(op, "top_k_weights", a.top_k_weights));
  const std::int64_t M = a.top_k_weights.size(0), K = a.top_k_weights.size(1), H = a.y.size(1);
  SY_RETURN_IF_ERROR(check_tensor_basics(op, "src_to_dst", a.src_to_dst, device));
  SY_RETURN_IF_ERROR(check_dtype(op, "src_to_dst", a.src_to_dst, {DType::kInt64}));
  SY_RETURN_IF_ERROR(check_shape(op, "src_to_dst", a.src_to_dst, {M * K}));
  SY_RETURN_IF_ERROR(check_tensor_basics(op, "out", a.out, device));
  SY_RETURN_IF_ERROR(check_dtype(op, "out", a.out, {a.y.dtype}));
  SY_RETURN_IF_ERROR(check_shape(op, "out", a.out, {M, H}));
  SY_RETURN_IF_ERROR(check_contiguous(op, "out", a.out));
  return Status::Ok();
}

}  // namespace switchyard::detail
