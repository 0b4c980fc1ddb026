#include "arrays.h"

#include <algorithm>
#include <string>

namespace switchyard::python {

namespace {

Status bad(const char* name, const std::string& what, const std::string& value,
           const std::string& expected) {
  return Status::InvalidArgument(std::string(name) + what + " = " + value + ": expected " +
                                 expected);
}

// DLPack (code, bits, lanes) -> DType; false for the dtypes no op takes.
bool to_dtype(nb::dlpack::dtype t, DType* out) {
  using Code = nb::dlpack::dtype_code;
  if (t.lanes != 1) return false;
  const auto code = static_cast<Code>(t.code);
  if (code == Code::Float && t.bits == 32)
    *out = DType::kFloat32;
  else if (code == Code::Float && t.bits == 16)
    *out = DType::kFloat16;
  else if (code == Code::Bfloat && t.bits == 16)
    *out = DType::kBFloat16;
  else if (code == Code::Int && t.bits == 32)
    *out = DType::kInt32;
  else if (code == Code::Int && t.bits == 64)
    *out = DType::kInt64;
  else
    return false;
  return true;
}

std::string dtype_string(nb::dlpack::dtype t) {
  static const char* kCodes[] = {"int", "uint", "float", "opaque", "bfloat", "complex", "bool"};
  const std::string code = t.code < 7 ? kCodes[t.code] : "code" + std::to_string(t.code);
  std::string s = code + std::to_string(t.bits);
  if (t.lanes != 1) s += "x" + std::to_string(t.lanes);
  return s;
}

}  // namespace

void throw_if_error(const Status& st) {
  if (!st.ok()) throw StatusError(st);
}

TensorView to_view(const Array& a, const char* name) {
  TensorView v;
  const int ndim = static_cast<int>(a.ndim());
  if (ndim > TensorView::kMaxDims) {
    throw_if_error(bad(name, ".ndim", std::to_string(ndim), "at most 4 dimensions"));
  }
  if (!to_dtype(a.dtype(), &v.dtype)) {
    throw_if_error(
        bad(name, ".dtype", dtype_string(a.dtype()), "float32, bfloat16, float16, int32 or int64"));
  }
  // Pinned host memory (cuda_host) is host memory: the CPU backend reads it directly.
  const int device_type = a.device_type();
  if (device_type == nb::device::cpu::value || device_type == nb::device::cuda_host::value) {
    v.device = Device::kCpu;
  } else if (device_type == nb::device::cuda::value) {
    v.device = Device::kCuda;
  } else {
    throw_if_error(bad(name, ".device_type", std::to_string(device_type),
                       "1 (cpu), 2 (cuda) or 3 (cuda_host)"));
  }
  v.data = a.data();
  v.ndim = ndim;
  for (int i = 0; i < ndim; ++i) {
    v.shape[static_cast<std::size_t>(i)] = static_cast<std::int64_t>(a.shape(i));
    v.strides[static_cast<std::size_t>(i)] = a.stride(i);
  }
  // An empty array has no layout (producers export strides of 0 for it): call it row-major.
  if (a.size() == 0) {
    std::int64_t stride = 1;
    for (int i = ndim - 1; i >= 0; --i) {
      v.strides[static_cast<std::size_t>(i)] = stride;
      stride *= std::max<std::int64_t>(1, v.shape[static_cast<std::size_t>(i)]);
    }
  }
  return v;
}

TensorView to_view(const OptArray& a, const char* name) {
  return a.has_value() ? to_view(*a, name) : TensorView{};
}

Device device_of(const TensorView& v) {
  return v.device;
}

Workspace to_workspace(const OptArray& a) {
  if (!a.has_value()) return {};
  return {a->data(), a->nbytes()};
}

}  // namespace switchyard::python
