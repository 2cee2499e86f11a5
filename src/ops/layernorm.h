// LayerNorm over the last dimension:
//   out (N,C) = (inp - mean) * rstd * w + b,   rstd = 1/sqrt(var + eps) (biased variance)
// mean (N) and rstd (N) are saved for the backward. b may be null.
// Backward: dinp assigned; dw, db accumulate.
#pragma once
#include <cstddef>

namespace moe {

template <typename S>
void layernorm_forward_ref(S* out, S* mean, S* rstd, const S* inp, const S* w, const S* b, int N, int C, float eps);
template <typename S>
void layernorm_backward_ref(S* dinp, S* dw, S* db, const S* dout, const S* inp, const S* w, const S* mean,
                            const S* rstd, int N, int C);

void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* w, const float* b, int N,
                       int C, float eps);
void layernorm_backward(float* dinp, float* dw, float* db, const float* dout, const float* inp, const float* w,
                        const float* mean, const float* rstd, int N, int C);

}  // namespace moe
