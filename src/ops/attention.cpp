#include "ops/attention.h"

#include <cmath>

#include "ops/matmul.h"
#include "ops/vecmath.h"
#include <vector>

namespace moe {

// Index helpers: q/out (B,T,H,D), k/v (B,T,Hkv,D), att (B,H,T,T).
#define QIDX(b, t, h) ((((size_t)(b) * T + (t)) * H + (h)) * D)
#define KIDX(b, t, h) ((((size_t)(b) * T + (t)) * Hkv + (h)) * D)
#define AIDX(b, h, t) ((((size_t)(b) * H + (h)) * T + (t)) * T)

template <typename S>
void attention_forward_ref(S* out, S* att, const S* q, const S* k, const S* v, int B, int T, int H, int Hkv, int D) {
  const int group = H / Hkv;
  const double scale = 1.0 / std::sqrt(double(D));
  std::vector<double> sc(T);
  for (int b = 0; b < B; b++)
    for (int h = 0; h < H; h++) {
      int kh = h / group;
      for (int t = 0; t < T; t++) {
        double mx = -INFINITY;
        for (int s = 0; s <= t; s++) {
          double d = 0;
          for (int i = 0; i < D; i++) d += double(q[QIDX(b, t, h) + i]) * k[KIDX(b, s, kh) + i];
          sc[s] = d * scale;
          mx = std::max(mx, sc[s]);
        }
        double sum = 0;
        for (int s = 0; s <= t; s++) sum += (sc[s] = std::exp(sc[s] - mx));
        S* a = att + AIDX(b, h, t);
        for (int s = 0; s < T; s++) a[s] = s <= t ? S(sc[s] / sum) : S(0);
        for (int i = 0; i < D; i++) {
          double o = 0;
          for (int s = 0; s <= t; s++) o += double(a[s]) * v[KIDX(b, s, kh) + i];
          out[QIDX(b, t, h) + i] = S(o);
        }
      }
    }
}

// With P = att, dP[t,s] = dout[t]·v[s]; dS = P (dP - sum_s P dP); dq = scale dS k; dk = scale dS^T q; dv = P^T dout.
template <typename S>
void attention_backward_ref(S* dq, S* dk, S* dv, const S* dout, const S* q, const S* k, const S* v, const S* att,
                            int B, int T, int H, int Hkv, int D) {
  const int group = H / Hkv;
  const double scale = 1.0 / std::sqrt(double(D));
  for (size_t i = 0; i < size_t(B) * T * H * D; i++) dq[i] = 0;
  for (size_t i = 0; i < size_t(B) * T * Hkv * D; i++) dk[i] = 0, dv[i] = 0;
  std::vector<double> dp(T);
  for (int b = 0; b < B; b++)
    for (int h = 0; h < H; h++) {
      int kh = h / group;
      for (int t = 0; t < T; t++) {
        const S* a = att + AIDX(b, h, t);
        double dot = 0;
        for (int s = 0; s <= t; s++) {
          double d = 0;
          for (int i = 0; i < D; i++) d += double(dout[QIDX(b, t, h) + i]) * v[KIDX(b, s, kh) + i];
          dp[s] = d;
          dot += a[s] * d;
        }
        for (int s = 0; s <= t; s++) {
          double ds = a[s] * (dp[s] - dot) * scale;
          for (int i = 0; i < D; i++) {
            dq[QIDX(b, t, h) + i] += S(ds * k[KIDX(b, s, kh) + i]);
            dk[KIDX(b, s, kh) + i] += S(ds * q[QIDX(b, t, h) + i]);
            dv[KIDX(b, s, kh) + i] += S(double(a[s]) * dout[QIDX(b, t, h) + i]);
          }
        }
      }
    }
}

template void attention_forward_ref<float>(float*, float*, const float*, const float*, const float*, int, int, int,
                                           int, int);
template void attention_forward_ref<double>(double*, double*, const double*, const double*, const double*, int, int,
                                            int, int, int);
template void attention_backward_ref<float>(float*, float*, float*, const float*, const float*, const float*,
                                            const float*, const float*, int, int, int, int, int);
template void attention_backward_ref<double>(double*, double*, double*, const double*, const double*, const double*,
                                             const double*, const double*, int, int, int, int, int);

// Fast path: per (b, h), the scores and the weighted sum are GEMMs over the head's
// strided slices (matmul_ld: one single-threaded oneDNN GEMM per thread; the
// threads split the (b, h) pairs). The full T x T score matrix is computed and
// the upper triangle masked: twice the causal flops, but at GEMM speed, which is
// far more than twice the speed of per-row dot products.
void attention_forward(float* out, float* att, const float* q, const float* k, const float* v, int B, int T, int H,
                       int Hkv, int D) {
  const int group = H / Hkv;
  const float scale = float(1.0 / std::sqrt(double(D)));
#pragma omp parallel for collapse(2) schedule(dynamic, 1)
  for (int b = 0; b < B; b++)
    for (int h = 0; h < H; h++) {
      const int kh = h / group;
      float* P = att + AIDX(b, h, 0);
      matmul_ld(P, T, q + QIDX(b, 0, h), H * D, k + KIDX(b, 0, kh), Hkv * D, T, T, D, false, true, false);
      for (int t = 0; t < T; t++) {
        float* a = P + size_t(t) * T;
        float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
        for (int s = 0; s <= t; s++) mx = a[s] > mx ? a[s] : mx;
        float sum = 0;
#pragma omp simd reduction(+ : sum)
        for (int s = 0; s <= t; s++) sum += (a[s] = vexp((a[s] - mx) * scale));
        const float inv = 1.0f / sum;
#pragma omp simd
        for (int s = 0; s <= t; s++) a[s] *= inv;
        for (int s = t + 1; s < T; s++) a[s] = 0.0f;
      }
      matmul_ld(out + QIDX(b, 0, h), H * D, P, T, v + KIDX(b, 0, kh), Hkv * D, T, D, T, false, false, false);
    }
}

// Backward: a (b, kv-head) pair owns dk/dv of its keys, so threads split over
// those pairs and never write the same element; the group's query heads add
// into dk/dv in a fixed order (deterministic). Per head, with P = att:
//   dP = dO V^T;  dS = P (dP - rowsum(P dP)) scale;  dQ = dS K;  dK += dS^T Q;  dV += P^T dO.
void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                        const float* v, const float* att, int B, int T, int H, int Hkv, int D) {
  const int group = H / Hkv;
  const float scale = float(1.0 / std::sqrt(double(D)));
#pragma omp parallel
  {
    std::vector<float> dS(size_t(T) * T);
#pragma omp for collapse(2) schedule(dynamic, 1)
    for (int b = 0; b < B; b++)
      for (int kh = 0; kh < Hkv; kh++)
        for (int h = kh * group; h < (kh + 1) * group; h++) {
          const bool first = h == kh * group;
          const float* P = att + AIDX(b, h, 0);
          const float* dO = dout + QIDX(b, 0, h);
          matmul_ld(dS.data(), T, dO, H * D, v + KIDX(b, 0, kh), Hkv * D, T, T, D, false, true, false);
          for (int t = 0; t < T; t++) {
            const float* p = P + size_t(t) * T;
            float* d = dS.data() + size_t(t) * T;
            float dot = 0;
#pragma omp simd reduction(+ : dot)
            for (int s = 0; s <= t; s++) dot += p[s] * d[s];
#pragma omp simd
            for (int s = 0; s <= t; s++) d[s] = p[s] * (d[s] - dot) * scale;
            for (int s = t + 1; s < T; s++) d[s] = 0.0f;
          }
          matmul_ld(dq + QIDX(b, 0, h), H * D, dS.data(), T, k + KIDX(b, 0, kh), Hkv * D, T, D, T, false, false,
                    false);
          matmul_ld(dk + KIDX(b, 0, kh), Hkv * D, dS.data(), T, q + QIDX(b, 0, h), H * D, T, D, T, true, false,
                    !first);
          matmul_ld(dv + KIDX(b, 0, kh), Hkv * D, P, T, dO, H * D, T, D, T, true, false, !first);
        }
  }
}

void attention_forward_cached(float* out, const float* q, const float* k, const float* v, int n, int pos0, int H,
                              int Hkv, int D) {
  const int group = H / Hkv, S = pos0 + n;
  const float scale = float(1.0 / std::sqrt(double(D)));
#pragma omp parallel
  {
    std::vector<float> a(S);
#pragma omp for collapse(2) schedule(static)
    for (int i = 0; i < n; i++)
      for (int h = 0; h < H; h++) {
        const int kh = h / group, last = pos0 + i;
        const float* qi = q + (size_t(i) * H + h) * D;
        float mx = -INFINITY;
        for (int s = 0; s <= last; s++) {
          const float* ks = k + (size_t(s) * Hkv + kh) * D;
          float d = 0;
#pragma omp simd reduction(+ : d)
          for (int j = 0; j < D; j++) d += qi[j] * ks[j];
          a[s] = d;
          mx = d > mx ? d : mx;
        }
        float sum = 0;
#pragma omp simd reduction(+ : sum)
        for (int s = 0; s <= last; s++) sum += (a[s] = vexp((a[s] - mx) * scale));
        const float inv = 1.0f / sum;
        float* o = out + (size_t(i) * H + h) * D;
        for (int j = 0; j < D; j++) o[j] = 0.0f;
        for (int s = 0; s <= last; s++) {
          const float w = a[s] * inv;
          const float* vs = v + (size_t(s) * Hkv + kh) * D;
#pragma omp simd
          for (int j = 0; j < D; j++) o[j] += w * vs[j];
        }
      }
  }
}

#undef QIDX
#undef KIDX
#undef AIDX

}  // namespace moe
