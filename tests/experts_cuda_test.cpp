// CUDA fused MoE forward against the CPU oracle (fused_experts_cpu), and the grouped GEMM alone
// against a host GEMM. Skips itself without a GPU (the argument and heuristic tests run anyway).
//
// Error metric of the fused op (declared; experts.h explains the one extra rounding of the GPU
// path, y stored in the input dtype before the combine): every output element must satisfy
//   |gpu - cpu| <= tol * (|cpu| + max|cpu|),  tol = 2^-6 (bf16) or 2^-8 (fp16),
// i.e. about four output ulps relative plus four ulps of the largest output, and be finite. No
// fraction of elements may fail. (Rounding each y to the dtype alone may cost up to
// rsf * sum_k w_k * ulp(y_k) / 2, about half of this bound at the test shapes.) The grouped GEMM is
// tested bitwise: its inputs are small dyadic values (multiples of 1/8 in [-1/2, 1/2]), so every
// product and partial sum is exact in float32 in any order and the rounded output is unique.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "../src/common/dtype_convert.h"
#include "../src/cuda/experts/experts_internal.h"
#include "../src/cuda/experts/grouped_gemm.h"
#include "../src/cuda/heuristics/experts.h"
#include "../src/cuda/heuristics/experts_token.h"
#include "common/gpu_bench.h"
#include "common/rng.h"
#include "common/synthetic.h"
#include "switchyard/align.h"
#include "switchyard/experts.h"
#include "switchyard/models.h"
#include "switchyard/runtime.h"

namespace switchyard::testing {
namespace {

using heuristics::DecodeGemm2;
using heuristics::ExpertsPath;
using heuristics::ExpertsPlan;
using heuristics::GemmTile;
using tools::DeviceBuffer;

#define SKIP_WITHOUT_GPU() \
  if (!cuda_device_available()) GTEST_SKIP() << "no CUDA device"

bool device_is_sm90() {
  int dev = 0, major = 0, minor = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) return false;
  cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev);
  cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev);
  return major == 9 && minor == 0;
}

int device_sms() {
  int dev = 0, sms = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) return 0;
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
  return sms;
}

DeviceBuffer upload(const void* src, std::size_t bytes) {
  DeviceBuffer b;
  EXPECT_TRUE(DeviceBuffer::allocate(std::max<std::size_t>(bytes, 16), &b).ok());
  if (bytes) {
    EXPECT_TRUE(tools::copy_to_device(b.get(), src, bytes).ok());
  }
  return b;
}

float decode(const std::uint8_t* p, DType dt) {
  std::uint16_t bits;
  std::memcpy(&bits, p, 2);
  return dt == DType::kBFloat16 ? detail::to_float(detail::bf16_t{bits})
                                : detail::to_float(detail::fp16_t{bits});
}

// ---- one fused-experts problem ---------------------------------------------------------------

enum class Routing { kUniform, kSubset, kOneExpert };

struct Problem {
  std::string id;
  ExpertsParams p;
  DType dtype = DType::kBFloat16;
  std::int64_t M = 0;
  int K = 1;
  std::vector<std::uint8_t> x, w13, w2;  // encoded in dtype
  std::vector<std::uint8_t> b13, b2;     // optional; dtype given by b13_dtype / b2_dtype
  DType b13_dtype = DType::kFloat32, b2_dtype = DType::kFloat32;
  std::vector<float> weights;
  std::vector<std::int32_t> ids, map;
};

std::int64_t rows13(const ExpertsParams& p) {
  return p.activation == Activation::kRelu2 ? p.intermediate_size : 2LL * p.intermediate_size;
}

struct ProblemSpec {
  Activation act = Activation::kSiluAndMul;
  DType dtype = DType::kBFloat16;
  int E = 8, H = 136, I = 72;
  std::int64_t M = 40;
  int K = 2;
  Routing routing = Routing::kUniform;
  int subset = 0;          // kSubset: experts 0..subset-1 only; kOneExpert: the expert
  int global_experts = 0;  // > E: ids are global and expert_map maps them to E local experts
  bool biases = false;     // b13 float32, b2 in the input dtype
  bool weight_on_input = false;
  double drop = 0.05;        // probability of a -1 id
  bool interleaved = false;  // ExpertsParams::w13_interleaved
};

std::vector<std::uint8_t> random_values(tools::Rng& rng, std::size_t n, double scale, DType dt) {
  std::vector<float> v(n);
  for (float& f : v) f = static_cast<float>((rng.uniform() * 2 - 1) * scale);
  return tools::encode_floats(v, dt);
}

Problem make_problem(const std::string& id, const ProblemSpec& s) {
  tools::Rng rng(tools::seed_from_name(id));
  Problem pr;
  pr.id = id;
  pr.p.num_experts = s.E;
  pr.p.hidden_size = s.H;
  pr.p.intermediate_size = s.I;
  pr.p.activation = s.act;
  pr.p.routed_scaling_factor = 2.5f;
  pr.p.apply_router_weight_on_input = s.weight_on_input;
  pr.p.w13_interleaved = s.interleaved;
  pr.dtype = s.dtype;
  pr.M = s.M;
  pr.K = s.K;
  const std::int64_t E = s.E, H = s.H, I = s.I, R13 = rows13(pr.p);
  pr.x = random_values(rng, static_cast<std::size_t>(s.M * H), 1.0, s.dtype);
  pr.w13 = random_values(rng, static_cast<std::size_t>(E * R13 * H), 2.0 / std::sqrt(H), s.dtype);
  pr.w2 = random_values(rng, static_cast<std::size_t>(E * H * I), 2.0 / std::sqrt(I), s.dtype);
  if (s.biases) {
    pr.b13 = random_values(rng, static_cast<std::size_t>(E * R13), 0.5, DType::kFloat32);
    pr.b2 = random_values(rng, static_cast<std::size_t>(E * H), 0.5, s.dtype);
    pr.b13_dtype = DType::kFloat32;
    pr.b2_dtype = s.dtype;
  }
  const int id_space = s.global_experts > 0 ? s.global_experts : s.E;
  for (std::int64_t t = 0; t < s.M; ++t) {
    for (int k = 0; k < s.K; ++k) {
      std::int32_t e = 0;
      switch (s.routing) {
        case Routing::kUniform:
          e = static_cast<std::int32_t>(rng.below(static_cast<std::uint64_t>(id_space)));
          break;
        case Routing::kSubset:
          e = static_cast<std::int32_t>(rng.below(static_cast<std::uint64_t>(s.subset)));
          break;
        case Routing::kOneExpert:
          e = s.subset;
          break;
      }
      if (rng.uniform() < s.drop) e = -1;
      pr.ids.push_back(e);
      pr.weights.push_back(static_cast<float>(0.05 + rng.uniform()));
    }
  }
  if (s.global_experts > 0) {  // this rank owns every 3rd global expert, in order, up to E
    pr.map.assign(static_cast<std::size_t>(s.global_experts), -1);
    for (int g = 0, local = 0; g < s.global_experts && local < s.E; g += 3)
      pr.map[static_cast<std::size_t>(g)] = local++;
  }
  return pr;
}

ExpertsArgs views(const Problem& pr, Device dev, void* x, void* w13, void* w2, void* b13, void* b2,
                  void* ids, void* weights, void* map, void* out) {
  const std::int64_t E = pr.p.num_experts, H = pr.p.hidden_size, I = pr.p.intermediate_size;
  ExpertsArgs a;
  a.x = TensorView::contiguous(x, pr.dtype, {pr.M, H}, dev);
  a.w13 = TensorView::contiguous(w13, pr.dtype, {E, rows13(pr.p), H}, dev);
  a.w2 = TensorView::contiguous(w2, pr.dtype, {E, H, I}, dev);
  if (!pr.b13.empty()) a.b13 = TensorView::contiguous(b13, pr.b13_dtype, {E, rows13(pr.p)}, dev);
  if (!pr.b2.empty()) a.b2 = TensorView::contiguous(b2, pr.b2_dtype, {E, H}, dev);
  a.top_k_ids = TensorView::contiguous(ids, DType::kInt32, {pr.M, pr.K}, dev);
  a.top_k_weights = TensorView::contiguous(weights, DType::kFloat32, {pr.M, pr.K}, dev);
  if (!pr.map.empty()) {
    a.expert_map =
        TensorView::contiguous(map, DType::kInt32, {static_cast<std::int64_t>(pr.map.size())}, dev);
  }
  a.out = TensorView::contiguous(out, pr.dtype, {pr.M, H}, dev);
  return a;
}

std::vector<std::uint8_t> run_cpu(const Problem& pr) {
  std::vector<std::uint8_t> out(static_cast<std::size_t>(pr.M * pr.p.hidden_size) * 2);
  auto c = [](const auto& v) { return const_cast<void*>(static_cast<const void*>(v.data())); };
  const ExpertsArgs a =
      views(pr, Device::kCpu, c(pr.x), c(pr.w13), c(pr.w2), pr.b13.empty() ? nullptr : c(pr.b13),
            pr.b2.empty() ? nullptr : c(pr.b2), c(pr.ids), c(pr.weights),
            pr.map.empty() ? nullptr : c(pr.map), out.data());
  const Status st = fused_experts_cpu(pr.p, a);
  EXPECT_TRUE(st.ok()) << pr.id << ": " << st.to_string();
  return out;
}

// The problem on the device, with poisoned output and workspace before every run.
struct DeviceProblem {
  DeviceBuffer x, w13, w2, b13, b2, ids, weights, map, out, workspace;
  std::size_t out_bytes = 0, workspace_bytes = 0;
  ExpertsArgs args;
};

void upload_problem(const Problem& pr, DeviceProblem* d) {
  d->x = upload(pr.x.data(), pr.x.size());
  d->w13 = upload(pr.w13.data(), pr.w13.size());
  d->w2 = upload(pr.w2.data(), pr.w2.size());
  d->b13 = upload(pr.b13.data(), pr.b13.size());
  d->b2 = upload(pr.b2.data(), pr.b2.size());
  d->ids = upload(pr.ids.data(), pr.ids.size() * 4);
  d->weights = upload(pr.weights.data(), pr.weights.size() * 4);
  d->map = upload(pr.map.data(), pr.map.size() * 4);
  d->out_bytes = static_cast<std::size_t>(pr.M * pr.p.hidden_size) * 2;
  ASSERT_TRUE(DeviceBuffer::allocate(std::max<std::size_t>(d->out_bytes, 16), &d->out).ok());
  d->workspace_bytes = fused_experts_workspace_size(pr.p, pr.M, pr.K);
  ASSERT_TRUE(
      DeviceBuffer::allocate(std::max<std::size_t>(d->workspace_bytes, 16), &d->workspace).ok());
  d->args =
      views(pr, Device::kCuda, d->x.get(), d->w13.get(), d->w2.get(),
            pr.b13.empty() ? nullptr : d->b13.get(), pr.b2.empty() ? nullptr : d->b2.get(),
            d->ids.get(), d->weights.get(), pr.map.empty() ? nullptr : d->map.get(), d->out.get());
}

// One run (optionally captured in a CUDA graph and replayed); returns the output bytes.
std::vector<std::uint8_t> run_gpu(const Problem& pr, DeviceProblem& d, const ExpertsPlan& plan,
                                  bool graph) {
  std::vector<std::uint8_t> out(d.out_bytes);
  EXPECT_TRUE(tools::fill_device_bytes(d.out.get(), 0xff, d.out.bytes()).ok());  // NaN
  EXPECT_TRUE(tools::fill_device_bytes(d.workspace.get(), 0x7b, d.workspace.bytes()).ok());
  cudaStream_t stream = nullptr;
  EXPECT_EQ(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), cudaSuccess);
  Status st;
  if (graph) {
    cudaGraph_t g = nullptr;
    cudaGraphExec_t exec = nullptr;
    EXPECT_EQ(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), cudaSuccess);
    st = detail::fused_experts_cuda_plan(pr.p, d.args, d.workspace.get(), d.workspace_bytes, stream,
                                         &plan);
    EXPECT_EQ(cudaStreamEndCapture(stream, &g), cudaSuccess);
    if (st.ok() && g) {
      EXPECT_EQ(cudaGraphInstantiate(&exec, g, 0), cudaSuccess);
      EXPECT_EQ(cudaGraphLaunch(exec, stream), cudaSuccess);
    }
    if (exec) cudaGraphExecDestroy(exec);
    if (g) cudaGraphDestroy(g);
  } else {
    st = detail::fused_experts_cuda_plan(pr.p, d.args, d.workspace.get(), d.workspace_bytes, stream,
                                         &plan);
  }
  EXPECT_TRUE(st.ok()) << pr.id << ": " << st.to_string();
  EXPECT_EQ(cudaStreamSynchronize(stream), cudaSuccess) << pr.id;
  cudaStreamDestroy(stream);
  if (d.out_bytes) {
    EXPECT_TRUE(tools::copy_to_host(out.data(), d.out.get(), d.out_bytes).ok());
  }
  return out;
}

// Returns "" or a description of the first elements out of tolerance.
std::string compare(const Problem& pr, const std::vector<std::uint8_t>& cpu,
                    const std::vector<std::uint8_t>& gpu) {
  const double tol = pr.dtype == DType::kBFloat16 ? 1.0 / 64 : 1.0 / 256;
  const std::size_t n = cpu.size() / 2;
  double scale = 0;
  for (std::size_t i = 0; i < n; ++i)
    scale = std::max(scale, double{std::fabs(decode(&cpu[2 * i], pr.dtype))});
  std::string err;
  int bad = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const double c = decode(&cpu[2 * i], pr.dtype), g = decode(&gpu[2 * i], pr.dtype);
    if (std::isfinite(g) && std::fabs(g - c) <= tol * (std::fabs(c) + scale)) continue;
    if (++bad <= 3) {
      err += " [token " + std::to_string(i / static_cast<std::size_t>(pr.p.hidden_size)) +
             ", col " + std::to_string(i % static_cast<std::size_t>(pr.p.hidden_size)) + "] gpu " +
             std::to_string(g) + " cpu " + std::to_string(c) + ";";
    }
  }
  if (bad)
    err = std::to_string(bad) + " elements out of tolerance (scale " + std::to_string(scale) +
          "):" + err;
  return err;
}

ExpertsPlan decode_plan(int tiles, DecodeGemm2 gemm2 = DecodeGemm2::kAuto) {
  ExpertsPlan p;
  p.path = ExpertsPath::kDecode;
  p.decode_token_tiles = tiles;
  p.decode_gemm2 = gemm2;
  return p;
}
// The decode GEMMs' grids (heuristics::kDecodeBalanced* bits: 0 both fixed, 3 both balanced).
ExpertsPlan with_grid(ExpertsPlan p, int balanced) {
  p.decode_balanced = balanced;
  return p;
}
ExpertsPlan slot_items_plan() {
  ExpertsPlan p = decode_plan(1);
  p.decode_slot_items = true;
  return p;
}
// One token: the one-kernel path (kernels/experts_token.cuh) where it fits, else slot items.
ExpertsPlan token_plan() {
  ExpertsPlan p = slot_items_plan();
  p.decode_fused_token = true;
  return p;
}
ExpertsPlan gemm_plan(GemmTile tile, bool gemm1_rounded = false) {
  ExpertsPlan p;
  p.path = ExpertsPath::kGroupedGemm;
  p.gemm_tile = tile;
  p.gemm2_tile = tile;
  p.gemm1_rounded = gemm1_rounded;
  return p;
}
ExpertsPlan gemm_plan(GemmTile tile1, GemmTile tile2) {
  ExpertsPlan p = gemm_plan(tile1);
  p.gemm2_tile = tile2;
  return p;
}
// GEMM1 and GEMM2 as one kernel (experts/gemm_pair.cuh) where the plan can (the fused GEMM1 on
// interleaved rows, no b2); elsewhere the same as gemm_plan(kRows64Single) with tiles from the
// counter.
ExpertsPlan pair_plan() {
  ExpertsPlan p = gemm_plan(GemmTile::kRows64Single);
  p.gemm_dynamic_tiles = true;
  p.gemm_pair = true;
  return p;
}

std::string plan_name(const ExpertsPlan& p) {
  if (p.path == ExpertsPath::kDecode) {
    return "decode" + std::to_string(8 * p.decode_token_tiles) +
           (p.decode_gemm2 == DecodeGemm2::kAuto
                ? ""
                : std::string("/") + decode_gemm2_name(p.decode_gemm2)) +
           (p.decode_slot_items ? (p.decode_fused_token ? "/fused" : "/slots") : "") +
           (p.decode_balanced == heuristics::kDecodeBalancedDefault
                ? ""
                : "/grid" + std::to_string(p.decode_balanced));
  }
  return std::string("gemm") + heuristics::gemm_tile_plan_name(p.gemm_tile) +
         (p.gemm2_tile == p.gemm_tile
              ? std::string()
              : std::string("+") + heuristics::gemm_tile_plan_name(p.gemm2_tile)) +
         (p.gemm1_rounded ? "/rounded" : "") + (p.gemm1_unfused ? "/unfused" : "");
}

ExpertsPlan unfused(ExpertsPlan p) {
  p.gemm1_unfused = true;
  return p;
}

// CPU once, then every plan on the GPU; the first plan of each path also runs a second time
// (bitwise repeatability) and captured in a CUDA graph (the replay must give the same bits).
void check(const std::string& id, const ProblemSpec& spec, const std::vector<ExpertsPlan>& plans) {
  const Problem pr = make_problem(id, spec);
  const std::vector<std::uint8_t> cpu = run_cpu(pr);
  DeviceProblem d;
  upload_problem(pr, &d);
  bool first_decode = true, first_gemm = true;
  for (const ExpertsPlan& plan : plans) {
    if (plan.path == ExpertsPath::kGroupedGemm && !device_is_sm90()) continue;
    const std::vector<std::uint8_t> gpu = run_gpu(pr, d, plan, false);
    const std::string err = compare(pr, cpu, gpu);
    EXPECT_TRUE(err.empty()) << id << " [" << plan_name(plan) << "] " << err;
    bool& first = plan.path == ExpertsPath::kDecode ? first_decode : first_gemm;
    if (first) {
      first = false;
      EXPECT_EQ(run_gpu(pr, d, plan, false), gpu)
          << id << " [" << plan_name(plan) << "]: two runs differ";
      EXPECT_EQ(run_gpu(pr, d, plan, true), gpu)
          << id << " [" << plan_name(plan) << "]: the graph replay differs";
    }
  }
}

const std::vector<ExpertsPlan>& all_plans() {
  // decode_plan(1) resolves GEMM2 to deep (k <= 1024: most cases here) or narrow (narrow3 on a
  // grid of more than 2 CTAs per SM); narrow and narrow3 are also forced. Slot items on many
  // tokens: each slot its own item (an expert read once per slot).
  static const std::vector<ExpertsPlan> plans = {
      decode_plan(1),
      decode_plan(1, DecodeGemm2::kNarrow),
      decode_plan(1, DecodeGemm2::kNarrow3),
      slot_items_plan(),
      decode_plan(2),
      decode_plan(4),
      decode_plan(8),
      with_grid(decode_plan(1), 0),
      with_grid(decode_plan(2), 3),
      with_grid(decode_plan(8), 3),
      with_grid(slot_items_plan(), 3),
      gemm_plan(GemmTile::kRows64),
      gemm_plan(GemmTile::kRows128),
      gemm_plan(GemmTile::kRows64, true),
      gemm_plan(GemmTile::kRows64Single),
      gemm_plan(GemmTile::kRows128Single),
      gemm_plan(GemmTile::kRows64Single, GemmTile::kRows64),
      pair_plan()};
  return plans;
}

const char* dt_name(DType d) {
  return d == DType::kBFloat16 ? "bf16" : "fp16";
}

// ---- the fused op ----------------------------------------------------------------------------

// "silu_bf16": the name of an (activation, dtype) test parameter.
std::string activation_dtype_name(
    const ::testing::TestParamInfo<std::tuple<Activation, DType>>& param_info) {
  return std::string(activation_name(std::get<0>(param_info.param))) + "_" +
         dt_name(std::get<1>(param_info.param));
}

class ExpertsCudaActivations : public ::testing::TestWithParam<std::tuple<Activation, DType>> {};

// Every activation and dtype, both paths (every decode token tile, both GEMM tiles); H and I off
// the 64 grid. gpt-oss SwiGLU with biases (b13 float32, b2 in the input dtype).
TEST_P(ExpertsCudaActivations, MatchesCpu) {
  SKIP_WITHOUT_GPU();
  const auto [act, dt] = GetParam();
  ProblemSpec s;
  s.act = act;
  s.dtype = dt;
  s.biases = act == Activation::kSwigluOai;
  check(std::string("experts/") + activation_name(act) + "/" + dt_name(dt), s, all_plans());
}

INSTANTIATE_TEST_SUITE_P(
    AllActivations, ExpertsCudaActivations,
    ::testing::Combine(::testing::Values(Activation::kSiluAndMul, Activation::kGeluErfAndMul,
                                         Activation::kGeluTanhAndMul, Activation::kSwigluOai,
                                         Activation::kRelu2),
                       ::testing::Values(DType::kBFloat16, DType::kFloat16)),
    activation_dtype_name);

// Interleaved gate/up rows (ExpertsParams::w13_interleaved): the grouped-GEMM path's GEMM1 applies
// the activation in its epilogue on the unclustered 64-row tile (gemm1_fuses_activation); the
// other tiles and `unfused` plans keep the float32 GEMM1 and the activation kernel (reading the
// interleaved rows); decode reads the interleaved rows. With float32 b13 (interleaved like the
// rows) and b2 in the input dtype.
class ExpertsCudaInterleaved : public ::testing::TestWithParam<std::tuple<Activation, DType>> {};

const std::vector<ExpertsPlan>& interleaved_plans() {
  static const std::vector<ExpertsPlan> plans = {
      gemm_plan(GemmTile::kRows64Single),
      gemm_plan(GemmTile::kRows128Single),
      gemm_plan(GemmTile::kRows64Single, true),
      gemm_plan(GemmTile::kRows128Single, true),
      unfused(gemm_plan(GemmTile::kRows64Single)),
      gemm_plan(GemmTile::kRows64),
      gemm_plan(GemmTile::kRows64Single, GemmTile::kRows64),
      pair_plan(),
      decode_plan(1),
      slot_items_plan(),
      decode_plan(2),
      decode_plan(8)};
  return plans;
}

TEST_P(ExpertsCudaInterleaved, MatchesCpu) {
  SKIP_WITHOUT_GPU();
  const auto [act, dt] = GetParam();
  ProblemSpec s;
  s.act = act;
  s.dtype = dt;
  s.interleaved = true;
  s.biases = true;
  check(std::string("experts/interleaved/") + activation_name(act) + "/" + dt_name(dt), s,
        interleaved_plans());
  // Several row tiles per expert and a partial last column tile (2I = 528 = 2 * 256 + 16).
  s.E = 4;
  s.H = 520;
  s.I = 264;
  s.M = 400;
  check(std::string("experts/interleaved_many_rows/") + activation_name(act) + "/" + dt_name(dt), s,
        interleaved_plans());
  // Without b2, GEMM1 and GEMM2 as one kernel (pair_plan) against the oracle.
  s.biases = false;
  check(std::string("experts/interleaved_pair/") + activation_name(act) + "/" + dt_name(dt), s,
        {pair_plan(), gemm_plan(GemmTile::kRows64Single)});
}

INSTANTIATE_TEST_SUITE_P(GatedActivations, ExpertsCudaInterleaved,
                         ::testing::Combine(::testing::Values(Activation::kSiluAndMul,
                                                              Activation::kGeluErfAndMul,
                                                              Activation::kGeluTanhAndMul),
                                            ::testing::Values(DType::kBFloat16, DType::kFloat16)),
                         activation_dtype_name);

// The fused epilogue computes what the activation kernel computes from the same float32
// accumulators (the same mainloop, the same bias addition and activation code), so the fused and
// unfused plans of the 64-row tile give the same bits, with and without the rounded gate/up.
TEST(ExpertsCuda, FusedGemm1EqualsUnfusedBitwise) {
  SKIP_WITHOUT_GPU();
  if (!device_is_sm90()) GTEST_SKIP() << "the grouped GEMM needs sm_90";
  for (const Activation act : {Activation::kSiluAndMul, Activation::kSwigluOai}) {
    for (const DType dt : {DType::kBFloat16, DType::kFloat16}) {
      ProblemSpec s;
      s.act = act;
      s.dtype = dt;
      s.interleaved = true;
      s.biases = true;
      s.E = 6;
      s.H = 264;
      s.I = 200;
      s.M = 300;
      s.K = 3;
      const std::string id =
          std::string("experts/fused_vs_unfused/") + activation_name(act) + "/" + dt_name(dt);
      const Problem pr = make_problem(id, s);
      DeviceProblem d;
      upload_problem(pr, &d);
      for (const bool rounded : {false, true}) {
        const ExpertsPlan fused = gemm_plan(GemmTile::kRows64Single, rounded);
        ASSERT_TRUE(heuristics::gemm1_fuses_activation(fused, true));
        EXPECT_EQ(run_gpu(pr, d, fused, false), run_gpu(pr, d, unfused(fused), false))
            << id << " [" << plan_name(fused) << "]: fused and unfused GEMM1 differ";
      }
    }
  }
}

// interleave_w13_cuda against interleave_w13_cpu: w13 [E, 2I, H] in 16-byte units, b13 [E, 2I]
// float32 (4-byte units) and an fp16 [E, 2I, 5] (10-byte rows: 2-byte units).
TEST(ExpertsCuda, InterleaveW13MatchesCpu) {
  SKIP_WITHOUT_GPU();
  struct Case {
    DType dt;
    std::vector<std::int64_t> shape;
  };
  const std::vector<Case> cases = {{DType::kBFloat16, {3, 10, 24}},
                                   {DType::kFloat32, {5, 14}},
                                   {DType::kFloat16, {2, 6, 5}},
                                   {DType::kBFloat16, {0, 8, 16}}};
  for (const Case& c : cases) {
    std::int64_t n = 1;
    for (const std::int64_t v : c.shape) n *= v;
    const std::size_t bytes = static_cast<std::size_t>(n) * dtype_size(c.dt);
    std::vector<std::uint8_t> src(bytes), want(bytes), got(bytes);
    for (std::size_t i = 0; i < bytes; ++i) src[i] = static_cast<std::uint8_t>(i * 37 + 11);
    const auto view = [&](void* data, Device dev) {
      return c.shape.size() == 3
                 ? TensorView::contiguous(data, c.dt, {c.shape[0], c.shape[1], c.shape[2]}, dev)
                 : TensorView::contiguous(data, c.dt, {c.shape[0], c.shape[1]}, dev);
    };
    ASSERT_TRUE(
        interleave_w13_cpu(view(src.data(), Device::kCpu), view(want.data(), Device::kCpu)).ok());
    DeviceBuffer d_src = upload(src.data(), bytes), d_dst;
    ASSERT_TRUE(DeviceBuffer::allocate(std::max<std::size_t>(bytes, 16), &d_dst).ok());
    const Status st = interleave_w13_cuda(view(d_src.get(), Device::kCuda),
                                          view(d_dst.get(), Device::kCuda), nullptr);
    ASSERT_TRUE(st.ok()) << st.to_string();
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    if (bytes) {
      ASSERT_TRUE(tools::copy_to_host(got.data(), d_dst.get(), bytes).ok());
    }
    EXPECT_EQ(got, want) << dtype_name(c.dt) << " rank " << c.shape.size();
  }
}

// Every slot on expert `expert` (no dropped ids): one hot expert, M rows of it.
ProblemSpec one_expert_spec(std::int64_t M, int expert) {
  ProblemSpec s;
  s.M = M;
  s.K = 1;
  s.routing = Routing::kOneExpert;
  s.subset = expert;
  s.drop = 0;
  return s;
}

// A short k (I = 72) over many hit experts: the decode GEMM2 gives each CTA several column blocks
// of 32 outputs (launch/experts.cu, decode_blocks_per_cta), and H = 1032 = 32 * 32 + 8 leaves a
// last CTA with one partial block.
ProblemSpec many_column_blocks_spec() {
  ProblemSpec s;
  s.E = 128;
  s.H = 1032;
  s.I = 72;
  s.M = 64;
  s.K = 8;
  return s;
}

// The fixed and the balanced decode grids (and the pipelined column blocks inside both) run the
// same arithmetic per output, so every combination gives the same bits: many hit experts with
// several column blocks per CTA and a partial last block, empty experts, one hot expert spread over
// many items, runs of units that cross items (the balanced grid's shares), and slot items with
// dropped slots (units the balanced grid skips).
TEST(ExpertsCuda, DecodeGridsEqualBitwise) {
  SKIP_WITHOUT_GPU();
  std::vector<std::pair<std::string, ProblemSpec>> specs;
  specs.emplace_back("many_experts", many_column_blocks_spec());
  ProblemSpec empty;
  empty.E = 16;
  empty.routing = Routing::kSubset;
  empty.subset = 3;
  empty.M = 7;
  specs.emplace_back("empty_experts", empty);
  specs.emplace_back("one_expert", one_expert_spec(300, 5));
  ProblemSpec gated_long;  // GEMM1 with several k iterations, GEMM2 narrow (k > 1024)
  gated_long.E = 5;
  gated_long.H = 1288;
  gated_long.I = 1032;
  gated_long.M = 9;
  gated_long.K = 2;
  gated_long.biases = true;
  specs.emplace_back("long_k", gated_long);
  for (const auto& [name, spec] : specs) {
    const std::string id = "experts/decode_grids/" + name;
    const Problem pr = make_problem(id, spec);
    DeviceProblem d;
    upload_problem(pr, &d);
    for (const ExpertsPlan& base : {decode_plan(1), decode_plan(1, DecodeGemm2::kNarrow),
                                    decode_plan(1, DecodeGemm2::kNarrow3), slot_items_plan(),
                                    decode_plan(2), decode_plan(4), decode_plan(8)}) {
      const std::vector<std::uint8_t> fixed = run_gpu(pr, d, with_grid(base, 0), false);
      for (const int bits : {1, 2, 3}) {
        EXPECT_EQ(run_gpu(pr, d, with_grid(base, bits), false), fixed)
            << id << " [" << plan_name(with_grid(base, bits)) << "]: differs from the fixed grid";
      }
    }
  }
}

// The grouped GEMM's 64-row tile with the dynamic tile scheduler (CTAs take tiles from a counter)
// against CUTLASS's fixed assignment: every tile is computed whole by one CTA, so the bits are the
// same. Shapes with several tiles per CTA (GEMM1 and GEMM2 of 2-3 column tiles per expert over
// 48-64 rows per expert, some experts spilling into a second row tile), interleaved rows (the fused
// gated epilogue) and halves (float32 GEMM1), one hot expert, and biases (float32 GEMM2).
TEST(ExpertsCuda, DynamicTilesBitwise) {
  SKIP_WITHOUT_GPU();
  if (!device_is_sm90()) GTEST_SKIP() << "the grouped GEMM needs sm_90";
  std::vector<std::pair<std::string, ProblemSpec>> specs;
  ProblemSpec many;
  many.E = 96;
  many.H = 520;
  many.I = 264;
  many.M = 640;
  many.K = 8;
  specs.emplace_back("many_tiles", many);
  ProblemSpec inter = many;
  inter.interleaved = true;
  inter.biases = true;
  specs.emplace_back("many_tiles_interleaved", inter);
  ProblemSpec hot = one_expert_spec(900, 2);
  hot.H = 1032;
  specs.emplace_back("one_expert", hot);
  for (const auto& [name, spec] : specs) {
    const std::string id = "experts/dynamic_tiles/" + name;
    const Problem pr = make_problem(id, spec);
    DeviceProblem d;
    upload_problem(pr, &d);
    ExpertsPlan fixed = gemm_plan(GemmTile::kRows64Single);
    fixed.gemm_dynamic_tiles = false;
    ExpertsPlan dynamic = fixed;
    dynamic.gemm_dynamic_tiles = true;
    const std::vector<std::uint8_t> want = run_gpu(pr, d, fixed, false);
    EXPECT_EQ(run_gpu(pr, d, dynamic, false), want) << id << ": dynamic tiles differ from fixed";
    EXPECT_EQ(run_gpu(pr, d, dynamic, true), want) << id << ": dynamic tiles in a graph differ";
  }
}

// GEMM1 and GEMM2 as one kernel give the bits of the two kernels (the same tiles and k loops;
// GEMM2's epilogue stores from registers what CUTLASS's TMA epilogue stores), also in a graph and
// over repeated runs (GEMM2's tiles wait for GEMM1's through per-expert counters: an ordering bug
// would show as a stale act row now and then). Cases: many experts with ~7 rows each (a GEMM2 tile
// of each waits on GEMM1's tiles of it), every token on one expert (many GEMM1 tiles to wait for),
// fp16 with SwiGLU and b13, and empty experts.
TEST(ExpertsCuda, GemmPairBitwise) {
  SKIP_WITHOUT_GPU();
  if (!device_is_sm90()) GTEST_SKIP() << "the grouped GEMM needs sm_90";
  std::vector<std::pair<std::string, ProblemSpec>> specs;
  ProblemSpec many;
  many.E = 128;
  many.H = 520;
  many.I = 264;
  many.M = 112;
  many.K = 8;
  many.interleaved = true;
  specs.emplace_back("many_experts", many);
  ProblemSpec hot = one_expert_spec(700, 3);
  hot.H = 1032;
  hot.interleaved = true;
  specs.emplace_back("one_expert", hot);
  ProblemSpec oai = many;
  oai.E = 9;
  oai.M = 60;
  oai.K = 3;
  oai.act = Activation::kSwigluOai;
  oai.dtype = DType::kFloat16;
  oai.biases = true;
  specs.emplace_back("swiglu_fp16", oai);
  ProblemSpec sparse = many;
  sparse.routing = Routing::kSubset;
  sparse.subset = 40;  // experts 40..127 get no rows
  specs.emplace_back("empty_experts", sparse);
  for (const auto& [name, spec] : specs) {
    const std::string id = "experts/gemm_pair/" + name;
    Problem pr = make_problem(id, spec);
    DeviceProblem d;
    upload_problem(pr, &d);
    if (spec.act == Activation::kSwigluOai) {  // b13 only: with b2 the pair does not apply
      ASSERT_TRUE(d.args.b13.defined()) << id;
      d.args.b2 = TensorView{};
    }
    ExpertsPlan two = gemm_plan(GemmTile::kRows64Single);
    two.gemm_dynamic_tiles = true;
    const ExpertsPlan pair = pair_plan();
    ASSERT_TRUE(detail::gemm_pair_runs(pr.p, pair, d.args.b2.defined())) << id;
    ASSERT_FALSE(detail::gemm_pair_runs(pr.p, two, d.args.b2.defined())) << id;
    const std::vector<std::uint8_t> want = run_gpu(pr, d, two, false);
    for (int rep = 0; rep < 4; ++rep) {
      EXPECT_EQ(run_gpu(pr, d, pair, false), want) << id << ": the pair differs, run " << rep;
      EXPECT_EQ(run_gpu(pr, d, pair, true), want)
          << id << ": the pair in a graph differs, run " << rep;
    }
  }
}

TEST(ExpertsCuda, EmptyExperts) {
  SKIP_WITHOUT_GPU();
  ProblemSpec s;
  s.E = 16;
  s.routing = Routing::kSubset;
  s.subset = 3;  // experts 3..15 get no rows
  check("experts/empty_experts", s, all_plans());
}

TEST(ExpertsCuda, AllTokensOnOneExpert) {
  SKIP_WITHOUT_GPU();
  // 300 rows on expert 5: several decode items and GEMM row tiles.
  check("experts/one_expert", one_expert_spec(300, 5), all_plans());
}

TEST(ExpertsCuda, ZeroTokens) {
  SKIP_WITHOUT_GPU();
  ProblemSpec s;
  s.M = 0;
  const Problem pr = make_problem("experts/m0", s);
  DeviceProblem d;
  upload_problem(pr, &d);
  for (const ExpertsPlan& plan : all_plans()) EXPECT_TRUE(run_gpu(pr, d, plan, false).empty());
  EXPECT_TRUE(fused_experts_cuda(pr.p, d.args, d.workspace.get(), d.workspace_bytes, nullptr).ok());
}

TEST(ExpertsCuda, AllSlotsDroppedGiveZeros) {
  SKIP_WITHOUT_GPU();
  ProblemSpec s;
  s.drop = 1.0;
  check("experts/all_dropped", s, all_plans());
}

TEST(ExpertsCuda, OddExpertsAndSizesOffTheTileGrid) {
  SKIP_WITHOUT_GPU();
  ProblemSpec s;
  s.E = 13;
  s.H = 200;  // 3 * 64 + 8
  s.I = 56;
  s.M = 97;
  s.K = 3;
  s.act = Activation::kGeluTanhAndMul;
  check("experts/odd_shapes", s, all_plans());
  s.dtype = DType::kFloat16;
  s.I = 264;  // 4 * 64 + 8: 2I = 528 spans three 256-column tiles
  s.H = 8;
  check("experts/odd_shapes_h8", s, all_plans());
}

// Model-sized expert counts (the presets have 128-384): most experts empty, both paths (the
// decode work-item scan over many experts, the grouped GEMM's scheduler past 32 groups).
TEST(ExpertsCuda, ManyExpertsMostlyEmpty) {
  SKIP_WITHOUT_GPU();
  ProblemSpec s;
  s.E = 256;
  s.M = 24;
  s.K = 8;
  check("experts/e256_sparse", s, all_plans());
  s.routing = Routing::kSubset;
  s.subset = 160;  // experts 160..255 empty
  s.M = 200;
  check("experts/e256_subset", s, all_plans());
}

TEST(ExpertsCuda, ExpertParallelMap) {
  SKIP_WITHOUT_GPU();
  ProblemSpec s;
  s.E = 5;
  s.global_experts = 14;  // local experts are global 0, 3, 6, 9, 12; the rest are dropped
  s.M = 64;
  s.K = 4;
  check("experts/ep_map", s, all_plans());
}

TEST(ExpertsCuda, RouterWeightOnInput) {
  SKIP_WITHOUT_GPU();
  ProblemSpec s;
  s.K = 1;
  s.M = 50;
  s.weight_on_input = true;
  check("experts/weight_on_input_bf16", s, all_plans());
  s.dtype = DType::kFloat16;
  s.act = Activation::kSwigluOai;
  s.biases = true;
  check("experts/weight_on_input_fp16_swiglu", s, all_plans());
}

TEST(ExpertsCuda, ManyRowsPerExpert) {
  SKIP_WITHOUT_GPU();
  ProblemSpec s;
  s.E = 4;
  s.H = 520;
  s.I = 264;
  s.M = 400;
  s.K = 2;  // ~200 rows per expert: several 64- and 128-row GEMM tiles and 32-row decode items
  check("experts/many_rows", s, all_plans());
}

TEST(ExpertsCuda, LongIntermediateFewRows) {
  SKIP_WITHOUT_GPU();
  // 40 layout rows of a long I = 3080 (12 GEMM1 column tiles of 256 and a partial one; the
  // activation kernel's threads pass over each row three times), a short H: every path.
  ProblemSpec s;
  s.E = 4;
  s.H = 64;
  s.I = 3080;
  s.M = 20;
  s.K = 2;
  check("experts/long_i_few_rows", s, all_plans());
  s.act = Activation::kSwigluOai;  // interleaved gate/up rows, biases
  s.biases = true;
  check("experts/long_i_few_rows_swiglu", s, all_plans());
}

TEST(ExpertsCuda, SeveralColumnBlocksPerDecodeCta) {
  SKIP_WITHOUT_GPU();
  // Up to 8 column blocks per CTA, a partial last one (many_column_blocks_spec).
  check("experts/column_blocks_per_cta", many_column_blocks_spec(),
        {decode_plan(1), decode_plan(1, DecodeGemm2::kNarrow), slot_items_plan(), decode_plan(2),
         decode_plan(4), decode_plan(8)});
  // The deep GEMM2 of one or two tokens takes as few CTAs as fill one wave (2 per SM): on a
  // 132-SM card 8 (16) busy items x 41 column blocks give 2 (3) blocks per CTA, the last CTA of
  // an item with a partial block.
  ProblemSpec wave;
  wave.E = 32;
  wave.H = 1288;  // 40 * 32 + 8
  wave.I = 72;
  wave.K = 8;
  wave.drop = 0.0;
  for (const std::int64_t m : {1, 2}) {
    wave.M = m;
    check("experts/deep_one_wave_m" + std::to_string(m), wave, {decode_plan(1), slot_items_plan()});
  }
  // The one-tile GEMM2 is deep (4 chunks in flight per warp) up to k = 1024 and narrow (2) above
  // it; both instances on a k just over the limit.
  ProblemSpec longer;
  longer.E = 5;
  longer.H = 72;
  longer.I = 1032;
  longer.M = 9;
  longer.K = 2;
  check("experts/decode_gemm2_long_k", longer,
        {decode_plan(1), decode_plan(1, DecodeGemm2::kNarrow), decode_plan(1, DecodeGemm2::kDeep),
         decode_plan(1, DecodeGemm2::kNarrow3), slot_items_plan(), decode_plan(2)});
}

// The one-token kernel (kernels/experts_token.cuh) against the CPU and against the slot-item
// kernels it replaces, on every activation, dtype and w13 layout, with and without biases, the
// EP map, dropped and repeated ids, a weighted input, K from 1 to 32 and H split unevenly over the
// CTAs; check() also replays it in a graph and runs it twice (bitwise). Shapes it must take on an
// sm_90 device are asserted to take it; one too large for shared memory falls back.
void check_token(const std::string& id, const ProblemSpec& s, bool must_fit) {
  ExpertsParams p;
  p.num_experts = s.E;
  p.hidden_size = s.H;
  p.intermediate_size = s.I;
  p.activation = s.act;
  p.w13_interleaved = s.interleaved;
  if (device_is_sm90() && device_sms() == 132) {  // H100 SXM / H200: the sizes in the comments
    EXPECT_EQ(detail::token_kernel_runs(p, s.M, s.K, token_plan()), must_fit) << id;
  }
  EXPECT_FALSE(
      detail::token_kernel_runs(p, heuristics::kDecodeFusedMaxTokens + 1, s.K, token_plan()))
      << id;
  EXPECT_FALSE(detail::token_kernel_runs(p, s.M, s.K, slot_items_plan())) << id;
  check(id, s, {token_plan(), slot_items_plan()});
}

TEST(ExpertsCuda, OneTokenKernelMatchesCpu) {
  SKIP_WITHOUT_GPU();
  for (const Activation act :
       {Activation::kSiluAndMul, Activation::kGeluErfAndMul, Activation::kGeluTanhAndMul,
        Activation::kSwigluOai, Activation::kRelu2}) {
    for (const DType dt : {DType::kBFloat16, DType::kFloat16}) {
      for (const bool interleaved : {false, true}) {
        if (interleaved && (act == Activation::kRelu2 || act == Activation::kSwigluOai)) continue;
        ProblemSpec s;
        s.act = act;
        s.dtype = dt;
        s.M = interleaved ? 2 : 1;
        s.K = 4;
        s.drop = 0.0;
        s.interleaved = interleaved;
        s.biases = act == Activation::kSwigluOai || interleaved;
        check_token(std::string("experts/token/") + activation_name(act) + "/" + dt_name(dt) +
                        (interleaved ? "/interleaved_m2" : ""),
                    s, true);
      }
    }
  }
}

// One token of E experts, H x I, top K, a fraction `drop` of the ids dropped.
ProblemSpec token_spec(int E, int H, int I, int K, double drop) {
  ProblemSpec s;
  s.M = 1;
  s.E = E;
  s.H = H;
  s.I = I;
  s.K = K;
  s.drop = drop;
  return s;
}

TEST(ExpertsCuda, OneTokenKernelShapesAndIds) {
  SKIP_WITHOUT_GPU();
  // Qwen3-30B-A3B's expert shape (H 2048, I 768, K 8; 16 experts instead of 128).
  ProblemSpec s = token_spec(16, 2048, 768, 8, 0.0);
  check_token("experts/token/qwen3_shape", s, true);
  s.dtype = DType::kFloat16;
  s.interleaved = true;
  check_token("experts/token/qwen3_shape_fp16_interleaved", s, true);
  // Two tokens (16 slots): on a 132-SM card 7 slots' w2 rows fit in shared memory, GEMM2 reads
  // the other 9 from global memory; the same expert may serve both tokens.
  s.M = 2;
  check_token("experts/token/qwen3_shape_m2", s, true);
  s.dtype = DType::kBFloat16;
  s.interleaved = false;
  s.drop = 0.2;
  check_token("experts/token/qwen3_shape_m2_bf16", s, true);
  // H = 1064 = 118 * 9 + 2 on a 132-SM card: 119 CTAs of 9 rows, the last with 2; K = 32.
  check_token("experts/token/odd_rows_k32", token_spec(40, 1064, 40, 32, 0.3), true);
  ProblemSpec two = token_spec(40, 1064, 40, 16, 0.3);
  two.M = 2;
  check_token("experts/token/odd_rows_m2_k16", two, true);
  // K = 1 with the weight on the input (Llama-4), with biases in float32.
  ProblemSpec one = token_spec(8, 136, 72, 1, 0.0);
  one.weight_on_input = true;
  one.biases = true;
  check_token("experts/token/weight_on_input", one, true);
  one.M = 2;
  check_token("experts/token/weight_on_input_m2", one, true);
  // The same expert in every slot, every slot dropped, and the EP map.
  ProblemSpec same = token_spec(8, 136, 72, 6, 0.0);
  same.routing = Routing::kOneExpert;
  same.subset = 3;
  check_token("experts/token/one_expert_every_slot", same, true);
  same.drop = 1.0;
  check_token("experts/token/all_dropped", same, true);
  ProblemSpec ep = token_spec(5, 136, 72, 8, 0.05);
  ep.global_experts = 14;  // ids outside the 5 local experts are dropped
  check_token("experts/token/ep_map", ep, true);
  ep.M = 2;
  check_token("experts/token/ep_map_m2", ep, true);
  // h alone (8 x 16384 x 2 bytes) exceeds shared memory: slot items.
  check_token("experts/token/too_big_falls_back", token_spec(8, 72, 16384, 8, 0.0), false);
  // No slot's w2 rows fit in shared memory (32 rows of 3104 elements on a 132-SM card): GEMM2
  // reads all 8 slots' rows from global memory, 16 items of 96 KB.
  check_token("experts/token/no_slot_staged", token_spec(2, 4096, 3072, 8, 0.0), true);
  // One of the two slots staged; the other's GEMM2 warp would stream 16 rows of 4096 elements
  // (128 KB) after the grid barrier, past heuristics::kTokenMaxGlobalBytesPerWarp: the decode
  // items.
  check_token("experts/token/long_rows_fall_back", token_spec(2, 2048, 4096, 2, 0.0), false);
  ProblemSpec big2 = token_spec(8, 72, 16384, 8, 0.0);
  big2.M = 2;
  check_token("experts/token/too_big_falls_back_m2", big2, false);
}

TEST(ExpertsCuda, DefaultPlanOnModelShapes) {
  SKIP_WITHOUT_GPU();
  // The public entry point (heuristic plan) on a Qwen3-30B-like layer at 1/8 size, decode and
  // prefill token counts.
  for (std::int64_t M : {1, 7, 512}) {
    ProblemSpec s;
    s.E = 16;
    s.H = 256;
    s.I = 96;
    s.K = 8;
    s.M = M;
    const std::string id = "experts/default_plan/M" + std::to_string(M);
    const Problem pr = make_problem(id, s);
    const std::vector<std::uint8_t> cpu = run_cpu(pr);
    DeviceProblem d;
    upload_problem(pr, &d);
    const ExpertsPlan plan =
        heuristics::plan_experts(M, s.K, s.E, s.H, s.I, experts_w13_interleaved(pr.p));
    if (plan.path == ExpertsPath::kGroupedGemm && !device_is_sm90()) continue;
    ASSERT_TRUE(tools::fill_device_bytes(d.out.get(), 0xff, d.out.bytes()).ok());
    ASSERT_TRUE(
        fused_experts_cuda(pr.p, d.args, d.workspace.get(), d.workspace_bytes, nullptr).ok());
    ASSERT_TRUE(tools::device_synchronize().ok());
    std::vector<std::uint8_t> gpu(d.out_bytes);
    ASSERT_TRUE(tools::copy_to_host(gpu.data(), d.out.get(), d.out_bytes).ok());
    const std::string err = compare(pr, cpu, gpu);
    EXPECT_TRUE(err.empty()) << id << " [" << heuristics::experts_path_name(plan.path) << "] "
                             << err;
  }
}

// ---- argument errors (no GPU needed: validation fails before any device work) -----------------

void* fake(std::uintptr_t a) {
  return reinterpret_cast<void*>(a);
}

TEST(ExpertsCudaArgs, MessagesNameTheArgument) {
  ProblemSpec s;
  Problem pr = make_problem("experts/args", s);
  pr.p.hidden_size = 100;  // not a multiple of 8
  pr.x.resize(static_cast<std::size_t>(pr.M * 100) * 2);
  ExpertsArgs a = views(pr, Device::kCuda, fake(0x10000), fake(0x20000), fake(0x30000), nullptr,
                        nullptr, fake(0x40000), fake(0x50000), nullptr, fake(0x60000));
  Status st = fused_experts_cuda(pr.p, a, fake(0x70000), std::size_t{1} << 40, nullptr);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("fused_experts_cuda: hidden_size = 100: expected a multiple of 8"),
            std::string::npos)
      << st.message();

  pr.p.hidden_size = 136;
  a = views(pr, Device::kCuda, fake(0x10000), fake(0x20000), fake(0x30000), nullptr, nullptr,
            fake(0x40000), fake(0x50000), nullptr, fake(0x60000));
  st = fused_experts_cuda(pr.p, a, fake(0x70000), 1000, nullptr);
  EXPECT_NE(st.message().find("fused_experts_cuda: workspace_bytes = 1000: expected >= "
                              "fused_experts_workspace_size() = " +
                              std::to_string(fused_experts_workspace_size(pr.p, pr.M, pr.K))),
            std::string::npos)
      << st.message();

  // 2-byte aligned x and w2: an error, not a misaligned 16-byte load on the device.
  ExpertsArgs mis = views(pr, Device::kCuda, fake(0x10002), fake(0x20000), fake(0x30000), nullptr,
                          nullptr, fake(0x40000), fake(0x50000), nullptr, fake(0x60000));
  st = fused_experts_cuda(pr.p, mis, fake(0x70000), std::size_t{1} << 40, nullptr);
  EXPECT_NE(st.message().find("fused_experts_cuda: x.data = misaligned: expected a 16-byte"),
            std::string::npos)
      << st.message();
  mis = views(pr, Device::kCuda, fake(0x10000), fake(0x20000), fake(0x30008), nullptr, nullptr,
              fake(0x40000), fake(0x50000), nullptr, fake(0x60000));
  st = fused_experts_cuda(pr.p, mis, fake(0x70000), std::size_t{1} << 40, nullptr);
  EXPECT_NE(st.message().find("w2.data = misaligned"), std::string::npos) << st.message();

  a.x.device = Device::kCpu;
  st = fused_experts_cuda(pr.p, a, fake(0x70000), std::size_t{1} << 40, nullptr);
  EXPECT_NE(st.message().find("fused_experts_cuda: x.device = cpu: expected cuda"),
            std::string::npos)
      << st.message();
}

TEST(ExpertsCudaArgs, WorkspaceFormula) {
  ExpertsParams p;
  p.num_experts = 256;
  p.hidden_size = 7168;
  p.intermediate_size = 2048;
  const std::size_t S = 4096 * 8;
  ExpertLayoutParams lp;
  lp.num_experts = 256;
  const auto r = [](std::size_t b) { return (b + 255) / 256 * 256; };
  const std::size_t expect = r(8 * 257) + r(4 * 256) + 2 * r(8 * S) +
                             r(expert_layout_workspace_size(lp, S)) + r(2 * S * 2048) +
                             r(2 * S * 7168) + r(4 * S * 7168) + r(128 * 256) + (256 << 10) + 256;
  EXPECT_EQ(fused_experts_workspace_size(p, 4096, 8), expect);
}

// ---- heuristics (pure host) -------------------------------------------------------------------

TEST(ExpertsHeuristics, DecodeUpToEightTokensThenTheUnclusteredGemm) {
  for (const char* name : {"deepseek-v3", "qwen3-30b-a3b", "mixtral-8x7b", "kimi-k2"}) {
    const ModelPreset* m = find_model_preset(name);
    ASSERT_NE(m, nullptr);
    const int E = m->routing.num_experts, K = m->routing.top_k;
    const auto plan = [&](std::int64_t M, bool interleaved = true) {
      return heuristics::plan_experts(M, K, E, m->hidden_size, m->intermediate_size, interleaved);
    };
    const ExpertsPlan one = plan(1);
    EXPECT_EQ(one.path, ExpertsPath::kDecode) << name;
    EXPECT_EQ(one.decode_token_tiles, 1) << name;
    EXPECT_TRUE(one.decode_slot_items) << name;   // one token: no layout kernel
    EXPECT_TRUE(one.decode_fused_token) << name;  // and the one-token kernel where it fits
    // With SGLang's halves (no GEMM pair, GemmPairWhereItPays) decode up to 8 tokens.
    EXPECT_TRUE(plan(2, false).decode_fused_token) << name;
    EXPECT_FALSE(plan(3, false).decode_fused_token) << name;
    for (std::int64_t M : {2, 8}) {  // at most M rows per expert: one 8-row tile, layout items
      EXPECT_EQ(plan(M, false).path, ExpertsPath::kDecode) << name << " M=" << M;
      EXPECT_EQ(plan(M, false).decode_token_tiles, 1) << name << " M=" << M;
      EXPECT_FALSE(plan(M, false).decode_slot_items) << name << " M=" << M;
    }
    for (std::int64_t M : {9, 256, 4096, 8192, 16384}) {
      EXPECT_EQ(plan(M).path, ExpertsPath::kGroupedGemm) << name << " M=" << M;
      // The 128-row tile from 289 rows per expert on narrow experts (I < 8192) with H >= 2560
      // (DeepSeek-V3, Kimi K2), whatever the layout; with SGLang's halves also past 512 rows
      // elsewhere (Mixtral, Qwen3-30B); with interleaved rows (the 64-row tile's GEMM1 fuses the
      // activation) nowhere else.
      const std::int64_t r = heuristics::expected_rows_per_expert(M * K, E);
      const bool narrow = m->intermediate_size < 8192 && m->hidden_size >= 2560;
      EXPECT_EQ(plan(M, false).gemm_tile, r > 512 || (r >= 289 && narrow) ? GemmTile::kRows128Single
                                                                          : GemmTile::kRows64Single)
          << name << " M=" << M;
      EXPECT_EQ(plan(M).gemm_tile,
                r >= 289 && narrow ? GemmTile::kRows128Single : GemmTile::kRows64Single)
          << name << " M=" << M;
    }
  }
  // The tile for M tokens, top K of E experts, H x I, interleaved gate/up rows or SGLang's halves.
  const auto tile = [](std::int64_t M, int K, int E, int H, int I, bool interleaved) {
    return heuristics::plan_experts(M, K, E, H, I, interleaved).gemm_tile;
  };
  // Halves: Mixtral from 4096 tokens (1024 rows per expert) on the 128-row tile, Qwen3-30B at
  // 8192 (512 rows) on the 64-row one. Interleaved: Mixtral on the fused 64-row tile at every
  // size (I = 14336).
  EXPECT_EQ(tile(4096, 2, 8, 4096, 14336, false), GemmTile::kRows128Single);
  EXPECT_EQ(heuristics::plan_experts(4096, 2, 8, 4096, 14336, false).gemm2_tile,
            GemmTile::kRows128Single);
  EXPECT_EQ(tile(2048, 2, 8, 4096, 14336, false), GemmTile::kRows64Single);
  EXPECT_EQ(tile(8192, 8, 128, 2048, 768, false), GemmTile::kRows64Single);
  for (const std::int64_t M : {4096, 8192, 16384}) {
    const ExpertsPlan pl = heuristics::plan_experts(M, 2, 8, 4096, 14336, true);
    EXPECT_EQ(pl.gemm_tile, GemmTile::kRows64Single) << "M=" << M;
    EXPECT_EQ(pl.gemm2_tile, GemmTile::kRows64Single) << "M=" << M;
    EXPECT_TRUE(heuristics::gemm1_fuses_activation(pl, true)) << "M=" << M;
    EXPECT_FALSE(heuristics::gemm1_fuses_activation(pl, false)) << "M=" << M;
  }
  // Interleaved, the thresholds: Qwen3-235B's shape at 256 / 288 / 289 / 512 rows per expert,
  // DeepSeek-V3's at 8192 / 16384 tokens, I = 8191 / 8192 (Llama 4's shape), H = 2559 / 2560.
  EXPECT_EQ(tile(4096, 8, 128, 4096, 1536, true), GemmTile::kRows64Single);
  EXPECT_EQ(tile(4608, 8, 128, 4096, 1536, true), GemmTile::kRows64Single);
  EXPECT_EQ(tile(4609, 8, 128, 4096, 1536, true), GemmTile::kRows128Single);
  EXPECT_EQ(tile(8192, 8, 128, 4096, 1536, true), GemmTile::kRows128Single);
  EXPECT_EQ(tile(8192, 8, 256, 7168, 2048, true), GemmTile::kRows64Single);
  EXPECT_EQ(tile(16384, 8, 256, 7168, 2048, true), GemmTile::kRows128Single);
  EXPECT_EQ(tile(131072, 1, 128, 5120, 8192, true), GemmTile::kRows64Single);
  EXPECT_EQ(tile(131072, 1, 128, 5120, 8191, true), GemmTile::kRows128Single);
  EXPECT_EQ(tile(16384, 8, 128, 2559, 768, true), GemmTile::kRows64Single);
  EXPECT_EQ(tile(16384, 8, 128, 2560, 768, true), GemmTile::kRows128Single);
  // Halves: the same thresholds on narrow experts; past 512 rows on the others.
  EXPECT_EQ(tile(4608, 8, 128, 4096, 1536, false), GemmTile::kRows64Single);
  EXPECT_EQ(tile(4609, 8, 128, 4096, 1536, false), GemmTile::kRows128Single);
  EXPECT_EQ(tile(16384, 8, 128, 2048, 768, false), GemmTile::kRows128Single);
  EXPECT_EQ(tile(2049, 2, 8, 4096, 14336, false), GemmTile::kRows128Single);
  // The 128-row tile's GEMM1 writes float32 and leaves the activation to its own kernel.
  EXPECT_FALSE(heuristics::gemm1_fuses_activation(
      heuristics::plan_experts(8192, 8, 128, 4096, 1536, true), true));
  // GEMM2 on the clustered 64-row tile only where the experts hold just over one row tile and
  // GEMM2 has few column tiles: Mixtral at 196..272 tokens (49..68 rows per expert).
  const auto gemm2 = [](std::int64_t M, int K, int E, int H) {
    const ExpertsPlan pl = heuristics::plan_experts(M, K, E, H, 1024, true);
    EXPECT_EQ(pl.gemm_tile, GemmTile::kRows64Single) << "M=" << M << " E=" << E;
    EXPECT_EQ(heuristics::plan_experts(M, K, E, H, 1024, false).gemm2_tile, pl.gemm2_tile);
    return pl.gemm2_tile;
  };
  EXPECT_EQ(gemm2(192, 2, 8, 4096), GemmTile::kRows64Single);     // 48 rows per expert
  EXPECT_EQ(gemm2(196, 2, 8, 4096), GemmTile::kRows64);           // 49
  EXPECT_EQ(gemm2(256, 2, 8, 4096), GemmTile::kRows64);           // 64
  EXPECT_EQ(gemm2(272, 2, 8, 4096), GemmTile::kRows64);           // 68
  EXPECT_EQ(gemm2(273, 2, 8, 4096), GemmTile::kRows64Single);     // 69
  EXPECT_EQ(gemm2(256, 2, 8, 8448), GemmTile::kRows64);           // 8 x 33 = 264 column tiles
  EXPECT_EQ(gemm2(256, 2, 8, 8449), GemmTile::kRows64Single);     // 8 x 34
  EXPECT_EQ(gemm2(1024, 8, 128, 2048), GemmTile::kRows64Single);  // Qwen3-30B: 1024 tiles
  EXPECT_EQ(gemm2(2048, 8, 256, 7168), GemmTile::kRows64Single);  // DeepSeek-V3: 7168
  EXPECT_EQ(heuristics::expected_rows_per_expert(0, 8), 0);
  EXPECT_EQ(heuristics::expected_rows_per_expert(5, 8), 1);
  EXPECT_EQ(heuristics::expected_rows_per_expert(17, 8), 3);
}

// The token kernel's rule on an H200 (132 SMs; 232,448 bytes of opt-in shared memory less the
// kernel's 384 static bytes): the presets it took in session 27's measurements, at one and two
// tokens, and the shared-memory layout it computes for Qwen3-30B-A3B.
// The dynamic tile scheduler where experts are one 64-row tile (expected rows <= 32), the fixed
// assignment where an expert's row tiles share a weight tile.
TEST(ExpertsHeuristics, DynamicTilesOnlyWhereExpertsAreOneRowTile) {
  // Qwen3-30B (top 8 of 128): 512 tokens = 32 rows per expert, 513 = 33.
  EXPECT_TRUE(heuristics::plan_experts(16, 8, 128, 2048, 768, true).gemm_dynamic_tiles);
  EXPECT_TRUE(heuristics::plan_experts(512, 8, 128, 2048, 768, true).gemm_dynamic_tiles);
  EXPECT_FALSE(heuristics::plan_experts(513, 8, 128, 2048, 768, true).gemm_dynamic_tiles);
  EXPECT_FALSE(heuristics::plan_experts(4096, 8, 128, 2048, 768, true).gemm_dynamic_tiles);
  // Mixtral (top 2 of 8): 128 tokens = 32 rows, 256 = 64.
  EXPECT_TRUE(heuristics::plan_experts(128, 2, 8, 4096, 14336, true).gemm_dynamic_tiles);
  EXPECT_FALSE(heuristics::plan_experts(256, 2, 8, 4096, 14336, true).gemm_dynamic_tiles);
  // DeepSeek-V3 (top 8 of 256): 1024 tokens = 32 rows.
  EXPECT_TRUE(heuristics::plan_experts(1024, 8, 256, 7168, 2048, true).gemm_dynamic_tiles);
  EXPECT_FALSE(heuristics::plan_experts(4096, 8, 256, 7168, 2048, true).gemm_dynamic_tiles);
}

// GEMM1 and GEMM2 as one kernel (ExpertsPlan::gemm_pair) up to 32 rows per expert with at least
// 264 GEMM2 column tiles, and in place of decode below 9 tokens with about 528 tiles or more
// (heuristics::kGemmPairMinTilesOverDecode; H200, session 36).
TEST(ExpertsHeuristics, GemmPairWhereItPays) {
  const auto plan = [](const char* name, std::int64_t M, bool interleaved = true,
                       bool has_b2 = false) {
    const ModelPreset* m = find_model_preset(name);
    EXPECT_NE(m, nullptr) << name;
    return heuristics::plan_experts(M, m->routing.top_k, m->routing.num_experts, m->hidden_size,
                                    m->intermediate_size, interleaved, has_b2);
  };
  const auto pair = [&](const char* name, std::int64_t M, bool interleaved = true,
                        bool has_b2 = false) {
    const ExpertsPlan p = plan(name, M, interleaved, has_b2);
    return p.path == ExpertsPath::kGroupedGemm && p.gemm_pair;
  };
  // Qwen3-30B (8 of 128, 6 + 8 column tiles): 4 tokens ~410 tiles, decode; 8 tokens ~720, the
  // pair; the pair up to 512 tokens (32 rows per expert), not at 513.
  EXPECT_EQ(plan("qwen3-30b-a3b", 4).path, ExpertsPath::kDecode);
  for (std::int64_t M : {8, 9, 16, 256, 512}) EXPECT_TRUE(pair("qwen3-30b-a3b", M)) << M;
  EXPECT_FALSE(pair("qwen3-30b-a3b", 513));
  // No pair without the fused GEMM1 or with b2: decode up to 8 tokens, then the two kernels.
  EXPECT_EQ(plan("qwen3-30b-a3b", 8, false).path, ExpertsPath::kDecode);
  EXPECT_EQ(plan("qwen3-30b-a3b", 8, true, true).path, ExpertsPath::kDecode);
  EXPECT_EQ(plan("qwen3-30b-a3b", 16, true, true).path, ExpertsPath::kGroupedGemm);
  // DeepSeek-V3 (16 + 28 column tiles): one token (352 tiles) decode, two (~690) the pair.
  EXPECT_EQ(plan("deepseek-v3", 1).path, ExpertsPath::kDecode);
  for (std::int64_t M : {2, 8, 1024}) EXPECT_TRUE(pair("deepseek-v3", M)) << M;
  EXPECT_FALSE(pair("deepseek-v3", 1025));
  // Mixtral: 8 experts x 16 GEMM2 column tiles, never the pair.
  for (std::int64_t M : {1, 8, 16, 128}) EXPECT_FALSE(pair("mixtral-8x7b", M)) << M;
  EXPECT_EQ(plan("mixtral-8x7b", 8).path, ExpertsPath::kDecode);
  // Llama 4 (top 1, 20 GEMM2 column tiles per expert): from 14 hit experts.
  EXPECT_FALSE(pair("llama4-maverick", 13));
  EXPECT_TRUE(pair("llama4-maverick", 16));
  EXPECT_EQ(heuristics::expected_hit_experts(0, 8, 128), 0.0);
  EXPECT_NEAR(heuristics::expected_hit_experts(1, 8, 128), 8.0, 1e-9);
  EXPECT_NEAR(heuristics::expected_hit_experts(1000, 8, 128), 128.0, 1e-9);
}

TEST(ExpertsHeuristics, TokenKernelTakesTheMeasuredShapes) {
  constexpr int kSms = 132;
  constexpr std::int64_t kBudget = 232448 - 384;
  const std::vector<std::string> takes = {"qwen3-30b-a3b", "qwen3-235b-a22b", "deepseek-v2",
                                          "gpt-oss-120b"};
  for (const ModelPreset& m : model_presets()) {
    const bool expected = std::find(takes.begin(), takes.end(), m.name) != takes.end();
    for (std::int64_t tokens : {1, 2}) {
      heuristics::TokenShape shape;
      EXPECT_EQ(heuristics::token_kernel_shape(m.hidden_size, m.intermediate_size, tokens,
                                               m.routing.top_k, kSms, kBudget, &shape),
                expected)
          << m.name << " tokens=" << tokens;
    }
    heuristics::TokenShape three;
    EXPECT_FALSE(heuristics::token_kernel_shape(m.hidden_size, m.intermediate_size, 3, 1, kSms,
                                                kBudget, &three))
        << m.name;
  }
  heuristics::TokenShape q;
  ASSERT_TRUE(heuristics::token_kernel_shape(2048, 768, 1, 8, kSms, kBudget, &q));
  EXPECT_EQ(q.rows_per_cta, 16);
  EXPECT_EQ(q.ctas, 128);
  EXPECT_EQ(q.staged_slots, 8);
  EXPECT_EQ(q.smem, 4096 + 12288 + 8 * 16 * 800 * 2 + 512);
  ASSERT_TRUE(heuristics::token_kernel_shape(2048, 768, 2, 8, kSms, kBudget, &q));
  EXPECT_EQ(q.staged_slots, 7);
  EXPECT_LE(q.smem, kBudget);
  // 33 slots, an empty budget, no SMs: no.
  EXPECT_FALSE(heuristics::token_kernel_shape(2048, 768, 1, 33, kSms, kBudget, &q));
  EXPECT_FALSE(heuristics::token_kernel_shape(2048, 768, 1, 8, kSms, 1024, &q));
  EXPECT_FALSE(heuristics::token_kernel_shape(2048, 768, 1, 8, 0, kBudget, &q));
}

TEST(ExpertsHeuristics, NarrowGemm2TakesThreeCtasPerSmOnlyWithTheCtasToFillThem) {
  ExpertsPlan p;
  p.path = ExpertsPath::kDecode;
  p.decode_token_tiles = 1;
  // k above the deep limit: narrow, and narrow3 once the grid has more than 2 CTAs per SM.
  EXPECT_EQ(heuristics::decode_gemm2_with_grid(p, 2048, 264, 132), DecodeGemm2::kNarrow);
  EXPECT_EQ(heuristics::decode_gemm2_with_grid(p, 2048, 265, 132), DecodeGemm2::kNarrow3);
  EXPECT_EQ(heuristics::decode_gemm2_with_grid(p, 2048, 265, 0), DecodeGemm2::kNarrow);
  // A short k stays deep; a forced instance and more than one token tile are kept.
  EXPECT_EQ(heuristics::decode_gemm2_with_grid(p, 768, 5000, 132), DecodeGemm2::kDeep);
  p.decode_gemm2 = DecodeGemm2::kNarrow;
  EXPECT_EQ(heuristics::decode_gemm2_with_grid(p, 2048, 5000, 132), DecodeGemm2::kNarrow);
  p.decode_gemm2 = DecodeGemm2::kNarrow3;
  EXPECT_EQ(heuristics::decode_gemm2_with_grid(p, 768, 1, 132), DecodeGemm2::kNarrow3);
  p.decode_gemm2 = DecodeGemm2::kAuto;
  p.decode_token_tiles = 2;
  EXPECT_EQ(heuristics::decode_gemm2_with_grid(p, 2048, 5000, 132), DecodeGemm2::kNarrow);
}

TEST(ExpertsHeuristics, NarrowGemm2OnTheBalancedGridFollowsTheUnitsPerSm) {
  ExpertsPlan p;
  p.path = ExpertsPath::kDecode;
  p.decode_token_tiles = 1;
  // DeepSeek-V3 at one token: 8 slots x 224 column blocks = 1792 units on 132 SMs: 2 x 7 = 14
  // units per SM as narrow, 3 x 5 = 15 as narrow3: narrow.
  EXPECT_EQ(heuristics::decode_gemm2_on_balanced_grid(p, 2048, 8 * 224, 132), DecodeGemm2::kNarrow);
  // gpt-oss-120b at 3 tokens: 12 x 90 = 1080 units: 2 x 5 = 10 against 3 x 3 = 9: narrow3.
  EXPECT_EQ(heuristics::decode_gemm2_on_balanced_grid(p, 2880, 12 * 90, 132),
            DecodeGemm2::kNarrow3);
  // Qwen3-235B at 8 tokens (64 hit experts x 128 blocks): 64 against 63, under 5% less: narrow.
  EXPECT_EQ(heuristics::decode_gemm2_on_balanced_grid(p, 1536, 64 * 128, 132),
            DecodeGemm2::kNarrow);
  // The boundaries on 132 SMs: 264 units fill one narrow slot per CTA (2 against 3), 265 need
  // two (4 against 3), 397 a second narrow3 one (4 against 6).
  EXPECT_EQ(heuristics::decode_gemm2_on_balanced_grid(p, 2048, 264, 132), DecodeGemm2::kNarrow);
  EXPECT_EQ(heuristics::decode_gemm2_on_balanced_grid(p, 2048, 265, 132), DecodeGemm2::kNarrow3);
  EXPECT_EQ(heuristics::decode_gemm2_on_balanced_grid(p, 2048, 396, 132), DecodeGemm2::kNarrow3);
  EXPECT_EQ(heuristics::decode_gemm2_on_balanced_grid(p, 2048, 397, 132), DecodeGemm2::kNarrow);
  // No SMs, no units, a short k, a forced instance, more than one tile: the rules before it.
  EXPECT_EQ(heuristics::decode_gemm2_on_balanced_grid(p, 2048, 1080, 0), DecodeGemm2::kNarrow);
  EXPECT_EQ(heuristics::decode_gemm2_on_balanced_grid(p, 2048, 0, 132), DecodeGemm2::kNarrow);
  EXPECT_EQ(heuristics::decode_gemm2_on_balanced_grid(p, 768, 1080, 132), DecodeGemm2::kDeep);
  p.decode_gemm2 = DecodeGemm2::kNarrow;
  EXPECT_EQ(heuristics::decode_gemm2_on_balanced_grid(p, 2880, 1080, 132), DecodeGemm2::kNarrow);
  p.decode_gemm2 = DecodeGemm2::kNarrow3;
  EXPECT_EQ(heuristics::decode_gemm2_on_balanced_grid(p, 2048, 1792, 132), DecodeGemm2::kNarrow3);
  p.decode_gemm2 = DecodeGemm2::kAuto;
  p.decode_token_tiles = 2;
  EXPECT_EQ(heuristics::decode_gemm2_on_balanced_grid(p, 2880, 1080, 132), DecodeGemm2::kNarrow);
}

// ---- the grouped GEMM alone -------------------------------------------------------------------

struct GemmCase {
  DType dtype;
  DType out_dtype;
  GemmTile tile;
  int n, k;
  std::vector<std::int64_t> rows_per_group;  // sums to the used rows; capacity adds 5 spare rows
  bool dynamic_tiles = true;                 // GroupedGemmArgs::dynamic_tiles (64:single only)
};

void check_gemm(const GemmCase& c) {
  const std::string id = std::string("grouped_gemm/") + dt_name(c.dtype) + "/" +
                         dtype_name(c.out_dtype) + "/" + heuristics::gemm_tile_plan_name(c.tile) +
                         "/n" + std::to_string(c.n) + "/k" + std::to_string(c.k) +
                         (c.dynamic_tiles ? "" : "/fixed");
  tools::Rng rng(tools::seed_from_name(id));
  const auto G = static_cast<std::int32_t>(c.rows_per_group.size());
  std::vector<std::int64_t> offsets(1, 0);
  for (std::int64_t r : c.rows_per_group) offsets.push_back(offsets.back() + r);
  const std::int64_t used = offsets.back(), rows = used + 5, n = c.n, k = c.k;
  // Multiples of 1/8 in [-1/2, 1/2]: exact in bf16/fp16, and every float32 sum is exact.
  const auto dyadic = [&](std::size_t count) {
    std::vector<float> v(count);
    for (float& f : v) f = static_cast<float>(static_cast<int>(rng.below(9)) - 4) / 8.0f;
    return v;
  };
  std::vector<float> af = dyadic(static_cast<std::size_t>(rows * k));
  const std::vector<float> bf = dyadic(static_cast<std::size_t>(G * n * k));
  // NaN in the spare rows past the last group: no tile may read them into a stored row.
  std::fill(af.begin() + static_cast<std::ptrdiff_t>(used * k), af.end(),
            std::numeric_limits<float>::quiet_NaN());
  const auto a = tools::encode_floats(af, c.dtype), b = tools::encode_floats(bf, c.dtype);
  const std::size_t osz = dtype_size(c.out_dtype);
  DeviceBuffer da = upload(a.data(), a.size()), db = upload(b.data(), b.size()),
               doff = upload(offsets.data(), offsets.size() * 8), dc, dws;
  const std::size_t c_bytes = static_cast<std::size_t>(rows * n) * osz;
  ASSERT_TRUE(DeviceBuffer::allocate(c_bytes, &dc).ok());
  ASSERT_TRUE(tools::fill_device_bytes(dc.get(), 0x7f, c_bytes).ok());
  const std::size_t ws_bytes = detail::grouped_gemm_workspace_size(G);
  ASSERT_TRUE(DeviceBuffer::allocate(ws_bytes, &dws).ok());
  ASSERT_TRUE(tools::fill_device_bytes(dws.get(), 0x7b, ws_bytes).ok());
  detail::GroupedGemmArgs ga;
  ga.dtype = c.dtype;
  ga.out_dtype = c.out_dtype;
  ga.a = da.get();
  ga.b = db.get();
  ga.c = dc.get();
  ga.offsets = static_cast<const std::int64_t*>(doff.get());
  ga.num_groups = G;
  ga.rows = rows;
  ga.n = c.n;
  ga.k = c.k;
  ga.dynamic_tiles = c.dynamic_tiles;
  const Status st = detail::grouped_gemm_cuda(ga, c.tile, dws.get(), ws_bytes, nullptr);
  ASSERT_TRUE(st.ok()) << id << ": " << st.to_string();
  ASSERT_TRUE(tools::device_synchronize().ok()) << id;
  std::vector<std::uint8_t> got(c_bytes);
  ASSERT_TRUE(tools::copy_to_host(got.data(), dc.get(), c_bytes).ok());

  int bad = 0;
  for (std::int32_t g = 0; g < G; ++g) {
    for (std::int64_t r = offsets[static_cast<std::size_t>(g)];
         r < offsets[static_cast<std::size_t>(g) + 1]; ++r) {
      for (std::int64_t j = 0; j < n; ++j) {
        float acc = 0;  // exact: dyadic inputs
        for (std::int64_t q = 0; q < k; ++q)
          acc += af[static_cast<std::size_t>(r * k + q)] *
                 bf[static_cast<std::size_t>((g * n + j) * k + q)];
        const std::uint8_t* p = got.data() + static_cast<std::size_t>(r * n + j) * osz;
        float v;
        if (c.out_dtype == DType::kFloat32) {
          std::memcpy(&v, p, 4);
        } else {
          v = decode(p, c.out_dtype);
          acc = decode(tools::encode_floats({acc}, c.out_dtype).data(), c.out_dtype);
        }
        if (v != acc && ++bad <= 3) {
          ADD_FAILURE() << id << ": group " << g << " row " << r << " col " << j << ": " << v
                        << " != " << acc;
        }
      }
    }
  }
  // Rows outside every group keep the poison.
  for (std::size_t i = static_cast<std::size_t>(used * n) * osz; i < c_bytes; ++i) {
    if (got[i] != 0x7f) {
      ADD_FAILURE() << id << ": byte " << i << " past the last group was written";
      break;
    }
  }
  EXPECT_EQ(bad, 0) << id;
}

TEST(GroupedGemmCuda, MatchesHostGemmBitwise) {
  SKIP_WITHOUT_GPU();
  if (!device_is_sm90()) GTEST_SKIP() << "the grouped GEMM needs sm_90";
  const std::vector<std::int64_t> groups = {0, 1, 63, 64, 65, 0, 130, 257, 7};
  for (DType dt : {DType::kBFloat16, DType::kFloat16}) {
    for (GemmTile tile : heuristics::kAllGemmTiles) {
      check_gemm({dt, DType::kFloat32, tile, 72, 136, groups});
      check_gemm({dt, dt, tile, 264, 520, groups});
    }
  }
  check_gemm({DType::kBFloat16, DType::kBFloat16, GemmTile::kRows128, 8, 8, {3, 0, 200}});
  check_gemm({DType::kFloat16, DType::kFloat32, GemmTile::kRows64, 520, 64, {0, 0, 0}});
  // The 64-row tile's fixed assignment (the cases above ran the dynamic scheduler), and many tiles
  // per CTA for both: 60 groups of 0-200 rows x 3 column tiles (~450 tiles on ~132 CTAs).
  check_gemm({DType::kBFloat16, DType::kFloat32, GemmTile::kRows64Single, 72, 136, groups, false});
  check_gemm({DType::kFloat16, DType::kFloat16, GemmTile::kRows64Single, 264, 520, groups, false});
  std::vector<std::int64_t> many(60);
  for (std::size_t g = 0; g < many.size(); ++g) many[g] = static_cast<std::int64_t>((g * 37) % 201);
  for (const bool dynamic : {true, false}) {
    check_gemm(
        {DType::kBFloat16, DType::kBFloat16, GemmTile::kRows64Single, 520, 64, many, dynamic});
  }
}

TEST(GroupedGemmCuda, RejectsMisalignedShapes) {
  detail::GroupedGemmArgs ga;
  ga.dtype = DType::kBFloat16;
  ga.out_dtype = DType::kFloat32;
  ga.a = fake(0x1000);
  ga.b = fake(0x2000);
  ga.c = fake(0x3000);
  ga.offsets = static_cast<const std::int64_t*>(fake(0x4000));
  ga.num_groups = 4;
  ga.rows = 100;
  ga.n = 64;
  ga.k = 100;
  Status st = detail::grouped_gemm_check("grouped_gemm_cuda", ga);
  EXPECT_EQ(st.message(),
            "grouped_gemm_cuda: k = 100: expected a positive multiple of 8 (16-byte rows for TMA)");
  ga.k = 64;
  ga.b = fake(0x2008);
  st = detail::grouped_gemm_check("grouped_gemm_cuda", ga);
  EXPECT_EQ(st.message(), "grouped_gemm_cuda: b = 0x2008: expected 16-byte aligned");
  ga.b = fake(0x2000);
  ga.out_dtype = DType::kFloat16;
  st = detail::grouped_gemm_check("grouped_gemm_cuda", ga);
  EXPECT_EQ(st.message(), "grouped_gemm_cuda: out_dtype = float16: expected float32 or bfloat16");
  // The fused gated epilogue: a gated activation, act in the input dtype, n = 2I with I % 8 == 0.
  detail::GroupedGemmGated gated;
  ga.gated = &gated;
  ga.out_dtype = DType::kFloat32;
  st = detail::grouped_gemm_check("grouped_gemm_cuda", ga);
  EXPECT_EQ(st.message(),
            "grouped_gemm_cuda: out_dtype = float32: expected bfloat16 (the fused epilogue writes "
            "act)");
  ga.out_dtype = DType::kBFloat16;
  ga.n = 72;
  st = detail::grouped_gemm_check("grouped_gemm_cuda", ga);
  EXPECT_EQ(st.message(),
            "grouped_gemm_cuda: n = 72: expected a multiple of 16 with the fused epilogue (2I, "
            "I % 8 == 0)");
  ga.n = 64;
  gated.activation = Activation::kRelu2;
  st = detail::grouped_gemm_check("grouped_gemm_cuda", ga);
  EXPECT_EQ(st.message(),
            "grouped_gemm_cuda: gated.activation = relu2: expected a gated activation");
  gated.activation = Activation::kSiluAndMul;
  EXPECT_TRUE(detail::grouped_gemm_check("grouped_gemm_cuda", ga).ok());
}

}  // namespace
}  // namespace switchyard::testing
