#include "tensor/dtype.h"

#include <immintrin.h>

#include "tensor/cpu.h"

namespace moe {

size_t dtype_size(DType t) { return t == DType::F32 ? 4 : 2; }
const char* dtype_name(DType t) { return t == DType::F32 ? "F32" : "BF16"; }

void f32_to_bf16_ref(bf16* out, const float* in, size_t n) {
  for (size_t i = 0; i < n; i++) out[i] = f32_to_bf16(in[i]);
}

// vcvtneps2bf16 rounds to nearest even and keeps NaN quiet, like f32_to_bf16.
__attribute__((target("avx512f,avx512bf16"))) static void f32_to_bf16_avx512(bf16* out, const float* in,
                                                                              size_t n) {
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m256bh h = _mm512_cvtneps_pbh(_mm512_loadu_ps(in + i));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), reinterpret_cast<__m256i&>(h));
  }
  for (; i < n; i++) out[i] = f32_to_bf16(in[i]);
}

void f32_to_bf16(bf16* out, const float* in, size_t n) {
  if (cpu_has_avx512_bf16()) {
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
