// Invariants of the MoE block (src/moe/moe_layer.h) that need no oracle, on both the
// reference path (moe_forward_ref<float> / moe_backward_ref<float>) and the fast
// MoeBlock:
//   (a) E identical experts, renormalised combine, dropless: the block is the dense
//       MLP (computed with the ops in src/ops), for several K; so are dx and the
//       expert-summed weight gradients, and the router gradient of the output vanishes;
//   (b) E = 1, K = 1, no drops: the dense MLP; p = 1 so aux = aux_coef, and
//       z = z_coef mean(logit^2);
//   (c) cf = 1 with a skewed router: the kept mask, counts and dropped count equal a
//       straightforward recount from the choices (capacity per expert, choice-major);
//       fully dropped tokens output exactly 0;
//   ties go to the lower expert id; MoeSpec::capacity values.
// (Expert-choice routing is not part of the header: not tested.)
#include <gtest/gtest.h>

#include <climits>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "moe/moe_layer.h"
#include "ops/gelu.h"
#include "ops/linear.h"
#include "ops/swiglu.h"
#include "testutil.h"

namespace moe {
namespace {

using test::all_close;

constexpr double kEps = 1.1920928955078125e-7;  // float32 machine epsilon
const float kNaN = std::numeric_limits<float>::quiet_NaN();

double rms(const std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += double(x) * x;
  return v.empty() ? 0.0 : std::sqrt(s / double(v.size()));
}

// One dense MLP's weights (the header's per-expert layout without the E axis).
struct Dense {
  std::vector<float> w1, b1, w3, w2, b2;  // (F,C) (F) (F,C) (C,F) (C)
};

Dense random_dense(const MoeSpec& sp, uint64_t seed) {
  Dense d;
  d.w1 = test::randn<float>(size_t(sp.F) * sp.C, seed + 1, 1.0 / std::sqrt(sp.C));
  d.w2 = test::randn<float>(size_t(sp.C) * sp.F, seed + 2, 1.0 / std::sqrt(sp.F));
  if (sp.mlp == MlpKind::SwiGLU) d.w3 = test::randn<float>(size_t(sp.F) * sp.C, seed + 3, 1.0 / std::sqrt(sp.C));
  if (sp.bias) d.b1 = test::randn<float>(sp.F, seed + 4, 0.1), d.b2 = test::randn<float>(sp.C, seed + 5, 0.1);
  return d;
}

const float* ptr(const std::vector<float>& v) { return v.empty() ? nullptr : v.data(); }
float* ptr(std::vector<float>& v) { return v.empty() ? nullptr : v.data(); }

// The dense MLP with the ops: out (N,C); backward gives dx (assigned) and the weight
// gradients (into a zeroed Dense of the same shape).
struct DenseRun {
  std::vector<float> h1, h3, a, out;
  void forward(const MoeSpec& sp, const Dense& d, const float* x, int N) {
    const int C = sp.C, F = sp.F;
    h1.assign(size_t(N) * F, 0), a.assign(size_t(N) * F, 0), out.assign(size_t(N) * C, 0);
    linear_forward(h1.data(), x, d.w1.data(), ptr(d.b1), N, C, F);
    if (sp.mlp == MlpKind::SwiGLU) {
      h3.assign(size_t(N) * F, 0);
      linear_forward(h3.data(), x, d.w3.data(), nullptr, N, C, F);
      swiglu_forward(a.data(), h1.data(), h3.data(), a.size());
    } else {
      gelu_forward(a.data(), h1.data(), a.size());
    }
    linear_forward(out.data(), a.data(), d.w2.data(), ptr(d.b2), N, F, C);
  }
  void backward(const MoeSpec& sp, const Dense& d, Dense& g, std::vector<float>& dx, const float* x,
                const float* dout, int N) {
    const int C = sp.C, F = sp.F;
    std::vector<float> da(size_t(N) * F), dh1(size_t(N) * F), dh3(size_t(N) * F), dx3(size_t(N) * C);
    dx.assign(size_t(N) * C, 0);
    linear_backward(da.data(), g.w2.data(), ptr(g.b2), dout, a.data(), d.w2.data(), N, F, C);
    if (sp.mlp == MlpKind::SwiGLU) {
      swiglu_backward(dh1.data(), dh3.data(), da.data(), h1.data(), h3.data(), da.size());
      linear_backward(dx3.data(), g.w3.data(), nullptr, dh3.data(), x, d.w3.data(), N, C, F);
    } else {
      gelu_backward(dh1.data(), h1.data(), da.data(), da.size());
    }
    linear_backward(dx.data(), g.w1.data(), ptr(g.b1), dh1.data(), x, d.w1.data(), N, C, F);
    if (sp.mlp == MlpKind::SwiGLU)
      for (size_t i = 0; i < dx.size(); i++) dx[i] += dx3[i];
  }
};

Dense zeros_like(const Dense& d) {
  Dense z;
  z.w1.assign(d.w1.size(), 0), z.b1.assign(d.b1.size(), 0), z.w3.assign(d.w3.size(), 0);
  z.w2.assign(d.w2.size(), 0), z.b2.assign(d.b2.size(), 0);
  return z;
}

// The dense MLP's forward and backward on (x, dout): what every invariant compares to.
struct DenseRef {
  DenseRun run;
  Dense g;                // parameter gradients
  std::vector<float> dx;  // input gradient
};
DenseRef dense_reference(const MoeSpec& sp, const Dense& d, const float* x, const float* dout, int N) {
  DenseRef r;
  r.run.forward(sp, d, x, N);
  r.g = zeros_like(d);
  r.run.backward(sp, d, r.g, r.dx, x, dout, N);
  return r;
}

// E copies of one dense MLP in the [E, ...] layouts, plus a router, plus gradient buffers.
struct Experts {
  std::vector<float> router, w1, b1, w3, w2, b2;
  std::vector<float> grouter, gw1, gb1, gw3, gw2, gb2;
  static std::vector<float> tile(const std::vector<float>& v, int E) {
    std::vector<float> r;
    for (int e = 0; e < E; e++) r.insert(r.end(), v.begin(), v.end());
    return r;
  }
  Experts(const MoeSpec& sp, const Dense& d, std::vector<float> wr) : router(std::move(wr)) {
    w1 = tile(d.w1, sp.E), b1 = tile(d.b1, sp.E), w3 = tile(d.w3, sp.E), w2 = tile(d.w2, sp.E), b2 = tile(d.b2, sp.E);
    zero_grads();
  }
  void zero_grads() {
    grouter.assign(router.size(), 0), gw1.assign(w1.size(), 0), gb1.assign(b1.size(), 0);
    gw3.assign(w3.size(), 0), gw2.assign(w2.size(), 0), gb2.assign(b2.size(), 0);
  }
  MoeWeights<float> weights() const { return {ptr(router), ptr(w1), ptr(b1), ptr(w3), ptr(w2), ptr(b2)}; }
  MoeGrads<float> grads() { return {ptr(grouter), ptr(gw1), ptr(gb1), ptr(gw3), ptr(gw2), ptr(gb2)}; }
};

// Sum over the E experts of a [E, n] gradient.
std::vector<float> expert_sum(const std::vector<float>& g, int E) {
  const size_t n = g.size() / E;
  std::vector<float> s(n, 0.0f);
  for (int e = 0; e < E; e++)
    for (size_t i = 0; i < n; i++) s[i] += g[e * n + i];
  return s;
}

enum class Path { Ref, Fast };
const char* path_name(Path p) { return p == Path::Ref ? "reference path" : "fast path"; }

// Runs one forward + backward on a path; returns the routing and losses.
struct BlockRun {
  std::vector<float> out, dx;
  MoeRouting r;
  MoeLosses l;
  void run(Path path, const MoeSpec& sp, Experts& ex, const std::vector<float>& x, const std::vector<float>* dout,
           int N) {
    out.assign(size_t(N) * sp.C, kNaN);
    MoeBlock blk(sp);
    MoeWeights<float> w = ex.weights();
    if (path == Path::Ref) {
      moe_forward_ref<float>(out.data(), r, l, x.data(), N, sp, w);
    } else {
      blk.forward(out.data(), x.data(), N, w);
      r = blk.routing(), l = blk.losses();
    }
    if (!dout) return;
    dx.assign(size_t(N) * sp.C, kNaN);
    MoeGrads<float> g = ex.grads();
    if (path == Path::Ref) moe_backward_ref<float>(dx.data(), g, dout->data(), x.data(), N, sp, w, r, 1.0);
    else blk.backward(dx.data(), g, dout->data(), x.data(), w, 1.0f);
  }
};

// Tolerances (fp32, both sides): the output is two chained reductions (C then F terms),
// summed over K choices whose renormalised weights sum to 1 within a few eps:
// ~eps sqrt(C + F) rms, 8x margin, K * 4 eps relative. Gradients add a reduction over
// up to N rows: ~eps sqrt(N + C + F) rms, 8x margin.
double out_atol(const MoeSpec& sp, const std::vector<float>& want) {
  return 8 * kEps * std::sqrt(double(sp.C + sp.F)) * rms(want);
}
double grad_atol(const MoeSpec& sp, int N, const std::vector<float>& want) {
  return 8 * kEps * std::sqrt(double(N + sp.C + sp.F)) * rms(want);
}

MoeSpec make_spec(MlpKind mlp, int E, int K, float cf, bool renorm) {
  MoeSpec sp;
  sp.C = 24, sp.F = 40, sp.E = E, sp.K = K;
  sp.mlp = mlp;
  sp.bias = mlp == MlpKind::Gelu;
  sp.capacity_factor = cf;
  sp.renormalize = renorm;
  return sp;
}

// ------------------------------------------------------------------ (a)

TEST(MoeInvariants, IdenticalExpertsRenormalisedDroplessIsTheDenseMlp) {
  const int N = 37, E = 4;
  for (MlpKind mlp : {MlpKind::SwiGLU, MlpKind::Gelu})
    for (int K : {1, 2, 3, 4})
      for (Path path : {Path::Ref, Path::Fast}) {
        SCOPED_TRACE(std::string(mlp == MlpKind::Gelu ? "gelu" : "swiglu") + " K=" + std::to_string(K) + " " +
                     path_name(path));
        MoeSpec sp = make_spec(mlp, E, K, 0.0f, true);
        sp.aux_coef = 0, sp.z_coef = 0;  // only the output's gradient: the dense MLP's
        const int C = sp.C;
        Dense d = random_dense(sp, 100 + K);
        Experts ex(sp, d, test::randn<float>(size_t(E) * C, 7, 1.0 / std::sqrt(C)));
        std::vector<float> x = test::randn<float>(size_t(N) * C, 8), dout = test::randn<float>(size_t(N) * C, 9);
        const DenseRef ref = dense_reference(sp, d, x.data(), dout.data(), N);
        const DenseRun& dr = ref.run;
        const Dense& dg = ref.g;
        const std::vector<float>& ddx = ref.dx;

        BlockRun br;
        br.run(path, sp, ex, x, &dout, N);
        EXPECT_EQ(br.r.dropped(), 0) << "dropless";
        EXPECT_TRUE(all_close(br.out, dr.out, out_atol(sp, dr.out), K * 4 * kEps, "out vs dense"));
        EXPECT_TRUE(all_close(br.dx, ddx, grad_atol(sp, N, ddx), 4 * kEps, "dx vs dense"));
        EXPECT_TRUE(all_close(expert_sum(ex.gw1, E), dg.w1, grad_atol(sp, N, dg.w1), 4 * kEps, "sum_e dW1 vs dense"));
        EXPECT_TRUE(all_close(expert_sum(ex.gw2, E), dg.w2, grad_atol(sp, N, dg.w2), 4 * kEps, "sum_e dW2 vs dense"));
        if (mlp == MlpKind::SwiGLU) {
          EXPECT_TRUE(
              all_close(expert_sum(ex.gw3, E), dg.w3, grad_atol(sp, N, dg.w3), 4 * kEps, "sum_e dW3 vs dense"));
        }
        if (sp.bias) {
          EXPECT_TRUE(
              all_close(expert_sum(ex.gb1, E), dg.b1, grad_atol(sp, N, dg.b1), 4 * kEps, "sum_e db1 vs dense"));
          EXPECT_TRUE(
              all_close(expert_sum(ex.gb2, E), dg.b2, grad_atol(sp, N, dg.b2), 4 * kEps, "sum_e db2 vs dense"));
        }
        // The router: with identical experts sum_k w_k y = y whatever the weights, so the
        // output's gradient to the router is 0 analytically. Left: fp32 cancellation among
        // the K terms dout . y (each ~|dout||y|, relative error ~eps sqrt(C)), times 1/sum p
        // <= E: ~eps E sqrt(C) ~ 2e-6 of the uncancelled scale sqrt(N) rms_n(|dout_n||y_n|)
        // rms(x). Bound: 1e-4 of that scale (a missing renormalisation Jacobian gives ~1).
        double dy2 = 0;
        for (int n = 0; n < N; n++) {
          double a = 0, b = 0;
          for (int c = 0; c < C; c++) {
            a += double(dout[n * C + c]) * dout[n * C + c];
            b += double(dr.out[n * C + c]) * dr.out[n * C + c];
          }
          dy2 += a * b / N;
        }
        const double scale = std::sqrt(double(N)) * std::sqrt(dy2) * rms(x);
        std::vector<float> zero(ex.grouter.size(), 0.0f);
        EXPECT_TRUE(all_close(ex.grouter, zero, 1e-4 * scale, 0, "router grad (analytically 0)"));
      }
}

// ------------------------------------------------------------------ (b)

TEST(MoeInvariants, OneExpertTopOneIsTheDenseMlp) {
  const int N = 37;
  for (MlpKind mlp : {MlpKind::SwiGLU, MlpKind::Gelu})
    for (float cf : {0.0f, 1.0f})  // dropless, or capacity ceil(1 * N / 1) = N: nothing dropped either way
      for (bool renorm : {false, true})  // p = 1: raw and renormalised weights agree
        for (Path path : {Path::Ref, Path::Fast}) {
          SCOPED_TRACE(std::string(mlp == MlpKind::Gelu ? "gelu" : "swiglu") + " cf=" + std::to_string(cf) +
                       (renorm ? " renorm " : " raw ") + path_name(path));
          MoeSpec sp = make_spec(mlp, 1, 1, cf, renorm);
          sp.aux_coef = 0.01f, sp.z_coef = 0.01f;
          const int C = sp.C;
          Dense d = random_dense(sp, 200);
          std::vector<float> wr = test::randn<float>(C, 17, 1.0 / std::sqrt(C));
          Experts ex(sp, d, wr);
          std::vector<float> x = test::randn<float>(size_t(N) * C, 18), dout = test::randn<float>(size_t(N) * C, 19);
          const DenseRef ref = dense_reference(sp, d, x.data(), dout.data(), N);
          const DenseRun& dr = ref.run;
          const Dense& dg = ref.g;
          const std::vector<float>& ddx = ref.dx;
          // z = z_coef mean(logit^2) (lse of one logit is the logit); its gradient adds
          // 2 z_coef logit_n / N * Wr to dx[n] and 2 z_coef / N sum_n logit_n x[n] to dWr.
          // aux = aux_coef * 1 * f P = aux_coef, and its gradient is 0 (p = 1 constant).
          double z = 0;
          std::vector<double> logit(N, 0);
          for (int n = 0; n < N; n++) {
            for (int c = 0; c < C; c++) logit[n] += double(x[n * C + c]) * wr[c];
            z += logit[n] * logit[n] / N;
          }
          z *= sp.z_coef;
          std::vector<float> want_dx(ddx), want_dwr(C, 0.0f);
          for (int n = 0; n < N; n++)
            for (int c = 0; c < C; c++) {
              want_dx[n * C + c] += float(2.0 * sp.z_coef * logit[n] / N * wr[c]);
              want_dwr[c] += float(2.0 * sp.z_coef * logit[n] / N * x[n * C + c]);
            }

          BlockRun br;
          br.run(path, sp, ex, x, &dout, N);
          EXPECT_EQ(br.r.dropped(), 0);
          for (int n = 0; n < N; n++) ASSERT_EQ(br.r.choice[n], 0);
          for (double wt : br.r.weight) EXPECT_EQ(wt, 1.0) << "softmax over one expert is exactly 1";
          EXPECT_TRUE(all_close(br.out, dr.out, out_atol(sp, dr.out), 4 * kEps, "out vs dense"));
          // aux: exact up to the double arithmetic of the coefficient product.
          EXPECT_NEAR(br.l.aux, double(sp.aux_coef), 1e-12 * sp.aux_coef) << "aux with one expert";
          // z: fp32 logits (C-term sums, relative ~eps sqrt(C)): 1e-5 relative.
          EXPECT_NEAR(br.l.z, z, 1e-5 * z) << "z";
          EXPECT_TRUE(all_close(br.dx, want_dx, grad_atol(sp, N, want_dx), 4 * kEps, "dx vs dense + z"));
          EXPECT_TRUE(all_close(ex.grouter, want_dwr, grad_atol(sp, N, want_dwr), 4 * kEps, "dWr (z only)"));
          EXPECT_TRUE(all_close(ex.gw1, dg.w1, grad_atol(sp, N, dg.w1), 4 * kEps, "dW1 vs dense"));
          EXPECT_TRUE(all_close(ex.gw2, dg.w2, grad_atol(sp, N, dg.w2), 4 * kEps, "dW2 vs dense"));
          if (mlp == MlpKind::SwiGLU) {
            EXPECT_TRUE(all_close(ex.gw3, dg.w3, grad_atol(sp, N, dg.w3), 4 * kEps, "dW3 vs dense"));
          }
          if (sp.bias) {
            EXPECT_TRUE(all_close(ex.gb1, dg.b1, grad_atol(sp, N, dg.b1), 4 * kEps, "db1 vs dense"));
            EXPECT_TRUE(all_close(ex.gb2, dg.b2, grad_atol(sp, N, dg.b2), 4 * kEps, "db2 vs dense"));
          }
        }
}

// ------------------------------------------------------------------ (c)

TEST(MoeInvariants, DroppedPairsMatchACapacityRecount) {
  struct Shape { int N, E, K; };
  for (Shape s : {Shape{64, 4, 1}, Shape{37, 4, 1}, Shape{37, 8, 2}, Shape{48, 4, 2}, Shape{37, 4, 3}})
    for (Path path : {Path::Ref, Path::Fast}) {
      SCOPED_TRACE("N=" + std::to_string(s.N) + " E=" + std::to_string(s.E) + " K=" + std::to_string(s.K) + " " +
                   path_name(path));
      const int N = s.N, E = s.E, K = s.K;
      MoeSpec sp = make_spec(MlpKind::SwiGLU, E, K, 1.0f, false);
      const int C = sp.C;
      Dense d = random_dense(sp, 300);
      // Skew: every token has mean 0.5 per coordinate, router row e gets skew_e * ones /
      // sqrt(C): the low experts are favoured by ~(skew_e - skew_e') * 0.5 sqrt(C).
      std::vector<float> wr = test::randn<float>(size_t(E) * C, 31, 1.0 / std::sqrt(C));
      for (int e = 0; e < E; e++)
        for (int c = 0; c < C; c++) wr[e * C + c] += float((0.6 - 0.3 * e) / std::sqrt(C));
      std::vector<float> x = test::randn<float>(size_t(N) * C, 32);
      for (float& v : x) v += 0.5f;
      Experts ex(sp, d, wr);
      BlockRun br;
      br.run(path, sp, ex, x, nullptr, N);
      const MoeRouting& r = br.r;
      ASSERT_EQ(r.choice.size(), size_t(N) * K);
      // choices: K distinct experts per token
      for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++) {
          ASSERT_GE(r.choice[n * K + k], 0);
          ASSERT_LT(r.choice[n * K + k], E);
          for (int j = 0; j < k; j++) ASSERT_NE(r.choice[n * K + j], r.choice[n * K + k]);
        }
      // the recount: capacity ceil(cf K N / E) with cf = 1, in integers
      const int cap = (K * N + E - 1) / E;
      EXPECT_EQ(r.capacity, cap);
      EXPECT_EQ(sp.capacity(N), cap);
      std::vector<int32_t> count(E, 0);
      std::vector<uint8_t> kept(size_t(N) * K, 0);
      for (int k = 0; k < K; k++)
        for (int n = 0; n < N; n++) {
          int e = r.choice[n * K + k];
          if (count[e] < cap) kept[n * K + k] = 1, count[e]++;
        }
      int dropped = 0;
      for (uint8_t v : kept) dropped += !v;
      EXPECT_GT(dropped, 0) << "the skewed router must overflow some expert";
      EXPECT_EQ(r.dropped(), dropped);
      EXPECT_EQ(r.counts, count);
      std::vector<uint8_t> got_kept(r.kept.size());
      for (size_t i = 0; i < r.kept.size(); i++) got_kept[i] = r.kept[i] != 0;
      EXPECT_EQ(got_kept, kept);
      // A token whose every choice was dropped outputs exactly 0 (it flows on through
      // the residual only).
      int all_dropped = 0;
      for (int n = 0; n < N; n++) {
        bool any = false;
        for (int k = 0; k < K; k++) any |= kept[n * K + k] != 0;
        if (any) continue;
        all_dropped++;
        for (int c = 0; c < C; c++) ASSERT_EQ(br.out[n * C + c], 0.0f) << "token " << n;
      }
      if (K == 1) {
        EXPECT_EQ(all_dropped, dropped);
      }
    }
}

// ------------------------------------------------------------------ ties, capacity

TEST(MoeInvariants, TiesGoToTheLowerExpertId) {
  const int E = 4;
  // Rows of probabilities with ties (exact binary fractions).
  const std::vector<float> probs = {0.25f, 0.25f, 0.25f, 0.25f,  //
                                    0.125f, 0.375f, 0.375f, 0.125f,  //
                                    0.125f, 0.125f, 0.375f, 0.375f,  //
                                    0.5f, 0.125f, 0.125f, 0.25f};
  const int N = 4;
  const std::vector<int32_t> want = {0, 1, 2, 3, 1, 2, 0, 3, 2, 3, 0, 1, 0, 3, 1, 2};  // each row by p, ties by id
  for (int K : {1, 2, 3, 4})
    for (bool renorm : {false, true}) {
      SCOPED_TRACE("K=" + std::to_string(K) + (renorm ? " renorm" : " raw"));
      MoeSpec sp = make_spec(MlpKind::SwiGLU, E, K, 0.0f, renorm);
      MoeRouting r;
      moe_route<float>(r, probs.data(), N, sp);
      for (int n = 0; n < N; n++) {
        double sum = 0;
        for (int k = 0; k < K; k++) sum += probs[n * E + want[n * E + k]];
        for (int k = 0; k < K; k++) {
          const int e = want[n * E + k];
          EXPECT_EQ(r.choice[n * K + k], e) << "token " << n << " choice " << k;
          EXPECT_DOUBLE_EQ(r.weight[n * K + k], renorm ? probs[n * E + e] / sum : probs[n * E + e]);
        }
      }
    }
}

TEST(MoeInvariants, CapacityIsCeilOfCfKNOverE) {
  auto cap = [](float cf, int K, int N, int E) {
    MoeSpec sp;
    sp.E = E, sp.K = K, sp.capacity_factor = cf;
    return sp.capacity(N);
  };
  EXPECT_EQ(cap(1.25f, 1, 37, 8), 6);   // 5.78
  EXPECT_EQ(cap(1.0f, 1, 64, 4), 16);   // exact: no rounding up
  EXPECT_EQ(cap(1.0f, 2, 37, 4), 19);   // 18.5
  EXPECT_EQ(cap(1.5f, 2, 48, 8), 18);   // exact
  EXPECT_EQ(cap(2.0f, 1, 10, 3), 7);    // 6.67
  EXPECT_EQ(cap(1.0f, 4, 37, 4), 37);   // K = E, cf 1: every token fits
  EXPECT_EQ(cap(0.0f, 2, 37, 4), INT32_MAX);
  EXPECT_EQ(cap(-1.0f, 1, 37, 4), INT32_MAX);
}

}  // namespace
}  // namespace moe
