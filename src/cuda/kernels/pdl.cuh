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

// pdl_begin() for kernels that read several 64-byte lines of their parameters right after the
// wait. `words` combines one word of each line (the caller reads a field per line); thread 0
// stores it to a shared scratch word before the wait, so that the compiler cannot move those
// parameter reads past the wait (an unused read would be dropped, a used one sunk to its use).
// While the previous kernel still runs, the SM's constant cache fills; after the wait the
// parameter reads hit it instead of missing one line after another (~115-250 cycles each,
// bench/micro/param_latency.cu).
__device__ __forceinline__ void pdl_begin_warm(std::uint64_t words) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  __shared__ std::uint64_t pdl_param_sink;
  if (threadIdx.x == 0) {
    const auto addr = static_cast<std::uint32_t>(__cvta_generic_to_shared(&pdl_param_sink));
    asm volatile("st.shared.u64 [%0], %1;" ::"r"(addr), "l"(words) : "memory");
  }
#else
  (void)words;  // no PDL below sm_90 and in host builds: nothing to overlap
#endif
  pdl_begin();
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
