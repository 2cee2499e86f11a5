#include "ops/swiglu.h"

#include <cmath>

#include "ops/vecmath.h"

namespace moe {

template <typename S>
void silu_forward_ref(S* out, const S* inp, size_t n) {
  for (size_t i = 0; i < n; i++) {
    double x = inp[i];
    out[i] = S(x / (1.0 + std::exp(-x)));
  }
}

// silu'(x) = sig(x) (1 + x (1 - sig(x)))
template <typename S>
void silu_backward_ref(S* dinp, const S* inp, const S* dout, size_t n) {
  for (size_t i = 0; i < n; i++) {
    double x = inp[i];
    double sg = 1.0 / (1.0 + std::exp(-x));
    dinp[i] = S(double(dout[i]) * sg * (1.0 + x * (1.0 - sg)));
  }
}

template <typename S>
void swiglu_forward_ref(S* out, const S* gate, const S* up, size_t n) {
  for (size_t i = 0; i < n; i++) {
    double g = gate[i];
    out[i] = S(g / (1.0 + std::exp(-g)) * double(up[i]));
  }
}

template <typename S>
void swiglu_backward_ref(S* dgate, S* dup, const S* dout, const S* gate, const S* up, size_t n) {
  for (size_t i = 0; i < n; i++) {
    double g = gate[i], u = up[i], d = dout[i];
    double sg = 1.0 / (1.0 + std::exp(-g));
    dgate[i] = S(d * u * sg * (1.0 + g * (1.0 - sg)));
    dup[i] = S(d * g * sg);
  }
}

template void silu_forward_ref<float>(float*, const float*, size_t);
template void silu_forward_ref<double>(double*, const double*, size_t);
template void silu_backward_ref<float>(float*, const float*, const float*, size_t);
template void silu_backward_ref<double>(double*, const double*, const double*, size_t);
template void swiglu_forward_ref<float>(float*, const float*, const float*, size_t);
template void swiglu_forward_ref<double>(double*, const double*, const double*, size_t);
template void swiglu_backward_ref<float>(float*, float*, const float*, const float*, const float*, size_t);
template void swiglu_backward_ref<double>(double*, double*, const double*, const double*, const double*, size_t);

void silu_forward(float* out, const float* inp, size_t n) {
#pragma omp parallel for simd schedule(static)
  for (size_t i = 0; i < n; i++) out[i] = inp[i] / (1.0f + vexp(-inp[i]));
}

void silu_backward(float* dinp, const float* inp, const float* dout, size_t n) {
#pragma omp parallel for simd schedule(static)
  for (size_t i = 0; i < n; i++) {
    float x = inp[i];
    float sg = 1.0f / (1.0f + vexp(-x));
    float sm = 1.0f / (1.0f + vexp(x));  // 1 - sg without the cancellation at large x
    dinp[i] = dout[i] * sg * (1.0f + x * sm);
  }
}

void swiglu_forward(float* out, const float* gate, const float* up, size_t n) {
#pragma omp parallel for simd schedule(static)
  for (size_t i = 0; i < n; i++) out[i] = gate[i] / (1.0f + vexp(-gate[i])) * up[i];
}

void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, size_t n) {
#pragma omp parallel for simd schedule(static)
  for (size_t i = 0; i < n; i++) {
    float g = gate[i], u = up[i], d = dout[i];
    float sg = 1.0f / (1.0f + vexp(-g));
    float sm = 1.0f / (1.0f + vexp(g));  // 1 - sg without the cancellation at large g
    float dg = d * u * sg * (1.0f + g * sm);
    dup[i] = d * g * sg;
    dgate[i] = dg;
  }
}

}  // namespace moe
