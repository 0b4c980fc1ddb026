// GEMM1 epilogue of the grouped-GEMM path with the gated activation fused (CUTLASS 3.x collective
// epilogue for the sm90 ptr-array kernels, no shared memory: every consumer thread stores from its
// accumulators). Included only by grouped_gemm_sm90.cuh.
//
// Contract: B = w13 of one expert with INTERLEAVED rows (row 2i = gate i, row 2i + 1 = up i), so
// GEMM1's logical output columns 2i and 2i + 1 are gate i and up i. The wgmma accumulator fragment
// of every sm90 tiled MMA holds, per thread, pairs of adjacent columns (n, n + 1) of one row in
// consecutive registers (value mode (2, 2, N / 8): column pair, row half, 8-column group) with n
// even, because every tile starts at a multiple of its (even) width. So the thread holding gate i
// also holds up i, and writes
//     act[m, i] = act(g + b13[2i], u + b13[2i + 1])     (float32, one rounding to T)
// to D = act [rows, I] (row stride I): the float32 GEMM output [rows, 2I] and the activation kernel
// of the unfused path disappear. The pairing is checked, not assumed: a thread whose fragment broke
// it would trap (the check folds away at compile time for the fragment layout of this kernel;
// ExpertsCudaInterleaved and ExpertsCuda.FusedGemm1EqualsUnfusedBitwise in
// tests/experts_cuda_test.cpp compare it against the CPU oracle and the unfused path).
// With round_inputs (a plan's gemm1_rounded), g and u are rounded to T before the bias, as the
// unfused path stores them.
#pragma once

#include <cstdint>
#include <type_traits>

#include "../../common/dtype_convert.h"
#include "../kernels/experts_pointwise.cuh"
#include "cute/tensor.hpp"
#include "cutlass/cutlass.h"
#include "cutlass/epilogue/collective/detail.hpp"
#include "cutlass/epilogue/dispatch_policy.hpp"
#include "cutlass/epilogue/thread/linear_combination.h"
#include "switchyard/experts.h"

namespace switchyard::detail::sm90 {

// The activation and bias of the fused epilogue (kernel parameters, copied by value).
struct GatedEpilogueParams {
  Activation activation = Activation::kSiluAndMul;
  float alpha = 0.0f, limit = 0.0f;  // kSwigluOai
  const void* bias = nullptr;        // optional [groups, 2I] float32 or T, interleaved like w13
  bool bias_f32 = false;
  bool round_inputs = false;  // g and u rounded to T before the bias (gemm1_rounded)
};

// Element: the CUTLASS element type (cutlass::bfloat16_t or cutlass::half_t); T: Switchyard's
// storage type of the same bits (detail::bf16_t or detail::fp16_t). StrideD: RowStride* (one per
// group). The epilogue writes D through T, so the rounding is detail::from_float's, the same as the
// activation kernel's.
//
// kPair (gemm_pair.cuh: GEMM1 and GEMM2 as one kernel over 2E groups): groups below
// Arguments::pair_groups (E) are GEMM1's and store act as above, then each warp of the consumer
// warpgroup adds 1 to done[group] with release semantics once its stores are issued (4 per tile);
// groups from E on are GEMM2's and store the accumulators rounded to T (D = y [rows, H], what
// CUTLASS's linear TMA epilogue stores with alpha 1, beta 0), from registers like the gated path.
template <typename Element, typename T, typename StrideD_, bool kPair = false>
class GatedActEpilogueArray {
 public:
  using EpilogueSchedule = cutlass::epilogue::PtrArrayNoSmemWarpSpecialized;
  using DispatchPolicy = EpilogueSchedule;
  using ElementOutput = Element;
  using ElementAccumulator = float;
  using ElementCompute = float;
  using ElementScalar = float;
  using ElementC = void;
  using StrideC = StrideD_;
  using InternalStrideC = cute::remove_pointer_t<StrideC>;
  using ElementD = Element;
  using StrideD = StrideD_;
  using InternalStrideD = cute::remove_pointer_t<StrideD>;
  using GmemTiledCopyC = void;
  using GmemTiledCopyD = void;
  // Named by GemmUniversalAdapter only (its EpilogueOutputOp typedef); never run.
  using ThreadEpilogueOp = cutlass::epilogue::thread::LinearCombination<Element, 1, float, float>;
  static_assert(sizeof(Element) == sizeof(T), "Element and T: the same 16-bit storage");

  struct SharedStorage {};
  using TensorMapStorage = SharedStorage;

  struct Arguments {
    GatedEpilogueParams gated{};
    ElementD** ptr_D = nullptr;  // [groups]: act rows of each group
    StrideD dD{};                // [groups]: (I, 1, 0)
    // kPair only: GEMM1's group count E, and its per-expert tile counters (zeroed by the setup).
    std::int32_t pair_groups = 0;
    std::uint32_t* done = nullptr;
  };
  using Params = Arguments;

  template <class ProblemShape>
  static constexpr Params to_underlying_arguments(ProblemShape const&, Arguments const& args,
                                                  void*) {
    return args;
  }
  template <class ProblemShape>
  static std::size_t get_workspace_size(ProblemShape const&, Arguments const&, int) {
    return 0;
  }
  template <class ProblemShape>
  static cutlass::Status initialize_workspace(ProblemShape const&, Arguments const&, void*,
                                              cudaStream_t, cutlass::CudaHostAdapter* = nullptr) {
    return cutlass::Status::kSuccess;
  }
  template <class ProblemShape>
  static bool can_implement(ProblemShape const&, Arguments const& args) {
    return args.ptr_D != nullptr && args.dD != nullptr;
  }

  CUTLASS_HOST_DEVICE explicit GatedActEpilogueArray(Params const& p) : params_(p) {}

  CUTLASS_DEVICE bool is_source_needed() { return false; }

  template <class ProblemShapeMNKL, class BlockShapeMNK, class BlockCoordMNKL, class FrgEngine,
            class FrgLayout, class TiledMma, class ResidueMNK>
  CUTLASS_DEVICE void operator()(ProblemShapeMNKL problem_shape_mnkl, BlockShapeMNK blk_shape_mnk,
                                 BlockCoordMNKL blk_coord_mnkl,
                                 cute::Tensor<FrgEngine, FrgLayout> const& accumulators,
                                 TiledMma tiled_mma, ResidueMNK, int thread_idx, char*) {
    using namespace cute;
    static_assert(is_static<BlockShapeMNK>::value, "static CTA tile");
    static_assert(is_static<FrgLayout>::value, "static accumulator layout");
    static_assert(size<1>(BlockShapeMNK{}) % 2 == 0, "even tile width: columns pair up");
    const int M = static_cast<int>(get<0>(problem_shape_mnkl));
    const int N = static_cast<int>(get<1>(problem_shape_mnkl));  // 2I
    const auto m_coord = get<0>(blk_coord_mnkl);
    const auto n_coord = get<1>(blk_coord_mnkl);
    const int group = static_cast<int>(get<3>(blk_coord_mnkl));

    auto thr_mma = tiled_mma.get_thread_slice(thread_idx);
    Tensor cD = local_tile(make_identity_tensor(make_shape(M, N)), take<0, 2>(blk_shape_mnk),
                           make_coord(m_coord, n_coord));  // (BLK_M, BLK_N) -> (m, n)
    Tensor tCcD = thr_mma.partition_C(cD);                 // accumulator layout -> (m, n)
    CUTE_STATIC_ASSERT_V(size(tCcD) == size(accumulators), "one coordinate per accumulator");
    static_assert(decltype(size(accumulators))::value % 2 == 0, "accumulators in pairs");

    T* const d = reinterpret_cast<T*>(params_.ptr_D[group]);
    const std::int64_t ld = get<0>(params_.dD[group]);
    if constexpr (kPair) {
      if (group >= params_.pair_groups) {
        store_linear(M, N, d, ld, tCcD, accumulators);
        return;
      }
    }
    const GatedEpilogueParams& gp = params_.gated;
    const std::int64_t bias_row = static_cast<std::int64_t>(group) * N;
    // The loop is unrolled over the thread's accumulators (64 pairs), so its code is replicated
    // per pair and must stay small to stay in the instruction cache next to the mainloop: one
    // loop per activation and per "extras" (bias or rounded inputs, gpt-oss and gemm1_rounded),
    // each branch taken once per tile. A switch inside one loop made this epilogue ~6,000
    // instructions per activation (25,000 in all) and the call 20-50% slower than unfused.
    // Addresses relative to the thread's first accumulator (m0, n0), n0 even: (m - m0, n - n0) is
    // a constant of the fragment layout, so each store is base + a small multiple of ld + an
    // immediate, and the bounds are one compare each against the remaining extent.
    const int m0 = get<0>(tCcD(0)), n0 = get<1>(tCcD(0));
    if ((n0 & 1) != 0) __trap();
    T* const base = d + static_cast<std::int64_t>(m0) * ld + (n0 >> 1);
    const int m_left = M - m0, n_left = N - n0;
    const auto store_all = [&](auto act, auto extras) {
      CUTLASS_PRAGMA_UNROLL
      for (int i = 0; i < size(accumulators); i += 2) {
        const int dm = get<0>(tCcD(i)) - m0, dn = get<1>(tCcD(i)) - n0;
        if (get<0>(tCcD(i + 1)) - m0 != dm || get<1>(tCcD(i + 1)) - n0 != dn + 1 || (dn & 1) != 0) {
          __trap();
        }
        float g = accumulators(i), u = accumulators(i + 1);
        if constexpr (decltype(extras)::value) {
          if (gp.round_inputs) {
            g = to_float(from_float<T>(g));
            u = to_float(from_float<T>(u));
          }
          if (dm < m_left && dn < n_left) {
            g += kernels::load_bias<T>(gp.bias, gp.bias_f32, bias_row + n0 + dn);
            u += kernels::load_bias<T>(gp.bias, gp.bias_f32, bias_row + n0 + dn + 1);
          }
        }
        const T v = from_float<T>(
            kernels::gated_activation(decltype(act)::value, g, u, gp.alpha, gp.limit));
        if (dm < m_left && dn < n_left) base[static_cast<std::int64_t>(dm) * ld + (dn >> 1)] = v;
      }
    };
    const auto with_extras = [&](auto act) {
      if (gp.round_inputs || gp.bias != nullptr) {
        store_all(act, std::true_type{});
      } else {
        store_all(act, std::false_type{});
      }
    };
    switch (gp.activation) {
      case Activation::kSiluAndMul:
        with_extras(std::integral_constant<Activation, Activation::kSiluAndMul>{});
        break;
      case Activation::kGeluErfAndMul:
        with_extras(std::integral_constant<Activation, Activation::kGeluErfAndMul>{});
        break;
      case Activation::kGeluTanhAndMul:
        with_extras(std::integral_constant<Activation, Activation::kGeluTanhAndMul>{});
        break;
      default:
        with_extras(std::integral_constant<Activation, Activation::kSwigluOai>{});
        break;
    }
    if constexpr (kPair) {
      // GEMM2's tiles of this expert wait for every warp of every GEMM1 tile of it (gemm_pair.cuh):
      // the warp's stores, ordered by the warp barrier, then one release by lane 0.
      __syncwarp();
      if ((thread_idx & 31) == 0) {
        asm volatile("red.release.gpu.global.add.u32 [%0], 1;" ::"l"(params_.done + group)
                     : "memory");
      }
    }
  }

 private:
  // D = accumulators rounded to T: column pairs (n, n + 1), n even, as one 32-bit store.
  template <class CoordTensor, class FrgTensor>
  CUTLASS_DEVICE static void store_linear(int M, int N, T* d, std::int64_t ld,
                                          CoordTensor const& tCcD, FrgTensor const& accumulators) {
    using namespace cute;
    const int m0 = get<0>(tCcD(0)), n0 = get<1>(tCcD(0));
    if ((n0 & 1) != 0) __trap();
    T* const base = d + static_cast<std::int64_t>(m0) * ld + n0;
    const int m_left = M - m0, n_left = N - n0;  // N even (n % 8 == 0): a pair is whole or out
    CUTLASS_PRAGMA_UNROLL
    for (int i = 0; i < size(accumulators); i += 2) {
      const int dm = get<0>(tCcD(i)) - m0, dn = get<1>(tCcD(i)) - n0;
      if (get<0>(tCcD(i + 1)) - m0 != dm || get<1>(tCcD(i + 1)) - n0 != dn + 1 || (dn & 1) != 0) {
        __trap();
      }
      if (dm < m_left && dn < n_left) {
        const T lo = from_float<T>(accumulators(i)), hi = from_float<T>(accumulators(i + 1));
        *reinterpret_cast<std::uint32_t*>(base + static_cast<std::int64_t>(dm) * ld + dn) =
            static_cast<std::uint32_t>(lo.bits) | (static_cast<std::uint32_t>(hi.bits) << 16);
      }
    }
  }

  Params params_;
};

}  // namespace switchyard::detail::sm90
