// A minimal SIMT emulator for running CUDA kernel code on the host (built by the tests'
// CMakeLists for routing_row_block_emu): each CUDA thread of a block is a ucontext fiber on one OS
// thread; warp collectives and block barriers rendezvous by yielding; blocks run one after another,
// so `__shared__` variables (thread_local here) are shared by the block. Partial masks (lane
// groups) rendezvous among their own lanes; the executing lane must be in the mask. Include it
// before the kernel header and compile the kernel code as host C++ (exact_math.h then takes its
// host paths, which give the device's bits by design). Build with -fno-extern-tls-init when the
// kernel declares `extern __shared__` memory. Used by routing_row_block_emu.cpp, permute_emu.cpp
// and align_warp_emu.cpp (the last also puts tools/simt_emu/include first on its include path: a
// <cooperative_groups.h> stub, so that kernels/align.cuh parses; a grid sync there throws).
// `launch_cluster` runs one thread block cluster: every block's threads are fibers at once, each
// block with its own warps, barrier and dynamic shared memory (`block_smem()`; kernel code reaches
// it through a pointer, since `__shared__` variables here are one per OS thread), and the cluster
// barrier (split arrive / wait) and distributed shared memory of kernels/cluster.cuh. Kernel code
// sees SY_SIMT_EMU defined.
#pragma once
#include <ucontext.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <stdexcept>
#include <type_traits>
#include <vector>

#define SY_SIMT_EMU 1
#define __device__
#define __host__
#define __global__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ thread_local  // one OS thread runs every fiber: shared by the block
#define __restrict__
#define __align__(n) __attribute__((aligned(n)))

struct dim3 {
  unsigned x = 1, y = 1, z = 1;
};
struct uint2 {
  unsigned x, y;
};
struct uint4 {
  unsigned x, y, z, w;
};
struct float4 {
  float x, y, z, w;
};
struct int4 {
  int x, y, z, w;
};
struct longlong2 {
  long long x, y;
};
inline int4 make_int4(int a, int b, int c, int d) {
  return {a, b, c, d};
}
inline longlong2 make_longlong2(long long a, long long b) {
  return {a, b};
}
inline uint2 make_uint2(unsigned a, unsigned b) {
  return {a, b};
}
inline uint4 make_uint4(unsigned a, unsigned b, unsigned c, unsigned d) {
  return {a, b, c, d};
}

inline dim3 threadIdx, blockIdx, blockDim, gridDim;

namespace emu {
// What kernel code's dynamic_smem_bytes() (kernels/routing.cuh) returns: the dynamic shared
// memory the runner says its launch has (the storage itself is the runner's thread_local arrays).
inline unsigned dynamic_smem_bytes = 0;
struct Fiber {
  ucontext_t ctx;
  std::vector<char> stack;
  bool done = false;
  unsigned tid = 0;
};
// Fiber stack bytes (a test with many small fibers may lower it before launching).
inline std::size_t stack_bytes = 256 * 1024;
struct Sched {
  ucontext_t main;
  std::vector<Fiber> fibers;
  int cur = -1;
  std::function<void()> body;
};
inline Sched S;
inline void yield() {
  swapcontext(&S.fibers[S.cur].ctx, &S.main);
}
inline void trampoline() {
  S.body();
  S.fibers[S.cur].done = true;
  swapcontext(&S.fibers[S.cur].ctx, &S.main);
}
struct Rendezvous {
  int arrived = 0, gen = 0;
  void wait(int n) {
    const int g = gen;
    if (++arrived == n) {
      arrived = 0;
      ++gen;
    } else {
      while (gen == g) yield();
    }
  }
};
struct WarpState {
  Rendezvous r;
  std::map<unsigned, Rendezvous> groups;  // partial masks
  std::uint64_t vals[32];
  int kinds[32];
};
inline std::vector<WarpState> warps;
inline Rendezvous block_r;
inline std::vector<int> block_preds;
// The running block's state: the globals above, or (launch_cluster) that block's own.
inline std::vector<WarpState>* warps_p = &warps;
inline Rendezvous* block_r_p = &block_r;
inline std::vector<int>* block_preds_p = &block_preds;
inline unsigned lane() {
  return threadIdx.x & 31u;
}
inline WarpState& W() {
  return (*warps_p)[threadIdx.x >> 5];
}

// Runs the body on every thread of every block, one block at a time (x fastest, then y; `reverse`:
// the last block first); `before_block` (optional) runs before each block (e.g. to poison shared
// memory).
inline void launch(dim3 grid, unsigned block, const std::function<void()>& body,
                   const std::function<void()>& before_block = {}, bool reverse = false) {
  if (block % 32 != 0) throw std::runtime_error("block must be whole warps");
  if (grid.z != 1) throw std::runtime_error("emulator: 1-D and 2-D grids only");
  S.body = body;
  blockDim = dim3{block, 1, 1};
  gridDim = grid;
  for (unsigned i = 0; i < grid.x * grid.y; ++i) {
    const unsigned b = reverse ? grid.x * grid.y - 1 - i : i;
    blockIdx = dim3{b % grid.x, b / grid.x, 0};
    if (before_block) before_block();
    S.fibers.assign(block, Fiber{});
    warps.assign(block / 32, WarpState{});
    block_r = Rendezvous{};
    block_preds.assign(block, 0);
    for (unsigned t = 0; t < block; ++t) {
      Fiber& f = S.fibers[t];
      f.tid = t;
      f.stack.resize(stack_bytes);
      getcontext(&f.ctx);
      f.ctx.uc_stack.ss_sp = f.stack.data();
      f.ctx.uc_stack.ss_size = f.stack.size();
      f.ctx.uc_link = nullptr;
      makecontext(&f.ctx, trampoline, 0);
    }
    for (;;) {
      bool any = false;
      for (unsigned t = 0; t < block; ++t) {
        if (S.fibers[t].done) continue;
        any = true;
        S.cur = static_cast<int>(t);
        threadIdx.x = t;
        swapcontext(&S.main, &S.fibers[t].ctx);
      }
      if (!any) break;
    }
  }
}
inline void launch(unsigned grid, unsigned block, const std::function<void()>& body,
                   const std::function<void()>& before_block = {}) {
  launch(dim3{grid, 1, 1}, block, body, before_block);
}

// One thread block cluster of `grid` blocks (1-D grid = the cluster), all resident at once.
struct ClusterState {
  unsigned blocks = 0, block = 0;
  std::vector<std::vector<WarpState>> warps;
  std::vector<Rendezvous> barriers;
  std::vector<std::vector<int>> preds;
  std::vector<std::vector<unsigned char>> smem;  // 16-byte aligned use: see block_smem()
  std::vector<int> phase;                        // per thread: cluster barrier phase
  std::vector<char> arrived;                     // per thread: arrived in its phase
  std::map<int, int> arrivals;                   // phase -> threads arrived
  // mbarriers in the blocks' dynamic shared memory (cluster_push_*), by (block, byte offset).
  struct Mbar {
    int count = 0, pending = 0;
    long long tx = 0;
    unsigned phase = 0;  // completed phases
  };
  std::map<std::pair<unsigned, std::ptrdiff_t>, Mbar> mbars;
};
inline ClusterState C;
inline unsigned cur_block = 0;
inline unsigned char* block_smem() {
  auto& v = C.smem[cur_block];
  auto a = reinterpret_cast<std::uintptr_t>(v.data());
  return v.data() + (16 - a % 16) % 16;
}
inline unsigned cluster_thread() {
  return cur_block * C.block + threadIdx.x;
}
inline void cluster_arrive() {
  const unsigned t = cluster_thread();
  if (C.arrived[t]) throw std::runtime_error("emulator: cluster arrive twice without a wait");
  C.arrived[t] = 1;
  ++C.arrivals[C.phase[t]];
}
inline void cluster_wait() {
  const unsigned t = cluster_thread();
  if (!C.arrived[t]) throw std::runtime_error("emulator: cluster wait without an arrive");
  const int ph = C.phase[t];
  const int n = static_cast<int>(C.blocks * C.block);
  while (C.arrivals[ph] < n) yield();
  C.arrived[t] = 0;
  ++C.phase[t];
}
template <typename T>
T* cluster_map(T* p, unsigned rank) {
  if (rank >= C.blocks) throw std::runtime_error("emulator: cluster rank out of range");
  const auto off =
      reinterpret_cast<unsigned char*>(const_cast<std::remove_cv_t<T>*>(p)) - block_smem();
  if (off < 0 || static_cast<std::size_t>(off) + sizeof(T) > C.smem[rank].size() - 16)
    throw std::runtime_error("emulator: cluster_map of a pointer outside dynamic shared memory");
  auto& v = C.smem[rank];
  auto a = reinterpret_cast<std::uintptr_t>(v.data());
  return reinterpret_cast<T*>(v.data() + (16 - a % 16) % 16 + off);
}
// The cluster_push_* primitives of kernels/cluster.cuh: an mbarrier with one arrival per phase and
// a transaction count; a push writes the peer's word at once and counts its 4 bytes on the peer's
// mbarrier, which must have been initialised (else the kernel lacks the cluster barrier between
// the init and the first push).
inline std::ptrdiff_t smem_offset(const void* p) {
  const auto off = static_cast<const unsigned char*>(p) - block_smem();
  if (off < 0 || static_cast<std::size_t>(off) + 8 > C.smem[cur_block].size() - 16)
    throw std::runtime_error("emulator: mbarrier outside dynamic shared memory");
  return off;
}
inline ClusterState::Mbar& mbar_at(unsigned block, std::ptrdiff_t off) {
  const auto it = C.mbars.find({block, off});
  if (it == C.mbars.end()) throw std::runtime_error("emulator: mbarrier used before its init");
  return it->second;
}
inline void mbar_settle(ClusterState::Mbar& m) {
  if (m.pending == 0 && m.tx == 0) {
    ++m.phase;
    m.pending = m.count;
  }
}
inline void cluster_push_init(std::uint64_t* bar) {
  C.mbars[{cur_block, smem_offset(bar)}] = ClusterState::Mbar{1, 1, 0, 0};
}
inline void cluster_push(std::uint32_t* dst, unsigned rank, std::uint32_t v, std::uint64_t* bar) {
  *const_cast<std::uint32_t*>(cluster_map(dst, rank)) = v;
  ClusterState::Mbar& m = mbar_at(rank, smem_offset(bar));
  m.tx -= 4;
  mbar_settle(m);
}
inline void cluster_push_expect(std::uint64_t* bar, std::uint32_t bytes) {
  ClusterState::Mbar& m = mbar_at(cur_block, smem_offset(bar));
  if (m.pending <= 0)
    throw std::runtime_error("emulator: mbarrier arrive without a pending arrival");
  m.tx += bytes;
  --m.pending;
  mbar_settle(m);
}
inline void cluster_push_wait(std::uint64_t* bar, std::uint32_t parity) {
  const std::ptrdiff_t off = smem_offset(bar);
  // Every fiber runs to its next synchronisation point between two yields, so a phase that a
  // correct kernel completes does so within a few rounds; thousands mean it never will.
  for (int rounds = 0; (mbar_at(cur_block, off).phase & 1u) == (parity & 1u); ++rounds) {
    if (rounds > 4096) throw std::runtime_error("emulator: an mbarrier phase never completes");
    yield();
  }
}
// Runs the body on every thread of `grid` blocks of `block` threads as clusters of `cluster`
// blocks (0: the whole grid is one cluster), one cluster after another, with `smem_bytes` of
// dynamic shared memory per block (filled with `poison`).
inline void launch_one_cluster(unsigned base, unsigned cluster, unsigned block,
                               std::size_t smem_bytes, unsigned char poison);
inline void launch_cluster(unsigned grid, unsigned block, std::size_t smem_bytes,
                           const std::function<void()>& body, unsigned char poison = 0xa5,
                           unsigned cluster = 0) {
  if (block % 32 != 0) throw std::runtime_error("block must be whole warps");
  if (cluster == 0) cluster = grid;
  if (grid % cluster != 0) throw std::runtime_error("emulator: grid not a multiple of the cluster");
  S.body = body;
  blockDim = dim3{block, 1, 1};
  gridDim = dim3{grid, 1, 1};
  for (unsigned base = 0; base < grid; base += cluster)
    launch_one_cluster(base, cluster, block, smem_bytes, poison);
}
// One cluster of launch_cluster: blocks base .. base + cluster - 1 of the grid.
inline void launch_one_cluster(unsigned base, unsigned cluster, unsigned block,
                               std::size_t smem_bytes, unsigned char poison) {
  C = ClusterState{};
  C.blocks = cluster;
  C.block = block;
  C.warps.assign(cluster, std::vector<WarpState>(block / 32));
  C.barriers.assign(cluster, Rendezvous{});
  C.preds.assign(cluster, std::vector<int>(block, 0));
  C.smem.assign(cluster, std::vector<unsigned char>(smem_bytes + 16, poison));
  C.phase.assign(static_cast<std::size_t>(cluster) * block, 0);
  C.arrived.assign(static_cast<std::size_t>(cluster) * block, 0);
  const std::size_t n = static_cast<std::size_t>(cluster) * block;
  // Fiber stacks kept from one cluster launch to the next (thousands of them).
  static std::vector<std::vector<char>> stacks;
  if (stacks.size() < n) stacks.resize(n);
  S.fibers.assign(n, Fiber{});
  for (std::size_t i = 0; i < n; ++i) {
    Fiber& f = S.fibers[i];
    f.tid = static_cast<unsigned>(i);
    if (stacks[i].size() != stack_bytes) stacks[i].assign(stack_bytes, 0);
    getcontext(&f.ctx);
    f.ctx.uc_stack.ss_sp = stacks[i].data();
    f.ctx.uc_stack.ss_size = stacks[i].size();
    f.ctx.uc_link = nullptr;
    makecontext(&f.ctx, trampoline, 0);
  }
  for (;;) {
    bool any = false;
    for (std::size_t i = 0; i < n; ++i) {
      if (S.fibers[i].done) continue;
      any = true;
      S.cur = static_cast<int>(i);
      cur_block = static_cast<unsigned>(i / block);
      blockIdx = dim3{base + cur_block, 0, 0};
      threadIdx.x = static_cast<unsigned>(i % block);
      warps_p = &C.warps[cur_block];
      block_r_p = &C.barriers[cur_block];
      block_preds_p = &C.preds[cur_block];
      swapcontext(&S.main, &S.fibers[i].ctx);
    }
    if (!any) break;
  }
  warps_p = &warps;
  block_r_p = &block_r;
  block_preds_p = &block_preds;
  for (std::size_t i = 0; i < n; ++i) {
    if (C.arrived[i])
      throw std::runtime_error("emulator: a thread left with a cluster arrive pending");
  }
  for (const auto& [key, m] : C.mbars) {
    if (m.tx != 0 || m.pending != m.count)
      throw std::runtime_error("emulator: an mbarrier left with bytes or an arrival pending");
  }
}

template <typename T>
std::uint64_t bits(T v) {
  static_assert(sizeof(T) <= 8);
  std::uint64_t u = 0;
  std::memcpy(&u, &v, sizeof(T));
  return u;
}
template <typename T>
T from_bits(std::uint64_t u) {
  T v;
  std::memcpy(&v, &u, sizeof(T));
  return v;
}
// Publishes v, waits for the warp, returns a snapshot, waits again. `kind` names the collective:
// lanes meeting in different collectives (divergent warp code, undefined on a GPU) throw.
// Lanes outside `mask` read as 0 in `out`.
inline void exchange(std::uint64_t v, std::uint64_t (&out)[32], int kind = 0,
                     unsigned mask = 0xffffffffu) {
  WarpState& w = W();
  Rendezvous& r = mask == 0xffffffffu ? w.r : w.groups[mask];
  const int n = __builtin_popcount(mask);
  w.vals[lane()] = v;
  w.kinds[lane()] = kind;
  r.wait(n);
  for (int i = 0; i < 32; ++i) {
    out[i] = (mask >> i) & 1u ? w.vals[i] : 0u;
    if (((mask >> i) & 1u) && w.kinds[i] != kind) {
      throw std::runtime_error("emulator: lanes of a warp in different collectives");
    }
  }
  r.wait(n);
}
inline void check_mask(unsigned mask) {
  if (!((mask >> lane()) & 1u)) throw std::runtime_error("emulator: lane not in its mask");
}
}  // namespace emu

template <typename T>
T __shfl_sync(unsigned mask, T v, int src, int width = 32) {
  emu::check_mask(mask);
  std::uint64_t all[32];
  emu::exchange(emu::bits(v), all, 1, mask);
  const int l = static_cast<int>(emu::lane());
  const int s = (l / width) * width + (src % width);
  return emu::from_bits<T>(all[s]);
}
template <typename T>
T __shfl_up_sync(unsigned mask, T v, unsigned d, int width = 32) {
  emu::check_mask(mask);
  std::uint64_t all[32];
  emu::exchange(emu::bits(v), all, 6, mask);
  const int l = static_cast<int>(emu::lane());
  const int s = l - static_cast<int>(d);
  return emu::from_bits<T>(s >= (l / width) * width ? all[s] : all[l]);
}
template <typename T>
T __shfl_xor_sync(unsigned mask, T v, int m, int width = 32) {
  emu::check_mask(mask);
  std::uint64_t all[32];
  emu::exchange(emu::bits(v), all, 2, mask);
  const int l = static_cast<int>(emu::lane());
  int s = l ^ m;
  if (s / width != l / width) s = l;
  return emu::from_bits<T>(all[s]);
}
inline unsigned __ballot_sync(unsigned mask, bool p) {
  emu::check_mask(mask);
  std::uint64_t all[32];
  emu::exchange(p ? 1u : 0u, all, 3, mask);
  unsigned b = 0;
  for (int i = 0; i < 32; ++i) b |= all[i] ? (1u << i) : 0u;
  return b;
}
inline unsigned __reduce_max_sync(unsigned mask, unsigned v) {
  emu::check_mask(mask);
  std::uint64_t all[32];
  emu::exchange(v, all, 4, mask);
  unsigned m = 0;
  for (auto x : all) m = static_cast<unsigned>(x) > m ? static_cast<unsigned>(x) : m;
  return m;
}
inline unsigned __reduce_min_sync(unsigned mask, unsigned v) {
  emu::check_mask(mask);
  std::uint64_t all[32];
  emu::exchange(v, all, 5, mask);
  unsigned m = 0xffffffffu;
  for (int i = 0; i < 32; ++i) {
    if ((mask >> i) & 1u) m = static_cast<unsigned>(all[i]) < m ? static_cast<unsigned>(all[i]) : m;
  }
  return m;
}
inline unsigned __reduce_add_sync(unsigned mask, unsigned v) {
  emu::check_mask(mask);
  std::uint64_t all[32];
  emu::exchange(v, all, 7, mask);
  unsigned m = 0;
  for (auto x : all) m += static_cast<unsigned>(x);
  return m;
}
inline void __syncwarp(unsigned mask = 0xffffffffu) {
  emu::check_mask(mask);
  emu::WarpState& w = emu::W();
  (mask == 0xffffffffu ? w.r : w.groups[mask]).wait(__builtin_popcount(mask));
}
inline void __syncthreads() {
  emu::block_r_p->wait(static_cast<int>(blockDim.x));
}
inline int __syncthreads_or(int p) {
  (*emu::block_preds_p)[threadIdx.x] = p;
  __syncthreads();
  int any = 0;
  for (int x : *emu::block_preds_p) any |= x != 0;
  __syncthreads();
  return any;
}
inline int __popc(unsigned v) {
  return __builtin_popcount(v);
}
inline int __ffs(unsigned v) {
  return __builtin_ffs(static_cast<int>(v));
}
inline int atomicAdd(int* p, int v) {
  const int old = *p;
  *p = old + v;
  return old;
}
inline unsigned atomicOr(unsigned* p, unsigned v) {
  const unsigned old = *p;
  *p = old | v;
  return old;
}
inline unsigned long long atomicAdd(unsigned long long* p, unsigned long long v) {
  const unsigned long long old = *p;
  *p = old + v;
  return old;
}
inline int __clz(int v) {
  return v == 0 ? 32 : __builtin_clz(static_cast<unsigned>(v));
}
template <typename T>
T __ldg(const T* p) {
  return *p;
}
template <typename T>
void __stcs(T* p, T v) {  // streaming store: a plain store here
  *p = v;
}
inline long long clock64() {
  return 0;
}
inline int max(int a, int b) {
  return a > b ? a : b;
}
inline int min(int a, int b) {
  return a < b ? a : b;
}
inline std::int64_t max(std::int64_t a, std::int64_t b) {
  return a > b ? a : b;
}
inline std::int64_t min(std::int64_t a, std::int64_t b) {
  return a < b ? a : b;
}
inline float __fmaf_rn(float a, float b, float c) {  // IEEE fma, one rounding (as exact_fma)
  return std::fma(a, b, c);
}
