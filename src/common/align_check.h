// Host-side validation shared by the CPU and CUDA permute / combine (shapes, dtypes, devices).
// Map contents live in device memory on CUDA, so they are checked there by the kernels (an entry
// out of range reads nothing and counts as -1), and on the CPU by the backend (an error).
#pragma once

#include "switchyard/align.h"

namespace switchyard::detail {

Status permute_check(const char* op, const PermuteArgs& args, Device device);
Status combine_check(const char* op, const CombineParams& params, const CombineArgs& args,
                     Device device);

}  // namespace switchyard::detail
