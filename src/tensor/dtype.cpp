#include "tensor/dtype.h"

#include <immintrin.h>

#include <cmath>

#include "tensor/cpu.h"

namespace moe {

size_t dtype_size(DType t) { return t == DType::F32 ? 4 : 2; }
const char* dtype_name(DType t) { return t == DType::F32 ? "F32" : "BF16"; }

uint16_t f32_to_f16_bits(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000u, a = x & 0x7fffffffu;
  if (a > 0x7f800000u) return uint16_t(sign | 0x7e00u);   // NaN
  if (a >= 0x477ff000u) return uint16_t(sign | 0x7c00u);  // >= 65520 rounds to inf
  if (a < 0x38800000u) {                                  // below 2^-14: a subnormal half (or 0)
    float m = std::fabs(f) * 16777216.0f;                 // in units of 2^-24, exact
    return uint16_t(sign | uint32_t(std::nearbyint(m)));  // ties to even; 1024 is the smallest normal
  }
  uint32_t h = ((((a >> 23) - 127 + 15) << 10) | ((a & 0x7fffffu) >> 13));
  const uint32_t rest = a & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) h++;  // a carry into the exponent is right
  return uint16_t(sign | h);
}

void f32_to_bf16_ref(bf16* out, const float* in, size_t n) {
  for (size_t i = 0; i < n; i++) out[i] = f32_to_bf16(in[i]);
}

// The scalar rounding in 16-lane integer arithmetic. (vcvtneps2bf16 would be one
// instruction, but it flushes denormal inputs to zero, so it would not match the
// scalar path or PyTorch bit for bit; this loop is memory-bound either way.)
// GCC 12 warns inside its own _mm512_srli_epi32 (an "undefined" source operand that
// the mask makes irrelevant): a known false positive.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
__attribute__((target("avx512f"))) static void f32_to_bf16_avx512(bf16* out, const float* in, size_t n) {
  const __m512i one = _mm512_set1_epi32(1), bias = _mm512_set1_epi32(0x7fff);
  const __m512i abs_mask = _mm512_set1_epi32(0x7fffffff), inf = _mm512_set1_epi32(0x7f800000);
  const __m512i quiet = _mm512_set1_epi32(0x0040);
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512i u = _mm512_loadu_si512(in + i);
    __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), one);
    __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(bias, lsb)), 16);
    __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, abs_mask), inf);
    r = _mm512_mask_or_epi32(r, nan, _mm512_srli_epi32(u, 16), quiet);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), _mm512_cvtepi32_epi16(r));
  }
  for (; i < n; i++) out[i] = f32_to_bf16(in[i]);
}
#pragma GCC diagnostic pop

// vcvtps2ph rounds to nearest even like the scalar path, subnormal halves included
// (MXCSR's FTZ/DAZ do not apply to it); NaN lanes are redone by the scalar path, which
// keeps no payload.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // inside GCC 12's _mm512_cvtps_ph, as above
__attribute__((target("avx512f"))) static void f32_to_f16_avx512(uint16_t* out, const float* in, size_t n) {
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 x = _mm512_loadu_ps(in + i);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i),
                        _mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    if (_mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q))
      for (size_t j = i; j < i + 16; j++) out[j] = f32_to_f16_bits(in[j]);
  }
  for (; i < n; i++) out[i] = f32_to_f16_bits(in[i]);
}
#pragma GCC diagnostic pop

void f32_to_f16(uint16_t* out, const float* in, size_t n) {
  if (cpu_has_avx512f()) {
#pragma omp parallel for schedule(static) if (n > (1u << 16))
    for (size_t c = 0; c < n; c += 4096) f32_to_f16_avx512(out + c, in + c, n - c < 4096 ? n - c : 4096);
    return;
  }
#pragma omp parallel for schedule(static) if (n > (1u << 16))
  for (size_t i = 0; i < n; i++) out[i] = f32_to_f16_bits(in[i]);
}

void f32_to_bf16(bf16* out, const float* in, size_t n) {
  if (cpu_has_avx512f()) {
#pragma omp parallel for schedule(static) if (n > (1u << 16))
    for (size_t c = 0; c < n; c += 4096) {
      size_t len = n - c < 4096 ? n - c : 4096;
      f32_to_bf16_avx512(out + c, in + c, len);
    }
    return;
  }
#pragma omp parallel for schedule(static) if (n > (1u << 16))
  for (size_t i = 0; i < n; i++) out[i] = f32_to_bf16(in[i]);
}

void bf16_to_f32(float* out, const bf16* in, size_t n) {
#pragma omp parallel for schedule(static) if (n > (1u << 16))
  for (size_t i = 0; i < n; i++) out[i] = bf16_to_f32(in[i]);
}

}  // namespace moe
