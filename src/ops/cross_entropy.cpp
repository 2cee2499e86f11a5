#include "ops/cross_entropy.h"

#include <cmath>

#include "ops/vecmath.h"

namespace moe {

template <typename S>
void crossentropy_forward_ref(S* losses, S* lse, const S* logits, const int32_t* targets, int N, int V) {
  for (int n = 0; n < N; n++) {
    const S* x = logits + size_t(n) * V;
    double mx = -INFINITY;
    for (int j = 0; j < V; j++) mx = std::max(mx, double(x[j]));
    double sum = 0;
    for (int j = 0; j < V; j++) sum += std::exp(double(x[j]) - mx);
    double l = mx + std::log(sum);
    lse[n] = S(l);
    losses[n] = targets[n] < 0 ? S(0) : S(l - double(x[targets[n]]));
  }
}

template <typename S>
void crossentropy_backward_ref(S* dlogits, const S* dlosses, const S* logits, const S* lse, const int32_t* targets,
                               int N, int V) {
  for (int n = 0; n < N; n++) {
    const S* x = logits + size_t(n) * V;
    S* d = dlogits + size_t(n) * V;
    int tgt = targets[n];
    for (int j = 0; j < V; j++) {
      double p = std::exp(double(x[j]) - double(lse[n]));
      d[j] = tgt < 0 ? S(0) : S((p - (j == tgt ? 1.0 : 0.0)) * double(dlosses[n]));
    }
  }
}

template void crossentropy_forward_ref<float>(float*, float*, const float*, const int32_t*, int, int);
template void crossentropy_forward_ref<double>(double*, double*, const double*, const int32_t*, int, int);
template void crossentropy_backward_ref<float>(float*, const float*, const float*, const float*, const int32_t*, int,
                                               int);
template void crossentropy_backward_ref<double>(double*, const double*, const double*, const double*,
                                                const int32_t*, int, int);

void crossentropy_forward(float* losses, float* lse, const float* logits, const int32_t* targets, int N, int V) {
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++) {
    const float* x = logits + size_t(n) * V;
    float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
    for (int j = 0; j < V; j++) mx = x[j] > mx ? x[j] : mx;
    float sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int j = 0; j < V; j++) sum += vexp(x[j] - mx);
    float l = mx + std::log(sum);
    lse[n] = l;
    losses[n] = targets[n] < 0 ? 0.0f : l - x[targets[n]];
  }
}

void crossentropy_backward(float* dlogits, const float* dlosses, const float* logits, const float* lse,
                           const int32_t* targets, int N, int V) {
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++) {
    const float* x = logits + size_t(n) * V;
    float* d = dlogits + size_t(n) * V;
    int tgt = targets[n];
    if (tgt < 0) {
      for (int j = 0; j < V; j++) d[j] = 0.0f;
      continue;
    }
    const float l = lse[n], g = dlosses[n];
#pragma omp simd
    for (int j = 0; j < V; j++) d[j] = vexp(x[j] - l) * g;  // in place when d == x
    d[tgt] -= g;
  }
}

}  // namespace moe
