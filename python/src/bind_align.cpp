// Alignment, expert-major layouts, permute and combine (align.h).
#include "arrays.h"
#include "bindings.h"

namespace switchyard::python {

namespace {

void moe_align_block_size(std::int32_t num_experts, std::int32_t block_size, const Array& top_k_ids,
                          const Array& sorted_token_ids, const Array& expert_ids,
                          const Array& num_tokens_post_pad, const OptArray& expert_map,
                          const OptArray& workspace, std::uintptr_t stream) {
  const AlignParams params{num_experts, block_size};
  AlignArgs a;
  a.top_k_ids = to_view(top_k_ids, "top_k_ids");
  a.expert_map = to_view(expert_map, "expert_map");
  a.sorted_token_ids = to_view(sorted_token_ids, "sorted_token_ids");
  a.expert_ids = to_view(expert_ids, "expert_ids");
  a.num_tokens_post_pad = to_view(num_tokens_post_pad, "num_tokens_post_pad");
  const Workspace ws = to_workspace(workspace);
  Status st;
  {
    nb::gil_scoped_release release;
    st = device_of(a.top_k_ids) == Device::kCuda
             ? moe_align_block_size_cuda(params, a, ws.data, ws.bytes, to_stream(stream))
             : moe_align_block_size_cpu(params, a);
  }
  throw_if_error(st);
}

void expert_layout(std::int32_t num_experts, std::int32_t alignment,
                   std::int64_t max_rows_per_expert, const Array& top_k_ids,
                   const Array& expert_counts, const Array& expert_offsets, const Array& src_to_dst,
                   const Array& dst_to_src, const OptArray& expert_map, const OptArray& overflow,
                   const OptArray& workspace, std::uintptr_t stream) {
  const ExpertLayoutParams params{num_experts, alignment, max_rows_per_expert};
  ExpertLayoutArgs a;
  a.top_k_ids = to_view(top_k_ids, "top_k_ids");
  a.expert_map = to_view(expert_map, "expert_map");
  a.expert_counts = to_view(expert_counts, "expert_counts");
  a.expert_offsets = to_view(expert_offsets, "expert_offsets");
  a.src_to_dst = to_view(src_to_dst, "src_to_dst");
  a.dst_to_src = to_view(dst_to_src, "dst_to_src");
  a.overflow = to_view(overflow, "overflow");
  const Workspace ws = to_workspace(workspace);
  Status st;
  {
    nb::gil_scoped_release release;
    st = device_of(a.top_k_ids) == Device::kCuda
             ? expert_layout_cuda(params, a, ws.data, ws.bytes, to_stream(stream))
             : expert_layout_cpu(params, a);
  }
  throw_if_error(st);
}

void permute(const Array& x, const Array& dst_to_src, std::int32_t top_k, const Array& out,
             const OptArray& src_to_dst, std::uintptr_t stream) {
  PermuteArgs a;
  a.x = to_view(x, "x");
  a.dst_to_src = to_view(dst_to_src, "dst_to_src");
  a.src_to_dst = to_view(src_to_dst, "src_to_dst");
  a.top_k = top_k;
  a.out = to_view(out, "out");
  Status st;
  {
    nb::gil_scoped_release release;
    st = device_of(a.x) == Device::kCuda ? permute_cuda(a, to_stream(stream)) : permute_cpu(a);
  }
  throw_if_error(st);
}

// src_to_dst / top_k_weights None: the identity map / unit weights (K from top_k then).
void combine(float routed_scaling_factor, const Array& y, const OptArray& src_to_dst,
             const OptArray& top_k_weights, const Array& out, std::int32_t top_k,
             std::uintptr_t stream) {
  const CombineParams params{routed_scaling_factor};
  CombineArgs a;
  a.y = to_view(y, "y");
  a.src_to_dst = to_view(src_to_dst, "src_to_dst");
  a.top_k_weights = to_view(top_k_weights, "top_k_weights");
  a.out = to_view(out, "out");
  a.top_k = top_k;
  Status st;
  {
    nb::gil_scoped_release release;
    st = device_of(a.y) == Device::kCuda ? combine_cuda(params, a, to_stream(stream))
                                         : combine_cpu(params, a);
  }
  throw_if_error(st);
}

}  // namespace

void bind_align(nb::module_& m) {
  m.def("align_max_padded", &align_max_padded, nb::arg("num_slots"), nb::arg("num_experts"),
        nb::arg("block_size"), "Entries of sorted_token_ids: M*K + E*(B-1).");
  m.def("align_max_blocks", &align_max_blocks, nb::arg("num_slots"), nb::arg("num_experts"),
        nb::arg("block_size"), "Entries of expert_ids: ceil(align_max_padded / B).");
  m.def(
      "align_workspace_size",
      [](std::int32_t num_experts, std::int32_t block_size, std::int64_t num_slots) {
        return align_workspace_size(AlignParams{num_experts, block_size}, num_slots);
      },
      nb::arg("num_experts"), nb::arg("block_size"), nb::arg("num_slots"),
      "Bytes of workspace moe_align_block_size needs on CUDA.");
  m.def(
      "layout_max_rows",
      [](std::int32_t num_experts, std::int32_t alignment, std::int64_t max_rows_per_expert,
         std::int64_t num_slots) {
        return layout_max_rows(ExpertLayoutParams{num_experts, alignment, max_rows_per_expert},
                               num_slots);
      },
      nb::arg("num_experts"), nb::arg("alignment"), nb::arg("max_rows_per_expert"),
      nb::arg("num_slots"), "Rows of the layout: M*K + E*(alignment-1), or E*max_m (masked).");
  m.def(
      "expert_layout_workspace_size",
      [](std::int32_t num_experts, std::int32_t alignment, std::int64_t max_rows_per_expert,
         std::int64_t num_slots) {
        return expert_layout_workspace_size(
            ExpertLayoutParams{num_experts, alignment, max_rows_per_expert}, num_slots);
      },
      nb::arg("num_experts"), nb::arg("alignment"), nb::arg("max_rows_per_expert"),
      nb::arg("num_slots"), "Bytes of workspace expert_layout needs on CUDA.");

  m.def("moe_align_block_size", &moe_align_block_size, nb::arg("num_experts"),
        nb::arg("block_size"), nb::arg("top_k_ids"), nb::arg("sorted_token_ids"),
        nb::arg("expert_ids"), nb::arg("num_tokens_post_pad"), nb::kw_only(),
        nb::arg("expert_map").none() = nb::none(), nb::arg("workspace").none() = nb::none(),
        nb::arg("stream") = 0, "moe_align_block_size_cpu / _cuda into caller-owned outputs.");
  m.def("expert_layout", &expert_layout, nb::arg("num_experts"), nb::arg("alignment"),
        nb::arg("max_rows_per_expert"), nb::arg("top_k_ids"), nb::arg("expert_counts"),
        nb::arg("expert_offsets"), nb::arg("src_to_dst"), nb::arg("dst_to_src"), nb::kw_only(),
        nb::arg("expert_map").none() = nb::none(), nb::arg("overflow").none() = nb::none(),
        nb::arg("workspace").none() = nb::none(), nb::arg("stream") = 0,
        "expert_layout_cpu / _cuda into caller-owned outputs.");
  m.def("permute", &permute, nb::arg("x"), nb::arg("dst_to_src"), nb::arg("top_k"), nb::arg("out"),
        nb::kw_only(), nb::arg("src_to_dst").none() = nb::none(), nb::arg("stream") = 0,
        "permute_cpu / _cuda: out[r] = x[dst_to_src[r] / top_k]; with src_to_dst (the inverse map) "
        "the CUDA op reads each x row once.");
  m.def("combine", &combine, nb::arg("routed_scaling_factor"), nb::arg("y"),
        nb::arg("src_to_dst").none(), nb::arg("top_k_weights").none(), nb::arg("out"),
        nb::kw_only(), nb::arg("top_k") = 0, nb::arg("stream") = 0,
        "combine_cpu / _cuda: out[t] = rsf * sum_k w[t,k] * y[src_to_dst[t*K+k]]. src_to_dst None: "
        "the identity (y has M*K rows); top_k_weights None: weights 1, K = top_k.");
}

}  // namespace switchyard::python
