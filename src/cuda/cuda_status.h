// cudaError_t -> Status.
#pragma once

#include <cuda_runtime.h>

#include <string>

#include "switchyard/status.h"

namespace switchyard::detail {

inline Status cuda_status(cudaError_t err, const char* what) {
  if (err == cudaSuccess) return Status::Ok();
  return Status::CudaError(std::string(what) + ": " + cudaGetErrorName(err) + " (" +
                           cudaGetErrorString(err) + ")");
}

}  // namespace switchyard::detail
