// gpu_bench.h in a build without CUDA: every call reports kUnsupported.
#include "gpu_bench.h"

namespace switchyard::tools {

namespace {
Status no_cuda(const char* what) {
  return Status::Unsupported(std::string(what) + ": this build has no CUDA backend");
}
}  // namespace

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& o) noexcept {
  ptr_ = o.ptr_;
  bytes_ = o.bytes_;
  o.ptr_ = nullptr;
  o.bytes_ = 0;
  return *this;
}
DeviceBuffer::~DeviceBuffer() = default;
Status DeviceBuffer::allocate(std::size_t, DeviceBuffer*) {
  return no_cuda("DeviceBuffer::allocate");
}
Status copy_to_device(void*, const void*, std::size_t) {
  return no_cuda("copy_to_device");
}
Status copy_to_host(void*, const void*, std::size_t) {
  return no_cuda("copy_to_host");
}
Status fill_device_bytes(void*, int, std::size_t) {
  return no_cuda("fill_device_bytes");
}
Status device_synchronize() {
  return no_cuda("device_synchronize");
}
Status time_graph(int, int, const std::function<Status(int, cudaStream_t)>&, GraphTiming*) {
  return no_cuda("time_graph");
}
Status time_empty_kernel(int, int, GraphTiming*, bool) {
  return no_cuda("time_empty_kernel");
}
Status measure_memory_ceiling(std::size_t, MemoryCeiling*) {
  return no_cuda("measure_memory_ceiling");
}
std::size_t device_l2_bytes() {
  return 0;
}

}  // namespace switchyard::tools
