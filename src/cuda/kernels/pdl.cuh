// Programmatic dependent launch (PDL, sm_90) and bulk L2 prefetch, device side. Each is a no-op
// where it does not apply: below sm_90, in host builds of kernel code (the SIMT emulator), and
// griddepcontrol.wait in a grid that was not launched with the programmatic-serialization
// attribute (there the previous kernel has completed before this grid started).
//
// Contract of a kernel that calls these (docs/experts.md, "Launch overlap"):
//  - nothing written by the previous kernel in the stream is read before pdl_wait();
//  - pdl_launch_dependents() comes after pdl_wait(), so that a dependent grid's pre-wait part runs
//    only once this grid's own predecessor has completed and its writes are visible.
#pragma once

#include <cstdint>

namespace switchyard::kernels {

__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

__device__ __forceinline__ void pdl_launch_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// For kernels whose first statement it is (routing, small alignment): wait for the previous
// kernel in the stream, then let the next one launch. Such a kernel reads and writes no global
// memory before it, so it keeps plain stream order while its launch overlaps its predecessor.
__device__ __forceinline__ void pdl_begin() {
  pdl_wait();
  pdl_launch_dependents();
}

// Asks the L2 to fetch [p, p + bytes): p 16-byte aligned, bytes a multiple of 16. A hint only.
__device__ __forceinline__ void prefetch_l2_bulk(const void* p, std::uint32_t bytes) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(p), "r"(bytes) : "memory");
#else
  (void)p;
  (void)bytes;
#endif
}

}  // namespace switchyard::kernels
