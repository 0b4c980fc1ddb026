// float16 instance of GEMM1 and GEMM2 as one kernel (gemm_pair.cuh, grouped_gemm_sm90.cuh); a
// translation unit of its own so that it compiles beside the others.
#include "grouped_gemm_sm90.cuh"

namespace switchyard::detail {

Status grouped_gemm_pair_sm90_f16(const GroupedGemmArgs& gemm1, const GroupedGemmArgs& gemm2,
                                  void* workspace, cudaStream_t stream) {
  return sm90::run_pair<cutlass::half_t, fp16_t>(gemm1, gemm2, workspace, stream);
}

}  // namespace switchyard::detail
