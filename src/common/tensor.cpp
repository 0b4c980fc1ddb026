#include "switchyard/tensor.h"

namespace switchyard {

std::size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::kFloat32:
    case DType::kInt32:
      return 4;
    case DType::kBFloat16:
    case DType::kFloat16:
      return 2;
    case DType::kInt64:
      return 8;
  }
  return 0;
}

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::kFloat32:
      return "float32";
    case DType::kBFloat16:
      return "bfloat16";
    case DType::kFloat16:
      return "float16";
    case DType::kInt32:
      return "int32";
    case DType::kInt64:
      return "int64";
  }
  return "unknown";
}

const char* device_name(Device device) {
  return device == Device::kCuda ? "cuda" : "cpu";
}

TensorView TensorView::contiguous(void* data, DType dtype,
                                  std::initializer_list<std::int64_t> shape, Device device) {
  TensorView v;
  v.data = data;
  v.dtype = dtype;
  v.device = device;
  v.ndim = static_cast<int>(shape.size() > kMaxDims ? kMaxDims : shape.size());
  int d = 0;
  for (std::int64_t s : shape) {
    if (d == v.ndim) break;
    v.shape[static_cast<std::size_t>(d++)] = s;
  }
  std::int64_t stride = 1;
  for (int i = v.ndim - 1; i >= 0; --i) {
    v.strides[static_cast<std::size_t>(i)] = stride;
    stride *= v.shape[static_cast<std::size_t>(i)];
  }
  return v;
}

std::int64_t TensorView::numel() const {
  std::int64_t n = 1;
  for (int i = 0; i < ndim; ++i) n *= shape[static_cast<std::size_t>(i)];
  return n;
}

bool TensorView::is_contiguous() const {
  // An empty view holds no element whose address could be wrong: contiguous whatever its strides
  // (array libraries give empty arrays such as [17, 0] arbitrary strides).
  if (numel() == 0) return true;
  std::int64_t expected = 1;
  for (int i = ndim - 1; i >= 0; --i) {
    const auto d = static_cast<std::size_t>(i);
    if (shape[d] != 1 && strides[d] != expected) return false;
    expected *= shape[d];
  }
  return true;
}

std::string TensorView::describe() const {
  std::string s = "[";
  for (int i = 0; i < ndim; ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[static_cast<std::size_t>(i)]);
  }
  s += "] ";
  s += dtype_name(dtype);
  s += " ";
  s += device_name(device);
  if (!data) s += " (null)";
  return s;
}

}  // namespace switchyard
