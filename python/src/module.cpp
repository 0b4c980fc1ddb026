// switchyard._switchyard: the library's ops over DLPack arrays (see python/switchyard/ for the
// Python API built on it). Errors: a non-ok Status raises
//   InvalidArgumentError (ValueError)         kInvalidArgument
//   UnsupportedError     (NotImplementedError) kUnsupported
//   CudaError            (RuntimeError)        kCudaError
//   InternalError        (RuntimeError)        kInternal
// all subclasses of SwitchyardError, with the library's message (it names the argument).
#include <nanobind/nanobind.h>
#include <nanobind/stl/string.h>

#include <exception>

#include "arrays.h"
#include "bindings.h"

namespace switchyard::python {

namespace {

struct ErrorTypes {
  PyObject* base = nullptr;
  PyObject* invalid_argument = nullptr;
  PyObject* unsupported = nullptr;
  PyObject* cuda = nullptr;
  PyObject* internal = nullptr;
};
ErrorTypes g_errors;

// A new exception type switchyard.<name> deriving from SwitchyardError and `builtin`.
PyObject* new_error(nb::module_& m, const char* name, PyObject* builtin, const char* doc) {
  const std::string qualified = std::string("switchyard.") + name;
  nb::object bases = builtin ? nb::make_tuple(nb::handle(g_errors.base), nb::handle(builtin))
                             : nb::object(nb::make_tuple(nb::handle(PyExc_Exception)));
  PyObject* type = PyErr_NewExceptionWithDoc(qualified.c_str(), doc, bases.ptr(), /*dict=*/nullptr);
  if (type == nullptr) throw nb::python_error();
  m.attr(name) = nb::handle(type);
  return type;  // kept for the module's lifetime (the module holds a reference too)
}

PyObject* error_type(StatusCode code) {
  switch (code) {
    case StatusCode::kInvalidArgument:
      return g_errors.invalid_argument;
    case StatusCode::kUnsupported:
      return g_errors.unsupported;
    case StatusCode::kCudaError:
      return g_errors.cuda;
    default:
      return g_errors.internal;
  }
}

}  // namespace

}  // namespace switchyard::python

NB_MODULE(_switchyard, m) {
  namespace sp = switchyard::python;
  namespace nb = nanobind;
  m.doc() = "Switchyard's C++ ops over DLPack arrays (numpy, torch, CuPy, ...).";

  sp::g_errors.base = sp::new_error(m, "SwitchyardError", nullptr,
                                    "Base class of the errors Switchyard's ops report.");
  sp::g_errors.invalid_argument =
      sp::new_error(m, "InvalidArgumentError", PyExc_ValueError,
                    "A caller error: shape, dtype, device, pointer or parameter value.");
  sp::g_errors.unsupported =
      sp::new_error(m, "UnsupportedError", PyExc_NotImplementedError,
                    "A valid request this build or device cannot serve (e.g. no CUDA).");
  sp::g_errors.cuda =
      sp::new_error(m, "CudaError", PyExc_RuntimeError, "The CUDA runtime reported an error.");
  sp::g_errors.internal =
      sp::new_error(m, "InternalError", PyExc_RuntimeError, "A bug in Switchyard.");
  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const sp::StatusError& e) {
      PyErr_SetString(sp::error_type(e.status().code()), e.status().message().c_str());
    }
  });

  m.def("built_with_cuda", &switchyard::built_with_cuda,
        "True when the library was compiled with the CUDA backend.");
  m.def("cuda_device_available", &switchyard::cuda_device_available,
        "True when built with CUDA and a CUDA device is visible.");
  m.def("cuda_device_description", &switchyard::cuda_device_description,
        "The first CUDA device, e.g. 'NVIDIA H100 80GB HBM3 (sm_90, 132 SMs)', or ''.");

  sp::bind_routing(m);
  sp::bind_align(m);
  sp::bind_experts(m);
}
