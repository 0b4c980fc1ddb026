// Thread block clusters (sm_90), device side: the cluster barrier in its two halves and
// distributed shared memory. In the SIMT emulator (tools/simt_emu/cuda_emu.h defines SY_SIMT_EMU)
// they map onto its cluster launch; in nvcc's host pass they are empty (never run there).
//
// cluster_arrive() has release semantics and cluster_wait() acquire semantics at cluster scope:
// every memory operation (shared or global) a thread of the cluster issued before its arrive is
// visible to, and ordered before, what any thread of the cluster does after its matching wait.
// Every thread of every block must call them, alternately (arrive, wait, arrive, ...), and a
// warp's threads together (the .aligned forms).
#pragma once

#include <cstdint>

namespace switchyard::kernels {

__device__ __forceinline__ void cluster_arrive() {
#if defined(SY_SIMT_EMU)
  emu::cluster_arrive();
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("barrier.cluster.arrive.release.aligned;" ::: "memory");
#endif
}

__device__ __forceinline__ void cluster_wait() {
#if defined(SY_SIMT_EMU)
  emu::cluster_wait();
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("barrier.cluster.wait.acquire.aligned;" ::: "memory");
#endif
}

// cluster_arrive() without its release semantics: no memory fence (on sm_90 the release form
// issues a MEMBAR.ALL.GPU first, which waits for every outstanding memory operation of the
// thread). Nothing the thread did before is ordered by it: a caller that signals "my reads of
// another block's shared memory are done" must have consumed the loaded values first, e.g. in
// code before a __syncthreads() that precedes the arrive.
__device__ __forceinline__ void cluster_arrive_relaxed() {
#if defined(SY_SIMT_EMU)
  emu::cluster_arrive();
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("barrier.cluster.arrive.relaxed.aligned;" ::: "memory");
#endif
}

// The address of `p` (in this block's shared memory) in the shared memory of the cluster's block
// `rank`: a generic pointer that ordinary loads read (distributed shared memory).
template <typename T>
__device__ __forceinline__ const T* cluster_map(const T* p, unsigned rank) {
#if defined(SY_SIMT_EMU)
  return emu::cluster_map(p, rank);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  std::uint64_t out;
  asm("mapa.u64 %0, %1, %2;" : "=l"(out) : "l"(p), "r"(rank));
  return reinterpret_cast<const T*>(out);
#else
  (void)rank;
  return p;
#endif
}

}  // namespace switchyard::kernels
