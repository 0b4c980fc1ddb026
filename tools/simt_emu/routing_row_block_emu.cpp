// Runs the row-block routing kernel (src/cuda/kernels/routing_row_block.cuh) on the host SIMT
// emulator against route_cpu, bit for bit, in every row-block layout: the CUDA tests' matrix and
// fuzz cases at small M, without a GPU. Built and run by CTest (tests/CMakeLists.txt:
// routing_row_block_emu.matrix and .fuzz; GCC builds).
//   build-cpu/tests/routing_row_block_emu matrix | fuzz [cases] | presets | preset NAME M
#include "cuda_emu.h"
// The row-block kernel's dynamic shared memory (`extern __shared__`, thread_local here: build with
// -fno-extern-tls-init, or GCC calls a missing TLS initialiser): room for 2 x 1024 words (ord and
// score for E <= 1024 in every layout) with margin.
namespace switchyard::kernels {
thread_local std::uint32_t row_block_leaves[2 * 2048];
}  // namespace switchyard::kernels
// clang-format off
#include "cuda/kernels/routing_row_block.cuh"
// clang-format on
#include <cstdio>
#include <cstring>
#include <string>

#include "common/routing_kernel_params.h"
#include "cuda/heuristics/routing.h"
#include "routing_test_util.h"
#include "switchyard/models.h"

using namespace switchyard;
using namespace switchyard::testing;

namespace {

template <typename T, int V>
void run_kernel(const detail::RoutingKernelParams& kp, bool vec_ok, bool ids64, unsigned threads) {
  const kernels::RowBlockPlan plan =
      kernels::make_row_block_plan(kp.p, static_cast<int>(threads), V);
  emu::launch(
      static_cast<unsigned>(kp.num_tokens), threads,
      [&]() { kernels::routing_row_block_kernel<T, V, false>(kp, plan, vec_ok, ids64, nullptr); },
      [] { std::memset(kernels::row_block_leaves, 0xab, sizeof kernels::row_block_leaves); });
}

template <typename T>
void run_vals(int V, const detail::RoutingKernelParams& kp, bool vec_ok, bool ids64,
              unsigned threads) {
  if (V == 1) run_kernel<T, 1>(kp, vec_ok, ids64, threads);
  if (V == 2) run_kernel<T, 2>(kp, vec_ok, ids64, threads);
  if (V == 4) run_kernel<T, 4>(kp, vec_ok, ids64, threads);
  if (V == 8) run_kernel<T, 8>(kp, vec_ok, ids64, threads);
  if (V == 16) run_kernel<T, 16>(kp, vec_ok, ids64, threads);
}

// Emulated GPU run of the row-block layout with V experts per thread.
Status run_emu(const tools::RoutingProblem& pr, int V, tools::RoutingResult* out) {
  const std::size_t n =
      static_cast<std::size_t>(pr.num_tokens) * static_cast<std::size_t>(pr.columns());
  out->weights.assign(n, 0.0f);
  if (n) std::memset(out->weights.data(), 0x7b, n * 4);
  std::vector<std::uint8_t> ids(n * dtype_size(pr.id_dtype), 0x7b);
  const std::int32_t np = pr.num_tokens_non_padded;
  RoutingArgs a = tools::routing_args(pr, Device::kCpu, pr.logits.data(), pr.bias.data(), &np,
                                      pr.placement.data(), pr.replica_counts.data(),
                                      pr.expert_map.data(), out->weights.data(), ids.data());
  Status st = routing_check(pr.params, a, Device::kCpu);
  if (!st.ok()) return st;
  const detail::RoutingKernelParams kp = detail::make_routing_kernel_params(pr.params, a);
  if (kp.num_tokens > 0) {
    const std::size_t elem = dtype_size(a.logits.dtype);
    const bool vec_ok = reinterpret_cast<std::uintptr_t>(kp.logits) % 16 == 0 &&
                        (static_cast<std::size_t>(kp.row_stride) * elem) % 16 == 0;
    const bool ids64 = a.top_k_ids.dtype == DType::kInt64;
    const unsigned threads =
        static_cast<unsigned>(heuristics::routing_row_block_threads(pr.params.num_experts, V));
    switch (a.logits.dtype) {
      case DType::kFloat32:
        run_vals<float>(V, kp, vec_ok, ids64, threads);
        break;
      case DType::kBFloat16:
        run_vals<detail::bf16_t>(V, kp, vec_ok, ids64, threads);
        break;
      default:
        run_vals<detail::fp16_t>(V, kp, vec_ok, ids64, threads);
        break;
    }
  }
  out->ids.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    if (pr.id_dtype == DType::kInt64) {
      std::int64_t v;
      std::memcpy(&v, ids.data() + 8 * i, 8);
      out->ids[i] = v;
    } else {
      std::int32_t v;
      std::memcpy(&v, ids.data() + 4 * i, 4);
      out->ids[i] = v;
    }
  }
  return Status::Ok();
}

int g_cases = 0, g_fail = 0;

void check(const tools::RoutingProblem& pr, const std::string& id) {
  tools::RoutingResult cpu;
  Status st = tools::run_routing_cpu(pr, &cpu);
  if (!st.ok()) {
    std::printf("%s cpu: %s\n", id.c_str(), st.to_string().c_str());
    ++g_fail;
    return;
  }
  for (int V : {1, 2, 4, 8, 16}) {
    if (!heuristics::routing_row_block_valid(pr.params.num_experts, V)) continue;
    tools::RoutingResult gpu;
    st = run_emu(pr, V, &gpu);
    ++g_cases;
    if (!st.ok()) {
      std::printf("%s V%d emu: %s\n", id.c_str(), V, st.to_string().c_str());
      ++g_fail;
      continue;
    }
    const tools::RoutingDiff d = tools::compare_routing(pr, cpu, gpu);
    if (d.rows_wrong) {
      std::printf("FAIL %s V%d: %lld rows; %s\n", id.c_str(), V,
                  static_cast<long long>(d.rows_wrong), d.first_detail.c_str());
      ++g_fail;
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "matrix";
  if (mode == "matrix") {
    const std::vector<int> experts = {1, 2, 3, 8, 33, 64, 128, 160, 256, 288, 384, 512, 1024};
    const std::vector<int> ks = {1, 2, 4, 6, 8, 9, 16, 32};
    const DType dtypes[] = {DType::kBFloat16, DType::kFloat32, DType::kFloat16};
    for (Variant v : all_variants()) {
      for (int E : experts) {
        for (int K : ks) {
          RoutingParams p;
          if (!variant_params(v, E, K, &p)) continue;
          const std::int64_t M = E >= 512 ? 3 : 6;
          const std::string id = std::string("routing/") + variant_name(v) + "/E" +
                                 std::to_string(E) + "/K" + std::to_string(K);
          tools::RoutingProblem pr = make_problem(p, M, dtypes[(E + K) % 3], cached_logits(E, M),
                                                  variant_has_bias(v), tools::seed_from_name(id));
          if ((E + K) % 5 == 0) pr.id_dtype = DType::kInt64;
          check(pr, id);
        }
      }
      std::printf("variant %s done: cases %d failures %d\n", variant_name(v), g_cases, g_fail);
      std::fflush(stdout);
    }
  } else if (mode == "fuzz") {
    const int num_cases = argc > 2 ? std::atoi(argv[2]) : 100;
    for (int c = 0; c < num_cases; ++c) {
      FuzzCase fc;
      if (!make_fuzz_case(c, 12, 6, true, &fc)) continue;
      check(fc.problem, fc.id + " " + variant_name(fc.variant) + " E" + std::to_string(fc.E) +
                            " K" + std::to_string(fc.K) + " M" +
                            std::to_string(fc.problem.num_tokens));
    }
  } else if (mode == "preset") {
    const ModelPreset* m = find_model_preset(argv[2]);
    const std::int64_t M = std::atoi(argv[3]);
    const RoutingParams p = m->routing;
    const int E = p.num_experts;
    tools::RoutingProblem pr =
        make_problem(p, M, DType::kBFloat16, cached_logits(E, M), m->has_bias, 3);
    check(pr, m->name);
  } else if (mode == "presets") {
    for (const ModelPreset& m : model_presets()) {
      for (std::int64_t M : {1, 33}) {
        const RoutingParams p = m.routing;
        tools::Rng rng(tools::seed_from_name("routing_trace/" + m.name));
        const int E = p.num_experts;
        std::vector<float> lf(static_cast<std::size_t>(M * E));
        for (float& v : lf) v = static_cast<float>(rng.normal());
        tools::RoutingProblem pr = make_problem(p, M, DType::kBFloat16, lf, m.has_bias, 3);
        check(pr, m.name + " M" + std::to_string(M));
      }
    }
  }
  std::printf("cases %d failures %d\n", g_cases, g_fail);
  return g_fail != 0;
}
