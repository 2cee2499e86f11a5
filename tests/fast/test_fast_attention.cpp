// Fast path vs reference: RoPE, attention, general attention (T5), relative position
// bias, cross-entropy, AdamW, gradient clipping.
#include <algorithm>
#include <cmath>

#include "ops/adamw.h"
#include "ops/attention.h"
#include "ops/attention_general.h"
#include "ops/clip.h"
#include "ops/cross_entropy.h"
#include "ops/relpos.h"
#include "ops/rope.h"
#include "tensor/cpu.h"
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

// General attention: self (Tq == Tk) and cross (Tq != Tk, both ways), causal or not,
// scale 1 (T5) and 0.3, with and without a bias; sizes 1, odd ones, and T5's
// realistic B=2, T=64, H=6, D=64. qs scales q: T5 folds 1/sqrt(D) into q's init, so
// at scale 1 its scores are O(1); qs = 1 at D = 64 gives peaked rows (scores ~ 8).
struct GenCase { int B, Tq, Tk, H, D; float scale; bool causal, bias; float qs; };
constexpr double kEps32 = 1.1920928955078125e-7;  // float32 machine epsilon
constexpr double kMargin = 4.0;  // measured: every case passes at 0.5 (errors <= 1/8 of these)

std::string gen_name(const GenCase& c) {
  return "attention_general B=" + std::to_string(c.B) + " Tq=" + std::to_string(c.Tq) + " Tk=" +
         std::to_string(c.Tk) + " H=" + std::to_string(c.H) + " D=" + std::to_string(c.D) +
         " scale=" + std::to_string(c.scale) + (c.causal ? " causal" : "") + (c.bias ? " bias" : "");
}

TEST(Fast, AttentionGeneral) {
  for (GenCase c : {GenCase{1, 1, 1, 1, 1, 1.0f, false, true, 1.0f}, GenCase{1, 1, 1, 1, 1, 0.3f, true, false, 1.0f},
                    GenCase{2, 7, 7, 4, 16, 1.0f, true, true, 0.25f}, GenCase{2, 7, 3, 3, 5, 0.3f, false, true, 1.0f},
                    GenCase{1, 3, 17, 2, 7, 1.0f, false, true, 0.4f}, GenCase{3, 17, 17, 3, 5, 0.3f, true, false, 1.0f},
                    GenCase{1, 65, 65, 2, 8, 1.0f, false, true, 0.35f}, GenCase{1, 1, 65, 2, 8, 0.3f, false, true, 1.0f},
                    GenCase{2, 64, 64, 6, 64, 1.0f, true, true, 0.125f},
                    GenCase{2, 64, 64, 6, 64, 1.0f, false, true, 0.125f},
                    GenCase{2, 17, 65, 6, 64, 1.0f, false, false, 0.125f},
                    GenCase{1, 33, 33, 2, 64, 1.0f, false, true, 1.0f},
                    GenCase{1, 130, 130, 4, 64, 0.125f, true, false, 1.0f}}) {
    const size_t nq = size_t(c.B) * c.Tq * c.H * c.D, nk = size_t(c.B) * c.Tk * c.H * c.D,
                 nb = size_t(c.H) * c.Tq * c.Tk, na = size_t(c.B) * nb;
    auto q = randn<float>(nq, 1, c.qs), k = randn<float>(nk, 2), v = randn<float>(nk, 3), g = randn<float>(nq, 4),
         bias = randn<float>(nb, 5);
    const float* bp = c.bias ? bias.data() : nullptr;
    Guarded o(nq), a(na), dq(nq), dk(nk), dv(nk), ds(na);
    std::vector<float> ro(nq), ra(na), rdq(nq), rdk(nk), rdv(nk), rds(na);
    attention_general_forward(o.data(), a.data(), q.data(), k.data(), v.data(), bp, c.B, c.Tq, c.Tk, c.H, c.D,
                              c.scale, c.causal);
    attention_general_forward_ref(ro.data(), ra.data(), q.data(), k.data(), v.data(), bp, c.B, c.Tq, c.Tk, c.H, c.D,
                                  double(c.scale), c.causal);
    attention_general_backward(dq.data(), dk.data(), dv.data(), ds.data(), g.data(), q.data(), k.data(), v.data(),
                               a.data(), c.B, c.Tq, c.Tk, c.H, c.D, c.scale, c.causal);
    attention_general_backward_ref(rdq.data(), rdk.data(), rdv.data(), rds.data(), g.data(), q.data(), k.data(),
                                   v.data(), ra.data(), c.B, c.Tq, c.Tk, c.H, c.D, double(c.scale), c.causal);
    const std::string what = gen_name(c);
    for (auto* b : {&o, &a, &dq, &dk, &dv, &ds}) ASSERT_TRUE(b->intact(what));
    for (auto* b : {&o, &a, &dq, &dk, &dv, &ds}) ASSERT_TRUE(all_finite(b->data(), b->size(), what));
    // fp32 GEMMs and vexp vs double (rounded once): as tests/oracle's OracleAttentionGeneral.
    // sc is the typical score (k, v, dout, bias are N(0, 1), q is N(0, qs^2)); a score's
    // error is ~ eps sqrt(D) sc and becomes the relative error of its probability; sums
    // over Tk keys add eps sqrt(Tk). Tolerance: 4 eps walk times the typical term of each
    // sum (1 for P and out, dP ~ sqrt(D) for dscores, scale dP |K| or |Q| for dq, dk).
    const double sc = double(c.scale) * std::sqrt(double(c.D)) * c.qs + (c.bias ? 1.0 : 0.0);
    const double walk = std::sqrt(double(c.Tk)) + std::sqrt(double(c.D)) * std::max(1.0, sc);
    const double tol = kMargin * kEps32 * walk, dp = std::sqrt(double(c.D));
    EXPECT_TRUE(all_close(a.vec(), ra, tol, 2 * kEps32, what + " att"));
    EXPECT_TRUE(all_close(o.vec(), ro, tol, 2 * kEps32, what + " out"));
    EXPECT_TRUE(all_close(ds.vec(), rds, tol * dp, 2 * kEps32, what + " dscores"));
    EXPECT_TRUE(all_close(dq.vec(), rdq, tol * c.scale * dp, 2 * kEps32, what + " dq"));
    EXPECT_TRUE(all_close(dk.vec(), rdk, tol * c.scale * dp * c.qs, 2 * kEps32, what + " dk"));
    EXPECT_TRUE(all_close(dv.vec(), rdv, tol, 2 * kEps32, what + " dv"));
    // dscores == nullptr: the same arithmetic in a private buffer, the same bits.
    Guarded dq2(nq), dk2(nk), dv2(nk);
    attention_general_backward(dq2.data(), dk2.data(), dv2.data(), nullptr, g.data(), q.data(), k.data(), v.data(),
                               a.data(), c.B, c.Tq, c.Tk, c.H, c.D, c.scale, c.causal);
    EXPECT_EQ(dq2.vec(), dq.vec()) << what << " dq without dscores";
    EXPECT_EQ(dk2.vec(), dk.vec()) << what << " dk without dscores";
    EXPECT_EQ(dv2.vec(), dv.vec()) << what << " dv without dscores";
    for (auto* b : {&dq2, &dk2, &dv2}) ASSERT_TRUE(b->intact(what + " without dscores"));
  }
}

// Threads own (b, h) pairs and nothing is summed across threads: one thread gives
// the same bits as all of them, and a rerun the same bits again.
TEST(Fast, AttentionGeneralDeterministic) {
  const GenCase c{2, 33, 47, 6, 16, 0.3f, false, true, 1.0f};
  const size_t nq = size_t(c.B) * c.Tq * c.H * c.D, nk = size_t(c.B) * c.Tk * c.H * c.D,
               na = size_t(c.B) * c.H * c.Tq * c.Tk;
  auto q = randn<float>(nq, 1), k = randn<float>(nk, 2), v = randn<float>(nk, 3), g = randn<float>(nq, 4),
       bias = randn<float>(na / c.B, 5);
  auto run = [&] {
    std::vector<float> o(nq), a(na), dq(nq), dk(nk), dv(nk), ds(na);
    attention_general_forward(o.data(), a.data(), q.data(), k.data(), v.data(), bias.data(), c.B, c.Tq, c.Tk, c.H,
                              c.D, c.scale, c.causal);
    attention_general_backward(dq.data(), dk.data(), dv.data(), ds.data(), g.data(), q.data(), k.data(), v.data(),
                               a.data(), c.B, c.Tq, c.Tk, c.H, c.D, c.scale, c.causal);
    return std::vector<std::vector<float>>{o, a, dq, dk, dv, ds};
  };
  auto first = run();
  EXPECT_EQ(run(), first) << "a rerun";
  int saved = threads_get();
  threads_set(1);
  auto one = run();
  threads_set(saved);
  EXPECT_EQ(one, first) << "one thread vs " << saved;
}

// T5's relative position bias: the forward is a copy (exact); the backward sums in
// double in both paths, in different orders, then rounds once onto dtable (which
// accumulates: it starts at 1): at most an ulp apart, 2e-7 relative, plus 1e-9 for
// the order of up to 1e5 double additions.
TEST(Fast, RelposBias) {
  struct Case { int B, Tq, Tk, H, nb, md; bool bidirectional; int q0; };
  for (Case c : {Case{1, 1, 1, 1, 32, 128, true, 0}, Case{2, 7, 7, 3, 32, 128, true, 0},
                 Case{3, 17, 65, 2, 32, 128, false, 0}, Case{1, 3, 20, 4, 32, 128, false, 17},
                 Case{2, 65, 65, 6, 8, 20, true, 0}, Case{2, 200, 200, 8, 32, 128, true, 0},
                 Case{2, 1, 300, 6, 32, 128, false, 299}, Case{2, 64, 64, 6, 32, 128, false, 0}}) {
    const size_t nb = size_t(c.H) * c.Tq * c.Tk;
    auto table = randn<float>(size_t(c.nb) * c.H, 1), g = randn<float>(c.B * nb, 2);
    std::string what = "relpos Tq=" + std::to_string(c.Tq) + " Tk=" + std::to_string(c.Tk) + " H=" +
                       std::to_string(c.H) + (c.bidirectional ? " bidirectional" : " causal") +
                       " q0=" + std::to_string(c.q0);
    Guarded bias(nb), dt(table.size(), 1.0f);
    std::vector<float> rbias(nb), rdt(table.size(), 1.0f);
    relpos_bias_forward(bias.data(), table.data(), c.Tq, c.Tk, c.H, c.nb, c.md, c.bidirectional, c.q0);
    relpos_bias_forward_ref(rbias.data(), table.data(), c.Tq, c.Tk, c.H, c.nb, c.md, c.bidirectional, c.q0);
    relpos_bias_backward(dt.data(), g.data(), c.B, c.Tq, c.Tk, c.H, c.nb, c.md, c.bidirectional, c.q0);
    relpos_bias_backward_ref(rdt.data(), g.data(), c.B, c.Tq, c.Tk, c.H, c.nb, c.md, c.bidirectional, c.q0);
    ASSERT_TRUE(bias.intact(what) && dt.intact(what + " dtable"));
    EXPECT_EQ(bias.vec(), rbias) << what << " bias";
    EXPECT_TRUE(all_close(dt.vec(), rdt, 1e-9, 2e-7, what + " dtable"));
    // Each head's sum is one thread's, in a fixed order: one thread, the same bits.
    std::vector<float> dt1(table.size(), 1.0f);
    int saved = threads_get();
    threads_set(1);
    relpos_bias_backward(dt1.data(), g.data(), c.B, c.Tq, c.Tk, c.H, c.nb, c.md, c.bidirectional, c.q0);
    threads_set(saved);
    EXPECT_EQ(dt1, dt.vec()) << what << " dtable, one thread vs " << saved;
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

// The cached general attention gives the matching rows of the verified training op:
// a causal decoder with its relative position bias (the cache's bias rows are
// relpos_bias_forward at q0 = pos0, which must be the full bias's rows exactly), and
// non-causal cross-attention over Tk encoder keys, with and without a bias.
TEST(Fast, AttentionGeneralCachedMatchesFullSequence) {
  const int H = 4, D = 8, nb = 32, md = 128;
  auto table = randn<float>(size_t(nb) * H, 7);
  for (int pos0 : {0, 1, 9}) {
    const int n = 4, T = pos0 + n;
    auto q = randn<float>(size_t(T) * H * D, 1, 0.35), k = randn<float>(size_t(T) * H * D, 2),
         v = randn<float>(size_t(T) * H * D, 3);
    std::vector<float> full(q.size()), att(size_t(H) * T * T), bias(size_t(H) * T * T), rows(size_t(H) * n * T);
    relpos_bias_forward_ref(bias.data(), table.data(), T, T, H, nb, md, false, 0);
    attention_general_forward_ref(full.data(), att.data(), q.data(), k.data(), v.data(), bias.data(), 1, T, T, H, D,
                                  1.0, true);
    relpos_bias_forward(rows.data(), table.data(), n, T, H, nb, md, false, pos0);
    for (int h = 0; h < H; h++)
      for (int i = 0; i < n; i++)
        for (int j = 0; j < T; j++)
          ASSERT_EQ(rows[(size_t(h) * n + i) * T + j], bias[(size_t(h) * T + pos0 + i) * T + j])
              << "relpos rows at q0=" << pos0;
    Guarded out(size_t(n) * H * D);
    attention_general_forward_cached(out.data(), q.data() + size_t(pos0) * H * D, k.data(), v.data(), rows.data(), n,
                                     pos0, T, H, D, 1.0f, true);
    ASSERT_TRUE(out.intact("cached general attention"));
    std::vector<float> want(full.begin() + size_t(pos0) * H * D, full.end());
    EXPECT_TRUE(all_close(out.vec(), want, 2e-6, 1e-5, "cached causal attention pos0=" + std::to_string(pos0)));
  }
  for (bool with_bias : {false, true})
    for (int pos0 : {0, 3, 6}) {
      const int Tq = 7, Tk = 11, n = Tq - pos0;
      const float scale = with_bias ? 1.0f : 0.3f;
      auto q = randn<float>(size_t(Tq) * H * D, 1, 0.35), k = randn<float>(size_t(Tk) * H * D, 2),
           v = randn<float>(size_t(Tk) * H * D, 3), bias = randn<float>(size_t(H) * Tq * Tk, 4);
      std::vector<float> full(q.size()), att(size_t(H) * Tq * Tk), rows(size_t(H) * n * Tk);
      attention_general_forward_ref(full.data(), att.data(), q.data(), k.data(), v.data(),
                                    with_bias ? bias.data() : nullptr, 1, Tq, Tk, H, D, double(scale), false);
      for (int h = 0; h < H; h++)
        for (int i = 0; i < n; i++)
          for (int j = 0; j < Tk; j++) rows[(size_t(h) * n + i) * Tk + j] = bias[(size_t(h) * Tq + pos0 + i) * Tk + j];
      Guarded out(size_t(n) * H * D);
      attention_general_forward_cached(out.data(), q.data() + size_t(pos0) * H * D, k.data(), v.data(),
                                       with_bias ? rows.data() : nullptr, n, pos0, Tk, H, D, scale, false);
      ASSERT_TRUE(out.intact("cached cross attention"));
      std::vector<float> want(full.begin() + size_t(pos0) * H * D, full.end());
      EXPECT_TRUE(all_close(out.vec(), want, 2e-6, 1e-5,
                            std::string("cached cross attention") + (with_bias ? " with bias" : "") +
                                " pos0=" + std::to_string(pos0)));
    }
}

}  // namespace
}  // namespace moe::test
