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
//  - grouped GEMM: CUTLASS sm90a ptr-array grouped GEMM (TMA + wgmma, warp-specialized); tiles of
//    64 rows (ping-pong) or 128 rows (cooperative), each with no cluster or a 2 x 1 cluster.
// The rule, from forced-plan sweeps on H200s (`switchyard bench experts --plan ...`;
// bench/results/2026-11-28-h200-s6-experts-plans.json), with M tokens:
//  - M <= 8: decode, one 8-row tile per item: an expert has at most M rows (a token's K experts
//    are distinct), so every hit expert is read once. One token: slot items (no layout kernel).
//    At 8 tokens decode beat the GEMM path on Mixtral (630 vs 656 us) and Qwen3-30B (149 vs
//    159 us) and lost on DeepSeek-V3 (1217 vs 1172 us, still 91% of the read ceiling). Since
//    session 36 GEMM1 and GEMM2 run as one kernel where that pays (gemm_pair), and that kernel
//    takes M <= 8 too where it has tiles enough (kGemmPairMinTilesOverDecode).
//  - otherwise the grouped GEMM with the 64-row tile and no cluster, which beat both clustered
//    tiles at every size measured but one, 16 to 8192 tokens, on all three shapes (e.g. DeepSeek-V3
//    4096 tokens 7036 us against 8090 (64, 2 x 1) and 8917 (128, 2 x 1); Mixtral 4096 4787 against
//    5255 and 5056; Qwen3-30B 32 tokens 277 us against 289 for decode). With a 2 x 1 cluster an
//    expert of one row tile kept the cluster's second CTA idle on zero rows. The one loss: Mixtral
//    256 tokens (64 rows per expert, half its 8 experts just over one tile, whose 352 MB are then
//    read twice): 800 against 765 us with the 2 x 1 cluster.
//  - GEMM2 alone on the 64-row tile with the 2 x 1 cluster when the experts are expected to hold
//    just over one row tile (kGemm2ClusterMinRows..kGemm2ClusterMaxRows rows) and GEMM2 has few
//    column tiles (hit experts x ceil(H / 256) <= kGemm2ClusterMaxColumnTiles): there about half
//    the experts spill a few rows into a second row tile, each of which reads the expert's w2
//    again and adds a partial wave; the cluster's pair of CTAs takes both row tiles and reads w2
//    once. H200 (session 19, Mixtral, bench/results/2026-11-29-h200-s19-experts-gemm2.json), us,
//    unclustered / clustered GEMM2, two runs each: 192 tokens (48 rows per expert) 709 / 714, 208
//    (52) 728 / 717, 224 (56) 775 / 732, 240 (60) 786 / 735, 256 (64) 766-793 / 748-751, 272 (68)
//    764 / 751, 288 (72) 746 / 747, 320 (80) 749 / 754. Session 9 found the clustered GEMM2 1-3%
//    slower on Qwen3-30B (128 to 2048 tokens) and DeepSeek-V3 (256 to 2048), whose GEMM2 has
//    1024-7168 column tiles, so it stays unclustered there.
//  - with SGLang's gate/up halves (or relu2; GEMM1 cannot fuse the activation) the 128-row tile
//    without a cluster from 513 rows per expert (kGemmRows128MinRowsPerExpert): with both GEMM1s
//    writing float32 it beat the 64-row one only where the GEMMs are compute-bound, Mixtral 4096 /
//    8192 tokens (1024 / 2048 rows per expert): 4930 / 9438 us against 5180 / 9908; it lost at
//    Qwen3-30B 8192 tokens (512 rows: 1514 against 1467) and on DeepSeek-V3 up to 8192 tokens
//    (256 rows). On narrow experts (I < kGemmWideMinIntermediate) with H >= kGemmRows128MinHidden
//    from kGemmRows128MinRowsNarrow rows (session 28, call 14, both unfused, means of two runs):
//    DeepSeek-V3 r = 320 level, 512 -2.4%; Kimi K2 342 -2.9%; Qwen3-235B 400 / 512 -3.4 / -3.2%;
//    DeepSeek-V2 450 -4.4%; Qwen3-30B (H = 2048, kept at 513) 400 +2.8%, 512 -1.2%.
//  - with interleaved gate/up rows the 64-row tile's GEMM1 writes act itself
//    (gemm1_fuses_activation), and the 128-row tile (float32 GEMM1 + the activation kernel) has to
//    beat that. H200, session 28, medians of three interleaved runs in one process, the 128-row
//    tile against the fused 64-row one, on four machines (bench/results/2026-11-30-h200-s28-*.json;
//    bench/NOTES.md, session 28):
//    - wide experts (I >= kGemmWideMinIntermediate): never. Mixtral (I = 14336) 2048 /
//      4096 / 8192 / 16384 tokens (r = 512 / 1024 / 2048 / 4096) +7 / +4 / +5 / +2% in three
//      calls (e.g. 8192: 9421 9561 9564 against 9110 9014 9074 us); Llama 4 (I = 8192) r = 512 /
//      1024 level (29426 / 55314 against 29000 / 56039).
//    - a thin hidden size (H < kGemmRows128MinHidden): never. Qwen3-30B (H = 2048) r = 400 /
//      512 / 1024 +13 / +6 / 0% (the float32 round trip's share of the work goes as 1 / H).
//    - otherwise from kGemmRows128MinRowsNarrow rows: r = 256 slower (Qwen3-235B 4096 tokens +6%;
//      DeepSeek-V3 8192 +2% in session 8, against the unfused 64-row tile); r = 320 faster or
//      level (DeepSeek-V3 -3.9 / -2.5% on two machines, gpt-oss -5.5%, Qwen3-Coder -2.5%,
//      Qwen3-235B and DeepSeek-V2 level); r = 342-512 faster (Kimi K2 -10.5% at 342 and -0.9% at
//      427; DeepSeek-V3 -2.9% at 400, -4.8 / -4.5 / -3.6% at 512; gpt-oss -4.6% at 400, -4.1 /
//      -5.8% at 512; Qwen3-235B -3.1% at 400, -4.8 / -3.6 / -3.1% at 512; DeepSeek-V2 -5.4% at
//      450; Qwen3-Coder -1.8% at 409); r = 820-1024 faster (Qwen3-235B -6%, Qwen3-Coder -4%,
//      gpt-oss -9%). ncu: the 64-row GEMM1 reads the weights several times from DRAM (Qwen3-235B
//      8192 tokens: w13 2.7 times, at 2.9 TB/s; Mixtral's 3.8 times at 1.3 TB/s).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace switchyard::heuristics {

enum class ExpertsPath : std::uint8_t { kDecode, kGroupedGemm };

// CTA tile of the grouped GEMM: rows (tokens) x columns (weight rows) x 64 (k).
// kRows64 / kRows128: 2 x 1 cluster; kRows64Single / kRows128Single: no cluster (the heuristic's;
// bench --plan gemm:64:single|128:single).
enum class GemmTile : std::uint8_t { kRows64, kRows128, kRows64Single, kRows128Single };
inline constexpr GemmTile kAllGemmTiles[] = {GemmTile::kRows64, GemmTile::kRows128,
                                             GemmTile::kRows64Single, GemmTile::kRows128Single};

// The decode GEMM2 instance with one token tile (kernels/experts_decode.cuh): kNarrow (2 chunks
// in flight per warp, 2 CTAs per SM), kDeep (4 chunks in flight: a short k streams in one round
// trip), kNarrow3 (narrow, compiled for 3 CTAs per SM). kAuto: the rules in decode_gemm2_for and
// decode_gemm2_with_grid (fixed grid) or decode_gemm2_on_balanced_grid. With more than one token
// tile GEMM2 is always narrow.
enum class DecodeGemm2 : std::uint8_t { kAuto, kNarrow, kDeep, kNarrow3 };

// The decode GEMMs on the balanced grid (ExpertsPlan::decode_balanced). Measured on H200s (bench/
// NOTES.md, session 31; every preset at 2-8 tokens, interleaved in one process): GEMM2 balanced
// won or tied everywhere (Qwen3-30B 6 / 8 tokens 124.8 / 139.2 -> 120.1 / 134.8 us, gpt-oss-120b
// -2.6..-3.1%, Llama 4 up to -3.6%, DeepSeek-V3 -0.6..-1%); GEMM1 balanced as well was another
// 1-2% faster on Qwen3-30B, Qwen3-235B, gpt-oss and Llama 4 but 5-7% slower on DeepSeek-V3, Kimi
// K2 and Qwen3-Coder at 6-8 tokens (not explained: in isolation, under ncu, both GEMM1 grids take
// the same time), so GEMM1 keeps the fixed grid. With slot items (one token) GEMM2 balanced:
// DeepSeek-V3 / Kimi K2 -1.3%, Qwen3-Coder -2.4%, Mixtral and Llama 4 level.
inline constexpr int kDecodeBalancedGemm1 = 1;
inline constexpr int kDecodeBalancedGemm2 = 2;
inline constexpr int kDecodeBalancedDefault = kDecodeBalancedGemm2;

struct ExpertsPlan {
  ExpertsPath path = ExpertsPath::kDecode;
  int decode_token_tiles = 1;  // decode: 1, 2 or 4 tiles of 8 rows per work item
  DecodeGemm2 decode_gemm2 = DecodeGemm2::kAuto;
  // Decode with one tile: every slot of top_k_ids is its own work item and no layout kernel runs
  // (one launch less on the critical path). Chosen for one token, whose K experts are distinct:
  // with more tokens an expert hit by several would be read once per slot.
  bool decode_slot_items = false;
  // One or two tokens: GEMM1, GEMM2 and the combine in one cooperative kernel
  // (kernels/experts_token.cuh) that streams w13 and w2 at once, where the device and the shape
  // fit it (heuristics/experts_token.h: w2's hit rows must fit the SMs' shared memory, at two
  // tokens in part, e.g. Qwen3-30B-A3B); elsewhere the decode items. H200 (bench/NOTES.md,
  // session 27).
  bool decode_fused_token = false;
  // Decode: which of the two GEMMs run on the balanced grid (kDecodeBalanced* bits;
  // kernels::DecodeParams::balanced): resident CTAs only, each an equal share of the device-side
  // (item, column block) units, instead of one CTA per item and group of column blocks.
  int decode_balanced = kDecodeBalancedDefault;
  GemmTile gemm_tile = GemmTile::kRows128;   // GEMM1's tile
  GemmTile gemm2_tile = GemmTile::kRows128;  // GEMM2's (plan_experts sets both)
  // Grouped GEMM: GEMM1 writes gate/up rounded to the input dtype (as SGLang and vLLM do) instead
  // of float32, halving the bytes of GEMM1's output and the activation's input; one more rounding
  // before the activation. Off by default (an experiment measured with bench --plan
  // gemm:R:rounded).
  bool gemm1_rounded = false;
  // Grouped GEMM with interleaved gate/up rows (experts_w13_interleaved): GEMM1 applies the
  // activation in its epilogue (gemm1_fuses_activation) unless this is set (bench --plan
  // gemm:R:unfused, for A/B measurements).
  bool gemm1_unfused = false;
  // Grouped GEMM on the unclustered 64-row tile: CTAs take their tiles after the first from a
  // device-wide counter (experts/dynamic_group_scheduler.cuh) instead of every SM-count-th tile, so
  // faster SMs take more tiles. Same bits either way (every tile whole in one CTA). plan_experts
  // sets it up to kGemmDynamicTilesMaxRows rows per expert; tests compare both;
  // SWITCHYARD_GEMM_DYNAMIC=0 / 2 in the environment forces it off / on (A/B measurements).
  bool gemm_dynamic_tiles = false;
  // Grouped GEMM: GEMM1 and GEMM2 as one persistent kernel (experts/gemm_pair.cuh; GEMM2's tiles
  // of an expert start once its GEMM1 tiles are stored) where GEMM1 fuses the activation, GEMM2's
  // tile is kRows64Single too and there is no b2; otherwise the two kernels. plan_experts sets it
  // with gemm_dynamic_tiles (kGemmPairMaxRows); SWITCHYARD_GEMM_PAIR=0 / 2 forces it off / on.
  bool gemm_pair = false;
  std::int64_t rows_per_expert = 0;  // the estimate the plan was made from
};

// Whether the grouped-GEMM path's GEMM1 writes act itself (experts/gated_epilogue.cuh): gated
// activation with interleaved gate/up rows, on the unclustered 64-row (pingpong) tile, the one
// fused instance. H200, one process, interleaved against the float32 GEMM1 + activation kernel
// (bench/NOTES.md, session 10): Qwen3-30B 32 / 256 / 1024 / 4096 / 8192 tokens -1.5 / -3.2 / -6 /
// -10 / -8%, Mixtral 32-1024 -3.5..-4.5%, DeepSeek-V3 -0.3..-3%. The 128-row cooperative tile
// fused was no faster (Mixtral 4096 / 8192 +1 / 0%: its GEMM1 read 3.8 GB from DRAM instead of
// 2.5, the weights' L2 reuse across row tiles lost), so it keeps the unfused epilogue.
inline bool gemm1_fuses_activation(const ExpertsPlan& plan, bool interleaved_gated) {
  return interleaved_gated && !plan.gemm1_unfused && plan.gemm_tile == GemmTile::kRows64Single;
}

// k of GEMM2 (= I) up to which the one-tile GEMM2 is deep: <= 4 chunks of 64 per k warp, one round
// trip (H200, Qwen3-30B 32 tokens: GEMM2 111 -> 101 us by ncu; DeepSeek-V3's k = 2048 was slower
// deep, 68 -> 71 us; both instances run 2 CTAs per SM: 96 and 122 registers).
inline constexpr std::int64_t kDecodeDeepMaxK = 1024;

// The GEMM2 instance a decode plan runs by k alone (never kAuto; kNarrow3 only when forced).
inline DecodeGemm2 decode_gemm2_for(const ExpertsPlan& plan, std::int64_t gemm2_k) {
  if (plan.decode_token_tiles != 1) return DecodeGemm2::kNarrow;
  if (plan.decode_gemm2 != DecodeGemm2::kAuto) return plan.decode_gemm2;
  return gemm2_k <= kDecodeDeepMaxK ? DecodeGemm2::kDeep : DecodeGemm2::kNarrow;
}

// Then, on the fixed grid, with the GEMM2 grid known (CTAs expected to have rows, and the SM
// count): the heuristic's narrow becomes kNarrow3 when the grid has more than
// kDecodeNarrow3MinCtasPerSm CTAs per SM to place. H200, same process (bench/NOTES.md, session 7):
// DeepSeek-V3 1 / 8 tokens 181.2 -> 178.3 / 1194 -> 1178 us, gpt-oss-120b 1 token 64.1 -> 61.7,
// Qwen3-235B 8 tokens 474 -> 466; but Mixtral at 1 token (256 CTAs, 2 per SM either way: the extra
// slot stays empty) 177 -> 188.
inline constexpr std::int64_t kDecodeNarrow3MinCtasPerSm = 2;
// Whether the instance decode_gemm2_for chose may become kNarrow3 by the grid rules below: the
// heuristic's own narrow (not a forced instance) with one token tile, on a device with SMs.
inline bool decode_gemm2_narrow3_open(const ExpertsPlan& plan, DecodeGemm2 chosen, int sms) {
  return plan.decode_gemm2 == DecodeGemm2::kAuto && chosen == DecodeGemm2::kNarrow &&
         plan.decode_token_tiles == 1 && sms > 0;
}
inline DecodeGemm2 decode_gemm2_with_grid(const ExpertsPlan& plan, std::int64_t gemm2_k,
                                          std::int64_t gemm2_ctas, int sms) {
  const DecodeGemm2 v = decode_gemm2_for(plan, gemm2_k);
  if (decode_gemm2_narrow3_open(plan, v, sms) && gemm2_ctas > kDecodeNarrow3MinCtasPerSm * sms) {
    return DecodeGemm2::kNarrow3;
  }
  return v;
}

// On the balanced grid (GEMM2's by default: kDecodeBalancedDefault) every resident CTA takes an
// equal share of the U = items x column blocks units, so the time goes with the units one CTA
// slot streams times the CTAs that share its SM: 2 ceil(U / 2 SMs) for narrow, 3 ceil(U / 3 SMs)
// for narrow3. Narrow3 only where that is 5% less; otherwise narrow, which also pipelines a CTA's
// column blocks (kOcc3 has no registers for it). H200, one process (bench/NOTES.md, session 33;
// narrow3 -> narrow): DeepSeek-V3 / Kimi K2 1 token 181.5 / 181.7 -> 177.2 / 177.1 us, 3-8 tokens
// -1.4..0%; Qwen3-235B and DeepSeek-V2 -1.9..-2.7% at 1-8 tokens; Qwen3-Coder -0.7..-1.4%; Llama 4
// -1.9 / -3.2 / -1.7% at 1 / 3 / 8; Mixtral 1 token -8.3% (its old rule had already kept narrow
// there), 3-8 level; but gpt-oss-120b at 3 tokens +2.5% (U = 1080: 5 units per narrow CTA slot
// against 3 per narrow3 slot, 10 against 9).
inline DecodeGemm2 decode_gemm2_on_balanced_grid(const ExpertsPlan& plan, std::int64_t gemm2_k,
                                                 std::int64_t units, int sms) {
  const DecodeGemm2 v = decode_gemm2_for(plan, gemm2_k);
  if (!decode_gemm2_narrow3_open(plan, v, sms) || units <= 0) return v;
  const std::int64_t per_sm2 = 2 * ((units + 2 * sms - 1) / (2 * sms));
  const std::int64_t per_sm3 = 3 * ((units + 3 * sms - 1) / (3 * sms));
  return 20 * per_sm3 < 19 * per_sm2 ? DecodeGemm2::kNarrow3 : DecodeGemm2::kNarrow;
}

// Decode (one 8-row tile) up to kDecodeMaxTokens. At 9-16 tokens decode was 1-4% faster than the
// grouped GEMM on uniform routing (H200, session 31) but up to 17% slower on skewed routing (a hot
// expert gets one item per 8 rows, each reading its weights), which the host cannot see.
inline constexpr std::int64_t kDecodeMaxTokens = 8;
inline constexpr std::int64_t kDecodeFusedMaxTokens = 2;  // the one-token kernel up to this M
// The 128-row tile from kGemmRows128MinRowsPerExpert expected rows per hit expert where GEMM1
// cannot fuse the activation; from kGemmRows128MinRowsNarrow on narrow experts (I below
// kGemmWideMinIntermediate) with H >= kGemmRows128MinHidden whatever the layout; and with
// interleaved gate/up rows (GEMM1 fused on the 64-row tile) nowhere else.
inline constexpr std::int64_t kGemmRows128MinRowsPerExpert = 513;
inline constexpr std::int64_t kGemmRows128MinRowsNarrow = 289;
inline constexpr std::int32_t kGemmWideMinIntermediate = 8192;
inline constexpr std::int32_t kGemmRows128MinHidden = 2560;
// GEMM2 on the clustered 64-row tile (see the rule above): expected rows per hit expert in
// [kGemm2ClusterMinRows, kGemm2ClusterMaxRows] and at most kGemm2ClusterMaxColumnTiles GEMM2
// column tiles of 256 (hit experts x ceil(H / 256); about two waves of one-row-tile experts on a
// 132-SM H100 / H200).
inline constexpr std::int64_t kGemm2ClusterMinRows = 49;
inline constexpr std::int64_t kGemm2ClusterMaxRows = 68;
inline constexpr std::int64_t kGemm2ClusterMaxColumnTiles = 264;

// Expected rows per hit expert when M*K slots spread over E experts: ceil(slots / min(E, slots)).
inline std::int64_t expected_rows_per_expert(std::int64_t num_slots, std::int32_t num_experts) {
  if (num_slots <= 0 || num_experts <= 0) return 0;
  const std::int64_t hit = std::min<std::int64_t>(num_experts, num_slots);
  return (num_slots + hit - 1) / hit;
}

// hidden_size is GEMM2's n (its column tiles) and, with intermediate_size, picks the row tile
// (the rule above). interleaved_gated: the weights hold interleaved gate/up rows of a gated
// activation (experts_w13_interleaved), so the 64-row tile's GEMM1 can fuse the activation.
// The dynamic tile scheduler (ExpertsPlan::gemm_dynamic_tiles) up to this many expected rows per
// expert, where nearly every expert is one 64-row tile and so each weight tile is read by one CTA.
// H200, session 34 (bench/NOTES.md; one process, three interleaved runs, dynamic against CUTLASS's
// fixed assignment): Qwen3-30B 16 / 32 / 64 / 128 / 256 / 512 tokens (rows per expert 1-32)
// -2.6 / -2.2 / -2.2 / -1.7 / -1.1 / -1.3%, DeepSeek-V3 16 / 128 / 512 -1.7 / -1.6 / -1.3%,
// Mixtral 16-128 -0.3..-0.7%. With several row tiles per expert it loses: Mixtral 256 / 512
// tokens (64 / 128 rows) +6.6 / +20%, Qwen3-30B 4096 +16%, DeepSeek-V3 4096 +35% (the fixed order
// runs an expert's row tiles of one weight tile side by side, so the L2 serves the second; tiles
// taken by the clock come apart).
inline constexpr std::int64_t kGemmDynamicTilesMaxRows = 32;
// GEMM1 and GEMM2 as one kernel (ExpertsPlan::gemm_pair; experts/gemm_pair.cuh), H200, session 36
// (bench/NOTES.md; one process, three interleaved runs against the two kernels):
//  - up to kGemmPairMaxRows expected rows per expert (its tiles come from the counter, which loses
//    the L2's pairing of an expert's row tiles beyond: Qwen3-30B 1024 / 4096 tokens +2.5 / +18%,
//    Mixtral 1024 +25%, DeepSeek-V3 4096 +35% with the pair forced);
//  - with at least kGemmPairMinColumnTiles GEMM2 column tiles (hit experts x ceil(H / 256)), about
//    two waves of 132 SMs: GEMM2's tiles start as GEMM1's run out, so a few long GEMM2 tiles that
//    start late set the kernel's end (Mixtral, 8 experts x 16 tiles with k = 14336: 16 / 32 / 128
//    tokens +2.4 / +2.0 / +3.6%).
//  Where it runs: Qwen3-30B 16 / 32 / 128 / 256 / 512 tokens -7.2 / -5.4 / -4.0 / -3.8 / -3.5%,
//  DeepSeek-V3 16-512 -1.2..-0.3%, gpt-oss-120b, Kimi K2, Qwen3-235B, Qwen3-Coder, Llama 4 and
//  DeepSeek-V2 at 16 / 64 / 256 tokens -0.3..-2.8%.
inline constexpr std::int64_t kGemmPairMaxRows = kGemmDynamicTilesMaxRows;
inline constexpr std::int64_t kGemmPairMinColumnTiles = 264;
// Below kDecodeMaxTokens the pair replaces decode where it has at least kGemmPairMinTilesOverDecode
// tiles (expected hit experts x (GEMM1's + GEMM2's column tiles), about four per SM): Qwen3-30B 8
// tokens (~720 tiles) 134.3 -> 128.2 us, DeepSeek-V3 2 / 4 / 8 tokens (~690-2600) -1.4 / -2.5 /
// -3.0%; decode stays faster with fewer tiles (Qwen3-30B 4 tokens, ~410: 85.5 against 90.0 us;
// DeepSeek-V3 1 token, 352: 179 against 197).
inline constexpr double kGemmPairMinTilesOverDecode = 528;

// Expected experts hit by M tokens of K distinct experts each, uniformly over E.
inline double expected_hit_experts(std::int64_t num_tokens, std::int32_t top_k,
                                   std::int32_t num_experts) {
  if (num_tokens <= 0 || top_k <= 0 || num_experts <= 0) return 0;
  const double miss = 1.0 - static_cast<double>(std::min(top_k, num_experts)) / num_experts;
  return num_experts * (1.0 - std::pow(miss, static_cast<double>(num_tokens)));
}

inline ExpertsPlan plan_experts(std::int64_t num_tokens, std::int32_t top_k,
                                std::int32_t num_experts, std::int32_t hidden_size,
                                std::int32_t intermediate_size, bool interleaved_gated,
                                bool has_b2 = false) {
  ExpertsPlan plan;
  const std::int64_t slots = num_tokens * top_k;
  const std::int64_t r = expected_rows_per_expert(slots, num_experts);
  plan.rows_per_expert = r;
  const bool narrow_many = r >= kGemmRows128MinRowsNarrow &&
                           intermediate_size < kGemmWideMinIntermediate &&
                           hidden_size >= kGemmRows128MinHidden;
  const bool rows128 = narrow_many || (!interleaved_gated && r >= kGemmRows128MinRowsPerExpert);
  plan.gemm_tile = rows128 ? GemmTile::kRows128Single : GemmTile::kRows64Single;
  plan.gemm2_tile = plan.gemm_tile;
  plan.gemm_dynamic_tiles = r <= kGemmDynamicTilesMaxRows;
  const std::int64_t hit =
      std::min<std::int64_t>(std::max(num_experts, 0), std::max<std::int64_t>(slots, 0));
  const std::int64_t gemm2_column_tiles = hit * ((std::max(hidden_size, 0) + 255) / 256);
  plan.gemm_pair = r <= kGemmPairMaxRows && gemm2_column_tiles >= kGemmPairMinColumnTiles;
  if (r >= kGemm2ClusterMinRows && r <= kGemm2ClusterMaxRows &&
      gemm2_column_tiles <= kGemm2ClusterMaxColumnTiles) {
    plan.gemm2_tile = GemmTile::kRows64;
  }
  // The pair runs (the fused GEMM1 on the 64-row tile, GEMM2 on it too, no b2) with tiles enough
  // to beat decode (kGemmPairMinTilesOverDecode).
  const bool pair_runs = plan.gemm_pair && interleaved_gated && !has_b2 &&
                         plan.gemm_tile == GemmTile::kRows64Single &&
                         plan.gemm2_tile == GemmTile::kRows64Single;
  const double pair_tiles =
      expected_hit_experts(num_tokens, top_k, num_experts) *
      static_cast<double>((2 * static_cast<std::int64_t>(std::max(intermediate_size, 0)) + 255) /
                              256 +
                          (std::max(hidden_size, 0) + 255) / 256);
  if (num_tokens <= kDecodeMaxTokens && !(pair_runs && pair_tiles >= kGemmPairMinTilesOverDecode)) {
    plan.path = ExpertsPath::kDecode;
    plan.decode_token_tiles = 1;
    plan.decode_slot_items = num_tokens == 1;
    plan.decode_fused_token = num_tokens <= kDecodeFusedMaxTokens;
  } else {
    plan.path = ExpertsPath::kGroupedGemm;
  }
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
    case DecodeGemm2::kNarrow3:
      return "narrow3";
    default:
      return "auto";
  }
}
inline const char* gemm_tile_name(GemmTile t) {
  switch (t) {
    case GemmTile::kRows64:
      return "64x256x64 pingpong";
    case GemmTile::kRows64Single:
      return "64x256x64 pingpong, cluster 1x1";
    case GemmTile::kRows128Single:
      return "128x256x64 cooperative, cluster 1x1";
    default:
      return "128x256x64 cooperative";
  }
}
// The tile's name in `bench experts --plan gemm:<name>` (and in test and bench labels).
inline const char* gemm_tile_plan_name(GemmTile t) {
  switch (t) {
    case GemmTile::kRows64:
      return "64";
    case GemmTile::kRows64Single:
      return "64:single";
    case GemmTile::kRows128Single:
      return "128:single";
    default:
      return "128";
  }
}

}  // namespace switchyard::heuristics
