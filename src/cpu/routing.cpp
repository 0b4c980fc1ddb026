// CPU backend of routing: the oracle the CUDA kernel is tested against, and a usable backend.
//
// It computes each row with the canonical math of src/common/routing_row.h (exact selection,
// pairwise tree sums, exact_math.h scores), as the CUDA kernel does in every launch layout: the
// two backends agree bit for bit.
#include <algorithm>
#include <array>
#include <cstdint>
#include <vector>

#include "../common/check.h"
#include "../common/dtype_convert.h"
#include "../common/routing_kernel_params.h"
#include "../common/routing_row.h"
#include "parallel.h"
#include "switchyard/routing.h"

namespace switchyard {
namespace {

using namespace detail;

// Sum of the K slot values as the pairwise tree over kRoutingSlotLeaves zero-padded leaves.
float slot_sum(const std::array<float, kRoutingSlotLeaves>& w) {
  std::array<float, kRoutingSlotLeaves> v = w;
  return pairwise_sum(v.data(), kRoutingSlotLeaves);
}

struct RowScratch {
  std::vector<float> key;
  std::vector<std::uint32_t> ord;
  std::vector<float> terms;  // next_pow2(E) softmax leaves
};

// Indices of the `count` best candidates among ord[0..n) (0 = not selectable), best first.
void select_top(const std::uint32_t* ord, int n, int count, std::uint64_t* best) {
  int filled = 0;
  for (int e = 0; e < n; ++e) {
    if (ord[e] == 0) continue;
    const std::uint64_t c = candidate(ord[e], e);
    if (filled == count && c <= best[count - 1]) continue;
    int pos = filled < count ? filled++ : count - 1;
    while (pos > 0 && best[pos - 1] < c) {
      best[pos] = best[pos - 1];
      --pos;
    }
    best[pos] = c;
  }
  for (int i = filled; i < count; ++i) best[i] = 0;  // unreachable after routing_check
}

// Keeps the topk_groups best groups; clears ord of the experts of the others.
void drop_groups(const RoutingParams& p, std::uint32_t* ord) {
  const int group_size = p.num_experts / p.num_groups;
  std::array<std::uint64_t, kMaxRoutingGroups> group_cand{};
  for (int g = 0; g < p.num_groups; ++g) {
    std::uint32_t best = 0, second = 0;
    for (int e = g * group_size; e < (g + 1) * group_size; ++e) top2_insert(best, second, ord[e]);
    group_cand[static_cast<std::size_t>(g)] =
        candidate(order_key(group_score_value(p.group_score, best, second)), g);
  }
  std::uint32_t kept = 0;
  for (int r = 0; r < p.topk_groups; ++r) {
    std::uint64_t c = 0;
    for (int g = 0; g < p.num_groups; ++g) {
      if (!((kept >> g) & 1u) && group_cand[static_cast<std::size_t>(g)] > c) {
        c = group_cand[static_cast<std::size_t>(g)];
      }
    }
    kept |= 1u << candidate_expert(c);
  }
  for (int e = 0; e < p.num_experts; ++e) {
    if (!((kept >> (e / group_size)) & 1u)) ord[e] = 0;
  }
}

template <typename T, typename IdT>
void route_row(const RoutingKernelParams& kp, std::int64_t row, std::int64_t non_padded,
               RowScratch& s) {
  const RoutingParams& p = kp.p;
  const int E = p.num_experts, K = p.top_k, S = p.num_shared_experts, cols = K + S;
  float* out_w = kp.weights + row * cols;
  IdT* out_id = static_cast<IdT*>(kp.ids) + row * cols;
  if (row >= non_padded) {
    for (int c = 0; c < cols; ++c) {
      out_w[c] = 0.0f;
      out_id[c] = IdT(-1);
    }
    return;
  }
  const T* x = static_cast<const T*>(kp.logits) + row * kp.row_stride;

  bool any_finite = false;
  for (int e = 0; e < E; ++e) {
    const float raw = to_float(x[e]);
    any_finite = any_finite || is_finite(raw);
    s.key[static_cast<std::size_t>(e)] = routing_key(p, raw, kp.bias ? kp.bias[e] : 0.0f);
    s.ord[static_cast<std::size_t>(e)] = order_key(s.key[static_cast<std::size_t>(e)]);
  }

  float max_key = neg_inf(), softmax_sum = 0.0f;
  if (p.score_func == ScoreFunc::kSoftmax) {
    for (int e = 0; e < E; ++e)
      max_key = max_ignore_nan(max_key, s.key[static_cast<std::size_t>(e)]);
    std::fill(s.terms.begin(), s.terms.end(), 0.0f);
    for (int e = 0; e < E; ++e) {
      s.terms[static_cast<std::size_t>(e)] =
          softmax_term(s.key[static_cast<std::size_t>(e)], max_key);
    }
    softmax_sum = pairwise_sum(s.terms.data(), static_cast<int>(s.terms.size()));
  }
  if (p.group_score != GroupScore::kNone) drop_groups(p, s.ord.data());

  std::array<std::uint64_t, kMaxRoutingColumns> best{};
  select_top(s.ord.data(), E, K, best.data());

  std::array<float, kRoutingSlotLeaves> w{};  // leaf k = output column k
  std::array<int, kMaxRoutingColumns> sel{};
  const float top_key = order_key_value(candidate_order(best[0]));
  const float softmax_top = is_nan(top_key) ? neg_inf() : top_key;
  for (int k = 0; k < K; ++k) {
    const auto ks = static_cast<std::size_t>(k);
    if (!any_finite) {
      sel[ks] = k;
      w[ks] = 0.0f;
      continue;
    }
    sel[ks] = candidate_expert(best[ks]);
    const float key = order_key_value(candidate_order(best[ks]));
    float wk = 0.0f;
    switch (p.score_func) {
      case ScoreFunc::kSoftmax:
        wk = safe_div(softmax_term(key, max_key), softmax_sum);
        break;
      case ScoreFunc::kSigmoid:
      case ScoreFunc::kSqrtSoftplus:
        wk = routing_score(p.score_func, softcapped(to_float(x[sel[ks]]), p.softcap));
        break;
      case ScoreFunc::kTopkThenSoftmax:
        wk = softmax_term(key, softmax_top);  // normalised below
        break;
      case ScoreFunc::kTopkThenSigmoid:
        wk = sigmoid_f(key);
        break;
    }
    w[ks] = nan_to_zero(wk);
  }
  if (p.score_func == ScoreFunc::kTopkThenSoftmax) {
    const float sum = slot_sum(w);
    for (int k = 0; k < K; ++k)
      w[static_cast<std::size_t>(k)] = safe_div(w[static_cast<std::size_t>(k)], sum);
  }
  if (p.renormalize) {
    float sum = slot_sum(w);
    if (sum == pos_inf()) {
      for (int k = 0; k < K; ++k) {
        w[static_cast<std::size_t>(k)] = w[static_cast<std::size_t>(k)] == pos_inf() ? 1.0f : 0.0f;
      }
      sum = slot_sum(w);
    }
    if (sum > 0.0f) {
      for (int k = 0; k < K; ++k)
        w[static_cast<std::size_t>(k)] = div_f(w[static_cast<std::size_t>(k)], sum);
    }
  }
  const float routed_sum = S > 0 ? slot_sum(w) : 0.0f;
  const float rsf = p.routed_scaling_factor;
  for (int k = 0; k < K; ++k) {
    const auto ks = static_cast<std::size_t>(k);
    out_w[k] = p.apply_rsf_on_output ? w[ks] * rsf : w[ks];
    out_id[k] = static_cast<IdT>(map_routed_id(kp, sel[ks], row, k));
  }
  const float shared_w = p.apply_rsf_on_output ? routed_sum : div_f(routed_sum, rsf);
  for (int i = 0; i < S; ++i) {
    out_w[K + i] = shared_w;
    out_id[K + i] = static_cast<IdT>(shared_expert_id(kp, i));
  }
}

template <typename T, typename IdT>
void route_all(const RoutingKernelParams& kp) {
  const std::int64_t M = kp.num_tokens;
  std::int64_t non_padded = M;
  if (kp.num_tokens_non_padded) non_padded = *kp.num_tokens_non_padded;
  const std::int64_t rows_per_thread = std::max<std::int64_t>(64, 65536 / kp.p.num_experts);
  parallel_for(M, rows_per_thread, [&](std::int64_t begin, std::int64_t end) {
    const auto E = static_cast<std::size_t>(kp.p.num_experts);
    RowScratch scratch{
        std::vector<float>(E), std::vector<std::uint32_t>(E),
        std::vector<float>(static_cast<std::size_t>(routing_row_capacity(kp.p.num_experts)))};
    for (std::int64_t row = begin; row < end; ++row) {
      route_row<T, IdT>(kp, row, non_padded, scratch);
    }
  });
}

template <typename T>
void route_dispatch_ids(const RoutingKernelParams& kp, DType id_dtype) {
  if (id_dtype == DType::kInt64) {
    route_all<T, std::int64_t>(kp);
  } else {
    route_all<T, std::int32_t>(kp);
  }
}

}  // namespace

Status route_cpu(const RoutingParams& params, const RoutingArgs& args) {
  SY_RETURN_IF_ERROR(routing_check(params, args, Device::kCpu));
  const RoutingKernelParams kp = make_routing_kernel_params(params, args);
  switch (args.logits.dtype) {
    case DType::kFloat32:
      route_dispatch_ids<float>(kp, args.top_k_ids.dtype);
      break;
    case DType::kBFloat16:
      route_dispatch_ids<bf16_t>(kp, args.top_k_ids.dtype);
      break;
    case DType::kFloat16:
      route_dispatch_ids<fp16_t>(kp, args.top_k_ids.dtype);
      break;
    default:
      return Status::Internal("route_cpu: logits dtype passed validation but has no kernel");
  }
  return Status::Ok();
}

}  // namespace switchyard
