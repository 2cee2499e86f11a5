// exp in plain float arithmetic that GCC vectorises inside `#pragma omp simd`
// loops (glibc's vector expf is only offered under -ffast-math, which we never
// use). Cody-Waite range reduction x = n ln2 + r, |r| <= ln2/2, a degree-6
// polynomial for e^r, then 2^n by building the exponent bits. Max error about
// 2 ulp (tests/fast/test_fast_norm_act.cpp measures it against std::exp).
#pragma once
#include <bit>
#include <cstdint>

namespace moe {

#pragma omp declare simd notinbranch
inline float vexp(float x) {
  const float log2e = 1.44269504088896341f;
  const float ln2_hi = 0.693359375f, ln2_lo = -2.12194440e-4f;
  // Outside [lo, hi] the result is inf / 0: e^88 = 1.65e38 keeps 2^n finite, and
  // e^-87 = 1.6e-38 keeps it normal; the values cut off are < 1.2e-38 or > 1.6e38.
  const float hi = 88.0f, lo = -87.0f;
  float xc = x > hi ? hi : (x < lo ? lo : x);
  // Round to nearest with the 1.5 * 2^23 trick: exact for |x log2e| < 2^22.
  float n = (xc * log2e + 12582912.0f) - 12582912.0f;
  float r = xc - n * ln2_hi;
  r = r - n * ln2_lo;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  float scale = std::bit_cast<float>(int32_t((int32_t(n) + 127) << 23));
  float y = p * scale;
  y = x > hi ? std::bit_cast<float>(0x7f800000) : y;
  y = x < lo ? 0.0f : y;
  return x != x ? x : y;  // NaN in, NaN out
}

}  // namespace moe
