// Grouped GEMM over experts on sm90a (CUTLASS 3.x ptr-array grouped GEMM: TMA loads, wgmma,
// warp-specialized persistent kernel). Internal API of the fused MoE forward; plain C++ header.
//
//   for every group g in [0, num_groups):
//     C[offsets[g] .. offsets[g+1], :] = A[offsets[g] .. offsets[g+1], :] @ B[g]^T
//
//   A [rows, k]          row-major, bfloat16 or float16   (the expert-major token rows)
//   B [num_groups, n, k] row-major, A's dtype             (SGLang w13 [E, 2I, H], w2 [E, H, I])
//   C [rows, n]          row-major, float32 or A's dtype  (float32 accumulation, rounded once)
//   offsets [num_groups + 1] int64 in DEVICE memory: non-decreasing, offsets[0] >= 0,
//     offsets[num_groups] <= rows. Only the device reads it: a tiny setup kernel turns it into
//     per-group problem shapes, pointers and strides in the workspace, and the persistent kernel's
//     grid is the SM count, so nothing waits for the host and the call can be graph-captured.
//     Rows of C outside every group are not written. Groups with 0 rows are skipped.
//
// Requirements (TMA: 16-byte aligned rows and base pointers): k % 8 == 0, n % 8 == 0, every
// pointer 16-byte aligned; k and n need not be multiples of the 64/256 tile (TMA zero-fills the
// loads and clips the stores at the group's edges). grouped_gemm_check() reports a violation.
#pragma once

#include <cstddef>
#include <cstdint>

#include "../heuristics/experts.h"
#include "switchyard/experts.h"
#include "switchyard/status.h"
#include "switchyard/stream.h"
#include "switchyard/tensor.h"

namespace switchyard::detail {

// GEMM1 with the gated activation fused into the epilogue (experts' grouped-GEMM path): B holds
// interleaved gate/up rows (row 2i gate i, row 2i + 1 up i; n = 2I), and C receives
// act(gate + b13[2i], up + b13[2i + 1]) as [rows, n / 2] in the input dtype (out_dtype == dtype),
// rounded once. Tile: kRows64Single only (heuristics::gemm1_fuses_activation says why).
struct GroupedGemmGated {
  Activation activation = Activation::kSiluAndMul;  // a gated one
  float alpha = 0.0f, limit = 0.0f;                 // kSwigluOai
  const void* bias = nullptr;                       // optional [num_groups, n] b13
  bool bias_f32 = false;                            // bias float32 (else dtype)
  bool round_inputs = false;  // gate/up rounded to dtype before the bias (gemm1_rounded)
};

struct GroupedGemmArgs {
  DType dtype = DType::kBFloat16;         // A and B
  DType out_dtype = DType::kFloat32;      // C: float32 or dtype
  const void* a = nullptr;                // [rows, k]
  const void* b = nullptr;                // [num_groups, n, k]
  void* c = nullptr;                      // [rows, n]
  const std::int64_t* offsets = nullptr;  // [num_groups + 1] device
  std::int32_t num_groups = 0;
  std::int64_t rows = 0;  // capacity of A and C (bounds offsets[num_groups])
  std::int32_t n = 0, k = 0;
  const GroupedGemmGated* gated = nullptr;  // set: the fused GEMM1 above (C = [rows, n / 2])
  // kRows64Single only: the dynamic tile scheduler (dynamic_group_scheduler.cuh: a CTA's tiles
  // after its first from a device-wide counter, so SMs that stream faster take more tiles), unless
  // the environment overrides (grouped_gemm_dynamic_tiles). The bits of C do not depend on it.
  bool dynamic_tiles = false;
};

// The largest SM count the kernels use (more SMs run with this many persistent CTAs).
inline constexpr int kGroupedGemmMaxSms = 256;
// Bytes reserved for CUTLASS's own workspace (per-SM TMA descriptors); checked at run time.
inline constexpr std::size_t kGroupedGemmKernelWorkspace = std::size_t{256} << 10;
// The last bytes of that reservation: the dynamic tile scheduler's counter and per-CTA request
// counts (dynamic_group_scheduler.cuh), zeroed by the setup kernel of every call.
inline constexpr std::size_t kGroupedGemmSchedulerBytes = 2048;
// Bytes per group of the device-built argument arrays (shape, 3 pointers, 3 strides),
// rounded up. grouped_gemm_pair_cuda's 2E groups and E tile counters fit the same bytes.
inline constexpr std::size_t kGroupedGemmBytesPerGroup = 128;

// Workspace bytes: 128 * num_groups rounded up to 256, + 256 KiB. 256-byte aligned pointer.
std::size_t grouped_gemm_workspace_size(std::int32_t num_groups);

// Dtypes, sizes and the 16-byte alignment rules above; messages name `op` and the argument.
Status grouped_gemm_check(const char* op, const GroupedGemmArgs& args);

// Checks, then enqueues the setup kernel and the GEMM on `stream` with the given CTA tile.
Status grouped_gemm_cuda(const GroupedGemmArgs& args, heuristics::GemmTile tile, void* workspace,
                         std::size_t workspace_bytes, cudaStream_t stream);

// GEMM1 with the fused gated epilogue and GEMM2 as ONE persistent kernel over 2E groups
// (gemm_pair.cuh: a GEMM2 tile of expert e starts once every GEMM1 tile of e is stored; one ramp
// and one drain instead of two), on the unclustered 64-row tile with the dynamic tile scheduler.
// gemm1: gated set, C = act [rows, n / 2]; gemm2: not gated, A == gemm1.c, k == gemm1.n / 2, C in
// the input dtype; the same dtype, offsets, num_groups and rows. Same bits as grouped_gemm_cuda on
// gemm1 then gemm2 with kRows64Single (tests: ExpertsCuda.GemmPairBitwise). Same workspace as
// grouped_gemm_cuda for num_groups. Checks, then enqueues its setup kernel and the GEMM.
Status grouped_gemm_pair_cuda(const GroupedGemmArgs& gemm1, const GroupedGemmArgs& gemm2,
                              void* workspace, std::size_t workspace_bytes, cudaStream_t stream);

// Whether GEMM1 and GEMM2 run as one kernel when `requested` (ExpertsPlan::gemm_pair) says so.
// SWITCHYARD_GEMM_PAIR in the environment (read once) overrides it for A/B measurements: 0 never,
// 2 wherever grouped_gemm_pair_cuda applies.
bool grouped_gemm_pair(bool requested);

// Whether the 64-row unclustered tile runs with the dynamic tile scheduler when `requested`
// (GroupedGemmArgs::dynamic_tiles, the plan's choice) says so. SWITCHYARD_GEMM_DYNAMIC in the
// environment (read once) overrides it for A/B measurements: 0 never, 2 always.
bool grouped_gemm_dynamic_tiles(bool requested);

// Per-dtype entry points (one translation unit each; called by grouped_gemm_cuda after checks).
Status grouped_gemm_sm90_bf16(const GroupedGemmArgs& args, heuristics::GemmTile tile,
                              void* workspace, cudaStream_t stream);
Status grouped_gemm_sm90_f16(const GroupedGemmArgs& args, heuristics::GemmTile tile,
                             void* workspace, cudaStream_t stream);
Status grouped_gemm_pair_sm90_bf16(const GroupedGemmArgs& gemm1, const GroupedGemmArgs& gemm2,
                                   void* workspace, cudaStream_t stream);
Status grouped_gemm_pair_sm90_f16(const GroupedGemmArgs& gemm1, const GroupedGemmArgs& gemm2,
                                  void* workspace, cudaStream_t stream);

}  // namespace switchyard::detail
