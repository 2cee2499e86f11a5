#include "ops/layernorm.h"

#include <cmath>

#include "ops/partials.h"

namespace moe {

template <typename S>
void layernorm_forward_ref(S* out, S* mean, S* rstd, const S* inp, const S* w, const S* b, int N, int C, float eps) {
  for (int n = 0; n < N; n++) {
    const S* x = inp + size_t(n) * C;
    double m = 0;
    for (int c = 0; c < C; c++) m += x[c];
    m /= C;
    double var = 0;
    for (int c = 0; c < C; c++) var += (x[c] - m) * (x[c] - m);
    var /= C;
    double r = 1.0 / std::sqrt(var + eps);
    for (int c = 0; c < C; c++) out[size_t(n) * C + c] = S((x[c] - m) * r * w[c] + (b ? double(b[c]) : 0.0));
    mean[n] = S(m);
    rstd[n] = S(r);
  }
}

// With xhat = (x - mean) rstd and g = dout * w:
//   dinp = rstd (g - mean(g) - xhat mean(g xhat)),  dw += dout xhat,  db += dout.
template <typename S>
void layernorm_backward_ref(S* dinp, S* dw, S* db, const S* dout, const S* inp, const S* w, const S* mean,
                            const S* rstd, int N, int C) {
  for (int n = 0; n < N; n++) {
    const S* x = inp + size_t(n) * C;
    const S* d = dout + size_t(n) * C;
    double m = mean[n], r = rstd[n];
    double gmean = 0, gxmean = 0;
    for (int c = 0; c < C; c++) {
      double xhat = (x[c] - m) * r;
      double g = double(d[c]) * w[c];
      gmean += g;
      gxmean += g * xhat;
    }
    gmean /= C;
    gxmean /= C;
    for (int c = 0; c < C; c++) {
      double xhat = (x[c] - m) * r;
      double g = double(d[c]) * w[c];
      dinp[size_t(n) * C + c] = S(r * (g - gmean - xhat * gxmean));
      dw[c] += S(double(d[c]) * xhat);
      if (db) db[c] += d[c];
    }
  }
}

template void layernorm_forward_ref<float>(float*, float*, float*, const float*, const float*, const float*, int,
                                           int, float);
template void layernorm_forward_ref<double>(double*, double*, double*, const double*, const double*, const double*,
                                            int, int, float);
template void layernorm_backward_ref<float>(float*, float*, float*, const float*, const float*, const float*,
                                            const float*, const float*, int, int);
template void layernorm_backward_ref<double>(double*, double*, double*, const double*, const double*,
                                             const double*, const double*, const double*, int, int);

void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* w, const float* b, int N,
                       int C, float eps) {
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++) {
    const float* x = inp + size_t(n) * C;
    float* o = out + size_t(n) * C;
    float s = 0;
#pragma omp simd reduction(+ : s)
    for (int c = 0; c < C; c++) s += x[c];
    float m = s / C;
    float v = 0;  // two passes: the one-pass E[x^2]-m^2 cancels badly
#pragma omp simd reduction(+ : v)
    for (int c = 0; c < C; c++) v += (x[c] - m) * (x[c] - m);
    float r = 1.0f / std::sqrt(v / C + eps);
    if (b) {
#pragma omp simd
      for (int c = 0; c < C; c++) o[c] = (x[c] - m) * r * w[c] + b[c];
    } else {
#pragma omp simd
      for (int c = 0; c < C; c++) o[c] = (x[c] - m) * r * w[c];
    }
    mean[n] = m;
    rstd[n] = r;
  }
}

// dw/db are column sums over rows: per-thread partial sums added in thread order
// (deterministic; no write contention on dw).
void layernorm_backward(float* dinp, float* dw, float* db, const float* dout, const float* inp, const float* w,
                        const float* mean, const float* rstd, int N, int C) {
  Partials part(C, 2);
#pragma omp parallel num_threads(part.threads())
  {
    float* pdw = part.mine(0);
    float* pdb = part.mine(1);
#pragma omp for schedule(static)
    for (int n = 0; n < N; n++) {
      const float* x = inp + size_t(n) * C;
      const float* d = dout + size_t(n) * C;
      float* di = dinp + size_t(n) * C;
      float m = mean[n], r = rstd[n];
      float gmean = 0, gxmean = 0;
#pragma omp simd reduction(+ : gmean, gxmean)
      for (int c = 0; c < C; c++) {
        float xhat = (x[c] - m) * r;
        float g = d[c] * w[c];
        gmean += g;
        gxmean += g * xhat;
      }
      gmean /= C;
      gxmean /= C;
#pragma omp simd
      for (int c = 0; c < C; c++) {
        float xhat = (x[c] - m) * r;
        di[c] = r * (d[c] * w[c] - gmean - xhat * gxmean);
        pdw[c] += d[c] * xhat;
        pdb[c] += d[c];
      }
    }
  }
  part.add_to(dw, 0);
  part.add_to(db, 1);
}

}  // namespace moe
