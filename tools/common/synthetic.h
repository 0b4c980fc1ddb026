// Synthetic router inputs with realistic skew: a few hot experts take most of the tokens.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "switchyard/status.h"
#include "switchyard/tensor.h"

namespace switchyard::tools {

// --routing uniform | zipf:<s> | hot:<fraction>
struct RoutingSkew {
  enum class Kind { kUniform, kZipf, kHot } kind = Kind::kUniform;
  double zipf_s = 0.0;        // zipf: expert of popularity rank r gets logit bias -s*ln(r+1)
  double hot_fraction = 0.0;  // hot: this fraction of tokens strongly prefers one hot expert
  std::string describe() const;
};

// Parses the --routing value; the error names the flag, the value and the accepted forms.
Status parse_routing_skew(const std::string& text, RoutingSkew* out);

// Router logits [num_tokens, num_experts] as float: N(0, 1) noise plus the skew, seeded.
std::vector<float> make_router_logits(std::int64_t num_tokens, int num_experts,
                                      const RoutingSkew& skew, std::uint64_t seed);
// The skew alone, to add to logits from elsewhere (the router GEMM): [num_tokens, num_experts]
// offsets, zipf: -s*ln(rank+1) per expert; hot: +8 on the hot expert's logit for that fraction of
// the tokens; empty for uniform. Seeded; popularity ranks as above (not the same permutation).
std::vector<float> make_logit_skew(std::int64_t num_tokens, int num_experts,
                                   const RoutingSkew& skew, std::uint64_t seed);
// Top-K expert ids for benchmarks that take ids directly (bench experts --routing):
// uniform: each token draws K distinct experts uniformly; balanced: slot s = t*K + j takes expert
// (s + r) mod E for a seeded rotation r, so every expert gets floor or ceil of M*K/E rows (the even
// split a batched GEMM sees) and a token's K ids are distinct (K <= E); zipf / hot: the K largest
// of make_router_logits with that skew, ties to the lower id.
struct ExpertIdMode {
  bool balanced = false;
  RoutingSkew skew;  // used when not balanced
  std::string describe() const;
};
// uniform | balanced | zipf:<s> | hot:<fraction>; errors name the flag (--routing) and the value.
Status parse_expert_id_mode(const std::string& text, ExpertIdMode* out);
// *out = [num_tokens * top_k] ids, row-major. Rejects num_tokens < 0, num_experts < 1 and top_k
// outside 1..num_experts (K distinct ids per token) with a message naming the argument.
Status make_expert_ids(std::int64_t num_tokens, int top_k, int num_experts,
                       const ExpertIdMode& mode, std::uint64_t seed,
                       std::vector<std::int32_t>* out);

// A small correction bias [num_experts] in [-0.005, 0.005), seeded.
std::vector<float> make_correction_bias(int num_experts, std::uint64_t seed);

// Converts float values to `dtype` (float32/bfloat16/float16) storage bytes.
std::vector<std::uint8_t> encode_floats(const std::vector<float>& values, DType dtype);

}  // namespace switchyard::tools
