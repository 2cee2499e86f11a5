#include "ops/clip.h"

#include <cmath>
#include <vector>

namespace moe {

template <typename S>
double grad_norm_ref(const S* g, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; i++) s += double(g[i]) * double(g[i]);
  return std::sqrt(s);
}

template <typename S>
double grad_clip_ref(S* g, size_t n, double max_norm) {
  double norm = grad_norm_ref(g, n);
  double coef = max_norm / (norm + 1e-6);
  if (coef < 1.0)
    for (size_t i = 0; i < n; i++) g[i] = S(g[i] * coef);
  return norm;
}

template double grad_norm_ref<float>(const float*, size_t);
template double grad_norm_ref<double>(const double*, size_t);
template double grad_clip_ref<float>(float*, size_t, double);
template double grad_clip_ref<double>(double*, size_t, double);

// Fixed-size chunks summed in double, then the chunk sums added in order: the
// result does not depend on the thread count or schedule.
double grad_norm(const float* g, size_t n) { return std::sqrt(grad_sumsq(g, n)); }


double grad_clip(float* g, size_t n, double max_norm) {
  double norm = grad_norm(g, n);
  double coef = max_norm / (norm + 1e-6);
  if (coef < 1.0) {
    const float c = float(coef);
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) g[i] *= c;
  }
  return norm;
}

}  // namespace moe
