// run_layer_stages_cuda: the layer of layer_stages.h on the GPU, from the router logits to the
// layer output, with every buffer allocated once. One run is copied back and checked against the
// CPU ops (bit for bit where the contract says so, the oracle on sampled tokens for the experts);
// then each stage is timed alone and the whole layer as one CUDA graph (tools/common/gpu_bench.h).
#include <algorithm>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "../../src/common/check.h"
#include "../common/gpu_bench.h"
#include "../common/layer_kernels.h"
#include "layer_stages.h"
#include "switchyard/align.h"
#include "switchyard/experts.h"
#include "switchyard/routing.h"

namespace switchyard::cli {

namespace {

constexpr int kMoveCalls = 20;   // calls per graph: routing and data-movement stages
constexpr int kExpertCalls = 3;  // calls per graph: expert stages and the whole layer
constexpr int kReplays = 7;      // timed replays; the median is reported
constexpr int kPoisonByte = 0x7b;

using tools::DeviceBuffer;

Status upload(const void* src, std::size_t bytes, DeviceBuffer* dst) {
  SY_RETURN_IF_ERROR(DeviceBuffer::allocate(bytes, dst));
  return tools::copy_to_device(dst->get(), src, bytes);
}

Status allocate_poisoned(std::size_t bytes, DeviceBuffer* dst) {
  SY_RETURN_IF_ERROR(DeviceBuffer::allocate(bytes, dst));
  return tools::fill_device_bytes(dst->get(), kPoisonByte, bytes);
}

template <typename T>
Status download(const DeviceBuffer& src, std::size_t count, std::vector<T>* out) {
  out->resize(count);
  return tools::copy_to_host(out->data(), src.get(), count * sizeof(T));
}

TensorView dev(const DeviceBuffer& b, DType dtype, std::initializer_list<std::int64_t> shape) {
  return TensorView::contiguous(b.get(), dtype, shape, Device::kCuda);
}

}  // namespace

Status run_layer_stages_cuda(const tools::RoutingProblem& pr, const tools::RoutingResult& routing,
                             const std::vector<detail::bf16_t>& x_bf16, const LayerStageOptions& o,
                             LayerStageReport* r) {
  const layer::Shape s = layer::make_shape(pr, o);
  const std::int64_t M = s.M, H = s.H, C = s.C, R = s.max_rows;
  const int E = s.E;
  const bool real = o.weights != nullptr;
  const bool shared = real && o.weights->shared_intermediate_size > 0;
  if (pr.id_dtype != DType::kInt32) {
    return Status::InvalidArgument("run_layer_stages_cuda: routing ids must be int32");
  }
  r->backend = "cuda";
  r->timing = "each stage alone: CUDA graph of " + std::to_string(kMoveCalls) + " calls (experts " +
              std::to_string(kExpertCalls) + "), median of " + std::to_string(kReplays) +
              " replays / calls, same buffers every call";
  r->hidden_size = o.hidden_size;
  r->dtype = s.dtype;
  r->real_experts = real;
  if (real) {
    r->intermediate_size = o.weights->intermediate_size;
    r->shared_intermediate_size = o.weights->shared_intermediate_size;
  }

  // Host inputs and the CPU stages' inputs.
  const std::vector<std::int32_t> ids = layer::routing_ids(routing);
  const std::vector<float> cw = layer::combine_weights(s, routing);
  const std::vector<std::uint8_t> x = layer::layer_input(x_bf16, s.dtype);
  const std::size_t row_bytes = static_cast<std::size_t>(H) * s.esz;

  // ---- device buffers, allocated once ---------------------------------------------------------
  const AlignParams ap{E, o.block_size};
  ExpertLayoutParams lp;
  lp.num_experts = E;
  lp.alignment = o.alignment;
  // The GPU takes w13 with gate/up rows interleaved, packed once below as an engine packs at load
  // time (interleave_w13_cuda), so that the grouped-GEMM path applies the activation in GEMM1's
  // epilogue (experts.h); the CPU oracle keeps SGLang's halves.
  ExpertsParams ep = real ? layer::routed_params(s, o) : ExpertsParams{};
  ExpertsParams sp = shared ? layer::shared_params(s, *o.weights) : ExpertsParams{};
  // (Gated activations whose layout is SGLang's halves only: gpt-oss's SwiGLU is interleaved
  // already, relu^2 has no gate.)
  const auto halves = [](const ExpertsParams& p) {
    return p.activation != Activation::kRelu2 && !experts_w13_interleaved(p);
  };
  const bool pack13 = real && halves(ep), pack_shared13 = shared && halves(sp);
  ep.w13_interleaved = ep.w13_interleaved || pack13;
  sp.w13_interleaved = sp.w13_interleaved || pack_shared13;
  std::size_t ws_bytes =
      std::max({routing_workspace_size(pr.params, M), align_workspace_size(ap, M * C),
                expert_layout_workspace_size(lp, M * C)});
  if (real) ws_bytes = std::max(ws_bytes, fused_experts_workspace_size(ep, R, 1));
  if (shared) ws_bytes = std::max(ws_bytes, fused_experts_workspace_size(sp, M, 1));

  DeviceBuffer logits, bias, d_ids, d_w, sorted, block_expert, post_pad, counts, offsets, s2d, d2s,
      row_experts, row_weights, ones, zeros, d_x, permuted, y, routed, shared_out, out, w13, w2,
      sw13, sw2, ws;
  const std::size_t num_ones = static_cast<std::size_t>(std::max({R, M * C, M}));
  const std::vector<float> host_ones(num_ones, 1.0f);
  for (Status st : {
           upload(pr.logits.data(), pr.logits.size(), &logits),
           upload(pr.bias.data(), pr.bias.size() * 4, &bias),
           allocate_poisoned(static_cast<std::size_t>(M * C) * 4, &d_ids),
           allocate_poisoned(static_cast<std::size_t>(M * C) * 4, &d_w),
           allocate_poisoned(static_cast<std::size_t>(s.max_padded) * 4, &sorted),
           allocate_poisoned(static_cast<std::size_t>(s.max_blocks) * 4, &block_expert),
           allocate_poisoned(4, &post_pad),
           allocate_poisoned(static_cast<std::size_t>(E) * 4, &counts),
           allocate_poisoned(static_cast<std::size_t>(E + 1) * 8, &offsets),
           allocate_poisoned(static_cast<std::size_t>(M * C) * 8, &s2d),
           allocate_poisoned(static_cast<std::size_t>(R) * 8, &d2s),
           allocate_poisoned(static_cast<std::size_t>(R) * 4, &row_experts),
           allocate_poisoned(s.weight_on_input ? static_cast<std::size_t>(R) * 4 : 0, &row_weights),
           upload(host_ones.data(), num_ones * 4, &ones),
           DeviceBuffer::allocate(static_cast<std::size_t>(M) * 4, &zeros),
           upload(x.data(), x.size(), &d_x),
           allocate_poisoned(static_cast<std::size_t>(R) * row_bytes, &permuted),
           allocate_poisoned(real ? static_cast<std::size_t>(R) * row_bytes : 0, &y),
           allocate_poisoned(static_cast<std::size_t>(M) * row_bytes, &routed),
           allocate_poisoned(shared ? static_cast<std::size_t>(M) * row_bytes : 0, &shared_out),
           allocate_poisoned(shared ? static_cast<std::size_t>(M) * row_bytes : 0, &out),
           DeviceBuffer::allocate(ws_bytes, &ws),
       }) {
    SY_RETURN_IF_ERROR(st);
  }
  SY_RETURN_IF_ERROR(tools::fill_device_bytes(zeros.get(), 0, zeros.bytes()));
  // buf [experts, rows, H] in halves -> interleaved rows (a new buffer; the old one is freed).
  const auto pack = [&](DeviceBuffer* buf, std::int64_t experts, std::int64_t rows) -> Status {
    DeviceBuffer packed;
    SY_RETURN_IF_ERROR(DeviceBuffer::allocate(buf->bytes(), &packed));
    SY_RETURN_IF_ERROR(interleave_w13_cuda(dev(*buf, s.dtype, {experts, rows, H}),
                                           dev(packed, s.dtype, {experts, rows, H}), nullptr));
    SY_RETURN_IF_ERROR(tools::device_synchronize());
    *buf = std::move(packed);
    return Status::Ok();
  };
  if (real) {
    const tools::MoeLayerWeights& w = *o.weights;
    SY_RETURN_IF_ERROR(upload(w.w13.data(), w.w13.size(), &w13));
    SY_RETURN_IF_ERROR(upload(w.w2.data(), w.w2.size(), &w2));
    if (pack13) SY_RETURN_IF_ERROR(pack(&w13, E, 2LL * w.intermediate_size));
    if (shared) {
      SY_RETURN_IF_ERROR(upload(w.shared_w13.data(), w.shared_w13.size(), &sw13));
      SY_RETURN_IF_ERROR(upload(w.shared_w2.data(), w.shared_w2.size(), &sw2));
      if (pack_shared13) SY_RETURN_IF_ERROR(pack(&sw13, 1, 2LL * w.shared_intermediate_size));
    }
  }

  // ---- the stages, as enqueue functions ---------------------------------------------------------
  const RoutingArgs ra = tools::routing_args(pr, Device::kCuda, logits.get(), bias.get(), nullptr,
                                             nullptr, nullptr, nullptr, d_w.get(), d_ids.get());
  AlignArgs aa;
  aa.top_k_ids = dev(d_ids, DType::kInt32, {M, C});
  aa.sorted_token_ids = dev(sorted, DType::kInt32, {s.max_padded});
  aa.expert_ids = dev(block_expert, DType::kInt32, {s.max_blocks});
  aa.num_tokens_post_pad = dev(post_pad, DType::kInt32, {1});
  ExpertLayoutArgs la;
  la.top_k_ids = aa.top_k_ids;
  la.expert_counts = dev(counts, DType::kInt32, {E});
  la.expert_offsets = dev(offsets, DType::kInt64, {E + 1});
  la.src_to_dst = dev(s2d, DType::kInt64, {M * C});
  la.dst_to_src = dev(d2s, DType::kInt64, {R});
  PermuteArgs pa;
  pa.x = dev(d_x, s.dtype, {M, H});
  pa.dst_to_src = la.dst_to_src;
  pa.top_k = static_cast<std::int32_t>(C);
  pa.out = dev(permuted, s.dtype, {R, H});
  pa.src_to_dst = la.src_to_dst;  // token-major: each x row read once
  ExpertsArgs ea;
  if (real) {
    const tools::MoeLayerWeights& w = *o.weights;
    ea.x = pa.out;
    ea.w13 = dev(
        w13, s.dtype,
        {E, ep.activation == Activation::kRelu2 ? w.intermediate_size : 2LL * w.intermediate_size,
         H});
    ea.w2 = dev(w2, s.dtype, {E, H, w.intermediate_size});
    ea.top_k_ids = dev(row_experts, DType::kInt32, {R, 1});
    ea.top_k_weights = dev(s.weight_on_input ? row_weights : ones, DType::kFloat32, {R, 1});
    ea.out = dev(y, s.dtype, {R, H});
  }
  CombineArgs ca;
  ca.y = real ? ea.out : pa.out;
  ca.src_to_dst = la.src_to_dst;
  ca.top_k_weights = dev(s.weight_on_input ? ones : d_w, DType::kFloat32, {M, C});
  ca.out = dev(routed, s.dtype, {M, H});
  ExpertsArgs sa;
  if (shared) {
    const std::int64_t Is = o.weights->shared_intermediate_size;
    sa.x = pa.x;
    sa.w13 = dev(sw13, s.dtype, {1, 2 * Is, H});
    sa.w2 = dev(sw2, s.dtype, {1, H, Is});
    sa.top_k_ids = dev(zeros, DType::kInt32, {M, 1});
    sa.top_k_weights = dev(ones, DType::kFloat32, {M, 1});
    sa.out = dev(shared_out, s.dtype, {M, H});
  }

  using Stage = std::function<Status(cudaStream_t)>;
  struct Named {
    std::string name;
    Stage run;
    int calls;
  };
  std::vector<Named> stages = {
      {"routing",
       [&](cudaStream_t st) { return route_cuda(pr.params, ra, ws.get(), ws_bytes, st); },
       kMoveCalls},
      {"align",
       [&](cudaStream_t st) { return moe_align_block_size_cuda(ap, aa, ws.get(), ws_bytes, st); },
       kMoveCalls},
      {"expert layout",
       [&](cudaStream_t st) {
         SY_RETURN_IF_ERROR(expert_layout_cuda(lp, la, ws.get(), ws_bytes, st));
         if (!real) return Status::Ok();
         return tools::gather_row_routing_cuda(
             static_cast<const std::int32_t*>(d_ids.get()), static_cast<const float*>(d_w.get()),
             static_cast<const std::int64_t*>(d2s.get()), R,
             static_cast<std::int32_t*>(row_experts.get()),
             s.weight_on_input ? static_cast<float*>(row_weights.get()) : nullptr, st);
       },
       kMoveCalls},
      {"permute", [&](cudaStream_t st) { return permute_cuda(pa, st); }, kMoveCalls},
  };
  if (real) {
    stages.push_back(
        {"experts",
         [&](cudaStream_t st) { return fused_experts_cuda(ep, ea, ws.get(), ws_bytes, st); },
         kExpertCalls});
  }
  stages.push_back(
      {"combine", [&](cudaStream_t st) { return combine_cuda({s.rsf}, ca, st); }, kMoveCalls});
  if (shared) {
    stages.push_back({"shared experts",
                      [&](cudaStream_t st) {
                        SY_RETURN_IF_ERROR(fused_experts_cuda(sp, sa, ws.get(), ws_bytes, st));
                        return tools::add_outputs_cuda(s.dtype, routed.get(), shared_out.get(),
                                                       out.get(), M * H, st);
                      },
                      kExpertCalls});
  }

  // ---- one run, checked against the CPU ---------------------------------------------------------
  for (const Named& n : stages) SY_RETURN_IF_ERROR(n.run(nullptr));
  SY_RETURN_IF_ERROR(tools::device_synchronize());

  std::vector<LayerStage> result(stages.size());
  for (std::size_t i = 0; i < stages.size(); ++i) {
    result[i].name = stages[i].name;
    result[i].backend = "cuda";
  }
  const auto stage = [&](const char* name) -> LayerStage& {
    for (LayerStage& st : result) {
      if (st.name == name) return st;
    }
    return result.front();  // not reached: every name below is a stage
  };

  // Routing: the layer's own routing output against the CPU's.
  {
    std::vector<std::int32_t> g_ids;
    tools::RoutingResult g;
    SY_RETURN_IF_ERROR(download(d_ids, static_cast<std::size_t>(M * C), &g_ids));
    SY_RETURN_IF_ERROR(download(d_w, static_cast<std::size_t>(M * C), &g.weights));
    g.ids.assign(g_ids.begin(), g_ids.end());
    const tools::RoutingDiff diff = tools::compare_routing(pr, routing, g);
    LayerStage& st = stage("routing");
    st.check = "bitwise vs cpu";
    st.checked = M;
    st.wrong = diff.rows_wrong;
    st.first_mismatch = diff.first_detail;
    r->routing_compared = true;
    r->routing_rows_wrong = diff.rows_wrong;
    r->routing_first_mismatch = diff.first_detail;
  }

  // Align and layout: the CPU ops on the CPU routing ids.
  std::vector<std::int32_t> c_sorted(static_cast<std::size_t>(s.max_padded)),
      c_block(static_cast<std::size_t>(s.max_blocks)), c_counts(static_cast<std::size_t>(E));
  std::int32_t c_post_pad = 0;
  std::vector<std::int64_t> c_offsets(static_cast<std::size_t>(E) + 1),
      c_s2d(static_cast<std::size_t>(M * C)), c_d2s(static_cast<std::size_t>(R));
  {
    AlignArgs c;
    c.top_k_ids =
        TensorView::contiguous(const_cast<std::int32_t*>(ids.data()), DType::kInt32, {M, C});
    c.sorted_token_ids = TensorView::contiguous(c_sorted.data(), DType::kInt32, {s.max_padded});
    c.expert_ids = TensorView::contiguous(c_block.data(), DType::kInt32, {s.max_blocks});
    c.num_tokens_post_pad = TensorView::contiguous(&c_post_pad, DType::kInt32, {1});
    SY_RETURN_IF_ERROR(moe_align_block_size_cpu(ap, c));
    std::vector<std::int32_t> g_sorted, g_block, g_post_pad;
    SY_RETURN_IF_ERROR(download(sorted, c_sorted.size(), &g_sorted));
    SY_RETURN_IF_ERROR(download(block_expert, c_block.size(), &g_block));
    SY_RETURN_IF_ERROR(download(post_pad, 1, &g_post_pad));
    LayerStage& st = stage("align");
    layer::compare_bitwise(c_sorted.data(), g_sorted.data(), c_sorted.size(), DType::kInt32,
                           o.block_size, &st);
    layer::compare_bitwise(c_block.data(), g_block.data(), c_block.size(), DType::kInt32, 1, &st);
    layer::compare_bitwise(&c_post_pad, g_post_pad.data(), 1, DType::kInt32, 1, &st);
    st.detail = std::to_string(c_post_pad) + " padded slots";
    r->padded_slots = c_post_pad;
  }
  std::int64_t rows = 0;
  {
    ExpertLayoutArgs c;
    c.top_k_ids =
        TensorView::contiguous(const_cast<std::int32_t*>(ids.data()), DType::kInt32, {M, C});
    c.expert_counts = TensorView::contiguous(c_counts.data(), DType::kInt32, {E});
    c.expert_offsets = TensorView::contiguous(c_offsets.data(), DType::kInt64, {E + 1});
    c.src_to_dst = TensorView::contiguous(c_s2d.data(), DType::kInt64, {M * C});
    c.dst_to_src = TensorView::contiguous(c_d2s.data(), DType::kInt64, {R});
    SY_RETURN_IF_ERROR(expert_layout_cpu(lp, c));
    std::vector<std::int32_t> g_counts;
    std::vector<std::int64_t> g_offsets, g_s2d, g_d2s;
    SY_RETURN_IF_ERROR(download(counts, c_counts.size(), &g_counts));
    SY_RETURN_IF_ERROR(download(offsets, c_offsets.size(), &g_offsets));
    SY_RETURN_IF_ERROR(download(s2d, c_s2d.size(), &g_s2d));
    SY_RETURN_IF_ERROR(download(d2s, c_d2s.size(), &g_d2s));
    LayerStage& st = stage("expert layout");
    layer::compare_bitwise(c_counts.data(), g_counts.data(), c_counts.size(), DType::kInt32, 1,
                           &st);
    layer::compare_bitwise(c_offsets.data(), g_offsets.data(), c_offsets.size(), DType::kInt64, 1,
                           &st);
    layer::compare_bitwise(c_s2d.data(), g_s2d.data(), c_s2d.size(), DType::kInt64, C, &st);
    layer::compare_bitwise(c_d2s.data(), g_d2s.data(), c_d2s.size(), DType::kInt64, 1, &st);
    if (real) {
      std::vector<std::int32_t> c_re(static_cast<std::size_t>(R)), g_re;
      std::vector<float> c_rw(s.weight_on_input ? static_cast<std::size_t>(R) : 0), g_rw;
      tools::gather_row_routing_cpu(ids.data(), routing.weights.data(), c_d2s.data(), R,
                                    c_re.data(), s.weight_on_input ? c_rw.data() : nullptr);
      SY_RETURN_IF_ERROR(download(row_experts, c_re.size(), &g_re));
      layer::compare_bitwise(c_re.data(), g_re.data(), c_re.size(), DType::kInt32, 1, &st);
      if (s.weight_on_input) {
        SY_RETURN_IF_ERROR(download(row_weights, c_rw.size(), &g_rw));
        layer::compare_bitwise(c_rw.data(), g_rw.data(), c_rw.size(), DType::kFloat32, 1, &st);
      }
    }
    rows = c_offsets[static_cast<std::size_t>(E)];
    r->layout_rows = rows;
    for (std::int64_t d : c_s2d) r->dropped_slots += d < 0;
    st.detail = layer::layout_detail(pr, rows, r->dropped_slots);
  }
  // Permute: the rows in use (the rest are zeroed padding).
  std::vector<std::uint8_t> g_permuted;
  {
    std::vector<std::uint8_t> c_permuted(static_cast<std::size_t>(rows) * row_bytes);
    PermuteArgs c;
    c.x = TensorView::contiguous(const_cast<std::uint8_t*>(x.data()), s.dtype, {M, H});
    c.dst_to_src = TensorView::contiguous(c_d2s.data(), DType::kInt64, {rows});
    c.top_k = static_cast<std::int32_t>(C);
    c.out = TensorView::contiguous(c_permuted.data(), s.dtype, {rows, H});
    c.src_to_dst = TensorView::contiguous(c_s2d.data(), DType::kInt64, {M * C});
    SY_RETURN_IF_ERROR(permute_cpu(c));
    SY_RETURN_IF_ERROR(download(permuted, c_permuted.size(), &g_permuted));
    layer::compare_bitwise(c_permuted.data(), g_permuted.data(), c_permuted.size() / s.esz, s.dtype,
                           H, &stage("permute"));
  }
  if (real) {
    r->experts = layer::routed_work(s, *o.weights, c_counts, o.activation);
    stage("experts").detail = "fused_experts_cuda on the permuted rows, " +
                              std::to_string(r->experts.experts_hit) +
                              " experts hit; checked in the layer output";
  }
  // Combine: the CPU op on the GPU's expert outputs.
  std::vector<std::uint8_t> g_routed;
  {
    std::vector<std::uint8_t> g_y;
    if (real) SY_RETURN_IF_ERROR(download(y, static_cast<std::size_t>(rows) * row_bytes, &g_y));
    std::vector<std::uint8_t>& ys = real ? g_y : g_permuted;
    std::vector<std::uint8_t> c_routed(static_cast<std::size_t>(M) * row_bytes);
    std::vector<float> c_cw = cw;
    CombineArgs c;
    c.y = TensorView::contiguous(ys.data(), s.dtype, {rows, H});
    c.src_to_dst = TensorView::contiguous(c_s2d.data(), DType::kInt64, {M * C});
    c.top_k_weights = TensorView::contiguous(c_cw.data(), DType::kFloat32, {M, C});
    c.out = TensorView::contiguous(c_routed.data(), s.dtype, {M, H});
    SY_RETURN_IF_ERROR(combine_cpu({s.rsf}, c));
    SY_RETURN_IF_ERROR(download(routed, c_routed.size(), &g_routed));
    layer::compare_bitwise(c_routed.data(), g_routed.data(), c_routed.size() / s.esz, s.dtype, H,
                           &stage("combine"));
  }
  // Shared experts: the add, bit for bit, on the GPU's two outputs.
  std::vector<std::uint8_t> g_out;
  if (shared) {
    std::vector<std::uint8_t> g_shared, c_out(g_routed.size());
    SY_RETURN_IF_ERROR(download(shared_out, g_routed.size(), &g_shared));
    SY_RETURN_IF_ERROR(download(out, g_routed.size(), &g_out));
    SY_RETURN_IF_ERROR(
        tools::add_outputs_cpu(s.dtype, g_routed.data(), g_shared.data(), c_out.data(), M * H));
    LayerStage& st = stage("shared experts");
    layer::compare_bitwise(c_out.data(), g_out.data(), c_out.size() / s.esz, s.dtype, H, &st);
    st.check = "add bitwise vs cpu";
    st.detail = "fused_experts_cuda, one dense expert, I=" +
                std::to_string(o.weights->shared_intermediate_size) + "; + routed output";
    r->shared = layer::shared_work(s, *o.weights);
  } else {
    g_out = std::move(g_routed);
  }
  r->output_checksum = layer::checksum(g_out, s.dtype);
  LayerStage check;
  if (real) {
    SY_RETURN_IF_ERROR(layer::check_sampled_tokens(s, o, ids, routing, x, g_out, &check));
  } else {
    check = layer::check_identity_output(s, ids, routing, x_bf16, g_out);
  }
  check.backend = "cuda";

  // ---- timing: each stage alone, then the whole layer -----------------------------------------
  for (std::size_t i = 0; i < stages.size(); ++i) {
    tools::GraphTiming t;
    SY_RETURN_IF_ERROR(tools::time_graph(
        stages[i].calls, kReplays, [&](int, cudaStream_t st) { return stages[i].run(st); }, &t));
    result[i].ms = t.median_us_per_call / 1e3;
  }
  tools::GraphTiming whole;
  const Status timed = tools::time_graph(
      kExpertCalls, kReplays,
      [&](int, cudaStream_t st) {
        for (const Named& n : stages) SY_RETURN_IF_ERROR(n.run(st));
        return Status::Ok();
      },
      &whole);
  if (!timed.ok()) return timed;
  r->layer_ms = whole.median_us_per_call / 1e3;
  r->routing_us = stage("routing").ms * 1e3;
  if (real) r->experts.ms = stage("experts").ms;
  if (shared) r->shared.ms = stage("shared experts").ms;

  for (LayerStage& st : result) r->add(std::move(st));
  r->add(std::move(check));
  return Status::Ok();
}

}  // namespace switchyard::cli
