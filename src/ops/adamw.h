// AdamW with decoupled weight decay, exactly torch.optim.AdamW's order (step t >= 1):
//   p -= lr * wd * p
//   m = b1 m + (1-b1) g;   v = b2 v + (1-b2) g^2
//   p -= lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)
// Works on a span of the flat buffers (params, grads, m, v share a layout), so a
// caller can use different weight decay for different tensors.
#pragma once
#include <cstddef>

#include "tensor/dtype.h"

namespace moe {

struct AdamWParams {
  float lr = 1e-3f;
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float eps = 1e-8f;
  float weight_decay = 0.0f;
};

// grad_scale multiplies every gradient first (global-norm clipping folded into the
// update: one pass over the buffers instead of two). params_bf, when given, receives
// the updated parameters rounded to bf16 (the bf16 compute copy, in the same pass).
template <typename S>
void adamw_update_ref(S* params, S* m, S* v, const S* grads, size_t n, const AdamWParams& hp, int t,
                      double grad_scale = 1.0);
void adamw_update(float* params, float* m, float* v, const float* grads, size_t n, const AdamWParams& hp, int t,
                  float grad_scale = 1.0f, bf16* params_bf = nullptr);

}  // namespace moe
