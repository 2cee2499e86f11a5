// safetensors dtypes (safetensors.h): names, sizes, f16/bf16 conversion and checked
// encoding, and the entries' element counts.
#include "io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <stdexcept>

namespace moe {

using json = nlohmann::json;

namespace {
struct DTypeInfo {
  STDType t;
  const char* name;
  size_t size;
};
constexpr DTypeInfo kDTypes[] = {
    {STDType::F32, "F32", 4}, {STDType::F16, "F16", 2}, {STDType::BF16, "BF16", 2}, {STDType::F64, "F64", 8},
    {STDType::I8, "I8", 1},   {STDType::U8, "U8", 1},   {STDType::I16, "I16", 2},   {STDType::I32, "I32", 4},
    {STDType::I64, "I64", 8}, {STDType::BOOL, "BOOL", 1},
};
}  // namespace

size_t st_dtype_size(STDType t) { return kDTypes[size_t(t)].size; }
const char* st_dtype_name(STDType t) { return kDTypes[size_t(t)].name; }

bool st_dtype_parse(std::string_view s, STDType* out) {
  for (const auto& d : kDTypes)
    if (s == d.name) {
      *out = d.t;
      return true;
    }
  return false;
}

STDType st_dtype_of(DType t) { return t == DType::F32 ? STDType::F32 : STDType::BF16; }

float f16_to_f32(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t man = h & 0x3ffu;
  uint32_t u;
  if (exp == 0x1f) {
    u = sign | 0x7f800000u | (man << 13);  // inf, or NaN with its payload
  } else if (exp != 0) {
    u = sign | ((exp + 112) << 23) | (man << 13);  // normal: rebias 15 -> 127
  } else if (man == 0) {
    u = sign;  // signed zero
  } else {
    // Subnormal half: man * 2^-24, normalise into a float.
    int e = -1;
    do {
      e++;
      man <<= 1;
    } while ((man & 0x400u) == 0);
    u = sign | uint32_t(112 - e) << 23 | ((man & 0x3ffu) << 13);
  }
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// ---------------------------------------------------------------- entries

int64_t STEntry::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;  // overflow excluded when the header was validated
  return n;
}

void st_encode_f32_checked(void* dst, const float* src, size_t n, STDType t, const std::string& tensor) {
  st_encode_f32(dst, src, n, t);
  if (t == STDType::F32) return;
  // Inf in the 16-bit encoding where the float was finite: an overflow (NaN stays NaN).
  const uint16_t* h = static_cast<const uint16_t*>(dst);
  const uint16_t inf = t == STDType::F16 ? 0x7C00 : 0x7F80;
  for (size_t i = 0; i < n; i++)
    if ((h[i] & 0x7FFF) == inf && std::isfinite(src[i]))
      throw std::runtime_error("tensor '" + tensor + "' holds " + std::to_string(src[i]) + " at flat index " +
                               std::to_string(i) + ", beyond " + st_dtype_name(t) + "'s range" +
                               (t == STDType::F16 ? " (65504)" : "") + ": it would be written as Inf (give --dtype " +
                               (t == STDType::F16 ? "bf16 or f32)" : "f32)"));
}

void st_encode_f32(void* dst, const float* src, size_t n, STDType t) {
  if (t == STDType::F32) std::memcpy(dst, src, n * 4);
  else if (t == STDType::BF16) f32_to_bf16(static_cast<bf16*>(dst), src, n);
  else if (t == STDType::F16)
    f32_to_f16(static_cast<uint16_t*>(dst), src, n);
  else throw std::invalid_argument(std::string("st_encode_f32: dtype ") + st_dtype_name(t) + " is not F32, BF16 or F16");
}

std::string shape_string(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); i++) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

std::string STEntry::shape_str() const { return shape_string(shape); }

}  // namespace moe
