// Two small pieces of `switchyard run`'s MoE layer that are not library ops, on the host and on
// the device with identical results:
//   gather_row_routing   the expert and router weight of each row of a contiguous expert layout,
//                        so that the experts can run on the permuted rows (one slot per row);
//   add_outputs          the shared experts' output added to the routed output.
// The CUDA versions enqueue one launch on `stream` (no allocation, no synchronisation, graph
// capturable); builds without CUDA return kUnsupported.
#pragma once

#include <cstdint>

#include "switchyard/status.h"
#include "switchyard/stream.h"
#include "switchyard/tensor.h"

namespace switchyard::tools {

// row_experts[r] = ids[dst_to_src[r]] and, when row_weights is not null, row_weights[r] =
// weights[dst_to_src[r]]; rows with dst_to_src[r] < 0 (padding) get -1 and 0.
//   ids [slots] int32, weights [slots] float32, dst_to_src [num_rows] int64 (from expert_layout),
//   row_experts [num_rows] int32, row_weights [num_rows] float32.
void gather_row_routing_cpu(const std::int32_t* ids, const float* weights,
                            const std::int64_t* dst_to_src, std::int64_t num_rows,
                            std::int32_t* row_experts, float* row_weights);
Status gather_row_routing_cuda(const std::int32_t* ids, const float* weights,
                               const std::int64_t* dst_to_src, std::int64_t num_rows,
                               std::int32_t* row_experts, float* row_weights, cudaStream_t stream);

// out[i] = round(a[i] + b[i]) for n elements of `dtype` (bfloat16 or float16): one float32 add,
// rounded once to nearest even (as a bf16/fp16 tensor addition in PyTorch).
Status add_outputs_cpu(DType dtype, const void* a, const void* b, void* out, std::int64_t n);
Status add_outputs_cuda(DType dtype, const void* a, const void* b, void* out, std::int64_t n,
                        cudaStream_t stream);

}  // namespace switchyard::tools
