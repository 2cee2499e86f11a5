// Global gradient-norm clipping over a flat gradient buffer, as
// torch.nn.utils.clip_grad_norm_: norm = ||g||_2; when max_norm / (norm + 1e-6) < 1,
// g is scaled by that factor. Returns the norm before clipping. Sums in double.
#pragma once
#include <cstddef>

#include "tensor/sumsq.h"

namespace moe {

template <typename S>
double grad_norm_ref(const S* g, size_t n);
template <typename S>
double grad_clip_ref(S* g, size_t n, double max_norm);

double grad_norm(const float* g, size_t n);
double grad_clip(float* g, size_t n, double max_norm);

}  // namespace moe
