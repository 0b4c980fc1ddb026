#include "check.h"

#include <cstdint>
#include <cstdio>
#include <string>

namespace switchyard::detail {

namespace {
std::string shape_string(const std::int64_t* dims, int n) {
  std::string s = "[";
  for (int i = 0; i < n; ++i) {
    if (i) s += ", ";
    s += std::to_string(dims[i]);
  }
  return s + "]";
}
}  // namespace

Status check_tensor_basics(const char* op, const char* name, const TensorView& t, Device device) {
  const std::string n(name);
  if (t.data == nullptr && t.numel() != 0) {
    return invalid_arg(op, n + ".data", "null", "a non-null pointer");
  }
  if (t.device != device) {
    return invalid_arg(op, n + ".device", device_name(t.device),
                       std::string(device_name(device)) + " (the backend this call runs on)");
  }
  if (t.ndim < 0 || t.ndim > TensorView::kMaxDims) {
    return invalid_arg(op, n + ".ndim", t.ndim, "0..4");
  }
  for (int i = 0; i < t.ndim; ++i) {
    if (t.size(i) < 0) {
      return invalid_arg(op, n + ".shape[" + std::to_string(i) + "]", t.size(i), ">= 0");
    }
  }
  const auto addr = reinterpret_cast<std::uintptr_t>(t.data);
  const std::size_t align = dtype_size(t.dtype);
  if (align == 0 || addr % align != 0) {
    return invalid_arg(
        op, n + ".data",
        "0x" +
            [&] {
              char buf[32];
              std::snprintf(buf, sizeof buf, "%llx", static_cast<unsigned long long>(addr));
              return std::string(buf);
            }(),
        "a pointer aligned to " + std::to_string(align) + " bytes (" + dtype_name(t.dtype) + ")");
  }
  return Status::Ok();
}

Status check_shape(const char* op, const char* name, const TensorView& t,
                   std::initializer_list<std::int64_t> shape) {
  bool ok = t.ndim == static_cast<int>(shape.size());
  int i = 0;
  for (std::int64_t s : shape) {
    if (!ok) break;
    ok = t.size(i++) == s;
  }
  if (ok) return Status::Ok();
  return invalid_arg(op, std::string(name) + ".shape", shape_string(t.shape.data(), t.ndim),
                     shape_string(shape.begin(), static_cast<int>(shape.size())));
}

Status check_dtype(const char* op, const char* name, const TensorView& t,
                   std::initializer_list<DType> allowed) {
  std::string list;
  for (DType d : allowed) {
    if (d == t.dtype) return Status::Ok();
    if (!list.empty()) list += " or ";
    list += dtype_name(d);
  }
  return invalid_arg(op, std::string(name) + ".dtype", dtype_name(t.dtype), list);
}

Status check_contiguous(const char* op, const char* name, const TensorView& t) {
  if (t.is_contiguous()) return Status::Ok();
  std::string strides = "[";
  for (int i = 0; i < t.ndim; ++i) strides += (i ? ", " : "") + std::to_string(t.stride(i));
  return invalid_arg(op, std::string(name) + ".strides", strides + "]",
                     "a contiguous (row-major) tensor");
}

}  // namespace switchyard::detail
