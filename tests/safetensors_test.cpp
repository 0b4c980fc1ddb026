// Safetensors reading and the MoE-layer loader: round trips on generated files in both naming
// schemes, and clear errors for missing tensors, shape and dtype mismatches, corrupt headers and
// truncated files.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "common/moe_weights.h"
#include "common/safetensors.h"
#include "common/synthetic.h"

namespace switchyard::tools {
namespace {

ModelPreset tiny_preset(bool bias) {
  ModelPreset m;
  m.name = "tiny";
  m.hidden_size = 8;
  m.intermediate_size = 4;
  m.num_shared_experts = 0;
  m.routing.num_experts = 3;
  m.routing.top_k = 2;
  m.has_bias = bias;
  return m;
}

std::vector<std::uint8_t> values(std::size_t n, float start, DType dt) {
  std::vector<float> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = start + static_cast<float>(i) * 0.25f;
  return encode_floats(v, dt);
}

std::string temp_path(const std::string& name) {
  return ::testing::TempDir() + "/switchyard_" + name + ".safetensors";
}

std::vector<SafetensorsTensor> layer_tensors(bool mixtral, DType dt, int layer) {
  const std::string mlp =
      "model.layers." + std::to_string(layer) + (mixtral ? ".block_sparse_moe." : ".mlp.");
  std::vector<SafetensorsTensor> t;
  t.push_back({mlp + "gate.weight", DType::kFloat32, {3, 8}, values(24, -1.0f, DType::kFloat32)});
  if (!mixtral)
    t.push_back({mlp + "gate.e_score_correction_bias",
                 DType::kFloat32,
                 {3},
                 values(3, 0.5f, DType::kFloat32)});
  for (int e = 0; e < 3; ++e) {
    const std::string ex = mlp + "experts." + std::to_string(e) + ".";
    const float fe = static_cast<float>(e);
    t.push_back(
        {ex + (mixtral ? "w1" : "gate_proj") + ".weight", dt, {4, 8}, values(32, 10.0f * fe, dt)});
    t.push_back({ex + (mixtral ? "w3" : "up_proj") + ".weight",
                 dt,
                 {4, 8},
                 values(32, 10.0f * fe + 100, dt)});
    t.push_back(
        {ex + (mixtral ? "w2" : "down_proj") + ".weight", dt, {8, 4}, values(32, -10.0f * fe, dt)});
  }
  t.push_back(
      {"model.embed_tokens.weight", DType::kBFloat16, {2, 2}, values(4, 0, DType::kBFloat16)});
  return t;
}

TEST(Safetensors, LayerRoundTripBothNamingSchemes) {
  for (bool mixtral : {false, true}) {
    for (DType dt : {DType::kBFloat16, DType::kFloat16}) {
      const std::string path =
          temp_path(std::string("layer") + (mixtral ? "_mixtral" : "_hf") + dtype_name(dt));
      const auto tensors = layer_tensors(mixtral, dt, 5);
      ASSERT_TRUE(write_safetensors(path, tensors).ok());
      SafetensorsFile f;
      const Status open = SafetensorsFile::open(path, &f);
      ASSERT_TRUE(open.ok()) << open.to_string();
      MoeLayerWeights w;
      const Status st = load_moe_layer(f, tiny_preset(!mixtral), 5, &w);
      ASSERT_TRUE(st.ok()) << st.to_string();
      EXPECT_EQ(w.dtype, dt);
      EXPECT_EQ(w.router.size(), 24u);
      EXPECT_EQ(w.router[1], -0.75f);
      EXPECT_EQ(w.bias.size(), mixtral ? 0u : 3u);
      // w13[e] = gate rows then up rows; w2[e] = down.
      const std::size_t proj = 32 * 2;
      for (int e = 0; e < 3; ++e) {
        const std::size_t base = static_cast<std::size_t>(1 + (mixtral ? 0 : 1) + 3 * e);
        EXPECT_EQ(std::memcmp(w.w13.data() + (2 * e) * proj, tensors[base].bytes.data(), proj), 0);
        EXPECT_EQ(
            std::memcmp(w.w13.data() + (2 * e + 1) * proj, tensors[base + 1].bytes.data(), proj),
            0);
        EXPECT_EQ(std::memcmp(w.w2.data() + e * proj, tensors[base + 2].bytes.data(), proj), 0);
      }
      std::remove(path.c_str());
    }
  }
}

TEST(Safetensors, MissingTensorsAndMismatchesNameTheTensor) {
  const std::string path = temp_path("mismatch");
  auto tensors = layer_tensors(false, DType::kBFloat16, 3);
  ASSERT_TRUE(write_safetensors(path, tensors).ok());
  SafetensorsFile f;
  ASSERT_TRUE(SafetensorsFile::open(path, &f).ok());
  MoeLayerWeights w;
  Status st = load_moe_layer(f, tiny_preset(true), 4, &w);  // no layer 4
  EXPECT_NE(st.message().find("tensor 'model.layers.4.mlp.gate.weight' is missing"),
            std::string::npos)
      << st.message();
  ModelPreset wide = tiny_preset(true);
  wide.hidden_size = 16;
  st = load_moe_layer(f, wide, 3, &w);
  EXPECT_NE(
      st.message().find("tensor 'model.layers.3.mlp.gate.weight' shape = [3, 8]: expected [3, 16]"),
      std::string::npos)
      << st.message();
  // One expert in another dtype.
  tensors[5].dtype = DType::kFloat16;
  ASSERT_TRUE(write_safetensors(path, tensors).ok());
  ASSERT_TRUE(SafetensorsFile::open(path, &f).ok());
  st = load_moe_layer(f, tiny_preset(true), 3, &w);
  EXPECT_NE(st.message().find("experts.1.gate_proj.weight' dtype = F16: expected BF16"),
            std::string::npos)
      << st.message();
  // Expert 2's down projection absent.
  tensors[5].dtype = DType::kBFloat16;
  tensors.erase(tensors.begin() + 10);
  ASSERT_TRUE(write_safetensors(path, tensors).ok());
  ASSERT_TRUE(SafetensorsFile::open(path, &f).ok());
  st = load_moe_layer(f, tiny_preset(true), 3, &w);
  EXPECT_NE(st.message().find("tensor 'model.layers.3.mlp.experts.2.down_proj.weight' is missing"),
            std::string::npos)
      << st.message();
  std::remove(path.c_str());
}

void write_raw(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string with_length(const std::string& header) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i)
    s[static_cast<std::size_t>(i)] = static_cast<char>((header.size() >> (8 * i)) & 0xff);
  return s + header;
}

TEST(Safetensors, CorruptAndTruncatedFilesGiveClearErrors) {
  const std::string path = temp_path("corrupt");
  SafetensorsFile f;
  struct Case {
    const char* name;
    std::string bytes;
    const char* expect;
  };
  const std::string good_header =
      "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
  const std::vector<Case> cases = {
      {"empty", "", "only 0 bytes: expected an 8-byte header length"},
      {"huge_length", std::string("\xff\xff\xff\xff\x00\x00\x00\x00", 8) + "{}",
       "header length 4294967295 exceeds"},
      {"not_json", with_length("hello world"), "header byte 0: expected '{'"},
      {"unterminated", with_length("{\"a\":{\"dtype\":\"F32"), "unterminated string"},
      {"missing_field", with_length("{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}"),
       "tensor 'a' lacks dtype, shape or data_offsets"},
      {"bad_offsets",
       with_length("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}"),
       "data_offsets must be [begin, end]"},
      {"size_mismatch",
       with_length("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}") +
           std::string(8, '\0'),
       "tensor 'a': data_offsets span 8 bytes, its shape and dtype need 12"},
      {"truncated_data", with_length(good_header) + std::string(5, '\0'),
       "tensor 'a': data ends at byte 8 of a 5-byte data section (truncated?)"},
  };
  for (const Case& c : cases) {
    write_raw(path, c.bytes);
    const Status st = SafetensorsFile::open(path, &f);
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << c.name;
    EXPECT_NE(st.message().find(c.expect), std::string::npos) << c.name << ": " << st.message();
  }
  write_raw(path, with_length(good_header) + std::string(8, '\0'));
  ASSERT_TRUE(SafetensorsFile::open(path, &f).ok());
  std::vector<std::uint8_t> bytes;
  DType dt;
  EXPECT_TRUE(f.read("a", {DType::kFloat32}, {2}, &bytes, &dt).ok());
  const Status wrong = f.read("a", {DType::kBFloat16}, {2}, &bytes, &dt);
  EXPECT_NE(wrong.message().find("tensor 'a' dtype = F32: expected BF16"), std::string::npos)
      << wrong.message();
  EXPECT_NE(SafetensorsFile::open(path + ".nope", &f).message().find("cannot open it"),
            std::string::npos);
  std::remove(path.c_str());
}

}  // namespace
}  // namespace switchyard::tools
