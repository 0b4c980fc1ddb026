// permute_cuda / combine_cuda: validate -> configure -> launch (no allocation, no host sync).
// permute_cuda takes the token-major kernel when src_to_dst is given (each x row read once), the
// row-major one otherwise; both are one launch and give the same bytes.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "../../common/align_check.h"
#include "../../common/check.h"
#include "../cuda_status.h"
#include "../kernels/permute_combine.cuh"
#include "pdl_launch.h"
#include "permute_combine_internal.h"
#include "switchyard/align.h"

namespace switchyard {

namespace {

constexpr std::int64_t kMaxBlocks = 1 << 20;  // rows beyond this are covered by the grid stride
constexpr std::int64_t kCombineTargetBlocks = 512;  // ~4 blocks per SM of an H100/H200

bool aligned16(const void* p) {
  return (reinterpret_cast<std::uintptr_t>(p) & 15u) == 0;
}

// 16-byte accesses are safe when every row of `in` and `out` starts 16-byte aligned.
bool rows_vec_ok(const TensorView& in, const TensorView& out) {
  const std::size_t esz = dtype_size(in.dtype);
  const std::size_t row_bytes = static_cast<std::size_t>(in.size(1)) * esz;
  const std::size_t stride_bytes =
      static_cast<std::size_t>(in.size(0) > 1 ? in.stride(0) : in.size(1)) * esz;
  return row_bytes % 16 == 0 && stride_bytes % 16 == 0 && aligned16(in.data) && aligned16(out.data);
}

template <typename T>
void launch_permute(const PermuteArgs& a, bool vec_ok, cudaStream_t stream) {
  const std::int64_t rows = a.dst_to_src.numel(), hidden = a.x.size(1);
  const std::int64_t x_stride = a.x.size(0) > 1 ? a.x.stride(0) : hidden;
  const auto blocks = static_cast<unsigned>(std::min(rows, kMaxBlocks));
  kernels::permute_kernel<T><<<blocks, kernels::kPermuteThreads, 0, stream>>>(
      static_cast<const T*>(a.x.data), x_stride,
      static_cast<const std::int64_t*>(a.dst_to_src.data), rows, hidden, a.top_k,
      a.x.size(0) * a.top_k, static_cast<T*>(a.out.data), vec_ok);
}

// Token-major: zero blocks first (one per kPermuteZeroRows layout rows), then one block per
// token; each part capped at kMaxBlocks and grid-strided past it.
template <typename T>
void launch_permute_token_major(const PermuteArgs& a, bool vec_ok, cudaStream_t stream) {
  const std::int64_t rows = a.dst_to_src.numel(), tokens = a.x.size(0), hidden = a.x.size(1);
  const std::int64_t x_stride = tokens > 1 ? a.x.stride(0) : hidden;
  const auto zero_blocks = static_cast<unsigned>(
      std::min((rows + kernels::kPermuteZeroRows - 1) / kernels::kPermuteZeroRows, kMaxBlocks));
  const auto token_blocks = static_cast<unsigned>(std::min(tokens, kMaxBlocks));
  kernels::permute_token_major_kernel<T>
      <<<zero_blocks + token_blocks, kernels::kPermuteThreads, 0, stream>>>(
          static_cast<const T*>(a.x.data), x_stride,
          static_cast<const std::int64_t*>(a.src_to_dst.data),
          static_cast<const std::int64_t*>(a.dst_to_src.data), tokens, a.top_k, rows, hidden,
          static_cast<T*>(a.out.data), vec_ok, zero_blocks);
}

// An absent src_to_dst / top_k_weights is a null pointer: the kernel instance that takes the
// identity row t*K + k / weight 1 (an empty given one may be null too: no entry is read then).
template <typename T>
void launch_combine(const CombineParams& p, const CombineArgs& a, bool vec_ok, cudaStream_t stream,
                    bool pdl) {
  const std::int64_t tokens = a.out.size(0), hidden = a.out.size(1);
  const std::int64_t y_stride = a.y.size(0) > 1 ? a.y.stride(0) : hidden;
  const auto blocks = static_cast<unsigned>(std::min(tokens, kMaxBlocks));
  // Few tokens (decode): split each row into column pieces of at least one vector per thread, up
  // to about kCombineTargetBlocks blocks in all (one block per token from that many tokens on).
  const std::int64_t units = vec_ok ? hidden / (16 / static_cast<std::int64_t>(sizeof(T))) : hidden;
  const std::int64_t max_pieces = std::max<std::int64_t>(1, units / kernels::kPermuteThreads);
  const std::int64_t pieces = std::clamp<std::int64_t>(
      (kCombineTargetBlocks + tokens - 1) / std::max<std::int64_t>(tokens, 1), 1, max_pieces);
  // A launch error is picked up by the caller's cudaGetLastError().
  const auto* map = static_cast<const std::int64_t*>(a.src_to_dst.data);
  const auto* weights = static_cast<const float*>(a.top_k_weights.data);
  (void)detail::launch_maybe_pdl(
      kernels::combine_kernel_for<T>(map, weights), dim3(blocks, static_cast<unsigned>(pieces)),
      dim3(kernels::kPermuteThreads), stream, pdl, static_cast<const T*>(a.y.data), y_stride,
      a.y.size(0), map, weights, tokens, static_cast<int>(detail::combine_top_k(a)), hidden,
      p.routed_scaling_factor, static_cast<T*>(a.out.data), vec_ok);
}

template <template <typename> class Launch, typename... Args>
void dispatch(DType dtype, Args&&... args) {
  if (dtype == DType::kFloat32) {
    Launch<float>::run(args...);
  } else if (dtype == DType::kBFloat16) {
    Launch<detail::bf16_t>::run(args...);
  } else {
    Launch<detail::fp16_t>::run(args...);
  }
}
template <typename T>
struct PermuteLaunch {
  static void run(const PermuteArgs& a, bool v, cudaStream_t s) {
    if (a.src_to_dst.defined()) {
      launch_permute_token_major<T>(a, v, s);
    } else {
      launch_permute<T>(a, v, s);
    }
  }
};
template <typename T>
struct CombineLaunch {
  static void run(const CombineParams& p, const CombineArgs& a, bool v, cudaStream_t s, bool pdl) {
    launch_combine<T>(p, a, v, s, pdl);
  }
};

}  // namespace

Status permute_cuda(const PermuteArgs& a, cudaStream_t stream) {
  SY_RETURN_IF_ERROR(detail::permute_check("permute_cuda", a, Device::kCuda));
  if (a.dst_to_src.numel() == 0 || a.x.size(1) == 0) return Status::Ok();
  dispatch<PermuteLaunch>(a.x.dtype, a, rows_vec_ok(a.x, a.out), stream);
  return detail::cuda_status(cudaGetLastError(), "permute_cuda: kernel launch");
}

Status combine_cuda_launch(const CombineParams& p, const CombineArgs& a, cudaStream_t stream,
                           bool pdl) {
  SY_RETURN_IF_ERROR(detail::combine_check("combine_cuda", p, a, Device::kCuda));
  if (a.out.numel() == 0) return Status::Ok();
  dispatch<CombineLaunch>(a.y.dtype, p, a, rows_vec_ok(a.y, a.out), stream, pdl);
  return detail::cuda_status(cudaGetLastError(), "combine_cuda: kernel launch");
}

Status combine_cuda(const CombineParams& p, const CombineArgs& a, cudaStream_t stream) {
  return combine_cuda_launch(p, a, stream, false);
}

}  // namespace switchyard
