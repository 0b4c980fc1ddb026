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

// mbarrier operations on a shared-memory address (sm_90; device code only, no emulator form):
// an mbarrier of one arrival per phase, initialised and published to the cluster (the async proxy
// included); the arrival that adds `bytes` to the phase's transaction count; the wait for the phase
// of the given parity (kCluster: acquire at cluster scope, for words other blocks stored; else at
// CTA scope, as bulk copies into this block need).
__device__ __forceinline__ void mbarrier_init_one(std::uint32_t bar) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" ::"r"(bar) : "memory");
  asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
#else
  (void)bar;
#endif
}

__device__ __forceinline__ void mbarrier_expect_bytes(std::uint32_t bar, std::uint32_t bytes) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(bar), "r"(bytes)
               : "memory");
#else
  (void)bar, (void)bytes;
#endif
}

template <bool kCluster>
__device__ __forceinline__ void mbarrier_wait_parity(std::uint32_t bar, std::uint32_t parity) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  std::uint32_t done = 0;
  while (!done) {
    if constexpr (kCluster) {
      asm volatile(
          "{\n .reg .pred p;\n mbarrier.try_wait.parity.acquire.cluster.shared::cta.b64 p, [%1], "
          "%2;\n selp.u32 %0, 1, 0, p;\n}"
          : "=r"(done)
          : "r"(bar), "r"(parity)
          : "memory");
    } else {
      asm volatile(
          "{\n .reg .pred p;\n mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
          " selp.u32 %0, 1, 0, p;\n}"
          : "=r"(done)
          : "r"(bar), "r"(parity)
          : "memory");
    }
  }
#else
  (void)bar, (void)parity;
#endif
}

// Words pushed into other blocks' shared memory, completed on the receiver's mbarrier (a
// transaction count in bytes): no cluster barrier and no memory fence between the pushes and
// their use. The protocol, per block:
//   cluster_push_init(bar)           one thread, once; then a cluster barrier (its relaxed form
//                                    suffices: the init's own fence publishes it) before any
//                                    block pushes to this one;
//   cluster_push(dst, rank, v, bar)  any thread: block `rank`'s word at dst's offset = v;
//   cluster_push_expect(bar, bytes)  one thread per phase: the bytes this block receives in it;
//   cluster_push_wait(bar, parity)   the threads that read the pushed words; phase k waits with
//                                    parity k % 2.
// Each push's complete-tx has release semantics at cluster scope and the wait acquire semantics at
// cluster scope (PTX ISA, st.async): what the pushing thread's block did before the push (ordered
// by a block barrier) happens before what the waiting thread does after its wait.
// A phase completes once the expect has arrived and every expected byte has landed, in either
// order.
__device__ __forceinline__ void cluster_push_init(std::uint64_t* bar) {
#if defined(SY_SIMT_EMU)
  emu::cluster_push_init(bar);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  mbarrier_init_one(static_cast<std::uint32_t>(__cvta_generic_to_shared(bar)));
#else
  (void)bar;
#endif
}

__device__ __forceinline__ void cluster_push(std::uint32_t* dst, unsigned rank, std::uint32_t v,
                                             std::uint64_t* bar) {
#if defined(SY_SIMT_EMU)
  emu::cluster_push(dst, rank, v, bar);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  std::uint32_t d, b;
  asm("mapa.shared::cluster.u32 %0, %1, %2;"
      : "=r"(d)
      : "r"(static_cast<std::uint32_t>(__cvta_generic_to_shared(dst))), "r"(rank));
  asm("mapa.shared::cluster.u32 %0, %1, %2;"
      : "=r"(b)
      : "r"(static_cast<std::uint32_t>(__cvta_generic_to_shared(bar))), "r"(rank));
  asm volatile("st.async.shared::cluster.mbarrier::complete_tx::bytes.u32 [%0], %1, [%2];" ::"r"(d),
               "r"(v), "r"(b)
               : "memory");
#else
  (void)dst, (void)rank, (void)v, (void)bar;
#endif
}

__device__ __forceinline__ void cluster_push_expect(std::uint64_t* bar, std::uint32_t bytes) {
#if defined(SY_SIMT_EMU)
  emu::cluster_push_expect(bar, bytes);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  mbarrier_expect_bytes(static_cast<std::uint32_t>(__cvta_generic_to_shared(bar)), bytes);
#else
  (void)bar, (void)bytes;
#endif
}

__device__ __forceinline__ void cluster_push_wait(std::uint64_t* bar, std::uint32_t parity) {
#if defined(SY_SIMT_EMU)
  emu::cluster_push_wait(bar, parity);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  mbarrier_wait_parity<true>(static_cast<std::uint32_t>(__cvta_generic_to_shared(bar)), parity);
#else
  (void)bar, (void)parity;
#endif
}

}  // namespace switchyard::kernels
