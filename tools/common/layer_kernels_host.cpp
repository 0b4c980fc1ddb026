// The host half of layer_kernels.h.
#include <string>

#include "../../src/common/dtype_convert.h"
#include "layer_kernels.h"

namespace switchyard::tools {

void gather_row_routing_cpu(const std::int32_t* ids, const float* weights,
                            const std::int64_t* dst_to_src, std::int64_t num_rows,
                            std::int32_t* row_experts, float* row_weights) {
  for (std::int64_t r = 0; r < num_rows; ++r) {
    const std::int64_t slot = dst_to_src[r];
    row_experts[r] = slot >= 0 ? ids[slot] : -1;
    if (row_weights) row_weights[r] = slot >= 0 ? weights[slot] : 0.0f;
  }
}

namespace {

template <typename T>
void add_typed(const T* a, const T* b, T* out, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) {
    out[i] = detail::from_float<T>(detail::to_float(a[i]) + detail::to_float(b[i]));
  }
}

}  // namespace

Status add_outputs_cpu(DType dtype, const void* a, const void* b, void* out, std::int64_t n) {
  if (dtype == DType::kBFloat16) {
    add_typed(static_cast<const detail::bf16_t*>(a), static_cast<const detail::bf16_t*>(b),
              static_cast<detail::bf16_t*>(out), n);
  } else if (dtype == DType::kFloat16) {
    add_typed(static_cast<const detail::fp16_t*>(a), static_cast<const detail::fp16_t*>(b),
              static_cast<detail::fp16_t*>(out), n);
  } else {
    return Status::InvalidArgument(std::string("add_outputs_cpu: dtype = ") + dtype_name(dtype) +
                                   ": expected bfloat16 or float16");
  }
  return Status::Ok();
}

}  // namespace switchyard::tools
