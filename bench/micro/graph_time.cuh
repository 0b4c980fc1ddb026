// Timing helper of the micro-benchmarks: `launch(stream, i)` for i = 0..19 captured in one CUDA
// graph (i picks a rotating buffer, so that the L2 does not keep a launch's inputs for the next),
// the graph replayed 5 times; returns the median replay's microseconds per launch, as `switchyard
// bench` times its calls.
#pragma once

#include <cuda_runtime.h>

#include <cstdio>

template <typename F>
float time_graph(F launch) {
  cudaStream_t s;
  cudaStreamCreate(&s);
  cudaGraph_t g;
  cudaGraphExec_t ge;
  cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal);
  for (int i = 0; i < 20; ++i) launch(s, i);
  cudaStreamEndCapture(s, &g);
  if (cudaGraphInstantiate(&ge, g, 0) != cudaSuccess) {
    printf("instantiate failed %s\n", cudaGetErrorString(cudaGetLastError()));
    return -1;
  }
  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  float t[5];
  for (int r = 0; r < 5; ++r) {
    cudaEventRecord(a, s);
    cudaGraphLaunch(ge, s);
    cudaEventRecord(b, s);
    cudaEventSynchronize(b);
    cudaEventElapsedTime(&t[r], a, b);
  }
  for (int i = 0; i < 5; ++i)
    for (int j = i + 1; j < 5; ++j)
      if (t[j] < t[i]) {
        float x = t[i];
        t[i] = t[j];
        t[j] = x;
      }
  cudaGraphExecDestroy(ge);
  cudaGraphDestroy(g);
  cudaStreamDestroy(s);
  return t[2] * 1000.0f / 20.0f;
}
