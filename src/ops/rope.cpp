#include "ops/rope.h"

#include <cmath>
#include <vector>

namespace moe {

// cos/sin of (pos0 + t) * theta^(-2i/D) for t < T, i < D/2; computed in double.
static void rope_table(std::vector<float>& cs, std::vector<float>& sn, int T, int D, float theta, int pos0) {
  int half = D / 2;
  cs.resize(size_t(T) * half);
  sn.resize(size_t(T) * half);
  for (int t = 0; t < T; t++)
    for (int i = 0; i < half; i++) {
      double a = double(pos0 + t) * std::pow(double(theta), -2.0 * i / D);
      cs[size_t(t) * half + i] = float(std::cos(a));
      sn[size_t(t) * half + i] = float(std::sin(a));
    }
}

// sign = +1 rotates forward by the angle, -1 rotates back (the transpose).
template <typename S>
static void rope_rotate_ref(S* out, const S* inp, int B, int T, int H, int D, float theta, int pos0, double sign) {
  int half = D / 2;
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++)
      for (int h = 0; h < H; h++) {
        size_t base = ((size_t(b) * T + t) * H + h) * D;
        for (int i = 0; i < half; i++) {
          double a = double(pos0 + t) * std::pow(double(theta), -2.0 * i / D);
          double c = std::cos(a), s = sign * std::sin(a);
          double x1 = inp[base + i], x2 = inp[base + i + half];
          out[base + i] = S(x1 * c - x2 * s);
          out[base + i + half] = S(x2 * c + x1 * s);
        }
      }
}

template <typename S>
void rope_forward_ref(S* out, const S* inp, int B, int T, int H, int D, float theta, int pos0) {
  rope_rotate_ref(out, inp, B, T, H, D, theta, pos0, +1.0);
}

template <typename S>
void rope_backward_ref(S* dinp, const S* dout, int B, int T, int H, int D, float theta, int pos0) {
  rope_rotate_ref(dinp, dout, B, T, H, D, theta, pos0, -1.0);
}

template void rope_forward_ref<float>(float*, const float*, int, int, int, int, float, int);
template void rope_forward_ref<double>(double*, const double*, int, int, int, int, float, int);
template void rope_backward_ref<float>(float*, const float*, int, int, int, int, float, int);
template void rope_backward_ref<double>(double*, const double*, int, int, int, int, float, int);

static void rope_rotate(float* out, const float* inp, int B, int T, int H, int D, float theta, int pos0, float sign) {
  std::vector<float> cs, sn;
  rope_table(cs, sn, T, D, theta, pos0);
  int half = D / 2;
#pragma omp parallel for collapse(2) schedule(static)
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++) {
      const float* c = cs.data() + size_t(t) * half;
      const float* s = sn.data() + size_t(t) * half;
      for (int h = 0; h < H; h++) {
        size_t base = ((size_t(b) * T + t) * H + h) * D;
        const float* x = inp + base;
        float* o = out + base;
#pragma omp simd
        for (int i = 0; i < half; i++) {
          float x1 = x[i], x2 = x[i + half];  // both read before either is written: in place is safe
          o[i] = x1 * c[i] - x2 * sign * s[i];
          o[i + half] = x2 * c[i] + x1 * sign * s[i];
        }
      }
    }
}

void rope_forward(float* out, const float* inp, int B, int T, int H, int D, float theta, int pos0) {
  rope_rotate(out, inp, B, T, H, D, theta, pos0, 1.0f);
}

void rope_backward(float* dinp, const float* dout, int B, int T, int H, int D, float theta, int pos0) {
  rope_rotate(dinp, dout, B, T, H, D, theta, pos0, -1.0f);
}

}  // namespace moe
