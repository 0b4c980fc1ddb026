// Internals of the CUDA alignment / layout kernel shared by the launcher, the workspace-size
// queries (which must not need a GPU) and the tests.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "switchyard/align.h"

namespace switchyard::detail {

// CPU limit on num_experts.
inline constexpr std::int32_t kMaxCpuAlignExperts = 65536;
// CUDA limit on num_experts: one warp's histogram (4E bytes) plus the segment starts (8E bytes)
// must fit in a block's shared memory.
inline constexpr std::int32_t kMaxCudaAlignExperts = 16384;

// Most blocks a multi-block launch uses for E experts: it bounds the workspace's per-block
// histograms (at most 4 MiB of them) whatever the card.
inline std::int64_t align_max_grid(std::int32_t num_experts) {
  return std::clamp<std::int64_t>((std::int64_t{1} << 20) / std::max(num_experts, 1), 1, 1024);
}

// Workspace bytes: totals [E] int32, then block histograms [align_max_grid(E)][E] int32.
inline std::size_t sort_workspace_bytes(std::int32_t num_experts) {
  const auto e = static_cast<std::size_t>(std::max(num_experts, 0));
  return (e + static_cast<std::size_t>(align_max_grid(num_experts)) * e) * 4;
}

// Test hooks: the CUDA ops with a forced kernel (0: the heuristic; -1: the small-batch kernel
// (alignment, contiguous layout), an error where it does not apply; -2: the warp kernel for
// <= 64 slots (alignment, contiguous layout), an error where it does not apply; -3: the block
// kernel for <= 256 slots, likewise; -4: the cluster kernel for <= 4096 slots on sm_90, likewise;
// -5: the few-experts kernel for <= 1024 slots and <= 32 experts, likewise; -6: the cluster
// kernel's replicated variant (no cluster) for <= 1024 slots on sm_90, likewise; 1: the generic
// kernel on one block; > 1: the generic kernel on that many cooperative blocks, clamped to what
// fits on the card). The heuristic takes, for E >= 64 unless SWITCHYARD_ALIGN_CLUSTER=0 or
// SWITCHYARD_ALIGN_REPL=0 is set in the environment (read once), the replicated variant at
// 33..1024 slots wherever it applies; otherwise the warp kernel wherever it applies (<= 64 slots)
// unless SWITCHYARD_ALIGN_WARP=0, then the block kernel at 33..64 slots unless
// SWITCHYARD_ALIGN_BLOCK=0, then the few-experts kernel wherever it applies unless
// SWITCHYARD_ALIGN_FEW=0, then for E >= 64 unless SWITCHYARD_ALIGN_CLUSTER=0 the cluster kernel
// wherever it applies, then the small-batch kernel (up to SWITCHYARD_ALIGN_SMALL_STEPS 512-slot
// steps where that is set; clustered on sm_90 from SWITCHYARD_ALIGN_SMALL_CLUSTER steps, default
// 17 for E <= 192 and 33 above), then the generic kernel. Grid -1 takes the small-batch kernel
// clustered or not by the same rule.
Status moe_align_block_size_cuda_grid(const AlignParams& params, const AlignArgs& args,
                                      void* workspace, std::size_t workspace_bytes, int grid,
                                      cudaStream_t stream);
Status expert_layout_cuda_grid(const ExpertLayoutParams& params, const ExpertLayoutArgs& args,
                               void* workspace, std::size_t workspace_bytes, int grid,
                               cudaStream_t stream);

// Diagnostics for tests: a device buffer of 12 int64 into which every later alignment / layout
// launch writes block 0's clock64() at each kernel phase boundary (nullptr: off, the default).
void set_align_trace(long long* device_buffer);
// Diagnostics for tests: the small-batch kernel runs its body twice per launch (same outputs), so
// a trace shows the second, warm pass (instruction cache, L2). Off by default.
void set_align_small_twice(bool on);

}  // namespace switchyard::detail
