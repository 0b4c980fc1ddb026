// Host-side validation of a routing call (shared by both backends).
#include <cmath>
#include <string>

#include "check.h"
#include "switchyard/routing.h"

namespace switchyard {

const char* score_func_name(ScoreFunc f) {
  switch (f) {
    case ScoreFunc::kSoftmax:
      return "softmax";
    case ScoreFunc::kSigmoid:
      return "sigmoid";
    case ScoreFunc::kSqrtSoftplus:
      return "sqrtsoftplus";
    case ScoreFunc::kTopkThenSoftmax:
      return "topk_softmax";
    case ScoreFunc::kTopkThenSigmoid:
      return "topk_sigmoid";
  }
  return "unknown";
}

const char* group_score_name(GroupScore g) {
  switch (g) {
    case GroupScore::kNone:
      return "none";
    case GroupScore::kMax:
      return "max";
    case GroupScore::kTop2Sum:
      return "top2sum";
  }
  return "unknown";
}

std::size_t routing_workspace_size(const RoutingParams& /*params*/, std::int64_t /*num_tokens*/) {
  return 0;
}

namespace {

using detail::check_contiguous;
using detail::check_dtype;
using detail::check_shape;
using detail::check_tensor_basics;
using detail::invalid_arg;

Status check_params(const char* op, const RoutingParams& p) {
  const int E = p.num_experts;
  if (E < 1 || E > kMaxRoutingExperts) {
    return invalid_arg(op, "num_experts", E,
                       "1 <= num_experts <= " + std::to_string(kMaxRoutingExperts));
  }
  if (p.top_k < 1 || p.top_k > E) {
    return invalid_arg(op, "top_k", p.top_k,
                       "1 <= top_k <= num_experts (" + std::to_string(E) + ")");
  }
  if (p.top_k > kMaxRoutingColumns) {
    return invalid_arg(op, "top_k", p.top_k,
                       "top_k <= " + std::to_string(kMaxRoutingColumns) + " (output columns)");
  }
  if (p.num_shared_experts < 0 || p.top_k + p.num_shared_experts > kMaxRoutingColumns) {
    return invalid_arg(op, "num_shared_experts", p.num_shared_experts,
                       "0 <= num_shared_experts and top_k + num_shared_experts <= " +
                           std::to_string(kMaxRoutingColumns) +
                           " (top_k = " + std::to_string(p.top_k) + ")");
  }
  const int sf = static_cast<int>(p.score_func);
  if (sf < 0 || sf > static_cast<int>(ScoreFunc::kTopkThenSigmoid)) {
    return invalid_arg(op, "score_func", sf, "a ScoreFunc value");
  }
  const int gs = static_cast<int>(p.group_score);
  if (gs < 0 || gs > static_cast<int>(GroupScore::kTop2Sum)) {
    return invalid_arg(op, "group_score", gs, "a GroupScore value");
  }
  if (p.group_score == GroupScore::kNone) {
    if (p.num_groups != 1) {
      return invalid_arg(op, "num_groups", p.num_groups, "1 when group_score is none");
    }
    if (p.topk_groups != 1) {
      return invalid_arg(op, "topk_groups", p.topk_groups, "1 when group_score is none");
    }
  } else {
    if (p.score_func == ScoreFunc::kTopkThenSoftmax ||
        p.score_func == ScoreFunc::kTopkThenSigmoid) {
      return invalid_arg(op, "group_score", group_score_name(p.group_score),
                         std::string("none with score_func ") + score_func_name(p.score_func));
    }
    if (p.num_groups < 1 || p.num_groups > kMaxRoutingGroups || E % p.num_groups != 0) {
      return invalid_arg(op, "num_groups", p.num_groups,
                         "a divisor of num_experts (" + std::to_string(E) + ") in 1.." +
                             std::to_string(kMaxRoutingGroups));
    }
    if (p.topk_groups < 1 || p.topk_groups > p.num_groups) {
      return invalid_arg(op, "topk_groups", p.topk_groups,
                         "1 <= topk_groups <= num_groups (" + std::to_string(p.num_groups) + ")");
    }
    const int selectable = p.topk_groups * (E / p.num_groups);
    if (p.top_k > selectable) {
      return invalid_arg(
          op, "top_k", p.top_k,
          "top_k <= topk_groups * num_experts / num_groups (" + std::to_string(selectable) + ")");
    }
  }
  if (!(std::isfinite(p.routed_scaling_factor) && p.routed_scaling_factor > 0.0f)) {
    return invalid_arg(op, "routed_scaling_factor", p.routed_scaling_factor, "finite and > 0");
  }
  if (!(std::isfinite(p.softcap) && p.softcap >= 0.0f)) {
    return invalid_arg(op, "softcap", p.softcap, "0 (off) or finite and > 0");
  }
  return Status::Ok();
}

Status check_optional_int_table(const char* op, const char* name, const TensorView& t,
                                Device device) {
  SY_RETURN_IF_ERROR(check_tensor_basics(op, name, t, device));
  SY_RETURN_IF_ERROR(check_dtype(op, name, t, {DType::kInt32}));
  return check_contiguous(op, name, t);
}

}  // namespace

Status routing_check(const RoutingParams& p, const RoutingArgs& a, Device device) {
  const char* op = device == Device::kCuda ? "route_cuda" : "route_cpu";
  SY_RETURN_IF_ERROR(check_params(op, p));
  const int E = p.num_experts;
  const int cols = p.top_k + p.num_shared_experts;

  SY_RETURN_IF_ERROR(check_tensor_basics(op, "logits", a.logits, device));
  SY_RETURN_IF_ERROR(
      check_dtype(op, "logits", a.logits, {DType::kFloat32, DType::kBFloat16, DType::kFloat16}));
  if (a.logits.ndim != 2 || a.logits.size(1) != E) {
    return invalid_arg(op, "logits.shape", a.logits.describe(),
                       "[num_tokens, num_experts] with num_experts = " + std::to_string(E));
  }
  const std::int64_t M = a.logits.size(0);
  if (E > 1 && a.logits.stride(1) != 1) {
    return invalid_arg(op, "logits.strides[1]", a.logits.stride(1), "1 (experts contiguous)");
  }
  if (M > 1 && a.logits.stride(0) < E) {
    return invalid_arg(op, "logits.strides[0]", a.logits.stride(0),
                       ">= num_experts (" + std::to_string(E) + ")");
  }

  if (a.bias.defined()) {
    if (p.score_func == ScoreFunc::kTopkThenSoftmax ||
        p.score_func == ScoreFunc::kTopkThenSigmoid) {
      return invalid_arg(op, "bias", "given",
                         std::string("no bias with score_func ") + score_func_name(p.score_func));
    }
    SY_RETURN_IF_ERROR(check_tensor_basics(op, "bias", a.bias, device));
    SY_RETURN_IF_ERROR(check_dtype(op, "bias", a.bias, {DType::kFloat32}));
    SY_RETURN_IF_ERROR(check_shape(op, "bias", a.bias, {E}));
    SY_RETURN_IF_ERROR(check_contiguous(op, "bias", a.bias));
  }
  if (a.num_tokens_non_padded.defined()) {
    const TensorView& n = a.num_tokens_non_padded;
    SY_RETURN_IF_ERROR(check_tensor_basics(op, "num_tokens_non_padded", n, device));
    SY_RETURN_IF_ERROR(check_dtype(op, "num_tokens_non_padded", n, {DType::kInt32}));
    if (n.numel() != 1 || n.ndim > 1) {
      return invalid_arg(op, "num_tokens_non_padded.shape", n.describe(), "a scalar ([] or [1])");
    }
  }

  std::int32_t P = E;
  if (a.placement.defined()) {
    SY_RETURN_IF_ERROR(check_optional_int_table(op, "placement", a.placement, device));
    if (a.num_physical_experts < E) {
      return invalid_arg(op, "num_physical_experts", a.num_physical_experts,
                         ">= num_experts (" + std::to_string(E) + ") when placement is given");
    }
    P = a.num_physical_experts;
    if (a.placement.ndim == 1) {
      SY_RETURN_IF_ERROR(check_shape(op, "placement", a.placement, {E}));
      if (a.replica_counts.defined()) {
        return invalid_arg(op, "replica_counts", "given", "none with a 1-D placement (static map)");
      }
    } else if (a.placement.ndim == 2 && a.placement.size(0) == E && a.placement.size(1) >= 1) {
      if (!a.replica_counts.defined()) {
        return invalid_arg(op, "replica_counts", "null",
                           "[num_experts] int32 counts with a 2-D placement (replica table)");
      }
      SY_RETURN_IF_ERROR(check_optional_int_table(op, "replica_counts", a.replica_counts, device));
      SY_RETURN_IF_ERROR(check_shape(op, "replica_counts", a.replica_counts, {E}));
    } else {
      return invalid_arg(op, "placement.shape", a.placement.describe(),
                         "[num_experts] or [num_experts, max_replicas]");
    }
  } else {
    if (a.num_physical_experts != 0 && a.num_physical_experts != E) {
      return invalid_arg(op, "num_physical_experts", a.num_physical_experts,
                         "0 or num_experts (" + std::to_string(E) + ") without placement");
    }
    if (a.replica_counts.defined()) {
      return invalid_arg(op, "replica_counts", "given", "none without placement");
    }
  }
  if (a.expert_map.defined()) {
    SY_RETURN_IF_ERROR(check_optional_int_table(op, "expert_map", a.expert_map, device));
    SY_RETURN_IF_ERROR(check_shape(op, "expert_map", a.expert_map, {P}));
    if (a.num_local_experts < 1) {
      return invalid_arg(op, "num_local_experts", a.num_local_experts,
                         ">= 1 when expert_map is given");
    }
  }

  SY_RETURN_IF_ERROR(check_tensor_basics(op, "top_k_weights", a.top_k_weights, device));
  SY_RETURN_IF_ERROR(check_dtype(op, "top_k_weights", a.top_k_weights, {DType::kFloat32}));
  SY_RETURN_IF_ERROR(check_shape(op, "top_k_weights", a.top_k_weights, {M, cols}));
  SY_RETURN_IF_ERROR(check_contiguous(op, "top_k_weights", a.top_k_weights));
  SY_RETURN_IF_ERROR(check_tensor_basics(op, "top_k_ids", a.top_k_ids, device));
  SY_RETURN_IF_ERROR(check_dtype(op, "top_k_ids", a.top_k_ids, {DType::kInt32, DType::kInt64}));
  SY_RETURN_IF_ERROR(check_shape(op, "top_k_ids", a.top_k_ids, {M, cols}));
  SY_RETURN_IF_ERROR(check_contiguous(op, "top_k_ids", a.top_k_ids));
  return Status::Ok();
}

}  // namespace switchyard
