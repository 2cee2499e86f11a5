// ReLU and GeGLU, the MLP activations of T5 (the original T5's "relu": wo(relu(wi x));
// T5 v1.1's "gated-gelu": wo(gelu_tanh(wi_0 x) * wi_1 x), HF's gelu_new), elementwise over n:
//   relu:   out = max(x, 0)                 backward: dinp = dout where x > 0, else 0
//           (0 at x = 0, as torch; a NaN input gives a NaN output)
//   geglu:  out = gelu(gate) * up           with gelu the tanh form of ops/gelu.h, the
//           same fp32 expression in the fast path (tested bit-identical at up = 1)
//           backward: dgate = dout * up * gelu'(gate), dup = dout * gelu(gate)
// Backward: activation gradients assigned (dinp, or dgate, may alias dout).
#pragma once
#include <cstddef>

namespace moe {

template <typename S>
void relu_forward_ref(S* out, const S* inp, size_t n);
template <typename S>
void relu_backward_ref(S* dinp, const S* inp, const S* dout, size_t n);
template <typename S>
void geglu_forward_ref(S* out, const S* gate, const S* up, size_t n);
template <typename S>
void geglu_backward_ref(S* dgate, S* dup, const S* dout, const S* gate, const S* up, size_t n);

void relu_forward(float* out, const float* inp, size_t n);
void relu_backward(float* dinp, const float* inp, const float* dout, size_t n);
void geglu_forward(float* out, const float* gate, const float* up, size_t n);
void geglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, size_t n);

}  // namespace moe
