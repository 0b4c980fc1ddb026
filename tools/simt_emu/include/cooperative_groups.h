// Stub of CUDA's <cooperative_groups.h> for the SIMT emulator (cuda_emu.h): enough for
// kernels/align.cuh to parse on the host. The emulator runs blocks one after another, so a grid
// barrier cannot be emulated: calling it throws.
#pragma once
#include <stdexcept>

namespace cooperative_groups {
struct grid_group {
  void sync() { throw std::runtime_error("emulator: no grid barrier (cooperative launch)"); }
};
inline grid_group this_grid() {
  return {};
}
}  // namespace cooperative_groups
