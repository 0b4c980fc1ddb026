// Float math that gives the same bits on the host and on the device.
//
// Why: the routing contract promises that the CPU and CUDA backends return bitwise identical ids
// and weights, and ids depend on exact comparisons of transcendental values (sigmoid, softcap,
// softplus). libm's expf and CUDA's expf differ in the last bit now and then, which would flip
// near-ties. These functions use only IEEE-exact operations (+, -, *, /, fma, sqrt, rint,
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

SY_HD bool is_nan(float x) {
  return x != x;
}
SY_HD bool is_finite(float x) {
  return (float_to_bits(x) & 0x7f800000u) != 0x7f800000u;
}
SY_HD float pos_inf() {
  return bits_to_float(0x7f800000u);
}
SY_HD float neg_inf() {
  return bits_to_float(0xff800000u);
}

SY_HD float exact_rint(float x) {
#if defined(__CUDA_ARCH__)
  return rintf(x);
#else
  return std::nearbyint(x);  // round half to even in the default rounding mode, like rintf
#endif
}
SY_HD float exact_sqrt(float x) {
#if defined(__CUDA_ARCH__)
  return __fsqrt_rn(x);
#else
  return std::sqrt(x);
#endif
}

// Correctly rounded a * b + c without libm: libm's fmaf is a slow software routine on machines
// whose CPUID hides FMA (seen in VMs). The float product is exact in double; the double sum is
// rounded once more to float, which is wrong only when the double sum is inexact and lands exactly
// on a midpoint between two floats: then the exact error (TwoSum) says which way to nudge it.
inline float host_fmaf(float a, float b, float c) {
  const double ab = static_cast<double>(a) * static_cast<double>(b);
  const double s = ab + static_cast<double>(c);
  std::uint64_t u;
  std::memcpy(&u, &s, sizeof u);
  // A float midpoint has its 29 discarded mantissa bits equal to 1000...0.
  if ((u & 0x1fffffffull) != 0x10000000ull || !std::isfinite(s)) return static_cast<float>(s);
  const double bb = s - ab;
  const double err = (ab - (s - bb)) + (static_cast<double>(c) - bb);  // exact: ab + c = s + err
  if (err == 0.0) return static_cast<float>(s);
  u += (err > 0.0) == (s > 0.0) ? 1 : static_cast<std::uint64_t>(-1);  // away from the midpoint
  double nudged;
  std::memcpy(&nudged, &u, sizeof nudged);
  return static_cast<float>(nudged);
}

SY_HD float exact_fma(float a, float b, float c) {
#if defined(__CUDA_ARCH__)
  return __fmaf_rn(a, b, c);
#else
  return host_fmaf(a, b, c);
#endif
}
SY_HD float exact_fmax(float a, float b) {
#if defined(__CUDA_ARCH__)
  return fmaxf(a, b);
#else
  return std::fmax(a, b);
#endif
}
SY_HD float exact_fmin(float a, float b) {
#if defined(__CUDA_ARCH__)
  return fminf(a, b);
#else
  return std::fmin(a, b);
#endif
}

// a / b: Newton-Raphson reciprocal from a bit-level first guess, then one fused correction of the
// quotient (within 1 ulp of a / b, correctly rounded in nearly all cases). Used instead of "/"
// because CUDA's IEEE division calls a slow-path subroutine; this one is branch-free and gives
// the same bits on both sides. Special values follow IEEE: x/0 = +-Inf (0/0 NaN), x/Inf = 0.
SY_HD float div_f_special(float a, float b) {
  const bool a_nan = is_nan(a), b_nan = is_nan(b);
  const bool a_inf = !a_nan && !is_finite(a), b_inf = !b_nan && !is_finite(b);
  const float sign = ((float_to_bits(a) ^ float_to_bits(b)) & 0x80000000u) ? -1.0f : 1.0f;
  if (a_nan || b_nan || (a_inf && b_inf) || (a == 0.0f && b == 0.0f)) {
    return bits_to_float(0x7fc00000u);
  }
  if (b == 0.0f || a_inf) return sign * pos_inf();
  return sign * 0.0f;  // b infinite
}

SY_HD float div_f(float a, float b) {
  const float b_abs = bits_to_float(float_to_bits(b) & 0x7fffffffu);
  // Keep the reciprocal in the normal range: scale both operands by an exact power of two.
  const float scale = b_abs > 0x1p100f ? 0x1p-64f : (b_abs < 0x1p-100f ? 0x1p64f : 1.0f);
  const float as = a * scale, bs = b_abs * scale;
  float y = bits_to_float(0x7ef311c3u - float_to_bits(bs));  // ~12% first guess of 1 / bs
  y = exact_fma(y, exact_fma(-bs, y, 1.0f), y);
  y = exact_fma(y, exact_fma(-bs, y, 1.0f), y);
  y = exact_fma(y, exact_fma(-bs, y, 1.0f), y);
  float q = as * y;
  q = exact_fma(exact_fma(-bs, q, as), y, q);
  // One test for every special operand (a or b not finite, b zero); the rare branch gives IEEE's
  // answers.
  if (!(is_finite(a) && is_finite(b) && b_abs > 0.0f)) return div_f_special(a, b);
  return (float_to_bits(b) & 0x80000000u) ? -q : q;
}

// exp_f's core for n = rint(x / ln2): the reduced argument r = x - n ln2 (the ln2 split makes
// n * hi exact) and e^r by a degree-7 polynomial evaluated with fused multiply-adds (correctly
// rounded on both sides).
SY_HD float exp_reduced_poly(float n, float x) {
  float r = exact_fma(-n, 0.693145751953125f, x);
  r = exact_fma(-n, 1.42860677e-06f, r);
  float p = 1.98412698e-04f;  // 1/7!
  p = exact_fma(p, r, 1.38888889e-03f);
  p = exact_fma(p, r, 8.33333333e-03f);
  p = exact_fma(p, r, 4.16666667e-02f);
  p = exact_fma(p, r, 1.66666667e-01f);
  p = exact_fma(p, r, 0.5f);
  p = exact_fma(p, r, 1.0f);
  return exact_fma(p, r, 1.0f);
}

// e^x. Branch-free: range reduction with n = rint(x / ln2), exp_reduced_poly, and 2^n applied in
// two exact steps so that subnormal results round the same way everywhere.
SY_HD float exp_f(float x) {
  const float xc = exact_fmin(exact_fmax(x, -104.0f), 89.0f);  // fmax/fmin drop a NaN x
  const float n = exact_rint(xc * 1.44269504f);
  const float p = exp_reduced_poly(n, xc);
  const int ni = static_cast<int>(n);
  const int half = ni / 2;
  const float s1 = bits_to_float(static_cast<std::uint32_t>(half + 127) << 23);
  const float s2 = bits_to_float(static_cast<std::uint32_t>(ni - half + 127) << 23);
  const float y = (p * s1) * s2;
  if (is_nan(x)) return x;
  return x > 88.72283f ? pos_inf() : (x < -103.9721f ? 0.0f : y);
}

// exp_f(x) for -87 <= x <= 0 (callers check; elsewhere call exp_f), bit for bit, in about 14
// full-rate operations (the softmax terms exp(key - max) of the packed routing kernel). Where
// exp_f's clamps and special cases are identities, it differs in two steps only:
//  - n = rint(x * log2 e) as t - 1.5 * 2^23 with t = (x * log2 e) + 1.5 * 2^23: adding 1.5 * 2^23
//    rounds |v| <= 2^22 to an integer, half to even, as rint does (n may be +0 where rint gives
//    -0; then r differs at most in the sign of a zero, and p = 1 either way);
//  - 2^n from t's bits in one multiply: n >= rint(-87 * log2 e) = -126, so 2^n is normal, p * s1
//    in exp_f is exact, and (p * s1) * s2 and p * 2^n round the same exact product once.
// Checked against exp_f on every float of the domain (tests/exact_math_test.cpp with
// SWITCHYARD_EXP_STRIDE=1; CTest samples every 61st): both use only correctly rounded operations,
// so the host's bits are the device's.
SY_HD float exp_f_nonpos(float x) {
  constexpr float kShift = 12582912.0f;  // 1.5 * 2^23
  const float t = x * 1.44269504f + kShift;
  const float n = t - kShift;
  const float p = exp_reduced_poly(n, x);
  // t's bits are 0x4b400000 + n; only the low 9 bits of (bits + 127) survive the shift.
  return p * bits_to_float((float_to_bits(t) + 127u) << 23);
}

// e^x - 1, accurate near 0.
SY_HD float expm1_f(float x) {
  if (x > -0.5f && x < 0.5f) {
    float p = 2.48015873e-05f;  // 1/8!
    p = exact_fma(p, x, 1.98412698e-04f);
    p = exact_fma(p, x, 1.38888889e-03f);
    p = exact_fma(p, x, 8.33333333e-03f);
    p = exact_fma(p, x, 4.16666667e-02f);
    p = exact_fma(p, x, 1.66666667e-01f);
    p = exact_fma(p, x, 0.5f);
    return exact_fma(p * x, x, x);
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
  const float s = div_f(m - 1.0f, m + 1.0f);
  const float s2 = s * s;
  float p = 0.0909090909f;  // 1/11
  p = exact_fma(p, s2, 0.111111111f);
  p = exact_fma(p, s2, 0.142857143f);
  p = exact_fma(p, s2, 0.2f);
  p = exact_fma(p, s2, 0.333333333f);
  p = exact_fma(p, s2, 1.0f);
  const float log_m = 2.0f * s * p;
  const float fe = static_cast<float>(e);
  return exact_fma(fe, 1.42860677e-06f, exact_fma(fe, 0.693145751953125f, log_m));
}

// log(1 + u) for u >= 0 (Goldberg's correction keeps it accurate for small u).
SY_HD float log1p_f(float u) {
  const float w = 1.0f + u;
  if (w == 1.0f) return u;
  if (!is_finite(w)) return w;
  return log_f(w) * div_f(u, w - 1.0f);
}

SY_HD float sigmoid_f(float x) {
  return div_f(1.0f, 1.0f + exp_f(-x));
}

SY_HD float tanh_f(float x) {
  if (is_nan(x)) return x;
  const float ax = x < 0.0f ? -x : x;
  if (ax > 9.1f) return x < 0.0f ? -1.0f : 1.0f;
  const float t = expm1_f(2.0f * ax);
  const float r = div_f(t, t + 2.0f);
  return x < 0.0f ? -r : r;
}

SY_HD float softplus_f(float x) {
  if (is_nan(x)) return x;
  if (x > 20.0f) return x;
  return log1p_f(exp_f(x));
}

}  // namespace switchyard::detail
