// AdamW with decoupled weight decay, exactly torch.optim.AdamW's order (step t >= 1):
//   p -= lr * wd * p
//   m = b1 m + (1-b1) g;   v = b2 v + (1-b2) g^2
//   p -= lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)
// Works on a span of the flat buffers (params, grads, m, v share a layout), so a
// caller can use different weight decay for different tensors.
#pragma once
#include <cstddef>

namespace moe {

struct AdamWParams {
  float lr = 1e-3f;
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float eps = 1e-8f;
  float weight_decay = 0.0f;
};

template <typename S>
void adamw_update_ref(S* params, S* m, S* v, const S* grads, size_t n, const AdamWParams& hp, int t);
void adamw_update(float* params, float* m, float* v, const float* grads, size_t n, const AdamWParams& hp, int t);

}  // namespace moe
