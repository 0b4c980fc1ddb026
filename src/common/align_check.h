// Host-side validation shared by the CPU and CUDA permute / combine (shapes, dtypes, devices).
// Map contents live in device memory on CUDA, so they are checked there by the kernels (an entry
// out of range reads nothing and counts as -1), and on the CPU by the backend (an error).
#pragma once

#include <cstdint>

#include "switchyard/align.h"

namespace switchyard::detail {

// Alignment / layout arguments: params, ids (+ expert_map) and every output's dtype and size.
// `max_experts` is the backend's limit on num_experts.
Status align_check(const char* op, const AlignParams& params, const AlignArgs& args, Device device,
                   std::int32_t max_experts);
Status layout_check(const char* op, const ExpertLayoutParams& params, const ExpertLayoutArgs& args,
                    Device device, std::int32_t max_experts);

// Permute: x, top_k, dst_to_src, out and, when given, src_to_dst ([M*K] int64 on `device`). That
// src_to_dst is the inverse of dst_to_src is a content check: the CPU backend makes it.
Status permute_check(const char* op, const PermuteArgs& args, Device device);

// Combine: y, out, K and M (align.h), and top_k_weights / src_to_dst when given; with src_to_dst
// absent, y must have exactly M*K rows (the identity map).
Status combine_check(const char* op, const CombineParams& params, const CombineArgs& args,
                     Device device);

// Whether an optional combine argument is given: anything but TensorView{}. An empty tensor keeps
// its shape (and may have a null data pointer), so it counts as given.
inline bool combine_given(const TensorView& t) {
  return t.defined() || t.ndim != 0;
}
// K of combine arguments that passed combine_check.
inline std::int64_t combine_top_k(const CombineArgs& a) {
  return combine_given(a.top_k_weights) ? a.top_k_weights.size(1) : a.top_k;
}

}  // namespace switchyard::detail
