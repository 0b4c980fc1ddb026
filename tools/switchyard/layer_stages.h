// The MoE layer of `switchyard run` after the router GEMM, stage by stage, on the CPU backend
// (run_layer_stages_cpu) or on the GPU (run_layer_stages_cuda, layer_stages_cuda.cpp):
//
//   routing         logits -> ids, weights [M, C]   (C = K + fused shared columns; the CUDA path
//                                                     routes on the device, the CPU path takes the
//                                                     CPU routing result)
//   align           moe_align_block_size on the ids (fused shared columns, ids >= E, are dropped)
//   expert layout   expert_layout (contiguous, --alignment) + the expert and router weight of
//                   each layout row (gather_row_routing)
//   permute         x [M, H] -> xp [R, H], rows in expert order
//   experts         fused experts on the permuted rows, one slot per row (K = 1, weight 1, rsf 1):
//                   y [R, H] = w2[e] @ act(w13[e] @ xp[r]), rounded once to the input dtype (as
//                   SGLang/vLLM store it). With router_weight_on_input (Llama-4) the row's
//                   router weight scales its input instead. Identity experts: y = xp.
//   combine         routed[t] = rsf * sum_k w[t,k] * y[row(t,k)] (weights 1 with
//                   router_weight_on_input), float32, k ascending
//   shared experts  one dense gated MLP (SiLU, intermediate Is) on every token, then added to the
//                   routed output: out = round(routed + shared). routed_scaling_factor does not
//                   apply to it (Hugging Face's DeepSeek-V2/V3, Kimi K2, Llama-4 add it so).
//
// Checks. Identity experts: out == rsf * sum_k w * x bit for bit (same fused order), on every
// value. Real experts: out of up to `check_tokens` tokens spread over the batch against the CPU
// oracle run on those tokens alone (fused_experts_cpu on a sub-batch of their x / ids / weights,
// plus the shared MLP), |out - ref| <= tol * (|ref| + max|ref|), tol 2^-6 bf16 / 2^-8 fp16 (the
// tolerance of tests/experts_cuda_test.cpp). The CUDA path also compares every other stage with
// the CPU op on the same inputs, bit for bit (routing, align, layout, permute, combine of the
// GPU's y, the shared add).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "../../src/common/dtype_convert.h"
#include "../common/json.h"
#include "../common/moe_weights.h"
#include "../common/routing_harness.h"
#include "switchyard/models.h"

namespace switchyard::cli {

struct LayerStageOptions {
  std::int32_t hidden_size = 0;  // H
  std::int32_t block_size = 64;  // moe_align_block_size
  std::int32_t alignment = 1;    // rows per expert in the contiguous layout
  std::uint64_t seed = 0;
  // Experts: nullptr = identity (the bitwise output check applies); else these weights (with the
  // shared experts when weights->shared_intermediate_size > 0).
  const tools::MoeLayerWeights* weights = nullptr;
  Activation activation = Activation::kSiluAndMul;
  bool router_weight_on_input = false;  // real experts only (Llama-4)
  std::int64_t check_tokens = 64;       // real experts: tokens checked against the CPU oracle
};

// Seeded hidden states [M, H] in [-1, 1), bf16.
std::vector<detail::bf16_t> make_hidden_states(std::int64_t tokens, std::int64_t hidden,
                                               std::uint64_t seed);
// Seeded weights for a preset at (H, I, shared Is): w13 / w2 (and the shared MLP when
// shared_intermediate > 0) uniform in +-1/sqrt(fan-in), the router in +-3/sqrt(H) (logits of unit
// variance), bias where the preset has one. Errors when they would exceed `max_bytes`.
Status make_random_weights(const ModelPreset& m, std::int32_t hidden, std::int32_t intermediate,
                           std::int32_t shared_intermediate, std::uint64_t seed,
                           std::size_t max_bytes, tools::MoeLayerWeights* out);
// The router GEMM: logits[t, e] = sum_h x[t, h] * router[e, h] in float32.
std::vector<float> router_logits(const std::vector<detail::bf16_t>& x, std::int64_t hidden,
                                 const tools::MoeLayerWeights& w);
// Writes `w` as layer `layer` of a safetensors shard with Hugging Face tensor names.
Status save_weights(const std::string& path, const tools::MoeLayerWeights& w, int layer);

// One stage of the layer: its time, what it produced and how it was checked.
struct LayerStage {
  std::string name;     // routing | align | expert layout | permute | experts | combine | ...
  std::string backend;  // cpu | cuda
  double ms = 0;        // cpu: wall clock of one call; cuda: median CUDA-graph replay / calls
  std::string detail;
  std::string check;  // "" (not checked here), "bitwise vs cpu", "identity formula", "oracle ..."
  std::int64_t checked = 0, wrong = 0;  // values (routing: rows)
  std::string first_mismatch;
};

// The work of an expert stage, for TFLOP/s and TB/s: flop = 2 * rows * (N13 * H + H * I);
// bytes = the w13 and w2 bytes of the experts hit + the rows read + the rows written.
struct ExpertWork {
  double flop = 0, bytes = 0, ms = 0;
  std::int64_t experts_hit = 0, rows = 0;
  double tflops() const { return ms > 0 ? flop / (ms * 1e9) : 0; }
  double tbps() const { return ms > 0 ? bytes / (ms * 1e9) : 0; }
};

struct LayerStageReport {
  std::string backend = "cpu";
  std::int32_t hidden_size = 0, intermediate_size = 0, shared_intermediate_size = 0;
  DType dtype = DType::kBFloat16;
  bool real_experts = false;
  std::vector<LayerStage> stages;
  ExpertWork experts, shared;
  double layer_ms = -1;            // cuda: every stage above in one CUDA graph
  std::string timing;              // how the times were measured
  double output_checksum = 0;      // sum of |out| in float64, to compare runs
  std::int64_t padded_slots = 0;   // num_tokens_post_pad
  std::int64_t layout_rows = 0;    // rows of the contiguous layout in use
  std::int64_t dropped_slots = 0;  // slots with no local expert (e.g. fused shared columns)
  std::int64_t values_checked = 0, values_wrong = 0;  // over every stage's check
  std::string first_mismatch;
  // cuda: the layer's own routing output against the CPU's (rows).
  bool routing_compared = false;
  double routing_us = 0;
  std::int64_t routing_rows_wrong = 0;
  std::string routing_first_mismatch;

  // Adds a stage and folds its check into the totals (routing rows are not values).
  void add(LayerStage s);
  const LayerStage* find(const std::string& name) const;
};

Status run_layer_stages_cpu(const tools::RoutingProblem& pr, const tools::RoutingResult& routing,
                            const std::vector<detail::bf16_t>& x, const LayerStageOptions& options,
                            LayerStageReport* report);
// Everything on the GPU, from the routing logits: buffers allocated once, one run checked
// against the CPU, then each stage timed alone (CUDA graph) and the whole layer as one graph.
Status run_layer_stages_cuda(const tools::RoutingProblem& pr, const tools::RoutingResult& routing,
                             const std::vector<detail::bf16_t>& x, const LayerStageOptions& options,
                             LayerStageReport* report);

void print_layer_stages(const LayerStageReport& r);
void json_layer_stages(tools::JsonWriter& j, const LayerStageReport& r);

// ---- pieces shared by the CPU and CUDA paths (layer_stages.cpp) ------------------------------
namespace layer {

// Sizes of one layer problem.
struct Shape {
  std::int64_t M = 0, H = 0, C = 0;  // tokens, hidden size, routing columns (K + fused shared)
  int E = 0;
  DType dtype = DType::kBFloat16;  // activations: the weights' dtype (bf16 for identity)
  std::size_t esz = 2;
  float rsf = 1.0f;  // applied by combine (1 when the routing applied it)
  bool weight_on_input = false;
  std::int64_t max_padded = 0, max_blocks = 0, max_rows = 0;  // align and layout buffer sizes
};
Shape make_shape(const tools::RoutingProblem& pr, const LayerStageOptions& o);

// Routing ids narrowed to int32 [M, C], and the weights combine uses ([M, C]: all 1 with the
// router weight on the input).
std::vector<std::int32_t> routing_ids(const tools::RoutingResult& r);
std::vector<float> combine_weights(const Shape& s, const tools::RoutingResult& r);
// x converted to the layer's dtype.
std::vector<std::uint8_t> layer_input(const std::vector<detail::bf16_t>& x, DType dtype);

ExpertsParams routed_params(const Shape& s, const LayerStageOptions& o);
ExpertsParams shared_params(const Shape& s, const tools::MoeLayerWeights& w);
Status shared_experts_cpu(const Shape& s, const tools::MoeLayerWeights& w, const TensorView& x,
                          std::uint8_t* out);
ExpertWork routed_work(const Shape& s, const tools::MoeLayerWeights& w,
                       const std::vector<std::int32_t>& counts, Activation act);
ExpertWork shared_work(const Shape& s, const tools::MoeLayerWeights& w);

// Checks of the layer output (see the header comment); return the stage entry of the check.
LayerStage check_identity_output(const Shape& s, const std::vector<std::int32_t>& ids,
                                 const tools::RoutingResult& r,
                                 const std::vector<detail::bf16_t>& x,
                                 const std::vector<std::uint8_t>& out);
Status check_sampled_tokens(const Shape& s, const LayerStageOptions& o,
                            const std::vector<std::int32_t>& ids, const tools::RoutingResult& r,
                            const std::vector<std::uint8_t>& x,
                            const std::vector<std::uint8_t>& out, LayerStage* stage);
// Adds `count` elements of `dtype` compared bit for bit to `stage` (rows of `row` elements, for
// the message).
void compare_bitwise(const void* want, const void* got, std::size_t count, DType dtype,
                     std::int64_t row, LayerStage* stage);
double checksum(const std::vector<std::uint8_t>& out, DType dtype);
// "R rows, D slots dropped" of the expert layout stage.
std::string layout_detail(const tools::RoutingProblem& pr, std::int64_t rows, std::int64_t dropped);

}  // namespace layer

}  // namespace switchyard::cli
