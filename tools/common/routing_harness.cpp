#include "routing_harness.h"

#include <algorithm>
#include <cstring>

#include "../../src/common/routing_internal.h"
#include "gpu_bench.h"

namespace switchyard::tools {

std::size_t RoutingProblem::input_bytes() const {
  return logits.size() + bias.size() * sizeof(float);
}
std::size_t RoutingProblem::output_bytes() const {
  return static_cast<std::size_t>(num_tokens) * static_cast<std::size_t>(columns()) *
         (sizeof(float) + dtype_size(id_dtype));
}

RoutingArgs routing_args(const RoutingProblem& pr, Device device, const void* logits,
                         const void* bias, const void* non_padded, const void* placement,
                         const void* replica_counts, const void* expert_map, void* weights,
                         void* ids) {
  const std::int64_t M = pr.num_tokens, E = pr.params.num_experts, C = pr.columns();
  RoutingArgs a;
  a.logits = TensorView::contiguous(const_cast<void*>(logits), pr.logits_dtype, {M, E}, device);
  if (!pr.bias.empty()) {
    a.bias = TensorView::contiguous(const_cast<void*>(bias), DType::kFloat32, {E}, device);
  }
  if (pr.num_tokens_non_padded >= 0) {
    a.num_tokens_non_padded =
        TensorView::contiguous(const_cast<void*>(non_padded), DType::kInt32, {1}, device);
  }
  if (!pr.placement.empty()) {
    a.placement =
        pr.placement_replicas > 0
            ? TensorView::contiguous(const_cast<void*>(placement), DType::kInt32,
                                     {E, pr.placement_replicas}, device)
            : TensorView::contiguous(const_cast<void*>(placement), DType::kInt32, {E}, device);
    if (pr.placement_replicas > 0) {
      a.replica_counts =
          TensorView::contiguous(const_cast<void*>(replica_counts), DType::kInt32, {E}, device);
    }
    a.num_physical_experts = pr.num_physical_experts;
  }
  if (!pr.expert_map.empty()) {
    a.expert_map =
        TensorView::contiguous(const_cast<void*>(expert_map), DType::kInt32,
                               {static_cast<std::int64_t>(pr.expert_map.size())}, device);
    a.num_local_experts = pr.num_local_experts;
  }
  a.top_k_weights = TensorView::contiguous(weights, DType::kFloat32, {M, C}, device);
  a.top_k_ids = TensorView::contiguous(ids, pr.id_dtype, {M, C}, device);
  return a;
}

namespace {

void widen_ids(const std::vector<std::uint8_t>& raw, DType id_dtype,
               std::vector<std::int64_t>* ids) {
  const std::size_t n = raw.size() / dtype_size(id_dtype);
  ids->resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    if (id_dtype == DType::kInt64) {
      std::memcpy(&(*ids)[i], raw.data() + 8 * i, 8);
    } else {
      std::int32_t v;
      std::memcpy(&v, raw.data() + 4 * i, 4);
      (*ids)[i] = v;
    }
  }
}

constexpr int kPoisonByte = 0x7b;

// A device copy of `bytes` bytes of host memory (none for 0 bytes).
Status upload(const void* src, std::size_t bytes, DeviceBuffer* dst) {
  Status st = DeviceBuffer::allocate(bytes, dst);
  if (st.ok()) st = copy_to_device(dst->get(), src, bytes);
  return st;
}  // ids 0x7b7b7b7b, weights ~1.3e36: never a valid output

}  // namespace

Status run_routing_cpu(const RoutingProblem& pr, RoutingResult* out) {
  const std::size_t n =
      static_cast<std::size_t>(pr.num_tokens) * static_cast<std::size_t>(pr.columns());
  out->weights.assign(n, 0.0f);
  std::memset(out->weights.data(), kPoisonByte, n * sizeof(float));
  std::vector<std::uint8_t> ids(n * dtype_size(pr.id_dtype), kPoisonByte);
  const std::int32_t np = pr.num_tokens_non_padded;
  RoutingArgs a =
      routing_args(pr, Device::kCpu, pr.logits.data(), pr.bias.data(), &np, pr.placement.data(),
                   pr.replica_counts.data(), pr.expert_map.data(), out->weights.data(), ids.data());
  Status st = route_cpu(pr.params, a);
  if (!st.ok()) return st;
  widen_ids(ids, pr.id_dtype, &out->ids);
  return Status::Ok();
}

Status run_routing_cuda(const RoutingProblem& pr, RoutingResult* out, int layout) {
  const std::size_t n =
      static_cast<std::size_t>(pr.num_tokens) * static_cast<std::size_t>(pr.columns());
  const std::size_t id_bytes = n * dtype_size(pr.id_dtype);
  DeviceBuffer logits, bias, np, placement, counts, emap, weights, ids;
  const std::int32_t np_value = pr.num_tokens_non_padded;
  Status st = upload(pr.logits.data(), pr.logits.size(), &logits);
  if (st.ok()) st = upload(pr.bias.data(), pr.bias.size() * 4, &bias);
  if (st.ok()) st = upload(&np_value, 4, &np);
  if (st.ok()) st = upload(pr.placement.data(), pr.placement.size() * 4, &placement);
  if (st.ok()) st = upload(pr.replica_counts.data(), pr.replica_counts.size() * 4, &counts);
  if (st.ok()) st = upload(pr.expert_map.data(), pr.expert_map.size() * 4, &emap);
  if (st.ok()) st = DeviceBuffer::allocate(n * sizeof(float), &weights);
  if (st.ok()) st = DeviceBuffer::allocate(id_bytes, &ids);
  if (st.ok()) st = fill_device_bytes(weights.get(), kPoisonByte, n * sizeof(float));
  if (st.ok()) st = fill_device_bytes(ids.get(), kPoisonByte, id_bytes);
  if (!st.ok()) return st;
  RoutingArgs a = routing_args(pr, Device::kCuda, logits.get(), bias.get(), np.get(),
                               placement.get(), counts.get(), emap.get(), weights.get(), ids.get());
  st = layout == 0 ? route_cuda(pr.params, a, nullptr, 0, nullptr)
                   : detail::route_cuda_layout(pr.params, a, layout, nullptr);
  if (st.ok()) st = device_synchronize();
  if (!st.ok()) return st;
  out->weights.resize(n);
  std::vector<std::uint8_t> raw_ids(id_bytes);
  st = copy_to_host(out->weights.data(), weights.get(), n * sizeof(float));
  if (st.ok()) st = copy_to_host(raw_ids.data(), ids.get(), id_bytes);
  if (!st.ok()) return st;
  widen_ids(raw_ids, pr.id_dtype, &out->ids);
  return Status::Ok();
}

RoutingDiff compare_routing(const RoutingProblem& pr, const RoutingResult& a,
                            const RoutingResult& b) {
  RoutingDiff d;
  const int C = pr.columns();
  if (a.ids.size() != b.ids.size() || a.weights.size() != b.weights.size()) {
    d.rows_wrong = pr.num_tokens;
    d.first_bad_row = 0;
    d.first_detail = "result sizes differ";
    return d;
  }
  for (std::int64_t r = 0; r < pr.num_tokens; ++r) {
    for (int c = 0; c < C; ++c) {
      const std::size_t i = static_cast<std::size_t>(r * C + c);
      std::uint32_t wa, wb;
      std::memcpy(&wa, &a.weights[i], 4);
      std::memcpy(&wb, &b.weights[i], 4);
      if (a.ids[i] != b.ids[i] || wa != wb) {
        if (d.rows_wrong == 0) {
          d.first_bad_row = r;
          d.first_detail = "row " + std::to_string(r) + " col " + std::to_string(c) + ": id " +
                           std::to_string(a.ids[i]) + " vs " + std::to_string(b.ids[i]) +
                           ", weight " + std::to_string(a.weights[i]) + " vs " +
                           std::to_string(b.weights[i]);
        }
        ++d.rows_wrong;
        break;
      }
    }
  }
  return d;
}

}  // namespace switchyard::tools

namespace switchyard::tools {

Status time_routing_cuda(const RoutingProblem& pr, std::size_t rotate_bytes, int calls, int replays,
                         GraphTiming* out, int* buffers_used, int layout) {
  const std::size_t n =
      static_cast<std::size_t>(pr.num_tokens) * static_cast<std::size_t>(pr.columns());
  const std::size_t per_call = std::max<std::size_t>(1, pr.input_bytes() + pr.output_bytes());
  const int nbuf = static_cast<int>(std::clamp<std::size_t>(
      (rotate_bytes + per_call - 1) / per_call, 1, static_cast<std::size_t>(calls)));
  struct Set {
    DeviceBuffer logits, bias, weights, ids;
  };
  std::vector<Set> sets(static_cast<std::size_t>(nbuf));
  DeviceBuffer np, placement, counts, emap;
  const std::int32_t np_value = pr.num_tokens_non_padded;
  Status st = upload(&np_value, 4, &np);
  if (st.ok()) st = upload(pr.placement.data(), pr.placement.size() * 4, &placement);
  if (st.ok()) st = upload(pr.replica_counts.data(), pr.replica_counts.size() * 4, &counts);
  if (st.ok()) st = upload(pr.expert_map.data(), pr.expert_map.size() * 4, &emap);
  for (Set& s : sets) {
    if (st.ok()) st = upload(pr.logits.data(), pr.logits.size(), &s.logits);
    if (st.ok()) st = upload(pr.bias.data(), pr.bias.size() * 4, &s.bias);
    if (st.ok()) st = DeviceBuffer::allocate(n * sizeof(float), &s.weights);
    if (st.ok()) st = DeviceBuffer::allocate(n * dtype_size(pr.id_dtype), &s.ids);
  }
  if (!st.ok()) return st;
  std::vector<RoutingArgs> args;
  for (Set& s : sets) {
    args.push_back(routing_args(pr, Device::kCuda, s.logits.get(), s.bias.get(), np.get(),
                                placement.get(), counts.get(), emap.get(), s.weights.get(),
                                s.ids.get()));
  }
  if (buffers_used) *buffers_used = nbuf;
  return time_graph(
      calls, replays,
      [&](int call, cudaStream_t stream) {
        return detail::route_cuda_layout(pr.params, args[static_cast<std::size_t>(call % nbuf)],
                                         layout, stream);
      },
      out);
}

}  // namespace switchyard::tools
