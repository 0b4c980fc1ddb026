// The card's dense GEMM ceiling: cuBLAS bf16 x bf16 -> bf16 (float32 accumulation) at n^3,
// median of timed calls. Only the CLI links cuBLAS (the library never does).
#pragma once

#include "switchyard/status.h"

namespace switchyard::cli {

struct GemmCeiling {
  int n = 0;
  double median_ms = 0;
  double tflops = 0;  // 2 n^3 / median time
};

// Builds without CUDA (or without cuBLAS) return kUnsupported.
Status measure_gemm_ceiling(int n, GemmCeiling* out);

}  // namespace switchyard::cli
