// The host half of device_fill.h: the same values as the device fill, for a sub-range.
#include "../../src/common/dtype_convert.h"
#include "device_fill.h"
#include "device_fill_values.h"

namespace switchyard::tools {

std::vector<float> random_fill_values(DType dtype, std::size_t first, std::size_t count,
                                      float scale, std::uint64_t seed) {
  std::vector<float> v(count);
  for (std::size_t i = 0; i < count; ++i) {
    const float f = detail::fill_uniform(seed, first + i) * scale;
    if (dtype == DType::kBFloat16) {
      v[i] = switchyard::detail::to_float(
          switchyard::detail::from_float<switchyard::detail::bf16_t>(f));
    } else if (dtype == DType::kFloat16) {
      v[i] = switchyard::detail::to_float(
          switchyard::detail::from_float<switchyard::detail::fp16_t>(f));
    } else {
      v[i] = f;
    }
  }
  return v;
}

}  // namespace switchyard::tools
