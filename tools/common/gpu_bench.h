// GPU helpers for the CLI, the benchmarks and the tests: device buffers, copies, and timing.
// Timing method (fixed, and written into every result file):
//   a CUDA graph captures `calls` back-to-back calls (call i may use rotating buffer i % n);
//   the graph is replayed `replays` times after one warm-up replay; each replay is timed with
//   CUDA events; the reported time per call is the median replay time / calls.
// An empty kernel timed the same way is the launch-overhead baseline.
// In builds without CUDA every function returns kUnsupported.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "switchyard/status.h"
#include "switchyard/stream.h"

namespace switchyard::tools {

class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(o.ptr_), bytes_(o.bytes_) {
    o.ptr_ = nullptr;
    o.bytes_ = 0;
  }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept;
  ~DeviceBuffer();

  static Status allocate(std::size_t bytes, DeviceBuffer* out);
  void* get() const { return ptr_; }
  std::size_t bytes() const { return bytes_; }

 private:
  void* ptr_ = nullptr;
  std::size_t bytes_ = 0;
};

Status copy_to_device(void* dst, const void* src, std::size_t bytes);
Status copy_to_host(void* dst, const void* src, std::size_t bytes);
Status fill_device_bytes(void* dst, int byte_value, std::size_t bytes);  // memset + sync
Status device_synchronize();

struct GraphTiming {
  double median_us_per_call = 0;
  double min_us_per_call = 0;
};
// Captures enqueue(0..calls-1, stream) into a graph and times its replays (see above).
Status time_graph(int calls, int replays,
                  const std::function<Status(int call, cudaStream_t stream)>& enqueue,
                  GraphTiming* out);
// The empty-kernel baseline, timed exactly like time_graph. pdl: launched as the routing and
// small alignment kernels are (a PDL secondary whose only statement is kernels::pdl_begin(); a
// plain launch where the library launches plainly: SWITCHYARD_PDL=0 or below sm_90).
Status time_empty_kernel(int calls, int replays, GraphTiming* out, bool pdl = false);

struct MemoryCeiling {
  double read_gbps = 0;   // streaming read of a large buffer (16-byte loads, grid-stride)
  double write_gbps = 0;  // streaming write (16-byte stores, grid-stride)
  // Device-to-device copy, bytes read + written: the faster of cudaMemcpyAsync and a 16-byte copy
  // kernel.
  double copy_gbps = 0;
  std::size_t bytes = 0;
};
Status measure_memory_ceiling(std::size_t bytes, MemoryCeiling* out);

std::size_t device_l2_bytes();  // 0 without a device

}  // namespace switchyard::tools
