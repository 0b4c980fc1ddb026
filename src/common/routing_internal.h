// Internal routing entry points for tests and benchmarks (not part of the public API).
#pragma once

#include "switchyard/routing.h"

namespace switchyard::detail {

// route_cuda with the kernel layout forced to `vals_per_lane` experts per lane (0: heuristic).
// Every valid layout returns the same bits; tests check that, the bench uses it to tune.
Status route_cuda_layout(const RoutingParams& params, const RoutingArgs& args, int vals_per_lane,
                         cudaStream_t stream);

}  // namespace switchyard::detail
