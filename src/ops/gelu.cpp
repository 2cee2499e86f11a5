#include "ops/gelu.h"

#include <cmath>

#include "ops/vecmath.h"

namespace moe {

namespace {
constexpr double kSqrt2OverPi = 0.7978845608028654;  // sqrt(2/pi)
constexpr double kCoef = 0.044715;
}  // namespace

template <typename S>
void gelu_forward_ref(S* out, const S* inp, size_t n) {
  for (size_t i = 0; i < n; i++) {
    double x = inp[i];
    out[i] = S(0.5 * x * (1.0 + std::tanh(kSqrt2OverPi * (x + kCoef * x * x * x))));
  }
}

// d/dx = 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) du/dx,  u = s (x + a x^3), du/dx = s (1 + 3 a x^2).
template <typename S>
void gelu_backward_ref(S* dinp, const S* inp, const S* dout, size_t n) {
  for (size_t i = 0; i < n; i++) {
    double x = inp[i];
    double t = std::tanh(kSqrt2OverPi * (x + kCoef * x * x * x));
    double du = kSqrt2OverPi * (1.0 + 3.0 * kCoef * x * x);
    dinp[i] = S(double(dout[i]) * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du));
  }
}

template void gelu_forward_ref<float>(float*, const float*, size_t);
template void gelu_forward_ref<double>(double*, const double*, size_t);
template void gelu_backward_ref<float>(float*, const float*, const float*, size_t);
template void gelu_backward_ref<double>(double*, const double*, const double*, size_t);

// fp32 path: 0.5 (1 + tanh u) = sigmoid(2u) and 1 - tanh^2 u = 4 sigmoid(2u) sigmoid(-2u).
// Same values, but no cancellation where tanh u is near -1 (x below about -3), which
// in the (1 + t) form lost most digits of the small outputs and gradients there.
void gelu_forward(float* out, const float* inp, size_t n) {
  const float s = float(kSqrt2OverPi), a = float(kCoef);
#pragma omp parallel for simd schedule(static)
  for (size_t i = 0; i < n; i++) {
    float x = inp[i];
    float u = s * (x + a * x * x * x);
    out[i] = x / (1.0f + vexp(-2.0f * u));
  }
}

void gelu_backward(float* dinp, const float* inp, const float* dout, size_t n) {
  const float s = float(kSqrt2OverPi), a = float(kCoef);
#pragma omp parallel for simd schedule(static)
  for (size_t i = 0; i < n; i++) {
    float x = inp[i];
    float u = s * (x + a * x * x * x);
    float sp = 1.0f / (1.0f + vexp(-2.0f * u));
    float sm = 1.0f / (1.0f + vexp(2.0f * u));
    float du = s * (1.0f + 3.0f * a * x * x);
    dinp[i] = dout[i] * (sp + 2.0f * x * sp * sm * du);
  }
}

}  // namespace moe
