// The value generator shared by device_fill.cu (device) and device_fill_host.cpp (host).
#pragma once

#include <cstdint>

#include "../../src/common/host_device.h"

namespace switchyard::tools::detail {

// Uniform in [-1, 1) from (seed, index): splitmix64 of their combination, top 24 bits.
SY_HD float fill_uniform(std::uint64_t seed, std::uint64_t i) {
  std::uint64_t z = seed + (i + 1) * 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return static_cast<float>(static_cast<std::int32_t>(z >> 40) - (1 << 23)) * 0x1.0p-23f;
}

}  // namespace switchyard::tools::detail
