// Micro-benchmark (session 8): what executing code for the first time costs. One warp runs N
// iterations of 4 independent FMAs (4N instructions, 16 bytes each) as two inlined copies and as
// one copy looped twice, clock64 around each: a copy's first run pays instruction fetch, the
// loop's second pass runs from the instruction cache. H200: 16 KB of code first run ~2.2 cycles
// per instruction, second run ~1.0 (even when the same code ran in the previous launch); 64 KB and
// more ~2.2-5.7 either way. So a decode-size kernel's single warp pays ~2.2 cycles for every
// instruction it executes once, whatever its dependences: compact code is latency.
// Build and run on the GPU machine:
//   nvcc -O3 -std=c++17 -arch=sm_90a -o /tmp/icache_fetch bench/micro/icache_fetch.cu &&
//   /tmp/icache_fetch
#include <cuda_runtime.h>
#include <cstdio>

template <int N>
__device__ __forceinline__ float body(float a, float b, float c, float d) {
#pragma unroll
  for (int i = 0; i < N; ++i) {
    a = fmaf(a, 1.0001f, 0.5f);
    b = fmaf(b, 0.9999f, 0.25f);
    c = fmaf(c, 1.0002f, 0.125f);
    d = fmaf(d, 0.9998f, 0.0625f);
  }
  return a + b + c + d;
}

// N iterations of 4 independent FMAs: 4N instructions, 16 bytes each.
template <int N>
__global__ void code(float* out, long long* t, float seed) {
  float a = seed, b = seed * 2, c = seed * 3, d = seed * 4;
  long long t0 = clock64();
  float r1 = body<N>(a, b, c, d);
  long long t1 = clock64();
  float r2 = body<N>(r1, r1 * 2.0f, r1 * 3.0f, r1 * 4.0f);  // a second inlined copy: new code
  long long t2 = clock64();
  float r3 = 0.0f;
#pragma unroll 1
  for (int pass = 0; pass < 2; ++pass) {  // one copy of the code, run twice
    long long s = clock64();
    const float x = r2 + static_cast<float>(pass) + r3;
    r3 += body<N>(x, x * 2.0f, x * 3.0f, x * 4.0f);
    long long e = clock64();
    if (threadIdx.x == 0) t[2 + pass] = e - s;
  }
  if (threadIdx.x == 0) {
    t[0] = t1 - t0;
    t[1] = t2 - t1;
  }
  out[threadIdx.x] = r1 + r2 + r3;
}

template <int N>
void run(float* out, long long* dt) {
  long long h[4];
  for (int rep = 0; rep < 3; ++rep) {
    code<N><<<1, 32>>>(out, dt, 1.0f + rep);
    cudaMemcpy(h, dt, sizeof(h), cudaMemcpyDeviceToHost);
    printf(
        "N=%5d (%6d instr, %4d KB) rep %d: copy1 %6lld copy2 %6lld | loop pass1 %6lld pass2 %6lld "
        "cycles\n",
        N, 4 * N, 4 * N * 16 / 1024, rep, h[0], h[1], h[2], h[3]);
  }
}

int main() {
  float* out;
  long long* dt;
  cudaMalloc(&out, 1024);
  cudaMalloc(&dt, 64);
  run<64>(out, dt);
  run<256>(out, dt);
  run<1024>(out, dt);
  run<4096>(out, dt);
  printf("last error: %s\n", cudaGetErrorString(cudaGetLastError()));
  return 0;
}
