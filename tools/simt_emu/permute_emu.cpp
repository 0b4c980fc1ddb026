// Runs the permute kernels (src/cuda/kernels/permute_combine.cuh) on the host SIMT emulator
// against permute_cpu, bit for bit, on poisoned outputs: the token-major kernel (src_to_dst given;
// zero blocks + token blocks, grid-stride loops with small grids, both the 16-byte and the scalar
// path, K > 32) and the row-major one, over dtypes, H with tails, dropped slots, expert_map,
// masked and padded layouts and no tokens. The combine kernel against combine_cpu on the same
// cases: on the permuted rows with src_to_dst, weights given and absent (weight 1), and on
// [M*K, H] rows with no src_to_dst (the identity map: moe_sum_reduce), weights given and absent;
// over column pieces (blockIdx.y) and small grids. Small shapes (one fiber per CUDA thread), no
// GPU. Built and run by CTest (tests/CMakeLists.txt: permute_emu; GCC builds).
//   build-cpu/tests/permute_emu
#include "cuda_emu.h"
// clang-format off
#include "cuda/kernels/permute_combine.cuh"
// clang-format on
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "common/rng.h"
#include "common/synthetic.h"
#include "permute_test_util.h"
#include "switchyard/align.h"

using namespace switchyard;

namespace {

using Case = testing::PermuteCase;

struct Grid {
  unsigned zero_blocks, token_blocks;  // 0: one block per 32 rows / per token (the launcher's)
  bool force_scalar;
};

template <typename T>
void run_token_major(const std::uint8_t* x, std::int64_t x_stride, const std::int64_t* s2d,
                     const std::int64_t* d2s, std::int64_t M, int K, std::int64_t R, std::int64_t H,
                     std::uint8_t* out, bool vec_ok, unsigned zero_blocks, unsigned token_blocks) {
  emu::launch(zero_blocks + token_blocks, kernels::kPermuteThreads, [&] {
    kernels::permute_token_major_kernel<T>(reinterpret_cast<const T*>(x), x_stride, s2d, d2s, M, K,
                                           R, H, reinterpret_cast<T*>(out), vec_ok, zero_blocks);
  });
}

template <typename T>
void run_row_major(const std::uint8_t* x, std::int64_t x_stride, const std::int64_t* d2s,
                   std::int64_t M, int K, std::int64_t R, std::int64_t H, std::uint8_t* out,
                   bool vec_ok, unsigned blocks) {
  emu::launch(blocks, kernels::kPermuteThreads, [&] {
    kernels::permute_kernel<T>(reinterpret_cast<const T*>(x), x_stride, d2s, R, H, K, M * K,
                               reinterpret_cast<T*>(out), vec_ok);
  });
}

template <typename T>
void run_combine(const std::uint8_t* y, std::int64_t y_stride, std::int64_t y_rows,
                 const std::int64_t* s2d, const float* w, std::int64_t M, int K, std::int64_t H,
                 float rsf, std::uint8_t* out, bool vec_ok, unsigned blocks, unsigned pieces) {
  const auto kernel = kernels::combine_kernel_for<T>(s2d, w);  // as launch_combine picks it
  emu::launch(dim3{blocks, pieces, 1}, kernels::kPermuteThreads, [&] {
    kernel(reinterpret_cast<const T*>(y), y_stride, y_rows, s2d, w, M, K, H, rsf,
           reinterpret_cast<T*>(out), vec_ok);
  });
}

bool aligned16(const void* p) {
  return (reinterpret_cast<std::uintptr_t>(p) & 15u) == 0;
}

// combine_kernel against combine_cpu on y [y_rows, H] (row stride y_stride), src_to_dst `s2d` and
// weights `w` [M, K] (each null: absent, as combine_cuda passes them), over the launcher's grid
// (launch_combine: one block per token, column pieces up to ~512 blocks) and smaller ones (token
// grid stride, more pieces than vectors, the scalar path). Returns the number of wrong tokens.
std::int64_t check_combine(const std::string& id, DType dtype, const std::uint8_t* y,
                           std::int64_t y_rows, std::int64_t y_stride, const std::int64_t* s2d,
                           const float* w, std::int64_t M, int K, std::int64_t H, float rsf) {
  const std::size_t esz = dtype_size(dtype);
  const std::size_t row_bytes = static_cast<std::size_t>(H) * esz;
  std::vector<std::uint8_t> want(static_cast<std::size_t>(M) * row_bytes, 0x5a);
  CombineArgs ca;
  ca.y = TensorView::contiguous(const_cast<std::uint8_t*>(y), dtype, {y_rows, H});
  ca.y.strides[0] = y_stride;
  if (s2d != nullptr) {
    ca.src_to_dst = TensorView::contiguous(const_cast<std::int64_t*>(s2d), DType::kInt64, {M * K});
  }
  if (w != nullptr) {
    ca.top_k_weights = TensorView::contiguous(const_cast<float*>(w), DType::kFloat32, {M, K});
  } else {
    ca.top_k = K;
  }
  ca.out = TensorView::contiguous(want.data(), dtype, {M, H});
  if (Status st = combine_cpu({rsf}, ca); !st.ok()) {
    std::printf("FAIL %s: combine_cpu: %s\n", id.c_str(), st.to_string().c_str());
    return 1;
  }
  if (M == 0 || H == 0) return 0;  // combine_cuda launches nothing
  std::vector<std::uint8_t> got(want.size() + 16);
  std::uint8_t* out = got.data() + (16 - reinterpret_cast<std::uintptr_t>(got.data()) % 16) % 16;
  // As combine_cuda decides (rows_vec_ok): every row of y and out 16-byte aligned.
  const bool vec_ok = row_bytes % 16 == 0 &&
                      (static_cast<std::size_t>(y_rows > 1 ? y_stride : H) * esz) % 16 == 0 &&
                      aligned16(y) && aligned16(out);
  const std::int64_t units = vec_ok ? H / static_cast<std::int64_t>(16 / esz) : H;
  const auto launcher_pieces = static_cast<unsigned>(std::clamp<std::int64_t>(
      (512 + M - 1) / M, 1, std::max<std::int64_t>(1, units / kernels::kPermuteThreads)));
  const auto tokens = static_cast<unsigned>(M);
  std::int64_t wrong_total = 0;
  struct CombineGrid {
    unsigned blocks, pieces;
    bool force_scalar;
  };
  for (const CombineGrid& g :
       {CombineGrid{tokens, launcher_pieces, false}, CombineGrid{std::min(tokens, 2u), 3, false},
        CombineGrid{1, 2, true}}) {
    const bool v = vec_ok && !g.force_scalar;
    std::memset(out, 0x7b, want.size());
    const std::int64_t y_stride_used = y_rows > 1 ? y_stride : H;
    if (dtype == DType::kFloat32) {
      run_combine<float>(y, y_stride_used, y_rows, s2d, w, M, K, H, rsf, out, v, g.blocks,
                         g.pieces);
    } else if (dtype == DType::kBFloat16) {
      run_combine<detail::bf16_t>(y, y_stride_used, y_rows, s2d, w, M, K, H, rsf, out, v, g.blocks,
                                  g.pieces);
    } else {
      run_combine<detail::fp16_t>(y, y_stride_used, y_rows, s2d, w, M, K, H, rsf, out, v, g.blocks,
                                  g.pieces);
    }
    std::int64_t wrong = 0, first = -1;
    for (std::int64_t t = 0; t < M; ++t) {
      const std::size_t at = static_cast<std::size_t>(t) * row_bytes;
      if (std::memcmp(out + at, want.data() + at, row_bytes) != 0) {
        if (first < 0) first = t;
        ++wrong;
      }
    }
    if (wrong) {
      std::printf("FAIL %s blocks=%u pieces=%u%s: %lld of %lld tokens differ, first %lld\n",
                  id.c_str(), g.blocks, g.pieces, v ? " vec" : " scalar",
                  static_cast<long long>(wrong), static_cast<long long>(M),
                  static_cast<long long>(first));
    }
    wrong_total += wrong;
  }
  return wrong_total;
}

// Returns the number of wrong rows over every grid of the case (printed).
std::int64_t check_case(const Case& c) {
  const std::string id = testing::permute_case_id(c);
  tools::Rng rng(tools::seed_from_name("permute_emu/" + id));
  const std::int64_t M = c.tokens, K = c.top_k, H = c.hidden;
  testing::PermuteCaseData gen;
  if (Status st = testing::make_permute_case(c, rng, 8, &gen); !st.ok()) {
    std::printf("FAIL %s: expert_layout_cpu: %s\n", id.c_str(), st.to_string().c_str());
    return 1;
  }
  const std::vector<std::uint8_t>& x = gen.x;
  const std::vector<std::int64_t>&s2d = gen.s2d, &d2s = gen.d2s;
  const ExpertLayoutArgs& la = gen.layout;
  const std::int64_t R = gen.rows;
  const std::size_t esz = dtype_size(c.dtype);

  const std::size_t row_bytes = static_cast<std::size_t>(H) * esz;
  std::vector<std::uint8_t> want(static_cast<std::size_t>(R) * row_bytes, 0x5a);
  PermuteArgs pa;
  pa.x = TensorView::contiguous(const_cast<std::uint8_t*>(x.data()), c.dtype, {M, H});
  pa.x.strides[0] = c.x_stride;
  pa.dst_to_src = la.dst_to_src;
  pa.top_k = static_cast<int>(K);
  pa.out = TensorView::contiguous(want.data(), c.dtype, {R, H});
  pa.src_to_dst = la.src_to_dst;
  if (Status st = permute_cpu(pa); !st.ok()) {
    std::printf("FAIL %s: permute_cpu: %s\n", id.c_str(), st.to_string().c_str());
    return 1;
  }
  // As permute_cuda decides (rows_vec_ok): every row of x and out 16-byte aligned.
  std::vector<std::uint8_t> got(want.size() + 16);
  std::uint8_t* out = got.data() + (16 - reinterpret_cast<std::uintptr_t>(got.data()) % 16) % 16;
  const bool vec_ok = row_bytes % 16 == 0 &&
                      (static_cast<std::size_t>(M > 1 ? c.x_stride : H) * esz) % 16 == 0 &&
                      aligned16(x.data()) && aligned16(out);
  const auto x_stride = M > 1 ? c.x_stride : H;

  std::int64_t wrong_total = 0;
  const auto compare = [&](const std::string& what) {
    std::int64_t wrong = 0, first = -1;
    for (std::int64_t r = 0; r < R; ++r) {
      const std::size_t at = static_cast<std::size_t>(r) * row_bytes;
      if (std::memcmp(out + at, want.data() + at, row_bytes) != 0) {
        if (first < 0) first = r;
        ++wrong;
      }
    }
    if (wrong) {
      std::printf("FAIL %s %s: %lld of %lld rows differ, first %lld (dst_to_src = %lld)\n",
                  id.c_str(), what.c_str(), static_cast<long long>(wrong),
                  static_cast<long long>(R), static_cast<long long>(first),
                  static_cast<long long>(d2s[static_cast<std::size_t>(first)]));
    }
    wrong_total += wrong;
  };
  const auto full_zero =
      static_cast<unsigned>((R + kernels::kPermuteZeroRows - 1) / kernels::kPermuteZeroRows);
  const auto full_tokens = static_cast<unsigned>(M);
  for (const Grid& g : {Grid{0, 0, false}, Grid{1, 1, false}, Grid{2, 3, true}}) {
    const unsigned zb = g.zero_blocks ? std::min(g.zero_blocks, full_zero) : full_zero;
    const unsigned tb = g.token_blocks ? std::min(g.token_blocks, full_tokens) : full_tokens;
    if (R == 0 || H == 0) continue;  // permute_cuda launches nothing
    const bool v = vec_ok && !g.force_scalar;
    std::memset(out, 0x7b, want.size());
    const std::uint8_t* xp = x.empty() ? out : x.data();
    if (c.dtype == DType::kFloat32) {
      run_token_major<float>(xp, x_stride, s2d.data(), d2s.data(), M, c.top_k, R, H, out, v, zb,
                             tb);
    } else if (c.dtype == DType::kBFloat16) {
      run_token_major<detail::bf16_t>(xp, x_stride, s2d.data(), d2s.data(), M, c.top_k, R, H, out,
                                      v, zb, tb);
    } else {
      run_token_major<detail::fp16_t>(xp, x_stride, s2d.data(), d2s.data(), M, c.top_k, R, H, out,
                                      v, zb, tb);
    }
    compare("token-major zero_blocks=" + std::to_string(zb) +
            " token_blocks=" + std::to_string(tb) + (v ? " vec" : " scalar"));
  }
  if (R > 0 && H > 0) {  // the row-major kernel, on a small grid (grid-stride)
    std::memset(out, 0x7b, want.size());
    const unsigned blocks = static_cast<unsigned>(std::min<std::int64_t>(R, 5));
    if (c.dtype == DType::kFloat32) {
      run_row_major<float>(x.data(), x_stride, d2s.data(), M, c.top_k, R, H, out, vec_ok, blocks);
    } else if (c.dtype == DType::kBFloat16) {
      run_row_major<detail::bf16_t>(x.data(), x_stride, d2s.data(), M, c.top_k, R, H, out, vec_ok,
                                    blocks);
    } else {
      run_row_major<detail::fp16_t>(x.data(), x_stride, d2s.data(), M, c.top_k, R, H, out, vec_ok,
                                    blocks);
    }
    compare("row-major");
  }
  // Combine on the permuted rows (the CPU's, contiguous [R, H]) through src_to_dst, with the
  // weights and without (weight 1).
  std::vector<float> w(static_cast<std::size_t>(std::max<std::int64_t>(M * K, 1)));
  for (float& v : w) v = static_cast<float>(rng.uniform());
  std::vector<std::uint8_t> y_al(want.size() + 16);  // 16-byte aligned copy of the rows
  std::uint8_t* y = y_al.data() + (16 - reinterpret_cast<std::uintptr_t>(y_al.data()) % 16) % 16;
  if (!want.empty()) std::memcpy(y, want.data(), want.size());
  const int Ki = static_cast<int>(K);
  wrong_total +=
      check_combine(id + " combine", c.dtype, y, R, H, s2d.data(), w.data(), M, Ki, H, 2.5f);
  wrong_total += check_combine(id + " combine/unit-weights", c.dtype, y, R, H, s2d.data(), nullptr,
                               M, Ki, H, -0.75f);
  // No src_to_dst: y [M*K, H] with x's row stride (unaligned rows take the scalar path).
  std::vector<float> yf(static_cast<std::size_t>(M * K * c.x_stride));
  for (float& v : yf) v = static_cast<float>(rng.normal());
  const std::vector<std::uint8_t> yi_bytes = tools::encode_floats(yf, c.dtype);
  std::vector<std::uint8_t> yi_al(yi_bytes.size() + 16);
  std::uint8_t* yi = yi_al.data() + (16 - reinterpret_cast<std::uintptr_t>(yi_al.data()) % 16) % 16;
  if (!yi_bytes.empty()) std::memcpy(yi, yi_bytes.data(), yi_bytes.size());
  wrong_total += check_combine(id + " combine/identity", c.dtype, yi, M * K, c.x_stride, nullptr,
                               w.data(), M, Ki, H, 2.5f);
  wrong_total += check_combine(id + " combine/sum-reduce", c.dtype, yi, M * K, c.x_stride, nullptr,
                               nullptr, M, Ki, H, 1.5f);
  std::printf("%s %s (R = %lld rows, vec %d)\n", wrong_total ? "FAIL" : "ok  ", id.c_str(),
              static_cast<long long>(R), vec_ok ? 1 : 0);
  return wrong_total;
}

}  // namespace

int main() {
  std::vector<Case> cases;
  for (DType dt : {DType::kBFloat16, DType::kFloat16, DType::kFloat32}) {
    for (std::int64_t H : {1, 7, 8, 40}) {
      cases.push_back({dt, 24, H, H, 4, 6, 1});
      cases.push_back({dt, 17, H, H, 3, 5, 16});    // alignment padding rows
      cases.push_back({dt, 9, H, H + 3, 2, 4, 8});  // strided x: scalar path where misaligned
    }
  }
  cases.push_back({DType::kBFloat16, 4, 8200, 8200, 2, 3, 1});  // 1025 words: a second round
  cases.push_back({DType::kFloat32, 3, 4100, 4100, 2, 2, 4});   // 1025 words, padding
  cases.push_back({DType::kBFloat16, 6, 16, 16, 40, 8, 1});     // K > 32: two shuffle groups
  cases.push_back({DType::kFloat16, 5, 7, 7, 33, 4, 4});        // K > 32, scalar
  Case masked{DType::kBFloat16, 30, 24, 24, 4, 3, 1};
  masked.max_m = 16;  // ~35 slots per expert: overflow dropped
  cases.push_back(masked);
  Case mapped{DType::kFloat16, 20, 32, 32, 4, 6, 8};
  mapped.mapped = true;
  cases.push_back(mapped);
  Case dropped{DType::kBFloat16, 10, 16, 16, 4, 5, 8};
  dropped.all_dropped = true;
  cases.push_back(dropped);
  cases.push_back({DType::kBFloat16, 0, 16, 16, 4, 5, 8});  // no tokens: padding rows only
  cases.push_back({DType::kBFloat16, 0, 16, 16, 4, 5, 1});  // no tokens, no rows
  cases.push_back({DType::kBFloat16, 1, 64, 64, 8, 16, 1});
  // Decode sizes for combine: one to three tokens, a wide row split into column pieces, K = 9 (a
  // full batch of 8 row loads and a partial one).
  cases.push_back({DType::kBFloat16, 1, 7168, 7168, 9, 16, 1});
  cases.push_back({DType::kFloat16, 3, 2880, 2880, 9, 16, 1});
  cases.push_back({DType::kFloat32, 2, 1030, 1030, 1, 4, 1});  // K = 1, scalar (1030 % 4 != 0)
  std::int64_t wrong = 0;
  for (const Case& c : cases) wrong += check_case(c);
  std::printf("permute_emu: %zu cases, %lld wrong rows / tokens\n", cases.size(),
              static_cast<long long>(wrong));
  return wrong == 0 ? 0 : 1;
}
