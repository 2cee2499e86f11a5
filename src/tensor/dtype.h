// Scalar types: float32 and bfloat16 (the upper 16 bits of a float32).
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

namespace moe {

enum class DType : uint8_t { F32, BF16 };

size_t dtype_size(DType t);
const char* dtype_name(DType t);  // "F32", "BF16": the safetensors spelling

struct bf16 {
  uint16_t bits;
};

// float32 -> bfloat16, round to nearest, ties to even. NaN stays NaN (quiet).
inline bf16 f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return bf16{uint16_t((u >> 16) | 0x0040u)};
  uint32_t lsb = (u >> 16) & 1u;
  u += 0x7fffu + lsb;
  return bf16{uint16_t(u >> 16)};
}

inline float bf16_to_f32(bf16 h) {
  uint32_t u = uint32_t(h.bits) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// float32 -> IEEE half bits, round to nearest even; overflow to inf, NaN kept.
uint16_t f32_to_f16_bits(float f);

// Array conversions. The fast versions use AVX-512 when the CPU has it and
// match the scalar ones above bit for bit (tests/test_tensor.cpp checks this).
void f32_to_bf16_ref(bf16* out, const float* in, size_t n);
void f32_to_bf16(bf16* out, const float* in, size_t n);
void bf16_to_f32(float* out, const bf16* in, size_t n);
void f32_to_f16(uint16_t* out, const float* in, size_t n);  // f32_to_f16_bits of each

}  // namespace moe
