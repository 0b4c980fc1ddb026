// The CUTLASS 3.x sm90a ptr-array grouped GEMM behind grouped_gemm.h. Included only by the
// per-dtype translation units (grouped_gemm_bf16.cu, grouped_gemm_f16.cu), which instantiate
// 4 tiles x 2 output dtypes each: these kernels take ~30 s apiece to compile, so there are 16 in
// all.
//
// Kernel choice (fixed, no tuning file; CUTLASS example 57 is the API reference):
//   A row-major (K-major), B "column-major" in CUTLASS terms = [n, k] row-major (K-major): the TN
//   GEMM wgmma reads natively from TMA-swizzled shared memory.
//   kRows128: cooperative, tile 128 x 256 x 64 (two consumer warpgroups of 64 x 256 each).
//   kRows64:  ping-pong, tile 64 x 256 x 64 (each consumer warpgroup owns a 64 x 256 tile; the
//             two alternate mainloop and epilogue), for experts with few rows.
//   kRows128Single: kRows128 with cluster 1 x 1: the heuristic's from 289 rows per expert on
//             narrow experts with H >= 2560, and past 512 with SGLang's gate/up halves
//             (heuristics/experts.h).
//   kRows64Single: kRows64 with cluster 1 x 1: the heuristic's tile (heuristics/experts.h). On an
//             H200 it beat both clustered tiles from 16 to 8192 tokens (DeepSeek-V3, Mixtral,
//             Qwen3-30B): an expert with one row tile left the 2 x 1 cluster's second CTA idle.
//             Why it also wins at many row tiles per expert, where each tile reads the weights
//             again, is not measured yet (DRAM bytes per kernel with ncu would tell).
//   Cluster 2 x 1: the two CTAs of a cluster take two row tiles of the same expert and share the
//   B tile (the expert's weights) by TMA multicast, so an expert's weights come from DRAM once per
//   two row tiles. With cluster 1 x 2 (A shared) every row tile re-read the weights: measured on an
//   H100 (ncu, DeepSeek-V3 8192 tokens, ~256 +- 16 rows per expert = 2-3 row tiles) GEMM1 took
//   13.7 ms, the time of reading w13 (15 GB) ~2.5 times; persistent CTAs drift too far apart for
//   the L2 to catch the re-reads. An odd number of row tiles gets one empty CTA (the scheduler
//   rounds up to the cluster, TMA zero-fills and clips). Stages: as many as shared memory holds
//   after the epilogue's carve-out. Epilogue: D = acc (alpha 1, no C operand).
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "../../common/check.h"
#include "../cuda_status.h"
#include "../device_attrs.h"
#include "cute/tensor.hpp"
#include "cutlass/cutlass.h"
#include "cutlass/epilogue/collective/collective_builder.hpp"
#include "cutlass/gemm/collective/collective_builder.hpp"
#include "cutlass/gemm/device/gemm_universal_adapter.h"
#include "cutlass/gemm/dispatch_policy.hpp"
#include "cutlass/gemm/group_array_problem_shape.hpp"
#include "cutlass/gemm/kernel/gemm_universal.hpp"
#include "dynamic_group_scheduler.cuh"
#include "gated_epilogue.cuh"
#include "gemm_pair.cuh"
#include "grouped_gemm.h"

namespace switchyard::detail::sm90 {

struct TileRows128 {
  static constexpr bool kDynamicTiles = false;
  static constexpr bool kPair = false;
  using KernelSchedule = cutlass::gemm::KernelPtrArrayTmaWarpSpecializedCooperative;
  using EpilogueSchedule = cutlass::epilogue::PtrArrayTmaWarpSpecializedCooperative;
  using TileShape = cute::Shape<cute::_128, cute::_256, cute::_64>;
  using ClusterShape = cute::Shape<cute::_2, cute::_1, cute::_1>;
};

struct TileRows64 {
  static constexpr bool kDynamicTiles = false;
  static constexpr bool kPair = false;
  using KernelSchedule = cutlass::gemm::KernelPtrArrayTmaWarpSpecializedPingpong;
  using EpilogueSchedule = cutlass::epilogue::PtrArrayTmaWarpSpecializedPingpong;
  using TileShape = cute::Shape<cute::_64, cute::_256, cute::_64>;
  using ClusterShape = cute::Shape<cute::_2, cute::_1, cute::_1>;
};

struct TileRows128Single {  // TileRows128 without the cluster
  static constexpr bool kDynamicTiles = false;
  static constexpr bool kPair = false;
  using KernelSchedule = cutlass::gemm::KernelPtrArrayTmaWarpSpecializedCooperative;
  using EpilogueSchedule = cutlass::epilogue::PtrArrayTmaWarpSpecializedCooperative;
  using TileShape = cute::Shape<cute::_128, cute::_256, cute::_64>;
  using ClusterShape = cute::Shape<cute::_1, cute::_1, cute::_1>;
};

struct TileRows64Single {  // TileRows64 without the cluster
  static constexpr bool kDynamicTiles = false;
  static constexpr bool kPair = false;
  using KernelSchedule = cutlass::gemm::KernelPtrArrayTmaWarpSpecializedPingpong;
  using EpilogueSchedule = cutlass::epilogue::PtrArrayTmaWarpSpecializedPingpong;
  using TileShape = cute::Shape<cute::_64, cute::_256, cute::_64>;
  using ClusterShape = cute::Shape<cute::_1, cute::_1, cute::_1>;
};

// TileRows64Single with the dynamic tile scheduler (dynamic_group_scheduler.cuh): tiles after a
// CTA's first from a device-wide counter instead of every G-th tile
// (GroupedGemmArgs::dynamic_tiles).
struct TileRows64SingleDynamic : TileRows64Single {
  static constexpr bool kDynamicTiles = true;
};

// TileRows64SingleDynamic running GEMM1 and GEMM2 as one kernel (gemm_pair.cuh).
struct TileRows64SinglePair : TileRows64SingleDynamic {
  static constexpr bool kPair = true;
};

using GroupShape = cute::Shape<int, int, int>;  // (m, n, k)
static_assert(kDynamicTileWords * sizeof(unsigned long long) <= kGroupedGemmSchedulerBytes,
              "the dynamic scheduler's words fit their reservation");
static_assert(2 * (kDynamicTileWords - 1) >= kGroupedGemmMaxSms, "one request count per CTA");

// The dynamic tile scheduler is selected through the problem-shape type.
template <typename Config>
using ProblemShapeFor =
    std::conditional_t<Config::kDynamicTiles, DynamicGroupProblemShape<GroupShape>,
                       cutlass::gemm::GroupProblemShape<GroupShape>>;
// Row-major [rows, cols] with cols contiguous: (leading stride, 1, batch stride 0).
using RowStride = cute::Stride<std::int64_t, cute::Int<1>, cute::Int<0>>;

// A grouped GEMM of every instance with the given epilogue: A [rows, k] and B [n, k] K-major,
// float32 accumulation, a mainloop with as many stages as shared memory holds after the
// epilogue's.
template <typename Element, typename Config, typename EpilogueT>
struct Sm90GroupedGemm {
  using Epilogue = EpilogueT;
  using BuiltMainloop = typename cutlass::gemm::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, Element, cutlass::layout::RowMajor*,
      16 / static_cast<int>(sizeof(Element)), Element, cutlass::layout::ColumnMajor*,
      16 / static_cast<int>(sizeof(Element)), float, typename Config::TileShape,
      typename Config::ClusterShape,
      cutlass::gemm::collective::StageCountAutoCarveout<static_cast<int>(
          sizeof(typename Epilogue::SharedStorage))>,
      typename Config::KernelSchedule>::CollectiveOp;
  using Mainloop = std::conditional_t<Config::kPair, PairMainloop<BuiltMainloop>, BuiltMainloop>;
  using Kernel = cutlass::gemm::kernel::GemmUniversal<ProblemShapeFor<Config>, Mainloop, Epilogue>;
  using Device = cutlass::gemm::device::GemmUniversalAdapter<Kernel>;
  static_assert(std::is_same_v<typename Kernel::InternalStrideA, RowStride>);
  static_assert(std::is_same_v<typename Kernel::InternalStrideB, RowStride>);
};

// CUTLASS's TMA epilogue D = accumulator in ElementOut (row-major D, no C).
template <typename ElementOut, typename Config>
using Sm90LinearEpilogue = typename cutlass::epilogue::collective::CollectiveBuilder<
    cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, typename Config::TileShape,
    typename Config::ClusterShape, cutlass::epilogue::collective::EpilogueTileAuto, float, float,
    void, cutlass::layout::RowMajor*, 16 / static_cast<int>(sizeof(ElementOut)), ElementOut,
    cutlass::layout::RowMajor*, 16 / static_cast<int>(sizeof(ElementOut)),
    typename Config::EpilogueSchedule,
    cutlass::epilogue::fusion::LinearCombination<ElementOut, float, void, float>>::CollectiveOp;

template <typename Element, typename ElementOut, typename Config>
struct GroupedGemm : Sm90GroupedGemm<Element, Config, Sm90LinearEpilogue<ElementOut, Config>> {
  static_assert(
      std::is_same_v<
          typename Sm90GroupedGemm<Element, Config,
                                   Sm90LinearEpilogue<ElementOut, Config>>::Kernel::InternalStrideD,
          RowStride>);
};

// GEMM1 with the gated activation fused into its epilogue (gated_epilogue.cuh): B = w13 with
// interleaved gate/up rows, D = act [rows, n / 2] in the input dtype. Same mainloop as GroupedGemm
// (the stages take the shared memory the TMA epilogue used).
template <typename Element, typename T, typename Config>
struct GroupedGemmGated
    : Sm90GroupedGemm<Element, Config,
                      cutlass::epilogue::collective::detail::Sm90TmaWarpSpecializedAdapter<
                          GatedActEpilogueArray<Element, T, RowStride*, Config::kPair>>> {};

// The per-group argument arrays the kernel reads, carved from the front of the workspace.
template <typename Element, typename ElementOut>
struct GroupArrays {
  GroupShape* shapes;
  const Element** a;
  const Element** b;
  ElementOut** d;
  RowStride* stride_a;
  RowStride* stride_b;
  RowStride* stride_d;
  // The dynamic scheduler's kDynamicTileWords words (zeroed by the setup kernel): the last
  // kGroupedGemmSchedulerBytes of the reserved CUTLASS workspace, not part of this carve.
  unsigned long long* tile_words;

  static GroupArrays carve(void* workspace, std::int32_t groups) {
    auto* p = static_cast<char*>(workspace);
    const auto take = [&](std::size_t elem_bytes) {
      char* q = p;
      p += (elem_bytes * static_cast<std::size_t>(groups) + 15) / 16 * 16;
      return q;
    };
    GroupArrays g;
    g.shapes = reinterpret_cast<GroupShape*>(take(sizeof(GroupShape)));
    g.a = reinterpret_cast<const Element**>(take(sizeof(void*)));
    g.b = reinterpret_cast<const Element**>(take(sizeof(void*)));
    g.d = reinterpret_cast<ElementOut**>(take(sizeof(void*)));
    g.stride_a = reinterpret_cast<RowStride*>(take(sizeof(RowStride)));
    g.stride_b = reinterpret_cast<RowStride*>(take(sizeof(RowStride)));
    g.stride_d = reinterpret_cast<RowStride*>(take(sizeof(RowStride)));
    return g;
  }
  // Bytes carve() uses; bounded by kGroupedGemmBytesPerGroup * groups (checked by the caller).
  static std::size_t bytes(std::int32_t groups) {
    const auto n = static_cast<std::size_t>(groups);
    const auto r16 = [](std::size_t b) { return (b + 15) / 16 * 16; };
    return r16(sizeof(GroupShape) * n) + 3 * r16(sizeof(void*) * n) +
           3 * r16(sizeof(RowStride) * n);
  }
};

// One thread per group: problem shape, base pointers and strides from the device-side offsets.
// Offsets are clamped into [0, rows] so that a corrupt map can never address outside A or C.
template <typename Element, typename ElementOut>
__global__ void grouped_gemm_setup_kernel(const std::int64_t* __restrict__ offsets,  // [G+1]
                                          std::int32_t groups, std::int64_t rows, std::int32_t n,
                                          std::int32_t k, const Element* a,  // [rows, k]
                                          const Element* b,                  // [G, n, k]
                                          ElementOut* d,                     // [rows, d_cols]
                                          std::int32_t d_cols,
                                          GroupArrays<Element, ElementOut> out) {
  const std::int32_t g = static_cast<std::int32_t>(blockIdx.x * blockDim.x + threadIdx.x);
  if (blockIdx.x == 0) {  // the dynamic scheduler's counter and request counts start at 0
    for (int i = static_cast<int>(threadIdx.x); i < kDynamicTileWords;
         i += static_cast<int>(blockDim.x))
      out.tile_words[i] = 0;
  }
  if (g >= groups) return;
  const std::int64_t o0 = offsets[g], o1 = offsets[g + 1];
  const std::int64_t r0 = o0 < 0 ? 0 : (o0 > rows ? rows : o0);
  const std::int64_t r1 = o1 < r0 ? r0 : (o1 > rows ? rows : o1);
  // Component stores: constructing the cute tuples whole goes through a stack temporary.
  GroupShape& shape = out.shapes[g];
  cute::get<0>(shape) = static_cast<int>(r1 - r0);
  cute::get<1>(shape) = n;
  cute::get<2>(shape) = k;
  out.a[g] = a + r0 * k;
  out.b[g] = b + static_cast<std::int64_t>(g) * n * k;
  out.d[g] = d + r0 * d_cols;
  cute::get<0>(out.stride_a[g]) = k;
  cute::get<0>(out.stride_b[g]) = k;
  cute::get<0>(out.stride_d[g]) = d_cols;
}

inline Status cutlass_status(cutlass::Status st, const char* what) {
  if (st == cutlass::Status::kSuccess) return Status::Ok();
  return Status::Internal(std::string("grouped_gemm: ") + what + ": " + cutlassGetStatusString(st));
}

// SM count of the current device, capped at kGroupedGemmMaxSms.
inline Status device_sm_count(int* device, int* sm_count) {
  DeviceAttrs a;
  SY_RETURN_IF_ERROR(current_device_attrs(&a));
  *device = a.device;
  *sm_count = std::min(a.sms, kGroupedGemmMaxSms);
  return Status::Ok();
}

// The per-group arrays carved from the workspace and written by the setup kernel (D of a group:
// d_cols columns), and the CUTLASS workspace after them.
template <typename Element, typename ElementOut>
Status setup_groups(const GroupedGemmArgs& p, void* workspace, std::int32_t d_cols,
                    cudaStream_t stream, GroupArrays<Element, ElementOut>* arrays,
                    void** kernel_workspace) {
  using Arrays = GroupArrays<Element, ElementOut>;
  if (Arrays::bytes(p.num_groups) >
      kGroupedGemmBytesPerGroup * static_cast<std::size_t>(p.num_groups)) {
    return Status::Internal("grouped_gemm: per-group argument arrays exceed their reserved bytes");
  }
  const std::size_t arrays_bytes =
      (kGroupedGemmBytesPerGroup * static_cast<std::size_t>(p.num_groups) + 255) / 256 * 256;
  *arrays = Arrays::carve(workspace, p.num_groups);
  *kernel_workspace = static_cast<char*>(workspace) + arrays_bytes;
  arrays->tile_words = reinterpret_cast<unsigned long long*>(static_cast<char*>(*kernel_workspace) +
                                                             kGroupedGemmKernelWorkspace -
                                                             kGroupedGemmSchedulerBytes);
  constexpr int kSetupThreads = 128;
  grouped_gemm_setup_kernel<Element, ElementOut>
      <<<(p.num_groups + kSetupThreads - 1) / kSetupThreads, kSetupThreads, 0, stream>>>(
          p.offsets, p.num_groups, p.rows, p.n, p.k, static_cast<const Element*>(p.a),
          static_cast<const Element*>(p.b), static_cast<ElementOut*>(p.c), d_cols, *arrays);
  return cuda_status(cudaGetLastError(), "grouped_gemm: setup kernel launch");
}

// Checks the CUTLASS workspace against the reserved bytes, then initialises and launches.
template <typename Device>
Status launch_gemm(const typename Device::Arguments& args, void* kernel_workspace,
                   cudaStream_t stream) {
  if (Device::get_workspace_size(args) > kGroupedGemmKernelWorkspace - kGroupedGemmSchedulerBytes) {
    return Status::Internal(
        "grouped_gemm: CUTLASS workspace exceeds the reserved " +
        std::to_string(kGroupedGemmKernelWorkspace - kGroupedGemmSchedulerBytes) + " bytes");
  }
  Device gemm;
  SY_RETURN_IF_ERROR(cutlass_status(gemm.can_implement(args), "can_implement"));
  SY_RETURN_IF_ERROR(cutlass_status(gemm.initialize(args, kernel_workspace, stream), "initialize"));
  SY_RETURN_IF_ERROR(cutlass_status(gemm.run(stream), "run"));
  return cuda_status(cudaGetLastError(), "grouped_gemm: kernel launch");
}

// The problem shapes as the kernel reads them (on the device only: no host shapes).
template <typename Config>
ProblemShapeFor<Config> device_problem_shapes(std::int32_t groups, GroupShape* shapes) {
  ProblemShapeFor<Config> ps;
  ps.num_groups = groups;
  ps.problem_shapes = shapes;
  ps.host_problem_shapes = nullptr;
  return ps;
}

// The dynamic scheduler's words (dynamic_group_scheduler.cuh); nothing for the static one.
template <typename Config, typename SchedulerArguments>
void set_tile_words(SchedulerArguments& args, unsigned long long* words) {
  if constexpr (Config::kDynamicTiles) {
    args.words = words;
  } else {
    (void)args;
    (void)words;
  }
}

template <typename Element, typename ElementOut, typename Config>
Status run(const GroupedGemmArgs& p, void* workspace, cudaStream_t stream) {
  using Gemm = GroupedGemm<Element, ElementOut, Config>;
  GroupArrays<Element, ElementOut> arrays;
  void* kernel_workspace = nullptr;
  SY_RETURN_IF_ERROR(setup_groups(p, workspace, p.n, stream, &arrays, &kernel_workspace));
  cutlass::KernelHardwareInfo hw;
  SY_RETURN_IF_ERROR(device_sm_count(&hw.device_id, &hw.sm_count));
  typename Gemm::Device::Arguments args{cutlass::gemm::GemmUniversalMode::kGrouped,
                                        device_problem_shapes<Config>(p.num_groups, arrays.shapes),
                                        {arrays.a, arrays.stride_a, arrays.b, arrays.stride_b},
                                        {{}, nullptr, nullptr, arrays.d, arrays.stride_d},
                                        hw};
  set_tile_words<Config>(args.scheduler, arrays.tile_words);
  args.epilogue.thread.alpha = 1.0f;
  args.epilogue.thread.beta = 0.0f;
  return launch_gemm<typename Gemm::Device>(args, kernel_workspace, stream);
}

// The fused GEMM1 (p.gated set): C = act [rows, n / 2] in the input dtype.
template <typename Element, typename T, typename Config>
Status run_gated(const GroupedGemmArgs& p, void* workspace, cudaStream_t stream) {
  using Gemm = GroupedGemmGated<Element, T, Config>;
  GroupArrays<Element, Element> arrays;
  void* kernel_workspace = nullptr;
  SY_RETURN_IF_ERROR(setup_groups(p, workspace, p.n / 2, stream, &arrays, &kernel_workspace));
  cutlass::KernelHardwareInfo hw;
  SY_RETURN_IF_ERROR(device_sm_count(&hw.device_id, &hw.sm_count));
  typename Gemm::Epilogue::Arguments epi;
  epi.gated.activation = p.gated->activation;
  epi.gated.alpha = p.gated->alpha;
  epi.gated.limit = p.gated->limit;
  epi.gated.bias = p.gated->bias;
  epi.gated.bias_f32 = p.gated->bias_f32;
  epi.gated.round_inputs = p.gated->round_inputs;
  epi.ptr_D = arrays.d;
  epi.dD = arrays.stride_d;
  typename Gemm::Device::Arguments args{cutlass::gemm::GemmUniversalMode::kGrouped,
                                        device_problem_shapes<Config>(p.num_groups, arrays.shapes),
                                        {arrays.a, arrays.stride_a, arrays.b, arrays.stride_b},
                                        epi,
                                        hw};
  set_tile_words<Config>(args.scheduler, arrays.tile_words);
  return launch_gemm<typename Gemm::Device>(args, kernel_workspace, stream);
}

// GEMM1 (gated) and GEMM2 as one kernel (gemm_pair.cuh): one thread per expert e writes group e
// (GEMM1: act_e = gated(A1_e B1_e^T), n1 = 2I) and group E + e (GEMM2: y_e = act_e B2_e^T), and
// zeroes done[e]; block 0 zeroes the dynamic scheduler's words. Offsets clamped as above.
template <typename Element>
__global__ void grouped_gemm_pair_setup_kernel(const std::int64_t* __restrict__ offsets,
                                               std::int32_t experts, std::int64_t rows,
                                               std::int32_t n1, std::int32_t k1, const Element* a1,
                                               const Element* b1, Element* d1, std::int32_t n2,
                                               std::int32_t k2, const Element* b2, Element* d2,
                                               GroupArrays<Element, Element> out,
                                               std::uint32_t* done) {
  const std::int32_t e = static_cast<std::int32_t>(blockIdx.x * blockDim.x + threadIdx.x);
  if (blockIdx.x == 0) {
    for (int i = static_cast<int>(threadIdx.x); i < kDynamicTileWords;
         i += static_cast<int>(blockDim.x))
      out.tile_words[i] = 0;
  }
  if (e >= experts) return;
  const std::int64_t o0 = offsets[e], o1 = offsets[e + 1];
  const std::int64_t r0 = o0 < 0 ? 0 : (o0 > rows ? rows : o0);
  const std::int64_t r1 = o1 < r0 ? r0 : (o1 > rows ? rows : o1);
  const std::int32_t d1_cols = n1 / 2;  // act [rows, I]
  const std::int32_t g2 = experts + e;
  cute::get<0>(out.shapes[e]) = static_cast<int>(r1 - r0);
  cute::get<1>(out.shapes[e]) = n1;
  cute::get<2>(out.shapes[e]) = k1;
  out.a[e] = a1 + r0 * k1;
  out.b[e] = b1 + static_cast<std::int64_t>(e) * n1 * k1;
  out.d[e] = d1 + r0 * d1_cols;
  cute::get<0>(out.stride_a[e]) = k1;
  cute::get<0>(out.stride_b[e]) = k1;
  cute::get<0>(out.stride_d[e]) = d1_cols;
  cute::get<0>(out.shapes[g2]) = static_cast<int>(r1 - r0);
  cute::get<1>(out.shapes[g2]) = n2;
  cute::get<2>(out.shapes[g2]) = k2;
  out.a[g2] = d1 + r0 * d1_cols;  // GEMM2's A is GEMM1's act (k2 == I)
  out.b[g2] = b2 + static_cast<std::int64_t>(e) * n2 * k2;
  out.d[g2] = d2 + r0 * n2;
  cute::get<0>(out.stride_a[g2]) = k2;
  cute::get<0>(out.stride_b[g2]) = k2;
  cute::get<0>(out.stride_d[g2]) = n2;
  done[e] = 0;
}

// The pair: g1 the fused GEMM1 (g1.gated set, C = act), g2 GEMM2 (A = act, C in the input dtype);
// both checked by grouped_gemm_pair_cuda.
template <typename Element, typename T>
Status run_pair(const GroupedGemmArgs& g1, const GroupedGemmArgs& g2, void* workspace,
                cudaStream_t stream) {
  using Config = TileRows64SinglePair;
  using Gemm = GroupedGemmGated<Element, T, Config>;
  using Arrays = GroupArrays<Element, Element>;
  const std::int32_t E = g1.num_groups;
  const std::size_t reserved =
      (kGroupedGemmBytesPerGroup * static_cast<std::size_t>(E) + 255) / 256 * 256;
  const std::size_t done_at = (Arrays::bytes(2 * E) + 15) / 16 * 16;
  if (done_at + sizeof(std::uint32_t) * static_cast<std::size_t>(E) > reserved) {
    return Status::Internal("grouped_gemm: the pair's argument arrays exceed their reserved bytes");
  }
  Arrays arrays = Arrays::carve(workspace, 2 * E);
  auto* done = reinterpret_cast<std::uint32_t*>(static_cast<char*>(workspace) + done_at);
  void* kernel_workspace = static_cast<char*>(workspace) + reserved;
  arrays.tile_words = reinterpret_cast<unsigned long long*>(static_cast<char*>(kernel_workspace) +
                                                            kGroupedGemmKernelWorkspace -
                                                            kGroupedGemmSchedulerBytes);
  constexpr int kSetupThreads = 128;
  grouped_gemm_pair_setup_kernel<Element>
      <<<(E + kSetupThreads - 1) / kSetupThreads, kSetupThreads, 0, stream>>>(
          g1.offsets, E, g1.rows, g1.n, g1.k, static_cast<const Element*>(g1.a),
          static_cast<const Element*>(g1.b), static_cast<Element*>(g1.c), g2.n, g2.k,
          static_cast<const Element*>(g2.b), static_cast<Element*>(g2.c), arrays, done);
  SY_RETURN_IF_ERROR(cuda_status(cudaGetLastError(), "grouped_gemm: pair setup kernel launch"));

  cutlass::KernelHardwareInfo hw;
  SY_RETURN_IF_ERROR(device_sm_count(&hw.device_id, &hw.sm_count));
  typename Gemm::Epilogue::Arguments epi;
  epi.gated.activation = g1.gated->activation;
  epi.gated.alpha = g1.gated->alpha;
  epi.gated.limit = g1.gated->limit;
  epi.gated.bias = g1.gated->bias;
  epi.gated.bias_f32 = g1.gated->bias_f32;
  epi.gated.round_inputs = g1.gated->round_inputs;
  epi.ptr_D = arrays.d;
  epi.dD = arrays.stride_d;
  epi.pair_groups = E;
  epi.done = done;
  typename Gemm::Mainloop::Arguments mainloop;
  mainloop.ptr_A = arrays.a;
  mainloop.dA = arrays.stride_a;
  mainloop.ptr_B = arrays.b;
  mainloop.dB = arrays.stride_b;
  mainloop.pair_groups = E;
  mainloop.gemm1_n = g1.n;
  mainloop.done = done;
  typename Gemm::Device::Arguments args{cutlass::gemm::GemmUniversalMode::kGrouped,
                                        device_problem_shapes<Config>(2 * E, arrays.shapes),
                                        mainloop, epi, hw};
  set_tile_words<Config>(args.scheduler, arrays.tile_words);
  return launch_gemm<typename Gemm::Device>(args, kernel_workspace, stream);
}

template <typename Element, typename T>
Status dispatch_gated(const GroupedGemmArgs& p, heuristics::GemmTile tile, void* workspace,
                      cudaStream_t stream) {
  if (tile == heuristics::GemmTile::kRows64Single) {
    return grouped_gemm_dynamic_tiles(p.dynamic_tiles)
               ? run_gated<Element, T, TileRows64SingleDynamic>(p, workspace, stream)
               : run_gated<Element, T, TileRows64Single>(p, workspace, stream);
  }
  return Status::Unsupported(std::string("grouped_gemm: the fused gated epilogue has the ") +
                             "unclustered 64-row tile only (64:single), not " +
                             heuristics::gemm_tile_plan_name(tile));
}

template <typename Element>
Status dispatch(const GroupedGemmArgs& p, heuristics::GemmTile tile, void* workspace,
                cudaStream_t stream) {
  const bool f32 = p.out_dtype == DType::kFloat32;
  if (tile == heuristics::GemmTile::kRows64) {
    return f32 ? run<Element, float, TileRows64>(p, workspace, stream)
               : run<Element, Element, TileRows64>(p, workspace, stream);
  }
  if (tile == heuristics::GemmTile::kRows64Single) {
    if (grouped_gemm_dynamic_tiles(p.dynamic_tiles)) {
      return f32 ? run<Element, float, TileRows64SingleDynamic>(p, workspace, stream)
                 : run<Element, Element, TileRows64SingleDynamic>(p, workspace, stream);
    }
    return f32 ? run<Element, float, TileRows64Single>(p, workspace, stream)
               : run<Element, Element, TileRows64Single>(p, workspace, stream);
  }
  if (tile == heuristics::GemmTile::kRows128Single) {
    return f32 ? run<Element, float, TileRows128Single>(p, workspace, stream)
               : run<Element, Element, TileRows128Single>(p, workspace, stream);
  }
  return f32 ? run<Element, float, TileRows128>(p, workspace, stream)
             : run<Element, Element, TileRows128>(p, workspace, stream);
}

}  // namespace switchyard::detail::sm90
