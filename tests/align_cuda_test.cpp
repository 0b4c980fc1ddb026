// CUDA alignment, expert layouts, permute and combine against the CPU oracle: bitwise equal
// outputs (whole buffers, padding included) over seeded id patterns (uniform, hot expert, all
// dropped, invalid ids, expert_map), E from 1 to 16384, both kernel paths (single block and
// cooperative grids of several sizes), int32/int64 ids, graph capture, poisoned outputs and
// repeatability; permute / combine over every dtype, H with tails, strided rows; the token-major
// permute (src_to_dst given) over dtypes, H, dropped slots, expert_map, masked and padded
// layouts, no tokens, K > 32, more tokens than blocks, graph capture; combine with absent weights
// and/or src_to_dst (moe_sum_reduce). Skips itself without a GPU.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "../src/common/align_internal.h"
#include "common/gpu_bench.h"
#include "common/rng.h"
#include "common/synthetic.h"
#include "permute_test_util.h"
#include "switchyard/align.h"
#include "switchyard/routing.h"
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

bool small_scale() {
  const char* s = std::getenv("SWITCHYARD_TEST_SCALE");
  return s != nullptr && std::string(s) == "small";
}

// ---- alignment and layouts -------------------------------------------------------------------

enum class Pattern { kUniform, kHot, kAllDropped, kInvalid, kMapped };

struct SortCase {
  std::int64_t tokens;
  int top_k;
  int experts;
  Pattern pattern;
  bool ids64;
  int grid;  // 0: heuristic, 1: single block, > 1: cooperative grid
};

std::string sort_case_name(const SortCase& c) {
  std::string n = "E";
  n += std::to_string(c.experts);
  n += "/M";
  n += std::to_string(c.tokens);
  n += "/K";
  n += std::to_string(c.top_k);
  n += "/pat";
  n += std::to_string(static_cast<int>(c.pattern));
  n += c.ids64 ? "/i64" : "/i32";
  n += "/grid";
  n += std::to_string(c.grid);
  return n;
}

// Ids (as int64) and the optional expert_map for a case. kMapped: 2E global experts, odd ones
// local (mapped to e/2), even ones on another rank (-1).
void make_ids(const SortCase& c, tools::Rng& rng, std::vector<std::int64_t>* ids,
              std::vector<std::int32_t>* map) {
  const std::int64_t n = c.tokens * c.top_k;
  ids->assign(static_cast<std::size_t>(n), 0);
  const auto E = static_cast<std::uint64_t>(c.experts);
  const std::int64_t hot = static_cast<std::int64_t>(rng.below(E));
  for (std::int64_t s = 0; s < n; ++s) {
    auto& v = (*ids)[static_cast<std::size_t>(s)];
    switch (c.pattern) {
      case Pattern::kUniform:
        v = static_cast<std::int64_t>(rng.below(E));
        break;
      case Pattern::kHot:
        v = rng.below(10) == 0 ? static_cast<std::int64_t>(rng.below(E)) : hot;
        break;
      case Pattern::kAllDropped:
        v = -1;
        break;
      case Pattern::kInvalid: {
        const std::uint64_t r = rng.below(8);
        v = r == 0   ? -1
            : r == 1 ? static_cast<std::int64_t>(E + rng.below(3))
                     : static_cast<std::int64_t>(rng.below(E));
        break;
      }
      case Pattern::kMapped:
        v = static_cast<std::int64_t>(rng.below(2 * E + 2)) - 1;
        break;
    }
  }
  map->clear();
  if (c.pattern == Pattern::kMapped) {
    for (std::uint64_t g = 0; g < 2 * E; ++g)
      map->push_back(g % 2 ? static_cast<std::int32_t>(g / 2) : -1);
  }
}

// Host ids -> a TensorView of the case's dtype, backed by `storage`.
TensorView ids_view(const SortCase& c, const std::vector<std::int64_t>& ids,
                    std::vector<std::uint8_t>* storage) {
  const std::size_t esz = c.ids64 ? 8 : 4;
  storage->resize(ids.size() * esz);
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (c.ids64) {
      std::memcpy(storage->data() + i * 8, &ids[i], 8);
    } else {
      const auto v = static_cast<std::int32_t>(ids[i]);
      std::memcpy(storage->data() + i * 4, &v, 4);
    }
  }
  return TensorView::contiguous(storage->data(), c.ids64 ? DType::kInt64 : DType::kInt32,
                                {c.tokens, c.top_k});
}

TensorView on_device(const TensorView& host, const DeviceBuffer& buf) {
  TensorView v = host;
  v.data = buf.get();
  v.device = Device::kCuda;
  return v;
}

// Runs `launch` once on the default stream, or captured in a CUDA graph and replayed once.
void launch_maybe_captured(bool capture, const std::function<Status(cudaStream_t)>& launch) {
  if (capture) {
    tools::GraphTiming t;
    const Status st = tools::time_graph(
        1, 1, [&](int, cudaStream_t s) { return launch(s); }, &t);
    ASSERT_TRUE(st.ok()) << st.to_string();
  } else {
    const Status st = launch(nullptr);
    ASSERT_TRUE(st.ok()) << st.to_string();
  }
  ASSERT_TRUE(tools::device_synchronize().ok());
}

void check_align_case(const SortCase& c, int block_size, bool capture) {
  std::string id = "align/";
  id += sort_case_name(c);
  id += "/B";
  id += std::to_string(block_size);
  id += capture ? "/graph" : "";
  SCOPED_TRACE(id);
  tools::Rng rng(tools::seed_from_name(id));
  std::vector<std::int64_t> ids;
  std::vector<std::int32_t> map;
  make_ids(c, rng, &ids, &map);
  std::vector<std::uint8_t> id_bytes;
  AlignParams p;
  p.num_experts = c.experts;
  p.block_size = block_size;
  const std::int64_t n = c.tokens * c.top_k;
  // Buffers a little larger than required: the ops fill every entry.
  const std::int64_t padded = align_max_padded(n, c.experts, block_size) + 5;
  const std::int64_t blocks = align_max_blocks(n, c.experts, block_size) + 3;
  std::vector<std::int32_t> sorted(static_cast<std::size_t>(padded)),
      bexp(static_cast<std::size_t>(blocks)), post(1);
  AlignArgs a;
  a.top_k_ids = ids_view(c, ids, &id_bytes);
  if (!map.empty())
    a.expert_map =
        TensorView::contiguous(map.data(), DType::kInt32, {static_cast<std::int64_t>(map.size())});
  a.sorted_token_ids = TensorView::contiguous(sorted.data(), DType::kInt32, {padded});
  a.expert_ids = TensorView::contiguous(bexp.data(), DType::kInt32, {blocks});
  a.num_tokens_post_pad = TensorView::contiguous(post.data(), DType::kInt32, {1});
  ASSERT_TRUE(moe_align_block_size_cpu(p, a).ok());

  DeviceBuffer d_ids = upload(id_bytes.data(), id_bytes.size()),
               d_map = upload(map.data(), map.size() * 4), d_sorted, d_bexp, d_post, d_ws;
  ASSERT_TRUE(DeviceBuffer::allocate(sorted.size() * 4, &d_sorted).ok());
  ASSERT_TRUE(DeviceBuffer::allocate(bexp.size() * 4, &d_bexp).ok());
  ASSERT_TRUE(DeviceBuffer::allocate(4, &d_post).ok());
  const std::size_t ws = align_workspace_size(p, n);
  ASSERT_TRUE(DeviceBuffer::allocate(ws, &d_ws).ok());
  AlignArgs g;
  g.top_k_ids = on_device(a.top_k_ids, d_ids);
  if (!map.empty()) g.expert_map = on_device(a.expert_map, d_map);
  g.sorted_token_ids = on_device(a.sorted_token_ids, d_sorted);
  g.expert_ids = on_device(a.expert_ids, d_bexp);
  g.num_tokens_post_pad = on_device(a.num_tokens_post_pad, d_post);
  for (int rep = 0; rep < 2; ++rep) {  // poisoned outputs and workspace, then a repeat
    ASSERT_TRUE(tools::fill_device_bytes(d_sorted.get(), 0x5a + rep, d_sorted.bytes()).ok());
    ASSERT_TRUE(tools::fill_device_bytes(d_bexp.get(), 0x5a + rep, d_bexp.bytes()).ok());
    ASSERT_TRUE(tools::fill_device_bytes(d_post.get(), 0x5a + rep, 4).ok());
    ASSERT_TRUE(tools::fill_device_bytes(d_ws.get(), 0x3c + rep, ws).ok());
    launch_maybe_captured(capture, [&](cudaStream_t s) {
      return detail::moe_align_block_size_cuda_grid(p, g, d_ws.get(), ws, c.grid, s);
    });
    if (::testing::Test::HasFatalFailure()) return;
    std::vector<std::int32_t> gs(sorted.size()), gb(bexp.size()), gp(1);
    ASSERT_TRUE(tools::copy_to_host(gs.data(), d_sorted.get(), gs.size() * 4).ok());
    ASSERT_TRUE(tools::copy_to_host(gb.data(), d_bexp.get(), gb.size() * 4).ok());
    ASSERT_TRUE(tools::copy_to_host(gp.data(), d_post.get(), 4).ok());
    ASSERT_EQ(gp, post) << "num_tokens_post_pad";
    ASSERT_EQ(gb, bexp) << "expert_ids";
    ASSERT_EQ(gs, sorted) << "sorted_token_ids";
  }
}

void check_layout_case(const SortCase& c, int alignment, std::int64_t max_m, bool capture) {
  std::string id = "layout/";
  id += sort_case_name(c);
  id += "/align";
  id += std::to_string(alignment);
  id += "/maxm";
  id += std::to_string(max_m);
  id += capture ? "/graph" : "";
  SCOPED_TRACE(id);
  tools::Rng rng(tools::seed_from_name(id));
  std::vector<std::int64_t> ids;
  std::vector<std::int32_t> map;
  make_ids(c, rng, &ids, &map);
  std::vector<std::uint8_t> id_bytes;
  ExpertLayoutParams p;
  p.num_experts = c.experts;
  p.alignment = alignment;
  p.max_rows_per_expert = max_m;
  const std::int64_t n = c.tokens * c.top_k, E = c.experts;
  const std::int64_t R = layout_max_rows(p, n) + 3;
  std::vector<std::int32_t> counts(static_cast<std::size_t>(E));
  std::vector<std::int64_t> offsets(static_cast<std::size_t>(E + 1)),
      s2d(static_cast<std::size_t>(n)), d2s(static_cast<std::size_t>(R)), overflow(1);
  ExpertLayoutArgs a;
  a.top_k_ids = ids_view(c, ids, &id_bytes);
  if (!map.empty())
    a.expert_map =
        TensorView::contiguous(map.data(), DType::kInt32, {static_cast<std::int64_t>(map.size())});
  a.expert_counts = TensorView::contiguous(counts.data(), DType::kInt32, {E});
  a.expert_offsets = TensorView::contiguous(offsets.data(), DType::kInt64, {E + 1});
  a.src_to_dst = TensorView::contiguous(s2d.data(), DType::kInt64, {n});
  a.dst_to_src = TensorView::contiguous(d2s.data(), DType::kInt64, {R});
  a.overflow = TensorView::contiguous(overflow.data(), DType::kInt64, {1});
  ASSERT_TRUE(expert_layout_cpu(p, a).ok());

  DeviceBuffer d_ids = upload(id_bytes.data(), id_bytes.size()),
               d_map = upload(map.data(), map.size() * 4), d_counts, d_off, d_s2d, d_d2s, d_ovf,
               d_ws;
  ASSERT_TRUE(DeviceBuffer::allocate(counts.size() * 4, &d_counts).ok());
  ASSERT_TRUE(DeviceBuffer::allocate(offsets.size() * 8, &d_off).ok());
  ASSERT_TRUE(DeviceBuffer::allocate(std::max<std::size_t>(s2d.size(), 1) * 8, &d_s2d).ok());
  ASSERT_TRUE(DeviceBuffer::allocate(d2s.size() * 8, &d_d2s).ok());
  ASSERT_TRUE(DeviceBuffer::allocate(8, &d_ovf).ok());
  const std::size_t ws = expert_layout_workspace_size(p, n);
  ASSERT_TRUE(DeviceBuffer::allocate(ws, &d_ws).ok());
  ExpertLayoutArgs g;
  g.top_k_ids = on_device(a.top_k_ids, d_ids);
  if (!map.empty()) g.expert_map = on_device(a.expert_map, d_map);
  g.expert_counts = on_device(a.expert_counts, d_counts);
  g.expert_offsets = on_device(a.expert_offsets, d_off);
  g.src_to_dst = on_device(a.src_to_dst, d_s2d);
  g.dst_to_src = on_device(a.dst_to_src, d_d2s);
  g.overflow = on_device(a.overflow, d_ovf);
  for (int rep = 0; rep < 2; ++rep) {
    for (const DeviceBuffer* b : {&d_counts, &d_off, &d_s2d, &d_d2s, &d_ovf, &d_ws})
      ASSERT_TRUE(tools::fill_device_bytes(b->get(), 0x6b + rep, b->bytes()).ok());
    launch_maybe_captured(capture, [&](cudaStream_t s) {
      return detail::expert_layout_cuda_grid(p, g, d_ws.get(), ws, c.grid, s);
    });
    if (::testing::Test::HasFatalFailure()) return;
    std::vector<std::int32_t> gc(counts.size());
    std::vector<std::int64_t> go(offsets.size()), gs(s2d.size()), gd(d2s.size()), gv(1);
    ASSERT_TRUE(tools::copy_to_host(gc.data(), d_counts.get(), gc.size() * 4).ok());
    ASSERT_TRUE(tools::copy_to_host(go.data(), d_off.get(), go.size() * 8).ok());
    ASSERT_TRUE(tools::copy_to_host(gs.data(), d_s2d.get(), gs.size() * 8).ok());
    ASSERT_TRUE(tools::copy_to_host(gd.data(), d_d2s.get(), gd.size() * 8).ok());
    ASSERT_TRUE(tools::copy_to_host(gv.data(), d_ovf.get(), 8).ok());
    ASSERT_EQ(gc, counts) << "expert_counts";
    ASSERT_EQ(go, offsets) << "expert_offsets";
    ASSERT_EQ(gv, overflow) << "overflow";
    ASSERT_EQ(gs, s2d) << "src_to_dst";
    ASSERT_EQ(gd, d2s) << "dst_to_src";
  }
}

std::vector<SortCase> sort_cases() {
  std::vector<SortCase> cases;
  const bool small = small_scale();
  const std::vector<int> experts =
      small ? std::vector<int>{1, 3, 160, 8192}
            : std::vector<int>{1, 2, 3, 8, 160, 256, 384, 1024, 8192, 16384};
  const std::vector<std::int64_t> tokens =
      small ? std::vector<std::int64_t>{0, 1, 7, 700, 5000}
            : std::vector<std::int64_t>{0, 1, 7, 512, 1500, 4096, 32768};
  int i = 0;
  for (int E : experts) {
    for (std::int64_t M : tokens) {
      for (int K : {1, 8}) {
        if (M * K > 100000 && E > 1024) continue;  // keeps the CPU oracle quick
        const auto pat = static_cast<Pattern>(i % 5);
        const int grid = (i % 4 == 0) ? 0 : (i % 4 == 1) ? 1 : (i % 4 == 2) ? 3 : 37;
        cases.push_back({M, K, E, pat, i % 3 == 0, grid});
        ++i;
      }
    }
  }
  return cases;
}

TEST(AlignCuda, MatchesCpuBitwise) {
  SKIP_WITHOUT_GPU();
  int i = 0;
  for (const SortCase& c : sort_cases()) {
    check_align_case(c, (i++ % 3 == 0) ? 16 : (i % 3 == 1 ? 64 : 256), false);
    if (::testing::Test::HasFatalFailure()) return;
  }
}

TEST(AlignCuda, EdgePatternsEveryPath) {
  SKIP_WITHOUT_GPU();
  for (int grid : {0, 1, 2, 5, 1000}) {
    for (Pattern pat : {Pattern::kHot, Pattern::kAllDropped, Pattern::kInvalid, Pattern::kMapped}) {
      check_align_case({3000, 8, 256, pat, false, grid}, 64, false);
      check_layout_case({3000, 8, 256, pat, true, grid}, 128, 0, false);
      if (::testing::Test::HasFatalFailure()) return;
    }
  }
  check_align_case({32768, 8, 256, Pattern::kHot, false, 0}, 64, false);  // one expert takes ~90%
}

// The small-batch kernel (grid -1) over every pattern, E up to its limit, block sizes 16..256
// (48 included), alignment and the contiguous layout; slot counts that hit every steps instance
// (1, 2, 4, 8, 16 steps of 512 unclustered, 32 too for E > 192; on sm_90 the clustered instances
// from 17 or 33 steps: 32, 64, 128, then 256 and 512 with 2 and 4 steps per block).
TEST(AlignCuda, SmallBatchKernel) {
  SKIP_WITHOUT_GPU();
  int i = 0;
  for (int E : {1, 3, 8, 160, 256, 384, 512}) {
    for (std::int64_t M : {0,    1,    7,    64,   100,  200,  512,  513,   1024,  1025,  1536,
                           2048, 2049, 3000, 4096, 4097, 8192, 8193, 12000, 16384, 16385, 32768}) {
      for (int K : {1, 8}) {
        const auto pat = static_cast<Pattern>(i % 5);
        // Powers of two (the kernel divides by shifts) and 48 (a real division).
        const int B = (i % 4 == 0) ? 16 : (i % 4 == 1 ? 64 : (i % 4 == 2 ? 256 : 48));
        check_align_case({M, K, E, pat, i % 2 == 0, -1}, B, false);
        const int alignment = (i % 3 == 0) ? 1 : (i % 3 == 1 ? 128 : 7);
        check_layout_case({M, K, E, pat, i % 2 == 1, -1}, alignment, 0, false);
        if (::testing::Test::HasFatalFailure()) return;
        ++i;
      }
    }
  }
  check_align_case({512, 8, 256, Pattern::kUniform, false, -1}, 64, true);  // graph capture
  check_layout_case({512, 8, 256, Pattern::kMapped, false, -1}, 128, 0, true);
  // The heuristic's clustered instances first used inside a capture (E = 200 nowhere else: the
  // launcher's shared-memory opt-in and cluster occupancy query then run during capture).
  check_align_case({12000, 8, 200, Pattern::kUniform, false, 0}, 64, true);  // 2 steps / block
  check_layout_case({30000, 8, 200, Pattern::kHot, false, 0}, 1, 0, true);   // 4 steps / block
}

// One forced-kernel sweep (grid -2: the warp kernel, -3: the block kernel) over every pattern, E
// and shape, rotating block sizes and alignments; every third case also runs the heuristic's
// kernel (grid 0) and, for E <= 512, the small-batch kernel (grid -1) on the same inputs.
void sweep_forced_kernel(int grid, const std::vector<std::pair<std::int64_t, int>>& shapes) {
  const std::vector<int> experts =
      small_scale() ? std::vector<int>{1, 256, 8192}
                    : std::vector<int>{1, 2, 3, 8, 33, 160, 256, 384, 512, 513, 1024, 8192, 16384};
  constexpr int kBlock[] = {16, 64, 256, 48, 100};
  constexpr int kAlignment[] = {1, 128, 7, 1024, 16};
  int i = 0;
  for (int E : experts) {
    for (const auto& [M, K] : shapes) {
      const auto pat = static_cast<Pattern>(i % 5);
      const int B = kBlock[(i + i / 5) % 5];
      const int alignment = kAlignment[(i + i / 7) % 5];
      check_align_case({M, K, E, pat, i % 2 == 0, grid}, B, false);
      check_layout_case({M, K, E, pat, i % 2 == 1, grid}, alignment, 0, false);
      if (i % 3 == 0) {
        check_align_case({M, K, E, pat, i % 2 == 1, 0}, B, false);
        check_layout_case({M, K, E, pat, i % 2 == 0, 0}, alignment, 0, false);
      }
      if (i % 3 == 1 && E <= 512) {
        check_align_case({M, K, E, pat, i % 2 == 1, -1}, B, false);
        check_layout_case({M, K, E, pat, i % 2 == 0, -1}, alignment, 0, false);
      }
      if (::testing::Test::HasFatalFailure()) return;
      ++i;
    }
  }
}

// The warp kernel (grid -2: <= 64 slots, any E; two slots per lane from 33) over every pattern,
// N = 0..64, E from 1 to 16384, block sizes 16..256 (48 and 100 included), layout alignments
// 1..1024, int32 / int64 ids. The heuristic (grid 0) takes it at these sizes unless
// SWITCHYARD_ALIGN_WARP=0: the same cases on grid 0 check that path too, and grid -1 (E <= 512)
// the small-batch kernel on the same inputs.
TEST(AlignCuda, WarpKernel) {
  SKIP_WITHOUT_GPU();
  sweep_forced_kernel(
      -2, {{0, 8},  {1, 1},  {1, 8},  {2, 8}, {3, 8}, {4, 8},  {5, 6},  {7, 1}, {13, 2}, {16, 2},
           {31, 1}, {32, 1}, {33, 1}, {5, 8}, {7, 6}, {17, 2}, {21, 3}, {8, 8}, {63, 1}, {32, 2}});
  if (::testing::Test::HasFatalFailure()) return;
  check_align_case({1, 8, 256, Pattern::kUniform, false, -2}, 64, true);  // graph capture
  check_align_case({8, 8, 256, Pattern::kUniform, false, -2}, 64, true);
  check_layout_case({4, 8, 256, Pattern::kMapped, true, -2}, 1, 0, true);
  check_layout_case({6, 8, 256, Pattern::kMapped, true, -2}, 1, 0, true);
}

// The block kernel (grid -3: 33..256 slots, any E) over every pattern, the same sweep as the warp
// kernel's; the heuristic (grid 0) takes it at 33..64 slots only with SWITCHYARD_ALIGN_WARP=0
// (unless SWITCHYARD_ALIGN_BLOCK=0 too), and grid -1 (E <= 512) runs the small-batch kernel on the
// same inputs.
TEST(AlignCuda, BlockKernel) {
  SKIP_WITHOUT_GPU();
  sweep_forced_kernel(
      -3,
      {{33, 1}, {5, 8}, {17, 2}, {8, 8}, {21, 6}, {63, 2}, {16, 8}, {31, 8}, {255, 1}, {32, 8}});
  if (::testing::Test::HasFatalFailure()) return;
  check_align_case({32, 8, 256, Pattern::kUniform, false, -3}, 64, true);  // graph capture
  check_layout_case({16, 8, 256, Pattern::kMapped, true, -3}, 1, 0, true);
}

// One forced-kernel sweep for a kernel with an output limit (grid -4: the cluster kernel, -5: the
// few-experts kernel) over every pattern, E and shape, rotating block sizes 16..256 (48 and 100
// included) and layout alignments 1..1024; the forced kernel runs wherever the outputs are at most
// `max_entries`, and every third case also runs the heuristic (grid 0) and the small-batch kernel
// (grid -1) on the same inputs.
void sweep_limited_kernel(int grid, const std::vector<int>& experts,
                          const std::vector<std::pair<std::int64_t, int>>& shapes,
                          std::int64_t max_entries) {
  constexpr int kBlock[] = {16, 64, 256, 48, 100};
  constexpr int kAlignment[] = {1, 128, 7, 1024, 16};
  int i = 0;
  for (int E : experts) {
    for (const auto& [M, K] : shapes) {
      const auto pat = static_cast<Pattern>(i % 5);
      const int B = kBlock[(i + i / 5) % 5];
      const int alignment = kAlignment[(i + i / 7) % 5];
      const std::int64_t n = M * K;
      const bool align_fits =
          align_max_padded(n, E, B) + 5 + align_max_blocks(n, E, B) + 3 <= max_entries;
      ExpertLayoutParams lp;
      lp.num_experts = E;
      lp.alignment = alignment;
      const bool layout_fits = layout_max_rows(lp, n) + 7 <= max_entries;
      for (const int g : {grid, i % 3 == 0 ? 0 : grid, i % 3 == 1 ? -1 : grid}) {
        if (align_fits || g != grid)
          check_align_case({M, K, E, pat, (i + g) % 2 == 0, g}, B, false);
        if (layout_fits || g != grid)
          check_layout_case({M, K, E, pat, (i + g) % 2 != 0, g}, alignment, 0, false);
        if (::testing::Test::HasFatalFailure()) return;
      }
      ++i;
    }
  }
}

// The cluster kernel (grid -4: <= 4096 slots, E <= 512, sm_90): from 1 slot to 4096 (every
// 512-slot block boundary), E up to its limit (odd ones included), outputs up to
// kClusterAlignMaxEntries (src/cuda/kernels/align_cluster.cuh). The heuristic takes it at
// 65..4096 slots for E >= 64.
TEST(AlignCuda, ClusterKernel) {
  SKIP_WITHOUT_GPU();
  const std::vector<int> experts = small_scale()
                                       ? std::vector<int>{1, 256, 511}
                                       : std::vector<int>{1, 2, 3, 8, 33, 160, 256, 384, 511, 512};
  const std::vector<std::pair<std::int64_t, int>> shapes = {
      {1, 8},   {9, 8},   {65, 1},  {16, 8},  {32, 8},  {64, 8},   {100, 6},
      {128, 8}, {255, 2}, {256, 2}, {300, 8}, {511, 8}, {1000, 4}, {512, 8}};
  sweep_limited_kernel(-4, experts, shapes, 4096 * 4 * 8);
  if (::testing::Test::HasFatalFailure()) return;
  check_align_case({32, 8, 256, Pattern::kUniform, false, -4}, 64, true);  // graph capture
  check_align_case({512, 8, 384, Pattern::kHot, true, -4}, 64, true);
  check_layout_case({100, 8, 256, Pattern::kMapped, true, -4}, 1, 0, true);
}

// The cluster kernel's replicated variant (grid -6: <= 1024 slots in one or two steps of 512,
// E <= 512, sm_90; no cluster, every block sorts every slot and writes its own 4096-entry chunk of
// the outputs): from 1 slot to 1024 (both step counts and their edges), E up to 512 (odd ones
// included), outputs up to kClusterAlignMaxEntries, so up to 32 blocks. The heuristic takes it at
// 33..1024 slots for E >= 64.
TEST(AlignCuda, ReplicatedClusterKernel) {
  SKIP_WITHOUT_GPU();
  const std::vector<int> experts = small_scale()
                                       ? std::vector<int>{1, 256, 511}
                                       : std::vector<int>{1, 2, 3, 8, 33, 160, 256, 384, 511, 512};
  const std::vector<std::pair<std::int64_t, int>> shapes = {
      {1, 8},   {9, 8},   {65, 1}, {16, 8}, {32, 8},  {64, 8},  {85, 6},  {128, 4},
      {255, 2}, {256, 2}, {65, 8}, {96, 8}, {128, 8}, {170, 6}, {255, 4}, {1024, 1}};
  sweep_limited_kernel(-6, experts, shapes, 4096 * 4 * 8);
  if (::testing::Test::HasFatalFailure()) return;
  check_align_case({32, 8, 256, Pattern::kUniform, false, -6}, 64, true);  // graph capture
  check_align_case({64, 8, 384, Pattern::kHot, true, -6}, 256, true);
  check_align_case({128, 8, 512, Pattern::kHot, true, -6}, 64, true);
  check_layout_case({60, 8, 256, Pattern::kMapped, true, -6}, 1, 0, true);
  check_layout_case({100, 8, 256, Pattern::kMapped, true, -6}, 128, 0, true);
}

// The few-experts kernel (grid -5: <= 1024 slots, E <= 32, one block): 1 to 1024 slots, outputs
// up to kFewAlignMaxEntries (src/cuda/kernels/align_few.cuh). The heuristic takes it at 65..1024
// slots.
TEST(AlignCuda, FewExpertsKernel) {
  SKIP_WITHOUT_GPU();
  const std::vector<int> experts =
      small_scale() ? std::vector<int>{1, 8, 31} : std::vector<int>{1, 2, 3, 8, 16, 17, 31, 32};
  const std::vector<std::pair<std::int64_t, int>> shapes = {
      {1, 2},  {33, 2},  {65, 1},  {64, 2},  {100, 2}, {128, 2},
      {77, 6}, {256, 2}, {300, 3}, {511, 2}, {512, 2}, {1024, 1}};
  sweep_limited_kernel(-5, experts, shapes, 16384);
  if (::testing::Test::HasFatalFailure()) return;
  check_align_case({256, 2, 8, Pattern::kUniform, false, -5}, 64, true);  // graph capture
  check_align_case({512, 2, 8, Pattern::kHot, true, -5}, 16, true);
  check_layout_case({300, 2, 8, Pattern::kMapped, true, -5}, 1, 0, true);
}

TEST(AlignCuda, GraphCapture) {
  SKIP_WITHOUT_GPU();
  check_align_case({4096, 8, 256, Pattern::kUniform, false, 0}, 64, true);
  check_align_case({128, 8, 256, Pattern::kUniform, false, 0}, 64, true);
  check_layout_case({4096, 8, 160, Pattern::kInvalid, false, 0}, 128, 0, true);
}

TEST(ExpertLayoutCuda, MatchesCpuBitwise) {
  SKIP_WITHOUT_GPU();
  int i = 0;
  for (const SortCase& c : sort_cases()) {
    const int alignment = (i % 3 == 0) ? 1 : (i % 3 == 1 ? 128 : 7);
    const std::int64_t max_m = (i % 4 == 3) ? std::max<std::int64_t>(1, c.tokens / 3) : 0;
    ++i;
    check_layout_case(c, alignment, max_m, false);
    if (::testing::Test::HasFatalFailure()) return;
  }
}

// Two launches (route, align) equal route_cpu + moe_align_block_size_cpu, also under capture.
TEST(RouteAndAlignCuda, MatchesCpu) {
  SKIP_WITHOUT_GPU();
  for (const std::int64_t M : {0, 1, 300, 20000}) {
    SCOPED_TRACE("M=" + std::to_string(M));
    const int E = 256, K = 8;
    tools::Rng rng(static_cast<std::uint64_t>(M) + 11);
    std::vector<float> logits(static_cast<std::size_t>(M * E));
    for (float& v : logits) v = static_cast<float>(rng.normal());
    RoutingParams rp;
    rp.num_experts = E;
    rp.top_k = K;
    rp.score_func = ScoreFunc::kSigmoid;
    rp.renormalize = true;
    AlignParams ap;
    ap.num_experts = E;
    ap.block_size = 64;
    const std::int64_t n = M * K, padded = align_max_padded(n, E, 64),
                       blocks = align_max_blocks(n, E, 64);
    std::vector<float> w(static_cast<std::size_t>(n));
    std::vector<std::int32_t> ids(static_cast<std::size_t>(n)),
        sorted(static_cast<std::size_t>(padded)), bexp(static_cast<std::size_t>(blocks)), post(1);
    RoutingArgs ra;
    ra.logits = TensorView::contiguous(logits.data(), DType::kFloat32, {M, E});
    ra.top_k_weights = TensorView::contiguous(w.data(), DType::kFloat32, {M, K});
    ra.top_k_ids = TensorView::contiguous(ids.data(), DType::kInt32, {M, K});
    AlignArgs aa;
    aa.sorted_token_ids = TensorView::contiguous(sorted.data(), DType::kInt32, {padded});
    aa.expert_ids = TensorView::contiguous(bexp.data(), DType::kInt32, {blocks});
    aa.num_tokens_post_pad = TensorView::contiguous(post.data(), DType::kInt32, {1});
    ASSERT_TRUE(route_and_align_cpu(rp, ra, ap, aa).ok());

    DeviceBuffer d_logits = upload(logits.data(), logits.size() * 4), d_w, d_ids, d_sorted, d_bexp,
                 d_post, d_ws;
    ASSERT_TRUE(DeviceBuffer::allocate(w.size() * 4, &d_w).ok());
    ASSERT_TRUE(DeviceBuffer::allocate(ids.size() * 4, &d_ids).ok());
    ASSERT_TRUE(DeviceBuffer::allocate(sorted.size() * 4, &d_sorted).ok());
    ASSERT_TRUE(DeviceBuffer::allocate(bexp.size() * 4, &d_bexp).ok());
    ASSERT_TRUE(DeviceBuffer::allocate(4, &d_post).ok());
    const std::size_t ws = route_and_align_workspace_size(rp, ap, M);
    ASSERT_TRUE(DeviceBuffer::allocate(ws, &d_ws).ok());
    RoutingArgs rg = ra;
    rg.logits = on_device(ra.logits, d_logits);
    rg.top_k_weights = on_device(ra.top_k_weights, d_w);
    rg.top_k_ids = on_device(ra.top_k_ids, d_ids);
    AlignArgs ag;
    ag.sorted_token_ids = on_device(aa.sorted_token_ids, d_sorted);
    ag.expert_ids = on_device(aa.expert_ids, d_bexp);
    ag.num_tokens_post_pad = on_device(aa.num_tokens_post_pad, d_post);
    for (const DeviceBuffer* b : {&d_w, &d_ids, &d_sorted, &d_bexp, &d_post})
      ASSERT_TRUE(tools::fill_device_bytes(b->get(), 0x44, b->bytes()).ok());
    tools::GraphTiming t;
    const Status st = tools::time_graph(
        1, 1,
        [&](int, cudaStream_t s) {
          return route_and_align_cuda(rp, rg, ap, ag, d_ws.get(), ws, s);
        },
        &t);
    ASSERT_TRUE(st.ok()) << st.to_string();
    ASSERT_TRUE(tools::device_synchronize().ok());
    std::vector<std::int32_t> gi(ids.size()), gs(sorted.size()), gb(bexp.size()), gp(1);
    ASSERT_TRUE(tools::copy_to_host(gi.data(), d_ids.get(), gi.size() * 4).ok());
    ASSERT_TRUE(tools::copy_to_host(gs.data(), d_sorted.get(), gs.size() * 4).ok());
    ASSERT_TRUE(tools::copy_to_host(gb.data(), d_bexp.get(), gb.size() * 4).ok());
    ASSERT_TRUE(tools::copy_to_host(gp.data(), d_post.get(), 4).ok());
    EXPECT_EQ(gi, ids);
    EXPECT_EQ(gp, post);
    EXPECT_EQ(gb, bexp);
    EXPECT_EQ(gs, sorted);
  }
}

// Diagnostics, not a check (run with --gtest_also_run_disabled_tests): block 0's clock64() at
// each phase boundary of the alignment kernel and the event-timed kernel, per shape. At <= 64
// slots that is align_warp_kernel (phases: loads + fills past the bound + sort | chunk fills and
// slots | labels; the later columns are 0) unless SWITCHYARD_ALIGN_WARP=0.
TEST(AlignCuda, DISABLED_PhaseTrace) {
  SKIP_WITHOUT_GPU();
  DeviceBuffer trace;
  ASSERT_TRUE(DeviceBuffer::allocate(12 * 8, &trace).ok());
  for (const auto& [M, K, E] : std::vector<std::tuple<std::int64_t, int, int>>{{1, 8, 256},
                                                                               {4, 8, 256},
                                                                               {5, 8, 256},
                                                                               {8, 8, 256},
                                                                               {32, 8, 256},
                                                                               {64, 8, 256},
                                                                               {96, 8, 256},
                                                                               {128, 8, 256},
                                                                               {512, 8, 256},
                                                                               {512, 8, 384},
                                                                               {512, 2, 8},
                                                                               {64, 2, 8},
                                                                               {4096, 8, 256},
                                                                               {32768, 8, 256}}) {
    tools::Rng rng(3);
    std::vector<std::int32_t> ids(static_cast<std::size_t>(M * K));
    for (auto& v : ids) v = static_cast<std::int32_t>(rng.below(static_cast<std::uint64_t>(E)));
    AlignParams p;
    p.num_experts = E;
    p.block_size = 64;
    const std::int64_t n = M * K, padded = align_max_padded(n, E, 64),
                       blocks = align_max_blocks(n, E, 64);
    DeviceBuffer d_ids = upload(ids.data(), ids.size() * 4), d_sorted, d_bexp, d_post, d_ws;
    ASSERT_TRUE(DeviceBuffer::allocate(static_cast<std::size_t>(padded) * 4, &d_sorted).ok());
    ASSERT_TRUE(DeviceBuffer::allocate(static_cast<std::size_t>(blocks) * 4, &d_bexp).ok());
    ASSERT_TRUE(DeviceBuffer::allocate(4, &d_post).ok());
    const std::size_t ws = align_workspace_size(p, n);
    ASSERT_TRUE(DeviceBuffer::allocate(ws, &d_ws).ok());
    AlignArgs a;
    a.top_k_ids = TensorView::contiguous(d_ids.get(), DType::kInt32, {M, K}, Device::kCuda);
    a.sorted_token_ids =
        TensorView::contiguous(d_sorted.get(), DType::kInt32, {padded}, Device::kCuda);
    a.expert_ids = TensorView::contiguous(d_bexp.get(), DType::kInt32, {blocks}, Device::kCuda);
    a.num_tokens_post_pad = TensorView::contiguous(d_post.get(), DType::kInt32, {1}, Device::kCuda);
    tools::GraphTiming t;
    ASSERT_TRUE(
        tools::time_graph(
            20, 5,
            [&](int, cudaStream_t s) { return moe_align_block_size_cuda(p, a, d_ws.get(), ws, s); },
            &t)
            .ok());
    // Cold: the library's kernel; warm: the small-batch kernel's body run twice per launch, the
    // trace taken from the second pass (instruction cache and L2 warm).
    for (const bool warm : {false, true}) {
      if (warm && M * K > 8192) break;
      detail::set_align_small_twice(warm);
      detail::set_align_trace(static_cast<long long*>(trace.get()));
      for (int rep = 0; rep < 3; ++rep)
        ASSERT_TRUE(moe_align_block_size_cuda(p, a, d_ws.get(), ws, nullptr).ok());
      detail::set_align_trace(nullptr);
      detail::set_align_small_twice(false);
      ASSERT_TRUE(tools::device_synchronize().ok());
      std::vector<long long> tr(12);
      ASSERT_TRUE(tools::copy_to_host(tr.data(), trace.get(), 12 * 8).ok());
      std::string line = "M=" + std::to_string(M) + " K=" + std::to_string(K) +
                         " E=" + std::to_string(E) + (warm ? " warm 2nd pass" : "") +
                         " graph us=" + std::to_string(t.median_us_per_call) + " phase cycles:";
      for (int k = 1; k <= 10; ++k) {
        line += " ";
        line +=
            std::to_string(tr[static_cast<std::size_t>(k)] - tr[static_cast<std::size_t>(k - 1)]);
      }
      std::printf("%s total %lld\n", line.c_str(), tr[10] - tr[0]);
    }
  }
}

TEST(AlignCuda, RejectsBadArguments) {
  SKIP_WITHOUT_GPU();
  DeviceBuffer ids, sorted, bexp, post, ws;
  ASSERT_TRUE(DeviceBuffer::allocate(1 << 21, &ids).ok());
  ASSERT_TRUE(DeviceBuffer::allocate(1 << 21, &sorted).ok());
  ASSERT_TRUE(DeviceBuffer::allocate(1 << 21, &bexp).ok());
  ASSERT_TRUE(DeviceBuffer::allocate(4, &post).ok());
  AlignParams p;
  p.num_experts = 256;
  p.block_size = 64;
  const std::size_t need = align_workspace_size(p, 64);
  ASSERT_TRUE(DeviceBuffer::allocate(need, &ws).ok());
  AlignArgs a;
  a.top_k_ids = TensorView::contiguous(ids.get(), DType::kInt32, {8, 8}, Device::kCuda);
  a.sorted_token_ids =
      TensorView::contiguous(sorted.get(), DType::kInt32, {64 + 256 * 63}, Device::kCuda);
  a.expert_ids = TensorView::contiguous(bexp.get(), DType::kInt32, {1 + 256}, Device::kCuda);
  a.num_tokens_post_pad = TensorView::contiguous(post.get(), DType::kInt32, {1}, Device::kCuda);
  EXPECT_TRUE(moe_align_block_size_cuda(p, a, ws.get(), need, nullptr).ok());
  Status st = moe_align_block_size_cuda(p, a, ws.get(), need - 4, nullptr);
  EXPECT_NE(st.message().find("workspace_bytes"), std::string::npos) << st.message();
  AlignParams big = p;
  big.num_experts = 16385;
  st = moe_align_block_size_cuda(big, a, ws.get(), need, nullptr);
  EXPECT_NE(st.message().find("num_experts = 16385"), std::string::npos) << st.message();
  AlignArgs host = a;
  std::vector<std::int32_t> h(64);
  host.top_k_ids = TensorView::contiguous(h.data(), DType::kInt32, {8, 8});
  st = moe_align_block_size_cuda(p, host, ws.get(), need, nullptr);
  EXPECT_NE(st.message().find("top_k_ids.device = cpu"), std::string::npos) << st.message();
  // The small-batch kernel refuses problems beyond its limits.
  AlignArgs large = a;
  // (262,152 slots, one token past the 512 steps of 512 of kSmallAlignMaxSlots.)
  large.top_k_ids = TensorView::contiguous(ids.get(), DType::kInt32, {32769, 8}, Device::kCuda);
  large.sorted_token_ids =
      TensorView::contiguous(sorted.get(), DType::kInt32, {262152 + 256 * 63}, Device::kCuda);
  large.expert_ids = TensorView::contiguous(bexp.get(), DType::kInt32, {4349}, Device::kCuda);
  st = detail::moe_align_block_size_cuda_grid(p, large, ws.get(), need, -1, nullptr);
  EXPECT_NE(st.message().find("grid = -1"), std::string::npos) << st.message();
  // The warp kernel refuses more than 64 slots.
  st = detail::moe_align_block_size_cuda_grid(p, large, ws.get(), need, -2, nullptr);
  EXPECT_NE(st.message().find("grid = -2"), std::string::npos) << st.message();
  // The block kernel refuses more than 256 slots, the cluster kernel more than 4096.
  st = detail::moe_align_block_size_cuda_grid(p, large, ws.get(), need, -3, nullptr);
  EXPECT_NE(st.message().find("grid = -3"), std::string::npos) << st.message();
  st = detail::moe_align_block_size_cuda_grid(p, large, ws.get(), need, -4, nullptr);
  EXPECT_NE(st.message().find("grid = -4"), std::string::npos) << st.message();
  // The replicated cluster kernel refuses more than 1024 slots.
  st = detail::moe_align_block_size_cuda_grid(p, large, ws.get(), need, -6, nullptr);
  EXPECT_NE(st.message().find("grid = -6"), std::string::npos) << st.message();
  // The few-experts kernel refuses more than 32 experts (and more than 1024 slots).
  st = detail::moe_align_block_size_cuda_grid(p, a, ws.get(), need, -5, nullptr);
  EXPECT_NE(st.message().find("grid = -5"), std::string::npos) << st.message();
  a.expert_ids = TensorView::contiguous(bexp.get(), DType::kInt32, {10}, Device::kCuda);
  st = moe_align_block_size_cuda(p, a, ws.get(), need, nullptr);
  EXPECT_NE(st.message().find("expert_ids.numel = 10"), std::string::npos) << st.message();
}

// ---- permute and combine ---------------------------------------------------------------------

TEST(PermuteCombineCuda, MatchesCpuBitwise) {
  SKIP_WITHOUT_GPU();
  for (DType dt : {DType::kBFloat16, DType::kFloat16, DType::kFloat32}) {
    for (std::int64_t H : {1, 7, 8, 2880, 7168}) {
      for (int alignment : {1, 128}) {
        check_case({dt, H > 1000 ? 257 : 4096, H, H, 8, 160, alignment}, false);
      }
      check_case({dt, 129, H, H + 3, 4, 9, 16}, false);  // strided, unaligned rows: scalar path
      // Decode sizes: the combine splits each row over several blocks, and K = 9 takes one full
      // batch of 8 row loads plus a partial one.
      check_case({dt, 1, H, H, 9, 160, 1}, false);
      check_case({dt, 3, H, H + 5, 9, 33, 1}, false);
    }
  }
}

TEST(PermuteCombineCuda, GraphCaptureAndEmpty) {
  SKIP_WITHOUT_GPU();
  check_case({DType::kBFloat16, 513, 7168, 7168, 8, 256, 128}, true);
  check_case({DType::kBFloat16, 0, 64, 64, 8, 16, 1}, false);
}

// ---- token-major permute (src_to_dst given) ------------------------------------------------

// The shared seeded case (tests/permute_test_util.h), run under graph capture or not.
struct TokenMajorCase : testing::PermuteCase {
  bool capture = false;
};

// A device buffer of at least 8 bytes (a non-null pointer even for an empty map) holding `bytes`.
DeviceBuffer upload_nonnull(const void* src, std::size_t bytes) {
  DeviceBuffer b;
  EXPECT_TRUE(DeviceBuffer::allocate(std::max<std::size_t>(bytes, 8), &b).ok());
  if (bytes > 0) {
    EXPECT_TRUE(tools::copy_to_device(b.get(), src, bytes).ok());
  }
  return b;
}

// Layout on the CPU; permute_cpu with src_to_dst (the oracle: it checks the maps are mutually
// inverse) equals permute_cpu without it; permute_cuda with src_to_dst equals it bit for bit on a
// poisoned output (every row, padding included), again on a differently poisoned output
// (repeatability), and the row-major CUDA path (dst_to_src only) gives the same bytes.
void check_token_major(const TokenMajorCase& c) {
  const std::string id =
      "permute_token_major/" + testing::permute_case_id(c) + (c.capture ? "/graph" : "");
  SCOPED_TRACE(id);
  tools::Rng rng(tools::seed_from_name(id));
  const std::int64_t M = c.tokens, K = c.top_k, E = c.experts, H = c.hidden;
  testing::PermuteCaseData gen;
  const Status layout_st = testing::make_permute_case(c, rng, 16, &gen);
  ASSERT_TRUE(layout_st.ok()) << layout_st.to_string();
  const std::vector<std::uint8_t>& x = gen.x;
  const std::vector<std::int64_t>&s2d = gen.s2d, &d2s = gen.d2s;
  const ExpertLayoutArgs& la = gen.layout;
  const std::int64_t R = gen.rows;
  const std::size_t esz = dtype_size(c.dtype);
  std::int64_t padding_rows = 0;
  for (std::int64_t r = 0; r < R; ++r) padding_rows += d2s[static_cast<std::size_t>(r)] < 0;
  // The case exercises padding rows where it must have them (a masked layout may be full: at
  // SWITCHYARD_TEST_SCALE=small, 600 tokens x 4 over 9 experts overflow max_m = 100 everywhere).
  if (c.alignment > 1 || c.all_dropped ||
      (c.max_m > 0 && M * K * 2 <= E * static_cast<std::int64_t>(c.max_m))) {
    EXPECT_GT(padding_rows, 0);
  }

  auto x_view = [&](void* data, Device dev) {
    TensorView v = TensorView::contiguous(data, c.dtype, {M, H}, dev);
    v.strides[0] = c.x_stride;
    return v;
  };
  std::vector<std::uint8_t> rows_cpu(static_cast<std::size_t>(R * H) * esz, 0x5a),
      rows_cpu_dst(rows_cpu.size(), 0xa5);
  PermuteArgs pc;
  pc.x = x_view(const_cast<std::uint8_t*>(x.data()), Device::kCpu);
  pc.dst_to_src = la.dst_to_src;
  pc.top_k = static_cast<int>(K);
  pc.out = TensorView::contiguous(rows_cpu_dst.data(), c.dtype, {R, H});
  ASSERT_TRUE(permute_cpu(pc).ok());
  pc.out = TensorView::contiguous(rows_cpu.data(), c.dtype, {R, H});
  pc.src_to_dst = la.src_to_dst;
  const Status cpu_st = permute_cpu(pc);
  ASSERT_TRUE(cpu_st.ok()) << cpu_st.to_string();
  ASSERT_TRUE(rows_cpu == rows_cpu_dst) << "permute_cpu with src_to_dst differs from without";

  DeviceBuffer dx = upload_nonnull(x.data(), x.size()),
               dd2s = upload_nonnull(d2s.data(), d2s.size() * 8),
               ds2d = upload_nonnull(s2d.data(), s2d.size() * 8), drows;
  ASSERT_TRUE(DeviceBuffer::allocate(std::max<std::size_t>(rows_cpu.size(), 16), &drows).ok());
  PermuteArgs pg;
  pg.x = x_view(dx.get(), Device::kCuda);
  pg.dst_to_src = TensorView::contiguous(dd2s.get(), DType::kInt64, {R}, Device::kCuda);
  pg.top_k = static_cast<int>(K);
  pg.out = TensorView::contiguous(drows.get(), c.dtype, {R, H}, Device::kCuda);
  pg.src_to_dst = TensorView::contiguous(ds2d.get(), DType::kInt64, {M * K}, Device::kCuda);
  for (int poison : {0x7b, 0xff}) {  // 0xff: NaN in every dtype
    ASSERT_TRUE(tools::fill_device_bytes(drows.get(), poison, drows.bytes()).ok());
    launch_maybe_captured(c.capture, [&](cudaStream_t s) { return permute_cuda(pg, s); });
    if (::testing::Test::HasFatalFailure()) return;
    const std::vector<std::uint8_t> got = download(drows);
    std::int64_t wrong_rows = 0, first_wrong = -1;
    const std::size_t row_bytes = static_cast<std::size_t>(H) * esz;
    for (std::int64_t r = 0; r < R; ++r) {
      const std::size_t at = static_cast<std::size_t>(r) * row_bytes;
      if (std::memcmp(got.data() + at, rows_cpu.data() + at, row_bytes) != 0) {
        if (first_wrong < 0) first_wrong = r;
        ++wrong_rows;
      }
    }
    EXPECT_EQ(wrong_rows, 0) << "poison 0x" << std::hex << poison << std::dec
                             << ": token-major rows differ from the CPU, first row " << first_wrong
                             << " (dst_to_src = "
                             << (first_wrong >= 0 ? d2s[static_cast<std::size_t>(first_wrong)] : 0)
                             << ")";
  }
  PermuteArgs row_major = pg;
  row_major.src_to_dst = TensorView{};
  ASSERT_TRUE(tools::fill_device_bytes(drows.get(), 0x7b, drows.bytes()).ok());
  launch_maybe_captured(false, [&](cudaStream_t s) { return permute_cuda(row_major, s); });
  std::vector<std::uint8_t> got = download(drows);
  got.resize(rows_cpu.size());
  EXPECT_TRUE(got == rows_cpu) << "row-major CUDA path differs";
}

TEST(PermuteTokenMajorCuda, MatchesCpuBitwise) {
  SKIP_WITHOUT_GPU();
  for (DType dt : {DType::kBFloat16, DType::kFloat16, DType::kFloat32}) {
    for (std::int64_t H : {1, 7, 2880, 7168}) {
      const std::int64_t M = H > 1000 ? 257 : 2048;
      for (int alignment : {1, 128}) check_token_major({dt, M, H, H, 8, 160, alignment});
      // Strided rows (not 16-byte aligned for H > 1): the scalar path.
      check_token_major({dt, 129, H, H + 3, 4, 9, 16});
    }
  }
}

TEST(PermuteTokenMajorCuda, DroppedSlotsPaddingAndEdgeShapes) {
  SKIP_WITHOUT_GPU();
  const DType bf16 = DType::kBFloat16;
  TokenMajorCase mapped{bf16, 500, 7168, 7168, 8, 32, 128};
  mapped.mapped = true;  // half the experts on another rank: their slots dropped
  check_token_major(mapped);
  TokenMajorCase masked{bf16, 600, 2880, 2880, 4, 9, 1};
  masked.max_m = 100;  // ~267 slots per expert: overflowing slots dropped, masked_m rows used
  check_token_major(masked);
  TokenMajorCase dropped{bf16, 64, 2880, 2880, 8, 16, 128};
  dropped.all_dropped = true;  // no valid slot: every row zeroed by the zero blocks
  check_token_major(dropped);
  check_token_major({bf16, 0, 7168, 7168, 8, 16, 128});       // no tokens: 16 * 127 padding rows
  check_token_major({bf16, 0, 64, 64, 8, 16, 1});             // no tokens, no rows
  check_token_major({bf16, 1, 7168, 7168, 8, 256, 1});        // one token
  check_token_major({bf16, 300, 1032, 1032, 40, 64, 1});      // K > 32: two shuffle groups
  check_token_major({DType::kFloat32, 77, 7, 7, 33, 5, 16});  // K > 32, scalar path
  check_token_major({DType::kFloat32, 65, 8192, 8192, 2, 4, 1});  // fp32: 2 register rounds
  check_token_major({bf16, 65, 9000, 9000, 2, 4, 1});             // bf16: a partial second round
}

TEST(PermuteTokenMajorCuda, GraphCapture) {
  SKIP_WITHOUT_GPU();
  TokenMajorCase c{DType::kBFloat16, 513, 7168, 7168, 8, 256, 128};
  c.capture = true;
  check_token_major(c);
  c = {DType::kFloat16, 300, 2880, 2880, 4, 9, 1};
  c.max_m = 64;
  c.capture = true;
  check_token_major(c);
}

// More tokens than the launch's token blocks (2^20): the token grid-stride loop must cover every
// token. (The zero blocks' loop strides past 2^20 blocks of 32 rows only beyond 2^25 rows.)
TEST(PermuteTokenMajorCuda, MoreTokensThanBlocks) {
  SKIP_WITHOUT_GPU();
  if (small_scale()) GTEST_SKIP() << "SWITCHYARD_TEST_SCALE=small";
  check_token_major({DType::kBFloat16, (std::int64_t{1} << 20) + 4099, 8, 8, 2, 16, 16});
}

TEST(PermuteTokenMajorCuda, RejectsBadInverseMap) {
  SKIP_WITHOUT_GPU();
  DeviceBuffer x, map, inv, out;
  ASSERT_TRUE(DeviceBuffer::allocate(64, &x).ok());
  ASSERT_TRUE(DeviceBuffer::allocate(32, &map).ok());
  ASSERT_TRUE(DeviceBuffer::allocate(32, &inv).ok());
  ASSERT_TRUE(DeviceBuffer::allocate(64, &out).ok());
  std::vector<std::int64_t> host_inv(4, -1);
  PermuteArgs a;
  a.x = TensorView::contiguous(x.get(), DType::kFloat32, {2, 8}, Device::kCuda);
  a.dst_to_src = TensorView::contiguous(map.get(), DType::kInt64, {2}, Device::kCuda);
  a.top_k = 2;
  a.out = TensorView::contiguous(out.get(), DType::kFloat32, {2, 8}, Device::kCuda);
  a.src_to_dst = TensorView::contiguous(host_inv.data(), DType::kInt64, {4});
  Status st = permute_cuda(a, nullptr);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("permute_cuda: src_to_dst.device = cpu: expected cuda"),
            std::string::npos)
      << st.message();
  a.src_to_dst = TensorView::contiguous(inv.get(), DType::kInt64, {3}, Device::kCuda);
  st = permute_cuda(a, nullptr);
  EXPECT_NE(st.message().find("src_to_dst.shape = [3]: expected [4]"), std::string::npos)
      << st.message();
  a.src_to_dst = TensorView::contiguous(inv.get(), DType::kInt32, {4}, Device::kCuda);
  st = permute_cuda(a, nullptr);
  EXPECT_NE(st.message().find("src_to_dst.dtype = int32: expected int64"), std::string::npos)
      << st.message();
}

// ---- combine with absent weights / src_to_dst (moe_sum_reduce) ------------------------------

struct CombineOptionalCase {
  DType dtype;
  std::int64_t tokens, hidden, y_stride;
  int top_k;
  bool has_map, has_weights;
  bool capture = false;
};

// combine_cuda against combine_cpu, bit for bit, on a poisoned output (0xff: NaN in every dtype),
// with src_to_dst and/or top_k_weights absent (TensorView{}, top_k = K without weights). Without a
// map y is [M*K, H] (row stride y_stride: unaligned rows take the scalar path); with one, y has
// M*K + 5 rows and the map picks rows in any order, some slots dropped (-1).
void check_combine_optional(const CombineOptionalCase& c) {
  const std::string id = std::string("combine_optional/") + dtype_name(c.dtype) + "/M" +
                         std::to_string(c.tokens) + "/H" + std::to_string(c.hidden) + "/stride" +
                         std::to_string(c.y_stride) + "/K" + std::to_string(c.top_k) +
                         (c.has_map ? "/map" : "/identity") +
                         (c.has_weights ? "/weights" : "/unit") + (c.capture ? "/graph" : "");
  SCOPED_TRACE(id);
  tools::Rng rng(tools::seed_from_name(id));
  const std::int64_t M = c.tokens, K = c.top_k, H = c.hidden;
  const std::int64_t R = c.has_map ? M * K + 5 : M * K;
  std::vector<float> yf(static_cast<std::size_t>(R * c.y_stride)),
      w(static_cast<std::size_t>(M * K));
  for (float& v : yf) v = static_cast<float>(rng.normal());
  for (float& v : w) v = static_cast<float>(rng.uniform());
  std::vector<std::int64_t> map(static_cast<std::size_t>(M * K));
  for (auto& r : map) {
    const std::uint64_t d = rng.below(16);
    r = d == 0 ? -1 : static_cast<std::int64_t>(rng.below(static_cast<std::uint64_t>(R)));
  }
  const std::vector<std::uint8_t> y = tools::encode_floats(yf, c.dtype);
  const std::size_t esz = dtype_size(c.dtype);

  // CPU (the oracle).
  std::vector<std::uint8_t> out_cpu(static_cast<std::size_t>(M * H) * esz, 0x5a);
  CombineArgs cc;
  cc.y = TensorView::contiguous(const_cast<std::uint8_t*>(y.data()), c.dtype, {R, H});
  cc.y.strides[0] = c.y_stride;
  if (c.has_map) cc.src_to_dst = TensorView::contiguous(map.data(), DType::kInt64, {M * K});
  if (c.has_weights) {
    cc.top_k_weights = TensorView::contiguous(w.data(), DType::kFloat32, {M, K});
  } else {
    cc.top_k = static_cast<std::int32_t>(K);
  }
  cc.out = TensorView::contiguous(out_cpu.data(), c.dtype, {M, H});
  const Status cpu_st = combine_cpu({2.5f}, cc);
  ASSERT_TRUE(cpu_st.ok()) << cpu_st.to_string();

  DeviceBuffer dy = upload_nonnull(y.data(), y.size()),
               dmap = upload_nonnull(map.data(), map.size() * 8),
               dw = upload_nonnull(w.data(), w.size() * 4), dout;
  ASSERT_TRUE(DeviceBuffer::allocate(std::max<std::size_t>(out_cpu.size(), 16), &dout).ok());
  CombineArgs cg = cc;
  cg.y = TensorView::contiguous(dy.get(), c.dtype, {R, H}, Device::kCuda);
  cg.y.strides[0] = c.y_stride;
  if (c.has_map) {
    cg.src_to_dst = TensorView::contiguous(dmap.get(), DType::kInt64, {M * K}, Device::kCuda);
  }
  if (c.has_weights) {
    cg.top_k_weights = TensorView::contiguous(dw.get(), DType::kFloat32, {M, K}, Device::kCuda);
  }
  cg.out = TensorView::contiguous(dout.get(), c.dtype, {M, H}, Device::kCuda);
  ASSERT_TRUE(tools::fill_device_bytes(dout.get(), 0xff, dout.bytes()).ok());
  launch_maybe_captured(c.capture, [&](cudaStream_t s) { return combine_cuda({2.5f}, cg, s); });
  if (::testing::Test::HasFatalFailure()) return;
  std::vector<std::uint8_t> got = download(dout);
  got.resize(out_cpu.size());
  EXPECT_TRUE(got == out_cpu) << "combine_cuda differs from combine_cpu";
}

TEST(CombineCuda, AbsentWeightsAndMapMatchCpuBitwise) {
  SKIP_WITHOUT_GPU();
  for (DType dt : {DType::kBFloat16, DType::kFloat16, DType::kFloat32}) {
    for (std::int64_t H : {1, 7, 8, 2880, 7168}) {
      for (int variant = 0; variant < 3; ++variant) {
        const bool map = variant == 2, weights = variant == 1;
        // Decode (one token, a row split into column pieces; K = 9: a full batch of 8 row loads
        // and a partial one), a few tokens with strided rows (scalar path), prefill, K = 1.
        check_combine_optional({dt, 1, H, H, 9, map, weights});
        check_combine_optional({dt, 3, H, H + 5, 8, map, weights});
        check_combine_optional({dt, H > 1000 ? 257 : 2048, H, H, 8, map, weights});
        check_combine_optional({dt, 33, H, H, 1, map, weights});
      }
    }
  }
}

TEST(CombineCuda, AbsentWeightsAndMapGraphCaptureAndEmpty) {
  SKIP_WITHOUT_GPU();
  CombineOptionalCase c{DType::kBFloat16, 4, 7168, 7168, 8, false, false};
  c.capture = true;  // moe_sum_reduce at decode size, captured
  check_combine_optional(c);
  check_combine_optional({DType::kBFloat16, 0, 7168, 7168, 8, false, false});  // no tokens
  check_combine_optional({DType::kFloat16, 0, 64, 64, 8, true, false});
}

TEST(CombineCuda, RejectsBadOptionalArguments) {
  SKIP_WITHOUT_GPU();
  DeviceBuffer y, out;
  ASSERT_TRUE(DeviceBuffer::allocate(256, &y).ok());
  ASSERT_TRUE(DeviceBuffer::allocate(64, &out).ok());
  CombineArgs a;
  a.y = TensorView::contiguous(y.get(), DType::kFloat32, {8, 4}, Device::kCuda);
  a.out = TensorView::contiguous(out.get(), DType::kFloat32, {2, 4}, Device::kCuda);
  Status st = combine_cuda({}, a, nullptr);
  EXPECT_NE(
      st.message().find("combine_cuda: top_k = 0: expected >= 1 when top_k_weights is absent"),
      std::string::npos)
      << st.message();
  a.top_k = 3;
  st = combine_cuda({}, a, nullptr);
  EXPECT_NE(st.message().find("combine_cuda: y.shape = [8, 4]: expected [6, 4]"), std::string::npos)
      << st.message();
  a.top_k = 4;
  EXPECT_TRUE(combine_cuda({}, a, nullptr).ok());
  std::vector<std::int64_t> host_map(8, 0);
  a.src_to_dst = TensorView::contiguous(host_map.data(), DType::kInt64, {8});
  st = combine_cuda({}, a, nullptr);
  EXPECT_NE(st.message().find("src_to_dst.device = cpu: expected cuda"), std::string::npos)
      << st.message();
  ASSERT_TRUE(tools::device_synchronize().ok());
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
