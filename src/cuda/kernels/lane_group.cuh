// A group of kLanes consecutive lanes of a warp working on one row (kLanes: power of two <= 32).
// Every collective below uses the group's own member mask, so groups of one warp may diverge.
// sum() is a XOR butterfly with offsets 1, 2, ..., kLanes/2: the upper levels of the pairwise
// tree of routing_row.h when lane l holds the l-th aligned run of leaves.
#pragma once

#include <cstdint>

#include "../../common/routing_row.h"

namespace switchyard::kernels {

template <int kLanes>
struct LaneGroup {
  static_assert(kLanes >= 1 && kLanes <= 32 && (kLanes & (kLanes - 1)) == 0, "kLanes");
  unsigned mask;  // member mask within the warp
  int base;       // first warp lane of the group
  int lane;       // 0..kLanes-1

  __device__ __forceinline__ LaneGroup() {
    const int warp_lane = static_cast<int>(threadIdx.x & 31u);
    base = warp_lane & ~(kLanes - 1);
    lane = warp_lane - base;
    mask = kLanes == 32 ? 0xffffffffu : (((1u << kLanes) - 1u) << base);
  }

  __device__ __forceinline__ float sum(float v) const {
#pragma unroll
    for (int off = 1; off < kLanes; off *= 2) v = v + __shfl_xor_sync(mask, v, off, kLanes);
    return v;
  }
  // Max of packed (order, index) candidates.
  __device__ __forceinline__ std::uint64_t max_candidate(std::uint64_t v) const {
#pragma unroll
    for (int off = 1; off < kLanes; off *= 2) {
      const std::uint64_t o = __shfl_xor_sync(mask, v, off, kLanes);
      v = o > v ? o : v;
    }
    return v;
  }
  __device__ __forceinline__ float max_ignore_nan(float v) const {
#pragma unroll
    for (int off = kLanes / 2; off >= 1; off /= 2) {
      v = detail::max_ignore_nan(v, __shfl_xor_sync(mask, v, off, kLanes));
    }
    return v;
  }
  __device__ __forceinline__ std::uint32_t max_u32(std::uint32_t v) const {
    if constexpr (kLanes == 32) {
      return __reduce_max_sync(mask, v);
    } else {
#pragma unroll
      for (int off = kLanes / 2; off >= 1; off /= 2) {
        const std::uint32_t o = __shfl_xor_sync(mask, v, off, kLanes);
        v = o > v ? o : v;
      }
      return v;
    }
  }
  // Bit l set when lane l of the group has `pred`.
  __device__ __forceinline__ unsigned ballot(bool pred) const {
    const unsigned b = __ballot_sync(mask, pred);
    if constexpr (kLanes == 32) {
      return b;
    } else {
      return (b >> base) & ((1u << kLanes) - 1u);
    }
  }
  template <typename V>
  __device__ __forceinline__ V broadcast(V v, int src_lane) const {
    return __shfl_sync(mask, v, src_lane, kLanes);
  }
  template <typename V>
  __device__ __forceinline__ V xor_shuffle(V v, int offset) const {
    return __shfl_xor_sync(mask, v, offset, kLanes);
  }
};

}  // namespace switchyard::kernels
