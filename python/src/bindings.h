// The parts of the module, one per header of the library's API.
#pragma once

#include <nanobind/nanobind.h>

namespace switchyard::python {

void bind_routing(nanobind::module_& m);  // routing.h (+ route_and_align, model presets)
void bind_align(nanobind::module_& m);    // align.h: alignment, layouts, permute, combine
void bind_experts(nanobind::module_& m);  // experts.h: the fused expert forward

}  // namespace switchyard::python
