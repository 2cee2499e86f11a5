#include "ops/rmsnorm.h"

#include <cmath>

#include "ops/partials.h"

namespace moe {

template <typename S>
void rmsnorm_forward_ref(S* out, S* rstd, const S* inp, const S* w, int N, int C, float eps) {
  for (int n = 0; n < N; n++) {
    const S* x = inp + size_t(n) * C;
    double ss = 0;
    for (int c = 0; c < C; c++) ss += double(x[c]) * x[c];
    double r = 1.0 / std::sqrt(ss / C + eps);
    for (int c = 0; c < C; c++) out[size_t(n) * C + c] = S(x[c] * r * w[c]);
    rstd[n] = S(r);
  }
}

// With xhat = x rstd and g = dout * w:  dinp = rstd (g - xhat mean(g xhat)),  dw += dout xhat.
template <typename S>
void rmsnorm_backward_ref(S* dinp, S* dw, const S* dout, const S* inp, const S* w, const S* rstd, int N, int C) {
  for (int n = 0; n < N; n++) {
    const S* x = inp + size_t(n) * C;
    const S* d = dout + size_t(n) * C;
    double r = rstd[n];
    double gx = 0;
    for (int c = 0; c < C; c++) gx += double(d[c]) * w[c] * x[c] * r;
    gx /= C;
    for (int c = 0; c < C; c++) {
      double xhat = x[c] * r;
      dinp[size_t(n) * C + c] = S(r * (double(d[c]) * w[c] - xhat * gx));
      dw[c] += S(double(d[c]) * xhat);
    }
  }
}

template void rmsnorm_forward_ref<float>(float*, float*, const float*, const float*, int, int, float);
template void rmsnorm_forward_ref<double>(double*, double*, const double*, const double*, int, int, float);
template void rmsnorm_backward_ref<float>(float*, float*, const float*, const float*, const float*, const float*,
                                          int, int);
template void rmsnorm_backward_ref<double>(double*, double*, const double*, const double*, const double*,
                                           const double*, int, int);

void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* w, int N, int C, float eps) {
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++) {
    const float* x = inp + size_t(n) * C;
    float* o = out + size_t(n) * C;
    float ss = 0;
#pragma omp simd reduction(+ : ss)
    for (int c = 0; c < C; c++) ss += x[c] * x[c];
    float r = 1.0f / std::sqrt(ss / C + eps);
#pragma omp simd
    for (int c = 0; c < C; c++) o[c] = x[c] * r * w[c];
    rstd[n] = r;
  }
}

void rmsnorm_backward(float* dinp, float* dw, const float* dout, const float* inp, const float* w, const float* rstd,
                      int N, int C) {
  Partials part(C);
#pragma omp parallel num_threads(part.threads())
  {
    float* pdw = part.mine();
#pragma omp for schedule(static)
    for (int n = 0; n < N; n++) {
      const float* x = inp + size_t(n) * C;
      const float* d = dout + size_t(n) * C;
      float* di = dinp + size_t(n) * C;
      float r = rstd[n];
      float gx = 0;
#pragma omp simd reduction(+ : gx)
      for (int c = 0; c < C; c++) gx += d[c] * w[c] * x[c];
      gx = gx * r / C;
#pragma omp simd
      for (int c = 0; c < C; c++) {
        float xhat = x[c] * r;
        di[c] = r * (d[c] * w[c] - xhat * gx);
        pdw[c] += d[c] * xhat;
      }
    }
  }
  part.add_to(dw);
}

}  // namespace moe
