// TensorView: a non-owning view of a strided array, the one argument type of every op.
//
// Conventions (shared by all ops):
//  - `shape` and `strides` are in elements, not bytes; at most kMaxDims dimensions.
//  - `device` says where `data` lives; ops check it against the backend they run on.
//  - An absent optional input is a view with data == nullptr (TensorView{}).
//  - Views never own memory; the caller keeps the buffers alive until the op (and, for CUDA, the
//    stream work it enqueued) has finished.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>

namespace switchyard {

enum class DType : std::uint8_t { kFloat32, kBFloat16, kFloat16, kInt32, kInt64 };
enum class Device : std::uint8_t { kCpu, kCuda };

std::size_t dtype_size(DType dtype);
const char* dtype_name(DType dtype);     // "float32", "bfloat16", ...
const char* device_name(Device device);  // "cpu", "cuda"

struct TensorView {
  static constexpr int kMaxDims = 4;

  void* data = nullptr;
  DType dtype = DType::kFloat32;
  Device device = Device::kCpu;
  int ndim = 0;
  std::array<std::int64_t, kMaxDims> shape{};
  std::array<std::int64_t, kMaxDims> strides{};

  // A row-major contiguous view.
  static TensorView contiguous(void* data, DType dtype, std::initializer_list<std::int64_t> shape,
                               Device device = Device::kCpu);

  bool defined() const { return data != nullptr; }
  std::int64_t size(int dim) const { return shape[static_cast<std::size_t>(dim)]; }
  std::int64_t stride(int dim) const { return strides[static_cast<std::size_t>(dim)]; }
  std::int64_t numel() const;
  // Row-major dense (dimensions of size 1 may have any stride; an empty view always is).
  bool is_contiguous() const;
  // "[4096, 256] bfloat16 cuda" for messages.
  std::string describe() const;
};

}  // namespace switchyard
