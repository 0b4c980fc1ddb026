// Routing (top-k gating): router logits [M, E] -> top_k_weights [M, K+S], top_k_ids [M, K+S].
//
// The contract is ../shared/SEMANTICS.md section 1; this header states exactly what Switchyard
// computes, including the choices the upstream engines leave open.
//
// Pipeline for one row (token) t, with x = logits[t, :] read in their own dtype:
//  1. softcap (if softcap > 0):  x'  = softcap * tanh(x / softcap), else x' = x.
//  2. score and selection key, by ScoreFunc:
//       kSoftmax          key = x' + bias              weight = softmax(key over all E)[e]
//       kSigmoid          s = sigmoid(x'),  key = s + bias      weight = s
//       kSqrtSoftplus     s = sqrt(softplus(x')),  key = s + bias   weight = s
//       kTopkThenSoftmax  key = x'   weight = softmax over the K selected keys     (gpt-oss)
//       kTopkThenSigmoid  key = x'   weight = sigmoid(key)                         (Llama-4)
//     (bias is optional; the two kTopkThen* functions take none.)
//  3. grouping (GroupScore != kNone): experts split into num_groups contiguous groups of
//     E / num_groups; group score = max key (kMax, DeepSeek-V2) or the sum of the two largest keys
//     (kTop2Sum, DeepSeek-V3 "noaux_tc"; a group of one expert scores its single key). The
//     topk_groups best groups are kept; experts of other groups cannot be selected (they are
//     excluded, not given score 0). Softmax weights still normalise over all E.
//  4. selection: the K largest keys, in descending key order (output column 0 is the best).
//  5. renormalize: routed weights /= their sum; a zero sum divides by 1. If the sum is +Inf the
//     +Inf weights share 1 equally and the others become 0.
//  6. routed scaling factor rsf: if apply_rsf_on_output, routed weights *= rsf.
//  7. S fused shared experts: columns K..K+S-1 get ids (num_physical_experts + i) and weight
//     routed_sum / rsf (times rsf again when apply_rsf_on_output), routed_sum being the sum of the
//     routed weights after step 5 and before step 6; so the shared expert counts exactly once
//     after the global "* rsf" that combine applies.
//  8. placement (optional): routed ids map logical -> physical through a static map [E] or a
//     replica table [E, R] + replica counts [E]; the replica of column k of row t is
//     (t * K + k) mod count (deterministic round robin; it depends on the row index by design).
//  9. expert-parallel local view (optional): routed ids map through expert_map [P] -> local id or
//     -1 (weight kept); shared ids become num_local_experts + i.
//
// Guarantees:
//  - any E in [1, kMaxRoutingExperts], any 1 <= K <= E and K + S <= kMaxRoutingColumns;
//  - ordering is total: NaN keys rank below every number (and -Inf), +Inf above every finite
//    number, -0 equals +0; equal keys go to the lower expert index; equal group scores keep the
//    lower group index; ids in a row are always distinct and in range;
//  - weights are never NaN (a NaN score gives weight 0); a row with no finite logit returns ids
//    0..K-1 (mapped as in 8-9) with weight 0;
//  - padded rows (row >= *num_tokens_non_padded) get id -1 and weight 0 in every column;
//  - a row's result depends only on that row's logits and (for placement) its index: the same
//    bits whatever the batch size, the row's position, the backend's thread count or the run;
//    the CPU and CUDA backends return bitwise identical ids and weights (they share the exact
//    float math and reduction order, see src/common/routing_row.h).
//
// CUDA backend: one kernel launch per call for every variant and every E, no allocation, no host
// synchronisation, capturable in a CUDA graph, needs no workspace (routing_workspace_size() == 0,
// kept so that callers size workspaces uniformly across ops). On sm_90 and later, calls of up to
// 512 rows launch with programmatic dependent launch: the kernel waits for the previous kernel in
// the stream before it reads or writes anything, so stream order holds as with a plain launch,
// while its launch overlaps that kernel (SWITCHYARD_PDL=0 in the environment turns it off).
#pragma once

#include <cstddef>
#include <cstdint>

#include "switchyard/status.h"
#include "switchyard/stream.h"
#include "switchyard/tensor.h"

namespace switchyard {

inline constexpr int kMaxRoutingExperts = 1024;  // E
inline constexpr int kMaxRoutingColumns = 32;    // K + S
inline constexpr int kMaxRoutingGroups = 32;     // num_groups

enum class ScoreFunc : std::uint8_t {
  kSoftmax,
  kSigmoid,
  kSqrtSoftplus,
  kTopkThenSoftmax,
  kTopkThenSigmoid,
};
enum class GroupScore : std::uint8_t { kNone, kMax, kTop2Sum };

const char* score_func_name(ScoreFunc f);    // "softmax", "sigmoid", ...
const char* group_score_name(GroupScore g);  // "none", "max", "top2sum"

struct RoutingParams {
  std::int32_t num_experts = 0;         // E, routed experts (logical)
  std::int32_t top_k = 0;               // K
  std::int32_t num_shared_experts = 0;  // S fused shared experts appended as extra columns
  ScoreFunc score_func = ScoreFunc::kSoftmax;
  GroupScore group_score = GroupScore::kNone;
  std::int32_t num_groups = 1;   // only with group_score != kNone; must divide E
  std::int32_t topk_groups = 1;  // groups kept, 1..num_groups; K <= topk_groups * E / num_groups
  bool renormalize = false;
  float routed_scaling_factor = 1.0f;  // rsf, finite and > 0
  bool apply_rsf_on_output = false;
  float softcap = 0.0f;  // 0: off; otherwise finite and > 0
};

struct RoutingArgs {
  TensorView logits;  // [M, E] float32/bfloat16/float16; column stride 1, any row stride
  TensorView bias;    // optional [E] float32 (the correction bias "e_score_correction_bias")
  // optional scalar int32 (shape [] or [1]) on the op's device: rows >= it are padding.
  TensorView num_tokens_non_padded;
  // optional placement (EPLB): [E] int32 static map, or [E, R] int32 replica table ...
  TensorView placement;
  TensorView replica_counts;  // ... with [E] int32 counts (required iff placement is 2-D)
  std::int32_t num_physical_experts = 0;  // P; 0 means E (no placement)
  // optional expert-parallel view: [P] int32, local id or -1.
  TensorView expert_map;
  std::int32_t num_local_experts = 0;  // required > 0 when expert_map is given
  TensorView top_k_weights;            // [M, K+S] float32, contiguous (output)
  TensorView top_k_ids;                // [M, K+S] int32 or int64, contiguous (output)
};

// Validates everything that can be checked on the host (shapes, dtypes, devices, alignment,
// parameter ranges). Every route_* call runs it first. `device` is the backend to run on.
Status routing_check(const RoutingParams& params, const RoutingArgs& args, Device device);

// Bytes of workspace route_cuda needs: always 0 (the formula: 0).
std::size_t routing_workspace_size(const RoutingParams& params, std::int64_t num_tokens);

// CPU backend: multi-threaded over rows for large M. All views must be Device::kCpu.
Status route_cpu(const RoutingParams& params, const RoutingArgs& args);

// CUDA backend: all views Device::kCuda; enqueues one kernel on `stream` and returns without
// synchronising. Returns kUnsupported when Switchyard was built without CUDA.
Status route_cuda(const RoutingParams& params, const RoutingArgs& args, void* workspace,
                  std::size_t workspace_bytes, cudaStream_t stream);

}  // namespace switchyard
