// 16-bit float storage types and exact conversions, usable on host and device.
#pragma once

#include <cstdint>
#include <type_traits>

#include "exact_math.h"
#include "host_device.h"

#if defined(__CUDACC__)
#include <cuda_fp16.h>
#endif

namespace switchyard::detail {

struct bf16_t {
  std::uint16_t bits;
};
struct fp16_t {
  std::uint16_t bits;
};

SY_HD float to_float(float x) {
  return x;
}
SY_HD float to_float(bf16_t x) {
  return bits_to_float(static_cast<std::uint32_t>(x.bits) << 16);
}
SY_HD float to_float(fp16_t x) {
#if defined(__CUDA_ARCH__)
  return __half2float(__ushort_as_half(x.bits));
#else
  const std::uint32_t sign = static_cast<std::uint32_t>(x.bits & 0x8000u) << 16;
  const std::uint32_t exp = (x.bits >> 10) & 0x1fu;
  const std::uint32_t man = x.bits & 0x3ffu;
  if (exp == 0x1fu) return bits_to_float(sign | 0x7f800000u | (man << 13));  // Inf / NaN
  if (exp != 0) return bits_to_float(sign | ((exp + 112u) << 23) | (man << 13));
  // zero or subnormal: man * 2^-24, exact in float
  const float v = static_cast<float>(man) * 5.9604644775390625e-08f;
  return sign ? -v : v;
#endif
}

// Round to nearest even, the same bits on host and device (combine's output conversion).
SY_HD bf16_t float_to_bf16(float f) {
  std::uint32_t u = float_to_bits(f);
  if (is_nan(f)) return bf16_t{static_cast<std::uint16_t>((u >> 16) | 0x40u)};
  u += 0x7fffu + ((u >> 16) & 1u);
  return bf16_t{static_cast<std::uint16_t>(u >> 16)};
}

SY_HD fp16_t float_to_fp16(float f) {
  const std::uint32_t u = float_to_bits(f);
  const std::uint16_t sign = static_cast<std::uint16_t>((u >> 16) & 0x8000u);
  if (is_nan(f)) return fp16_t{static_cast<std::uint16_t>(sign | 0x7e00u)};
  const float a = f < 0.0f ? -f : f;
  if (a >= 65520.0f) return fp16_t{static_cast<std::uint16_t>(sign | 0x7c00u)};  // rounds to Inf
  if (a < 6.103515625e-05f) {  // subnormal range: units of 2^-24, rint is round-half-even
    const float q = exact_rint(a * 16777216.0f);
    return fp16_t{static_cast<std::uint16_t>(sign | static_cast<std::uint16_t>(q))};
  }
  std::uint32_t v = float_to_bits(a);
  v += 0xfffu + ((v >> 13) & 1u);  // round mantissa to 10 bits, ties to even
  const std::uint32_t exp = (v >> 23) - 112u;
  return fp16_t{static_cast<std::uint16_t>(sign | (exp << 10) | ((v >> 13) & 0x3ffu))};
}

// float -> T storage (float, bf16_t or fp16_t), round to nearest even: one definition for every
// backend, so outputs converted on the host and on the device have the same bits.
template <typename T>
SY_HD T from_float(float v) {
  if constexpr (std::is_same_v<T, float>) {
    return v;
  } else if constexpr (std::is_same_v<T, bf16_t>) {
    return float_to_bf16(v);
  } else {
    return float_to_fp16(v);
  }
}

}  // namespace switchyard::detail
