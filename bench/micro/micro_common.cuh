// Shared by the micro-benchmarks: a streaming 16-byte load (ld.global.nc, no L1 allocation: the
// decode kernels' weight load) and the graph timer: `launch(stream, i)` for i = 0..launches-1
// captured in one CUDA graph (i may pick a rotating buffer, so that the L2 does not keep a
// launch's inputs for the next), the graph replayed `replays` times; it returns the median
// replay's microseconds per launch, as `switchyard bench` times its calls.
#pragma once

#include <cuda_runtime.h>

#include <cstdio>

__device__ __forceinline__ uint4 ldnc(const void* p) {
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
}

template <typename F>
float time_graph(F launch, int launches = 20, int replays = 5) {
  cudaStream_t s;
  cudaStreamCreate(&s);
  cudaGraph_t g;
  cudaGraphExec_t ge;
  cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal);
  for (int i = 0; i < launches; ++i) launch(s, i);
  cudaStreamEndCapture(s, &g);
  if (cudaGraphInstantiate(&ge, g, 0) != cudaSuccess) {
    printf("instantiate failed %s\n", cudaGetErrorString(cudaGetLastError()));
    return -1;
  }
  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  float t[16];
  replays = replays < 1 ? 1 : (replays > 16 ? 16 : replays);
  for (int r = 0; r < replays; ++r) {
    cudaEventRecord(a, s);
    cudaGraphLaunch(ge, s);
    cudaEventRecord(b, s);
    cudaEventSynchronize(b);
    cudaEventElapsedTime(&t[r], a, b);
  }
  for (int i = 0; i < replays; ++i)
    for (int j = i + 1; j < replays; ++j)
      if (t[j] < t[i]) {
        float x = t[i];
        t[i] = t[j];
        t[j] = x;
      }
  cudaGraphExecDestroy(ge);
  cudaGraphDestroy(g);
  cudaStreamDestroy(s);
  return t[replays / 2] * 1000.0f / static_cast<float>(launches);
}
