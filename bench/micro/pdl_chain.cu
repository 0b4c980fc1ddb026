// Micro-benchmark (session 18): what programmatic dependent launch (PDL) saves per launch in a
// CUDA graph of back-to-back decode-size kernels, timed the way `switchyard bench` times ops.
// Each work kernel waits for its predecessor (griddepcontrol.wait, a no-op without the launch
// attribute), triggers its dependents, loads a few words from a rotating buffer, spins for a
// given number of cycles on a chain that depends on them, and stores one word per thread. The
// same kernel runs launched plainly and with the programmatic-serialization attribute; so does
// an empty kernel (plain, and waiting + triggering under PDL), to see which part of the saving
// an empty launch "timed the same way" gets too.
// Build and run on the GPU machine:
//   nvcc -O3 -std=c++17 -arch=sm_90a -o /tmp/pdl_chain bench/micro/pdl_chain.cu && /tmp/pdl_chain
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>

#include "micro_common.cuh"

#define CK(x)                                                                \
  do {                                                                       \
    cudaError_t e_ = (x);                                                    \
    if (e_ != cudaSuccess) {                                                 \
      std::printf("%s:%d %s\n", __FILE__, __LINE__, cudaGetErrorString(e_)); \
      std::exit(1);                                                          \
    }                                                                        \
  } while (0)

__device__ __forceinline__ void wait_prev() {
  asm volatile("griddepcontrol.wait;" ::: "memory");
}
__device__ __forceinline__ void trigger() {
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
}

__global__ void k_empty() {}
__global__ void k_empty_pdl() {
  wait_prev();
  trigger();
}

// One row per block: load 8 words of row blockIdx.x from `in`, spin `spin` cycles on a chain
// seeded by them, store one word per thread.
__global__ void k_work(const unsigned* in, unsigned* out, int spin) {
  wait_prev();
  trigger();
  const unsigned* row = in + blockIdx.x * 8;
  unsigned v = 0;
#pragma unroll
  for (int i = 0; i < 8; ++i) v += __ldg(row + ((threadIdx.x + i) & 7));
  const long long t0 = clock64();
  while (clock64() - t0 < spin) v = v * 1664525u + 1013904223u;
  out[blockIdx.x * blockDim.x + threadIdx.x] = v;
}

template <typename K, typename... A>
void launch(K kernel, unsigned grid, unsigned block, cudaStream_t s, bool pdl, A... args) {
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.stream = s;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr;
  cfg.numAttrs = pdl ? 1 : 0;
  CK(cudaLaunchKernelEx(&cfg, kernel, args...));
}

int main() {
  constexpr int kRot = 64;              // rotating inputs: 64 x 2 MB, past the L2 between uses
  constexpr size_t kSlot = 512 * 1024;  // words per rotation slot
  unsigned *in = nullptr, *out = nullptr;
  CK(cudaMalloc(&in, kRot * kSlot * 4));
  CK(cudaMalloc(&out, 512 * 256 * 4));
  CK(cudaMemset(in, 1, kRot * kSlot * 4));
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, 0));
  std::printf("pdl_chain on %s (%d SMs); us per launch, graph of 40, median of 9 replays\n",
              prop.name, prop.multiProcessorCount);
  auto t = [&](auto f) { return time_graph(f, 40, 9); };
  for (int rep = 0; rep < 2; ++rep) {
    std::printf("repetition %d\n", rep);
    std::printf("  %-34s %8s %8s\n", "kernel", "plain", "pdl");
    const float e0 = t([&](cudaStream_t s, int) { launch(k_empty, 1, 32, s, false); });
    const float e1 = t([&](cudaStream_t s, int) { launch(k_empty_pdl, 1, 32, s, true); });
    std::printf("  %-34s %8.3f %8.3f\n", "empty 1x32", e0, e1);
    const int spins[] = {0, 1000, 2000, 4000, 8000};
    const unsigned grids[] = {1, 32, 512};
    const unsigned blocks[] = {32, 256};
    for (unsigned g : grids) {
      for (unsigned b : blocks) {
        for (int sp : spins) {
          float r[2];
          for (int p = 0; p < 2; ++p) {
            r[p] = t([&](cudaStream_t s, int i) {
              launch(k_work, g, b, s, p == 1, static_cast<const unsigned*>(in + (i % kRot) * kSlot),
                     out, sp);
            });
          }
          char name[64];
          std::snprintf(name, sizeof name, "work %ux%u spin %d", g, b, sp);
          std::printf("  %-34s %8.3f %8.3f\n", name, r[0], r[1]);
        }
      }
    }
  }
  return 0;
}
