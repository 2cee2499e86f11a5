// Fast path vs reference: LayerNorm, RMSNorm, GELU, SiLU, SwiGLU, ReLU, GeGLU, dropout.
#include <cmath>

#include "ops/dropout.h"
#include "ops/gelu.h"
#include "ops/layernorm.h"
#include "ops/relu.h"
#include "ops/rmsnorm.h"
#include "ops/swiglu.h"
#include "ops/vecmath.h"
#include "tensor/cpu.h"
#include "testutil.h"

namespace moe::test {
namespace {

// Row reductions over C in fp32 (fast) vs double (reference): error ~ C eps32
// relative to the row's scale; 1e-5 absolute plus 1e-5 relative covers C <= 1000.
constexpr double kRowTol = 1e-5;

TEST(Fast, LayerNorm) {
  for (int N : {1, 3, 65})
    for (int C : {1, 7, 17, 130, 768})
      for (bool bias : {true, false}) {
        auto x = randn<float>(N * C, 1, 3.0), w = randn<float>(C, 2), b = randn<float>(C, 3),
             g = randn<float>(N * C, 4);
        for (auto& v : x) v += 5.0f;  // an offset mean: checks the two-pass variance
        const float* bp = bias ? b.data() : nullptr;
        Guarded out(N * C), mean(N), rstd(N), dx(N * C), dw(C, 1.0f), db(C, 1.0f);
        std::vector<float> ro(N * C), rm(N), rr(N), rdx(N * C), rdw(C, 1.0f), rdb(C, 1.0f);
        layernorm_forward(out.data(), mean.data(), rstd.data(), x.data(), w.data(), bp, N, C, 1e-5f);
        layernorm_forward_ref(ro.data(), rm.data(), rr.data(), x.data(), w.data(), bp, N, C, 1e-5f);
        layernorm_backward(dx.data(), dw.data(), bias ? db.data() : nullptr, g.data(), x.data(), w.data(),
                           mean.data(), rstd.data(), N, C);
        layernorm_backward_ref(rdx.data(), rdw.data(), bias ? rdb.data() : nullptr, g.data(), x.data(), w.data(),
                               rm.data(), rr.data(), N, C);
        for (auto* b : {&out, &mean, &rstd, &dx, &dw, &db}) ASSERT_TRUE(b->intact("layernorm"));
        ASSERT_TRUE(all_finite(dx.data(), dx.size(), "layernorm dinp"));
        EXPECT_TRUE(all_close(out.vec(), ro, kRowTol, kRowTol, "layernorm out"));
        EXPECT_TRUE(all_close(mean.vec(), rm, kRowTol, kRowTol, "layernorm mean"));
        // C=1 has variance 0: rstd = 1/sqrt(eps) ~ 316, relative tolerance applies.
        EXPECT_TRUE(all_close(rstd.vec(), rr, kRowTol, kRowTol, "layernorm rstd"));
        EXPECT_TRUE(all_close(dx.vec(), rdx, 10 * kRowTol, kRowTol, "layernorm dinp (scaled by rstd)"));
        EXPECT_TRUE(all_close(dw.vec(), rdw, kRowTol * N, kRowTol, "layernorm dw (sum over N rows)"));
        EXPECT_TRUE(all_close(db.vec(), rdb, kRowTol * N, kRowTol, "layernorm db (sum over N rows)"));
      }
}

TEST(Fast, RMSNorm) {
  for (int N : {1, 3, 65})
    for (int C : {1, 7, 17, 130, 768}) {
      auto x = randn<float>(N * C, 1, 3.0), w = randn<float>(C, 2), g = randn<float>(N * C, 4);
      Guarded out(N * C), rstd(N), dx(N * C), dw(C, 1.0f);
      std::vector<float> ro(N * C), rr(N), rdx(N * C), rdw(C, 1.0f);
      rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), N, C, 1e-6f);
      rmsnorm_forward_ref(ro.data(), rr.data(), x.data(), w.data(), N, C, 1e-6f);
      rmsnorm_backward(dx.data(), dw.data(), g.data(), x.data(), w.data(), rstd.data(), N, C);
      rmsnorm_backward_ref(rdx.data(), rdw.data(), g.data(), x.data(), w.data(), rr.data(), N, C);
      for (auto* b : {&out, &rstd, &dx, &dw}) ASSERT_TRUE(b->intact("rmsnorm"));
      EXPECT_TRUE(all_close(out.vec(), ro, kRowTol, kRowTol, "rmsnorm out"));
      EXPECT_TRUE(all_close(rstd.vec(), rr, kRowTol, kRowTol, "rmsnorm rstd"));
      EXPECT_TRUE(all_close(dx.vec(), rdx, kRowTol, kRowTol, "rmsnorm dinp"));
      EXPECT_TRUE(all_close(dw.vec(), rdw, kRowTol * N, kRowTol, "rmsnorm dw (sum over N rows)"));
    }
}

// vexp, the vectorisable exp under the fast activations, softmax and cross-entropy.
TEST(Fast, VexpWithinTwoUlp) {
  double worst = 0;
  float worst_x = 0;
  for (float x = -87.0f; x <= 88.0f; x += 0.000731f) {
    double ref = std::exp(double(x));
    double ulp = std::nextafter(float(ref), INFINITY) - float(ref);
    double err = std::fabs(double(vexp(x)) - ref) / ulp;
    if (err > worst) worst = err, worst_x = x;
  }
  EXPECT_LE(worst, 2.0) << "at x = " << worst_x;
  EXPECT_EQ(vexp(0.0f), 1.0f);
  EXPECT_EQ(vexp(-INFINITY), 0.0f);
  EXPECT_EQ(vexp(-100.0f), 0.0f);
  EXPECT_TRUE(std::isinf(vexp(100.0f)));
  EXPECT_TRUE(std::isinf(vexp(INFINITY)));
  EXPECT_TRUE(std::isnan(vexp(NAN)));
  // The same bound in a vectorised loop, the way the ops call it (the compiler may
  // contract multiply-adds differently there, so bits can differ from the scalar call).
  std::vector<float> xs(100000), ys(100000);
  for (int i = 0; i < 100000; i++) xs[i] = -87.0f + 0.00175f * i;
#pragma omp simd
  for (int i = 0; i < 100000; i++) ys[i] = vexp(xs[i]);
  for (int i = 0; i < 100000; i++) {
    double ref = std::exp(double(xs[i]));
    double ulp = std::nextafter(float(ref), INFINITY) - float(ref);
    ASSERT_LE(std::fabs(ys[i] - ref) / ulp, 2.0) << "vectorised at x = " << xs[i];
  }
}

// Elementwise ops: fp32 tanh/exp vs double, a few ulps: 1e-6 abs + 1e-6 rel.
// Inputs include large magnitudes (saturation) and exact zeros.
std::vector<float> act_inputs(size_t n) {
  auto x = randn<float>(n, 7, 4.0);
  if (n > 4) x[0] = 0.0f, x[1] = 30.0f, x[2] = -30.0f, x[3] = 1e-7f;
  return x;
}

TEST(Fast, Activations) {
  for (size_t n : {1, 3, 7, 17, 65, 1000, 100003}) {
    auto x = act_inputs(n), u = randn<float>(n, 8), g = randn<float>(n, 9);
    Guarded o(n), d(n), d2(n);
    std::vector<float> ro(n), rd(n), rd2(n);
    gelu_forward(o.data(), x.data(), n);
    gelu_forward_ref(ro.data(), x.data(), n);
    gelu_backward(d.data(), x.data(), g.data(), n);
    gelu_backward_ref(rd.data(), x.data(), g.data(), n);
    ASSERT_TRUE(o.intact("gelu") && d.intact("gelu d"));
    EXPECT_TRUE(all_close(o.vec(), ro, 1e-6, 1e-6, "gelu out"));
    EXPECT_TRUE(all_close(d.vec(), rd, 1e-6, 1e-6, "gelu dinp"));

    silu_forward(o.data(), x.data(), n);
    silu_forward_ref(ro.data(), x.data(), n);
    silu_backward(d.data(), x.data(), g.data(), n);
    silu_backward_ref(rd.data(), x.data(), g.data(), n);
    EXPECT_TRUE(all_close(o.vec(), ro, 1e-6, 1e-6, "silu out"));
    EXPECT_TRUE(all_close(d.vec(), rd, 1e-6, 1e-6, "silu dinp"));

    swiglu_forward(o.data(), x.data(), u.data(), n);
    swiglu_forward_ref(ro.data(), x.data(), u.data(), n);
    swiglu_backward(d.data(), d2.data(), g.data(), x.data(), u.data(), n);
    swiglu_backward_ref(rd.data(), rd2.data(), g.data(), x.data(), u.data(), n);
    ASSERT_TRUE(o.intact("swiglu") && d.intact("swiglu dgate") && d2.intact("swiglu dup"));
    EXPECT_TRUE(all_close(o.vec(), ro, 1e-6, 1e-6, "swiglu out"));
    EXPECT_TRUE(all_close(d.vec(), rd, 1e-6, 1e-6, "swiglu dgate"));
    EXPECT_TRUE(all_close(d2.vec(), rd2, 1e-6, 1e-6, "swiglu dup"));
    ASSERT_TRUE(all_finite(d.data(), n, "swiglu dgate"));
  }
}

// ReLU is a comparison and a select in both paths: bit-exact, NaN kept NaN.
TEST(Fast, Relu) {
  for (size_t n : {1, 3, 7, 17, 65, 1000, 100003}) {
    auto x = act_inputs(n), g = randn<float>(n, 9);
    if (n > 5) x[4] = -0.0f;
    Guarded o(n), d(n);
    std::vector<float> ro(n), rd(n);
    relu_forward(o.data(), x.data(), n);
    relu_forward_ref(ro.data(), x.data(), n);
    relu_backward(d.data(), x.data(), g.data(), n);
    relu_backward_ref(rd.data(), x.data(), g.data(), n);
    ASSERT_TRUE(o.intact("relu") && d.intact("relu d"));
    EXPECT_TRUE(all_close(o.vec(), ro, 0, 0, "relu out"));
    EXPECT_TRUE(all_close(d.vec(), rd, 0, 0, "relu dinp"));
    auto io = g;  // dinp may alias dout
    relu_backward(io.data(), x.data(), io.data(), n);
    EXPECT_EQ(io, d.vec()) << "relu dinp in place";
  }
  float nan = NAN, out, ref;
  relu_forward(&out, &nan, 1);
  relu_forward_ref(&ref, &nan, 1);
  EXPECT_TRUE(std::isnan(out) && std::isnan(ref)) << "relu(NaN) must stay NaN (non-finite detection)";
}

// GeGLU: fp32 tanh-gelu (vexp) times up vs double: a few ulps, 1e-6 abs + 1e-6 rel as
// the activations above; gate includes saturated (+-30) and tiny inputs.
TEST(Fast, Geglu) {
  for (size_t n : {1, 3, 7, 17, 65, 1000, 100003}) {
    auto x = act_inputs(n), u = randn<float>(n, 8), g = randn<float>(n, 9);
    Guarded o(n), d(n), d2(n);
    std::vector<float> ro(n), rd(n), rd2(n);
    geglu_forward(o.data(), x.data(), u.data(), n);
    geglu_forward_ref(ro.data(), x.data(), u.data(), n);
    geglu_backward(d.data(), d2.data(), g.data(), x.data(), u.data(), n);
    geglu_backward_ref(rd.data(), rd2.data(), g.data(), x.data(), u.data(), n);
    ASSERT_TRUE(o.intact("geglu") && d.intact("geglu dgate") && d2.intact("geglu dup"));
    ASSERT_TRUE(all_finite(o.data(), n, "geglu out") && all_finite(d.data(), n, "geglu dgate") &&
                all_finite(d2.data(), n, "geglu dup"));
    EXPECT_TRUE(all_close(o.vec(), ro, 1e-6, 1e-6, "geglu out"));
    EXPECT_TRUE(all_close(d.vec(), rd, 1e-6, 1e-6, "geglu dgate"));
    EXPECT_TRUE(all_close(d2.vec(), rd2, 1e-6, 1e-6, "geglu dup"));
    auto io = g;  // dgate may alias dout
    geglu_backward(io.data(), d2.data(), io.data(), x.data(), u.data(), n);
    EXPECT_EQ(io, d.vec()) << "geglu dgate in place";
  }
}

// geglu's gelu is ops/gelu.cpp's, not another approximation: with up = 1 both paths
// give gelu's own bits (the same fp32 expression; the reference is gelu_forward_ref
// in double, rounded once), and dgate with up = 1 is gelu_backward's.
TEST(Fast, GegluIsGeluTimesUp) {
  for (size_t n : {1, 7, 65, 100003}) {
    auto x = act_inputs(n), g = randn<float>(n, 9);
    std::vector<float> one(n, 1.0f), a(n), b(n), da(n), db(n), dup(n);
    geglu_forward(a.data(), x.data(), one.data(), n);
    gelu_forward(b.data(), x.data(), n);
    EXPECT_EQ(a, b) << "fast geglu(gate, 1) vs gelu_forward, n=" << n;
    geglu_backward(da.data(), dup.data(), g.data(), x.data(), one.data(), n);
    gelu_backward(db.data(), x.data(), g.data(), n);
    EXPECT_EQ(da, db) << "fast geglu dgate (up = 1) vs gelu_backward, n=" << n;
    geglu_forward_ref(a.data(), x.data(), one.data(), n);
    gelu_forward_ref(b.data(), x.data(), n);
    EXPECT_EQ(a, b) << "reference geglu(gate, 1) vs gelu_forward_ref, n=" << n;
    geglu_backward_ref(da.data(), dup.data(), g.data(), x.data(), one.data(), n);
    gelu_backward_ref(db.data(), x.data(), g.data(), n);
    EXPECT_EQ(da, db) << "reference geglu dgate (up = 1) vs gelu_backward_ref, n=" << n;
  }
}

TEST(Fast, DropoutMatchesReferenceAndIsDeterministic) {
  for (size_t n : {1, 17, 100003})
    for (float p : {0.0f, 0.1f, 0.5f, 0.9f}) {
      auto x = randn<float>(n, 1), g = randn<float>(n, 2);
      Guarded o(n), d(n);
      std::vector<float> ro(n), rd(n);
      dropout_forward(o.data(), x.data(), n, p, 1234);
      dropout_forward_ref(ro.data(), x.data(), n, p, 1234);
      dropout_backward(d.data(), g.data(), n, p, 1234);
      dropout_backward_ref(rd.data(), g.data(), n, p, 1234);
      ASSERT_TRUE(o.intact("dropout") && d.intact("dropout d"));
      // the scale 1/(1-p) is rounded to fp32 in the fast path: 1 ulp.
      EXPECT_TRUE(all_close(o.vec(), ro, 0, 2e-7, "dropout out"));
      EXPECT_TRUE(all_close(d.vec(), rd, 0, 2e-7, "dropout dinp"));
      if (n == 100003) {
        size_t kept = 0;
        for (size_t i = 0; i < n; i++) kept += o.data()[i] != 0.0f;
        double frac = double(kept) / n;  // binomial: 5 sigma is < 0.008 at this n
        EXPECT_NEAR(frac, 1.0 - p, 0.008) << "dropout keep fraction, p=" << p;
      }
    }
  // A slice starting at element `first` gets the full tensor's mask there (data
  // parallelism: each rank's rows of the global batch), in both paths.
  {
    const size_t n = 1000, first = 337, m = 400;
    auto x = randn<float>(n, 4);
    std::vector<float> full(n), part(m), part_ref(m), back(m);
    dropout_forward(full.data(), x.data(), n, 0.3f, 99);
    dropout_forward(part.data(), x.data() + first, m, 0.3f, 99, first);
    dropout_forward_ref(part_ref.data(), x.data() + first, m, 0.3f, 99, first);
    dropout_backward(back.data(), x.data() + first, m, 0.3f, 99, first);
    for (size_t i = 0; i < m; i++) {
      ASSERT_EQ(part[i], full[first + i]) << "element " << first + i;
      ASSERT_EQ(back[i], full[first + i]) << "backward, element " << first + i;
      ASSERT_NEAR(part_ref[i], full[first + i], 2e-7f * std::fabs(full[first + i])) << "reference, " << first + i;
    }
  }
  // The mask depends on (seed, index) only: one thread gives the same bits.
  const size_t n = 50001;
  auto x = randn<float>(n, 3);
  std::vector<float> a(n), b(n), c(n);
  dropout_forward(a.data(), x.data(), n, 0.3f, 99);
  int saved = threads_get();
  threads_set(1);
  dropout_forward(b.data(), x.data(), n, 0.3f, 99);
  threads_set(saved);
  EXPECT_EQ(a, b);
  dropout_forward(c.data(), x.data(), n, 0.3f, 100);
  EXPECT_NE(a, c) << "another seed must give another mask";
}

}  // namespace
}  // namespace moe::test
