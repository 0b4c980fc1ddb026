// Host-side validation shared by the CPU and CUDA permute / combine (shapes, dtypes, devices).
// Map contents live in device memory on CUDA, so they are checked there by the kernels (an entry
// out of range reads nothing and counts as -1), and on the CPU by the backend (an error).
#pragma once

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
Status combine_check(const char* op, const CombineParams& params, const CombineArgs& args,
                     Device device);

}  // namespace switchyard::detail
