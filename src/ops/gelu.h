// GELU, tanh approximation (GPT-2's "gelu_new", torch gelu(approximate="tanh")):
//   out = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))       elementwise over n values
// Backward: dinp assigned (may alias dout).
#pragma once
#include <cstddef>

namespace moe {

template <typename S>
void gelu_forward_ref(S* out, const S* inp, size_t n);
template <typename S>
void gelu_backward_ref(S* dinp, const S* inp, const S* dout, size_t n);

void gelu_forward(float* out, const float* inp, size_t n);
void gelu_backward(float* dinp, const float* inp, const float* dout, size_t n);

}  // namespace moe
