// Internal entry of combine_cuda for the fused pipeline (plain C++ header).
#pragma once

#include "switchyard/align.h"

namespace switchyard {

// combine_cuda, launched with programmatic dependent launch when `pdl` is set (kernels/pdl.cuh:
// the kernel waits for the previous one before it reads y). combine_cuda passes false.
Status combine_cuda_launch(const CombineParams& p, const CombineArgs& a, cudaStream_t stream,
                           bool pdl);

}  // namespace switchyard
