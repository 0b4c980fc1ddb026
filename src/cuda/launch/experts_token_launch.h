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

// Tokens the kernel takes (its plan: heuristics::ExpertsPlan::decode_fused_token).
inline constexpr std::int64_t kTokenKernelMaxTokens = 2;
// The most bytes of w2 rows one warp streams from global memory after the grid barrier (GEMM2's
// slots that did not fit in shared memory; a warp per slot and 16-row tile, kTokenWarps at a time).
// H200, every preset at 1 and 2 tokens against the decode items (bench/NOTES.md, session 27, call
// 16): faster at <= 96 KB per warp (Qwen3-235B and DeepSeek-V2 at 1 and 2 tokens, gpt-oss at 2:
// 5-15%; gpt-oss at one token, 90 KB: equal), equal at 128-160 KB (DeepSeek-V3, Kimi K2 and
// Qwen3-Coder at one token), slower from 240 KB (the same three at 2 tokens: +3%; Llama 4 and
// Mixtral, whose 1-4 slots leave 3-8 warps streaming long rows: +9-29%).
inline constexpr std::int64_t kTokenMaxGlobalBytesPerWarp = 112 << 10;

struct TokenLaunch {
  std::int32_t rows_per_cta = 0;  // R: output rows (and w2 rows per slot) per CTA
  std::int32_t ctas = 0;          // ceil(H / R) <= the SM count: one wave, all resident
  std::int32_t staged_slots = 0;  // slots whose w2 rows are staged in shared memory
  std::size_t smem = 0;           // dynamic shared memory per CTA, bytes
};

// Whether the kernel takes this shape on the current device: compute capability >= 9.0 with the
// kernel's sm_90 code in the build, 1 <= num_tokens <= kTokenKernelMaxTokens, num_tokens * top_k
// <= kTokenMaxSlots, R = ceil(H / SMs) rows per CTA whose fixed shared memory (x, h, y) fits, and
// the w2 rows of as many slots as then fit staged (Qwen3-30B-A3B at one token: all 8, 222 KB on a
// 132-SM H200) with the rest within kTokenMaxGlobalBytesPerWarp. Fills `out`.
bool token_kernel_fits(const ExpertsParams& p, std::int64_t num_tokens, std::int64_t top_k,
                       TokenLaunch* out);

// Enqueues the kernel (cooperative; a PDL secondary where PDL is on) for the tokens of `a`
// (already checked by fused_experts_cuda). h_scratch: M * top_k * I elements of the input dtype.
Status launch_token_kernel(const ExpertsParams& p, const ExpertsArgs& a, void* h_scratch,
                           const TokenLaunch& l, cudaStream_t stream);

}  // namespace switchyard::detail
