#include "align_check.h"

#include <cmath>
#include <limits>
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

Status check_ids(const char* op, const TensorView& ids, const TensorView& expert_map,
                 Device device) {
  SY_RETURN_IF_ERROR(check_tensor_basics(op, "top_k_ids", ids, device));
  SY_RETURN_IF_ERROR(check_dtype(op, "top_k_ids", ids, {DType::kInt32, DType::kInt64}));
  if (ids.ndim != 2)
    return invalid_arg(op, "top_k_ids.shape", ids.describe(), "[num_tokens, top_k]");
  SY_RETURN_IF_ERROR(check_contiguous(op, "top_k_ids", ids));
  if (ids.numel() > std::numeric_limits<std::int32_t>::max()) {
    return invalid_arg(op, "top_k_ids.numel", ids.numel(), "< 2^31 slots (slot indices are int32)");
  }
  if (expert_map.defined()) {
    SY_RETURN_IF_ERROR(check_tensor_basics(op, "expert_map", expert_map, device));
    SY_RETURN_IF_ERROR(check_dtype(op, "expert_map", expert_map, {DType::kInt32}));
    if (expert_map.ndim != 1)
      return invalid_arg(op, "expert_map.shape", expert_map.describe(), "[num_global_experts]");
    SY_RETURN_IF_ERROR(check_contiguous(op, "expert_map", expert_map));
  }
  return Status::Ok();
}

Status check_experts(const char* op, std::int32_t E, std::int32_t max_experts) {
  if (E < 1 || E > max_experts) {
    return invalid_arg(op, "num_experts", E, "1 <= num_experts <= " + std::to_string(max_experts));
  }
  return Status::Ok();
}

Status check_output(const char* op, const char* name, const TensorView& t, DType dtype,
                    std::int64_t min_numel, Device device) {
  SY_RETURN_IF_ERROR(check_tensor_basics(op, name, t, device));
  SY_RETURN_IF_ERROR(check_dtype(op, name, t, {dtype}));
  SY_RETURN_IF_ERROR(check_contiguous(op, name, t));
  if (t.numel() < min_numel) {
    return invalid_arg(op, std::string(name) + ".numel", t.numel(),
                       ">= " + std::to_string(min_numel));
  }
  return Status::Ok();
}

}  // namespace

Status align_check(const char* op, const AlignParams& p, const AlignArgs& a, Device device,
                   std::int32_t max_experts) {
  SY_RETURN_IF_ERROR(check_experts(op, p.num_experts, max_experts));
  if (p.block_size < 16 || p.block_size > 256) {
    return invalid_arg(op, "block_size", p.block_size, "16 <= block_size <= 256");
  }
  SY_RETURN_IF_ERROR(check_ids(op, a.top_k_ids, a.expert_map, device));
  const std::int64_t slots = a.top_k_ids.numel();
  SY_RETURN_IF_ERROR(check_output(op, "sorted_token_ids", a.sorted_token_ids, DType::kInt32,
                                  align_max_padded(slots, p.num_experts, p.block_size), device));
  SY_RETURN_IF_ERROR(check_output(op, "expert_ids", a.expert_ids, DType::kInt32,
                                  align_max_blocks(slots, p.num_experts, p.block_size), device));
  SY_RETURN_IF_ERROR(
      check_output(op, "num_tokens_post_pad", a.num_tokens_post_pad, DType::kInt32, 1, device));
  return Status::Ok();
}

Status layout_check(const char* op, const ExpertLayoutParams& p, const ExpertLayoutArgs& a,
                    Device device, std::int32_t max_experts) {
  SY_RETURN_IF_ERROR(check_experts(op, p.num_experts, max_experts));
  if (p.alignment < 1 || p.alignment > 1024) {
    return invalid_arg(op, "alignment", p.alignment, "1 <= alignment <= 1024");
  }
  if (p.max_rows_per_expert < 0) {
    return invalid_arg(op, "max_rows_per_expert", p.max_rows_per_expert,
                       ">= 0 (0: contiguous layout)");
  }
  SY_RETURN_IF_ERROR(check_ids(op, a.top_k_ids, a.expert_map, device));
  const std::int32_t E = p.num_experts;
  const std::int64_t slots = a.top_k_ids.numel();
  SY_RETURN_IF_ERROR(check_output(op, "expert_counts", a.expert_counts, DType::kInt32, E, device));
  SY_RETURN_IF_ERROR(
      check_output(op, "expert_offsets", a.expert_offsets, DType::kInt64, E + 1, device));
  SY_RETURN_IF_ERROR(check_output(op, "src_to_dst", a.src_to_dst, DType::kInt64, slots, device));
  SY_RETURN_IF_ERROR(check_output(op, "dst_to_src", a.dst_to_src, DType::kInt64,
                                  layout_max_rows(p, slots), device));
  if (a.overflow.defined())
    SY_RETURN_IF_ERROR(check_output(op, "overflow", a.overflow, DType::kInt64, 1, device));
  return Status::Ok();
}

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
  if (a.src_to_dst.defined()) {  // optional inverse map (token-major path)
    SY_RETURN_IF_ERROR(check_tensor_basics(op, "src_to_dst", a.src_to_dst, device));
    SY_RETURN_IF_ERROR(check_dtype(op, "src_to_dst", a.src_to_dst, {DType::kInt64}));
    SY_RETURN_IF_ERROR(check_shape(op, "src_to_dst", a.src_to_dst, {a.x.size(0) * a.top_k}));
    SY_RETURN_IF_ERROR(check_contiguous(op, "src_to_dst", a.src_to_dst));
  }
  return Status::Ok();
}

Status combine_check(const char* op, const CombineParams& p, const CombineArgs& a, Device device) {
  if (!std::isfinite(p.routed_scaling_factor)) {
    return invalid_arg(op, "routed_scaling_factor", p.routed_scaling_factor, "finite");
  }
  SY_RETURN_IF_ERROR(check_rows(op, "y", a.y, device));
  const std::int64_t H = a.y.size(1);
  if (a.top_k < 0) return invalid_arg(op, "top_k", a.top_k, ">= 0 (0: K = top_k_weights.shape[1])");
  // K and M: from the weights when given, else from top_k and out.
  std::int64_t M = 0, K = a.top_k;
  if (combine_given(a.top_k_weights)) {
    SY_RETURN_IF_ERROR(check_tensor_basics(op, "top_k_weights", a.top_k_weights, device));
    SY_RETURN_IF_ERROR(check_dtype(op, "top_k_weights", a.top_k_weights, {DType::kFloat32}));
    if (a.top_k_weights.ndim != 2) {
      return invalid_arg(op, "top_k_weights.shape", a.top_k_weights.describe(),
                         "[num_tokens, top_k]");
    }
    SY_RETURN_IF_ERROR(check_contiguous(op, "top_k_weights", a.top_k_weights));
    M = a.top_k_weights.size(0);
    K = a.top_k_weights.size(1);
    if (a.top_k != 0 && a.top_k != K) {
      return invalid_arg(op, "top_k", a.top_k,
                         "0 or top_k_weights.shape[1] = " + std::to_string(K));
    }
  } else {
    if (a.top_k == 0) {
      return invalid_arg(op, "top_k", a.top_k,
                         ">= 1 when top_k_weights is absent (K is top_k_weights.shape[1] or "
                         "top_k)");
    }
    M = a.out.ndim >= 1 ? a.out.size(0) : 0;
  }
  SY_RETURN_IF_ERROR(check_tensor_basics(op, "out", a.out, device));
  SY_RETURN_IF_ERROR(check_dtype(op, "out", a.out, {a.y.dtype}));
  SY_RETURN_IF_ERROR(check_shape(op, "out", a.out, {M, H}));
  SY_RETURN_IF_ERROR(check_contiguous(op, "out", a.out));
  if (combine_given(a.src_to_dst)) {
    SY_RETURN_IF_ERROR(check_tensor_basics(op, "src_to_dst", a.src_to_dst, device));
    SY_RETURN_IF_ERROR(check_dtype(op, "src_to_dst", a.src_to_dst, {DType::kInt64}));
    SY_RETURN_IF_ERROR(check_shape(op, "src_to_dst", a.src_to_dst, {M * K}));
    SY_RETURN_IF_ERROR(check_contiguous(op, "src_to_dst", a.src_to_dst));
  } else if (a.y.size(0) != M * K) {  // the identity map: slot t*K + k is row t*K + k
    return invalid_arg(op, "y.shape",
                       "[" + std::to_string(a.y.size(0)) + ", " + std::to_string(H) + "]",
                       "[" + std::to_string(M * K) + ", " + std::to_string(H) +
                           "] (num_tokens * top_k rows: src_to_dst is absent, so slot t*K + k "
                           "reads row t*K + k)");
  }
  return Status::Ok();
}

}  // namespace switchyard::detail
