// Micro-benchmark: what the building blocks of a decode-size kernel cost on this card, timed the
// way `switchyard bench` times ops (a CUDA graph of back-to-back launches, median per launch).
// Used to find the floor for moe_align_block_size at <= 512 tokens (bar: empty launch + 2 us).
// Build and run on the GPU machine:
//   nvcc -O3 -std=c++17 -arch=sm_90a -o /tmp/launch_floor bench/micro/launch_floor.cu &&
//   /tmp/launch_floor
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <vector>

#define CK(x)                                                                \
  do {                                                                       \
    cudaError_t e_ = (x);                                                    \
    if (e_ != cudaSuccess) {                                                 \
      std::printf("%s:%d %s\n", __FILE__, __LINE__, cudaGetErrorString(e_)); \
      std::exit(1);                                                          \
    }                                                                        \
  } while (0)

struct Params {  // about the size of the align kernel's parameter struct
  const int* ids;
  int n;
  int* out;
  int* fill;
  int fill_n;
  int pad[48];
};

__global__ void k_empty(Params) {}

// Load this thread's ids (up to 16 per thread, predicated), store one value per block.
template <int kBarriers, bool kFill, bool kAtomics>
__global__ void k_chain(Params p) {
  __shared__ int sm[1024];
  __shared__ int hist[512];
  const int t = threadIdx.x, T = blockDim.x;
  if (kFill) {  // blind fill of this block's share, issued before anything waits
    const int per = p.fill_n / gridDim.x;
    int4* f = reinterpret_cast<int4*>(p.fill + blockIdx.x * per);
    for (int i = t; i < per / 4; i += T) f[i] = make_int4(p.n, p.n, p.n, p.n);
  }
  int v[16];
#pragma unroll
  for (int i = 0; i < 16; ++i) {
    const int s = i * T + t;
    v[i] = s < p.n ? __ldg(p.ids + s) : -1;
  }
  if (kAtomics) {
    for (int i = t; i < 512; i += T) hist[i] = 0;
    __syncthreads();
#pragma unroll
    for (int i = 0; i < 16; ++i)
      if (v[i] >= 0) atomicAdd(hist + (v[i] & 511), 1);
  }
  int acc = 0;
#pragma unroll
  for (int i = 0; i < 16; ++i) acc += v[i];
#pragma unroll
  for (int b = 0; b < kBarriers; ++b) {
    sm[t] = acc;
    __syncthreads();
    acc += sm[(t + 1) % T] + (kAtomics ? hist[t & 511] : 0);
    __syncthreads();
  }
  if (t < 8) p.out[blockIdx.x * 8 + t] = acc;
}

__global__ void k_fill(Params p) {
  const int per = p.fill_n / gridDim.x;
  int4* f = reinterpret_cast<int4*>(p.fill + blockIdx.x * per);
  for (int i = threadIdx.x; i < per / 4; i += blockDim.x) f[i] = make_int4(p.n, p.n, p.n, p.n);
}

// A launch of `kernel` in clusters of `cluster` blocks along x.
void launch_cluster(void (*kernel)(Params), int blocks, int threads, int cluster, cudaStream_t s,
                    Params p) {
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = dim3(blocks);
  cfg.blockDim = dim3(threads);
  cfg.stream = s;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeClusterDimension;
  attr[0].val.clusterDim.x = cluster;
  attr[0].val.clusterDim.y = 1;
  attr[0].val.clusterDim.z = 1;
  cfg.attrs = attr;
  cfg.numAttrs = 1;
  CK(cudaLaunchKernelEx(&cfg, kernel, p));
}

double time_us(const std::function<void(cudaStream_t)>& launch) {
  cudaStream_t s;
  CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  constexpr int kCalls = 50;
  for (int i = 0; i < kCalls; ++i) launch(s);
  CK(cudaStreamSynchronize(s));
  cudaGraph_t g;
  cudaGraphExec_t ge;
  CK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
  for (int i = 0; i < kCalls; ++i) launch(s);
  CK(cudaStreamEndCapture(s, &g));
  CK(cudaGraphInstantiate(&ge, g, 0));
  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  std::vector<float> ms;
  CK(cudaGraphLaunch(ge, s));
  for (int r = 0; r < 9; ++r) {
    cudaEventRecord(a, s);
    cudaGraphLaunch(ge, s);
    cudaEventRecord(b, s);
    CK(cudaEventSynchronize(b));
    float t = 0;
    cudaEventElapsedTime(&t, a, b);
    ms.push_back(t);
  }
  std::sort(ms.begin(), ms.end());
  cudaGraphExecDestroy(ge);
  cudaGraphDestroy(g);
  cudaStreamDestroy(s);
  return 1000.0 * ms[ms.size() / 2] / kCalls;
}

int main() {
  Params p{};
  int *ids, *out, *fill;
  CK(cudaMalloc(&ids, 8192 * 4));
  CK(cudaMalloc(&out, 4096 * 4));
  CK(cudaMalloc(&fill, 1 << 20));
  std::vector<int> h(8192);
  for (int i = 0; i < 8192; ++i) h[i] = (i * 37) % 256;
  CK(cudaMemcpy(ids, h.data(), 8192 * 4, cudaMemcpyHostToDevice));
  p.ids = ids;
  p.out = out;
  p.fill = fill;
  p.fill_n = 16384;
  struct Row {
    const char* name;
    std::function<void(cudaStream_t)> f;
  };
  auto P = [&](int n, int fill_n) {
    Params q = p;
    q.n = n;
    q.fill_n = fill_n;
    return q;
  };
  std::vector<Row> rows = {
      {"empty 1x32", [&](cudaStream_t s) { k_empty<<<1, 32, 0, s>>>(P(8, 0)); }},
      {"empty 8x512", [&](cudaStream_t s) { k_empty<<<8, 512, 0, s>>>(P(8, 0)); }},
      {"load->store 1x32 (n=8)",
       [&](cudaStream_t s) { k_chain<0, false, false><<<1, 32, 0, s>>>(P(8, 0)); }},
      {"load->store 1x512 (n=8)",
       [&](cudaStream_t s) { k_chain<0, false, false><<<1, 512, 0, s>>>(P(8, 0)); }},
      {"load->store 8x512 (n=8)",
       [&](cudaStream_t s) { k_chain<0, false, false><<<8, 512, 0, s>>>(P(8, 0)); }},
      {"load->store 8x512 (n=4096)",
       [&](cudaStream_t s) { k_chain<0, false, false><<<8, 512, 0, s>>>(P(4096, 0)); }},
      {"load 1 bar store 8x512 (n=8)",
       [&](cudaStream_t s) { k_chain<1, false, false><<<8, 512, 0, s>>>(P(8, 0)); }},
      {"load 3 bar store 8x512 (n=8)",
       [&](cudaStream_t s) { k_chain<3, false, false><<<8, 512, 0, s>>>(P(8, 0)); }},
      {"load 6 bar store 8x512 (n=8)",
       [&](cudaStream_t s) { k_chain<6, false, false><<<8, 512, 0, s>>>(P(8, 0)); }},
      {"load 6 bar store 8x128 (n=8)",
       [&](cudaStream_t s) { k_chain<6, false, false><<<8, 128, 0, s>>>(P(8, 0)); }},
      {"load 3 bar store 1x1024 (n=8)",
       [&](cudaStream_t s) { k_chain<3, false, false><<<1, 1024, 0, s>>>(P(8, 0)); }},
      {"fill 16K ints 8x512", [&](cudaStream_t s) { k_fill<<<8, 512, 0, s>>>(P(8, 16384)); }},
      {"fill 16K ints 1x512", [&](cudaStream_t s) { k_fill<<<1, 512, 0, s>>>(P(8, 16384)); }},
      {"fill 64K ints 32x512", [&](cudaStream_t s) { k_fill<<<32, 512, 0, s>>>(P(8, 65536)); }},
      {"fill+load 3 bar 8x512 (n=8)",
       [&](cudaStream_t s) { k_chain<3, true, false><<<8, 512, 0, s>>>(P(8, 16384)); }},
      {"load+atomics 3 bar 8x512 (n=8)",
       [&](cudaStream_t s) { k_chain<3, false, true><<<8, 512, 0, s>>>(P(8, 0)); }},
      {"load+atomics 3 bar 8x512 (n=4096)",
       [&](cudaStream_t s) { k_chain<3, false, true><<<8, 512, 0, s>>>(P(4096, 0)); }},
      {"fill+load+atomics 3 bar 8x512 (n=4096)",
       [&](cudaStream_t s) { k_chain<3, true, true><<<8, 512, 0, s>>>(P(4096, 16384)); }},
      // Grid shapes of the small routing and alignment kernels (session 30): how the block count,
      // the block size and a thread block cluster change an empty launch and a load -> store.
      {"empty 8x512 cluster 8",
       [&](cudaStream_t s) { launch_cluster(k_empty, 8, 512, 8, s, P(8, 0)); }},
      {"empty 16x1024", [&](cudaStream_t s) { k_empty<<<16, 1024, 0, s>>>(P(8, 0)); }},
      {"empty 128x128", [&](cudaStream_t s) { k_empty<<<128, 128, 0, s>>>(P(8, 0)); }},
      {"empty 128x32", [&](cudaStream_t s) { k_empty<<<128, 32, 0, s>>>(P(8, 0)); }},
      {"load->store 8x512 cluster 8 (n=8)",
       [&](cudaStream_t s) { launch_cluster(k_chain<0, false, false>, 8, 512, 8, s, P(8, 0)); }},
      {"load->store 16x1024 (n=8)",
       [&](cudaStream_t s) { k_chain<0, false, false><<<16, 1024, 0, s>>>(P(8, 0)); }},
      {"load->store 128x128 (n=8)",
       [&](cudaStream_t s) { k_chain<0, false, false><<<128, 128, 0, s>>>(P(8, 0)); }},
  };
  int dev = 0;
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, dev));
  std::printf("launch_floor on %s (%d SMs); us per launch, graph of 50\n", prop.name,
              prop.multiProcessorCount);
  for (auto& r : rows) std::printf("  %-42s %7.3f\n", r.name, time_us(r.f));
  return 0;
}
