// Rotary position embedding, Hugging Face Llama convention ("rotate_half": dimension i
// pairs with i + D/2), applied to x (B,T,H,D) at positions pos0 .. pos0+T-1:
//   f_i = theta^(-2i/D), a = pos * f_i,  for i < D/2:
//   out[i]     = x[i] cos a - x[i+D/2] sin a
//   out[i+D/2] = x[i+D/2] cos a + x[i] sin a
// Angles are computed in double and rounded once. out may alias inp (in place).
// Backward is the inverse rotation: dinp assigned (may alias dout). D must be even.
#pragma once
#include <cstddef>

namespace moe {

template <typename S>
void rope_forward_ref(S* out, const S* inp, int B, int T, int H, int D, float theta, int pos0);
template <typename S>
void rope_backward_ref(S* dinp, const S* dout, int B, int T, int H, int D, float theta, int pos0);

void rope_forward(float* out, const float* inp, int B, int T, int H, int D, float theta, int pos0);
void rope_backward(float* dinp, const float* dout, int B, int T, int H, int D, float theta, int pos0);

}  // namespace moe
