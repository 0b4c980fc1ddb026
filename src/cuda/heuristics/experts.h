// Problem -> launch plan for the fused MoE forward on CUDA. Pure host code (no CUDA headers),
// unit-testable. Inputs are only what the host knows without reading device memory: the token
// count M, top_k K and the shape (E, H, I); never the per-expert counts, which live on the device
// (no host synchronisation, so a plan is fixed when a CUDA graph is captured).
//
// Paths (docs in src/cuda/launch/experts.cu):
//  - decode: the swap-AB streaming kernels; every hit expert's weights are read once per work item
//    of up to 8 * decode_token_tiles of its rows. Memory-bound by design. Routing skew only costs
//    speed (an expert with more rows than a work item holds gets several work items, each reading
//    the expert's weights again).
//  - grouped GEMM: CUTLASS sm90a ptr-array grouped GEMM (TMA + wgmma, warp-specialized), with a
//    tile of 64 rows (ping-pong) while the expected rows per expert are small and 128 rows
//    (cooperative) beyond: a 128-row tile on a 40-row expert would waste 2/3 of its MMAs.
// The rule, from a forced-plan sweep on an H200
// (bench/results/2026-11-28-h200-s5-experts-plans.json; `switchyard bench experts --plan ...`),
// with r = expected rows per hit expert:
//  - r <= 4: decode, one 8-row tile per item. An expert's rows exceed 8 rarely (Poisson(4): 2%),
//    and the 1-tile kernel streams at 93-97% of the read ceiling (DeepSeek-V3, Mixtral).
//  - 4 < r <= 8 and E <= 32: decode with 16-row items (Mixtral 32 tokens: 87% against 82% for the
//    64-row GEMM, whose 8 launches weigh more on few experts). With 8-row items, half the experts
//    of r = 8 get two items and their weights are read twice (67%).
//  - otherwise the grouped GEMM: the decode kernel loses per byte with more token tiles (16 rows:
//    ~91%, 32: ~75%, 64: ~48%: the x rows of every item are re-read from the L2 by each column
//    block and the registers cap the bytes in flight), while the GEMM reads each weight once per
//    row tile (DeepSeek-V3 256 tokens: 88% against 81% for decode/16 and 66% for decode/8;
//    Qwen3-30B 512 tokens: 373 us against 714 us for decode/32).
#pragma once

#include <algorithm>
#include <cstdint>

namespace switchyard::heuristics {

enum class ExpertsPath : std::uint8_t { kDecode, kGroupedGemm };

// CTA tile of the grouped GEMM: rows (tokens) x columns (weight rows) x 64 (k).
// kRows64Single: the 64-row tile with no cluster (an experiment for experts of <= 64 rows, where
// the 2 x 1 cluster's second CTA has no row tile; bench --plan gemm:64:single).
enum class GemmTile : std::uint8_t { kRows64, kRows128, kRows64Single };

// The decode GEMM2 instance with one token tile (kernels/experts_decode.cuh): kNarrow (2 chunks
// in flight per warp), kDeep (4 chunks in flight: a short k streams in one round trip). kAuto: the
// rule in decode_gemm2_for. With more than one token tile GEMM2 is always narrow.
enum class DecodeGemm2 : std::uint8_t { kAuto, kNarrow, kDeep };

struct ExpertsPlan {
  ExpertsPath path = ExpertsPath::kDecode;
  int decode_token_tiles = 1;  // decode: 1, 2 or 4 tiles of 8 rows per work item
  DecodeGemm2 decode_gemm2 = DecodeGemm2::kAuto;
  // Decode with one tile: every slot of top_k_ids is its own work item and no layout kernel runs
  // (one launch less on the critical path). Chosen for one token, whose K experts are distinct:
  // with more tokens an expert hit by several would be read once per slot.
  bool decode_slot_items = false;
  GemmTile gemm_tile = GemmTile::kRows128;
  // Grouped GEMM: GEMM1 writes gate/up rounded to the input dtype (as SGLang and vLLM do) instead
  // of float32, halving the bytes of GEMM1's output and the activation's input; one more rounding
  // before the activation. Off by default (an experiment measured with bench --plan
  // gemm:R:rounded).
  bool gemm1_rounded = false;
  std::int64_t rows_per_expert = 0;  // the estimate the plan was made from
};

// k of GEMM2 (= I) up to which the one-tile GEMM2 is deep: <= 4 chunks of 64 per k warp, one round
// trip (H200, Qwen3-30B 32 tokens: GEMM2 111 -> 101 us by ncu; DeepSeek-V3's k = 2048 was slower
// deep, 68 -> 71 us: 2 CTAs per SM instead of 3).
inline constexpr std::int64_t kDecodeDeepMaxK = 1024;

// The GEMM2 instance a decode plan runs (never kAuto).
inline DecodeGemm2 decode_gemm2_for(const ExpertsPlan& plan, std::int64_t gemm2_k) {
  if (plan.decode_token_tiles != 1) return DecodeGemm2::kNarrow;
  if (plan.decode_gemm2 != DecodeGemm2::kAuto) return plan.decode_gemm2;
  return gemm2_k <= kDecodeDeepMaxK ? DecodeGemm2::kDeep : DecodeGemm2::kNarrow;
}

inline constexpr std::int64_t kDecodeMaxRowsPerExpert = 8;
inline constexpr std::int64_t kDecodeOneTileMaxRowsPerExpert = 4;
inline constexpr std::int32_t kDecodeTwoTilesMaxExperts = 32;
inline constexpr std::int64_t kGemmRows64MaxRowsPerExpert = 96;
inline constexpr int kDecodeMaxTokenTiles = 8;

// Expected rows per hit expert when M*K slots spread over E experts: ceil(slots / min(E, slots)).
inline std::int64_t expected_rows_per_expert(std::int64_t num_slots, std::int32_t num_experts) {
  if (num_slots <= 0 || num_experts <= 0) return 0;
  const std::int64_t hit = std::min<std::int64_t>(num_experts, num_slots);
  return (num_slots + hit - 1) / hit;
}

// hidden_size / intermediate_size are accepted so that a later rule may use them (e.g. the
// decode grid's occupancy at tiny I); today's rule needs the rows per expert and E.
inline ExpertsPlan plan_experts(std::int64_t num_tokens, std::int32_t top_k,
                                std::int32_t num_experts, std::int32_t hidden_size,
                                std::int32_t intermediate_size) {
  (void)hidden_size;
  (void)intermediate_size;
  ExpertsPlan plan;
  const std::int64_t r = expected_rows_per_expert(num_tokens * top_k, num_experts);
  plan.rows_per_expert = r;
  if (r <= kDecodeOneTileMaxRowsPerExpert) {
    plan.path = ExpertsPath::kDecode;
    plan.decode_token_tiles = 1;
    plan.decode_slot_items = num_tokens == 1;
  } else if (r <= kDecodeMaxRowsPerExpert && num_experts <= kDecodeTwoTilesMaxExperts) {
    plan.path = ExpertsPath::kDecode;
    plan.decode_token_tiles = 2;
  } else {
    plan.path = ExpertsPath::kGroupedGemm;
  }
  plan.gemm_tile = r <= kGemmRows64MaxRowsPerExpert ? GemmTile::kRows64 : GemmTile::kRows128;
  return plan;
}

inline const char* experts_path_name(ExpertsPath p) {
  return p == ExpertsPath::kDecode ? "decode" : "grouped_gemm";
}
inline const char* decode_gemm2_name(DecodeGemm2 v) {
  switch (v) {
    case DecodeGemm2::kNarrow:
      return "narrow";
    case DecodeGemm2::kDeep:
      return "deep";
    default:
      return "auto";
  }
}
inline const char* gemm_tile_name(GemmTile t) {
  return t == GemmTile::kRows64         ? "64x256x64 pingpong"
         : t == GemmTile::kRows64Single ? "64x256x64 pingpong, cluster 1x1"
                                        : "128x256x64 cooperative";
}

}  // namespace switchyard::heuristics
