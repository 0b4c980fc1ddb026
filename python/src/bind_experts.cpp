// The fused expert forward (experts.h): ExpertsParams, fused_experts, its workspace query.
#include <nanobind/stl/string.h>

#include <string>

#include "arrays.h"
#include "bindings.h"

namespace switchyard::python {

namespace {

constexpr Activation kActivations[] = {Activation::kSiluAndMul, Activation::kGeluErfAndMul,
                                       Activation::kGeluTanhAndMul, Activation::kSwigluOai,
                                       Activation::kRelu2};

Activation parse_activation(const std::string& value) {
  std::string names;
  for (Activation a : kActivations) {
    if (value == activation_name(a)) return a;
    names += (names.empty() ? "" : ", ") + std::string(activation_name(a));
  }
  throw_if_error(Status::InvalidArgument("ExpertsParams: activation = " + value +
                                         ": expected one of " + names));
  return Activation::kSiluAndMul;
}

void fused_experts(const ExpertsParams& params, const Array& x, const Array& w13, const Array& w2,
                   const Array& top_k_ids, const Array& top_k_weights, const Array& out,
                   const OptArray& b13, const OptArray& b2, const OptArray& expert_map,
                   const OptArray& workspace, std::uintptr_t stream) {
  ExpertsArgs a;
  a.x = to_view(x, "x");
  a.w13 = to_view(w13, "w13");
  a.w2 = to_view(w2, "w2");
  a.b13 = to_view(b13, "b13");
  a.b2 = to_view(b2, "b2");
  a.top_k_ids = to_view(top_k_ids, "top_k_ids");
  a.top_k_weights = to_view(top_k_weights, "top_k_weights");
  a.expert_map = to_view(expert_map, "expert_map");
  a.out = to_view(out, "out");
  const Workspace ws = to_workspace(workspace);
  Status st;
  {
    nb::gil_scoped_release release;
    st = device_of(a.x) == Device::kCuda
             ? fused_experts_cuda(params, a, ws.data, ws.bytes, to_stream(stream))
             : fused_experts_cpu(params, a);
  }
  throw_if_error(st);
}

void interleave_w13(const Array& src, const Array& dst, std::uintptr_t stream) {
  const TensorView s = to_view(src, "src"), d = to_view(dst, "dst");
  Status st;
  {
    nb::gil_scoped_release release;
    st = device_of(s) == Device::kCuda ? interleave_w13_cuda(s, d, to_stream(stream))
                                       : interleave_w13_cpu(s, d);
  }
  throw_if_error(st);
}

}  // namespace

void bind_experts(nb::module_& m) {
  nb::class_<ExpertsParams>(m, "ExpertsParams",
                            "Fused expert forward configuration (include/switchyard/experts.h).")
      .def(
          "__init__",
          [](ExpertsParams* p, std::int32_t num_experts, std::int32_t hidden_size,
             std::int32_t intermediate_size, const std::string& activation,
             bool apply_router_weight_on_input, float routed_scaling_factor, float swiglu_alpha,
             float swiglu_limit, bool w13_interleaved) {
            new (p) ExpertsParams{};
            p->num_experts = num_experts;
            p->hidden_size = hidden_size;
            p->intermediate_size = intermediate_size;
            p->activation = parse_activation(activation);
            p->apply_router_weight_on_input = apply_router_weight_on_input;
            p->routed_scaling_factor = routed_scaling_factor;
            p->swiglu_alpha = swiglu_alpha;
            p->swiglu_limit = swiglu_limit;
            p->w13_interleaved = w13_interleaved;
          },
          nb::arg("num_experts"), nb::arg("hidden_size"), nb::arg("intermediate_size"),
          nb::arg("activation") = "silu", nb::arg("apply_router_weight_on_input") = false,
          nb::arg("routed_scaling_factor") = 1.0f, nb::arg("swiglu_alpha") = 1.702f,
          nb::arg("swiglu_limit") = 7.0f, nb::arg("w13_interleaved") = false)
      .def_rw("num_experts", &ExpertsParams::num_experts)
      .def_rw("hidden_size", &ExpertsParams::hidden_size)
      .def_rw("intermediate_size", &ExpertsParams::intermediate_size)
      .def_prop_rw(
          "activation",
          [](const ExpertsParams& p) { return std::string(activation_name(p.activation)); },
          [](ExpertsParams& p, const std::string& v) { p.activation = parse_activation(v); })
      .def_rw("apply_router_weight_on_input", &ExpertsParams::apply_router_weight_on_input)
      .def_rw("routed_scaling_factor", &ExpertsParams::routed_scaling_factor)
      .def_rw("swiglu_alpha", &ExpertsParams::swiglu_alpha)
      .def_rw("swiglu_limit", &ExpertsParams::swiglu_limit)
      .def_rw("w13_interleaved", &ExpertsParams::w13_interleaved)
      .def("__repr__", [](const ExpertsParams& p) {
        return "ExpertsParams(num_experts=" + std::to_string(p.num_experts) +
               ", hidden_size=" + std::to_string(p.hidden_size) +
               ", intermediate_size=" + std::to_string(p.intermediate_size) + ", activation='" +
               activation_name(p.activation) + "', apply_router_weight_on_input=" +
               (p.apply_router_weight_on_input ? "True" : "False") +
               ", routed_scaling_factor=" + std::to_string(p.routed_scaling_factor) +
               ", w13_interleaved=" + (p.w13_interleaved ? "True" : "False") + ")";
      });

  m.def("fused_experts_workspace_size", &fused_experts_workspace_size, nb::arg("params"),
        nb::arg("num_tokens"), nb::arg("top_k"),
        "Bytes of workspace fused_experts needs on CUDA (0 in a build without CUDA).");
  m.def("fused_experts", &fused_experts, nb::arg("params"), nb::arg("x"), nb::arg("w13"),
        nb::arg("w2"), nb::arg("top_k_ids"), nb::arg("top_k_weights"), nb::arg("out"),
        nb::kw_only(), nb::arg("b13").none() = nb::none(), nb::arg("b2").none() = nb::none(),
        nb::arg("expert_map").none() = nb::none(), nb::arg("workspace").none() = nb::none(),
        nb::arg("stream") = 0, "fused_experts_cpu / _cuda into a caller-owned output.");
  m.def("interleave_w13", &interleave_w13, nb::arg("src"), nb::arg("dst"), nb::kw_only(),
        nb::arg("stream") = 0,
        "interleave_w13_cpu / _cuda: w13 [E, 2I, H] (or b13 [E, 2I]) from gate/up halves to "
        "interleaved rows, into dst.");
}

}  // namespace switchyard::python
