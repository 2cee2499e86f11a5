#include "ops/adamw.h"

#include <cmath>

namespace moe {

template <typename S>
void adamw_update_ref(S* params, S* m, S* v, const S* grads, size_t n, const AdamWParams& hp, int t,
                      double grad_scale) {
  double bc1 = 1.0 - std::pow(double(hp.beta1), t);
  double bc2 = 1.0 - std::pow(double(hp.beta2), t);
  for (size_t i = 0; i < n; i++) {
    double p = params[i], g = double(grads[i]) * grad_scale;
    p -= double(hp.lr) * hp.weight_decay * p;
    double mi = hp.beta1 * double(m[i]) + (1.0 - hp.beta1) * g;
    double vi = hp.beta2 * double(v[i]) + (1.0 - hp.beta2) * g * g;
    p -= double(hp.lr) * (mi / bc1) / (std::sqrt(vi / bc2) + hp.eps);
    params[i] = S(p), m[i] = S(mi), v[i] = S(vi);
  }
}

template void adamw_update_ref<float>(float*, float*, float*, const float*, size_t, const AdamWParams&, int, double);
template void adamw_update_ref<double>(double*, double*, double*, const double*, size_t, const AdamWParams&, int,
                                       double);

// As torch's single-tensor AdamW: step size lr / bc1, denominator sqrt(v)/sqrt(bc2) + eps.
void adamw_update(float* params, float* m, float* v, const float* grads, size_t n, const AdamWParams& hp, int t,
                  float grad_scale, bf16* params_bf) {
  const float b1 = hp.beta1, b2 = hp.beta2;
  const float bc1 = float(1.0 - std::pow(double(b1), t));
  const float sqrt_bc2 = float(std::sqrt(1.0 - std::pow(double(b2), t)));
  const float step = hp.lr / bc1;
  const float decay = 1.0f - hp.lr * hp.weight_decay;
  const float eps = hp.eps;
  auto update = [&](size_t i) {
    const float g = grad_scale == 1.0f ? grads[i] : grads[i] * grad_scale;
    const float mi = b1 * m[i] + (1.0f - b1) * g;
    const float vi = b2 * v[i] + (1.0f - b2) * g * g;
    m[i] = mi, v[i] = vi;
    return params[i] = params[i] * decay - step * mi / (std::sqrt(vi) / sqrt_bc2 + eps);
  };
  if (!params_bf) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) update(i);
  } else {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) params_bf[i] = f32_to_bf16(update(i));
  }
}

}  // namespace moe
