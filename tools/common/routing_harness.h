// Runs one routing problem on a backend from host data, and compares two results bit for bit.
// Used by `switchyard run`, `switchyard bench routing` and the tests (the ggml-style harness:
// the CPU backend is the oracle for every other backend).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "switchyard/routing.h"

namespace switchyard::tools {

struct RoutingProblem {
  RoutingParams params;
  std::int64_t num_tokens = 0;
  DType logits_dtype = DType::kBFloat16;
  DType id_dtype = DType::kInt32;
  std::vector<std::uint8_t> logits;          // [num_tokens, E] encoded in logits_dtype, contiguous
  std::vector<float> bias;                   // [E] or empty
  std::int32_t num_tokens_non_padded = -1;   // < 0: no padding scalar
  std::vector<std::int32_t> placement;       // [E] or [E, placement_replicas], or empty
  int placement_replicas = 0;                // 0: static map (1-D placement)
  std::vector<std::int32_t> replica_counts;  // [E] with a replica table
  std::int32_t num_physical_experts = 0;
  std::vector<std::int32_t> expert_map;  // [P] or empty
  std::int32_t num_local_experts = 0;

  int columns() const { return params.top_k + params.num_shared_experts; }
  std::size_t input_bytes() const;   // logits + bias: what a call reads at least
  std::size_t output_bytes() const;  // weights + ids
};

struct RoutingResult {
  std::vector<float> weights;     // [M, K+S]
  std::vector<std::int64_t> ids;  // [M, K+S], widened from the id dtype
};

// Views of a problem's buffers at the given addresses (host or device).
RoutingArgs routing_args(const RoutingProblem& pr, Device device, const void* logits,
                         const void* bias, const void* non_padded, const void* placement,
                         const void* replica_counts, const void* expert_map, void* weights,
                         void* ids);

Status run_routing_cpu(const RoutingProblem& pr, RoutingResult* out);
// Copies inputs to the GPU, poisons the outputs, routes, copies back (synchronous). `layout`
// forces the kernel layout (a layout code of src/cuda/heuristics/routing.h; 0: the heuristic's).
Status run_routing_cuda(const RoutingProblem& pr, RoutingResult* out, int layout = 0);

struct RoutingDiff {
  std::int64_t rows_wrong = 0;
  std::int64_t first_bad_row = -1;
  std::string first_detail;  // "row 17 col 3: id 12 vs 40, weight 0.1 vs 0.2"
};
// Bitwise comparison (weights compared as bit patterns).
RoutingDiff compare_routing(const RoutingProblem& pr, const RoutingResult& a,
                            const RoutingResult& b);

}  // namespace switchyard::tools

namespace switchyard::tools {

struct GraphTiming;
// Times route_cuda on the problem with the fixed method of gpu_bench.h: `calls` calls per graph
// rotating over enough input/output copies to cover `rotate_bytes` (use >= 2x the L2 size so each
// call reads from DRAM, as in a real layer), `replays` timed replays.
// `layout` forces the kernel layout (a layout code of src/cuda/heuristics/routing.h; 0: the
// heuristic's choice).
Status time_routing_cuda(const RoutingProblem& pr, std::size_t rotate_bytes, int calls, int replays,
                         GraphTiming* out, int* buffers_used, int layout = 0);

}  // namespace switchyard::tools
