// Problem -> launch plan for the fused MoE forward on CUDA. Pure host code (no CUDA headers),
// unit-testable. Inputs are only what the host knows without reading device memory: the token
// count M, top_k K and the shape (E, H, I); never the per-expert counts, which live on the device
// (no host synchronisation, so a plan is fixed when a CUDA graph is captured).
//
// Paths (docs in src/cuda/launch/experts.cu):
//  - decode: the swap-AB streaming kernels; every hit expert's weights are read once per work item
//    of up to 8 * decode_token_tiles of its rows. Memory-bound by design: used when the expected
//    rows per hit expert, ceil(M*K / min(E, M*K)), is at most kDecodeMaxRowsPerExpert. Routing skew
//    only costs speed (an expert with more rows than a work item holds gets several work items).
//  - grouped GEMM: CUTLASS sm90a ptr-array grouped GEMM (TMA + wgmma, warp-specialized), with a
//    tile of 64 rows (ping-pong) while the expected rows per expert are small and 128 rows
//    (cooperative) beyond: a 128-row tile on a 40-row expert would waste 2/3 of its MMAs.
#pragma once

#include <algorithm>
#include <cstdint>

namespace switchyard::heuristics {

enum class ExpertsPath : std::uint8_t { kDecode, kGroupedGemm };

// CTA tile of the grouped GEMM: rows (tokens) x columns (weight rows) x 64 (k).
enum class GemmTile : std::uint8_t { kRows64, kRows128 };

struct ExpertsPlan {
  ExpertsPath path = ExpertsPath::kDecode;
  int decode_token_tiles = 1;  // decode: 1, 2 or 4 tiles of 8 rows per work item
  GemmTile gemm_tile = GemmTile::kRows128;
  std::int64_t rows_per_expert = 0;  // the estimate the plan was made from
};

inline constexpr std::int64_t kDecodeMaxRowsPerExpert = 32;
inline constexpr std::int64_t kGemmRows64MaxRowsPerExpert = 96;
inline constexpr int kDecodeMaxTokenTiles = 4;

// Expected rows per hit expert when M*K slots spread over E experts: ceil(slots / min(E, slots)).
inline std::int64_t expected_rows_per_expert(std::int64_t num_slots, std::int32_t num_experts) {
  if (num_slots <= 0 || num_experts <= 0) return 0;
  const std::int64_t hit = std::min<std::int64_t>(num_experts, num_slots);
  return (num_slots + hit - 1) / hit;
}

inline int decode_token_tiles_for(std::int64_t rows_per_expert) {
  if (rows_per_expert <= 8) return 1;
  if (rows_per_expert <= 16) return 2;
  return kDecodeMaxTokenTiles;
}

// hidden_size / intermediate_size are accepted so that a later rule may use them (e.g. the
// decode grid's occupancy at tiny I); today's rule needs only the rows per expert.
inline ExpertsPlan plan_experts(std::int64_t num_tokens, std::int32_t top_k,
                                std::int32_t num_experts, std::int32_t hidden_size,
                                std::int32_t intermediate_size) {
  (void)hidden_size;
  (void)intermediate_size;
  ExpertsPlan plan;
  plan.rows_per_expert = expected_rows_per_expert(num_tokens * top_k, num_experts);
  plan.path = plan.rows_per_expert <= kDecodeMaxRowsPerExpert ? ExpertsPath::kDecode
                                                              : ExpertsPath::kGroupedGemm;
  plan.decode_token_tiles = decode_token_tiles_for(plan.rows_per_expert);
  plan.gemm_tile =
      plan.rows_per_expert <= kGemmRows64MaxRowsPerExpert ? GemmTile::kRows64 : GemmTile::kRows128;
  return plan;
}

inline const char* experts_path_name(ExpertsPath p) {
  return p == ExpertsPath::kDecode ? "decode" : "grouped_gemm";
}
inline const char* gemm_tile_name(GemmTile t) {
  return t == GemmTile::kRows64 ? "64x256x64 pingpong" : "128x256x64 cooperative";
}

}  // namespace switchyard::heuristics
