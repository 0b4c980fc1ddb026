// bfloat16 instances of the sm90a grouped GEMM (see grouped_gemm_sm90.cuh).
#include "grouped_gemm_sm90.cuh"

namespace switchyard::detail {

Status grouped_gemm_sm90_bf16(const GroupedGemmArgs& args, heuristics::GemmTile tile,
                              void* workspace, cudaStream_t stream) {
  if (args.gated != nullptr) {
    return sm90::dispatch_gated<cutlass::bfloat16_t, bf16_t>(args, tile, workspace, stream);
  }
  return sm90::dispatch<cutlass::bfloat16_t>(args, tile, workspace, stream);
}

}  // namespace switchyard::detail
