// Runs the warp-level alignment kernel (src/cuda/kernels/align_warp.cuh, N <= 64 slots), the
// block kernel (align_block.cuh, N <= 256) and the cluster kernel (align_cluster.cuh, N <= 4096,
// E <= 512, as one emulated thread block cluster, pushing and, on the launcher's grid, pulling;
// the emulator's mbarriers must end every launch settled; its replicated variant for N <= 1024 with
// the blocks in order, in reverse and all at once) and the few-experts kernel (align_few.cuh, N <=
// 1024, E <= 32) on the host SIMT emulator against moe_align_block_size_cpu / expert_layout_cpu
// (contiguous), bit for bit, on poisoned, partly misaligned outputs a little larger than required:
// seeded random cases over N = 0..256 (the warp kernel up to 64) and N up to 4096 for the cluster
// kernel, E = 1..16384, block sizes 16..256 (non-powers of two included) and alignments 1..1024,
// int32 / int64 ids, invalid ids (-1, >= E, negative, >= 2^32), expert_map (dropped and
// out-of-range entries), on the launcher's grid and on small or odd grids (every loop is
// grid-stride; the cluster kernel on any cluster of at least one block per 512 slots). Where E <=
// 512 and N <= 512 the small-batch kernel (align_small.cuh) runs on the same inputs too and must
// give the same bits. Any mismatch prints the case and fails (exit 1).
//   build-cpu/tests/align_warp_emu [cases] [seed]
#include "cuda_emu.h"
// The kernels' dynamic shared memory (`extern __shared__`: -fno-extern-tls-init), room for
// small_align_shared_bytes(512) = 40 KiB and the replicated cluster kernel's up to 69,696 bytes.
namespace switchyard::kernels {
alignas(16) thread_local unsigned char smem[72 * 1024];
}  // namespace switchyard::kernels
// (align_small_body's `smem` parameter shadows it.)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow"
// clang-format off
#include "cuda/kernels/align_block.cuh"
#include "cuda/kernels/align_cluster.cuh"
#include "cuda/kernels/align_few.cuh"
#include "cuda/kernels/align_warp.cuh"
// clang-format on
#pragma GCC diagnostic pop
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "common/rng.h"
#include "switchyard/align.h"

using namespace switchyard;
using kernels::SortOutput;
using kernels::SortParams;

namespace {

enum class Pattern { kUniform, kHot, kAllDropped, kInvalid, kMapped, kFewExperts };
constexpr int kPatterns = 6;

struct Case {
  std::int64_t n;  // slots
  std::int32_t E;
  std::int32_t pad;  // block size (align) or alignment (layout)
  bool layout;
  bool ids64;
  Pattern pattern;
  bool with_overflow;     // layout: overflow given
  std::int64_t extra;     // entries past the required output sizes
  std::int64_t misalign;  // output pointers this many elements past a 16-byte boundary
  std::uint64_t seed;
};

std::string case_id(const Case& c) {
  char b[256];
  std::snprintf(b, sizeof b, "%s/N%lld/E%d/%s%d/%s/pat%d/extra%lld/mis%lld%s/seed%llu",
                c.layout ? "layout" : "align", static_cast<long long>(c.n), c.E,
                c.layout ? "A" : "B", c.pad, c.ids64 ? "i64" : "i32", static_cast<int>(c.pattern),
                static_cast<long long>(c.extra), static_cast<long long>(c.misalign),
                c.layout && c.with_overflow ? "/ovf" : "", static_cast<unsigned long long>(c.seed));
  return b;
}

// Ids as int64 and the expert map (empty: none).
void make_ids(const Case& c, tools::Rng& rng, std::vector<std::int64_t>* ids,
              std::vector<std::int32_t>* map) {
  const auto E = static_cast<std::uint64_t>(c.E);
  ids->assign(static_cast<std::size_t>(c.n), 0);
  const std::int64_t hot = static_cast<std::int64_t>(rng.below(E));
  const std::uint64_t few = 1 + rng.below(3);
  std::vector<std::int64_t> some(few);
  for (auto& v : some) v = static_cast<std::int64_t>(rng.below(E));
  for (auto& v : *ids) {
    switch (c.pattern) {
      case Pattern::kUniform:
        v = static_cast<std::int64_t>(rng.below(E));
        break;
      case Pattern::kHot:
        v = rng.below(8) == 0 ? static_cast<std::int64_t>(rng.below(E)) : hot;
        break;
      case Pattern::kAllDropped:
        v = -1;
        break;
      case Pattern::kFewExperts:
        v = some[rng.below(few)];
        break;
      case Pattern::kInvalid: {
        const std::uint64_t r = rng.below(10);
        v = r == 0   ? -1
            : r == 1 ? static_cast<std::int64_t>(E + rng.below(5))
            : r == 2 ? -static_cast<std::int64_t>(2 + rng.below(1000))
            : r == 3 ? (c.ids64 ? (std::int64_t{1} << 32) + static_cast<std::int64_t>(rng.below(E))
                                : std::int64_t{-2147483647} - 1)
                     : static_cast<std::int64_t>(rng.below(E));
        break;
      }
      case Pattern::kMapped:
        v = static_cast<std::int64_t>(rng.below(2 * E + 3)) - 1;  // -1 .. 2E + 1 (map: 2E + 1)
        if (c.ids64 && rng.below(16) == 0) v += std::int64_t{1} << 32;
        break;
    }
  }
  map->clear();
  if (c.pattern == Pattern::kMapped) {
    // 2E + 1 global experts: odd ones local (e / 2), even ones elsewhere (-1), a few out of range
    // (>= E or below -1), so both the map's bounds and its values are checked.
    for (std::uint64_t g = 0; g < 2 * E + 1; ++g) {
      const std::uint64_t r = rng.below(16);
      map->push_back(r == 0   ? static_cast<std::int32_t>(E + rng.below(3))
                     : r == 1 ? -7
                     : g % 2  ? static_cast<std::int32_t>(g / 2)
                              : -1);
    }
  }
}

// A buffer of `n` T starting `misalign` elements past a 16-byte boundary, poisoned, with 8
// poisoned guard elements (at least) on each side: intact() says whether the guards still hold
// the poison (a write out of bounds fails the case).
template <typename T>
struct Out {
  static constexpr std::size_t kGuard = 8;
  std::vector<T> store;
  T* data = nullptr;
  std::int64_t n = 0;
  unsigned char poison = 0;
  void init(std::int64_t count, std::int64_t misalign, unsigned char fill) {
    n = count;
    poison = fill;
    store.assign(static_cast<std::size_t>(count + misalign) + 16 / sizeof(T) + 2 * kGuard, T{});
    auto addr = reinterpret_cast<std::uintptr_t>(store.data());
    const std::size_t skip =
        ((16 - addr % 16) % 16) / sizeof(T) + kGuard + static_cast<std::size_t>(misalign);
    data = store.data() + skip;
    std::memset(static_cast<void*>(store.data()), poison, store.size() * sizeof(T));
  }
  std::vector<T> get() const { return std::vector<T>(data, data + n); }
  bool intact() const {
    const auto* b = reinterpret_cast<const unsigned char*>(store.data());
    const auto* lo = reinterpret_cast<const unsigned char*>(data);
    const auto* hi = reinterpret_cast<const unsigned char*>(data + n);
    const auto* end = b + store.size() * sizeof(T);
    for (const unsigned char* q = b; q < end; ++q) {
      if ((q < lo || q >= hi) && *q != poison) return false;
    }
    return true;
  }
};

template <typename T>
std::int64_t first_diff(const std::vector<T>& a, const std::vector<T>& b) {
  for (std::size_t i = 0; i < a.size(); ++i)
    if (a[i] != b[i]) return static_cast<std::int64_t>(i);
  return a.size() == b.size() ? -1 : static_cast<std::int64_t>(std::min(a.size(), b.size()));
}

enum class Kernel {
  kWarp,
  kSmall,
  kSmallCluster,
  kSmallCluster4,  // the 512-step instance, 4 steps per block, at any size
  kBlock,
  kCluster,      // the pushing form (the library's)
  kClusterPull,  // the pulling form (SWITCHYARD_ALIGN_PUSH=0)
  kFew,
  kRepl,
  kReplReverse,
  kReplTogether
};

struct Launch {
  std::string what;
  unsigned grid, block;
  Kernel kernel;
};

long long g_warp_launches = 0, g_small_launches = 0, g_block_launches = 0, g_cluster_launches = 0,
          g_few_launches = 0, g_repl_launches = 0;

// The replicated cluster kernel's instance / body for `steps` (1, 2).
template <bool kAlign>
void repl_kernel(int steps, const SortParams& p) {
  steps == 1 ? kernels::align_cluster_kernel<kAlign, 1, 1>(p)
             : kernels::align_cluster_kernel<kAlign, 1, 2>(p);
}
template <bool kAlign>
void repl_body(int steps, const SortParams& p, unsigned char* smem) {
  steps == 1 ? kernels::align_cluster_body<kAlign, 1>(p, smem)
             : kernels::align_cluster_body<kAlign, 2>(p, smem);
}

void run(const Launch& l, const SortParams& p) {
  const bool repl = l.kernel == Kernel::kRepl || l.kernel == Kernel::kReplReverse ||
                    l.kernel == Kernel::kReplTogether;
  ++(l.kernel == Kernel::kSmall || l.kernel == Kernel::kSmallCluster ||
             l.kernel == Kernel::kSmallCluster4
         ? g_small_launches
     : l.kernel == Kernel::kBlock                                       ? g_block_launches
     : l.kernel == Kernel::kCluster || l.kernel == Kernel::kClusterPull ? g_cluster_launches
     : l.kernel == Kernel::kFew                                         ? g_few_launches
     : repl                                                             ? g_repl_launches
                                                                        : g_warp_launches);
  if (l.kernel == Kernel::kRepl || l.kernel == Kernel::kReplReverse) {
    // The blocks one after another, first to last or last to first: a block that wrote outside
    // its chunk, or left part of it unwritten, shows in one order or the other.
    const int steps = kernels::repl_align_steps(p.num_slots);
    const std::size_t smem_bytes = kernels::cluster_align_shared_bytes(p.num_experts, steps);
    const std::size_t stack = emu::stack_bytes;
    emu::stack_bytes = 32 * 1024;
    emu::launch(
        dim3{l.grid, 1, 1}, kernels::kClusterAlignThreads,
        [&] {
          if (p.output == SortOutput::kAlign) {
            repl_kernel<true>(steps, p);
          } else {
            repl_kernel<false>(steps, p);
          }
        },
        [&] { std::memset(kernels::smem, 0xa5, smem_bytes); }, l.kernel == Kernel::kReplReverse);
    emu::stack_bytes = stack;
  } else if (l.kernel == Kernel::kReplTogether) {
    // Every block at once (the emulated cluster's scheduling; the body never touches the cluster).
    const std::size_t stack = emu::stack_bytes;
    emu::stack_bytes = 32 * 1024;
    const int steps = kernels::repl_align_steps(p.num_slots);
    emu::launch_cluster(l.grid, kernels::kClusterAlignThreads,
                        kernels::cluster_align_shared_bytes(p.num_experts, steps), [&] {
                          if (p.output == SortOutput::kAlign) {
                            repl_body<true>(steps, p, emu::block_smem());
                          } else {
                            repl_body<false>(steps, p, emu::block_smem());
                          }
                        });
    emu::stack_bytes = stack;
  } else if (l.kernel == Kernel::kFew) {
    emu::launch(1, l.block, [&] {
      if (p.output == SortOutput::kAlign) {
        kernels::align_few_kernel<true, 1>(p);
      } else {
        kernels::align_few_kernel<false, 1>(p);
      }
    });
  } else if (l.kernel == Kernel::kCluster || l.kernel == Kernel::kClusterPull) {
    // 512-thread blocks by the thousand: smaller fiber stacks (the kernel's frames are small).
    const bool push = l.kernel == Kernel::kCluster;
    const std::size_t stack = emu::stack_bytes;
    emu::stack_bytes = 32 * 1024;
    emu::launch_cluster(l.grid, kernels::kClusterAlignThreads,
                        kernels::cluster_align_shared_bytes(p.num_experts, 1, push), [&] {
                          const bool a = p.output == SortOutput::kAlign;
                          if (push) {
                            a ? kernels::align_cluster_body<true, 0, true>(p, emu::block_smem())
                              : kernels::align_cluster_body<false, 0, true>(p, emu::block_smem());
                          } else {
                            a ? kernels::align_cluster_body<true, 0, false>(p, emu::block_smem())
                              : kernels::align_cluster_body<false, 0, false>(p, emu::block_smem());
                          }
                        });
    emu::stack_bytes = stack;
  } else if (l.kernel == Kernel::kSmallCluster || l.kernel == Kernel::kSmallCluster4) {
    // Clusters of kSmallAlignCluster blocks, one after another; the scan scratch (a static
    // __shared__ array on the GPU) after the dynamic shared memory, one per block.
    constexpr int kC = kernels::kSmallAlignCluster;
    const int steps =
        l.kernel == Kernel::kSmallCluster4 ? 512 : kernels::small_align_steps(p.num_slots);
    const std::size_t bytes =
        kernels::small_align_shared_bytes(p.num_experts, kC, kernels::small_align_own(steps));
    const std::size_t stack = emu::stack_bytes;
    emu::stack_bytes = 32 * 1024;
    emu::launch_cluster(
        l.grid, kernels::kSmallAlignThreads, bytes + 128,
        [&] {
          unsigned char* sm = emu::block_smem();
          auto* scan = reinterpret_cast<std::int32_t*>(sm + bytes);
          if (steps > 256) {
            kernels::align_small_body<512, kC, 4>(p, sm, scan);
          } else if (steps > 128) {
            kernels::align_small_body<256, kC, 2>(p, sm, scan);
          } else if (steps > 64) {
            kernels::align_small_body<128, kC>(p, sm, scan);
          } else if (steps > 32) {
            kernels::align_small_body<64, kC>(p, sm, scan);
          } else if (steps > 16) {
            kernels::align_small_body<32, kC>(p, sm, scan);
          } else {
            kernels::align_small_body<16, kC>(p, sm, scan);
          }
        },
        0xa5, static_cast<unsigned>(kC));
    emu::stack_bytes = stack;
  } else if (l.kernel == Kernel::kSmall) {
    // The one-step instance covers every size the other kernels take; the chunked ones theirs.
    const int steps = kernels::small_align_steps(p.num_slots);
    emu::launch(l.grid, kernels::kSmallAlignThreads, [&] {
      if (steps > 64) {
        kernels::align_small_kernel<128, 1>(p);
      } else if (steps > 32) {
        kernels::align_small_kernel<64, 1>(p);
      } else {
        kernels::align_small_kernel<1, 1>(p);
      }
    });
  } else if (l.kernel == Kernel::kBlock) {
    emu::launch(l.grid, kernels::kBlockAlignThreads, [&] {
      if (p.output == SortOutput::kAlign) {
        kernels::align_block_kernel<true>(p);
      } else {
        kernels::align_block_kernel<false>(p);
      }
    });
  } else {
    const bool two = kernels::warp_align_sets(p.num_slots) == 2;
    emu::launch(l.grid, l.block, [&] {
      if (p.output == SortOutput::kAlign) {
        two ? kernels::align_warp_kernel<true, 2, 1>(p) : kernels::align_warp_kernel<true, 1, 1>(p);
      } else {
        two ? kernels::align_warp_kernel<false, 2, 1>(p)
            : kernels::align_warp_kernel<false, 1, 1>(p);
      }
    });
  }
}

// The launches of a case: the launcher's grid (clamped for the emulator's speed), one warp, a few
// odd grids, the diagnostics' two passes, and the small-batch kernel where it applies.
std::vector<Launch> launches(const SortParams& p, tools::Rng& rng) {
  std::vector<Launch> out;
  const std::int64_t out_entries =
      p.output == SortOutput::kAlign ? p.sorted_numel + p.block_experts_numel : p.dst_numel;
  if (p.num_experts <= kernels::kClusterAlignMaxExperts &&
      p.num_slots <= kernels::kClusterAlignMaxSlots &&
      out_entries <= kernels::kClusterAlignMaxEntries) {
    const int g = kernels::cluster_align_blocks(p.num_slots, out_entries);
    out.push_back({"cluster kernel, launcher grid", static_cast<unsigned>(g),
                   kernels::kClusterAlignThreads, Kernel::kCluster});
    out.push_back({"cluster kernel (pulling), launcher grid", static_cast<unsigned>(g),
                   kernels::kClusterAlignThreads, Kernel::kClusterPull});
    // Any cluster with at least one block per 512 slots, up to 8.
    const int steps = static_cast<int>((p.num_slots + kernels::kClusterAlignThreads - 1) /
                                       kernels::kClusterAlignThreads);
    const int lo = std::max(steps, 1);
    const auto odd =
        static_cast<unsigned>(lo + static_cast<int>(rng.below(static_cast<std::uint64_t>(9 - lo))));
    if (odd != static_cast<unsigned>(g))
      out.push_back(
          {"cluster kernel, other cluster", odd, kernels::kClusterAlignThreads, Kernel::kCluster});
  }
  if (p.num_experts <= kernels::kClusterAlignMaxExperts &&
      p.num_slots <= kernels::kReplAlignMaxSlots &&
      kernels::cluster_align_shared_bytes(p.num_experts, kernels::repl_align_steps(p.num_slots)) <=
          sizeof(kernels::smem) &&
      out_entries <= kernels::kClusterAlignMaxEntries) {
    const int g = p.output == SortOutput::kAlign
                      ? kernels::repl_align_blocks(p.sorted_numel, p.block_experts_numel)
                      : kernels::repl_align_blocks(p.dst_numel, 0);
    const auto ug = static_cast<unsigned>(g);
    out.push_back({"replicated cluster kernel, blocks in order", ug, kernels::kClusterAlignThreads,
                   Kernel::kRepl});
    out.push_back({"replicated cluster kernel, blocks in reverse", ug,
                   kernels::kClusterAlignThreads, Kernel::kReplReverse});
    out.push_back({"replicated cluster kernel, blocks together", ug, kernels::kClusterAlignThreads,
                   Kernel::kReplTogether});
  }
  if (p.num_experts <= kernels::kFewAlignMaxExperts && p.num_slots <= kernels::kFewAlignMaxSlots &&
      out_entries <= kernels::kFewAlignMaxEntries) {
    out.push_back({"few-experts kernel", 1,
                   static_cast<unsigned>(kernels::few_align_threads(p.num_slots)), Kernel::kFew});
    // More warps than slots need (every loop over warps and over the prefill is block-wide).
    out.push_back({"few-experts kernel, 32 warps", 1, 1024, Kernel::kFew});
  }
  // The small kernel's chunked instance (64 steps: ids counted 16 steps at a time), and its
  // clustered instances (16 steps at every size up to 8192 slots, then 32..512).
  if (p.num_experts <= kernels::kSmallAlignMaxExperts) {
    if (p.num_slots > 32 * kernels::kSmallAlignThreads &&
        p.num_slots <= kernels::kSmallAlignMaxUnclusteredSlots) {
      const int sg = kernels::small_align_grid(p.num_slots, out_entries);
      out.push_back({"align_small_kernel, chunked", static_cast<unsigned>(sg),
                     kernels::kSmallAlignThreads, Kernel::kSmall});
    }
    if (p.num_slots <= kernels::kSmallAlignMaxSlots) {
      const int sg = kernels::small_align_grid(
          p.num_slots, out_entries, kernels::kSmallAlignCluster,
          kernels::small_align_own(kernels::small_align_steps(p.num_slots)));
      out.push_back({"align_small_kernel, clustered", static_cast<unsigned>(sg),
                     kernels::kSmallAlignThreads, Kernel::kSmallCluster});
      // The launcher's choice at 129-256 steps where the 2-step blocks' clusters do not fit.
      if (p.num_slots > 128 * kernels::kSmallAlignThreads &&
          p.num_slots <= 256 * kernels::kSmallAlignThreads) {
        const int sg4 =
            kernels::small_align_grid(p.num_slots, out_entries, kernels::kSmallAlignCluster, 4);
        out.push_back({"align_small_kernel, clustered, 4 steps per block",
                       static_cast<unsigned>(sg4), kernels::kSmallAlignThreads,
                       Kernel::kSmallCluster4});
      }
    }
  }
  if (p.num_slots > kernels::kBlockAlignMaxSlots) return out;  // the cluster kernel's sizes
  if (p.num_slots <= kernels::kWarpAlignMaxSlots) {
    const int g = kernels::warp_align_grid(p);
    const unsigned lg = static_cast<unsigned>(std::min(g, 24));
    out.push_back({g <= 24 ? "launcher grid" : "launcher grid clamped to 24", lg,
                   kernels::kWarpAlignThreads, Kernel::kWarp});
    out.push_back({"1 x 32", 1, 32, Kernel::kWarp});
    const unsigned b = 32u * static_cast<unsigned>(1 + rng.below(4));
    out.push_back({"odd grid", static_cast<unsigned>(1 + rng.below(5)), b, Kernel::kWarp});
  }
  {
    const int g = kernels::block_align_grid(p);
    const unsigned lg = static_cast<unsigned>(std::min(g, 16));
    out.push_back({g <= 16 ? "block kernel, launcher grid" : "block kernel, grid clamped to 16", lg,
                   kernels::kBlockAlignThreads, Kernel::kBlock});
    out.push_back({"block kernel, 1 block", 1, kernels::kBlockAlignThreads, Kernel::kBlock});
    out.push_back({"block kernel, odd grid", static_cast<unsigned>(2 + rng.below(4)),
                   kernels::kBlockAlignThreads, Kernel::kBlock});
  }
  if (p.num_experts <= kernels::kSmallAlignMaxExperts) {
    const int sg = kernels::small_align_grid(p.num_slots, out_entries);
    out.push_back({"align_small_kernel", static_cast<unsigned>(sg), kernels::kSmallAlignThreads,
                   Kernel::kSmall});
  }
  return out;
}

// Returns the number of failed launches (printed).
int check_case(const Case& c) {
  const std::string id = case_id(c);
  tools::Rng rng(c.seed);
  std::vector<std::int64_t> ids;
  std::vector<std::int32_t> map;
  make_ids(c, rng, &ids, &map);
  std::vector<std::uint8_t> id_bytes(std::max<std::size_t>(ids.size() * (c.ids64 ? 8 : 4), 8));
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (c.ids64) {
      std::memcpy(id_bytes.data() + i * 8, &ids[i], 8);
    } else {
      const auto v = static_cast<std::int32_t>(ids[i]);
      std::memcpy(id_bytes.data() + i * 4, &v, 4);
    }
  }
  // [tokens, top_k]: the largest top_k of 8, 6, 4, 2, 1 that divides the slots.
  std::int64_t K = 1;
  for (std::int64_t k : {8, 6, 4, 2}) {
    if (c.n % k == 0) {
      K = k;
      break;
    }
  }
  const TensorView id_view = TensorView::contiguous(
      id_bytes.data(), c.ids64 ? DType::kInt64 : DType::kInt32, {c.n / K, K});
  if (map.empty()) map.push_back(0);  // a defined pointer; unused without the view
  const TensorView map_view = c.pattern == Pattern::kMapped
                                  ? TensorView::contiguous(map.data(), DType::kInt32,
                                                           {static_cast<std::int64_t>(map.size())})
                                  : TensorView{};

  SortParams p;
  p.ids = id_bytes.data();
  p.ids_int64 = c.ids64;
  p.num_slots = c.n;
  p.expert_map = c.pattern == Pattern::kMapped ? map.data() : nullptr;
  p.map_size = c.pattern == Pattern::kMapped ? static_cast<std::int64_t>(map.size()) : 0;
  p.num_experts = c.E;
  p.pad = c.pad;
  int failures = 0;
  const auto fail = [&](const std::string& what, const char* buffer, std::int64_t at, long long got,
                        long long want) {
    std::printf("FAIL %s [%s]: %s[%lld] = %lld, want %lld\n", id.c_str(), what.c_str(), buffer,
                static_cast<long long>(at), got, want);
    ++failures;
  };
  const auto fail_guard = [&](const std::string& what) {
    std::printf("FAIL %s [%s]: a write out of bounds (a guard element lost its poison)\n",
                id.c_str(), what.c_str());
    ++failures;
  };

  if (!c.layout) {
    AlignParams ap;
    ap.num_experts = c.E;
    ap.block_size = c.pad;
    const std::int64_t padded = align_max_padded(c.n, c.E, c.pad) + c.extra;
    const std::int64_t blocks = align_max_blocks(c.n, c.E, c.pad) + c.extra;
    std::vector<std::int32_t> sorted(static_cast<std::size_t>(padded)),
        bexp(static_cast<std::size_t>(blocks)), post(1);
    AlignArgs a;
    a.top_k_ids = id_view;
    a.expert_map = map_view;
    a.sorted_token_ids = TensorView::contiguous(sorted.data(), DType::kInt32, {padded});
    a.expert_ids = TensorView::contiguous(bexp.data(), DType::kInt32, {blocks});
    a.num_tokens_post_pad = TensorView::contiguous(post.data(), DType::kInt32, {1});
    if (Status st = moe_align_block_size_cpu(ap, a); !st.ok()) {
      std::printf("FAIL %s: moe_align_block_size_cpu: %s\n", id.c_str(), st.to_string().c_str());
      return 1;
    }
    Out<std::int32_t> gs, gb, gp;
    p.output = SortOutput::kAlign;
    p.sorted_numel = padded;
    p.block_experts_numel = blocks;
    for (const Launch& l : launches(p, rng)) {
      gs.init(padded, c.misalign, 0x5a);
      gb.init(blocks, c.misalign, 0x5b);
      gp.init(1, 0, 0x5c);
      p.sorted_ids = gs.data;
      p.block_experts = gb.data;
      p.post_pad = gp.data;
      run(l, p);
      const std::string what =
          l.what + " " + std::to_string(l.grid) + "x" + std::to_string(l.block);
      if (!gs.intact() || !gb.intact() || !gp.intact()) fail_guard(what);
      if (gp.get() != post) fail(what, "num_tokens_post_pad", 0, gp.get()[0], post[0]);
      if (std::int64_t i = first_diff(gb.get(), bexp); i >= 0)
        fail(what, "expert_ids", i, gb.get()[static_cast<std::size_t>(i)],
             bexp[static_cast<std::size_t>(i)]);
      if (std::int64_t i = first_diff(gs.get(), sorted); i >= 0)
        fail(what, "sorted_token_ids", i, gs.get()[static_cast<std::size_t>(i)],
             sorted[static_cast<std::size_t>(i)]);
    }
  } else {
    ExpertLayoutParams lp;
    lp.num_experts = c.E;
    lp.alignment = c.pad;
    const std::int64_t R = layout_max_rows(lp, c.n) + c.extra;
    std::vector<std::int32_t> counts(static_cast<std::size_t>(c.E));
    std::vector<std::int64_t> offsets(static_cast<std::size_t>(c.E) + 1),
        s2d(static_cast<std::size_t>(std::max<std::int64_t>(c.n, 1))),
        d2s(static_cast<std::size_t>(std::max<std::int64_t>(R, 1))), overflow(1, 77);
    ExpertLayoutArgs a;
    a.top_k_ids = id_view;
    a.expert_map = map_view;
    a.expert_counts = TensorView::contiguous(counts.data(), DType::kInt32, {c.E});
    a.expert_offsets = TensorView::contiguous(offsets.data(), DType::kInt64, {c.E + 1});
    a.src_to_dst = TensorView::contiguous(s2d.data(), DType::kInt64, {c.n});
    a.dst_to_src = TensorView::contiguous(d2s.data(), DType::kInt64, {R});
    if (c.with_overflow) a.overflow = TensorView::contiguous(overflow.data(), DType::kInt64, {1});
    if (Status st = expert_layout_cpu(lp, a); !st.ok()) {
      std::printf("FAIL %s: expert_layout_cpu: %s\n", id.c_str(), st.to_string().c_str());
      return 1;
    }
    s2d.resize(static_cast<std::size_t>(c.n));
    d2s.resize(static_cast<std::size_t>(R));
    Out<std::int32_t> gc;
    Out<std::int64_t> go, gs, gd, gv;
    p.output = SortOutput::kContiguous;
    p.dst_numel = R;
    for (const Launch& l : launches(p, rng)) {
      gc.init(c.E, c.misalign, 0x6a);
      go.init(c.E + 1, c.misalign, 0x6b);
      gs.init(c.n, c.misalign, 0x6c);
      gd.init(R, c.misalign, 0x6d);
      gv.init(1, 0, 0x6e);
      p.counts = gc.data;
      p.offsets = go.data;
      p.src_to_dst = gs.data;
      p.dst_to_src = gd.data;
      p.overflow = c.with_overflow ? gv.data : nullptr;
      run(l, p);
      const std::string what =
          l.what + " " + std::to_string(l.grid) + "x" + std::to_string(l.block);
      if (!gc.intact() || !go.intact() || !gs.intact() || !gd.intact() || !gv.intact())
        fail_guard(what);
      if (c.with_overflow && gv.get() != overflow)
        fail(what, "overflow", 0, gv.get()[0], overflow[0]);
      if (!c.with_overflow) {
        std::int64_t poison;
        std::memset(&poison, 0x6e, 8);
        if (gv.get()[0] != poison) fail(what, "overflow (absent, written)", 0, gv.get()[0], poison);
      }
      if (std::int64_t i = first_diff(gc.get(), counts); i >= 0)
        fail(what, "expert_counts", i, gc.get()[static_cast<std::size_t>(i)],
             counts[static_cast<std::size_t>(i)]);
      if (std::int64_t i = first_diff(go.get(), offsets); i >= 0)
        fail(what, "expert_offsets", i, go.get()[static_cast<std::size_t>(i)],
             offsets[static_cast<std::size_t>(i)]);
      if (std::int64_t i = first_diff(gs.get(), s2d); i >= 0)
        fail(what, "src_to_dst", i, gs.get()[static_cast<std::size_t>(i)],
             s2d[static_cast<std::size_t>(i)]);
      if (std::int64_t i = first_diff(gd.get(), d2s); i >= 0)
        fail(what, "dst_to_src", i, gd.get()[static_cast<std::size_t>(i)],
             d2s[static_cast<std::size_t>(i)]);
    }
  }
  return failures;
}

// Seeded random cases, plus the edges listed first.
std::vector<Case> make_cases(int count, std::uint64_t seed) {
  std::vector<Case> cases;
  tools::Rng rng(seed);
  static const std::int32_t kExperts[] = {1,   2,    3,    7,    8,    31,   32,   33,
                                          64,  160,  255,  256,  257,  384,  511,  512,
                                          513, 1000, 1024, 4096, 8191, 8192, 16384};
  static const std::int32_t kBlocks[] = {16, 17, 31, 32, 33, 48, 64, 100, 128, 129, 192, 255, 256};
  static const std::int32_t kAlignments[] = {1,  2,  3,  7,   8,   16,  31,   32,
                                             33, 48, 64, 100, 128, 256, 1000, 1024};
  const auto pick = [&](const auto& arr) { return arr[rng.below(sizeof arr / sizeof arr[0])]; };
  // Edges: DeepSeek-V3 decode (1 token, E 256, B 64), every N at E 256, E = 1, the largest outputs.
  for (std::int64_t n = 0; n <= 64; ++n) {
    cases.push_back({n, 256, 64, false, n % 2 == 1, Pattern::kUniform, false, 0, 0,
                     1000 + static_cast<std::uint64_t>(n)});
    cases.push_back({n, 256, 1, true, n % 2 == 0, Pattern::kUniform, true, 0, 0,
                     2000 + static_cast<std::uint64_t>(n)});
  }
  cases.push_back({8, 1, 16, false, false, Pattern::kUniform, false, 3, 1, 11});
  cases.push_back({32, 1, 16, false, true, Pattern::kInvalid, false, 0, 2, 12});
  cases.push_back({32, 1, 1024, true, false, Pattern::kUniform, true, 1, 1, 13});
  cases.push_back({32, 16384, 256, false, true, Pattern::kUniform, false, 0, 3, 14});
  cases.push_back({32, 16384, 1024, true, true, Pattern::kMapped, true, 0, 1, 15});
  cases.push_back({32, 64, 16, false, false, Pattern::kHot, false, 0, 0, 16});  // nb = 2 blocks
  cases.push_back({32, 64, 1, true, false, Pattern::kFewExperts, false, 0, 0, 17});
  // The block kernel's sizes: DeepSeek-V3 at 32 tokens, every group boundary, the largest N.
  for (std::int64_t n : {33, 63, 64, 65, 100, 128, 255, 256}) {
    cases.push_back({n, 256, 64, false, n % 2 == 1, Pattern::kUniform, false, 0, 0,
                     3000 + static_cast<std::uint64_t>(n)});
    cases.push_back({n, 256, 1, true, n % 2 == 0, Pattern::kHot, true, 0, 1,
                     4000 + static_cast<std::uint64_t>(n)});
  }
  cases.push_back({256, 16384, 256, false, true, Pattern::kInvalid, false, 2, 3, 18});
  cases.push_back({256, 1, 16, true, false, Pattern::kMapped, true, 0, 1, 19});
  // The cluster kernel's sizes: DeepSeek-V3, Kimi K2 and Mixtral shapes up to 512 tokens, every
  // block boundary, odd E, one hot expert, the expert map.
  for (std::int64_t n : {257, 511, 512, 513, 1024, 2047, 4095, 4096}) {
    cases.push_back({n, 256, 64, false, n % 2 == 1, Pattern::kUniform, false, 0, 0,
                     5000 + static_cast<std::uint64_t>(n)});
    cases.push_back({n, 384, 1, true, n % 2 == 0, Pattern::kHot, true, 0, 1,
                     6000 + static_cast<std::uint64_t>(n)});
  }
  cases.push_back({1024, 8, 64, false, false, Pattern::kUniform, false, 0, 0, 20});
  cases.push_back({4096, 512, 16, false, true, Pattern::kHot, false, 1, 2, 21});
  cases.push_back({4096, 511, 128, true, false, Pattern::kMapped, true, 0, 1, 22});
  cases.push_back({3000, 3, 100, false, false, Pattern::kInvalid, false, 0, 3, 23});
  cases.push_back({2500, 160, 1, true, true, Pattern::kFewExperts, false, 3, 0, 24});
  cases.push_back({4096, 1, 256, false, false, Pattern::kAllDropped, false, 0, 1, 25});
  // The small kernel's chunked and clustered instances: 33..512 steps of 512 slots.
  cases.push_back({16385, 256, 64, false, false, Pattern::kUniform, false, 0, 0, 29});
  cases.push_back({40000, 384, 128, true, true, Pattern::kHot, false, 0, 1, 30});
  cases.push_back({65536, 3, 48, false, false, Pattern::kMapped, true, 0, 3, 31});
  cases.push_back({60001, 512, 16, true, false, Pattern::kUniform, false, 1, 1, 32});
  cases.push_back({100000, 256, 64, false, true, Pattern::kHot, false, 0, 2, 33});
  cases.push_back({140001, 384, 32, true, false, Pattern::kMapped, true, 0, 1, 34});
  // The few-experts kernel's sizes: Mixtral (E 8, top-2) up to 512 tokens, E up to 32.
  for (std::int64_t n : {65, 128, 500, 1023, 1024}) {
    cases.push_back({n, 8, 64, false, n % 2 == 1, Pattern::kUniform, false, 0, 0,
                     7000 + static_cast<std::uint64_t>(n)});
    cases.push_back({n, 32, 1, true, n % 2 == 0, Pattern::kHot, true, 0, 1,
                     8000 + static_cast<std::uint64_t>(n)});
    cases.push_back({n, 17, 48, false, false, Pattern::kMapped, false, 2, 3,
                     9000 + static_cast<std::uint64_t>(n)});
  }
  cases.push_back({1024, 1, 16, false, true, Pattern::kInvalid, false, 0, 1, 26});
  cases.push_back({700, 3, 7, true, false, Pattern::kFewExperts, true, 1, 0, 27});
  while (static_cast<int>(cases.size()) < count) {
    Case c;
    // One case in 8 up to 4096 slots (E <= 512: the cluster kernel's range).
    const std::uint64_t r = rng.below(8);
    c.n = static_cast<std::int64_t>(r == 0  ? 257 + rng.below(3840)
                                    : r < 4 ? rng.below(65)
                                            : rng.below(257));
    c.E = pick(kExperts);
    c.layout = rng.below(2) == 1;
    c.pad = c.layout ? pick(kAlignments) : pick(kBlocks);
    c.ids64 = rng.below(2) == 1;
    c.pattern = static_cast<Pattern>(rng.below(kPatterns));
    c.with_overflow = rng.below(2) == 1;
    c.extra = rng.below(3) == 0 ? static_cast<std::int64_t>(rng.below(9)) : 0;
    c.misalign = static_cast<std::int64_t>(rng.below(c.layout ? 2 : 4));
    c.seed = rng.next_u64();
    // Keep the emulated fills quick: large E with large pads only now and then.
    if (c.E >= 4096 && c.pad > 64 && rng.below(4) != 0)
      c.pad = 16 + static_cast<std::int32_t>(rng.below(49));
    if (c.n > 256)
      c.E = 1 + static_cast<std::int32_t>(rng.below(2) == 0 ? rng.below(32) : rng.below(512));
    cases.push_back(c);
  }
  return cases;
}

}  // namespace

int main(int argc, char** argv) {
  const int count = argc > 1 ? std::atoi(argv[1]) : 400;
  const std::uint64_t seed = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 20261128;
  emu::stack_bytes = 64 * 1024;
  int failed_cases = 0;
  const std::vector<Case> cases = make_cases(count, seed);
  for (const Case& c : cases) {
    const int f = check_case(c);
    failed_cases += f > 0;
  }
  std::printf(
      "align_warp_emu: %zu cases (%lld warp-kernel, %lld block-kernel, %lld cluster-kernel, %lld "
      "replicated-cluster-kernel, %lld few-experts-kernel and %lld small-kernel launches), %d "
      "failed\n",
      cases.size(), g_warp_launches, g_block_launches, g_cluster_launches, g_repl_launches,
      g_few_launches, g_small_launches, failed_cases);
  return failed_cases == 0 ? 0 : 1;
}
