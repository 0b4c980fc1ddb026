// Micro-benchmark (session 9): does the order in which a GEMM tile streams its weight rows cost
// DRAM bandwidth? A 256-row tile of a row-major [rows, k] weight matrix is one contiguous slab;
// a TMA mainloop reads it k block by k block (KB bytes of each of the 256 rows per stage), a
// plain stream reads it front to back. Same bytes, same CTAs, same loads in flight (8 x 16 bytes
// per thread, 4 CTAs of 256 threads per SM); only the address order differs. Shapes: Qwen3-30B's
// GEMM1 (rows of 4096 bytes) and GEMM2 (1536 bytes) over all 128 experts, as its grouped GEMMs
// read them at 64-256 tokens. Timed like `switchyard bench`: a CUDA graph of 20 launches over
// rotating buffers, median of 5 replays, us per launch.
// Build and run on the GPU machine:
//   nvcc -O3 -std=c++17 -arch=sm_90a -o /tmp/tile_stream bench/micro/tile_stream.cu &&
//   /tmp/tile_stream
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdio>

#include "micro_common.cuh"

constexpr int kRows = 256;  // weight rows per tile
constexpr int kInFlight = 8;

// Piece i (16 bytes) of a tile in k-block order: block j holds kb bytes of each of the 256 rows.
// kb == row_bytes is the plain front-to-back order.
__device__ __forceinline__ std::size_t piece_offset(std::size_t i, std::size_t row_bytes,
                                                    std::size_t kb) {
  const std::size_t per_row = kb / 16, per_block = kRows * per_row;
  const std::size_t j = i / per_block, within = i % per_block;
  const std::size_t row = within / per_row, c = within % per_row;
  return row * row_bytes + j * kb + c * 16;
}

__global__ void __launch_bounds__(256, 4)
    tile_stream(const char* __restrict__ w, std::size_t row_bytes, std::size_t kb, unsigned* out) {
  const char* tile = w + blockIdx.x * kRows * row_bytes;
  const std::size_t pieces = kRows * row_bytes / 16;
  unsigned acc = 0;
  for (std::size_t i = threadIdx.x; i < pieces; i += 256 * kInFlight) {
    uint4 v[kInFlight];
#pragma unroll
    for (int u = 0; u < kInFlight; ++u) {
      const std::size_t p = i + static_cast<std::size_t>(u) * 256;
      v[u] = p < pieces ? ldnc(tile + piece_offset(p, row_bytes, kb)) : make_uint4(0, 0, 0, 0);
    }
#pragma unroll
    for (int u = 0; u < kInFlight; ++u) acc ^= v[u].x ^ v[u].y ^ v[u].z ^ v[u].w;
  }
  if (acc == 0x12345678u) out[0] = acc;
}

int main() {
  struct Case {
    const char* name;
    int tiles;
    std::size_t row_bytes;
  };
  const Case cases[] = {{"qwen3 gemm1 (128 experts x 6 tiles, rows of 4 KB)", 768, 4096},
                        {"qwen3 gemm2 (128 experts x 8 tiles, rows of 1.5 KB)", 1024, 1536}};
  std::size_t largest = 0;
  for (const Case& c : cases) {
    const std::size_t b = static_cast<std::size_t>(c.tiles) * kRows * c.row_bytes;
    largest = b > largest ? b : largest;
  }
  const std::size_t stride = ((largest + (1 << 20) - 1) >> 20) << 20;
  char* w = nullptr;
  if (cudaMalloc(&w, 20 * stride) != cudaSuccess || cudaMemset(w, 1, 20 * stride) != cudaSuccess) {
    printf("cannot allocate %zu bytes\n", 20 * stride);
    return 1;
  }
  unsigned* out;
  cudaMalloc(&out, 64);
  for (const Case& c : cases) {
    const std::size_t bytes = static_cast<std::size_t>(c.tiles) * kRows * c.row_bytes;
    printf("== %s: %.1f MB, floor at 4.47 TB/s %.1f us\n", c.name, bytes / 1e6, bytes / 4.47e6);
    for (std::size_t kb : {std::size_t{128}, std::size_t{256}, std::size_t{512}, c.row_bytes}) {
      const float t = time_graph([&](cudaStream_t s, int i) {
        tile_stream<<<c.tiles, 256, 0, s>>>(w + static_cast<std::size_t>(i % 20) * stride,
                                            c.row_bytes, kb, out);
      });
      printf("  k block %5zu bytes%s: %8.1f us, %.0f GB/s\n", kb,
             kb == c.row_bytes ? " (front to back)" : "", t, bytes / (t * 1e3));
    }
  }
  printf("last error: %s\n", cudaGetErrorString(cudaGetLastError()));
  return 0;
}
