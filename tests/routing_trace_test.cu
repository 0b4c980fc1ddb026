// Where a decode-size routing call spends its time: traced copies of the library's routing kernels
// (kTrace = true; the library's own instances are unchanged) write one thread's clock64() at each
// phase boundary (lane groups: row 0 lane 0; row blocks: row 0 thread 0, which runs every phase).
// The phase table is a diagnostic (run with --gtest_also_run_disabled_tests); the check that a
// traced copy returns the CPU's bits, in both kernels, always runs. Skips itself without a GPU.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "../src/common/dtype_convert.h"
#include "../src/common/routing_kernel_params.h"
#include "../src/cuda/heuristics/routing.h"
#include "../src/cuda/kernels/routing.cuh"
#include "../src/cuda/kernels/routing_row_block.cuh"
#include "common/gpu_bench.h"
#include "common/rng.h"
#include "common/synthetic.h"
#include "switchyard/models.h"
#include "switchyard/routing.h"
#include "switchyard/runtime.h"

namespace switchyard::testing {
namespace {

using tools::DeviceBuffer;

constexpr int kLaneGroupPoints = 7;                             // mark(0..6) in routing.cuh
constexpr int kRowBlockPoints = kernels::kRowBlockTracePoints;  // mark(0..7) in routing_row_block
constexpr int kMaxPoints = kRowBlockPoints;

template <int kLanes, int kVals>
void launch_traced(const detail::RoutingKernelParams& kp, unsigned blocks, std::size_t smem,
                   long long* trace) {
  kernels::routing_kernel<detail::bf16_t, kLanes, kVals, true>
      <<<blocks, kernels::kRoutingThreads, smem>>>(kp, true, false, trace);
}

template <int kVals>
void launch_traced_row_block(const detail::RoutingKernelParams& kp, unsigned blocks,
                             unsigned threads, long long* trace) {
  const kernels::RowBlockPlan plan =
      kernels::make_row_block_plan(kp.p, static_cast<int>(threads), kVals);
  kernels::routing_row_block_kernel<detail::bf16_t, kVals, true>
      <<<blocks, threads, kernels::row_block_dynamic_smem(static_cast<int>(threads), kVals)>>>(
          kp, plan, true, false, trace);
}

// Every row-block layout, and the lane-group layouts the presets below get by default (their
// decode-size layouts before row blocks); false for any other.
bool launch_for(const heuristics::RoutingLaunchConfig& cfg, const detail::RoutingKernelParams& kp,
                std::size_t smem, long long* trace) {
  const auto blocks = static_cast<unsigned>(cfg.blocks);
  if (cfg.row_block) {
    const auto threads = static_cast<unsigned>(cfg.threads);
    if (cfg.vals == 1) {
      launch_traced_row_block<1>(kp, blocks, threads, trace);
    } else if (cfg.vals == 2) {
      launch_traced_row_block<2>(kp, blocks, threads, trace);
    } else if (cfg.vals == 4) {
      launch_traced_row_block<4>(kp, blocks, threads, trace);
    } else {
      return false;
    }
  } else if (cfg.lanes == 8 && cfg.vals == 1) {
    launch_traced<8, 1>(kp, blocks, smem, trace);
  } else if (cfg.lanes == 32 && cfg.vals == 4) {
    launch_traced<32, 4>(kp, blocks, smem, trace);
  } else if (cfg.lanes == 32 && cfg.vals == 8) {
    launch_traced<32, 8>(kp, blocks, smem, trace);
  } else if (cfg.lanes == 32 && cfg.vals == 16) {
    launch_traced<32, 16>(kp, blocks, smem, trace);
  } else {
    return false;
  }
  return cudaGetLastError() == cudaSuccess;
}

struct Traced {
  std::vector<long long> points;
  bool launched = false;
  bool row_block = false;
};

// The lane-group layout of a preset's E at decode sizes before row blocks (min(32, C) lanes).
int lane_group_code(int num_experts) {
  const int capacity = detail::routing_row_capacity(num_experts);
  return capacity > 32 ? capacity / 32 : 1;
}

// Routes M rows of seeded bf16 logits for the preset with a traced kernel in the given layout (a
// layout code; 0: the heuristic's), checks the result against route_cpu bit for bit, and returns
// row 0's phase clocks.
Traced trace_preset(const std::string& name, std::int64_t M, int layout = 0) {
  const ModelPreset* m = find_model_preset(name);
  EXPECT_NE(m, nullptr) << name;
  Traced out;
  if (m == nullptr) return out;
  const RoutingParams p = m->routing;
  const std::int64_t E = p.num_experts, C = p.top_k + p.num_shared_experts;
  tools::Rng rng(tools::seed_from_name("routing_trace/" + name));
  std::vector<float> lf(static_cast<std::size_t>(M * E)), bias(static_cast<std::size_t>(E));
  for (float& v : lf) v = static_cast<float>(rng.normal());
  for (float& v : bias) v = static_cast<float>(rng.uniform() * 0.1);
  const std::vector<std::uint8_t> logits = tools::encode_floats(lf, DType::kBFloat16);
  std::vector<float> w_cpu(static_cast<std::size_t>(M * C)), w_gpu(w_cpu.size());
  std::vector<std::int32_t> id_cpu(static_cast<std::size_t>(M * C)), id_gpu(id_cpu.size());
  RoutingArgs a;
  a.logits =
      TensorView::contiguous(const_cast<std::uint8_t*>(logits.data()), DType::kBFloat16, {M, E});
  if (m->has_bias) a.bias = TensorView::contiguous(bias.data(), DType::kFloat32, {E});
  a.top_k_weights = TensorView::contiguous(w_cpu.data(), DType::kFloat32, {M, C});
  a.top_k_ids = TensorView::contiguous(id_cpu.data(), DType::kInt32, {M, C});
  const Status st = route_cpu(p, a);
  EXPECT_TRUE(st.ok()) << st.to_string();

  DeviceBuffer d_logits, d_bias, d_w, d_ids, d_trace;
  EXPECT_TRUE(DeviceBuffer::allocate(logits.size(), &d_logits).ok());
  EXPECT_TRUE(tools::copy_to_device(d_logits.get(), logits.data(), logits.size()).ok());
  EXPECT_TRUE(DeviceBuffer::allocate(bias.size() * 4, &d_bias).ok());
  EXPECT_TRUE(tools::copy_to_device(d_bias.get(), bias.data(), bias.size() * 4).ok());
  EXPECT_TRUE(DeviceBuffer::allocate(w_gpu.size() * 4, &d_w).ok());
  EXPECT_TRUE(DeviceBuffer::allocate(id_gpu.size() * 4, &d_ids).ok());
  EXPECT_TRUE(DeviceBuffer::allocate(kMaxPoints * 8, &d_trace).ok());
  RoutingArgs g = a;
  g.logits.data = d_logits.get();
  g.logits.device = Device::kCuda;
  if (m->has_bias) {
    g.bias.data = d_bias.get();
    g.bias.device = Device::kCuda;
  }
  g.top_k_weights = TensorView::contiguous(d_w.get(), DType::kFloat32, {M, C}, Device::kCuda);
  g.top_k_ids = TensorView::contiguous(d_ids.get(), DType::kInt32, {M, C}, Device::kCuda);
  const detail::RoutingKernelParams kp = detail::make_routing_kernel_params(p, g);
  const heuristics::RoutingLaunchConfig cfg =
      heuristics::routing_launch_config(p.num_experts, M, layout);
  out.row_block = cfg.row_block;
  const std::size_t smem = p.group_score == GroupScore::kNone || cfg.row_block
                               ? 0
                               : static_cast<std::size_t>(cfg.rows_per_block) *
                                     static_cast<std::size_t>(p.num_groups) * 4;
  auto* trace = static_cast<long long*>(d_trace.get());
  for (int rep = 0; rep < 3; ++rep) {  // the last launch's clocks: warm caches and code
    out.launched = launch_for(cfg, kp, smem, trace);
    if (!out.launched) return out;
  }
  EXPECT_TRUE(tools::device_synchronize().ok());
  EXPECT_TRUE(tools::copy_to_host(w_gpu.data(), d_w.get(), w_gpu.size() * 4).ok());
  EXPECT_TRUE(tools::copy_to_host(id_gpu.data(), d_ids.get(), id_gpu.size() * 4).ok());
  EXPECT_EQ(id_gpu, id_cpu) << name << ": ids differ from the CPU";
  EXPECT_EQ(0, std::memcmp(w_gpu.data(), w_cpu.data(), w_cpu.size() * 4))
      << name << ": weights differ from the CPU";
  out.points.resize(cfg.row_block ? kRowBlockPoints : kLaneGroupPoints);
  EXPECT_TRUE(tools::copy_to_host(out.points.data(), trace, out.points.size() * 8).ok());
  return out;
}

#define SKIP_WITHOUT_GPU() \
  if (!cuda_device_available()) GTEST_SKIP() << "no CUDA device"

const char* const kPresets[] = {"mixtral-8x7b", "qwen3-30b-a3b", "deepseek-v3", "kimi-k2",
                                "deepseek-v2"};

// The heuristic's layout at M rows, or where that is the warp kernel (E <= 32: it has no traced
// instance), the row block of one warp it replaced.
int traced_default_layout(int num_experts, std::int64_t M) {
  return heuristics::routing_launch_config(num_experts, M).warp ? -1 : 0;
}

TEST(RoutingTrace, TracedKernelMatchesCpu) {
  SKIP_WITHOUT_GPU();
  for (const char* name : kPresets) {
    const int E = find_model_preset(name)->routing.num_experts;
    for (int layout : {traced_default_layout(E, 33), lane_group_code(E)}) {
      const Traced t = trace_preset(name, 33, layout);
      EXPECT_TRUE(t.launched) << name << " layout " << layout << ": no traced instance";
    }
  }
}

// Phases, lane groups: start | issue loads | keys (incl. load latency) | softmax / group selection
// | K argmax rounds | weights and renormalisation | stores.
// Phases, row blocks: issue loads | keys (incl. load latency) | warp partials + barrier A |
// groups, softmax subtrees, threshold, candidates + barrier C | selection (rank or exact fallback)
// | weights and renormalisation | shared experts and stores.
// Cycles of the traced thread of row 0, at the SM clock.
TEST(RoutingTrace, DISABLED_PhaseCycles) {
  SKIP_WITHOUT_GPU();
  for (const char* name : kPresets) {
    const int E = find_model_preset(name)->routing.num_experts;
    for (std::int64_t M : {1, 512}) {
      for (int layout : {traced_default_layout(E, M), lane_group_code(E)}) {
        const Traced t = trace_preset(name, M, layout);
        if (!t.launched || t.points.size() < 2) continue;
        std::string line = std::string(name) + " M=" + std::to_string(M) +
                           (t.row_block ? " row block" : " lane groups") + " phase cycles:";
        for (std::size_t k = 1; k < t.points.size(); ++k) {
          line += " ";
          line += std::to_string(t.points[k] - t.points[k - 1]);
        }
        std::printf("%s total %lld\n", line.c_str(), t.points.back() - t.points.front());
      }
    }
  }
}

}  // namespace
}  // namespace switchyard::testing
