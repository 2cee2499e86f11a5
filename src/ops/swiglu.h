// SiLU and SwiGLU (Llama MLP: down(silu(gate(x)) * up(x))), elementwise over n values.
//   silu(x) = x * sigmoid(x)
//   swiglu:  out = silu(gate) * up
// Backward: activation gradients assigned (dinp may alias dout).
#pragma once
#include <cstddef>

namespace moe {

template <typename S>
void silu_forward_ref(S* out, const S* inp, size_t n);
template <typename S>
void silu_backward_ref(S* dinp, const S* inp, const S* dout, size_t n);
template <typename S>
void swiglu_forward_ref(S* out, const S* gate, const S* up, size_t n);
template <typename S>
void swiglu_backward_ref(S* dgate, S* dup, const S* dout, const S* gate, const S* up, size_t n);

void silu_forward(float* out, const float* inp, size_t n);
void silu_backward(float* dinp, const float* inp, const float* dout, size_t n);
void swiglu_forward(float* out, const float* gate, const float* up, size_t n);
void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, size_t n);

}  // namespace moe
