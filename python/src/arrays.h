// DLPack arrays -> Switchyard TensorViews, Status -> Python exceptions, streams and workspaces.
//
// Every op of the module takes nb::ndarray<> (any DLPack producer: numpy, torch, CuPy, ...) and
// checks nothing itself beyond what a TensorView cannot express (dimension count, dtype, device
// type): shapes, strides, contiguity and devices are checked by the library, whose Status message
// names the argument. A non-ok Status becomes one of the module's exceptions (see module.cpp).
#pragma once

#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>

#include "switchyard/switchyard.h"

namespace switchyard::python {

namespace nb = nanobind;

using Array = nb::ndarray<>;
using OptArray = std::optional<nb::ndarray<>>;

// A non-ok Status on its way to Python (translated in module.cpp).
class StatusError : public std::exception {
 public:
  explicit StatusError(Status status) : status_(std::move(status)) {}
  const Status& status() const { return status_; }
  const char* what() const noexcept override { return status_.message().c_str(); }

 private:
  Status status_;
};

// Throws StatusError when `st` is not ok.
void throw_if_error(const Status& st);

// The view of `a`; `name` is the argument's name in error messages.
TensorView to_view(const Array& a, const char* name);
// An undefined view (TensorView{}) for None.
TensorView to_view(const OptArray& a, const char* name);

// The backend an op runs on: the device of its primary array.
Device device_of(const TensorView& v);

// Workspace: a 1-D byte array (any dtype; its size in bytes counts), or None (0 bytes).
struct Workspace {
  void* data = nullptr;
  std::size_t bytes = 0;
};
Workspace to_workspace(const OptArray& a);

// The caller's stream, passed from Python as an integer (cudaStream_t value; 0 = legacy default).
inline cudaStream_t to_stream(std::uintptr_t stream) {
  return reinterpret_cast<cudaStream_t>(stream);
}

}  // namespace switchyard::python
