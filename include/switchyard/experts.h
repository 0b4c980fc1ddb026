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
//   kSiluAndMul       silu(g) * u                       w13 [E, 2I, H]: gate rows 0..I-1, up
//   I..2I-1 kGeluErfAndMul    gelu(g) * u, erf form kGeluTanhAndMul   gelu(g) * u, tanh form
//   kSwigluOai        gpt-oss: rows interleaved (2i gate, 2i+1 up), g = min(g, limit),
//                     u = clamp(u, -limit, limit), g * sigmoid(alpha * g) * (u + 1); biases b13/b2
//   kRelu2            non-gated relu(h)^2               w13 [E, I, H]
// Tokens whose every column is dropped get zeros. Backends today: CPU (the oracle; threaded over
// experts). The CUDA grouped-GEMM path follows with the same structs.
#pragma once

#include <cstdint>

#include "switchyard/status.h"
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
};

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

}  // namespace switchyard
