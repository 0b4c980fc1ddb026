// Where the one-token kernel (kernels/experts_token.cuh: one or two tokens, GEMM1, GEMM2 and the
// combine in one cooperative launch) runs, and its shared-memory layout: pure host arithmetic
// (no CUDA headers), shared by the launcher (launch/experts_token.cu), the kernel and the tests.
#pragma once

#include <algorithm>
#include <cstdint>

#include "experts.h"

namespace switchyard::heuristics {

inline constexpr int kTokenComputeWarps = 16;               // GEMM1's warps
inline constexpr int kTokenWarps = kTokenComputeWarps + 1;  // + the w2 copy warp
inline constexpr int kTokenMaxSlots = 32;                   // tokens * top_k
// Staged w2 rows are I + kTokenRowPad elements apart in shared memory (I % 8 == 0, so the stride
// is 4 16-byte bank groups off a multiple of 128 bytes): a quarter warp of GEMM2's fragment loads
// reads vectors 4c..4c+3 of rows g and g + 1, which then fall in 8 different bank groups (ncu,
// session 27: unpadded 1536-byte rows, and 1552-byte ones, read twice the ideal wavefronts).
inline constexpr int kTokenRowPad = 32;
// The most bytes of w2 rows one warp streams from global memory after the grid barrier (GEMM2's
// slots that did not fit in shared memory; a warp per slot and 16-row tile, kTokenWarps at a time).
// H200, every preset at 1 and 2 tokens against the decode items (bench/NOTES.md, session 27, call
// 16): faster at <= 96 KB per warp (Qwen3-235B and DeepSeek-V2 at 1 and 2 tokens, gpt-oss at 2:
// 5-15%; gpt-oss at one token, 90 KB: equal), equal at 128-160 KB (DeepSeek-V3, Kimi K2 and
// Qwen3-Coder at one token), slower from 240 KB (the same three at 2 tokens: +3%; Llama 4 and
// Mixtral, whose 1-4 slots leave 3-8 warps streaming long rows: +9-29%).
inline constexpr std::int64_t kTokenMaxGlobalBytesPerWarp = 112 << 10;

constexpr std::int64_t token_align16(std::int64_t b) {
  return (b + 15) / 16 * 16;
}
// Dynamic shared memory, bytes: x (tokens x hidden), h (slots x inter) and y (rows x slots) ...
constexpr std::int64_t token_smem_fixed_bytes(std::int64_t hidden, std::int64_t inter,
                                              std::int64_t slots, std::int64_t tokens,
                                              std::int64_t rows_per_cta) {
  return token_align16(2 * tokens * hidden) + 2 * slots * inter +
         token_align16(4 * rows_per_cta * slots);
}
// ... and the w2 rows of each staged slot.
constexpr std::int64_t token_slot_smem_bytes(std::int64_t inter, std::int64_t rows_per_cta) {
  return 2 * rows_per_cta * (inter + kTokenRowPad);
}

struct TokenShape {
  std::int32_t rows_per_cta = 0;  // R = ceil(H / SMs): output rows (and w2 rows per slot) per CTA
  std::int32_t ctas = 0;          // ceil(H / R) <= SMs: one wave, all resident
  std::int32_t staged_slots = 0;  // slots whose w2 rows fit in shared memory (the first ones)
  std::int64_t smem = 0;          // dynamic shared memory per CTA, bytes
};

// Whether the kernel takes num_tokens tokens of top_k slots (hidden H, intermediate I) on a device
// with `sms` SMs and `smem_budget` bytes of dynamic shared memory per block (the opt-in limit less
// the kernel's static shared memory): 1 <= num_tokens <= kDecodeFusedMaxTokens, num_tokens * top_k
// <= kTokenMaxSlots, x, h and y fit, as many slots' w2 rows are staged as then fit, and GEMM2's
// other slots stream at most kTokenMaxGlobalBytesPerWarp per warp. Fills `out` where it does.
// Qwen3-30B-A3B on an H200 (132 SMs, 232,064 bytes): R = 16, all 8 slots staged at one token
// (221,696 bytes), 7 of 16 at two.
inline bool token_kernel_shape(std::int64_t hidden, std::int64_t inter, std::int64_t num_tokens,
                               std::int64_t top_k, int sms, std::int64_t smem_budget,
                               TokenShape* out) {
  const std::int64_t S = num_tokens * top_k;
  if (num_tokens < 1 || num_tokens > kDecodeFusedMaxTokens || top_k < 1 || S > kTokenMaxSlots ||
      sms <= 0 || hidden < 8 || inter < 8) {
    return false;
  }
  const std::int64_t R = (hidden + sms - 1) / sms;
  const std::int64_t room = smem_budget - token_smem_fixed_bytes(hidden, inter, S, num_tokens, R);
  if (room < 0) return false;
  const std::int64_t staged = std::min(S, room / token_slot_smem_bytes(inter, R));
  const std::int64_t global_items = (S - staged) * ((R + 15) / 16);
  const std::int64_t rounds = (global_items + kTokenWarps - 1) / kTokenWarps;
  if (rounds * 16 * inter * 2 > kTokenMaxGlobalBytesPerWarp) return false;
  out->rows_per_cta = static_cast<std::int32_t>(R);
  out->ctas = static_cast<std::int32_t>((hidden + R - 1) / R);
  out->staged_slots = static_cast<std::int32_t>(staged);
  out->smem = token_smem_fixed_bytes(hidden, inter, S, num_tokens, R) +
              staged * token_slot_smem_bytes(inter, R);
  return true;
}

}  // namespace switchyard::heuristics
