// AdamW and gradient clipping are updates, not differentiable ops: they have no
// backward to check by finite differences. In their place, each is checked here
// against a closed form in double precision that an error in the formula breaks.
#include <cmath>

#include "ops/adamw.h"
#include "ops/clip.h"
#include "testutil.h"

namespace moe::test {
namespace {

// From m = v = 0, step 1: m = (1-b1) g, v = (1-b2) g^2, the bias corrections cancel
// them exactly, and p1 = p0 (1 - lr wd) - lr g / (|g| + eps).
TEST(GradCheck, AdamWFirstStepClosedForm) {
  const size_t n = 65;
  auto p = randn<double>(n, 1), g = randn<double>(n, 2);
  g[0] = 0.0;  // a zero gradient moves the parameter by weight decay only
  std::vector<double> m(n, 0.0), v(n, 0.0), p0 = p;
  AdamWParams hp{1e-2f, 0.9f, 0.95f, 1e-3f, 0.1f};
  adamw_update_ref(p.data(), m.data(), v.data(), g.data(), n, hp, 1);
  for (size_t i = 0; i < n; i++) {
    double lr = hp.lr, wd = hp.weight_decay, eps = hp.eps;
    double want = p0[i] * (1 - lr * wd) - lr * g[i] / (std::fabs(g[i]) + eps);
    EXPECT_NEAR(p[i], want, 1e-12) << i;
    EXPECT_NEAR(m[i], (1 - double(hp.beta1)) * g[i], 1e-12) << i;
    EXPECT_NEAR(v[i], (1 - double(hp.beta2)) * g[i] * g[i], 1e-12) << i;
  }
  // A constant gradient keeps m/(1-b1^t) = g and v/(1-b2^t) = g^2 at every step.
  std::vector<double> q(3, 1.0), gm(3, 0.0), gv(3, 0.0), gc{0.5, -2.0, 1e-4};
  AdamWParams h2{1e-3f, 0.9f, 0.999f, 1e-8f, 0.0f};
  for (int t = 1; t <= 5; t++) adamw_update_ref(q.data(), gm.data(), gv.data(), gc.data(), 3, h2, t);
  for (int i = 0; i < 3; i++) {
    double step = double(h2.lr) * std::fabs(gc[i]) / (std::fabs(gc[i]) + double(h2.eps));
    EXPECT_NEAR(q[i], 1.0 - 5 * step * (gc[i] > 0 ? 1 : -1), 1e-9) << i;
  }
}

// The norm of a vector with a known norm, and clipping to exactly max_norm.
TEST(GradCheck, ClipClosedForm) {
  std::vector<double> g{3.0, 4.0, 0.0, -12.0};  // norm 13
  EXPECT_DOUBLE_EQ(grad_norm_ref(g.data(), g.size()), 13.0);
  double norm = grad_clip_ref(g.data(), g.size(), 6.5);
  EXPECT_DOUBLE_EQ(norm, 13.0) << "returns the norm before clipping";
  EXPECT_NEAR(grad_norm_ref(g.data(), g.size()), 6.5, 1e-6) << "torch's 1e-6 in the denominator";
  EXPECT_NEAR(g[0] / g[3], 3.0 / -12.0, 1e-15) << "direction kept";
  std::vector<double> small{0.1, 0.2};
  grad_clip_ref(small.data(), 2, 1.0);
  EXPECT_EQ(small, (std::vector<double>{0.1, 0.2})) << "below max_norm: untouched";
}

}  // namespace
}  // namespace moe::test
