// Routing: RoutingParams, route, route_and_align, workspace queries, model presets.
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <string>
#include <vector>

#include "arrays.h"
#include "bindings.h"

namespace switchyard::python {

namespace {

constexpr ScoreFunc kScoreFuncs[] = {ScoreFunc::kSoftmax, ScoreFunc::kSigmoid,
                                     ScoreFunc::kSqrtSoftplus, ScoreFunc::kTopkThenSoftmax,
                                     ScoreFunc::kTopkThenSigmoid};
constexpr GroupScore kGroupScores[] = {GroupScore::kNone, GroupScore::kMax, GroupScore::kTop2Sum};

// "softmax" -> ScoreFunc::kSoftmax, using the library's own names.
template <typename Enum, std::size_t N>
Enum parse_name(const std::string& value, const Enum (&all)[N], const char* (*name)(Enum),
                const char* arg) {
  std::string names;
  for (Enum e : all) {
    if (value == name(e)) return e;
    names += (names.empty() ? "" : ", ") + std::string(name(e));
  }
  throw_if_error(Status::InvalidArgument(std::string("RoutingParams: ") + arg + " = " + value +
                                         ": expected one of " + names));
  return all[0];
}

std::string params_repr(const RoutingParams& p) {
  return "RoutingParams(num_experts=" + std::to_string(p.num_experts) +
         ", top_k=" + std::to_string(p.top_k) +
         ", num_shared_experts=" + std::to_string(p.num_shared_experts) + ", score_func='" +
         score_func_name(p.score_func) + "', group_score='" + group_score_name(p.group_score) +
         "', num_groups=" + std::to_string(p.num_groups) +
         ", topk_groups=" + std::to_string(p.topk_groups) +
         ", renormalize=" + (p.renormalize ? "True" : "False") +
         ", routed_scaling_factor=" + std::to_string(p.routed_scaling_factor) +
         ", apply_rsf_on_output=" + (p.apply_rsf_on_output ? "True" : "False") +
         ", softcap=" + std::to_string(p.softcap) + ")";
}

struct RoutingExtras {
  TensorView bias, num_tokens_non_padded, placement, replica_counts, expert_map;
  std::int32_t num_physical_experts = 0, num_local_experts = 0;
};

RoutingArgs routing_args(const Array& logits, const Array& top_k_weights, const Array& top_k_ids,
                         const RoutingExtras& extras) {
  RoutingArgs a;
  a.logits = to_view(logits, "logits");
  a.top_k_weights = to_view(top_k_weights, "top_k_weights");
  a.top_k_ids = to_view(top_k_ids, "top_k_ids");
  a.bias = extras.bias;
  a.num_tokens_non_padded = extras.num_tokens_non_padded;
  a.placement = extras.placement;
  a.replica_counts = extras.replica_counts;
  a.num_physical_experts = extras.num_physical_experts;
  a.expert_map = extras.expert_map;
  a.num_local_experts = extras.num_local_experts;
  return a;
}

void route(const RoutingParams& params, const Array& logits, const Array& top_k_weights,
           const Array& top_k_ids, const OptArray& bias, const OptArray& num_tokens_non_padded,
           const OptArray& placement, const OptArray& replica_counts,
           std::int32_t num_physical_experts, const OptArray& expert_map,
           std::int32_t num_local_experts, const OptArray& workspace, std::uintptr_t stream) {
  const RoutingExtras extras{to_view(bias, "bias"),
                             to_view(num_tokens_non_padded, "num_tokens_non_padded"),
                             to_view(placement, "placement"),
                             to_view(replica_counts, "replica_counts"),
                             to_view(expert_map, "expert_map"),
                             num_physical_experts,
                             num_local_experts};
  const RoutingArgs args = routing_args(logits, top_k_weights, top_k_ids, extras);
  const Workspace ws = to_workspace(workspace);
  Status st;
  {
    nb::gil_scoped_release release;
    st = device_of(args.logits) == Device::kCuda
             ? route_cuda(params, args, ws.data, ws.bytes, to_stream(stream))
             : route_cpu(params, args);
  }
  throw_if_error(st);
}

void route_and_align(const RoutingParams& params, std::int32_t block_size, const Array& logits,
                     const Array& top_k_weights, const Array& top_k_ids,
                     const Array& sorted_token_ids, const Array& expert_ids,
                     const Array& num_tokens_post_pad, const OptArray& bias,
                     const OptArray& num_tokens_non_padded, const OptArray& workspace,
                     std::uintptr_t stream) {
  RoutingExtras extras;
  extras.bias = to_view(bias, "bias");
  extras.num_tokens_non_padded = to_view(num_tokens_non_padded, "num_tokens_non_padded");
  const RoutingArgs args = routing_args(logits, top_k_weights, top_k_ids, extras);
  const AlignParams align{params.num_experts, block_size};
  AlignArgs align_args;
  align_args.sorted_token_ids = to_view(sorted_token_ids, "sorted_token_ids");
  align_args.expert_ids = to_view(expert_ids, "expert_ids");
  align_args.num_tokens_post_pad = to_view(num_tokens_post_pad, "num_tokens_post_pad");
  const Workspace ws = to_workspace(workspace);
  Status st;
  {
    nb::gil_scoped_release release;
    st = device_of(args.logits) == Device::kCuda
             ? route_and_align_cuda(params, args, align, align_args, ws.data, ws.bytes,
                                    to_stream(stream))
             : route_and_align_cpu(params, args, align, align_args);
  }
  throw_if_error(st);
}

nb::dict preset_dict(const ModelPreset& p) {
  nb::dict d;
  d["name"] = p.name;
  d["hidden_size"] = p.hidden_size;
  d["intermediate_size"] = p.intermediate_size;
  d["num_shared_experts"] = p.num_shared_experts;
  d["routing"] = p.routing;
  d["has_bias"] = p.has_bias;
  d["activation"] = std::string(activation_name(p.activation));
  d["shared_intermediate_size"] = p.shared_intermediate_size;
  d["router_weight_on_input"] = p.router_weight_on_input;
  return d;
}

}  // namespace

void bind_routing(nb::module_& m) {
  nb::class_<RoutingParams>(m, "RoutingParams",
                            "Routing configuration (include/switchyard/routing.h): the router's "
                            "score function, grouping, top-k, shared experts and scaling.")
      .def(
          "__init__",
          [](RoutingParams* p, std::int32_t num_experts, std::int32_t top_k,
             std::int32_t num_shared_experts, const std::string& score_func,
             const std::string& group_score, std::int32_t num_groups, std::int32_t topk_groups,
             bool renormalize, float routed_scaling_factor, bool apply_rsf_on_output,
             float softcap) {
            new (p) RoutingParams{};
            p->num_experts = num_experts;
            p->top_k = top_k;
            p->num_shared_experts = num_shared_experts;
            p->score_func = parse_name(score_func, kScoreFuncs, score_func_name, "score_func");
            p->group_score = parse_name(group_score, kGroupScores, group_score_name, "group_score");
            p->num_groups = num_groups;
            p->topk_groups = topk_groups;
            p->renormalize = renormalize;
            p->routed_scaling_factor = routed_scaling_factor;
            p->apply_rsf_on_output = apply_rsf_on_output;
            p->softcap = softcap;
          },
          nb::arg("num_experts"), nb::arg("top_k"), nb::arg("num_shared_experts") = 0,
          nb::arg("score_func") = "softmax", nb::arg("group_score") = "none",
          nb::arg("num_groups") = 1, nb::arg("topk_groups") = 1, nb::arg("renormalize") = false,
          nb::arg("routed_scaling_factor") = 1.0f, nb::arg("apply_rsf_on_output") = false,
          nb::arg("softcap") = 0.0f)
      .def_rw("num_experts", &RoutingParams::num_experts)
      .def_rw("top_k", &RoutingParams::top_k)
      .def_rw("num_shared_experts", &RoutingParams::num_shared_experts)
      .def_prop_rw(
          "score_func",
          [](const RoutingParams& p) { return std::string(score_func_name(p.score_func)); },
          [](RoutingParams& p, const std::string& v) {
            p.score_func = parse_name(v, kScoreFuncs, score_func_name, "score_func");
          })
      .def_prop_rw(
          "group_score",
          [](const RoutingParams& p) { return std::string(group_score_name(p.group_score)); },
          [](RoutingParams& p, const std::string& v) {
            p.group_score = parse_name(v, kGroupScores, group_score_name, "group_score");
          })
      .def_rw("num_groups", &RoutingParams::num_groups)
      .def_rw("topk_groups", &RoutingParams::topk_groups)
      .def_rw("renormalize", &RoutingParams::renormalize)
      .def_rw("routed_scaling_factor", &RoutingParams::routed_scaling_factor)
      .def_rw("apply_rsf_on_output", &RoutingParams::apply_rsf_on_output)
      .def_rw("softcap", &RoutingParams::softcap)
      .def("__repr__", &params_repr);

  m.attr("score_funcs") = [] {
    std::vector<std::string> v;
    for (ScoreFunc f : kScoreFuncs) v.emplace_back(score_func_name(f));
    return v;
  }();
  m.attr("MAX_ROUTING_EXPERTS") = kMaxRoutingExperts;
  m.attr("MAX_ROUTING_COLUMNS") = kMaxRoutingColumns;
  m.attr("MAX_ROUTING_GROUPS") = kMaxRoutingGroups;

  m.def("routing_workspace_size", &routing_workspace_size, nb::arg("params"), nb::arg("num_tokens"),
        "Bytes of workspace route() needs on CUDA (always 0).");
  m.def(
      "route_and_align_workspace_size",
      [](const RoutingParams& p, std::int32_t block_size, std::int64_t num_tokens) {
        return route_and_align_workspace_size(p, AlignParams{p.num_experts, block_size},
                                              num_tokens);
      },
      nb::arg("params"), nb::arg("block_size"), nb::arg("num_tokens"));

  m.def("route", &route, nb::arg("params"), nb::arg("logits"), nb::arg("top_k_weights"),
        nb::arg("top_k_ids"), nb::kw_only(), nb::arg("bias").none() = nb::none(),
        nb::arg("num_tokens_non_padded").none() = nb::none(),
        nb::arg("placement").none() = nb::none(), nb::arg("replica_counts").none() = nb::none(),
        nb::arg("num_physical_experts") = 0, nb::arg("expert_map").none() = nb::none(),
        nb::arg("num_local_experts") = 0, nb::arg("workspace").none() = nb::none(),
        nb::arg("stream") = 0,
        "route_cpu / route_cuda (chosen by the device of logits) into caller-owned outputs.");
  m.def("route_and_align", &route_and_align, nb::arg("params"), nb::arg("block_size"),
        nb::arg("logits"), nb::arg("top_k_weights"), nb::arg("top_k_ids"),
        nb::arg("sorted_token_ids"), nb::arg("expert_ids"), nb::arg("num_tokens_post_pad"),
        nb::kw_only(), nb::arg("bias").none() = nb::none(),
        nb::arg("num_tokens_non_padded").none() = nb::none(),
        nb::arg("workspace").none() = nb::none(), nb::arg("stream") = 0,
        "route_and_align_cpu / route_and_align_cuda into caller-owned outputs.");

  m.def(
      "model_preset_names",
      [] {
        std::vector<std::string> names;
        for (const ModelPreset& p : model_presets()) names.push_back(p.name);
        return names;
      },
      "Names of the model presets (SEMANTICS.md section 6).");
  m.def(
      "model_preset",
      [](const std::string& name) {
        const ModelPreset* p = find_model_preset(name);
        if (p == nullptr) {
          throw_if_error(Status::InvalidArgument("model_preset: name = " + name +
                                                 ": expected one of " + model_preset_names()));
        }
        return preset_dict(*p);
      },
      nb::arg("name"), "A model preset as a dict (shapes, RoutingParams, activation).");
}

}  // namespace switchyard::python
