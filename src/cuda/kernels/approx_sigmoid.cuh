// sigmoid(x) from the hardware exp2 and reciprocal approximations: rcp.approx(1 + ex2.approx(-x
// log2 e)), 4 instructions. Shared by the routing pre-filter (routing_prefilter.cuh proves its
// error bound, < 0.86 * 2^-20 from the exact sigmoid_f) and the gated activations of the experts
// (experts_pointwise.cuh). x << 0 gives +0 (ex2 overflows to +Inf), x >> 0 gives 1 (ex2 flushes).
#pragma once

namespace switchyard::kernels {

#if !defined(__CUDA_ARCH__)
// Host model of the approximation, defined by the code that runs these headers on the host
// (tools/simt_emu/routing_row_block_emu.cpp).
float host_approx_sigmoid(float x);
#endif

__device__ __forceinline__ float approx_sigmoid(float x) {
#if defined(__CUDA_ARCH__)
  const float t = x * -1.44269504088896341f;
  float e, r;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(e) : "f"(t));
  const float d = 1.0f + e;
  asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(d));
  return r;
#else
  return host_approx_sigmoid(x);
#endif
}

}  // namespace switchyard::kernels
