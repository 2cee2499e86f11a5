#include "ops/embedding.h"

#include <cassert>

namespace moe {

template <typename S>
void embedding_forward_ref(S* out, const int32_t* tokens, const S* wte, const S* wpe, int B, int T, int C) {
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++) {
      int tok = tokens[b * T + t];
      for (int c = 0; c < C; c++)
        out[(size_t(b) * T + t) * C + c] = wte[size_t(tok) * C + c] + (wpe ? wpe[size_t(t) * C + c] : S(0));
    }
}

template <typename S>
void embedding_backward_ref(S* dwte, S* dwpe, const S* dout, const int32_t* tokens, int B, int T, int C) {
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++) {
      int tok = tokens[b * T + t];
      for (int c = 0; c < C; c++) {
        S d = dout[(size_t(b) * T + t) * C + c];
        dwte[size_t(tok) * C + c] += d;
        if (dwpe) dwpe[size_t(t) * C + c] += d;
      }
    }
}

template void embedding_forward_ref<float>(float*, const int32_t*, const float*, const float*, int, int, int);
template void embedding_forward_ref<double>(double*, const int32_t*, const double*, const double*, int, int, int);
template void embedding_backward_ref<float>(float*, float*, const float*, const int32_t*, int, int, int);
template void embedding_backward_ref<double>(double*, double*, const double*, const int32_t*, int, int, int);

void embedding_forward(float* out, const int32_t* tokens, const float* wte, const float* wpe, int B, int T, int C) {
#pragma omp parallel for schedule(static)
  for (int bt = 0; bt < B * T; bt++) {
    const float* e = wte + size_t(tokens[bt]) * C;
    float* o = out + size_t(bt) * C;
    if (wpe) {
      const float* p = wpe + size_t(bt % T) * C;
#pragma omp simd
      for (int c = 0; c < C; c++) o[c] = e[c] + p[c];
    } else {
#pragma omp simd
      for (int c = 0; c < C; c++) o[c] = e[c];
    }
  }
}

// Scatter-add with repeated tokens: threads split the channels, not the tokens,
// so two threads never add into the same dwte element and each element sums its
// tokens in (b, t) order: deterministic, no atomics.
void embedding_backward(float* dwte, float* dwpe, const float* dout, const int32_t* tokens, int B, int T, int C) {
  constexpr int kSlice = 16;
  int nslices = (C + kSlice - 1) / kSlice;
#pragma omp parallel for schedule(static)
  for (int s = 0; s < nslices; s++) {
    int c0 = s * kSlice, c1 = c0 + kSlice < C ? c0 + kSlice : C;
    for (int bt = 0; bt < B * T; bt++) {
      const float* d = dout + size_t(bt) * C;
      float* g = dwte + size_t(tokens[bt]) * C;
#pragma omp simd
      for (int c = c0; c < c1; c++) g[c] += d[c];
      if (dwpe) {
        float* gp = dwpe + size_t(bt % T) * C;
#pragma omp simd
        for (int c = c0; c < c1; c++) gp[c] += d[c];
      }
    }
  }
}

}  // namespace moe
