// Seeded random fills of device memory, generated on the device (model-sized weights in
// milliseconds), and the same values on the host for a sub-range (to check a sample on the CPU).
// Element i of a fill with `seed` is uniform in [-scale, scale), rounded to the dtype; the host
// and device draw identical values. Builds without CUDA: the device fill reports kUnsupported.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "switchyard/status.h"
#include "switchyard/tensor.h"

namespace switchyard::tools {

// Writes count elements of `dtype` (bfloat16, float16 or float32) at dst, then synchronises.
Status fill_device_random(void* dst, DType dtype, std::size_t count, float scale,
                          std::uint64_t seed);
// Elements [first, first + count) of the same fill, as floats (already rounded to dtype).
std::vector<float> random_fill_values(DType dtype, std::size_t first, std::size_t count,
                                      float scale, std::uint64_t seed);

}  // namespace switchyard::tools
