// moe_align_block_size_cuda / expert_layout_cuda: validate -> pick the kernel and size its grid ->
// one launch (align_warp_kernel for <= 64 slots, align_few_kernel for 65..1024 slots and E <= 32,
// align_cluster_kernel for 65..4096 slots and E = 64..512 on sm_90 (its replicated variant, a plain
// grid, at 33..1024 slots, ahead of the warp kernel's two-slot instance), align_small_kernel for
// the other decode batches, expert_sort_kernel otherwise; no allocation, no host synchronisation,
// graph capturable).
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <map>
#include <mutex>
#include <string>
#include <tuple>

#include "../../common/align_check.h"
#include "../../common/align_internal.h"
#include "../../common/check.h"
#include "../cuda_status.h"
#include "../device_attrs.h"
#include "../kernels/align.cuh"
#include "../kernels/align_block.cuh"
#include "../kernels/align_cluster.cuh"
#include "../kernels/align_few.cuh"
#include "../kernels/align_small.cuh"
#include "../kernels/align_warp.cuh"
#include "pdl_launch.h"
#include "switchyard/align.h"

namespace switchyard {

namespace {

using kernels::SortOutput;
using kernels::SortParams;

// Up to this many slots one block does everything (no grid barrier); its warps each keep a
// histogram, so a single block sorts 32 * 32 slots per step.
constexpr std::int64_t kSingleBlockMaxSlots = 8192;
constexpr std::size_t kSingleSharedBudget = 96 * 1024;
constexpr std::size_t kMultiSharedBudget = 40 * 1024;
// A multi-block launch uses at most this many blocks per SM (more makes phase 2's column scans
// and the grid barriers longer without adding bandwidth) and gives each warp at least this many
// 32-slot steps.
constexpr int kMultiBlocksPerSm = 1;
constexpr int kMultiMaxWarps = 16;
constexpr std::int64_t kMinStepsPerWarp = 4;
// Beyond this many output entries the generic kernel runs on a grid (about this many per block).
constexpr std::int64_t kSingleBlockMaxEntries = std::int64_t{1} << 17;
constexpr std::int64_t kEntriesPerBlock = std::int64_t{1} << 15;

int hist_warps_for(std::int32_t E, std::size_t budget, int max_warps) {
  const std::size_t seg = (static_cast<std::size_t>(E) + 1) * 8;
  const std::size_t per_warp = static_cast<std::size_t>(E) * 4;
  if (budget <= seg + per_warp) return 1;
  return static_cast<int>(std::clamp<std::size_t>((budget - seg) / per_warp, 1, max_warps));
}

std::atomic<long long*> g_trace{nullptr};
std::atomic<bool> g_repeat{false};

// Opts `kernel` in to `smem` bytes of dynamic shared memory where that exceeds the default 48 KiB.
template <typename Kernel>
Status set_smem(Kernel kernel, std::size_t smem, const char* what) {
  if (smem <= 48 * 1024) return Status::Ok();
  return detail::cuda_status(
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                           static_cast<int>(smem)),
      what);
}

// The small-batch kernel instance for `steps` (1, 2, 4, ..., 64 unclustered; 16, 32, 64, 128
// clustered with a step per block) and `passes` (1; 2 diagnostics, unclustered only); clustered
// with `own` = 2 or 4 steps per block, the 256- or 512-step instance whatever `steps`.
using SmallKernel = void (*)(SortParams);
SmallKernel small_kernel(int steps, int passes, bool clustered, int own = 1) {
  using kernels::align_small_kernel;
  constexpr int C = kernels::kSmallAlignCluster;
  const int i = std::countr_zero(static_cast<unsigned>(steps));
  if (clustered) {
    if (own == 2) return align_small_kernel<256, 1, C, 2>;
    if (own == 4) return align_small_kernel<512, 1, C, 4>;
    constexpr SmallKernel k[] = {align_small_kernel<16, 1, C>, align_small_kernel<32, 1, C>,
                                 align_small_kernel<64, 1, C>, align_small_kernel<128, 1, C>};
    static_assert(kernels::kSmallAlignMaxSteps == 512, "own = 4 covers 512 steps");
    return k[std::clamp(i, 4, 7) - 4];
  }
  constexpr SmallKernel once[] = {align_small_kernel<1, 1>,  align_small_kernel<2, 1>,
                                  align_small_kernel<4, 1>,  align_small_kernel<8, 1>,
                                  align_small_kernel<16, 1>, align_small_kernel<32, 1>,
                                  align_small_kernel<64, 1>};
  constexpr SmallKernel twice[] = {align_small_kernel<1, 2>,  align_small_kernel<2, 2>,
                                   align_small_kernel<4, 2>,  align_small_kernel<8, 2>,
                                   align_small_kernel<16, 2>, align_small_kernel<32, 2>,
                                   align_small_kernel<64, 2>};
  static_assert(std::size(once) ==
                std::bit_width(static_cast<unsigned>(kernels::kSmallAlignMaxUnclusteredSteps)));
  return passes == 2 ? twice[i] : once[i];
}

// How many 8-block clusters of `kernel` (512 threads, `smem` bytes of dynamic shared memory) can
// be resident at once on `device` (the current one): cudaOccupancyMaxActiveClusters, asked once
// per (device, kernel, smem) and cached. The clustered small kernel's clusters never wait for each
// other, so more of them than this only costs a second wave (H200: 15 clusters of the 2- and
// 4-step instances at 88-95 registers, one block per SM; 30 of the others).
Status max_active_small_clusters(int device, SmallKernel kernel, std::size_t smem, int* out) {
  static std::mutex mu;
  static std::map<std::tuple<int, SmallKernel, std::size_t>, int> cache;
  const auto key = std::make_tuple(device, kernel, smem);
  {
    const std::lock_guard<std::mutex> lock(mu);
    if (const auto it = cache.find(key); it != cache.end()) {
      *out = it->second;
      return Status::Ok();
    }
  }
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = dim3(static_cast<unsigned>(kernels::kSmallAlignCluster));
  cfg.blockDim = dim3(static_cast<unsigned>(kernels::kSmallAlignThreads));
  cfg.dynamicSmemBytes = smem;
  cudaLaunchAttribute attr{};
  attr.id = cudaLaunchAttributeClusterDimension;
  attr.val.clusterDim.x = static_cast<unsigned>(kernels::kSmallAlignCluster);
  attr.val.clusterDim.y = 1;
  attr.val.clusterDim.z = 1;
  cfg.attrs = &attr;
  cfg.numAttrs = 1;
  int n = 0;
  SY_RETURN_IF_ERROR(detail::cuda_status(cudaOccupancyMaxActiveClusters(&n, kernel, &cfg),
                                         "align_small_kernel: cudaOccupancyMaxActiveClusters"));
  const std::lock_guard<std::mutex> lock(mu);
  cache[key] = n;
  *out = n;
  return Status::Ok();
}

// The most slots the heuristic gives align_small_kernel: SWITCHYARD_ALIGN_SMALL_STEPS=S in the
// environment (read once; S 512-slot steps, clamped to 1..kSmallAlignMaxSteps), else
// kernels::kSmallAlignMaxSlots; past it, the grid-barrier sort. For A/B measurements.
std::int64_t small_kernel_max_slots() {
  static const std::int64_t slots = [] {
    const char* v = std::getenv("SWITCHYARD_ALIGN_SMALL_STEPS");
    if (v == nullptr || *v == '\0') return kernels::kSmallAlignMaxSlots;
    return static_cast<std::int64_t>(std::clamp(std::atoi(v), 1, kernels::kSmallAlignMaxSteps)) *
           kernels::kSmallAlignThreads;
  }();
  return slots;
}

// The fewest 512-slot steps for which align_small_kernel runs clustered (sm_90) with E experts:
// SWITCHYARD_ALIGN_SMALL_CLUSTER=S in the environment (read once; 0: never, i.e. unclustered up
// to kSmallAlignMaxUnclusteredSteps, then the grid-barrier sort; else clamped to
// 16..kSmallAlignMaxUnclusteredSteps + 1), else 17 for E <= 192 and 33 above. For A/B
// measurements. Measured (H200, session 24, bench align, us, unclustered -> clustered): at 17-32
// steps E = 8..160 gain (Qwen3-30B 1025 / 2048 tokens 4.86 / 5.32 -> 4.43 / 4.47, Mixtral 4097 /
// 8192 4.46 / 4.93 -> 3.64 / 3.69, DeepSeek-V2 2048 5.20 -> 4.68), E = 256 breaks even
// (DeepSeek-V3 1025 / 2048 5.02 / 5.41 -> 5.21 / 5.20) and E = 384 loses (Kimi K2 5.44 / 5.45 ->
// 6.01 / 5.92: the exchange reads 3 x 8 words per expert); at exactly 16 steps clustered lost
// (gpt-oss 2048 tokens 3.99 -> 4.31); from 33 steps it wins for every E (2-3x).
int small_cluster_min_steps(std::int32_t num_experts) {
  static const int forced = [] {
    const char* v = std::getenv("SWITCHYARD_ALIGN_SMALL_CLUSTER");
    if (v == nullptr || *v == '\0') return 0;
    const int s = std::atoi(v);
    return s <= 0 ? kernels::kSmallAlignMaxSteps + 1
                  : std::clamp(s, 16, kernels::kSmallAlignMaxUnclusteredSteps + 1);
  }();
  if (forced > 0) return forced;
  return num_experts <= 192 ? 17 : 33;
}

// The warp kernel instance for `output` (kAlign or kContiguous), `sets` (slots per lane: 1 or 2)
// and `passes` (1; 2 diagnostics).
SmallKernel warp_kernel(SortOutput output, int sets, int passes) {
  using kernels::align_warp_kernel;
  const SmallKernel kAlign[2][2] = {{align_warp_kernel<true, 1, 1>, align_warp_kernel<true, 1, 2>},
                                    {align_warp_kernel<true, 2, 1>, align_warp_kernel<true, 2, 2>}};
  const SmallKernel kLayout[2][2] = {
      {align_warp_kernel<false, 1, 1>, align_warp_kernel<false, 1, 2>},
      {align_warp_kernel<false, 2, 1>, align_warp_kernel<false, 2, 2>}};
  return (output == SortOutput::kAlign ? kAlign : kLayout)[sets - 1][passes - 1];
}

// SWITCHYARD_ALIGN_PUSH=0 in the environment runs the cluster kernel's pulling form (counts read
// through distributed shared memory after a release / acquire cluster barrier, every output
// prefilled first) instead of the pushing one (read once). For A/B measurements.
bool cluster_push_enabled() {
  static const bool enabled = [] {
    const char* v = std::getenv("SWITCHYARD_ALIGN_PUSH");
    return v == nullptr || std::strcmp(v, "0") != 0;
  }();
  return enabled;
}

// The cluster kernel instance for `output` (kAlign or kContiguous), `passes` (1; 2 diagnostics)
// and `push`.
SmallKernel cluster_kernel(SortOutput output, int passes, bool push) {
  using kernels::align_cluster_kernel;
  const SmallKernel k[2][2][2] = {
      {{align_cluster_kernel<true, 1, 0, false>, align_cluster_kernel<true, 2, 0, false>},
       {align_cluster_kernel<false, 1, 0, false>, align_cluster_kernel<false, 2, 0, false>}},
      {{align_cluster_kernel<true, 1, 0, true>, align_cluster_kernel<true, 2, 0, true>},
       {align_cluster_kernel<false, 1, 0, true>, align_cluster_kernel<false, 2, 0, true>}}};
  return k[push ? 1 : 0][output == SortOutput::kAlign ? 0 : 1][passes - 1];
}

// The replicated variant of the cluster kernel (align_cluster.cuh, kRepl) for `output`, `steps`
// (1, 2) and `passes`.
template <bool kAlign, int kPasses>
SmallKernel repl_kernel_of(int steps) {
  using kernels::align_cluster_kernel;
  return steps == 1 ? align_cluster_kernel<kAlign, kPasses, 1>
                    : align_cluster_kernel<kAlign, kPasses, 2>;
}
SmallKernel repl_kernel(SortOutput output, int steps, int passes) {
  if (output == SortOutput::kAlign) {
    return passes == 1 ? repl_kernel_of<true, 1>(steps) : repl_kernel_of<true, 2>(steps);
  }
  return passes == 1 ? repl_kernel_of<false, 1>(steps) : repl_kernel_of<false, 2>(steps);
}

// The few-experts kernel instance for `output` (kAlign or kContiguous) and `passes` (1; 2
// diagnostics).
SmallKernel few_kernel(SortOutput output, int passes) {
  using kernels::align_few_kernel;
  const SmallKernel k[2][2] = {{align_few_kernel<true, 1>, align_few_kernel<true, 2>},
                               {align_few_kernel<false, 1>, align_few_kernel<false, 2>}};
  return k[output == SortOutput::kAlign ? 0 : 1][passes - 1];
}

// SWITCHYARD_ALIGN_FEW=0 in the environment keeps the heuristic off align_few_kernel (read once):
// 65..1024 slots with E <= 32 then take align_small_kernel as before it existed. For A/B
// measurements.
bool few_kernel_enabled() {
  static const bool enabled = [] {
    const char* v = std::getenv("SWITCHYARD_ALIGN_FEW");
    return v == nullptr || std::strcmp(v, "0") != 0;
  }();
  return enabled;
}

// Whether the cluster kernels were compiled for sm_90 or later (clusters; below, the kernel
// traps instead of running without its cluster barriers). Asked once.
bool cluster_kernel_compiled() {
  static const bool ok = [] {
    cudaFuncAttributes a{};
    if (cudaFuncGetAttributes(&a, kernels::align_cluster_kernel<true, 1>) != cudaSuccess) {
      (void)cudaGetLastError();
      return false;
    }
    return a.ptxVersion >= 90;
  }();
  return ok;
}

// SWITCHYARD_ALIGN_CLUSTER=0 in the environment keeps the heuristic off align_cluster_kernel
// (read once): 65..4096 slots then take align_small_kernel as before it existed. For A/B
// measurements.
bool cluster_kernel_enabled() {
  static const bool enabled = [] {
    const char* v = std::getenv("SWITCHYARD_ALIGN_CLUSTER");
    return v == nullptr || std::strcmp(v, "0") != 0;
  }();
  return enabled;
}

// The most 512-slot steps the heuristic gives the replicated variant of the cluster kernel:
// SWITCHYARD_ALIGN_REPL=S in the environment (read once; 0: never, then the cluster and warp
// kernels take its slots; 1: up to 512 slots), else kernels::kReplAlignMaxSteps (2: 1024 slots).
// For A/B measurements.
int repl_kernel_max_steps() {
  static const int steps = [] {
    const char* v = std::getenv("SWITCHYARD_ALIGN_REPL");
    if (v == nullptr || *v == '\0') return kernels::kReplAlignMaxSteps;
    return std::clamp(std::atoi(v), 0, kernels::kReplAlignMaxSteps);
  }();
  return steps;
}

// SWITCHYARD_ALIGN_BLOCK=0 in the environment keeps the heuristic off align_block_kernel (read
// once): 33..64 slots then take the next kernel of the heuristic (align_internal.h). For A/B
// measurements.
bool block_kernel_enabled() {
  static const bool enabled = [] {
    const char* v = std::getenv("SWITCHYARD_ALIGN_BLOCK");
    return v == nullptr || std::strcmp(v, "0") != 0;
  }();
  return enabled;
}

// SWITCHYARD_ALIGN_WARP=0 in the environment keeps the heuristic off align_warp_kernel (read
// once): <= 64 slots then take the next kernel of the heuristic (align_internal.h). For A/B
// measurements.
bool warp_kernel_enabled() {
  static const bool enabled = [] {
    const char* v = std::getenv("SWITCHYARD_ALIGN_WARP");
    return v == nullptr || std::strcmp(v, "0") != 0;
  }();
  return enabled;
}

// Chooses single block or cooperative grid and launches. `forced_grid` as in align_internal.h.
Status launch_sort(const char* op, SortParams p, void* workspace, std::size_t workspace_bytes,
                   int forced_grid, cudaStream_t stream) {
  const std::int32_t E = p.num_experts;
  const std::size_t need = detail::sort_workspace_bytes(E);
  if (workspace_bytes < need) {
    return detail::invalid_arg(op, "workspace_bytes", workspace_bytes,
                               ">= " + std::to_string(need) + " (the *_workspace_size query)");
  }
  if (workspace == nullptr || (reinterpret_cast<std::uintptr_t>(workspace) & 15u) != 0) {
    return detail::invalid_arg(op, "workspace", workspace == nullptr ? "null" : "misaligned",
                               "a 16-byte aligned device pointer");
  }
  detail::DeviceAttrs dev;
  SY_RETURN_IF_ERROR(detail::current_device_attrs(&dev));
  p.trace = g_trace.load(std::memory_order_relaxed);
  p.totals = static_cast<std::int32_t*>(workspace);
  p.block_hist = p.totals + E;

  // The small and warp kernels: alignment or the contiguous layout, up to `max_slots` slots and
  // `max_experts` experts, with 32-bit arithmetic (slots + padding and every output below 2^30).
  const auto fits_small_kernel = [&](std::int64_t max_slots, std::int64_t max_experts) {
    return p.output != SortOutput::kMasked && p.num_slots <= max_slots && E <= max_experts &&
           p.pad <= (1 << 20) &&
           p.num_slots + static_cast<std::int64_t>(E) * (p.pad - 1) < (1 << 30) &&
           p.map_size < (1 << 30) &&
           std::max({p.sorted_numel, p.block_experts_numel, p.dst_numel}) < (1 << 30);
  };
  // Small problems (decode batches) up to mid-size prefill: the small kernel, clustered from
  // small_cluster_min_steps(E) steps where clusters exist (sm_90).
  const std::int64_t small_steps =
      (p.num_slots + kernels::kSmallAlignThreads - 1) / kernels::kSmallAlignThreads;
  const bool small_clustered =
      small_steps >= small_cluster_min_steps(E) && dev.cc_major >= 9 && cluster_kernel_compiled();
  const bool small_ok = fits_small_kernel(
      small_clustered ? kernels::kSmallAlignMaxSlots : kernels::kSmallAlignMaxUnclusteredSlots,
      kernels::kSmallAlignMaxExperts);
  if (forced_grid == -1 && !small_ok) {
    return detail::invalid_arg(op, "grid", forced_grid,
                               "-1 only for alignment or the contiguous layout with <= " +
                                   std::to_string(kernels::kSmallAlignMaxSlots) + " slots (" +
                                   std::to_string(kernels::kSmallAlignMaxUnclusteredSlots) +
                                   " below sm_90), <= 512 experts and slots + padding < 2^30");
  }
  const std::int64_t small_out_entries =
      p.output == SortOutput::kAlign ? p.sorted_numel + p.block_experts_numel : p.dst_numel;
  // Up to 4096 slots, E <= 512, outputs of at most kClusterAlignMaxEntries, sm_90: one cluster
  // (the heuristic: from kClusterAlignHeuristicMinExperts experts).
  const bool cluster_ok =
      fits_small_kernel(kernels::kClusterAlignMaxSlots, kernels::kClusterAlignMaxExperts) &&
      small_out_entries <= kernels::kClusterAlignMaxEntries && dev.cc_major >= 9 &&
      cluster_kernel_compiled();
  const bool cluster_heuristic =
      cluster_ok && cluster_kernel_enabled() && E >= kernels::kClusterAlignHeuristicMinExperts;
  // Up to 1024 slots, the same limits otherwise: the replicated variant (no cluster; one or two
  // steps of 512 slots). The heuristic takes it where it would take the cluster kernel, and from
  // 33 slots ahead of the warp kernel's two-slot instance (H200, session 19: DeepSeek-V3 5-8
  // tokens 2.25 -> 2.10 us per launch; at <= 32 slots the one-slot warp kernel stays faster,
  // 1.76-1.84 against 2.07).
  const int repl_steps = kernels::repl_align_steps(p.num_slots);
  const std::size_t repl_smem = kernels::cluster_align_shared_bytes(E, repl_steps);
  const bool repl_ok = cluster_ok && p.num_slots <= kernels::kReplAlignMaxSlots &&
                       repl_smem <= static_cast<std::size_t>(dev.max_smem_optin);
  const bool repl_heuristic = cluster_heuristic && repl_ok &&
                              repl_steps <= repl_kernel_max_steps() &&
                              p.num_slots > kernels::kWarpAlignOneSetMaxSlots;
  // Tiny batches (<= 64 slots, E up to 2^kWarpAlignMaxBits - 1): the warp kernel.
  const bool warp_ok =
      fits_small_kernel(kernels::kWarpAlignMaxSlots, (1 << kernels::kWarpAlignMaxBits) - 1);
  if (forced_grid == -2 && !warp_ok) {
    return detail::invalid_arg(op, "grid", forced_grid,
                               "-2 only for alignment or the contiguous layout with <= 64 slots "
                               "and slots + padding < 2^30");
  }
  if (forced_grid == -2 ||
      (forced_grid == 0 && warp_ok && warp_kernel_enabled() && !repl_heuristic)) {
    auto* kernel = warp_kernel(p.output, kernels::warp_align_sets(p.num_slots),
                               g_repeat.load(std::memory_order_relaxed) ? 2 : 1);
    return detail::cuda_status(
        detail::launch_ex(kernel,
                          {dim3(static_cast<unsigned>(kernels::warp_align_grid(p))),
                           dim3(kernels::kWarpAlignThreads)},
                          stream, /*pdl=*/true, p),
        "align_warp_kernel: launch");
  }
  // The block kernel (E up to 2^kWarpAlignMaxBits - 1): 33..64 slots when the warp kernel is off
  // (SWITCHYARD_ALIGN_WARP=0; the warp kernel's two sets replaced it there), grid -3 up to 256
  // slots (where it runs slower than align_small_kernel from 4 groups of 32 on).
  const bool block_ok =
      fits_small_kernel(kernels::kBlockAlignMaxSlots, (1 << kernels::kWarpAlignMaxBits) - 1);
  if (forced_grid == -3 && !block_ok) {
    return detail::invalid_arg(op, "grid", forced_grid,
                               "-3 only for alignment or the contiguous layout with <= 256 slots "
                               "and slots + padding < 2^30");
  }
  if (forced_grid == -3 ||
      (forced_grid == 0 && block_ok && block_kernel_enabled() && !repl_heuristic &&
       p.num_slots <= kernels::kBlockAlignHeuristicMaxSlots)) {
    auto* kernel = p.output == SortOutput::kAlign ? kernels::align_block_kernel<true>
                                                  : kernels::align_block_kernel<false>;
    return detail::cuda_status(
        detail::launch_ex(kernel,
                          {dim3(static_cast<unsigned>(kernels::block_align_grid(p))),
                           dim3(kernels::kBlockAlignThreads)},
                          stream, /*pdl=*/true, p),
        "align_block_kernel: launch");
  }
  // Up to 1024 slots, E <= 32, outputs of at most kFewAlignMaxEntries: one block (the heuristic:
  // wherever it applies; the warp kernel took <= 64 slots above).
  const bool few_ok = fits_small_kernel(kernels::kFewAlignMaxSlots, kernels::kFewAlignMaxExperts) &&
                      small_out_entries <= kernels::kFewAlignMaxEntries;
  if (forced_grid == -5 && !few_ok) {
    return detail::invalid_arg(op, "grid", forced_grid,
                               "-5 only for alignment or the contiguous layout with <= 1024 slots, "
                               "<= 32 experts, outputs of <= " +
                                   std::to_string(kernels::kFewAlignMaxEntries) +
                                   " entries and slots + padding < 2^30");
  }
  if (forced_grid == -5 || (forced_grid == 0 && few_ok && few_kernel_enabled())) {
    auto* kernel = few_kernel(p.output, g_repeat.load(std::memory_order_relaxed) ? 2 : 1);
    return detail::cuda_status(
        detail::launch_ex(
            kernel, {dim3(1), dim3(static_cast<unsigned>(kernels::few_align_threads(p.num_slots)))},
            stream, /*pdl=*/true, p),
        "align_few_kernel: launch");
  }
  if (forced_grid == -4 && !cluster_ok) {
    return detail::invalid_arg(op, "grid", forced_grid,
                               "-4 only on sm_90 or later, for alignment or the contiguous layout "
                               "with <= 4096 slots, <= 512 experts, outputs of <= " +
                                   std::to_string(kernels::kClusterAlignMaxEntries) +
                                   " entries and slots + padding < 2^30");
  }
  if (forced_grid == -6 && !repl_ok) {
    return detail::invalid_arg(op, "grid", forced_grid,
                               "-6 only on sm_90 or later, for alignment or the contiguous layout "
                               "with <= 1024 slots, <= 512 experts, outputs of <= " +
                                   std::to_string(kernels::kClusterAlignMaxEntries) +
                                   " entries and slots + padding < 2^30");
  }
  if (forced_grid == -6 || (forced_grid == 0 && repl_heuristic)) {
    auto* kernel =
        repl_kernel(p.output, repl_steps, g_repeat.load(std::memory_order_relaxed) ? 2 : 1);
    SY_RETURN_IF_ERROR(
        set_smem(kernel, repl_smem, "align_cluster_kernel (replicated): shared memory attribute"));
    const int blocks = p.output == SortOutput::kAlign
                           ? kernels::repl_align_blocks(p.sorted_numel, p.block_experts_numel)
                           : kernels::repl_align_blocks(p.dst_numel, 0);
    const detail::LaunchShape shape{dim3(static_cast<unsigned>(blocks)),
                                    dim3(kernels::kClusterAlignThreads), repl_smem};
    return detail::cuda_status(detail::launch_ex(kernel, shape, stream, /*pdl=*/true, p),
                               "align_cluster_kernel (replicated): launch");
  }
  if (forced_grid == -4 || (forced_grid == 0 && cluster_heuristic)) {
    const bool push = cluster_push_enabled();
    auto* kernel = cluster_kernel(p.output, g_repeat.load(std::memory_order_relaxed) ? 2 : 1, push);
    // <= 36,928 bytes (E = 512) pulling, 57,416 pushing (opt-in past 48 KiB)
    const std::size_t smem = kernels::cluster_align_shared_bytes(E, 1, push);
    SY_RETURN_IF_ERROR(set_smem(kernel, smem, "align_cluster_kernel: shared memory attribute"));
    const int blocks = kernels::cluster_align_blocks(p.num_slots, small_out_entries);
    const detail::LaunchShape shape{dim3(static_cast<unsigned>(blocks)),
                                    dim3(kernels::kClusterAlignThreads), smem,
                                    static_cast<unsigned>(blocks)};
    return detail::cuda_status(detail::launch_ex(kernel, shape, stream, /*pdl=*/true, p),
                               "align_cluster_kernel: cluster launch");
  }
  if (small_ok &&
      (forced_grid == -1 || (forced_grid == 0 && p.num_slots <= small_kernel_max_slots()))) {
    // (-2 .. -6 returned above)
    const int cluster = small_clustered ? kernels::kSmallAlignCluster : 1;
    const int steps = kernels::small_align_steps(p.num_slots);
    const std::int64_t out_entries =
        p.output == SortOutput::kAlign ? p.sorted_numel + p.block_experts_numel : p.dst_numel;
    int own = 1;
    SmallKernel kernel = nullptr;
    std::size_t smem = 0;
    bool resident = true;
    if (small_clustered) {
      // The fewest steps per block (1 up to 128 steps, 2 up to 256, then 4) whose clusters are
      // all resident at once; where none is, the heuristic leaves the slots to the grid-barrier
      // sort (a second wave of clusters doubles the time: H200, session 24, 32768 tokens of
      // top-8 with 16 clusters of the 4-step instance 23.6-27.0 us against the sort's 17.3-18.7),
      // and grid -1 runs the 4-step instance anyway.
      resident = false;
      for (const int o : {1, 2, 4}) {
        if (steps > 128 * o) continue;
        own = o;
        kernel = small_kernel(steps, 1, true, o);
        smem = kernels::small_align_shared_bytes(E, cluster, o);
        SY_RETURN_IF_ERROR(set_smem(kernel, smem, "align_small_kernel: shared memory attribute"));
        int active = 0;
        SY_RETURN_IF_ERROR(max_active_small_clusters(dev.device, kernel, smem, &active));
        if (kernels::small_align_grid(p.num_slots, out_entries, cluster, o) <= active * cluster) {
          resident = true;
          break;
        }
      }
    } else {
      kernel = small_kernel(steps, g_repeat.load(std::memory_order_relaxed) ? 2 : 1, false);
      smem = kernels::small_align_shared_bytes(E);
      SY_RETURN_IF_ERROR(set_smem(kernel, smem, "align_small_kernel: shared memory attribute"));
    }
    if (resident || forced_grid == -1) {
      const detail::LaunchShape shape{dim3(static_cast<unsigned>(kernels::small_align_grid(
                                          p.num_slots, out_entries, cluster, own))),
                                      dim3(kernels::kSmallAlignThreads), smem,
                                      small_clustered ? static_cast<unsigned>(cluster) : 0u};
      return detail::cuda_status(
          detail::launch_ex(kernel, shape, stream, /*pdl=*/true, p),
          small_clustered ? "align_small_kernel: cluster launch" : "align_small_kernel: launch");
    }
  }

  // Output entries every launch writes (padding and tails included): large E makes them many
  // even for few slots, and one block would write them alone.
  const std::int64_t out_entries =
      p.output == SortOutput::kAlign ? p.sorted_numel + p.block_experts_numel : p.dst_numel;
  bool multi = forced_grid > 1 || (forced_grid == 0 && (p.num_slots > kSingleBlockMaxSlots ||
                                                        out_entries > kSingleBlockMaxEntries));
  int grid = 1;
  if (multi) {
    p.hist_warps = hist_warps_for(E, kMultiSharedBudget, kMultiMaxWarps);
    const std::size_t smem = kernels::sort_shared_bytes(E, p.hist_warps);
    SY_RETURN_IF_ERROR(set_smem(kernels::expert_sort_kernel<true>, smem,
                                "expert_sort_kernel: shared memory attribute"));
    int per_sm = 0;
    SY_RETURN_IF_ERROR(detail::cuda_status(
        cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernels::expert_sort_kernel<true>,
                                                      p.hist_warps * 32, smem),
        "expert_sort_kernel: occupancy"));
    const std::int64_t resident = static_cast<std::int64_t>(std::max(per_sm, 0)) * dev.sms;
    std::int64_t want =
        forced_grid > 1 ? forced_grid
                        : std::min<std::int64_t>(
                              static_cast<std::int64_t>(kMultiBlocksPerSm) * dev.sms,
                              std::max((p.num_slots + p.hist_warps * 32 * kMinStepsPerWarp - 1) /
                                           (p.hist_warps * 32 * kMinStepsPerWarp),
                                       (out_entries + kEntriesPerBlock - 1) / kEntriesPerBlock));
    want = std::min({want, resident, detail::align_max_grid(E)});
    grid = static_cast<int>(std::max<std::int64_t>(want, 1));
    multi = grid > 1;
    if (multi) {
      cudaLaunchConfig_t cfg = {};
      cfg.gridDim = dim3(static_cast<unsigned>(grid));
      cfg.blockDim = dim3(static_cast<unsigned>(p.hist_warps * 32));
      cfg.dynamicSmemBytes = smem;
      cfg.stream = stream;
      cudaLaunchAttribute attr[1];
      attr[0].id = cudaLaunchAttributeCooperative;
      attr[0].val.cooperative = 1;
      cfg.attrs = attr;
      cfg.numAttrs = 1;
      return detail::cuda_status(cudaLaunchKernelEx(&cfg, kernels::expert_sort_kernel<true>, p),
                                 "expert_sort_kernel: cooperative launch");
    }
  }
  p.hist_warps = hist_warps_for(E, kSingleSharedBudget, 32);
  const std::size_t smem = kernels::sort_shared_bytes(E, p.hist_warps);
  if (smem > static_cast<std::size_t>(dev.max_smem_optin)) {
    return detail::invalid_arg(op, "num_experts", E,
                               "a count whose histogram fits in shared memory (" +
                                   std::to_string(smem) + " bytes needed)");
  }
  SY_RETURN_IF_ERROR(set_smem(kernels::expert_sort_kernel<false>, smem,
                              "expert_sort_kernel: shared memory attribute"));
  kernels::expert_sort_kernel<false><<<1, p.hist_warps * 32, smem, stream>>>(p);
  return detail::cuda_status(cudaGetLastError(), "expert_sort_kernel: launch");
}

SortParams ids_params(const TensorView& ids, const TensorView& expert_map, std::int32_t E) {
  SortParams p;
  p.ids = ids.data;
  p.ids_int64 = ids.dtype == DType::kInt64;
  p.num_slots = ids.numel();
  p.expert_map = static_cast<const std::int32_t*>(expert_map.data);
  p.map_size = expert_map.defined() ? expert_map.numel() : 0;
  p.num_experts = E;
  return p;
}

}  // namespace

namespace detail {

void set_align_trace(long long* device_buffer) {
  g_trace.store(device_buffer, std::memory_order_relaxed);
}

void set_align_small_twice(bool on) {
  g_repeat.store(on, std::memory_order_relaxed);
}

Status moe_align_block_size_cuda_grid(const AlignParams& params, const AlignArgs& args,
                                      void* workspace, std::size_t workspace_bytes, int grid,
                                      cudaStream_t stream) {
  const char* op = "moe_align_block_size_cuda";
  SY_RETURN_IF_ERROR(align_check(op, params, args, Device::kCuda, kMaxCudaAlignExperts));
  SortParams p = ids_params(args.top_k_ids, args.expert_map, params.num_experts);
  p.output = SortOutput::kAlign;
  p.pad = params.block_size;
  p.sorted_ids = static_cast<std::int32_t*>(args.sorted_token_ids.data);
  p.sorted_numel = args.sorted_token_ids.numel();
  p.block_experts = static_cast<std::int32_t*>(args.expert_ids.data);
  p.block_experts_numel = args.expert_ids.numel();
  p.post_pad = static_cast<std::int32_t*>(args.num_tokens_post_pad.data);
  return launch_sort(op, p, workspace, workspace_bytes, grid, stream);
}

Status expert_layout_cuda_grid(const ExpertLayoutParams& params, const ExpertLayoutArgs& args,
                               void* workspace, std::size_t workspace_bytes, int grid,
                               cudaStream_t stream) {
  const char* op = "expert_layout_cuda";
  SY_RETURN_IF_ERROR(layout_check(op, params, args, Device::kCuda, kMaxCudaAlignExperts));
  SortParams p = ids_params(args.top_k_ids, args.expert_map, params.num_experts);
  const bool masked = params.max_rows_per_expert > 0;
  p.output = masked ? SortOutput::kMasked : SortOutput::kContiguous;
  p.pad = masked ? params.max_rows_per_expert : params.alignment;
  p.counts = static_cast<std::int32_t*>(args.expert_counts.data);
  p.offsets = static_cast<std::int64_t*>(args.expert_offsets.data);
  p.src_to_dst = static_cast<std::int64_t*>(args.src_to_dst.data);
  p.dst_to_src = static_cast<std::int64_t*>(args.dst_to_src.data);
  p.dst_numel = args.dst_to_src.numel();
  p.overflow = static_cast<std::int64_t*>(args.overflow.data);
  return launch_sort(op, p, workspace, workspace_bytes, grid, stream);
}

}  // namespace detail

Status moe_align_block_size_cuda(const AlignParams& params, const AlignArgs& args, void* workspace,
                                 std::size_t workspace_bytes, cudaStream_t stream) {
  return detail::moe_align_block_size_cuda_grid(params, args, workspace, workspace_bytes, 0,
                                                stream);
}

Status expert_layout_cuda(const ExpertLayoutParams& params, const ExpertLayoutArgs& args,
                          void* workspace, std::size_t workspace_bytes, cudaStream_t stream) {
  return detail::expert_layout_cuda_grid(params, args, workspace, workspace_bytes, 0, stream);
}

}  // namespace switchyard
