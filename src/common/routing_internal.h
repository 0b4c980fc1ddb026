// Internal routing entry points for tests and benchmarks (not part of the public API).
#pragma once

#include "switchyard/routing.h"

namespace switchyard::detail {

// route_cuda with the kernel layout forced by a layout code (src/cuda/heuristics/routing.h):
// 0 = the heuristic, v > 0 = lane groups with v experts per lane, -v = row blocks (one block per
// row) with v experts per thread. Every valid layout returns the same bits; tests check that, the
// bench uses it to tune.
Status route_cuda_layout(const RoutingParams& params, const RoutingArgs& args, int layout,
                         cudaStream_t stream);

}  // namespace switchyard::detail
