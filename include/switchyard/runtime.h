// What this build and machine can run.
#pragma once

#include <string>

namespace switchyard {

// True when the library was compiled with the CUDA backend.
bool built_with_cuda();
// True when built with CUDA and at least one CUDA device is visible. Never fails: a missing
// driver or device answers false.
bool cuda_device_available();
// "NVIDIA H100 80GB HBM3 (sm_90, 132 SMs)", or "" without a device.
std::string cuda_device_description();

}  // namespace switchyard
