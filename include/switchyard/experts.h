// Expert computation: the fused MoE forward (SEMANTICS.md section 4).
//
//   for every token t and routed column k with a valid expert e (after expert_map):
//     in    = x[t]                          (apply_router_weight_on_input: w[t,k] * x[t], K == 1)
//     h     = act(w13[e] @ in  (+ b13[e]))  float32 accumulation, activation in float32,
//                                           rounded once to the input dtype (the stored
//                                           intermediate of every GPU implementation)
//     y     = w2[e] @ h (+ b2[e])           float32 accumulation
//     out[t] = rsf * sum_k w[t,k] * y       float32, k ascending (weight 1 with
//                                           apply_router_weight_on_input), rounded once to the
//                                           input dtype
// Activations (g = gate row, u = up row of w13):
//   kSiluAndMul       silu(g) * u          w13 [E, 2I, H]: gate rows 0..I-1, up rows I..2I-1
//   kGeluErfAndMul    gelu(g) * u, erf form
//   kGeluTanhAndMul   gelu(g) * u, tanh form
//   kSwigluOai        gpt-oss: rows interleaved (2i gate, 2i+1 up), g = min(g, limit),
//                     u = clamp(u, -limit, limit), g * sigmoid(alpha * g) * (u + 1); biases b13/b2
//   kRelu2            non-gated relu(h)^2               w13 [E, I, H]
// w13_interleaved (gated activations): w13 rows (and b13) interleaved, 2i gate and 2i+1 up, as
// kSwigluOai always is, instead of SGLang's halves. Pack a halves w13 once at load time with
// interleave_w13_cpu / interleave_w13_cuda below. The CUDA grouped-GEMM path then fuses the
// activation into GEMM1's epilogue where it takes the 64-row tile (up to 512 rows per expert):
// no float32 gate/up intermediate and no activation kernel (the decode path fuses it with either
// layout). Same results either way up to float32 summation order.
// Tokens whose every column is dropped get zeros. Backends: CPU (the oracle; threaded over
// experts) and CUDA (fused_experts_cuda below), with the same structs.
#pragma once

#include <cstddef>
#include <cstdint>

#include "switchyard/status.h"
#include "switchyard/stream.h"
#include "switchyard/tensor.h"

namespace switchyard {

enum class Activation : std::uint8_t {
  kSiluAndMul,
  kGeluErfAndMul,
  kGeluTanhAndMul,
  kSwigluOai,
  kRelu2,
};
const char* activation_name(Activation a);

struct ExpertsParams {
  std::int32_t num_experts = 0;        // E (local)
  std::int32_t hidden_size = 0;        // H
  std::int32_t intermediate_size = 0;  // I
  Activation activation = Activation::kSiluAndMul;
  bool apply_router_weight_on_input = false;  // Llama-4; needs top_k == 1
  float routed_scaling_factor = 1.0f;
  float swiglu_alpha = 1.702f;
  float swiglu_limit = 7.0f;
  bool w13_interleaved = false;  // gated: rows 2i gate, 2i+1 up (kSwigluOai: always)
};

// Whether gate i and up i of w13 are rows 2i and 2i+1 (kSwigluOai or w13_interleaved).
inline bool experts_w13_interleaved(const ExpertsParams& p) {
  return p.activation == Activation::kSwigluOai ||
         (p.w13_interleaved && p.activation != Activation::kRelu2);
}

struct ExpertsArgs {
  TensorView x;              // [M, H] bfloat16 or float16
  TensorView w13;            // [E, 2I, H] (kRelu2: [E, I, H]), x's dtype, contiguous
  TensorView w2;             // [E, H, I], x's dtype, contiguous
  TensorView b13;            // optional [E, 2I] (kRelu2: [E, I]) float32 or x's dtype
  TensorView b2;             // optional [E, H] float32 or x's dtype
  TensorView top_k_ids;      // [M, K] int32 or int64
  TensorView top_k_weights;  // [M, K] float32
  TensorView expert_map;     // optional [E_global] int32: id -> local expert or -1
  TensorView out;            // [M, H] x's dtype, contiguous
};

Status fused_experts_cpu(const ExpertsParams& params, const ExpertsArgs& args);

// Packs w13 [E, 2I, H] (or b13 [E, 2I]) from SGLang's halves (gate rows 0..I-1, up rows I..2I-1)
// into interleaved rows (2i gate i, 2i+1 up i) for ExpertsParams::w13_interleaved; a load-time
// step (it reads and writes every byte once). src and dst: the same dtype (any) and shape,
// contiguous, rank 2 or 3, the second dimension even, not overlapping.
Status interleave_w13_cpu(const TensorView& src, const TensorView& dst);

// ---- CUDA -------------------------------------------------------------------------------------
// fused_experts_cuda: the same op on device memory (every tensor on Device::kCuda), enqueued on
// `stream`: no allocation, no host synchronisation, capturable in a CUDA graph, and bitwise
// repeatable (no atomics; every reduction has a fixed order). Needs hidden_size and
// intermediate_size to be multiples of 8 and x, w13, w2 to start 16-byte aligned (16-byte rows
// for TMA and vector loads); the grouped-GEMM path (used at many rows per expert) needs an sm_90
// device and a build that includes sm_90a (otherwise it reports kUnsupported).
// Numerics: as above, with two differences: each expert output y is stored rounded to the input
// dtype (once, after + b2) before the float32 combine, as SGLang and vLLM store it; and the
// sigmoid of silu / SwiGLU comes from the hardware exp2 and reciprocal (ex2 / rcp.approx, a few
// float32 ulp), identical in every GPU path. Against the
// CPU oracle expect about 2^-8 relative per term for bf16 (2^-11 for fp16), plus float32
// summation-order effects. Builds without CUDA return kUnsupported (and a workspace size of 0).
//
// Workspace (bytes; S = num_tokens * top_k, N13 = rows of w13 per expert, round256(b) = b rounded
// up to a multiple of 256; any pointer works, it is aligned up to 256 internally; it may be null
// when M or top_k is 0):
//     round256(8 (E+1)) + round256(4 E)              expert offsets and counts
//   + 2 round256(8 S)                                slot <-> layout-row maps
//   + round256(expert_layout_workspace_size({E, alignment 1}, S))
//   + round256(2 S I)                                activations, input dtype
//   + round256(2 S H)                                permuted x, then expert outputs y
//   + round256(4 S max(N13, H))                      float32 GEMM outputs
//   + round256(128 E) + 256 KiB                      grouped GEMM arguments and TMA descriptors
//   + 256                                            alignment slack
// Contents need no initialisation and are scratch between calls.
std::size_t fused_experts_workspace_size(const ExpertsParams& params, std::int64_t num_tokens,
                                         std::int32_t top_k);
Status fused_experts_cuda(const ExpertsParams& params, const ExpertsArgs& args, void* workspace,
                          std::size_t workspace_bytes, cudaStream_t stream);
// interleave_w13_cpu on device memory, enqueued on `stream` (one kernel, no allocation).
Status interleave_w13_cuda(const TensorView& src, const TensorView& dst, cudaStream_t stream);

}  // namespace switchyard
