// CUDA permute and combine against the CPU oracle: bitwise equal outputs (padding rows zeroed),
// every dtype, H with tails, strided rows (scalar path), graph capture, poisoned outputs.
// Skips itself without a GPU.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "common/gpu_bench.h"
#include "common/rng.h"
#include "common/synthetic.h"
#include "switchyard/align.h"
#include "switchyard/runtime.h"

namespace switchyard::testing {
namespace {

using tools::DeviceBuffer;

struct Case {
  DType dtype;
  std::int64_t tokens, hidden, x_stride;
  int top_k, experts, alignment;
};

std::vector<std::uint8_t> download(const DeviceBuffer& b) {
  std::vector<std::uint8_t> h(b.bytes());
  EXPECT_TRUE(tools::copy_to_host(h.data(), b.get(), h.size()).ok());
  return h;
}

DeviceBuffer upload(const void* src, std::size_t bytes) {
  DeviceBuffer b;
  EXPECT_TRUE(DeviceBuffer::allocate(bytes, &b).ok());
  EXPECT_TRUE(tools::copy_to_device(b.get(), src, bytes).ok());
  return b;
}

void check_case(const Case& c, bool capture) {
  const std::string id = std::string("permute_combine/") + dtype_name(c.dtype) + "/H" +
                         std::to_string(c.hidden) + "/stride" + std::to_string(c.x_stride) +
                         "/align" + std::to_string(c.alignment) + (capture ? "/graph" : "");
  tools::Rng rng(tools::seed_from_name(id));
  const std::int64_t M = c.tokens, K = c.top_k, E = c.experts, H = c.hidden;
  std::vector<std::int32_t> ids(static_cast<std::size_t>(M * K));
  for (auto& e : ids)
    e = rng.below(20) == 0 ? -1
                           : static_cast<std::int32_t>(rng.below(static_cast<std::uint64_t>(E)));
  std::vector<float> w(static_cast<std::size_t>(M * K)),
      xf(static_cast<std::size_t>(M * c.x_stride));
  for (float& v : w) v = static_cast<float>(rng.uniform());
  for (float& v : xf) v = static_cast<float>(rng.normal());
  const std::vector<std::uint8_t> x = tools::encode_floats(xf, c.dtype);
  const std::size_t esz = dtype_size(c.dtype);

  // Layout on the CPU (its CUDA kernel comes later); permute and combine on both backends.
  ExpertLayoutParams lp;
  lp.num_experts = static_cast<std::int32_t>(E);
  lp.alignment = c.alignment;
  const std::int64_t R = layout_max_rows(lp, M * K);
  std::vector<std::int32_t> counts(static_cast<std::size_t>(E));
  std::vector<std::int64_t> offsets(static_cast<std::size_t>(E + 1)),
      s2d(static_cast<std::size_t>(M * K)), d2s(static_cast<std::size_t>(R));
  ExpertLayoutArgs la;
  la.top_k_ids = TensorView::contiguous(ids.data(), DType::kInt32, {M, K});
  la.expert_counts = TensorView::contiguous(counts.data(), DType::kInt32, {E});
  la.expert_offsets = TensorView::contiguous(offsets.data(), DType::kInt64, {E + 1});
  la.src_to_dst = TensorView::contiguous(s2d.data(), DType::kInt64, {M * K});
  la.dst_to_src = TensorView::contiguous(d2s.data(), DType::kInt64, {R});
  ASSERT_TRUE(expert_layout_cpu(lp, la).ok());

  auto x_view = [&](void* data, Device dev) {
    TensorView v = TensorView::contiguous(data, c.dtype, {M, H}, dev);
    v.strides[0] = c.x_stride;
    return v;
  };
  std::vector<std::uint8_t> rows_cpu(static_cast<std::size_t>(R * H) * esz),
      out_cpu(static_cast<std::size_t>(M * H) * esz);
  PermuteArgs pc;
  pc.x = x_view(const_cast<std::uint8_t*>(x.data()), Device::kCpu);
  pc.dst_to_src = la.dst_to_src;
  pc.top_k = static_cast<int>(K);
  pc.out = TensorView::contiguous(rows_cpu.data(), c.dtype, {R, H});
  ASSERT_TRUE(permute_cpu(pc).ok());
  CombineArgs cc;
  cc.y = pc.out;
  cc.src_to_dst = la.src_to_dst;
  cc.top_k_weights = TensorView::contiguous(w.data(), DType::kFloat32, {M, K});
  cc.out = TensorView::contiguous(out_cpu.data(), c.dtype, {M, H});
  ASSERT_TRUE(combine_cpu({2.5f}, cc).ok());

  DeviceBuffer dx = upload(x.data(), x.size()), dd2s = upload(d2s.data(), d2s.size() * 8),
               ds2d = upload(s2d.data(), s2d.size() * 8), dw = upload(w.data(), w.size() * 4);
  DeviceBuffer drows, dout;
  ASSERT_TRUE(DeviceBuffer::allocate(rows_cpu.size(), &drows).ok());
  ASSERT_TRUE(DeviceBuffer::allocate(out_cpu.size(), &dout).ok());
  ASSERT_TRUE(tools::fill_device_bytes(drows.get(), 0x7b, rows_cpu.size()).ok());
  ASSERT_TRUE(tools::fill_device_bytes(dout.get(), 0x7b, out_cpu.size()).ok());
  PermuteArgs pg;
  pg.x = x_view(dx.get(), Device::kCuda);
  pg.dst_to_src = TensorView::contiguous(dd2s.get(), DType::kInt64, {R}, Device::kCuda);
  pg.top_k = static_cast<int>(K);
  pg.out = TensorView::contiguous(drows.get(), c.dtype, {R, H}, Device::kCuda);
  CombineArgs cg;
  cg.y = pg.out;
  cg.src_to_dst = TensorView::contiguous(ds2d.get(), DType::kInt64, {M * K}, Device::kCuda);
  cg.top_k_weights = TensorView::contiguous(dw.get(), DType::kFloat32, {M, K}, Device::kCuda);
  cg.out = TensorView::contiguous(dout.get(), c.dtype, {M, H}, Device::kCuda);
  if (capture) {
    tools::GraphTiming t;
    const Status st = tools::time_graph(
        1, 2,
        [&](int, cudaStream_t s) {
          Status p = permute_cuda(pg, s);
          return p.ok() ? combine_cuda({2.5f}, cg, s) : p;
        },
        &t);
    ASSERT_TRUE(st.ok()) << st.to_string();
  } else {
    ASSERT_TRUE(permute_cuda(pg, nullptr).ok());
    ASSERT_TRUE(combine_cuda({2.5f}, cg, nullptr).ok());
  }
  ASSERT_TRUE(tools::device_synchronize().ok());
  EXPECT_TRUE(download(drows) == rows_cpu) << id << ": permuted rows differ";
  EXPECT_TRUE(download(dout) == out_cpu) << id << ": combined output differs";
}

#define SKIP_WITHOUT_GPU() \
  if (!cuda_device_available()) GTEST_SKIP() << "no CUDA device"

TEST(PermuteCombineCuda, MatchesCpuBitwise) {
  SKIP_WITHOUT_GPU();
  for (DType dt : {DType::kBFloat16, DType::kFloat16, DType::kFloat32}) {
    for (std::int64_t H : {1, 7, 8, 2880, 7168}) {
      for (int alignment : {1, 128}) {
        check_case({dt, H > 1000 ? 257 : 4096, H, H, 8, 160, alignment}, false);
      }
      check_case({dt, 129, H, H + 3, 4, 9, 16}, false);  // strided, unaligned rows: scalar path
    }
  }
}

TEST(PermuteCombineCuda, GraphCaptureAndEmpty) {
  SKIP_WITHOUT_GPU();
  check_case({DType::kBFloat16, 513, 7168, 7168, 8, 256, 128}, true);
  check_case({DType::kBFloat16, 0, 64, 64, 8, 16, 1}, false);
}

TEST(PermuteCombineCuda, RejectsHostPointers) {
  SKIP_WITHOUT_GPU();
  std::vector<float> x(16), out(16);
  std::vector<std::int64_t> map(4, -1);
  PermuteArgs a;
  a.x = TensorView::contiguous(x.data(), DType::kFloat32, {4, 4});
  a.dst_to_src = TensorView::contiguous(map.data(), DType::kInt64, {4});
  a.top_k = 1;
  a.out = TensorView::contiguous(out.data(), DType::kFloat32, {4, 4});
  const Status st = permute_cuda(a, nullptr);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("x.device = cpu: expected cuda"), std::string::npos) << st.message();
}

}  // namespace
}  // namespace switchyard::testing
