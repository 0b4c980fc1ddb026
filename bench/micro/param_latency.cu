// Micro-benchmark (session 8): what reading kernel parameters costs. Parameters live in constant
// bank 0; a kernel reads them through the SM's constant caches, and a line not cached yet costs a
// fetch. Thread 0 reads a chain of dependent parameter words 64 bytes apart (a new line each) or
// 4 bytes apart (the same line), timed with clock64; then whole launches in a CUDA graph of 40
// (median of 7 replays, us per launch): an empty kernel, one parameter read, 8 lines read
// dependently or independently. Used to check whether the routing and alignment kernels' fixed
// per-phase costs at decode sizes come from their parameter structs (they do not, mostly:
// ~115 cycles per new line, ~46 per same-line read).
// Build and run on the GPU machine:
//   nvcc -O3 -std=c++17 -arch=sm_90a -o /tmp/param_latency bench/micro/param_latency.cu &&
//   /tmp/param_latency
#include <cuda_runtime.h>
#include <cstdio>

#include "micro_common.cuh"

struct Params {
  unsigned w[256];  // 1 KB: 16 lines of 64 B
};

__global__ void chain(const __grid_constant__ Params p, long long* out, int stride_words, int n) {
  if (threadIdx.x != 0 || blockIdx.x != 0) return;
  unsigned v = 0;
  long long t[20];
  t[0] = clock64();
  for (int i = 0; i < n; ++i) {
    const unsigned z = v >> 31;  // 0 at run time (values < 2^31), unknown to the compiler
    v += p.w[z + i * stride_words];
    t[i + 1] = clock64();
  }
  for (int i = 0; i < n; ++i) out[i] = t[i + 1] - t[i];
  out[19] = v;
}

// Same, but every line touched first with independent loads, summed before the chain.
__global__ void chain_warm(const __grid_constant__ Params p, long long* out, int stride_words,
                           int n) {
  if (threadIdx.x != 0 || blockIdx.x != 0) return;
  unsigned pre = 0;
#pragma unroll
  for (int i = 0; i < 16; ++i) pre ^= p.w[i * 16];
  long long t0 = clock64();
  unsigned v = pre & 0x80000000u;  // 0 at run time
  long long t[20];
  t[0] = clock64();
  for (int i = 0; i < n; ++i) {
    const unsigned z = v >> 31;
    v += p.w[z + i * stride_words];
    t[i + 1] = clock64();
  }
  for (int i = 0; i < n; ++i) out[i] = t[i + 1] - t[i];
  out[18] = t[0] - t0;
  out[19] = v;
}

__global__ void empty_kernel() {}
__global__ void ld1(const __grid_constant__ Params p, unsigned* o) {
  if (threadIdx.x == 0) o[blockIdx.x] = p.w[0];
}
__global__ void ld8(const __grid_constant__ Params p,
                    unsigned* o) {  // 8 lines, one dependent chain
  if (threadIdx.x != 0) return;
  unsigned v = 0;
  for (int i = 0; i < 8; ++i) v += p.w[(v >> 31) + i * 16];
  o[blockIdx.x] = v;
}
__global__ void ld8par(const __grid_constant__ Params p, unsigned* o) {  // 8 lines, independent
  if (threadIdx.x != 0) return;
  unsigned v = 0;
#pragma unroll
  for (int i = 0; i < 8; ++i) v += p.w[i * 16];
  o[blockIdx.x] = v;
}

int main() {
  Params p;
  for (int i = 0; i < 256; ++i) p.w[i] = i + 1;
  long long *d, h[20];
  unsigned* o;
  cudaMalloc(&d, 20 * sizeof(long long));
  cudaMalloc(&o, 1024 * 4);
  for (int stride : {16, 1}) {
    for (int rep = 0; rep < 3; ++rep) {
      chain<<<1, 32>>>(p, d, stride, 12);
      cudaMemcpy(h, d, sizeof(h), cudaMemcpyDeviceToHost);
      printf("chain stride %2d words rep %d cycles:", stride, rep);
      for (int i = 0; i < 12; ++i) printf(" %lld", h[i]);
      printf("\n");
    }
  }
  for (int rep = 0; rep < 2; ++rep) {
    chain_warm<<<1, 32>>>(p, d, 16, 12);
    cudaMemcpy(h, d, sizeof(h), cudaMemcpyDeviceToHost);
    printf("warm chain stride 16 rep %d: prefetch+xor %lld, then:", rep, h[18]);
    for (int i = 0; i < 12; ++i) printf(" %lld", h[i]);
    printf("\n");
  }
  // Graph timing, 40 launches, median of 7 replays, us per launch.
  const auto time_graph_named = [&](const char* name, auto launch) {
    const float us = time_graph([&](cudaStream_t s, int) { launch(s); }, 40, 7);
    printf("graph %-28s %.3f us per launch\n", name, us);
  };
  for (int rep = 0; rep < 2; ++rep) {
    time_graph_named("empty 1x32", [&](cudaStream_t s) { empty_kernel<<<1, 32, 0, s>>>(); });
    time_graph_named("ld1 (1 line) 1x32", [&](cudaStream_t s) { ld1<<<1, 32, 0, s>>>(p, o); });
    time_graph_named("ld8 dependent 8 lines 1x32",
                     [&](cudaStream_t s) { ld8<<<1, 32, 0, s>>>(p, o); });
    time_graph_named("ld8 independent 1x32",
                     [&](cudaStream_t s) { ld8par<<<1, 32, 0, s>>>(p, o); });
    time_graph_named("ld8 dependent 132x32", [&](cudaStream_t s) { ld8<<<132, 32, 0, s>>>(p, o); });
  }
  printf("last error: %s\n", cudaGetErrorString(cudaGetLastError()));
  return 0;
}
