#include "ops/relu.h"

#include <cmath>

#include "ops/gelu.h"
#include "ops/vecmath.h"

namespace moe {

// ------------------------------------------------------------------ reference

// relu: x < 0 ? 0 : x keeps a NaN input NaN in the output (torch.relu does too), so
// the trainer's non-finite detection still sees it.
template <typename S>
void relu_forward_ref(S* out, const S* inp, size_t n) {
  for (size_t i = 0; i < n; i++) out[i] = inp[i] < S(0) ? S(0) : inp[i];
}

// The derivative at exactly 0 is taken as 0 (torch's convention too).
template <typename S>
void relu_backward_ref(S* dinp, const S* inp, const S* dout, size_t n) {
  for (size_t i = 0; i < n; i++) dinp[i] = inp[i] > S(0) ? dout[i] : S(0);
}

// geglu's gelu is ops/gelu.h's reference itself, evaluated in double one value at a
// time (the formula lives in one place): out = gelu(g) u, dgate = dout u gelu'(g),
// dup = dout gelu(g).
template <typename S>
void geglu_forward_ref(S* out, const S* gate, const S* up, size_t n) {
  for (size_t i = 0; i < n; i++) {
    double g = gate[i], a;
    gelu_forward_ref<double>(&a, &g, 1);
    out[i] = S(a * double(up[i]));
  }
}

template <typename S>
void geglu_backward_ref(S* dgate, S* dup, const S* dout, const S* gate, const S* up, size_t n) {
  for (size_t i = 0; i < n; i++) {
    double g = gate[i], u = up[i], d = dout[i], one = 1.0, a, da;
    gelu_forward_ref<double>(&a, &g, 1);
    gelu_backward_ref<double>(&da, &g, &one, 1);  // gelu'(g)
    dgate[i] = S(d * u * da);
    dup[i] = S(d * a);
  }
}

template void relu_forward_ref<float>(float*, const float*, size_t);
template void relu_forward_ref<double>(double*, const double*, size_t);
template void relu_backward_ref<float>(float*, const float*, const float*, size_t);
template void relu_backward_ref<double>(double*, const double*, const double*, size_t);
template void geglu_forward_ref<float>(float*, const float*, const float*, size_t);
template void geglu_forward_ref<double>(double*, const double*, const double*, size_t);
template void geglu_backward_ref<float>(float*, float*, const float*, const float*, const float*, size_t);
template void geglu_backward_ref<double>(double*, double*, const double*, const double*, const double*, size_t);

// ------------------------------------------------------------------ fast path

void relu_forward(float* out, const float* inp, size_t n) {
#pragma omp parallel for simd schedule(static)
  for (size_t i = 0; i < n; i++) out[i] = inp[i] < 0.0f ? 0.0f : inp[i];
}

void relu_backward(float* dinp, const float* inp, const float* dout, size_t n) {
#pragma omp parallel for simd schedule(static)
  for (size_t i = 0; i < n; i++) dinp[i] = inp[i] > 0.0f ? dout[i] : 0.0f;
}

// The fp32 gelu of ops/gelu.cpp's fast path, expression for expression (the sigmoid
// form: 0.5 (1 + tanh u) = sigmoid(2u), no cancellation for x below about -3). It is
// restated here rather than called so that it inlines into one vectorised pass over
// gate, up and out; tests/fast/test_fast_norm_act.cpp checks that geglu with up = 1
// gives gelu_forward's and gelu_backward's bits, so the two cannot drift apart.
namespace {
constexpr float kS = float(0.7978845608028654);  // sqrt(2/pi), as ops/gelu.cpp rounds it
constexpr float kA = float(0.044715);
}  // namespace

void geglu_forward(float* out, const float* gate, const float* up, size_t n) {
#pragma omp parallel for simd schedule(static)
  for (size_t i = 0; i < n; i++) {
    float x = gate[i];
    float u = kS * (x + kA * x * x * x);
    out[i] = x / (1.0f + vexp(-2.0f * u)) * up[i];
  }
}

// Out of place or in place: dgate may alias dout (each element is read before either
// output is written), as may dup.
void geglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, size_t n) {
#pragma omp parallel for simd schedule(static)
  for (size_t i = 0; i < n; i++) {
    float x = gate[i], d = dout[i];
    float u = kS * (x + kA * x * x * x);
    float sp = 1.0f / (1.0f + vexp(-2.0f * u));
    float sm = 1.0f / (1.0f + vexp(2.0f * u));
    float du = kS * (1.0f + 3.0f * kA * x * x);
    float dg = (d * up[i]) * (sp + 2.0f * x * sp * sm * du);
    dup[i] = d * (x * sp);  // gelu(x) = x sigmoid(2u), within an ulp of the forward's x / (1 + e)
    dgate[i] = dg;
  }
}

}  // namespace moe
