#include "moe_weights.h"

#include <cstring>

#include "../../src/common/check.h"
#include "../../src/common/dtype_convert.h"

namespace switchyard::tools {

namespace {

std::vector<float> to_floats(const std::vector<std::uint8_t>& bytes, DType dtype) {
  const std::size_t n = bytes.size() / dtype_size(dtype);
  std::vector<float> out(n);
  for (std::size_t i = 0; i < n; ++i) {
    if (dtype == DType::kFloat32) {
      std::memcpy(&out[i], bytes.data() + 4 * i, 4);
    } else {
      std::uint16_t b;
      std::memcpy(&b, bytes.data() + 2 * i, 2);
      out[i] = dtype == DType::kBFloat16 ? detail::to_float(detail::bf16_t{b})
                                         : detail::to_float(detail::fp16_t{b});
    }
  }
  return out;
}

}  // namespace

Status load_moe_layer(const SafetensorsFile& file, const ModelPreset& preset, int layer,
                      MoeLayerWeights* out) {
  const std::int64_t E = preset.routing.num_experts, H = preset.hidden_size,
                     I = preset.intermediate_size;
  const std::string base = "model.layers." + std::to_string(layer) + ".";
  const bool mixtral = !file.contains(base + "mlp.gate.weight") &&
                       file.contains(base + "block_sparse_moe.gate.weight");
  const std::string mlp = base + (mixtral ? "block_sparse_moe." : "mlp.");
  const std::vector<DType> floats = {DType::kBFloat16, DType::kFloat16, DType::kFloat32};
  MoeLayerWeights w;
  w.num_experts = static_cast<std::int32_t>(E);
  w.hidden_size = static_cast<std::int32_t>(H);
  w.intermediate_size = static_cast<std::int32_t>(I);
  std::vector<std::uint8_t> bytes;
  DType dt;
  SY_RETURN_IF_ERROR(file.read(mlp + "gate.weight", floats, {E, H}, &bytes, &dt));
  w.router = to_floats(bytes, dt);
  if (preset.has_bias) {
    SY_RETURN_IF_ERROR(file.read(mlp + "gate.e_score_correction_bias", floats, {E}, &bytes, &dt));
    w.bias = to_floats(bytes, dt);
  }
  const std::string gate = mixtral ? "w1" : "gate_proj", up = mixtral ? "w3" : "up_proj",
                    down = mixtral ? "w2" : "down_proj";
  const std::size_t proj = static_cast<std::size_t>(I * H);
  for (std::int64_t e = 0; e < E; ++e) {
    const std::string ex = mlp + "experts." + std::to_string(e) + ".";
    const std::vector<DType> allowed = e == 0
                                           ? std::vector<DType>{DType::kBFloat16, DType::kFloat16}
                                           : std::vector<DType>{w.dtype};
    SY_RETURN_IF_ERROR(file.read(ex + gate + ".weight", allowed, {I, H}, &bytes, &dt));
    if (e == 0) {
      w.dtype = dt;
      const std::size_t esz = dtype_size(dt);
      w.w13.resize(static_cast<std::size_t>(E) * 2 * proj * esz);
      w.w2.resize(static_cast<std::size_t>(E) * proj * esz);
    }
    const std::size_t esz = dtype_size(w.dtype);
    std::memcpy(w.w13.data() + static_cast<std::size_t>(e) * 2 * proj * esz, bytes.data(),
                bytes.size());
    SY_RETURN_IF_ERROR(file.read(ex + up + ".weight", {w.dtype}, {I, H}, &bytes, &dt));
    std::memcpy(w.w13.data() + (static_cast<std::size_t>(e) * 2 + 1) * proj * esz, bytes.data(),
                bytes.size());
    SY_RETURN_IF_ERROR(file.read(ex + down + ".weight", {w.dtype}, {H, I}, &bytes, &dt));
    std::memcpy(w.w2.data() + static_cast<std::size_t>(e) * proj * esz, bytes.data(), bytes.size());
  }
  const std::int64_t Is = preset.shared_intermediate_size;
  if (Is > 0) {
    const std::string sh = mlp + "shared_experts.";
    if (!file.contains(sh + "gate_proj.weight")) {
      return Status::InvalidArgument(
          "safetensors file " + file.path() + ": tensor " + sh +
          "gate_proj.weight not found: expected the preset's shared experts (intermediate size " +
          std::to_string(Is) + "); pass --shared-intermediate 0 to run without them");
    }
    w.shared_intermediate_size = static_cast<std::int32_t>(Is);
    const std::size_t sproj = static_cast<std::size_t>(Is * H) * dtype_size(w.dtype);
    w.shared_w13.resize(2 * sproj);
    SY_RETURN_IF_ERROR(file.read(sh + "gate_proj.weight", {w.dtype}, {Is, H}, &bytes, &dt));
    std::memcpy(w.shared_w13.data(), bytes.data(), bytes.size());
    SY_RETURN_IF_ERROR(file.read(sh + "up_proj.weight", {w.dtype}, {Is, H}, &bytes, &dt));
    std::memcpy(w.shared_w13.data() + sproj, bytes.data(), bytes.size());
    SY_RETURN_IF_ERROR(file.read(sh + "down_proj.weight", {w.dtype}, {H, Is}, &bytes, &dt));
    w.shared_w2 = std::move(bytes);
  }
  *out = std::move(w);
  return Status::Ok();
}

}  // namespace switchyard::tools
