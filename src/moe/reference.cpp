// The MoE block's reference forward and backward (moe_layer.h): per token, in double
// for the gradient checks; the fast path (moe_block.cpp) is tested against it.
#include "moe/moe_layer.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "ops/bias.h"
#include "ops/dropout.h"
#include "ops/gelu.h"
#include "ops/matmul.h"
#include "ops/swiglu.h"
#include "ops/vecmath.h"

namespace moe {

// ================================================================ reference

namespace {

template <typename S>
struct RefExpert {  // one expert on one token, with what its backward needs
  std::vector<double> h1, h3, a, y;
};

double gelu_d(double x) {
  const double s = 0.7978845608028654, c = 0.044715;
  return 0.5 * x * (1.0 + std::tanh(s * (x + c * x * x * x)));
}
double gelu_grad(double x) {
  const double s = 0.7978845608028654, c = 0.044715;
  double t = std::tanh(s * (x + c * x * x * x));
  return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * s * (1.0 + 3.0 * c * x * x);
}
double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

// Jitter factor of element i of x; expert-dropout factor (0 or 1/(1-p)) of hidden unit f of pair.
double jitter_factor(const MoeSpec& sp, size_t i) {
  if (sp.jitter <= 0) return 1.0;
  return 1.0 + double(sp.jitter) * (2.0 * dropout_uniform(sp.noise_seed, uint64_t(sp.token_offset) * sp.C + i) - 1.0);
}
double expert_keep(const MoeSpec& sp, size_t pair, int f) {
  if (sp.expert_dropout <= 0) return 1.0;
  pair += size_t(sp.token_offset) * size_t(sp.K);
  return dropout_uniform(sp.noise_seed ^ 1, pair * size_t(sp.F) + f) >= sp.expert_dropout
             ? 1.0 / (1.0 - double(sp.expert_dropout))
             : 0.0;
}

template <typename S>
void ref_expert(RefExpert<S>& ex, const S* x, int e, const MoeSpec& sp, const MoeWeights<S>& w, size_t pair) {
  const int C = sp.C, F = sp.F;
  ex.h1.assign(F, 0), ex.h3.assign(F, 0), ex.a.assign(F, 0), ex.y.assign(C, 0);
  const S* W1 = w.w1 + size_t(e) * F * C;
  for (int f = 0; f < F; f++) {
    double s = w.b1 ? double(w.b1[size_t(e) * F + f]) : 0.0;
    for (int c = 0; c < C; c++) s += double(W1[size_t(f) * C + c]) * x[c];
    ex.h1[f] = s;
  }
  if (moe_gated(sp.mlp)) {
    const S* W3 = w.w3 + size_t(e) * F * C;
    for (int f = 0; f < F; f++) {
      double s = 0;
      for (int c = 0; c < C; c++) s += double(W3[size_t(f) * C + c]) * x[c];
      ex.h3[f] = s;
      ex.a[f] = (sp.mlp == MlpKind::SwiGLU ? ex.h1[f] * sigmoid(ex.h1[f]) : gelu_d(ex.h1[f])) * s;
    }
  } else {
    for (int f = 0; f < F; f++) ex.a[f] = sp.mlp == MlpKind::Relu ? std::max(ex.h1[f], 0.0) : gelu_d(ex.h1[f]);
  }
  for (int f = 0; f < F; f++) ex.a[f] *= expert_keep(sp, pair, f);
  const S* W2 = w.w2 + size_t(e) * C * F;
  for (int c = 0; c < C; c++) {
    double s = w.b2 ? double(w.b2[size_t(e) * C + c]) : 0.0;
    for (int f = 0; f < F; f++) s += double(W2[size_t(c) * F + f]) * ex.a[f];
    ex.y[c] = s;
  }
}

// logits, probs and logsumexp of every token, in double.
template <typename S>
void ref_router(std::vector<double>& logits, std::vector<double>& probs, std::vector<double>& lse, const S* x, int N,
                const MoeSpec& sp, const S* Wr) {
  const int E = sp.E, C = sp.C;
  logits.assign(size_t(N) * E, 0), probs.assign(size_t(N) * E, 0), lse.assign(N, 0);
  for (int n = 0; n < N; n++) {
    double mx = -INFINITY;
    for (int e = 0; e < E; e++) {
      double s = 0;
      for (int c = 0; c < C; c++)
        s += double(Wr[size_t(e) * C + c]) * x[size_t(n) * C + c] * jitter_factor(sp, size_t(n) * C + c);
      logits[size_t(n) * E + e] = s;
      mx = std::max(mx, s);
    }
    double sum = 0;
    for (int e = 0; e < E; e++) sum += std::exp(logits[size_t(n) * E + e] - mx);
    lse[n] = mx + std::log(sum);
    for (int e = 0; e < E; e++) probs[size_t(n) * E + e] = std::exp(logits[size_t(n) * E + e] - lse[n]);
  }
}

template <typename S>
MoeLosses ref_losses(const std::vector<double>& probs, const std::vector<double>& lse, const MoeRouting& r,
                     const MoeSpec& sp) {
  const int N = r.N, E = sp.E, K = sp.K;
  MoeLosses l;
  std::vector<double> f(E, 0), P(E, 0);
  for (int n = 0; n < N; n++) {
    for (int k = 0; k < K; k++) f[r.choice[size_t(n) * K + k]] += 1.0 / (double(N) * K);
    for (int e = 0; e < E; e++) P[e] += probs[size_t(n) * E + e] / N;
  }
  for (int e = 0; e < E; e++) l.aux += f[e] * P[e];
  l.aux *= double(sp.aux_coef) * E;
  for (int n = 0; n < N; n++) l.z += lse[n] * lse[n] / N;
  l.z *= sp.z_coef;
  return l;
}

}  // namespace

template <typename S>
void moe_forward_ref(S* out, MoeRouting& r, MoeLosses& l, const S* x, int N, const MoeSpec& sp,
                     const MoeWeights<S>& w) {
  std::vector<double> logits, probs, lse;
  ref_router(logits, probs, lse, x, N, sp, w.router);
  moe_route(r, probs.data(), N, sp);
  l = ref_losses<S>(probs, lse, r, sp);
  const int C = sp.C, K = sp.K;
  RefExpert<S> ex;
  for (int n = 0; n < N; n++) {
    std::vector<double> o(C, 0.0);
    for (int k = 0; k < K; k++) {
      if (!r.kept[size_t(n) * K + k]) continue;
      ref_expert(ex, x + size_t(n) * C, r.choice[size_t(n) * K + k], sp, w, size_t(n) * K + k);
      for (int c = 0; c < C; c++) o[c] += r.weight[size_t(n) * K + k] * ex.y[c];
    }
    for (int c = 0; c < C; c++) out[size_t(n) * C + c] = S(o[c]);
  }
}

template <typename S>
void moe_backward_ref(S* dx, MoeGrads<S>& g, const S* dout, const S* x, int N, const MoeSpec& sp,
                      const MoeWeights<S>& w, const MoeRouting& r, double dloss_scale) {
  const int C = sp.C, F = sp.F, E = sp.E, K = sp.K;
  std::vector<double> logits, probs, lse;
  ref_router(logits, probs, lse, x, N, sp, w.router);
  std::vector<double> dxd(size_t(N) * C, 0.0), dp(size_t(N) * E, 0.0);
  RefExpert<S> ex;
  for (int n = 0; n < N; n++) {
    const S* xn = x + size_t(n) * C;
    const S* dn = dout + size_t(n) * C;
    std::vector<double> dweight(K, 0.0);
    for (int k = 0; k < K; k++) {
      if (!r.kept[size_t(n) * K + k]) continue;
      const int e = r.choice[size_t(n) * K + k];
      ref_expert(ex, xn, e, sp, w, size_t(n) * K + k);
      const double wt = r.weight[size_t(n) * K + k];
      for (int c = 0; c < C; c++) dweight[k] += double(dn[c]) * ex.y[c];
      // expert backward with dy = wt * dout
      std::vector<double> da(F, 0.0);
      for (int c = 0; c < C; c++) {
        const double dy = wt * dn[c];
        if (g.b2) g.b2[size_t(e) * C + c] += S(dy);
        for (int f = 0; f < F; f++) {
          g.w2[(size_t(e) * C + c) * F + f] += S(dy * ex.a[f]);
          da[f] += dy * w.w2[(size_t(e) * C + c) * F + f];
        }
      }
      for (int f = 0; f < F; f++) da[f] *= expert_keep(sp, size_t(n) * K + k, f);
      for (int f = 0; f < F; f++) {
        double dh1, dh3 = 0;
        if (sp.mlp == MlpKind::SwiGLU) {
          const double sg = sigmoid(ex.h1[f]);
          dh1 = da[f] * ex.h3[f] * sg * (1.0 + ex.h1[f] * (1.0 - sg));
          dh3 = da[f] * ex.h1[f] * sg;
        } else if (sp.mlp == MlpKind::GeGLU) {
          dh1 = da[f] * ex.h3[f] * gelu_grad(ex.h1[f]);
          dh3 = da[f] * gelu_d(ex.h1[f]);
        } else if (sp.mlp == MlpKind::Relu) {
          dh1 = ex.h1[f] > 0 ? da[f] : 0.0;
        } else {
          dh1 = da[f] * gelu_grad(ex.h1[f]);
        }
        if (g.b1) g.b1[size_t(e) * F + f] += S(dh1);
        for (int c = 0; c < C; c++) {
          g.w1[(size_t(e) * F + f) * C + c] += S(dh1 * xn[c]);
          dxd[size_t(n) * C + c] += dh1 * w.w1[(size_t(e) * F + f) * C + c];
          if (moe_gated(sp.mlp)) {
            g.w3[(size_t(e) * F + f) * C + c] += S(dh3 * xn[c]);
            dxd[size_t(n) * C + c] += dh3 * w.w3[(size_t(e) * F + f) * C + c];
          }
        }
      }
    }
    // combine weights -> probabilities of the chosen experts
    double sum = 0;
    for (int k = 0; k < K; k++) sum += probs[size_t(n) * E + r.choice[size_t(n) * K + k]];
    for (int k = 0; k < K; k++) {
      const int e = r.choice[size_t(n) * K + k];
      if (!sp.renormalize) {
        dp[size_t(n) * E + e] += dweight[k];
      } else {
        for (int j = 0; j < K; j++) {  // w_j = p_j / sum: dw_j/dp_k = (delta_jk - w_j) / sum
          const double wj = r.weight[size_t(n) * K + j];
          dp[size_t(n) * E + e] += dweight[j] * ((j == k ? 1.0 : 0.0) - wj) / sum;
        }
      }
    }
  }
  // aux loss through P_e = mean_n p[n,e]
  std::vector<double> f(E, 0.0);
  for (int n = 0; n < N; n++)
    for (int k = 0; k < K; k++) f[r.choice[size_t(n) * K + k]] += 1.0 / (double(N) * K);
  for (int n = 0; n < N; n++)
    for (int e = 0; e < E; e++) dp[size_t(n) * E + e] += dloss_scale * sp.aux_coef * E * f[e] / N;
  // softmax backward, plus the z-loss gradient 2 z_coef lse p / N
  for (int n = 0; n < N; n++) {
    double dot = 0;
    for (int e = 0; e < E; e++) dot += probs[size_t(n) * E + e] * dp[size_t(n) * E + e];
    for (int e = 0; e < E; e++) {
      const double p = probs[size_t(n) * E + e];
      const double dl = p * (dp[size_t(n) * E + e] - dot) + dloss_scale * sp.z_coef * 2.0 * lse[n] * p / N;
      for (int c = 0; c < C; c++) {
        const double jf = jitter_factor(sp, size_t(n) * C + c);
        g.router[size_t(e) * C + c] += S(dl * x[size_t(n) * C + c] * jf);
        dxd[size_t(n) * C + c] += dl * w.router[size_t(e) * C + c] * jf;
      }
    }
  }
  for (size_t i = 0; i < dxd.size(); i++) dx[i] = S(dxd[i]);
}

#define MOE_REF(S)                                                                                              \
  template void moe_forward_ref<S>(S*, MoeRouting&, MoeLosses&, const S*, int, const MoeSpec&,                  \
                                   const MoeWeights<S>&);                                                       \
  template void moe_backward_ref<S>(S*, MoeGrads<S>&, const S*, const S*, int, const MoeSpec&,                  \
                                    const MoeWeights<S>&, const MoeRouting&, double);
MOE_REF(float)
MOE_REF(double)
#undef MOE_REF

}  // namespace moe
