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
#include "../common/check.h"
#include "../common/dtype_convert.h"
#include "../common/exact_math.h"
#include "parallel.h"
#include "switchyard/align.h"

namespace switchyard {
namespace {

using detail::check_contiguous;
using detail::check_dtype;
using detail::check_shape;
using detail::check_tensor_basics;
using detail::invalid_arg;

constexpr std::int32_t kMaxAlignExperts = 65536;

std::int64_t read_index(const TensorView& t, std::int64_t i) {
  if (t.dtype == DType::kInt64) return static_cast<const std::int64_t*>(t.data)[i];
  return static_cast<const std::int32_t*>(t.data)[i];
}

Status check_ids(const char* op, const TensorView& ids, const TensorView& expert_map) {
  SY_RETURN_IF_ERROR(check_tensor_basics(op, "top_k_ids", ids, Device::kCpu));
  SY_RETURN_IF_ERROR(check_dtype(op, "top_k_ids", ids, {DType::kInt32, DType::kInt64}));
  if (ids.ndim != 2)
    return invalid_arg(op, "top_k_ids.shape", ids.describe(), "[num_tokens, top_k]");
  SY_RETURN_IF_ERROR(check_contiguous(op, "top_k_ids", ids));
  if (ids.numel() > std::numeric_limits<std::int32_t>::max()) {
    return invalid_arg(op, "top_k_ids.numel", ids.numel(), "< 2^31 slots (slot indices are int32)");
  }
  if (expert_map.defined()) {
    SY_RETURN_IF_ERROR(check_tensor_basics(op, "expert_map", expert_map, Device::kCpu));
    SY_RETURN_IF_ERROR(check_dtype(op, "expert_map", expert_map, {DType::kInt32}));
    if (expert_map.ndim != 1)
      return invalid_arg(op, "expert_map.shape", expert_map.describe(), "[num_global_experts]");
    SY_RETURN_IF_ERROR(check_contiguous(op, "expert_map", expert_map));
  }
  return Status::Ok();
}

Status check_experts(const char* op, std::int32_t E) {
  if (E < 1 || E > kMaxAlignExperts) {
    return invalid_arg(op, "num_experts", E,
                       "1 <= num_experts <= " + std::to_string(kMaxAlignExperts));
  }
  return Status::Ok();
}

Status check_output(const char* op, const char* name, const TensorView& t, DType dtype,
                    std::int64_t min_numel) {
  SY_RETURN_IF_ERROR(check_tensor_basics(op, name, t, Device::kCpu));
  SY_RETURN_IF_ERROR(check_dtype(op, name, t, {dtype}));
  SY_RETURN_IF_ERROR(check_contiguous(op, name, t));
  if (t.numel() < min_numel) {
    return invalid_arg(op, std::string(name) + ".numel", t.numel(),
                       ">= " + std::to_string(min_numel));
  }
  return Status::Ok();
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

Status moe_align_block_size_cpu(const AlignParams& p, const AlignArgs& a) {
  const char* op = "moe_align_block_size_cpu";
  SY_RETURN_IF_ERROR(check_experts(op, p.num_experts));
  if (p.block_size < 16 || p.block_size > 256) {
    return invalid_arg(op, "block_size", p.block_size, "16 <= block_size <= 256");
  }
  SY_RETURN_IF_ERROR(check_ids(op, a.top_k_ids, a.expert_map));
  const std::int64_t slots = a.top_k_ids.numel();
  const std::int64_t max_padded = align_max_padded(slots, p.num_experts, p.block_size);
  const std::int64_t max_blocks = align_max_blocks(slots, p.num_experts, p.block_size);
  SY_RETURN_IF_ERROR(
      check_output(op, "sorted_token_ids", a.sorted_token_ids, DType::kInt32, max_padded));
  SY_RETURN_IF_ERROR(check_output(op, "expert_ids", a.expert_ids, DType::kInt32, max_blocks));
  SY_RETURN_IF_ERROR(
      check_output(op, "num_tokens_post_pad", a.num_tokens_post_pad, DType::kInt32, 1));

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
  const char* op = "expert_layout_cpu";
  SY_RETURN_IF_ERROR(check_experts(op, p.num_experts));
  if (p.alignment < 1 || p.alignment > 1024) {
    return invalid_arg(op, "alignment", p.alignment, "1 <= alignment <= 1024");
  }
  if (p.max_rows_per_expert < 0) {
    return invalid_arg(op, "max_rows_per_expert", p.max_rows_per_expert,
                       ">= 0 (0: contiguous layout)");
  }
  SY_RETURN_IF_ERROR(check_ids(op, a.top_k_ids, a.expert_map));
  const std::int32_t E = p.num_experts;
  const std::int64_t slots = a.top_k_ids.numel();
  const std::int64_t max_rows = layout_max_rows(p, slots);
  SY_RETURN_IF_ERROR(check_output(op, "expert_counts", a.expert_counts, DType::kInt32, E));
  SY_RETURN_IF_ERROR(check_output(op, "expert_offsets", a.expert_offsets, DType::kInt64, E + 1));
  SY_RETURN_IF_ERROR(check_output(op, "src_to_dst", a.src_to_dst, DType::kInt64, slots));
  SY_RETURN_IF_ERROR(check_output(op, "dst_to_src", a.dst_to_src, DType::kInt64, max_rows));
  if (a.overflow.defined())
    SY_RETURN_IF_ERROR(check_output(op, "overflow", a.overflow, DType::kInt64, 1));

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

template <typename T>
void combine_rows(const CombineParams& p, const CombineArgs& a) {
  const std::int64_t M = a.out.size(0), H = a.out.size(1), K = a.top_k_weights.size(1);
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
            const std::int64_t row = map[t * K + k];
            if (row < 0) continue;
            const float wk = w[t * K + k];
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
  dispatch_float<PermuteFn>(a.x.dtype, a);
  return Status::Ok();
}

Status combine_cpu(const CombineParams& p, const CombineArgs& a) {
  const char* op = "combine_cpu";
  SY_RETURN_IF_ERROR(detail::combine_check(op, p, a, Device::kCpu));
  const std::int64_t M = a.top_k_weights.size(0), K = a.top_k_weights.size(1);
  const auto* map = static_cast<const std::int64_t*>(a.src_to_dst.data);
  for (std::int64_t s = 0; s < M * K; ++s) {
    if (map[s] < -1 || map[s] >= a.y.size(0)) {
      return invalid_arg(op, "src_to_dst[" + std::to_string(s) + "]", map[s],
                         "-1 or a row of y in [0, " + std::to_string(a.y.size(0)) + ")");
    }
  }
  dispatch_float<CombineFn>(a.y.dtype, p, a);
  return Status::Ok();
}

}  // namespace switchyard
