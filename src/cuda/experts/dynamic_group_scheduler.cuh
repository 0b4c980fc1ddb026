// A dynamic tile scheduler for CUTLASS's sm90 ptr-array grouped GEMM (the ping-pong kernel),
// plugged in through CUTLASS's own extension point: GemmUniversal picks its tile scheduler with
// `TileSchedulerSelector<GroupScheduler, Sm90, TileShape, ClusterShape, Stages, ProblemShape>`, and
// this header specialises that selector for our own problem-shape type, DynamicGroupProblemShape
// (a GroupProblemShape with nothing added). Every other part of the kernel is CUTLASS's.
//
// Why (bench/NOTES.md, session 34): CUTLASS's group scheduler hands CTA c the tiles c, c + G,
// c + 2G, ... (G = the grid, one CTA per SM). Under ncu at Qwen3-30B-A3B decode sizes the SMs'
// active cycles spread by 15-24% between the fastest and the slowest SM (the same spread on
// DeepSeek-V3, whose kernels run 50+ tiles per CTA, so it is the SMs' speed, not the tile count):
// with a fixed assignment the fast SMs idle at the end, 6-11% of a kernel's SM time at 5-8 tiles
// per CTA. Here a CTA's first tile is still blockIdx.x, and every later tile is the next index of a
// device-wide counter, so an SM that streams faster takes more tiles.
//
// How:
//  - The kernel's scheduler warp (one per CTA) writes each next tile into an 8-entry shared-memory
//    pipeline that every other warp reads. With a counter it must not run ahead (tiles claimed
//    early are a fixed assignment again), so it claims tile k only when the CTA's mainloop
//    producer warp asks for tile k: that warp stores its request count (a per-CTA word in global
//    memory) in fetch_next_work before it waits on the pipeline, and the scheduler warp polls it.
//    The claim's latency (an atomic round trip and the group walk) is hidden by the mainloop's
//    shared-memory stages of the current tile.
//  - Claimed indices increase per CTA, which the base class's forward group walk requires; the
//    walk returns an invalid tile past the last group, which ends the CTA.
//  - The counter and the request counts (kDynamicTileWords words of the caller's workspace) must be
//    0 when the kernel starts: the grouped GEMM's setup kernel, which runs right before it on the
//    same stream, zeroes them. No host
//    synchronisation; graph capturable.
//  - Every tile is still computed whole by one CTA with the same k loop, so the output bits do not
//    depend on which CTA took a tile (tests: DynamicTilesBitwise in experts_cuda_test).
#pragma once

#include <cstdint>

#include "cutlass/gemm/group_array_problem_shape.hpp"
#include "cutlass/gemm/kernel/sm90_tile_scheduler_group.hpp"
#include "cutlass/gemm/kernel/tile_scheduler.hpp"

namespace switchyard::detail::sm90 {

// Tiles the scheduler warp may claim ahead of the mainloop warp's requests: 1 hides the claim's
// latency (the atomic round trip and the group walk) behind a whole tile (session 34: with 0 the
// compute-bound prefill tiles waited for it, +20% at 4096 tokens).
inline constexpr std::uint32_t kLookahead = 1;

// 64-bit words of the scheduler's global state: the counter and 256 32-bit request counts.
inline constexpr int kDynamicTileWords = 1 + 256 / 2;

// The problem-shape type that selects the dynamic scheduler (see the selector below).
template <class UnderlyingShape>
struct DynamicGroupProblemShape : cutlass::gemm::GroupProblemShape<UnderlyingShape> {};

template <class GroupShape, int Stages>
class DynamicGroupScheduler
    : public cutlass::gemm::kernel::detail::PersistentTileSchedulerSm90Group<GroupShape, Stages> {
  using Base = cutlass::gemm::kernel::detail::PersistentTileSchedulerSm90Group<GroupShape, Stages>;

 public:
  using WorkTileInfo = typename Base::WorkTileInfo;
  using SchedulerResponse = typename Base::SchedulerResponse;

  // words[0]: the tile counter; then one 32-bit request count per CTA (the mainloop warp's tiles
  // asked for, polled by the scheduler warp; global memory because static shared memory would
  // shift CUTLASS's dynamic shared memory off the alignment its swizzled buffers need). All zero
  // at kernel start (the setup kernel's); kDynamicTileWords 64-bit words for up to 256 CTAs.
  struct Arguments : Base::Arguments {
    unsigned long long* words = nullptr;
  };
  struct Params : Base::Params {
    unsigned long long* words = nullptr;
  };

  DynamicGroupScheduler() = default;

  CUTLASS_DEVICE DynamicGroupScheduler(Params const& params, SchedulerResponse* response_ptr)
      : Base(params, response_ptr), words_(params.words) {}

  template <class TileShape, class ClusterShape>
  static Params to_underlying_arguments(GroupShape problem_shapes, TileShape tile_shape,
                                        ClusterShape cluster_shape,
                                        cutlass::KernelHardwareInfo const& hw_info,
                                        Arguments const& arguments, void* workspace = nullptr,
                                        const uint32_t epilogue_subtile = 1,
                                        uint32_t ktile_start_alignment_count = 1u) {
    Params p;
    static_cast<typename Base::Params&>(p) =
        Base::to_underlying_arguments(problem_shapes, tile_shape, cluster_shape, hw_info, arguments,
                                      workspace, epilogue_subtile, ktile_start_alignment_count);
    p.words = arguments.words;
    return p;
  }

  // The scheduler warp (all 32 lanes: the group walk is warp-cooperative): the next tile from the
  // counter, once the mainloop warp has asked for it.
  template <typename TileSchedulerPipeline, typename TileSchedulerPipelineState>
  CUTLASS_DEVICE auto advance_to_next_work(TileSchedulerPipeline& scheduler_pipeline,
                                           TileSchedulerPipelineState scheduler_pipe_producer_state,
                                           uint32_t advance_count = 1) {
    (void)advance_count;  // always 1 in the kernels that use this scheduler
    ++claimed_;
    unsigned long long taken = 0;
    if (cutlass::canonical_lane_idx() == 0) {
      const volatile std::uint32_t* req = requests();
      while (*req + kLookahead < claimed_) __nanosleep(32);
      taken = atomicAdd(words_, 1ull);
    }
    taken = __shfl_sync(0xffffffffu, taken, 0);
    const std::uint64_t grid = std::uint64_t(gridDim.x) * gridDim.y * gridDim.z;
    const WorkTileInfo work = this->get_current_work_for_linear_idx(grid + taken);
    scheduler_pipeline.producer_acquire(scheduler_pipe_producer_state);
    if (cute::elect_one_sync()) {
      this->response_ptr_[scheduler_pipe_producer_state.index()] = work;
      cutlass::arch::fence_view_async_shared();
      scheduler_pipeline.producer_commit(scheduler_pipe_producer_state);
    }
    return cute::make_tuple(work, true);
  }

  // Every consumer of the tile pipeline; the mainloop producer warp (warp 0 of the producer warp
  // group) first records that it wants the next tile.
  template <typename TileSchedulerPipeline, typename TileSchedulerPipelineState>
  CUTLASS_DEVICE auto fetch_next_work(WorkTileInfo work_tile_info,
                                      TileSchedulerPipeline& scheduler_pipeline,
                                      TileSchedulerPipelineState scheduler_pipe_consumer_state) {
    if (cutlass::canonical_warp_idx_sync() == 0 && cutlass::canonical_lane_idx() == 0) {
      atomicAdd(requests(), 1u);  // no return value used: a reduction, nothing to wait for
    }
    return Base::fetch_next_work(work_tile_info, scheduler_pipeline, scheduler_pipe_consumer_state);
  }

 private:
  // This CTA's request count (after the counter: one 32-bit word per CTA).
  CUTLASS_DEVICE std::uint32_t* requests() const {
    return reinterpret_cast<std::uint32_t*>(words_ + 1) + blockIdx.x + blockIdx.y * gridDim.x;
  }

  unsigned long long* words_ = nullptr;
  std::uint32_t claimed_ = 0;  // the scheduler warp's tiles claimed after the first
};

}  // namespace switchyard::detail::sm90

namespace cutlass::gemm::kernel::detail {

// CUTLASS's selector, specialised for our problem-shape type (more specialised than its own
// GroupScheduler / Sm90 entry, which stays in force for every other problem shape).
template <class TileShape, class ClusterShape, uint32_t SchedulerPipelineStageCount,
          class UnderlyingShape>
struct TileSchedulerSelector<GroupScheduler, arch::Sm90, TileShape, ClusterShape,
                             SchedulerPipelineStageCount,
                             switchyard::detail::sm90::DynamicGroupProblemShape<UnderlyingShape>> {
  using Scheduler = switchyard::detail::sm90::DynamicGroupScheduler<
      switchyard::detail::sm90::DynamicGroupProblemShape<UnderlyingShape>,
      static_cast<int>(SchedulerPipelineStageCount)>;
};

}  // namespace cutlass::gemm::kernel::detail
