// CPU backend of alignment, expert layouts, permute and combine: the oracle for the CUDA kernels.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "../common/align_check.h"
#include "../common/align_internal.h"
#include "../common/check.h"
#include "../common/dtype_convert.h"
#include "../common/exact_math.h"
#include "parallel.h"
#include "switchyard/align.h"

namespace switchyard {
namespace {

using detail::invalid_arg;

std::int64_t read_index(const TensorView& t, std::int64_t i) {
  if (t.dtype == DType::kInt64) return static_cast<const std::int64_t*>(t.data)[i];
  return static_cast<const std::int32_t*>(t.data)[i];
}

// Local expert of every slot, or -1 when the slot is dropped.
std::vector<std::int32_t> slot_experts(const TensorView& ids, const TensorView& expert_map,
                                       std::int32_t E) {
  const std::int64_t n = ids.numel();
  const std::int64_t map_size = expert_map.defined() ? expert_map.numel() : 0;
  const auto* map = static_cast<const std::int32_t*>(expert_map.data);
  std::vector<std::int32_t> out(static_cast<std::size_t>(n));
  for (std::int64_t s = 0; s < n; ++s) {
    std::int64_t e = read_index(ids, s);
    if (map) e = (e >= 0 && e < map_size) ? map[e] : -1;
    out[static_cast<std::size_t>(s)] = (e >= 0 && e < E) ? static_cast<std::int32_t>(e) : -1;
  }
  return out;
}

}  // namespace

std::int64_t align_max_padded(std::int64_t num_slots, std::int32_t num_experts,
                              std::int32_t block_size) {
  return num_slots + static_cast<std::int64_t>(num_experts) * (block_size - 1);
}
std::int64_t align_max_blocks(std::int64_t num_slots, std::int32_t num_experts,
                              std::int32_t block_size) {
  return (align_max_padded(num_slots, num_experts, block_size) + block_size - 1) / block_size;
}

std::size_t align_workspace_size(const AlignParams& p, std::int64_t) {
  return detail::sort_workspace_bytes(p.num_experts);
}
std::size_t expert_layout_workspace_size(const ExpertLayoutParams& p, std::int64_t) {
  return detail::sort_workspace_bytes(p.num_experts);
}

Status moe_align_block_size_cpu(const AlignParams& p, const AlignArgs& a) {
  SY_RETURN_IF_ERROR(detail::align_check("moe_align_block_size_cpu", p, a, Device::kCpu,
                                         detail::kMaxCpuAlignExperts));
  const std::int64_t slots = a.top_k_ids.numel();
  const std::int32_t E = p.num_experts, B = p.block_size;
  const std::vector<std::int32_t> expert = slot_experts(a.top_k_ids, a.expert_map, E);
  std::vector<std::int64_t> cursor(static_cast<std::size_t>(E) + 1, 0);
  for (std::int32_t e : expert) {
    if (e >= 0) ++cursor[static_cast<std::size_t>(e) + 1];
  }
  for (std::int32_t e = 0; e < E; ++e) {  // counts -> padded exclusive offsets
    const std::int64_t padded = (cursor[static_cast<std::size_t>(e) + 1] + B - 1) / B * B;
    cursor[static_cast<std::size_t>(e) + 1] = cursor[static_cast<std::size_t>(e)] + padded;
  }
  const std::int64_t total = cursor[static_cast<std::size_t>(E)];
  auto* sorted = static_cast<std::int32_t*>(a.sorted_token_ids.data);
  auto* block_expert = static_cast<std::int32_t*>(a.expert_ids.data);
  std::fill(sorted, sorted + a.sorted_token_ids.numel(), static_cast<std::int32_t>(slots));
  std::fill(block_expert, block_expert + a.expert_ids.numel(), -1);
  for (std::int32_t e = 0; e < E; ++e) {
    for (std::int64_t b = cursor[static_cast<std::size_t>(e)] / B;
         b < cursor[static_cast<std::size_t>(e) + 1] / B; ++b) {
      block_expert[b] = e;
    }
  }
  for (std::int64_t s = 0; s < slots; ++s) {  // ascending slots: segments come out sorted
    const std::int32_t e = expert[static_cast<std::size_t>(s)];
    if (e >= 0) sorted[cursor[static_cast<std::size_t>(e)]++] = static_cast<std::int32_t>(s);
  }
  *static_cast<std::int32_t*>(a.num_tokens_post_pad.data) = static_cast<std::int32_t>(total);
  return Status::Ok();
}

std::int64_t layout_max_rows(const ExpertLayoutParams& p, std::int64_t num_slots) {
  if (p.max_rows_per_expert > 0)
    return static_cast<std::int64_t>(p.num_experts) * p.max_rows_per_expert;
  return num_slots + static_cast<std::int64_t>(p.num_experts) * (p.alignment - 1);
}

Status expert_layout_cpu(const ExpertLayoutParams& p, const ExpertLayoutArgs& a) {
  SY_RETURN_IF_ERROR(
      detail::layout_check("expert_layout_cpu", p, a, Device::kCpu, detail::kMaxCpuAlignExperts));
  const std::int32_t E = p.num_experts;
  const std::int64_t slots = a.top_k_ids.numel();
  const std::vector<std::int32_t> expert = slot_experts(a.top_k_ids, a.expert_map, E);
  auto* counts = static_cast<std::int32_t*>(a.expert_counts.data);
  auto* offsets = static_cast<std::int64_t*>(a.expert_offsets.data);
  auto* src_to_dst = static_cast<std::int64_t*>(a.src_to_dst.data);
  auto* dst_to_src = static_cast<std::int64_t*>(a.dst_to_src.data);
  std::vector<std::int64_t> count(static_cast<std::size_t>(E), 0);
  for (std::int32_t e : expert) {
    if (e >= 0) ++count[static_cast<std::size_t>(e)];
  }
  const bool masked = p.max_rows_per_expert > 0;
  std::int64_t row = 0, dropped = 0;
  for (std::int32_t e = 0; e < E; ++e) {
    const std::int64_t c = count[static_cast<std::size_t>(e)];
    offsets[e] = masked ? e * p.max_rows_per_expert : row;
    counts[e] = static_cast<std::int32_t>(masked ? std::min(c, p.max_rows_per_expert) : c);
    row += masked ? p.max_rows_per_expert : (c + p.alignment - 1) / p.alignment * p.alignment;
  }
  offsets[E] = row;
  std::fill(dst_to_src, dst_to_src + a.dst_to_src.numel(), -1);
  std::vector<std::int64_t> used(static_cast<std::size_t>(E), 0);
  for (std::int64_t s = 0; s < slots; ++s) {
    const std::int32_t e = expert[static_cast<std::size_t>(s)];
    src_to_dst[s] = -1;
    if (e < 0) continue;
    std::int64_t& u = used[static_cast<std::size_t>(e)];
    if (masked && u >= p.max_rows_per_expert) {
      ++dropped;
      continue;
    }
    const std::int64_t dst = offsets[e] + u++;
    src_to_dst[s] = dst;
    dst_to_src[dst] = s;
  }
  if (a.overflow.defined()) *static_cast<std::int64_t*>(a.overflow.data) = dropped;
  return Status::Ok();
}

namespace {

template <typename T>
void permute_rows(const PermuteArgs& a) {
  const std::int64_t R = a.out.size(0), H = a.out.size(1),
                     x_stride = a.x.size(0) > 1 ? a.x.stride(0) : H;
  const auto* x = static_cast<const T*>(a.x.data);
  const auto* map = static_cast<const std::int64_t*>(a.dst_to_src.data);
  auto* out = static_cast<T*>(a.out.data);
  detail::parallel_for(R, std::max<std::int64_t>(1, 65536 / std::max<std::int64_t>(H, 1)),
                       [&](std::int64_t b, std::int64_t e) {
                         for (std::int64_t r = b; r < e; ++r) {
                           T* dst = out + r * H;  // int64 offsets: R * H may exceed 2^31
                           if (map[r] < 0) {
                             std::memset(static_cast<void*>(dst), 0,
                                         static_cast<std::size_t>(H) * sizeof(T));
                           } else {
                             std::memcpy(static_cast<void*>(dst), x + (map[r] / a.top_k) * x_stride,
                                         static_cast<std::size_t>(H) * sizeof(T));
                           }
                         }
                       });
}

// Absent src_to_dst / top_k_weights (null map / weights here): the identity row t*K + k and weight
// 1, with the same fused multiply-add (fma(1, y, acc) is y + acc rounded once).
template <typename T>
void combine_rows(const CombineParams& p, const CombineArgs& a) {
  const std::int64_t M = a.out.size(0), H = a.out.size(1), K = detail::combine_top_k(a);
  const std::int64_t y_stride = a.y.size(0) > 1 ? a.y.stride(0) : H;
  const auto* y = static_cast<const T*>(a.y.data);
  const auto* map = static_cast<const std::int64_t*>(a.src_to_dst.data);
  const auto* w = static_cast<const float*>(a.top_k_weights.data);
  auto* out = static_cast<T*>(a.out.data);
  detail::parallel_for(
      M, std::max<std::int64_t>(1, 16384 / std::max<std::int64_t>(H * K, 1)),
      [&](std::int64_t b, std::int64_t e) {
        std::vector<float> acc(static_cast<std::size_t>(H));
        for (std::int64_t t = b; t < e; ++t) {
          std::fill(acc.begin(), acc.end(), 0.0f);
          for (std::int64_t k = 0; k < K; ++k) {  // ascending k, one fused multiply-add per term
            const std::int64_t row = map != nullptr ? map[t * K + k] : t * K + k;
            if (row < 0) continue;
            const float wk = w != nullptr ? w[t * K + k] : 1.0f;
            const T* src = y + row * y_stride;
            for (std::int64_t h = 0; h < H; ++h) {
              acc[static_cast<std::size_t>(h)] =
                  detail::exact_fma(wk, detail::to_float(src[h]), acc[static_cast<std::size_t>(h)]);
            }
          }
          for (std::int64_t h = 0; h < H; ++h) {
            out[t * H + h] =
                detail::from_float<T>(p.routed_scaling_factor * acc[static_cast<std::size_t>(h)]);
          }
        }
      });
}

template <template <typename> class Fn, typename... Args>
void dispatch_float(DType dtype, Args&&... args) {
  if (dtype == DType::kFloat32) {
    Fn<float>::run(args...);
  } else if (dtype == DType::kBFloat16) {
    Fn<detail::bf16_t>::run(args...);
  } else {
    Fn<detail::fp16_t>::run(args...);
  }
}
template <typename T>
struct PermuteFn {
  static void run(const PermuteArgs& a) { permute_rows<T>(a); }
};
template <typename T>
struct CombineFn {
  static void run(const CombineParams& p, const CombineArgs& a) { combine_rows<T>(p, a); }
};

}  // namespace

Status permute_cpu(const PermuteArgs& a) {
  const char* op = "permute_cpu";
  SY_RETURN_IF_ERROR(detail::permute_check(op, a, Device::kCpu));
  const std::int64_t R = a.dst_to_src.numel();
  const std::int64_t slots = a.x.size(0) * a.top_k;
  const auto* map = static_cast<const std::int64_t*>(a.dst_to_src.data);
  for (std::int64_t r = 0; r < R; ++r) {
    if (map[r] < -1 || map[r] >= slots) {
      return invalid_arg(op, "dst_to_src[" + std::to_string(r) + "]", map[r],
                         "-1 or a slot in [0, " + std::to_string(slots) + ")");
    }
  }
  if (a.src_to_dst.defined()) {
    // The token-major CUDA path writes row src_to_dst[s] for every slot s and zeroes the rows
    // with no slot, so the two maps must be mutually inverse (as expert_layout_* produce them).
    // The output below is computed from dst_to_src alone, as without src_to_dst.
    const auto* inv = static_cast<const std::int64_t*>(a.src_to_dst.data);
    for (std::int64_t s = 0; s < slots; ++s) {
      const std::int64_t r = inv[s];
      if (r == -1) continue;
      const std::string name = "src_to_dst[" + std::to_string(s) + "]";
      if (r < -1 || r >= R) {
        return invalid_arg(op, name, r, "-1 or a row in [0, " + std::to_string(R) + ")");
      }
      if (map[r] != s) {
        return invalid_arg(op, name, r,
                           "the inverse of dst_to_src (dst_to_src[" + std::to_string(r) + "] = " +
                               std::to_string(map[r]) + ", not " + std::to_string(s) + ")");
      }
    }
    for (std::int64_t r = 0; r < R; ++r) {
      const std::int64_t s = map[r];
      if (s >= 0 && inv[s] != r) {
        return invalid_arg(op, "src_to_dst[" + std::to_string(s) + "]", inv[s],
                           std::to_string(r) + ", the inverse of dst_to_src (dst_to_src[" +
                               std::to_string(r) + "] = " + std::to_string(s) + ")");
      }
    }
  }
  dispatch_float<PermuteFn>(a.x.dtype, a);
  return Status::Ok();
}

Status combine_cpu(const CombineParams& p, const CombineArgs& a) {
  const char* op = "combine_cpu";
  SY_RETURN_IF_ERROR(detail::combine_check(op, p, a, Device::kCpu));
  const std::int64_t M = a.out.size(0), K = detail::combine_top_k(a);
  const auto* map = static_cast<const std::int64_t*>(a.src_to_dst.data);
  for (std::int64_t s = 0; map != nullptr && s < M * K; ++s) {  // no map: the identity, in range
    if (map[s] < -1 || map[s] >= a.y.size(0)) {
      return invalid_arg(op, "src_to_dst[" + std::to_string(s) + "]", map[s],
                         "-1 or a row of y in [0, " + std::to_string(a.y.size(0)) + ")");
    }
  }
  dispatch_float<CombineFn>(a.y.dtype, p, a);
  return Status::Ok();
}

}  // namespace switchyard
