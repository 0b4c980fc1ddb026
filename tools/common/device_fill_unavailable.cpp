// device_fill.h in a build without CUDA: the device fill reports kUnsupported.
#include "device_fill.h"

namespace switchyard::tools {

Status fill_device_random(void*, DType, std::size_t, float, std::uint64_t) {
  return Status::Unsupported("fill_device_random: this build has no CUDA backend");
}

}  // namespace switchyard::tools
