// Routes a batch of router logits with DeepSeek-V3's router on the CPU backend.
#include <switchyard/switchyard.h>

#include <cstdint>
#include <cstdio>
#include <vector>

int main() {
  using namespace switchyard;
  const ModelPreset& v3 = *find_model_preset("deepseek-v3");
  const RoutingParams& params = v3.routing;  // E=256, K=8, 8 groups keep 4, sigmoid+bias, +1 shared
  const std::int64_t tokens = 4;
  const int E = params.num_experts, cols = params.top_k + params.num_shared_experts;

  std::vector<float> logits(tokens * E), bias(E, 0.0f), weights(tokens * cols);
  std::vector<std::int32_t> ids(tokens * cols);
  for (std::size_t i = 0; i < logits.size(); ++i)
    logits[i] = static_cast<float>((i * 37) % 101) / 50.0f - 1.0f;

  RoutingArgs args;
  args.logits = TensorView::contiguous(logits.data(), DType::kFloat32, {tokens, E});
  args.bias = TensorView::contiguous(bias.data(), DType::kFloat32, {E});
  args.top_k_weights = TensorView::contiguous(weights.data(), DType::kFloat32, {tokens, cols});
  args.top_k_ids = TensorView::contiguous(ids.data(), DType::kInt32, {tokens, cols});

  const Status st =
      route_cpu(params, args);  // route_cuda(params, args, ws, ws_bytes, stream) on GPU
  if (!st.ok()) {
    std::fprintf(stderr, "%s\n", st.to_string().c_str());
    return 1;
  }
  for (std::int64_t t = 0; t < tokens; ++t) {
    std::printf("token %lld:", static_cast<long long>(t));
    for (int c = 0; c < cols; ++c)
      std::printf(" %d:%.3f", ids[t * cols + c], weights[t * cols + c]);
    std::printf("\n");
  }
  return 0;
}
