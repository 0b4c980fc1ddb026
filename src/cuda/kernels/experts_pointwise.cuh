// Elementwise pieces of the fused MoE forward (prefill path) and the activation math shared with
// the decode kernels. Every kernel reads the rows in use, offsets[E], from the device (no host
// synchronisation) and grid-strides over rows; rows past it are left untouched.
// Numerics follow include/switchyard/experts.h: GEMM outputs arrive in float32, bias and
// activation are applied in float32 and the result is rounded once to the storage dtype.
#pragma once

#include <cstdint>
#include <type_traits>

#include "../../common/dtype_convert.h"
#include "approx_sigmoid.cuh"
#include "switchyard/experts.h"

namespace switchyard::kernels {

inline constexpr int kPointwiseThreads = 256;

// The CPU oracle's formulas (src/cpu/experts.cpp), in float32. silu and gpt-oss SwiGLU take their
// sigmoid from approx_sigmoid (hardware exp2 and reciprocal, a few float32 ulp, far below the
// rounding to the 16-bit output): 4 instructions instead of ~20 for expf and IEEE division, which
// matters where the code is unrolled per accumulator (GEMM1's fused epilogue runs it 64 times per
// thread and tile, experts/gated_epilogue.cuh). Every GPU path (decode, activation kernel, fused
// epilogue) calls this one function, so they agree bit for bit on the same float32 inputs.
__device__ __forceinline__ float gated_activation(Activation act, float g, float u, float alpha,
                                                  float limit) {
  switch (act) {
    case Activation::kSiluAndMul:
      return g * approx_sigmoid(g) * u;
    case Activation::kGeluErfAndMul:
      return 0.5f * g * (1.0f + erff(g * 0.70710678f)) * u;
    case Activation::kGeluTanhAndMul:
      return 0.5f * g * (1.0f + tanhf(0.79788456f * (g + 0.044715f * g * g * g))) * u;
    case Activation::kSwigluOai: {
      g = fminf(g, limit);
      u = fminf(fmaxf(u, -limit), limit);
      return g * approx_sigmoid(alpha * g) * (u + 1.0f);
    }
    case Activation::kRelu2:
      break;
  }
  return 0.0f;
}

__device__ __forceinline__ float relu2(float h) {
  const float r = fmaxf(h, 0.0f);
  return r * r;
}

// bias[i] of a float32 or T bias vector; 0 without one.
template <typename T>
__device__ __forceinline__ float load_bias(const void* bias, bool bias_f32, std::int64_t i) {
  if (bias == nullptr) return 0.0f;
  if (bias_f32) return __ldg(static_cast<const float*>(bias) + i);
  return detail::to_float(T{__ldg(&static_cast<const T*>(bias)[i].bits)});
}

// The expert whose segment [offsets[e], offsets[e+1]) holds layout row r (offsets ascending).
__device__ __forceinline__ int expert_of_row(const std::int64_t* __restrict__ offsets,
                                             int num_experts, std::int64_t r) {
  int lo = 0, hi = num_experts - 1;
  while (lo < hi) {
    const int mid = (lo + hi) >> 1;
    if (__ldg(offsets + mid + 1) <= r) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return lo;
}

template <typename T>
__device__ __forceinline__ std::uint32_t pack2(float lo, float hi) {
  return static_cast<std::uint32_t>(detail::from_float<T>(lo).bits) |
         (static_cast<std::uint32_t>(detail::from_float<T>(hi).bits) << 16);
}

template <typename T>
__device__ __forceinline__ float2 unpack2(std::uint32_t w) {
  return make_float2(detail::to_float(T{static_cast<std::uint16_t>(w & 0xffffu)}),
                     detail::to_float(T{static_cast<std::uint16_t>(w >> 16)}));
}

// The 8 elements of a 16-byte vector times w, each rounded to T (round(w * x) as the CPU oracle).
template <typename T>
__device__ __forceinline__ uint4 scale_vec8(uint4 v, float w) {
  float2 f = unpack2<T>(v.x);
  v.x = pack2<T>(w * f.x, w * f.y);
  f = unpack2<T>(v.y);
  v.y = pack2<T>(w * f.x, w * f.y);
  f = unpack2<T>(v.z);
  v.z = pack2<T>(w * f.x, w * f.y);
  f = unpack2<T>(v.w);
  v.w = pack2<T>(w * f.x, w * f.y);
  return v;
}

// 4 consecutive values of a float32 or T row as float32 (p 16-byte aligned for float, 8 for T).
template <typename T, typename In>
__device__ __forceinline__ float4 load4_as_float(const In* p) {
  if constexpr (std::is_same_v<In, float>) {
    return __ldg(reinterpret_cast<const float4*>(p));
  } else {
    const uint2 v = __ldg(reinterpret_cast<const uint2*>(p));
    const float2 a = unpack2<T>(v.x), b = unpack2<T>(v.y);
    return make_float4(a.x, a.y, b.x, b.y);
  }
}

// act[r, i] = act(h[r, gate(i)] + b13, h[r, up(i)] + b13) for i in [0, I); 4 outputs per thread.
// h [rows, n13] In = float32 or T (n13 = 2I gated, I for relu2), act [rows, I] T. I % 4 == 0.
template <typename T, typename In = float>
__global__ void __launch_bounds__(kPointwiseThreads)
    activation_kernel(const In* __restrict__ h, const std::int64_t* __restrict__ offsets,
                      int num_experts, int intermediate, Activation act, bool interleaved,
                      float alpha, float limit, const void* __restrict__ b13, bool b13_f32,
                      T* __restrict__ out) {
  const std::int64_t rows = __ldg(offsets + num_experts);
  const bool gated = act != Activation::kRelu2;
  const std::int64_t n13 = gated ? 2LL * intermediate : intermediate;
  const int groups = intermediate / 4;
  for (std::int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const In* hr = h + r * n13;
    const std::int64_t bias_row = b13 ? expert_of_row(offsets, num_experts, r) * n13 : 0;
    for (int q = threadIdx.x; q < groups; q += blockDim.x) {
      const int i = 4 * q;
      float v[4];
      if (!gated) {
        const float4 x = load4_as_float<T>(hr + i);
        const float xs[4] = {x.x, x.y, x.z, x.w};
        for (int j = 0; j < 4; ++j) {
          v[j] = relu2(xs[j] + load_bias<T>(b13, b13_f32, bias_row + i + j));
        }
      } else {
        float g[4], u[4];
        if (interleaved) {  // rows 2i (gate), 2i+1 (up)
          const float4 p0 = load4_as_float<T>(hr + 2 * i);
          const float4 p1 = load4_as_float<T>(hr + 2 * i + 4);
          g[0] = p0.x, u[0] = p0.y, g[1] = p0.z, u[1] = p0.w;
          g[2] = p1.x, u[2] = p1.y, g[3] = p1.z, u[3] = p1.w;
        } else {  // gate rows [0, I), up rows [I, 2I)
          const float4 gv = load4_as_float<T>(hr + i);
          const float4 uv = load4_as_float<T>(hr + intermediate + i);
          g[0] = gv.x, g[1] = gv.y, g[2] = gv.z, g[3] = gv.w;
          u[0] = uv.x, u[1] = uv.y, u[2] = uv.z, u[3] = uv.w;
        }
        for (int j = 0; j < 4; ++j) {
          const std::int64_t gi = interleaved ? 2LL * (i + j) : i + j;
          const std::int64_t ui = interleaved ? gi + 1 : intermediate + i + j;
          v[j] = gated_activation(act, g[j] + load_bias<T>(b13, b13_f32, bias_row + gi),
                                  u[j] + load_bias<T>(b13, b13_f32, bias_row + ui), alpha, limit);
        }
      }
      *reinterpret_cast<uint2*>(out + r * intermediate + i) =
          make_uint2(pack2<T>(v[0], v[1]), pack2<T>(v[2], v[3]));
    }
  }
}

// y[r, c] = round(y32[r, c] + b2[e(r), c]) for rows in use; 4 columns per thread. cols % 4 == 0.
template <typename T>
__global__ void __launch_bounds__(kPointwiseThreads)
    bias_round_kernel(const float* __restrict__ y32, const std::int64_t* __restrict__ offsets,
                      int num_experts, int cols, const void* __restrict__ b2, bool b2_f32,
                      T* __restrict__ y) {
  const std::int64_t rows = __ldg(offsets + num_experts);
  for (std::int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const std::int64_t bias_row =
        static_cast<std::int64_t>(expert_of_row(offsets, num_experts, r)) * cols;
    for (int q = threadIdx.x; q < cols / 4; q += blockDim.x) {
      const int c = 4 * q;
      const float4 a = __ldg(reinterpret_cast<const float4*>(y32 + r * cols + c));
      const float v0 = a.x + load_bias<T>(b2, b2_f32, bias_row + c);
      const float v1 = a.y + load_bias<T>(b2, b2_f32, bias_row + c + 1);
      const float v2 = a.z + load_bias<T>(b2, b2_f32, bias_row + c + 2);
      const float v3 = a.w + load_bias<T>(b2, b2_f32, bias_row + c + 3);
      *reinterpret_cast<uint2*>(y + r * cols + c) = make_uint2(pack2<T>(v0, v1), pack2<T>(v2, v3));
    }
  }
}

// apply_router_weight_on_input on the permuted rows: xp[r] = round(w[slot(r)] * xp[r]), the same
// float multiply and rounding as the CPU oracle. hidden % 8 == 0.
template <typename T>
__global__ void __launch_bounds__(kPointwiseThreads)
    scale_rows_kernel(const std::int64_t* __restrict__ offsets, int num_experts,
                      const std::int64_t* __restrict__ dst_to_src,
                      const float* __restrict__ slot_weights, int hidden, T* __restrict__ xp) {
  const std::int64_t rows = __ldg(offsets + num_experts);
  for (std::int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const std::int64_t slot = __ldg(dst_to_src + r);
    if (slot < 0) continue;
    const float w = __ldg(slot_weights + slot);
    uint4* row = reinterpret_cast<uint4*>(xp + r * hidden);
    for (int q = threadIdx.x; q < hidden / 8; q += blockDim.x) row[q] = scale_vec8<T>(row[q], w);
  }
}

}  // namespace switchyard::kernels
