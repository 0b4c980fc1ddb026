// Micro-benchmark (session 8): how fast can a decode GEMM's weight slices stream, with nothing
// else in the kernel? Each CTA reads one contiguous slice (as a decode CTA reads its weight rows)
// with (a) plain 16-byte loads, U per thread in flight (the decode kernels keep 8-16), or (b)
// cp.async.bulk copies into a ring of S stages of shared memory (one producer warp, 8 consumer
// warps reading the stages back). Timed like `switchyard bench`: a CUDA graph of 20 launches over
// rotating buffers, median of 5 replays, us per launch; "dep 1" adds one dependent global load
// before the stream (the decode kernels' item search). Shapes: the Qwen3-30B / DeepSeek-V3 decode
// GEMMs at 1 and 8 tokens.
// Build and run on the GPU machine:
//   nvcc -O3 -std=c++17 -arch=sm_90a -o /tmp/decode_stream bench/micro/decode_stream.cu &&
//   /tmp/decode_stream
#include <cuda_runtime.h>
#include <cstdint>
#include <cstdio>
#include <type_traits>

#include "micro_common.cuh"

template <int U>
__global__ void __launch_bounds__(256, 2)
    plain(const uint4* __restrict__ w, size_t slice16, const int* dep, unsigned* out) {
  size_t base = blockIdx.x * slice16;
  if (dep) base += __ldg(dep + blockIdx.x);  // 0 at run time: a dependent load first
  unsigned acc = 0;
  const size_t step = 256 * U;
  for (size_t i = threadIdx.x; i < slice16; i += step) {
    uint4 v[U];
#pragma unroll
    for (int u = 0; u < U; ++u)
      v[u] = i + u * 256 < slice16 ? ldnc(w + base + i + u * 256) : make_uint4(0, 0, 0, 0);
#pragma unroll
    for (int u = 0; u < U; ++u) acc ^= v[u].x ^ v[u].y ^ v[u].z ^ v[u].w;
  }
  if (acc == 0x12345678u) out[0] = acc;
}

__device__ __forceinline__ void mbar_init(uint64_t* b, unsigned count) {
  asm volatile(
      "mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"((unsigned)__cvta_generic_to_shared(b)),
      "r"(count));
}
__device__ __forceinline__ void mbar_expect_tx(uint64_t* b, unsigned bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(
                   (unsigned)__cvta_generic_to_shared(b)),
               "r"(bytes)
               : "memory");
}
__device__ __forceinline__ void mbar_arrive(uint64_t* b) {
  asm volatile(
      "mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"((unsigned)__cvta_generic_to_shared(b))
      : "memory");
}
__device__ __forceinline__ void mbar_wait(uint64_t* b, unsigned parity) {
  asm volatile(
      "{\n .reg .pred p;\n W: mbarrier.try_wait.parity.shared::cta.b64 p, [%0], %1;\n @!p bra "
      "W;\n}\n" ::"r"((unsigned)__cvta_generic_to_shared(b)),
      "r"(parity)
      : "memory");
}
__device__ __forceinline__ void bulk_g2s(void* dst, const void* src, unsigned bytes, uint64_t* b) {
  asm volatile(
      "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::
          "r"((unsigned)__cvta_generic_to_shared(dst)),
      "l"(src), "r"(bytes), "r"((unsigned)__cvta_generic_to_shared(b))
      : "memory");
}

// Ring of S stages of B bytes; producer = warp 8 lane 0..(pieces) issuing pieces of P bytes.
template <int S, int B, int P>
__global__ void __launch_bounds__(288)
    bulk(const char* __restrict__ w, size_t slice, const int* dep, unsigned* out) {
  extern __shared__ __align__(128) char smem[];
  __shared__ uint64_t full[S], empty[S];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  if (threadIdx.x == 0) {
    for (int s = 0; s < S; ++s) {
      mbar_init(&full[s], 1);
      mbar_init(&empty[s], 8);
    }
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  }
  __syncthreads();
  size_t base = blockIdx.x * slice;
  if (dep) base += __ldg(dep + blockIdx.x);
  const int stages = (int)(slice / B);
  unsigned acc = 0;
  if (warp == 8) {
    for (int i = 0; i < stages; ++i) {
      const int s = i % S;
      if (i >= S) mbar_wait(&empty[s], ((i / S) - 1) & 1);
      if (lane == 0) mbar_expect_tx(&full[s], B);
      __syncwarp();
      for (int q = lane; q < B / P; q += 32)
        bulk_g2s(smem + s * B + q * P, w + base + (size_t)i * B + q * P, P, &full[s]);
    }
  } else {
    for (int i = 0; i < stages; ++i) {
      const int s = i % S;
      mbar_wait(&full[s], (i / S) & 1);
      const uint4* st = reinterpret_cast<const uint4*>(smem + s * B);
      for (int j = threadIdx.x; j < B / 16; j += 256) {
        uint4 v = st[j];
        acc ^= v.x ^ v.y ^ v.z ^ v.w;
      }
      __syncwarp();
      if (lane == 0) mbar_arrive(&empty[s]);
    }
  }
  if (acc == 0x12345678u) out[0] = acc;
}

// The decode kernels' own load pattern, nothing else (session 9): a CTA streams 32 outputs' weight
// rows (kM = 2: the gate rows and the up rows, half the tensor apart) over k, 8 warps = 2 along the
// outputs x 4 along k; thread (g, t) of warp (wn, wk) loads, for every 64-wide k chunk wk, wk + 4,
// ..., kU of them at once, bytes [32t, 32t + 32) of the chunk (two 16-byte vectors) of rows
// wn*16 + g and + 8, for each m. `blocks` column blocks per CTA, one after the other.
// kOrder 0: a thread's two 16-byte halves back to back; 1: the decode kernels' order (every row's
// first halves, then the second halves); 2: whole 32-byte sectors per instruction (thread t reads
// bytes [16t, 16t + 16) and [64 + 16t, ...) of the chunk); 3: whole 128-byte lines per instruction
// (lane l: row l / 8 of a group of 4 rows, piece l % 8; not an MMA fragment layout: the bound).
template <int kM, int kU, int kOrder>
__global__ void __launch_bounds__(256, 2) rows(const char* __restrict__ w, size_t row_bytes,
                                               size_t half_rows, int blocks, unsigned* out) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int wn = warp & 1, wk = warp >> 1, g = lane >> 2, t = lane & 3;
  const int chunks = static_cast<int>(row_bytes / 128);
  // Row and byte of (m, h, q) at chunk 0; every order covers the same 16 rows x 128 bytes per warp.
  const auto addr = [&](size_t block, int m, int h, int q) -> const char* {
    size_t row, byte;
    if (kOrder == 3) {
      row = (lane >> 3) + 4 * h + 8 * q;
      byte = 16 * (lane & 7);
    } else if (kOrder == 2) {
      row = g + 8 * h;
      byte = 16 * t + 64 * q;
    } else {
      row = g + 8 * h;
      byte = 32 * t + 16 * q;
    }
    return w + (block * 32 + wn * 16 + row + m * half_rows) * row_bytes + byte;
  };
  unsigned acc = 0;
  for (int b = 0; b < blocks; ++b) {
    const size_t block = static_cast<size_t>(blockIdx.x) * blocks + b;
    const char* r[kM][2][2];
#pragma unroll
    for (int m = 0; m < kM; ++m)
#pragma unroll
      for (int h = 0; h < 2; ++h)
#pragma unroll
        for (int q = 0; q < 2; ++q) r[m][h][q] = addr(block, m, h, q);
    for (int c0 = wk; c0 < chunks; c0 += 4 * kU) {
      uint4 v[kU][kM][2][2];
#pragma unroll
      for (int u = 0; u < kU; ++u) {
        const size_t off = static_cast<size_t>(c0 + 4 * u) * 128;
        const bool in = c0 + 4 * u < chunks;
        if (kOrder == 1) {
#pragma unroll
          for (int q = 0; q < 2; ++q)
#pragma unroll
            for (int m = 0; m < kM; ++m)
#pragma unroll
              for (int h = 0; h < 2; ++h)
                v[u][m][h][q] = in ? ldnc(r[m][h][q] + off) : make_uint4(0, 0, 0, 0);
        } else {
#pragma unroll
          for (int m = 0; m < kM; ++m)
#pragma unroll
            for (int h = 0; h < 2; ++h)
#pragma unroll
              for (int q = 0; q < 2; ++q)
                v[u][m][h][q] = in ? ldnc(r[m][h][q] + off) : make_uint4(0, 0, 0, 0);
        }
      }
#pragma unroll
      for (int u = 0; u < kU; ++u)
#pragma unroll
        for (int m = 0; m < kM; ++m)
#pragma unroll
          for (int h = 0; h < 2; ++h)
#pragma unroll
            for (int q = 0; q < 2; ++q) acc ^= v[u][m][h][q].x ^ v[u][m][h][q].w;
    }
  }
  if (acc == 0x12345678u) out[0] = acc;
}

int main() {
  // 20 rotating buffers of the largest case (DeepSeek-V3 at one token: 470 MB, 9.4 GB in all).
  const size_t largest = size_t(1792) * (256 << 10);
  const size_t total = size_t(20) * (((largest + (1 << 20) - 1) >> 20) << 20);
  char* w = nullptr;
  if (cudaMalloc(&w, total) != cudaSuccess || cudaMemset(w, 1, total) != cudaSuccess) {
    printf("cannot allocate %zu bytes\n", total);
    return 1;
  }
  int* dep;
  cudaMalloc(&dep, 1 << 20);
  cudaMemset(dep, 0, 1 << 20);
  unsigned* out;
  cudaMalloc(&out, 64);
  struct Case {
    const char* name;
    int ctas;
    size_t slice;
  };
  Case cases[] = {{"qwen3 gemm1 1tok 192x256K", 192, 256 << 10},
                  {"qwen3 gemm2 1tok 256x96K", 256, 96 << 10},
                  {"qwen3 gemm1 8tok 1314x256K", 1314, 256 << 10},
                  {"dsv3 gemm1 1tok 1792x256K", 1792, 256 << 10},
                  {"264x96K one wave", 264, 96 << 10},
                  {"132x384K", 132, 384 << 10}};
  for (const Case& c : cases) {
    const size_t bytes = c.ctas * c.slice;
    const size_t stride = ((bytes + (1 << 20) - 1) >> 20) << 20;
    printf("== %s: %.1f MB, floor at 4.47 TB/s %.2f us\n", c.name, bytes / 1e6, bytes / 4.47e6);
    for (int d = 0; d < 2; ++d) {
      const int* dp = d ? dep : nullptr;
      auto rot = [&](int i) { return w + (size_t)(i % 20) * stride; };
      float t8 = time_graph([&](cudaStream_t s, int i) {
        plain<8><<<c.ctas, 256, 0, s>>>((const uint4*)rot(i), c.slice / 16, dp, out);
      });
      float t16 = time_graph([&](cudaStream_t s, int i) {
        plain<16><<<c.ctas, 256, 0, s>>>((const uint4*)rot(i), c.slice / 16, dp, out);
      });
      float t32 = time_graph([&](cudaStream_t s, int i) {
        plain<32><<<c.ctas, 256, 0, s>>>((const uint4*)rot(i), c.slice / 16, dp, out);
      });
      auto kb1 = bulk<4, 16384, 512>;
      auto kb2 = bulk<6, 16384, 512>;
      auto kb3 = bulk<3, 32768, 1024>;
      auto kb4 = bulk<8, 8192, 512>;
      cudaFuncSetAttribute(kb1, cudaFuncAttributeMaxDynamicSharedMemorySize, 4 * 16384);
      cudaFuncSetAttribute(kb2, cudaFuncAttributeMaxDynamicSharedMemorySize, 6 * 16384);
      cudaFuncSetAttribute(kb3, cudaFuncAttributeMaxDynamicSharedMemorySize, 3 * 32768);
      cudaFuncSetAttribute(kb4, cudaFuncAttributeMaxDynamicSharedMemorySize, 8 * 8192);
      float b1 = time_graph([&](cudaStream_t s, int i) {
        kb1<<<c.ctas, 288, 4 * 16384, s>>>(rot(i), c.slice, dp, out);
      });
      float b2 = time_graph([&](cudaStream_t s, int i) {
        kb2<<<c.ctas, 288, 6 * 16384, s>>>(rot(i), c.slice, dp, out);
      });
      float b3 = time_graph([&](cudaStream_t s, int i) {
        kb3<<<c.ctas, 288, 3 * 32768, s>>>(rot(i), c.slice, dp, out);
      });
      float b4 = time_graph([&](cudaStream_t s, int i) {
        kb4<<<c.ctas, 288, 8 * 8192, s>>>(rot(i), c.slice, dp, out);
      });
      printf(
          "  dep %d | plain U8 %.2f U16 %.2f U32 %.2f | bulk 4x16K %.2f 6x16K %.2f 3x32K %.2f 8x8K "
          "%.2f us\n",
          d, t8, t16, t32, b1, b2, b3, b4);
    }
  }
  // Residency (session 9): the decode kernels run 2 CTAs of 256 threads per SM (128 registers),
  // the plain streams as many as their registers allow (plain<8> ~5, plain<16> 3). The same
  // streams with 100 KB of dynamic shared memory per CTA, which leaves room for 2 CTAs per SM.
  cudaFuncSetAttribute(plain<8>, cudaFuncAttributeMaxDynamicSharedMemorySize, 100 << 10);
  cudaFuncSetAttribute(plain<16>, cudaFuncAttributeMaxDynamicSharedMemorySize, 100 << 10);
  printf("== residency: CTAs per SM as registers allow, then 2 (us)\n");
  for (const Case& c : cases) {
    const size_t bytes = c.ctas * c.slice;
    const size_t stride = ((bytes + (1 << 20) - 1) >> 20) << 20;
    auto rot = [&](int i) { return w + (size_t)(i % 20) * stride; };
    printf("  %s:", c.name);
    for (int smem : {0, 100 << 10}) {
      int r8 = 0, r16 = 0;
      cudaOccupancyMaxActiveBlocksPerMultiprocessor(&r8, plain<8>, 256, smem);
      cudaOccupancyMaxActiveBlocksPerMultiprocessor(&r16, plain<16>, 256, smem);
      const float t8 = time_graph([&](cudaStream_t s, int i) {
        plain<8><<<c.ctas, 256, smem, s>>>((const uint4*)rot(i), c.slice / 16, nullptr, out);
      });
      const float t16 = time_graph([&](cudaStream_t s, int i) {
        plain<16><<<c.ctas, 256, smem, s>>>((const uint4*)rot(i), c.slice / 16, nullptr, out);
      });
      printf(" | U8 %d/SM %.2f, U16 %d/SM %.2f", r8, t8, r16, t16);
    }
    printf("\n");
  }
  // The decode kernels' load pattern (rows<kM, kU>) against plain<16> over the same bytes and CTAs:
  // GEMM1 (gated, 2 chunks at once) and GEMM2 (deep: 4 chunks at once), Qwen3-30B and DeepSeek-V3.
  struct RowsCase {
    const char* name;
    int ctas, m, blocks;
    size_t row_bytes;
  };
  const RowsCase rcases[] = {{"qwen3 gemm1 1tok (192 CTAs, gated, k 2048)", 192, 2, 1, 4096},
                             {"qwen3 gemm1 8tok (1314 CTAs, gated, k 2048)", 1314, 2, 1, 4096},
                             {"dsv3 gemm1 1tok (512 CTAs, gated, k 7168)", 512, 2, 1, 14336},
                             {"qwen3 gemm2 1tok (256 CTAs x 2 blocks, k 768)", 256, 1, 2, 1536},
                             {"qwen3 gemm2 8tok (936 CTAs x 4 blocks, k 768)", 936, 1, 4, 1536}};
  printf("== the decode load pattern against a plain stream (us)\n");
  for (const RowsCase& c : rcases) {
    const size_t cta_bytes = static_cast<size_t>(c.m) * 32 * c.blocks * c.row_bytes;
    const size_t bytes = c.ctas * cta_bytes;
    const size_t stride = ((bytes + (1 << 20) - 1) >> 20) << 20;
    auto rot = [&](int i) { return w + (size_t)(i % 20) * stride; };
    const size_t half_rows = static_cast<size_t>(c.ctas) * c.blocks * 32;
    const float tp = time_graph([&](cudaStream_t s, int i) {
      plain<16><<<c.ctas, 256, 0, s>>>((const uint4*)rot(i), cta_bytes / 16, nullptr, out);
    });
    float tr[4];
    const auto run_rows = [&](auto order) {
      constexpr int o = decltype(order)::value;
      tr[o] = time_graph([&](cudaStream_t s, int i) {
        if (c.m == 2) {
          rows<2, 2, o><<<c.ctas, 256, 0, s>>>(rot(i), c.row_bytes, half_rows, c.blocks, out);
        } else {
          rows<1, 4, o><<<c.ctas, 256, 0, s>>>(rot(i), c.row_bytes, half_rows, c.blocks, out);
        }
      });
    };
    run_rows(std::integral_constant<int, 0>{});
    run_rows(std::integral_constant<int, 1>{});
    run_rows(std::integral_constant<int, 2>{});
    run_rows(std::integral_constant<int, 3>{});
    printf(
        "  %s, %.1f MB: plain %.2f | decode rows: halves back to back %.2f, decode order %.2f, "
        "whole sectors %.2f, whole lines %.2f (floor %.2f)\n",
        c.name, bytes / 1e6, tp, tr[0], tr[1], tr[2], tr[3], bytes / 4.47e6);
  }
  printf("last error: %s\n", cudaGetErrorString(cudaGetLastError()));
  return 0;
}
