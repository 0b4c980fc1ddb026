// Float math that gives the same bits on the host and on the device.
//
// Why: the routing contract promises that the CPU and CUDA backends return bitwise identical ids
// and weights, and ids depend on exact comparisons of transcendental values (sigmoid, softcap,
// softplus). libm's expf and CUDA's expf differ in the last bit now and then, which would flip
// near-ties. These functions use only IEEE-exact operations (+, -, *, /, sqrt, rint, ldexp,
// frexp) in a fixed order. Build rules that keep them exact: device code in files that include
// this header is compiled with --fmad=false and host code with -ffp-contract=off (CMakeLists.txt),
// so no multiply-add is contracted differently on either side. Accuracy: about 2 ulp.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "host_device.h"

namespace switchyard::detail {

SY_HD float bits_to_float(std::uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
#endif
}
SY_HD std::uint32_t float_to_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  std::uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
#endif
}

SY_HD bool is_nan(float x) { return x != x; }
SY_HD bool is_finite(float x) { return (float_to_bits(x) & 0x7f800000u) != 0x7f800000u; }
SY_HD float pos_inf() { return bits_to_float(0x7f800000u); }
SY_HD float neg_inf() { return bits_to_float(0xff800000u); }

SY_HD float exact_rint(float x) {
#if defined(__CUDA_ARCH__)
  return rintf(x);
#else
  return std::nearbyint(x);  // round half to even in the default rounding mode, like rintf
#endif
}
SY_HD float exact_ldexp(float x, int e) {
#if defined(__CUDA_ARCH__)
  return ldexpf(x, e);
#else
  return std::ldexp(x, e);
#endif
}
SY_HD float exact_sqrt(float x) {
#if defined(__CUDA_ARCH__)
  return __fsqrt_rn(x);
#else
  return std::sqrt(x);
#endif
}

// e^x.
SY_HD float exp_f(float x) {
  if (is_nan(x)) return x;
  if (x > 88.72283f) return pos_inf();
  if (x < -103.9721f) return 0.0f;
  const float n = exact_rint(x * 1.44269504f);
  // ln2 split so that n * kLn2Hi is exact for |n| < 256.
  const float r = (x - n * 0.693145751953125f) - n * 1.42860677e-06f;
  // Taylor polynomial of e^r on |r| <= 0.35, Horner form.
  float p = 1.98412698e-04f;  // 1/7!
  p = p * r + 1.38888889e-03f;
  p = p * r + 8.33333333e-03f;
  p = p * r + 4.16666667e-02f;
  p = p * r + 1.66666667e-01f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  return exact_ldexp(p, static_cast<int>(n));
}

// e^x - 1, accurate near 0.
SY_HD float expm1_f(float x) {
  if (x > -0.5f && x < 0.5f) {
    float p = 2.48015873e-05f;  // 1/8!
    p = p * x + 1.98412698e-04f;
    p = p * x + 1.38888889e-03f;
    p = p * x + 8.33333333e-03f;
    p = p * x + 4.16666667e-02f;
    p = p * x + 1.66666667e-01f;
    p = p * x + 0.5f;
    return (p * x) * x + x;
  }
  return exp_f(x) - 1.0f;
}

// Natural log of x >= 0 (NaN for negative or NaN input).
SY_HD float log_f(float x) {
  if (is_nan(x) || x < 0.0f) return bits_to_float(0x7fc00000u);
  if (x == 0.0f) return neg_inf();
  if (!is_finite(x)) return x;
  int e = 0;
#if defined(__CUDA_ARCH__)
  float m = frexpf(x, &e);
#else
  float m = std::frexp(x, &e);
#endif
  if (m < 0.70710678f) {
    m = m * 2.0f;
    e = e - 1;
  }
  // log(m) = 2 atanh(s), s = (m - 1) / (m + 1), |s| < 0.172.
  const float s = (m - 1.0f) / (m + 1.0f);
  const float s2 = s * s;
  float p = 1.0f / 11.0f;
  p = p * s2 + 1.0f / 9.0f;
  p = p * s2 + 1.0f / 7.0f;
  p = p * s2 + 1.0f / 5.0f;
  p = p * s2 + 1.0f / 3.0f;
  p = p * s2 + 1.0f;
  const float log_m = 2.0f * s * p;
  const float fe = static_cast<float>(e);
  return (fe * 0.693145751953125f + log_m) + fe * 1.42860677e-06f;
}

// log(1 + u) for u >= 0 (Goldberg's correction keeps it accurate for small u).
SY_HD float log1p_f(float u) {
  const float w = 1.0f + u;
  if (w == 1.0f) return u;
  if (!is_finite(w)) return w;
  return log_f(w) * (u / (w - 1.0f));
}

SY_HD float sigmoid_f(float x) { return 1.0f / (1.0f + exp_f(-x)); }

SY_HD float tanh_f(float x) {
  if (is_nan(x)) return x;
  const float ax = x < 0.0f ? -x : x;
  if (ax > 9.1f) return x < 0.0f ? -1.0f : 1.0f;
  const float t = expm1_f(2.0f * ax);
  const float r = t / (t + 2.0f);
  return x < 0.0f ? -r : r;
}

SY_HD float softplus_f(float x) {
  if (is_nan(x)) return x;
  if (x > 20.0f) return x;
  return log1p_f(exp_f(x));
}

}  // namespace switchyard::detail
