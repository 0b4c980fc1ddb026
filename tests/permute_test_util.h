// Seeded permute cases shared by the CUDA test (tests/align_cuda_test.cpp, PermuteTokenMajorCuda)
// and the host emulator (tools/simt_emu/permute_emu.cpp): the case, its id, and the generated
// ids, x rows and CPU layout (both maps) that the permute kernels are checked on.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "common/rng.h"
#include "common/synthetic.h"
#include "switchyard/align.h"

namespace switchyard::testing {

struct PermuteCase {
  DType dtype;
  std::int64_t tokens, hidden, x_stride;
  int top_k, experts, alignment;
  std::int64_t max_m = 0;    // masked layout when > 0 (slots past max_m dropped)
  bool mapped = false;       // expert_map over 2E global experts, the odd ones local
  bool all_dropped = false;  // every id -1: every row is padding
};

inline std::string permute_case_id(const PermuteCase& c) {
  return std::string(dtype_name(c.dtype)) + "/M" + std::to_string(c.tokens) + "/H" +
         std::to_string(c.hidden) + "/stride" + std::to_string(c.x_stride) + "/K" +
         std::to_string(c.top_k) + "/E" + std::to_string(c.experts) + "/align" +
         std::to_string(c.alignment) + "/maxm" + std::to_string(c.max_m) +
         (c.mapped ? "/mapped" : "") + (c.all_dropped ? "/dropped" : "");
}

// The generated inputs and the CPU layout. Vectors hold at least one element, so that their data
// pointers are defined even for no tokens or no rows (views use the real sizes).
struct PermuteCaseData {
  std::vector<std::int32_t> ids, emap, counts;
  std::vector<std::uint8_t> x;  // [tokens, x_stride] in c.dtype
  std::vector<std::int64_t> offsets, s2d, d2s;
  std::int64_t rows = 0;  // R, the layout's rows
  ExpertLayoutArgs layout;
};

// Ids (one in `drop_one_in` dropped, or all), the expert map, x ~ N(0, 1) from `rng`, then
// expert_layout_cpu. `d` must not move afterwards (d->layout views its vectors).
inline Status make_permute_case(const PermuteCase& c, tools::Rng& rng, std::uint64_t drop_one_in,
                                PermuteCaseData* d) {
  const std::int64_t M = c.tokens, K = c.top_k, E = c.experts;
  const auto ids_range = static_cast<std::uint64_t>(c.mapped ? 2 * E : E);
  d->ids.assign(static_cast<std::size_t>(std::max<std::int64_t>(M * K, 1)), -1);
  for (std::int64_t i = 0; i < M * K; ++i) {
    d->ids[static_cast<std::size_t>(i)] = (c.all_dropped || rng.below(drop_one_in) == 0)
                                              ? -1
                                              : static_cast<std::int32_t>(rng.below(ids_range));
  }
  d->emap.clear();
  if (c.mapped) {
    for (std::int64_t g = 0; g < 2 * E; ++g)
      d->emap.push_back(g % 2 ? static_cast<std::int32_t>(g / 2) : -1);
  }
  std::vector<float> xf(static_cast<std::size_t>(M * c.x_stride));
  for (float& v : xf) v = static_cast<float>(rng.normal());
  d->x = tools::encode_floats(xf, c.dtype);

  ExpertLayoutParams lp;
  lp.num_experts = static_cast<std::int32_t>(E);
  lp.alignment = c.alignment;
  lp.max_rows_per_expert = c.max_m;
  d->rows = layout_max_rows(lp, M * K);
  d->counts.assign(static_cast<std::size_t>(E), 0);
  d->offsets.assign(static_cast<std::size_t>(E + 1), 0);
  d->s2d.assign(static_cast<std::size_t>(std::max<std::int64_t>(M * K, 1)), 0);
  d->d2s.assign(static_cast<std::size_t>(std::max<std::int64_t>(d->rows, 1)), 0);
  ExpertLayoutArgs& la = d->layout;
  la = ExpertLayoutArgs{};
  la.top_k_ids = TensorView::contiguous(d->ids.data(), DType::kInt32, {M, K});
  if (c.mapped) la.expert_map = TensorView::contiguous(d->emap.data(), DType::kInt32, {2 * E});
  la.expert_counts = TensorView::contiguous(d->counts.data(), DType::kInt32, {E});
  la.expert_offsets = TensorView::contiguous(d->offsets.data(), DType::kInt64, {E + 1});
  la.src_to_dst = TensorView::contiguous(d->s2d.data(), DType::kInt64, {M * K});
  la.dst_to_src = TensorView::contiguous(d->d2s.data(), DType::kInt64, {d->rows});
  return expert_layout_cpu(lp, la);
}

}  // namespace switchyard::testing
