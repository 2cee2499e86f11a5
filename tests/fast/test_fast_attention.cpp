// Fast path vs reference: RoPE, attention, cross-entropy, AdamW, gradient clipping.
#include <cmath>

#include "ops/adamw.h"
#include "ops/attention.h"
#include "ops/clip.h"
#include "ops/cross_entropy.h"
#include "ops/rope.h"
#include "testutil.h"

namespace moe::test {
namespace {

TEST(Fast, Rope) {
  for (int T : {1, 7, 65})
    for (int D : {2, 16, 64})
      for (int pos0 : {0, 1000}) {
        const int B = 2, H = 3;
        const size_t n = size_t(B) * T * H * D;
        auto x = randn<float>(n, 1), g = randn<float>(n, 2);
        Guarded o(n), d(n);
        std::vector<float> ro(n), rd(n);
        rope_forward(o.data(), x.data(), B, T, H, D, 10000.0f, pos0);
        rope_forward_ref(ro.data(), x.data(), B, T, H, D, 10000.0f, pos0);
        rope_backward(d.data(), g.data(), B, T, H, D, 10000.0f, pos0);
        rope_backward_ref(rd.data(), g.data(), B, T, H, D, 10000.0f, pos0);
        ASSERT_TRUE(o.intact("rope") && d.intact("rope d"));
        // cos/sin rounded to fp32 once vs kept in double: ~2 ulps of |x|.
        EXPECT_TRUE(all_close(o.vec(), ro, 1e-6, 1e-6, "rope out"));
        EXPECT_TRUE(all_close(d.vec(), rd, 1e-6, 1e-6, "rope dinp"));
        // In place gives the same bits as out of place.
        auto y = x;
        rope_forward(y.data(), y.data(), B, T, H, D, 10000.0f, pos0);
        EXPECT_EQ(y, o.vec());
      }
}

TEST(Fast, Attention) {
  struct Case { int B, T, H, Hkv, D; };
  for (Case c : {Case{1, 1, 1, 1, 1}, Case{2, 7, 4, 2, 16}, Case{1, 65, 6, 2, 8}, Case{3, 17, 3, 1, 5},
                 Case{1, 130, 4, 4, 64}}) {
    const size_t nq = size_t(c.B) * c.T * c.H * c.D, nk = size_t(c.B) * c.T * c.Hkv * c.D,
                 na = size_t(c.B) * c.H * c.T * c.T;
    auto q = randn<float>(nq, 1), k = randn<float>(nk, 2), v = randn<float>(nk, 3), g = randn<float>(nq, 4);
    Guarded o(nq), a(na), dq(nq), dk(nk), dv(nk);
    std::vector<float> ro(nq), ra(na), rdq(nq), rdk(nk), rdv(nk);
    attention_forward(o.data(), a.data(), q.data(), k.data(), v.data(), c.B, c.T, c.H, c.Hkv, c.D);
    attention_forward_ref(ro.data(), ra.data(), q.data(), k.data(), v.data(), c.B, c.T, c.H, c.Hkv, c.D);
    attention_backward(dq.data(), dk.data(), dv.data(), g.data(), q.data(), k.data(), v.data(), a.data(), c.B, c.T,
                       c.H, c.Hkv, c.D);
    attention_backward_ref(rdq.data(), rdk.data(), rdv.data(), g.data(), q.data(), k.data(), v.data(), ra.data(),
                           c.B, c.T, c.H, c.Hkv, c.D);
    std::string what = "attention T=" + std::to_string(c.T) + " H=" + std::to_string(c.H) +
                       " Hkv=" + std::to_string(c.Hkv);
    for (auto* b : {&o, &a, &dq, &dk, &dv}) ASSERT_TRUE(b->intact(what));
    ASSERT_TRUE(all_finite(dq.data(), nq, what));
    // Probabilities: fp32 exp of scores summed over D in fp32: ~1e-6 abs.
    EXPECT_TRUE(all_close(a.vec(), ra, 2e-6, 1e-5, what + " att"));
    // Outputs/gradients sum over T (and the group's heads for dk, dv): ~T eps32.
    double tol = 2e-6 * std::sqrt(double(c.T * c.H)) * 4;
    EXPECT_TRUE(all_close(o.vec(), ro, tol, 1e-5, what + " out"));
    EXPECT_TRUE(all_close(dq.vec(), rdq, tol, 1e-5, what + " dq"));
    EXPECT_TRUE(all_close(dk.vec(), rdk, tol, 1e-5, what + " dk"));
    EXPECT_TRUE(all_close(dv.vec(), rdv, tol, 1e-5, what + " dv"));
  }
}

TEST(Fast, CrossEntropy) {
  for (int N : {1, 7, 65})
    for (int V : {1, 3, 17, 1000, 8192}) {
      auto logits = randn<float>(size_t(N) * V, 1, 3.0), dl = randn<float>(N, 2);
      if (N * V > 4) logits[1] = 80.0f;  // a large logit: the max-subtraction must keep this finite
      auto tgt = randint(N, V, 3);
      if (N > 2) tgt[1] = -1;
      Guarded loss(N), lse(N), d(size_t(N) * V);
      std::vector<float> rl(N), rlse(N), rd(size_t(N) * V);
      crossentropy_forward(loss.data(), lse.data(), logits.data(), tgt.data(), N, V);
      crossentropy_forward_ref(rl.data(), rlse.data(), logits.data(), tgt.data(), N, V);
      crossentropy_backward(d.data(), dl.data(), logits.data(), lse.data(), tgt.data(), N, V);
      crossentropy_backward_ref(rd.data(), dl.data(), logits.data(), rlse.data(), tgt.data(), N, V);
      ASSERT_TRUE(loss.intact("ce") && lse.intact("ce lse") && d.intact("ce d"));
      ASSERT_TRUE(all_finite(loss.data(), N, "ce loss") && all_finite(d.data(), d.size(), "ce dlogits"));
      // logsumexp over V in fp32: ~V eps32 relative to the sum, then a log: 1e-5.
      EXPECT_TRUE(all_close(loss.vec(), rl, 2e-5, 1e-5, "ce loss"));
      EXPECT_TRUE(all_close(lse.vec(), rlse, 2e-5, 1e-5, "ce lse"));
      EXPECT_TRUE(all_close(d.vec(), rd, 1e-6, 1e-5, "ce dlogits"));
      // In place (dlogits over the logits buffer) gives the same bits.
      auto inplace = logits;
      crossentropy_backward(inplace.data(), dl.data(), inplace.data(), lse.data(), tgt.data(), N, V);
      EXPECT_EQ(inplace, d.vec());
    }
}

TEST(Fast, AdamW) {
  for (size_t n : {1, 17, 100003}) {
    auto p = randn<float>(n, 1), m = randn<float>(n, 2, 0.1), g = randn<float>(n, 4);
    std::vector<float> v(n);
    for (size_t i = 0; i < n; i++) v[i] = std::fabs(randn<float>(1, i + 5)[0]) * 0.01f;
    auto rp = p, rm = m, rv = v;
    AdamWParams hp{3e-3f, 0.9f, 0.95f, 1e-8f, 0.1f};
    for (int t = 1; t <= 3; t++) {
      adamw_update(p.data(), m.data(), v.data(), g.data(), n, hp, t);
      adamw_update_ref(rp.data(), rm.data(), rv.data(), g.data(), n, hp, t);
    }
    // fp32 vs double arithmetic on the same formula: a few ulps of each value.
    EXPECT_TRUE(all_close(p, rp, 1e-6, 1e-6, "adamw params"));
    EXPECT_TRUE(all_close(m, rm, 1e-7, 1e-6, "adamw m"));
    EXPECT_TRUE(all_close(v, rv, 1e-8, 1e-6, "adamw v"));
  }
}

TEST(Fast, GradClip) {
  for (size_t n : {1, 17, 100003, 1000001})
    for (double max_norm : {1e9, 1.0}) {
      auto g = randn<float>(n, 3);
      auto r = g;
      double norm = grad_clip(g.data(), n, max_norm);
      double rnorm = grad_clip_ref(r.data(), n, max_norm);
      EXPECT_NEAR(norm, rnorm, 1e-9 * rnorm) << "norm: both sum squares in double";
      EXPECT_TRUE(all_close(g, r, 0, 2e-7, "clipped gradient: the factor is rounded to fp32 once"));
      if (max_norm == 1.0 && rnorm > 1.0) {
        EXPECT_NEAR(grad_norm(g.data(), n), 1.0, 1e-5);
      }
    }
}

}  // namespace
}  // namespace moe::test

namespace moe::test {
namespace {

// The cached (inference) attention gives the last rows of the verified training op.
TEST(Fast, AttentionCachedMatchesFullSequence) {
  for (int pos0 : {0, 1, 9}) {
    const int n = 4, T = pos0 + n, H = 4, Hkv = 2, D = 8;
    auto q = randn<float>(size_t(T) * H * D, 1), k = randn<float>(size_t(T) * Hkv * D, 2),
         v = randn<float>(size_t(T) * Hkv * D, 3);
    std::vector<float> full(q.size()), att(size_t(H) * T * T);
    attention_forward_ref(full.data(), att.data(), q.data(), k.data(), v.data(), 1, T, H, Hkv, D);
    Guarded out(size_t(n) * H * D);
    attention_forward_cached(out.data(), q.data() + size_t(pos0) * H * D, k.data(), v.data(), n, pos0, H, Hkv, D);
    ASSERT_TRUE(out.intact("cached attention"));
    std::vector<float> want(full.begin() + size_t(pos0) * H * D, full.end());
    EXPECT_TRUE(all_close(out.vec(), want, 2e-6, 1e-5, "cached attention pos0=" + std::to_string(pos0)));
  }
}

}  // namespace
}  // namespace moe::test
