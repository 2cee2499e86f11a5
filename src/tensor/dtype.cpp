#include "tensor/dtype.h"

#include <immintrin.h>

#include "tensor/cpu.h"

namespace moe {

size_t dtype_size(DType t) { return t == DType::F32 ? 4 : 2; }
const char* dtype_name(DType t) { return t == DType::F32 ? "F32" : "BF16"; }

void f32_to_bf16_ref(bf16* out, const float* in, size_t n) {
  for (size_t i = 0; i < n; i++) out[i] = f32_to_bf16(in[i]);
}

// The scalar rounding in 16-lane integer arithmetic. (vcvtneps2bf16 would be one
// instruction, but it flushes denormal inputs to zero, so it would not match the
// scalar path or PyTorch bit for bit; this loop is memory-bound either way.)
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
