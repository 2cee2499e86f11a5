#include "ops/dropout.h"

namespace moe {

static inline uint64_t splitmix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

float dropout_uniform(uint64_t seed, uint64_t i) {
  return float(splitmix64(splitmix64(seed) + i) >> 40) * (1.0f / 16777216.0f);
}

template <typename S>
void dropout_forward_ref(S* out, const S* inp, size_t n, float p, uint64_t seed, uint64_t first) {
  double scale = 1.0 / (1.0 - double(p));
  for (size_t i = 0; i < n; i++) out[i] = dropout_uniform(seed, first + i) >= p ? S(inp[i] * scale) : S(0);
}

template <typename S>
void dropout_backward_ref(S* dinp, const S* dout, size_t n, float p, uint64_t seed, uint64_t first) {
  double scale = 1.0 / (1.0 - double(p));
  for (size_t i = 0; i < n; i++) dinp[i] = dropout_uniform(seed, first + i) >= p ? S(dout[i] * scale) : S(0);
}

template void dropout_forward_ref<float>(float*, const float*, size_t, float, uint64_t, uint64_t);
template void dropout_forward_ref<double>(double*, const double*, size_t, float, uint64_t, uint64_t);
template void dropout_backward_ref<float>(float*, const float*, size_t, float, uint64_t, uint64_t);
template void dropout_backward_ref<double>(double*, const double*, size_t, float, uint64_t, uint64_t);

// The forward and backward apply the same mask: one kernel for both.
static void dropout_apply(float* out, const float* in, size_t n, float p, uint64_t seed, uint64_t first) {
  if (p == 0.0f) {
    if (out != in)
#pragma omp parallel for simd schedule(static)
      for (size_t i = 0; i < n; i++) out[i] = in[i];
    return;
  }
  const uint64_t base = splitmix64(seed) + first;
  const float scale = float(1.0 / (1.0 - double(p)));
#pragma omp parallel for simd schedule(static)
  for (size_t i = 0; i < n; i++) {
    float u = float(splitmix64(base + i) >> 40) * (1.0f / 16777216.0f);
    out[i] = u >= p ? in[i] * scale : 0.0f;
  }
}

void dropout_forward(float* out, const float* inp, size_t n, float p, uint64_t seed, uint64_t first) {
  dropout_apply(out, inp, n, p, seed, first);
}

void dropout_backward(float* dinp, const float* dout, size_t n, float p, uint64_t seed, uint64_t first) {
  dropout_apply(dinp, dout, n, p, seed, first);
}

}  // namespace moe
