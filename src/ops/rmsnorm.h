// RMSNorm (Llama):  out (N,C) = inp * rstd * w,  rstd (N) = 1/sqrt(mean(inp^2) + eps), saved.
// Backward: dinp assigned; dw accumulates.
#pragma once
#include <cstddef>

namespace moe {

template <typename S>
void rmsnorm_forward_ref(S* out, S* rstd, const S* inp, const S* w, int N, int C, float eps);
template <typename S>
void rmsnorm_backward_ref(S* dinp, S* dw, const S* dout, const S* inp, const S* w, const S* rstd, int N, int C);

void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* w, int N, int C, float eps);
void rmsnorm_backward(float* dinp, float* dw, const float* dout, const float* inp, const float* w, const float* rstd,
                      int N, int C);

}  // namespace moe
