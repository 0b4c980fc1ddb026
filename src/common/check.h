// Building the argument-error messages every op returns:
//   "<op>: <argument> = <value>: expected <what>".
#pragma once

#include <cstdint>
#include <string>
#include <type_traits>

#include "switchyard/status.h"
#include "switchyard/tensor.h"

namespace switchyard::detail {

template <typename T>
std::string value_string(const T& v) {
  if constexpr (std::is_same_v<T, bool>) {
    return v ? "true" : "false";
  } else if constexpr (std::is_arithmetic_v<T>) {
    return std::to_string(v);
  } else {
    return std::string(v);
  }
}

template <typename T>
Status invalid_arg(const char* op, const std::string& name, const T& value,
                   const std::string& expected) {
  return Status::InvalidArgument(std::string(op) + ": " + name + " = " + value_string(value) +
                                 ": expected " + expected);
}

// Common checks of a tensor argument. Each returns an error naming `name` or Ok.
Status check_tensor_basics(const char* op, const char* name, const TensorView& t, Device device);
Status check_shape(const char* op, const char* name, const TensorView& t,
                   std::initializer_list<std::int64_t> shape);
Status check_dtype(const char* op, const char* name, const TensorView& t,
                   std::initializer_list<DType> allowed);
Status check_contiguous(const char* op, const char* name, const TensorView& t);

#define SY_RETURN_IF_ERROR(expr)          \
  do {                                    \
    ::switchyard::Status sy_st_ = (expr); \
    if (!sy_st_.ok()) return sy_st_;      \
  } while (0)

}  // namespace switchyard::detail
