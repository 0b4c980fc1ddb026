// GEMM1 (gated epilogue) and GEMM2 of the experts as ONE persistent grouped GEMM over 2E groups
// (grouped_gemm.h, grouped_gemm_pair_cuda; docs/experts.md, "GEMM1 and GEMM2 in one kernel").
// Included only by grouped_gemm_sm90.cuh.
//
// Why (bench/NOTES.md, sessions 34 and 36): at decode sizes each of the two grouped GEMMs streams
// its weights 10-20 us slower than its bytes at the read ceiling: every kernel ramps up, and its
// last tiles drain with SMs idle. One kernel whose tiles are GEMM1's (groups 0..E-1, expert e: act
// = gated(x_e w13_e^T)) and then GEMM2's (groups E..2E-1, expert e: y_e = act_e w2_e^T) has one
// ramp and one drain, and the SMs that run out of GEMM1 tiles start on GEMM2's at once.
//
// Order: a GEMM2 tile of expert e reads act rows that GEMM1's tiles of e write. Every warp of the
// consumer warpgroup that stored a GEMM1 tile of e adds 1 to done[e] with release semantics
// (gated_epilogue.cuh, kPair); the mainloop's producer warp, before the first load of a GEMM2 tile
// of e, waits until done[e] == 4 * (GEMM1 tiles of e) with acquire loads, then orders its later
// TMA (async-proxy) reads after them with fence.proxy.async.global. No deadlock: tiles are claimed
// in index order (the dynamic scheduler's counter), all of GEMM1's before any of GEMM2's, and a
// CTA's producer has issued every load of its current tile before it waits on the next, so the
// GEMM1 tiles waited on are held by running CTAs that can finish them.
//
// The mainloop is CUTLASS's ptr-array mainloop (per-group pointers and strides: GEMM1 and GEMM2
// differ in n, k and operands) with one member hidden by name: tensors_perform_update, which the
// kernel calls whenever a CTA's next tile is another group, before that tile's first load.
#pragma once

#include <cstdint>

#include "cute/tensor.hpp"
#include "cutlass/cutlass.h"

namespace switchyard::detail::sm90 {

template <class Base>
struct PairMainloop : Base {
  static constexpr int kBlkM = cute::size<0>(typename Base::TileShape{});
  static constexpr int kBlkN = cute::size<1>(typename Base::TileShape{});
  static constexpr std::uint32_t kSignalsPerTile = 4;             // the consumer warpgroup's warps
  static constexpr std::uint64_t kMaxWaitNs = 20'000'000'000ull;  // 20 s

  struct Arguments : Base::Arguments {
    std::int32_t pair_groups = 0;   // E: groups [0, E) are GEMM1's, [E, 2E) GEMM2's
    std::int32_t gemm1_n = 0;       // GEMM1's n (2I): its column tiles per row tile
    std::uint32_t* done = nullptr;  // [E] zeroed by the setup kernel
  };
  struct Params : Base::Params {
    std::int32_t pair_groups = 0;
    std::uint32_t gemm1_n_tiles = 0;
    std::uint32_t* done = nullptr;
  };

  template <class ProblemShape>
  static Params to_underlying_arguments(ProblemShape const& shapes, Arguments const& args,
                                        void* workspace) {
    Params p;
    static_cast<typename Base::Params&>(p) = Base::to_underlying_arguments(shapes, args, workspace);
    p.pair_groups = args.pair_groups;
    p.gemm1_n_tiles = static_cast<std::uint32_t>((args.gemm1_n + kBlkN - 1) / kBlkN);
    p.done = args.done;
    return p;
  }

  template <class InputTensors, class ProblemShape_MNKL>
  CUTLASS_DEVICE InputTensors tensors_perform_update(InputTensors const& inputs,
                                                     Params const& params,
                                                     ProblemShape_MNKL problem_shape_mnkl,
                                                     std::int32_t group) {
    if (group >= params.pair_groups) {
      // GEMM2's expert e has GEMM2's row count M = GEMM1's: ceil(M / BLK_M) row tiles of GEMM1.
      const auto m = static_cast<std::uint32_t>(cute::get<0>(problem_shape_mnkl));
      const std::uint32_t need = (m + kBlkM - 1) / kBlkM * params.gemm1_n_tiles * kSignalsPerTile;
      const std::uint32_t* flag = params.done + (group - params.pair_groups);
      std::uint64_t start = 0;
      for (std::uint32_t spins = 0;; ++spins) {
        std::uint32_t seen;
        asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(seen) : "l"(flag) : "memory");
        if (seen >= need) break;
        // Never a hang: GEMM1's tiles of one expert take microseconds (milliseconds under a
        // sanitizer); a wait past kMaxWaitNs means a broken invariant, so fail the launch.
        std::uint64_t now;
        asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(now));
        if (spins == 0) start = now;
        if (now - start > kMaxWaitNs) __trap();
        __nanosleep(64);
      }
      asm volatile("fence.proxy.async.global;" ::: "memory");
    }
    return Base::tensors_perform_update(inputs, params, problem_shape_mnkl, group);
  }
};

}  // namespace switchyard::detail::sm90
