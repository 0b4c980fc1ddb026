// Host side of the one-token fused MoE kernel (kernels/experts_token.cuh; one or two tokens):
// whether it fits the current device and shape, and its launch. Used by fused_experts_cuda
// (launch/experts.cu) for a plan with decode_fused_token.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "switchyard/experts.h"
#include "switchyard/status.h"

namespace switchyard::detail {

struct TokenLaunch {
  std::int32_t rows_per_cta = 0;  // R: output rows (and w2 rows per slot) per CTA
  std::int32_t ctas = 0;          // ceil(H / R) <= the SM count: one wave, all resident
  std::int32_t staged_slots = 0;  // slots whose w2 rows are staged in shared memory
  std::size_t smem = 0;           // dynamic shared memory per CTA, bytes
};

// Whether the kernel takes this shape on the current device: compute capability >= 9.0 with the
// kernel's sm_90 code in the build, and heuristics::token_kernel_shape with the device's SM count
// and shared memory (heuristics/experts_token.h: the measured rule). Fills `out`.
bool token_kernel_fits(const ExpertsParams& p, std::int64_t num_tokens, std::int64_t top_k,
                       TokenLaunch* out);

// Enqueues the kernel (cooperative; a PDL secondary where PDL is on) for the tokens of `a`
// (already checked by fused_experts_cuda). h_scratch: M * top_k * I elements of the input dtype.
Status launch_token_kernel(const ExpertsParams& p, const ExpertsArgs& a, void* h_scratch,
                           const TokenLaunch& l, cudaStream_t stream);

}  // namespace switchyard::detail
