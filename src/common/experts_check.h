// Host-side validation of the fused MoE forward, shared by the CPU and CUDA backends: parameters,
// and every tensor's device, dtype, shape and contiguity. Routing contents (ids, expert_map) are
// checked by the layout step of each backend.
#pragma once

#include <cstdint>

#include "switchyard/experts.h"

namespace switchyard::detail {

// Rows of w13 per expert: 2I for the gated activations, I for kRelu2.
std::int64_t experts_rows13(const ExpertsParams& params);

Status experts_check(const char* op, const ExpertsParams& params, const ExpertsArgs& args,
                     Device device);

// interleave_w13_{cpu,cuda}'s arguments (experts.h); *rows = src.size(1) / 2 (I), *row_bytes = the
// bytes of one row (H elements, or one element for rank 2).
Status interleave_w13_check(const char* op, const TensorView& src, const TensorView& dst,
                            Device device, std::int64_t* half_rows, std::int64_t* row_bytes);

}  // namespace switchyard::detail
