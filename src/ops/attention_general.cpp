#include "ops/attention_general.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

#include "ops/matmul.h"
#include "ops/vecmath.h"

namespace moe {

// Index helpers: q/out (B,Tq,H,D), k/v (B,Tk,H,D), att/dscores (B,H,Tq,Tk), bias (H,Tq,Tk).
#define QIDX(b, t, h) ((((size_t)(b) * Tq + (t)) * H + (h)) * D)
#define KIDX(b, t, h) ((((size_t)(b) * Tk + (t)) * H + (h)) * D)
#define AIDX(b, h, t) ((((size_t)(b) * H + (h)) * Tq + (t)) * Tk)
#define BIDX(h, t) (((size_t)(h) * Tq + (t)) * Tk)

// ------------------------------------------------------------------ reference

// Row i of a causal block sees keys 0..i; otherwise all Tk keys.
static inline int keys_seen(bool causal, int i, int Tk) { return causal ? i + 1 : Tk; }

template <typename S>
void attention_general_forward_ref(S* out, S* att, const S* q, const S* k, const S* v, const S* bias, int B, int Tq,
                                   int Tk, int H, int D, double scale, bool causal) {
  std::vector<double> sc(Tk);
  for (int b = 0; b < B; b++)
    for (int h = 0; h < H; h++)
      for (int i = 0; i < Tq; i++) {
        const int jn = keys_seen(causal, i, Tk);
        double mx = -INFINITY;
        for (int j = 0; j < jn; j++) {
          double d = 0;
          for (int x = 0; x < D; x++) d += double(q[QIDX(b, i, h) + x]) * double(k[KIDX(b, j, h) + x]);
          sc[j] = scale * d + (bias ? double(bias[BIDX(h, i) + j]) : 0.0);
          mx = std::max(mx, sc[j]);
        }
        double sum = 0;
        for (int j = 0; j < jn; j++) sum += (sc[j] = std::exp(sc[j] - mx));
        for (int j = 0; j < jn; j++) sc[j] /= sum;
        S* a = att + AIDX(b, h, i);
        for (int j = 0; j < Tk; j++) a[j] = j < jn ? S(sc[j]) : S(0);
        for (int x = 0; x < D; x++) {
          double o = 0;
          for (int j = 0; j < jn; j++) o += sc[j] * double(v[KIDX(b, j, h) + x]);
          out[QIDX(b, i, h) + x] = S(o);
        }
      }
}

// With P = att: dP[i,j] = dout[i]·v[j]; dS = P (dP - sum_j P dP) (the scores'
// gradient, = dscores); dq = scale dS k; dk = scale dS^T q; dv = P^T dout. Each (b, h)
// owns its rows of dk, dv (no GQA), so they are summed in double per (b, h) and
// assigned once.
template <typename S>
void attention_general_backward_ref(S* dq, S* dk, S* dv, S* dscores, const S* dout, const S* q, const S* k,
                                    const S* v, const S* att, int B, int Tq, int Tk, int H, int D, double scale,
                                    bool causal) {
  std::vector<double> dp(Tk), gq(size_t(Tq) * D), gk(size_t(Tk) * D), gv(size_t(Tk) * D);
  for (int b = 0; b < B; b++)
    for (int h = 0; h < H; h++) {
      std::fill(gq.begin(), gq.end(), 0.0);
      std::fill(gk.begin(), gk.end(), 0.0);
      std::fill(gv.begin(), gv.end(), 0.0);
      for (int i = 0; i < Tq; i++) {
        const int jn = keys_seen(causal, i, Tk);
        const S* a = att + AIDX(b, h, i);
        const S* dO = dout + QIDX(b, i, h);
        double dot = 0;
        for (int j = 0; j < jn; j++) {
          double d = 0;
          for (int x = 0; x < D; x++) d += double(dO[x]) * double(v[KIDX(b, j, h) + x]);
          dp[j] = d;
          dot += double(a[j]) * d;
        }
        for (int j = 0; j < Tk; j++) {
          double ds = j < jn ? double(a[j]) * (dp[j] - dot) : 0.0;
          if (dscores) dscores[AIDX(b, h, i) + j] = S(ds);
          if (j >= jn) continue;
          for (int x = 0; x < D; x++) {
            gq[size_t(i) * D + x] += scale * ds * double(k[KIDX(b, j, h) + x]);
            gk[size_t(j) * D + x] += scale * ds * double(q[QIDX(b, i, h) + x]);
            gv[size_t(j) * D + x] += double(a[j]) * double(dO[x]);
          }
        }
      }
      for (int i = 0; i < Tq; i++)
        for (int x = 0; x < D; x++) dq[QIDX(b, i, h) + x] = S(gq[size_t(i) * D + x]);
      for (int j = 0; j < Tk; j++)
        for (int x = 0; x < D; x++) {
          dk[KIDX(b, j, h) + x] = S(gk[size_t(j) * D + x]);
          dv[KIDX(b, j, h) + x] = S(gv[size_t(j) * D + x]);
        }
    }
}

template void attention_general_forward_ref<float>(float*, float*, const float*, const float*, const float*,
                                                   const float*, int, int, int, int, int, double, bool);
template void attention_general_forward_ref<double>(double*, double*, const double*, const double*, const double*,
                                                    const double*, int, int, int, int, int, double, bool);
template void attention_general_backward_ref<float>(float*, float*, float*, float*, const float*, const float*,
                                                    const float*, const float*, const float*, int, int, int, int,
                                                    int, double, bool);
template void attention_general_backward_ref<double>(double*, double*, double*, double*, const double*,
                                                     const double*, const double*, const double*, const double*, int,
                                                     int, int, int, int, double, bool);

// ------------------------------------------------------------------ fast path

// Forward, as ops/attention.cpp: per (b, h) the scores Q K^T and the weighted sum P V
// are GEMMs over the head's strided slices (matmul_ld: one single-threaded oneDNN GEMM
// per thread; the threads split the (b, h) pairs). The scale and the bias are applied
// to the raw scores before the row max (the bias is not a multiple of the scale, so
// the max cannot be taken first as attention.cpp does). Causal blocks compute the full
// square and mask the upper triangle: twice the flops, at GEMM speed.
void attention_general_forward(float* out, float* att, const float* q, const float* k, const float* v,
                               const float* bias, int B, int Tq, int Tk, int H, int D, float scale, bool causal) {
  if (causal && Tq != Tk) throw std::logic_error("attention_general_forward: causal attention needs Tq == Tk");
#pragma omp parallel for collapse(2) schedule(dynamic, 1)
  for (int b = 0; b < B; b++)
    for (int h = 0; h < H; h++) {
      float* P = att + AIDX(b, h, 0);
      matmul_ld(P, Tk, q + QIDX(b, 0, h), H * D, k + KIDX(b, 0, h), H * D, Tq, Tk, D, false, true, false);
      for (int i = 0; i < Tq; i++) {
        float* a = P + size_t(i) * Tk;
        const int jn = keys_seen(causal, i, Tk);
        if (bias) {
          const float* br = bias + BIDX(h, i);
#pragma omp simd
          for (int j = 0; j < jn; j++) a[j] = a[j] * scale + br[j];
        } else if (scale != 1.0f) {
#pragma omp simd
          for (int j = 0; j < jn; j++) a[j] *= scale;
        }
        float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
        for (int j = 0; j < jn; j++) mx = a[j] > mx ? a[j] : mx;
        float sum = 0;
#pragma omp simd reduction(+ : sum)
        for (int j = 0; j < jn; j++) sum += (a[j] = vexp(a[j] - mx));
        const float inv = 1.0f / sum;
#pragma omp simd
        for (int j = 0; j < jn; j++) a[j] *= inv;
        for (int j = jn; j < Tk; j++) a[j] = 0.0f;
      }
      matmul_ld(out + QIDX(b, 0, h), H * D, P, Tk, v + KIDX(b, 0, h), H * D, Tq, D, Tk, false, false, false);
    }
}

// Backward: a (b, h) pair owns dq, dk, dv of its rows (no GQA: no head shares keys),
// so threads split the pairs, never write the same element and nothing is summed
// across threads (the same bits for any thread count). Per pair, with P = att:
//   dP = dO V^T;  dS = P (dP - rowsum(P dP));  dQ = scale dS K;  dK = scale dS^T Q;  dV = P^T dO.
// dS is built in dscores itself when the caller wants it (else in a per-thread
// buffer). GEMMs take no alpha, so the scale is applied to dQ and dK afterwards:
// (Tq + Tk) D multiplies instead of Tq Tk, and none at T5's scale 1.
void attention_general_backward(float* dq, float* dk, float* dv, float* dscores, const float* dout, const float* q,
                                const float* k, const float* v, const float* att, int B, int Tq, int Tk, int H, int D,
                                float scale, bool causal) {
#pragma omp parallel
  {
    std::vector<float> work(dscores ? 0 : size_t(Tq) * Tk);
#pragma omp for collapse(2) schedule(dynamic, 1)
    for (int b = 0; b < B; b++)
      for (int h = 0; h < H; h++) {
        const float* P = att + AIDX(b, h, 0);
        const float* dO = dout + QIDX(b, 0, h);
        float* dS = dscores ? dscores + AIDX(b, h, 0) : work.data();
        matmul_ld(dS, Tk, dO, H * D, v + KIDX(b, 0, h), H * D, Tq, Tk, D, false, true, false);
        for (int i = 0; i < Tq; i++) {
          const float* p = P + size_t(i) * Tk;
          float* d = dS + size_t(i) * Tk;
          const int jn = keys_seen(causal, i, Tk);
          float dot = 0;
#pragma omp simd reduction(+ : dot)
          for (int j = 0; j < jn; j++) dot += p[j] * d[j];
#pragma omp simd
          for (int j = 0; j < jn; j++) d[j] = p[j] * (d[j] - dot);
          for (int j = jn; j < Tk; j++) d[j] = 0.0f;
        }
        float* gq = dq + QIDX(b, 0, h);
        float* gk = dk + KIDX(b, 0, h);
        matmul_ld(gq, H * D, dS, Tk, k + KIDX(b, 0, h), H * D, Tq, D, Tk, false, false, false);
        matmul_ld(gk, H * D, dS, Tk, q + QIDX(b, 0, h), H * D, Tk, D, Tq, true, false, false);
        matmul_ld(dv + KIDX(b, 0, h), H * D, P, Tk, dO, H * D, Tk, D, Tq, true, false, false);
        if (scale != 1.0f) {
          for (int i = 0; i < Tq; i++) {
            float* r = gq + size_t(i) * H * D;
#pragma omp simd
            for (int x = 0; x < D; x++) r[x] *= scale;
          }
          for (int j = 0; j < Tk; j++) {
            float* r = gk + size_t(j) * H * D;
#pragma omp simd
            for (int x = 0; x < D; x++) r[x] *= scale;
          }
        }
      }
  }
}

// Decoding: n (often 1) queries against the cache, per (query, head) dot products and
// a weighted sum (no GEMM pays off at n = 1); the threads split the (i, h) pairs.
void attention_general_forward_cached(float* out, const float* q, const float* k, const float* v, const float* bias,
                                      int n, int pos0, int Tk, int H, int D, float scale, bool causal) {
#pragma omp parallel
  {
    std::vector<float> a(Tk);
#pragma omp for collapse(2) schedule(static)
    for (int i = 0; i < n; i++)
      for (int h = 0; h < H; h++) {
        const int jn = causal ? pos0 + i + 1 : Tk;
        const float* qi = q + (size_t(i) * H + h) * D;
        const float* br = bias ? bias + (size_t(h) * n + i) * Tk : nullptr;
        float mx = -INFINITY;
        for (int j = 0; j < jn; j++) {
          const float* kj = k + (size_t(j) * H + h) * D;
          float d = 0;
#pragma omp simd reduction(+ : d)
          for (int x = 0; x < D; x++) d += qi[x] * kj[x];
          d = br ? d * scale + br[j] : d * scale;
          a[j] = d;
          mx = d > mx ? d : mx;
        }
        float sum = 0;
#pragma omp simd reduction(+ : sum)
        for (int j = 0; j < jn; j++) sum += (a[j] = vexp(a[j] - mx));
        const float inv = 1.0f / sum;
        float* o = out + (size_t(i) * H + h) * D;
        for (int x = 0; x < D; x++) o[x] = 0.0f;
        for (int j = 0; j < jn; j++) {
          const float w = a[j] * inv;
          const float* vj = v + (size_t(j) * H + h) * D;
#pragma omp simd
          for (int x = 0; x < D; x++) o[x] += w * vj[x];
        }
      }
  }
}

#undef QIDX
#undef KIDX
#undef AIDX
#undef BIDX

}  // namespace moe
