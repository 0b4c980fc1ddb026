// Decode path of the fused MoE forward: for few rows per expert, stream each hit expert's weights
// once at full HBM bandwidth ("swap-AB": weight rows are the MMA's M side, the expert's token rows
// its N side, so an m16n8k16 tensor-core MMA serves 1..8 tokens per 8-column tile).
//
// Work decomposition (no host synchronisation: the grid is sized from M*K and E only):
//   blockIdx.x = work item: (expert, up to kTokens = 8 * kTiles of its layout rows), numbered in
//                expert order; a CTA finds its item from the device-side offsets (one warp scans
//                ceil(count/kTokens) over the experts). Items past the last exit at once. With
//                slot items (one token) item i is slot i itself and no layout kernel runs first.
//   blockIdx.y = a block of 32 outputs (two warps along N, 16 outputs each: for gated activations
//                a warp owns the gate AND up rows of its 16 outputs, so the activation is fused),
//                or blocks_per_cta of them.
//   Or the balanced grid (DecodeParams::balanced): as many CTAs as are resident, CTA c taking
//                units [c U / G, (c + 1) U / G) of the U = items x column blocks (items from the
//                offsets, or the slots), so no partial last wave of whole CTAs (session 31).
//   A CTA's consecutive column blocks of one item are pipelined: the next block's weight loads
//                are issued before this block's split-k reduction and epilogue.
//   4 warps along k: each takes every 4th 64-wide k chunk (neighbouring warps read neighbouring
//                512-byte pieces of a weight row); partial sums are added through shared memory in
//                a fixed order ((warp 0 + warp 2) + (warp 1 + warp 3): two halving steps, so the
//                buffer holds two warps' partials and 8 tiles of gated accumulators fit in 32 KB),
//                so results are deterministic.
// Loads: every thread reads two 16-byte vectors per weight row and per token row per chunk
// (weights with ld.global.nc.L1::no_allocate: streamed once). The k order inside a 64-wide chunk
// is permuted identically for both operands (a dot product does not care): thread t of a quad
// holds elements [16t, 16t+16) of the chunk and feeds 4 of them to each of the 4 MMA k-steps, so
// the fragments come straight from the 16-byte loads with no shuffles or shared memory. The deep
// instance (GEMM2 of a short k) holds [8t, 8t+8) and [32+8t, 40+8t) instead, so that a quad's
// load instruction reads whole 32-byte sectors of a row rather than half of each of four: H200,
// interleaved (session 9), Qwen3-30B 1 / 2 / 4 / 8 tokens 27.4 / 52.9 / 84.5 / 148.6 -> 27.1 /
// 51.6 / 80.7 / 143.0 us; the same order in every instance made DeepSeek-V3 and Mixtral 5-6%
// slower. Epilogue (warp 0 of each k group): bias, activation in float32, one rounding, scattered
// stores.
#pragma once

#include <cstdint>

#include "experts_pointwise.cuh"
#include "pdl.cuh"

namespace switchyard::kernels {

inline constexpr int kDecodeWarpsN = 2;
inline constexpr int kDecodeWarpsK = 4;
inline constexpr int kDecodeThreads = 32 * kDecodeWarpsN * kDecodeWarpsK;
inline constexpr int kDecodeOutputsPerCta = 16 * kDecodeWarpsN;  // per column block
inline constexpr int kDecodeChunk = 64;                          // k elements per warp and step
inline constexpr std::int64_t kDecodePrefetchBytes = 2048;  // per weight row, GEMM2 before its wait

struct DecodeParams {
  const void* weights;             // [E, w_rows, k]: w13 or w2
  const void* input;               // gather: x [M, k]; else [R, k] rows in layout order
  const std::int64_t* dst_to_src;  // gather: [R] slot of each layout row (null with slot items)
  const float* slot_scale;         // gather with apply_router_weight_on_input: [M*K]; else null
  std::int32_t top_k;              // gather: token = slot / top_k
  const std::int64_t* offsets;     // [E+1] expert segments of the layout rows; null: slot items
  std::int32_t num_experts;
  // Slot items (offsets == null; no layout kernel runs before): work item i is slot i of
  // top_k_ids, one row, whose rows of act and y are row i. Its expert is the slot's id after
  // expert_map (the layout's rules); a dropped slot is an empty item. GEMM1 also writes the
  // combine's map: src_to_dst_out[i] = i, or -1 when dropped.
  const void* slot_ids;  // [S] int32 or int64
  bool slot_ids_int64;
  const std::int32_t* expert_map;  // optional [map_size]
  std::int64_t map_size;
  std::int64_t* src_to_dst_out;  // GEMM1 with slot items: [S]
  std::int32_t k;                // reduction length, a multiple of 8
  std::int32_t n_out;            // outputs per row (I for GEMM1, H for GEMM2)
  std::int32_t w_rows;           // weight rows per expert
  const void* bias;              // optional [E, w_rows], float32 or T
  bool bias_f32;
  Activation activation;  // kGated: the gated activation; else kRelu2 applies relu^2
  // kGated: gate row of output o = o * gate_step, up row = o * gate_step + up_offset: (1, n_out)
  // for SGLang's halves, (2, 1) for interleaved rows (experts_w13_interleaved).
  std::int32_t gate_step, up_offset;
  bool apply_relu2;             // single-row epilogue: relu^2 (GEMM1 of kRelu2) or identity (GEMM2)
  float alpha, limit;           // kSwigluOai
  void* out;                    // [R, n_out] T
  std::int32_t blocks_per_cta;  // column blocks of kDecodeOutputsPerCta outputs per CTA (>= 1)
  bool pipeline_blocks;         // issue the next column block's loads before this one's reduction
  // Balanced grid: gridDim = (G, 1) whatever the counts; the work units (item, column block) =
  // (u / blocks, u % blocks) over the items the offsets give (or the slot_count slots), U of
  // them, and CTA c takes units [c U / G, (c + 1) U / G): every CTA streams the same bytes within
  // one unit, where the fixed grid (x = item, y = group of blocks_per_cta blocks) leaves a partial
  // last wave. A dropped slot's units are skipped.
  bool balanced;
  std::int32_t slot_count;  // slot items on the balanced grid: S
};

struct DecodeItem {
  std::int64_t row_begin;
  std::int32_t expert;
  std::int32_t rows;  // 0: no item for this CTA
};

// Warp-cooperative: the item-th (expert, chunk of `tokens` rows) in expert order, or rows = 0.
__device__ __forceinline__ void find_decode_item(const std::int64_t* __restrict__ offsets,
                                                 int num_experts, int tokens, std::int64_t item,
                                                 DecodeItem* out) {
  constexpr int kPer = 8;  // experts per lane per step: 256 experts (DeepSeek-V3) in one step
  const int lane = threadIdx.x & 31;
  if (lane == 0) out->rows = 0;
  __syncwarp();
  std::int64_t base = 0;
  for (int e0 = 0; e0 < num_experts; e0 += 32 * kPer) {
    const int first = e0 + lane * kPer;
    std::int64_t off[kPer + 1];
#pragma unroll
    for (int q = 0; q <= kPer; ++q) off[q] = __ldg(offsets + min(first + q, num_experts));
    std::int64_t tiles[kPer], sum = 0;
#pragma unroll
    for (int q = 0; q < kPer; ++q) {
      const std::int64_t n = off[q + 1] - off[q];
      tiles[q] = n > 0 ? (n + tokens - 1) / tokens : 0;
      sum += tiles[q];
    }
    std::int64_t incl = sum;
#pragma unroll
    for (int d = 1; d < 32; d *= 2) {
      const std::int64_t v = __shfl_up_sync(0xffffffffu, incl, d);
      if (lane >= d) incl += v;
    }
    const std::int64_t total = __shfl_sync(0xffffffffu, incl, 31);
    if (item < base + total) {
      std::int64_t rem = item - (base + incl - sum);
      if (rem >= 0 && rem < sum) {
#pragma unroll
        for (int q = 0; q < kPer; ++q) {
          if (rem >= 0 && rem < tiles[q]) {
            const std::int64_t n = off[q + 1] - off[q];
            out->expert = first + q;
            out->row_begin = off[q] + rem * tokens;
            out->rows =
                static_cast<std::int32_t>(min(static_cast<std::int64_t>(tokens), n - rem * tokens));
          }
          rem -= tiles[q];
        }
      }
      break;
    }
    base += total;
  }
  __syncwarp();
}

// Warp-cooperative: the number of work items (expert, chunk of `tokens` rows) the offsets give.
__device__ __forceinline__ std::int64_t count_decode_items(const std::int64_t* __restrict__ offsets,
                                                           int num_experts, int tokens) {
  constexpr int kPer = 8;
  const int lane = threadIdx.x & 31;
  std::int64_t total = 0;
  for (int e0 = 0; e0 < num_experts; e0 += 32 * kPer) {
    const int first = e0 + lane * kPer;
    std::int64_t prev = __ldg(offsets + min(first, num_experts)), sum = 0;
#pragma unroll
    for (int q = 0; q < kPer; ++q) {
      const std::int64_t next = __ldg(offsets + min(first + q + 1, num_experts));
      const std::int64_t n = next - prev;
      sum += n > 0 ? (n + tokens - 1) / tokens : 0;
      prev = next;
    }
#pragma unroll
    for (int d = 16; d >= 1; d /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, d);
    total += sum;
  }
  return total;
}

// Slot items (one thread): the item of slot `slot`, the layout kernels' id rules (align.cuh).
__device__ __forceinline__ void find_slot_item(const DecodeParams& p, std::int64_t slot,
                                               bool write_map, DecodeItem* out) {
  const std::int64_t raw = p.slot_ids_int64
                               ? __ldg(static_cast<const std::int64_t*>(p.slot_ids) + slot)
                               : __ldg(static_cast<const std::int32_t*>(p.slot_ids) + slot);
  std::int64_t e = raw;
  if (p.expert_map != nullptr) e = (raw >= 0 && raw < p.map_size) ? __ldg(p.expert_map + raw) : -1;
  const bool valid = e >= 0 && e < p.num_experts;
  out->expert = valid ? static_cast<std::int32_t>(e) : 0;
  out->row_begin = slot;
  out->rows = valid ? 1 : 0;
  if (write_map) p.src_to_dst_out[slot] = valid ? slot : -1;
}

// 16-byte loads: weights bypass L1 (read once); token rows may hit L1 (shared by CTAs and warps).
__device__ __forceinline__ uint4 load_weights16(const void* p) {
  uint4 v;
  asm("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
      : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
      : "l"(p));
  return v;
}

__device__ __forceinline__ std::uint32_t word(const uint4& v, int i) {
  return i == 0 ? v.x : (i == 1 ? v.y : (i == 2 ? v.z : v.w));
}

// D += A * B for one m16n8k16 tile, float32 accumulation.
template <typename T>
__device__ __forceinline__ void mma_16816(float (&d)[4], std::uint32_t a0, std::uint32_t a1,
                                          std::uint32_t a2, std::uint32_t a3, std::uint32_t b0,
                                          std::uint32_t b1) {
  if constexpr (std::is_same_v<T, detail::bf16_t>) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, "
        "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
  } else {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, "
        "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
  }
}

// kTiles: 8-token MMA tiles per work item (1, 2, 4 or 8). kGated: two weight rows (gate, up) per
// output. kGather: token rows come from x through dst_to_src (GEMM1); else layout rows (GEMM2).
// kDeep (GEMM2 with one tile only): 4 chunks in flight per warp instead of 2, for a short k.
// kOcc3 (GEMM2 with one tile, not deep): compiled for 3 resident CTAs per SM (80 registers
// instead of 94), so an SM keeps 24 warps' loads in flight instead of 16 when the grid has the
// CTAs to fill it (heuristics::DecodeGemm2::kNarrow3).
template <typename T, int kTiles, bool kGated, bool kGather, bool kDeep = false, bool kOcc3 = false>
__global__ void __launch_bounds__(kDecodeThreads, kOcc3 ? 3 : (kTiles <= 2 ? 2 : 1))
    experts_decode_kernel(const DecodeParams p) {
  static_assert(!kDeep || (kTiles == 1 && !kGated && !kGather), "kDeep: GEMM2, one tile");
  static_assert(!kOcc3 || (kTiles == 1 && !kGated && !kGather && !kDeep),
                "kOcc3: GEMM2, one tile, narrow");
  constexpr int kM = kGated ? 2 : 1;     // 16-row weight tiles per warp: (gate, up) or one
  constexpr int kTokens = 8 * kTiles;    // rows per work item
  constexpr int kAcc = kM * kTiles * 4;  // accumulators per thread
  static_assert(kDecodeWarpsK == 4, "the split-k reduction below halves 4 warps twice");
  __shared__ DecodeItem item;
  __shared__ float partial[kDecodeWarpsK / 2][kDecodeWarpsN][kAcc][32];

  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int wn = warp % kDecodeWarpsN, wk = warp / kDecodeWarpsN;
  const int g = lane >> 2, t = lane & 3;  // MMA fragment coordinates: group, thread in group
  // Launch overlap (kernels/pdl.cuh). GEMM1 reads the layout kernel's offsets and maps at once, so
  // it waits first. GEMM2 runs while GEMM1 finishes: its offsets come from the layout kernel, which
  // completed before GEMM1 passed its own wait and let GEMM2 launch; so GEMM2 finds its item and
  // sends its weight rows to the L2 before it waits for GEMM1's activations.
  if constexpr (kGather) {
    pdl_wait();
    pdl_launch_dependents();
  }
  // This CTA's work units (item, column block), unit u = item * blocks + block: with the fixed
  // grid item blockIdx.x and its blocks [blockIdx.y * blocks_per_cta, + blocks_per_cta); balanced,
  // an equal share of all units (DecodeParams::balanced). Runs of units of one item are processed
  // below, each paying the item's setup (search, token rows) once.
  // Unit indices are 32-bit: the launcher checks items x blocks < 2^31.
  const int blocks = (p.n_out + kDecodeOutputsPerCta - 1) / kDecodeOutputsPerCta;
  __shared__ int unit_range[2];  // this CTA's units [begin, end)
  if (threadIdx.x == 0 && !p.balanced) {
    const int b0 = static_cast<int>(blockIdx.y) * p.blocks_per_cta;
    unit_range[0] = static_cast<int>(blockIdx.x) * blocks + b0;
    unit_range[1] = static_cast<int>(blockIdx.x) * blocks + min(b0 + p.blocks_per_cta, blocks);
  }
  if (warp == 0 && p.balanced) {
    const std::int64_t items = p.offsets != nullptr
                                   ? count_decode_items(p.offsets, p.num_experts, kTokens)
                                   : static_cast<std::int64_t>(p.slot_count);
    const std::int64_t units = items * blocks;
    if (lane == 0) {
      unit_range[0] = static_cast<int>(units * blockIdx.x / gridDim.x);
      unit_range[1] = static_cast<int>(units * (blockIdx.x + 1) / gridDim.x);
    }
  }
  __syncthreads();
  const std::int64_t k = p.k;
  // The cursor lives in shared memory (thread 0 advances it after the barrier that publishes the
  // run's item, which every thread passes after reading it): no register held across the runs.
  bool waited = false;  // GEMM2: its PDL wait for GEMM1 (once, before the first run with rows)
  for (bool first_run = true;; first_run = false) {
    if (!first_run) __syncthreads();  // every thread has read the previous run's item and cursor
    const int u = unit_range[0];
    if (u >= unit_range[1]) break;  // uniform over the CTA
    const int item_index = u / blocks;
    const int b_first = u - item_index * blocks;
    const int b_count = min(blocks - b_first, unit_range[1] - u);
    if (p.offsets == nullptr) {
      if (threadIdx.x == 0) find_slot_item(p, item_index, kGather && b_first == 0, &item);
    } else if (warp == 0) {
      find_decode_item(p.offsets, p.num_experts, kTokens, item_index, &item);
    }
    __syncthreads();
    if (threadIdx.x == 0) unit_range[0] = u + b_count;
    const int rows = item.rows;
    if (rows <= 0) continue;  // uniform over the CTA: a dropped slot, or no item (fixed grid)
    const int expert = item.expert;
    const std::int64_t row0 = item.row_begin;
    if (!kGather && !waited) {
      waited = true;
      // Lane r of warp (wn, wk = 0) prefetches the head of weight row r of this warp's 16 rows in
      // the first column block: at most kDecodePrefetchBytes per row, so that the blocks resident
      // while GEMM1 finishes hold little of the L2 (a whole Mixtral w2 slice per block, 917 KB,
      // made it thrash: 198 -> 209 us at 1 token).
      const int first_out = b_first * kDecodeOutputsPerCta + wn * 16 + lane;
      if (wk == 0 && lane < 16 && first_out < p.n_out) {
        const std::int64_t row_bytes = k * static_cast<std::int64_t>(sizeof(T));
        prefetch_l2_bulk(static_cast<const T*>(p.weights) +
                             (static_cast<std::int64_t>(expert) * p.w_rows + first_out) * k,
                         static_cast<std::uint32_t>(min(row_bytes, kDecodePrefetchBytes)));
      }
      pdl_wait();
      pdl_launch_dependents();
    }

    // This thread's token rows: row g of each 8-token tile, as 32-bit row indices of `input` (-1:
    // none; rows < 2^30 by the launcher's check), which keeps 8 tiles of gated accumulators in
    // registers without spilling.
    std::int32_t xrow[kTiles];
    float xscale[kTiles];
#pragma unroll
    for (int nt = 0; nt < kTiles; ++nt) {
      const int j = nt * 8 + g;
      xrow[nt] = -1;
      xscale[nt] = 1.0f;
      if (j < rows) {
        const std::int64_t r = row0 + j;
        if (kGather) {
          const std::int64_t slot = p.dst_to_src != nullptr ? __ldg(p.dst_to_src + r) : r;
          if (slot >= 0) {
            xrow[nt] = static_cast<std::int32_t>(slot / p.top_k);
            if (p.slot_scale) xscale[nt] = __ldg(p.slot_scale + slot);
          }
        } else {
          xrow[nt] = static_cast<std::int32_t>(r);
        }
      }
    }
    const T* const input = static_cast<const T*>(p.input);
    const bool scaled = kGather && p.slot_scale != nullptr;

    // The run's column blocks b_first + 0, 1, ...: the item's setup (the search above, the token
    // rows) is paid once for several blocks of a short k (e.g. GEMM2 of Qwen3-30B).
    //
    // kUnroll chunks are loaded before any is consumed (more bytes in flight per warp) where the
    // registers allow it at the occupancy of __launch_bounds__. With 8 token tiles the token rows
    // are loaded in two groups of 4 (the second after the first group's MMAs), so that the gated
    // accumulators, the weights and the token vectors fit in 255 registers.
    constexpr int kLoadWords = (kM * 4 + kTiles * 2) * 4;
    constexpr int kUnroll = kDeep ? 4 : (kLoadWords <= 40 ? 2 : 1);
    constexpr int kXGroups = kTiles > 4 ? 2 : 1;
    constexpr int kXTiles = kTiles / kXGroups;
    constexpr int kStep = kDecodeWarpsK * kUnroll;  // chunks between a warp's iterations
    const int chunks = static_cast<int>((k + kDecodeChunk - 1) / kDecodeChunk);
    // The chunk's k order (see the top of the file): elements between a thread's two 16-byte
    // vectors, and between neighbouring threads of a quad.
    constexpr int kVec = kDeep ? 32 : 8;
    constexpr int kQuad = kDeep ? 8 : 16;
    const uint4 zero = make_uint4(0, 0, 0, 0);
    const auto load_x = [&](uint4(&xv)[kXTiles][2], int first_tile, std::int64_t kk) {
#pragma unroll
      for (int v = 0; v < 2; ++v) {
        const bool in_k = kk + kVec * v + 8 <= k;  // k % 8 == 0: a vector is all in or all out
#pragma unroll
        for (int j = 0; j < kXTiles; ++j) {
          const std::int32_t row = xrow[first_tile + j];
          xv[j][v] = in_k && row >= 0
                         ? __ldg(reinterpret_cast<const uint4*>(
                               input + static_cast<std::int64_t>(row) * k + kk + kVec * v))
                         : zero;
        }
      }
    };
    // This thread's weight rows in column block `block`: outputs o and o + 8 of the warp's 16,
    // gate/up for gated.
    const T* wrow[kM][2];
    const auto set_rows = [&](int block) {
      const int o_base = block * kDecodeOutputsPerCta + wn * 16;
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int o = o_base + g + 8 * h;
#pragma unroll
        for (int m = 0; m < kM; ++m) {
          std::int64_t r = o;
          if (kGated) r = static_cast<std::int64_t>(o) * p.gate_step + m * p.up_offset;
          wrow[m][h] = o < p.n_out ? static_cast<const T*>(p.weights) +
                                         (static_cast<std::int64_t>(expert) * p.w_rows + r) * k
                                   : nullptr;
        }
      }
    };
    // One iteration's loads (chunks c0, c0 + kDecodeWarpsK, ... of the rows set_rows chose).
    uint4 wv[kUnroll][kM][2][2], xv[kUnroll][kXTiles][2];
    const auto load_weights_iteration = [&](int c0) {
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const std::int64_t kk =
            static_cast<std::int64_t>(c0 + u * kDecodeWarpsK) * kDecodeChunk + kQuad * t;
#pragma unroll
        for (int v = 0; v < 2; ++v) {
          const bool in_k = kk + kVec * v + 8 <= k;
#pragma unroll
          for (int m = 0; m < kM; ++m)
#pragma unroll
            for (int h = 0; h < 2; ++h)
              wv[u][m][h][v] =
                  in_k && wrow[m][h] ? load_weights16(wrow[m][h] + kk + kVec * v) : zero;
        }
      }
    };
    const auto load_x_iteration = [&](int c0) {
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        load_x(xv[u], 0,
               static_cast<std::int64_t>(c0 + u * kDecodeWarpsK) * kDecodeChunk + kQuad * t);
      }
    };
    const int first_block = b_first;
    const auto block_valid = [&](int bi) {
      return bi < b_count && (first_block + bi) * kDecodeOutputsPerCta < p.n_out;
    };
    // Pipelined blocks (p.pipeline_blocks): the next column block's first weight loads are issued
    // right after this block's last MMAs, so that they are in flight from DRAM during the split-k
    // reduction and the epilogue (no register more: this block's weight vectors are dead by then);
    // its token vectors (L1 / L2 hits) after the reduction. Otherwise both are issued after the
    // epilogue, as the block's first statement. Not in the kOcc3 instance, whose 80 registers do
    // not hold the weights across the reduction.
    const bool pipeline = !kOcc3 && p.pipeline_blocks;
    set_rows(first_block);

    for (int bi = 0; block_valid(bi); ++bi) {
      const int block = first_block + bi;
      if (bi > 0) {
        __syncthreads();  // the previous block's reduction buffer was read
        if (!pipeline) set_rows(block);
      }
      const bool issued = pipeline && bi > 0;  // this block's first weight loads are in flight
      const int o_base = block * kDecodeOutputsPerCta + wn * 16;
      float acc[kM][kTiles][4];
#pragma unroll
      for (int m = 0; m < kM; ++m)
#pragma unroll
        for (int nt = 0; nt < kTiles; ++nt)
#pragma unroll
          for (int i = 0; i < 4; ++i) acc[m][nt][i] = 0.0f;

      for (int c0 = wk; c0 < chunks; c0 += kStep) {
        if (!issued || c0 != wk) load_weights_iteration(c0);
        load_x_iteration(c0);
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) {
#pragma unroll
          for (int grp = 0; grp < kXGroups; ++grp) {
            if (grp > 0) {
              load_x(xv[u], grp * kXTiles,
                     static_cast<std::int64_t>(c0 + u * kDecodeWarpsK) * kDecodeChunk + kQuad * t);
            }
            if (scaled) {  // Llama-4: x * w rounded to T, exactly as the CPU oracle
#pragma unroll
              for (int j = 0; j < kXTiles; ++j)
#pragma unroll
                for (int v = 0; v < 2; ++v)
                  xv[u][j][v] = scale_vec8<T>(xv[u][j][v], xscale[grp * kXTiles + j]);
            }
#pragma unroll
            for (int s = 0; s < 4;
                 ++s) {  // k-step s: vector s/2, words 2(s%2) (pair P0) and +1 (P1)
              const int v = s >> 1, w0 = 2 * (s & 1), w1 = w0 + 1;
#pragma unroll
              for (int j = 0; j < kXTiles; ++j) {
                const std::uint32_t b0 = word(xv[u][j][v], w0), b1 = word(xv[u][j][v], w1);
#pragma unroll
                for (int m = 0; m < kM; ++m) {
                  mma_16816<T>(acc[m][grp * kXTiles + j], word(wv[u][m][0][v], w0),
                               word(wv[u][m][1][v], w0), word(wv[u][m][0][v], w1),
                               word(wv[u][m][1][v], w1), b0, b1);
                }
              }
            }
          }
        }
      }
      if (pipeline && wk < chunks && block_valid(bi + 1)) {
        set_rows(block + 1);
        load_weights_iteration(wk);
      }

      // Split-k reduction in a fixed order: warps 2, 3 hand their sums to warps 0, 1; then warp 1
      // to warp 0. The barriers are reached by every thread (no early exit before the last one).
#pragma unroll
      for (int half = kDecodeWarpsK / 2; half >= 1; half /= 2) {
        if (wk >= half && wk < 2 * half) {
#pragma unroll
          for (int m = 0; m < kM; ++m)
#pragma unroll
            for (int nt = 0; nt < kTiles; ++nt)
#pragma unroll
              for (int i = 0; i < 4; ++i)
                partial[wk - half][wn][(m * kTiles + nt) * 4 + i][lane] = acc[m][nt][i];
        }
        __syncthreads();
        if (wk < half) {
#pragma unroll
          for (int m = 0; m < kM; ++m)
#pragma unroll
            for (int nt = 0; nt < kTiles; ++nt)
#pragma unroll
              for (int i = 0; i < 4; ++i)
                acc[m][nt][i] += partial[wk][wn][(m * kTiles + nt) * 4 + i][lane];
        }
        if (half > 1) __syncthreads();  // the buffer is written again by the next step
      }
      if (wk == 0) {
        // Epilogue: accumulator i of tile nt is output o_base + g + 8 * (i / 2), token nt*8 + 2t +
        // i%2.
        T* out = static_cast<T*>(p.out);
        const std::int64_t bias_base = static_cast<std::int64_t>(expert) * p.w_rows;
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          const int o = o_base + g + 8 * (i >> 1);
          if (o >= p.n_out) continue;
          float bias0 = 0.0f, bias1 = 0.0f;
          if (kGated) {
            const std::int64_t gate_row = static_cast<std::int64_t>(o) * p.gate_step;
            bias0 = load_bias<T>(p.bias, p.bias_f32, bias_base + gate_row);
            bias1 = load_bias<T>(p.bias, p.bias_f32, bias_base + gate_row + p.up_offset);
          } else {
            bias0 = load_bias<T>(p.bias, p.bias_f32, bias_base + o);
          }
#pragma unroll
          for (int nt = 0; nt < kTiles; ++nt) {
            const int j = nt * 8 + 2 * t + (i & 1);
            if (j >= rows) continue;
            float v;
            if (kGated) {
              v = gated_activation(p.activation, acc[0][nt][i] + bias0, acc[1][nt][i] + bias1,
                                   p.alpha, p.limit);
            } else {
              v = acc[0][nt][i] + bias0;
              if (p.apply_relu2) v = relu2(v);
            }
            out[(row0 + j) * p.n_out + o] = detail::from_float<T>(v);
          }
        }
      }
    }
  }
}

}  // namespace switchyard::kernels
