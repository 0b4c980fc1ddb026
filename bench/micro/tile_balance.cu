// Micro-benchmark (session 30): how much of a decode-size grouped GEMM's weight stream is lost to
// the persistent scheduler's whole-tile round robin? CUTLASS's group scheduler gives CTA c the
// tiles c, c + 132, ...; with Qwen3-30B's ~5 tiles per CTA at 16-64 tokens, a few CTAs stream a
// last tile alone while the others idle. Three ways to read the same bytes (the hit experts'
// weights, tiles of 256 rows laid out one after another), each with one 1024-thread CTA per SM and
// 8 x 16-byte loads in flight per thread (128 KB per SM, about what the GEMM's TMA stages hold):
//   round robin: CTA c streams whole tiles c, c + 132, ... (the GEMM's order);
//   balanced:    CTA c streams the c-th of 132 equal contiguous byte ranges (a stream-K split);
//   plain:       one CTA per tile, as many as fit (the hardware's own balancing).
// Timed like `switchyard bench`: a CUDA graph of 20 launches over rotating buffers, median of 5
// replays, us per launch; GB/s over the bytes read.
// Build and run on the GPU machine:
//   nvcc -O3 -std=c++17 -arch=sm_90a -o /tmp/tile_balance bench/micro/tile_balance.cu &&
//   /tmp/tile_balance
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdio>

#include "micro_common.cuh"

constexpr int kThreads = 1024;
constexpr int kInFlight = 8;
constexpr std::size_t kChunk = std::size_t{kThreads} * kInFlight * 16;  // bytes per loop trip

// Streams [begin, end) of w (16-byte aligned, end - begin a multiple of 16).
__device__ __forceinline__ unsigned stream_range(const char* __restrict__ w, std::size_t begin,
                                                 std::size_t end) {
  unsigned acc = 0;
  for (std::size_t at = begin + threadIdx.x * 16; at < end; at += kChunk) {
    uint4 v[kInFlight];
#pragma unroll
    for (int u = 0; u < kInFlight; ++u) {
      const std::size_t p = at + static_cast<std::size_t>(u) * kThreads * 16;
      v[u] = p < end ? ldnc(w + p) : make_uint4(0, 0, 0, 0);
    }
#pragma unroll
    for (int u = 0; u < kInFlight; ++u) acc ^= v[u].x ^ v[u].y ^ v[u].z ^ v[u].w;
  }
  return acc;
}

__global__ void __launch_bounds__(kThreads, 1)
    round_robin(const char* __restrict__ w, int tiles, std::size_t tile_bytes, unsigned* out) {
  unsigned acc = 0;
  for (int t = blockIdx.x; t < tiles; t += gridDim.x) {
    acc ^= stream_range(w, t * tile_bytes, (t + 1) * tile_bytes);
  }
  if (acc == 0x12345678u) out[0] = acc;
}

__global__ void __launch_bounds__(kThreads, 1)
    balanced(const char* __restrict__ w, std::size_t bytes, unsigned* out) {
  const std::size_t pieces = bytes / 16;
  const std::size_t b = pieces * blockIdx.x / gridDim.x * 16;
  const std::size_t e = pieces * (blockIdx.x + 1) / gridDim.x * 16;
  const unsigned acc = stream_range(w, b, e);
  if (acc == 0x12345678u) out[0] = acc;
}

__global__ void __launch_bounds__(kThreads, 1)
    plain(const char* __restrict__ w, std::size_t tile_bytes, unsigned* out) {
  const unsigned acc = stream_range(w, blockIdx.x * tile_bytes, (blockIdx.x + 1) * tile_bytes);
  if (acc == 0x12345678u) out[0] = acc;
}

int main() {
  int sms = 0;
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
  struct Case {
    const char* name;
    int tiles;
    std::size_t tile_bytes;
  };
  // Qwen3-30B (E 128, K 8): experts hit at 16 / 32 / 64 tokens ~ 81 / 111 / 126; GEMM1 tiles of
  // 256 rows x 4 KB (6 per expert), GEMM2 tiles of 256 rows x 1.5 KB (8 per expert).
  const Case cases[] = {
      {"gemm1, 16 tokens (81 experts x 6 tiles of 1 MB)", 81 * 6, 256 * 4096},
      {"gemm1, 32 tokens (111 x 6)", 111 * 6, 256 * 4096},
      {"gemm1, 64 tokens (126 x 6)", 126 * 6, 256 * 4096},
      {"gemm2, 16 tokens (81 experts x 8 tiles of 384 KB)", 81 * 8, 256 * 1536},
      {"gemm2, 32 tokens (111 x 8)", 111 * 8, 256 * 1536},
      {"gemm2, 64 tokens (126 x 8)", 126 * 8, 256 * 1536},
  };
  std::size_t largest = 0;
  for (const Case& c : cases) {
    const std::size_t b = static_cast<std::size_t>(c.tiles) * c.tile_bytes;
    largest = b > largest ? b : largest;
  }
  const std::size_t stride = ((largest + (1 << 20) - 1) >> 20) << 20;
  constexpr int kBuffers = 4;  // 4 x ~800 MB: far past the L2
  char* w = nullptr;
  if (cudaMalloc(&w, kBuffers * stride) != cudaSuccess ||
      cudaMemset(w, 1, kBuffers * stride) != cudaSuccess) {
    printf("cannot allocate %zu bytes\n", kBuffers * stride);
    return 1;
  }
  unsigned* out;
  cudaMalloc(&out, 64);
  printf("tile_balance on %d SMs: us per launch (GB/s)\n", sms);
  for (const Case& c : cases) {
    const std::size_t bytes = static_cast<std::size_t>(c.tiles) * c.tile_bytes;
    const auto buf = [&](int i) { return w + static_cast<std::size_t>(i % kBuffers) * stride; };
    const float rr = time_graph([&](cudaStream_t s, int i) {
      round_robin<<<sms, kThreads, 0, s>>>(buf(i), c.tiles, c.tile_bytes, out);
    });
    const float bal = time_graph(
        [&](cudaStream_t s, int i) { balanced<<<sms, kThreads, 0, s>>>(buf(i), bytes, out); });
    const float pl = time_graph([&](cudaStream_t s, int i) {
      plain<<<c.tiles, kThreads, 0, s>>>(buf(i), c.tile_bytes, out);
    });
    printf(
        "  %-52s %6.1f MB: round robin %7.1f (%4.0f), balanced %7.1f (%4.0f), plain %7.1f "
        "(%4.0f)\n",
        c.name, bytes / 1e6, rr, bytes / (rr * 1e3), bal, bytes / (bal * 1e3), pl,
        bytes / (pl * 1e3));
  }
  printf("last error: %s\n", cudaGetErrorString(cudaGetLastError()));
  return 0;
}
