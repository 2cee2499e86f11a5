#include "ops/bias.h"

namespace moe {

template <typename S>
void bias_forward_ref(S* out, const S* b, int N, int C) {
  for (int n = 0; n < N; n++)
    for (int c = 0; c < C; c++) out[size_t(n) * C + c] += b[c];
}

template <typename S>
void bias_backward_ref(S* db, const S* dout, int N, int C) {
  for (int c = 0; c < C; c++) {
    double s = 0;
    for (int n = 0; n < N; n++) s += dout[size_t(n) * C + c];
    db[c] += S(s);
  }
}

template void bias_forward_ref<float>(float*, const float*, int, int);
template void bias_forward_ref<double>(double*, const double*, int, int);
template void bias_backward_ref<float>(float*, const float*, int, int);
template void bias_backward_ref<double>(double*, const double*, int, int);

void bias_forward(float* out, const float* b, int N, int C) {
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++) {
    float* o = out + size_t(n) * C;
#pragma omp simd
    for (int c = 0; c < C; c++) o[c] += b[c];
  }
}

// Column sums: each thread owns a slice of columns and walks all rows, so no
// reduction across threads is needed and rows are read contiguously per slice.
void bias_backward(float* db, const float* dout, int N, int C) {
  constexpr int kSlice = 64;
  int nslices = (C + kSlice - 1) / kSlice;
#pragma omp parallel for schedule(static)
  for (int s = 0; s < nslices; s++) {
    int c0 = s * kSlice, c1 = c0 + kSlice < C ? c0 + kSlice : C;
    float acc[kSlice] = {0};
    for (int n = 0; n < N; n++) {
      const float* d = dout + size_t(n) * C;
#pragma omp simd
      for (int c = c0; c < c1; c++) acc[c - c0] += d[c];
    }
    for (int c = c0; c < c1; c++) db[c] += acc[c - c0];
  }
}

}  // namespace moe
