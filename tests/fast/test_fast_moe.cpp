// Fast MoE block (grouped GEMMs) vs the per-token reference: the same routing and
// dropped pairs, outputs, losses and every gradient; fp32 and bf16 experts.
#include <cmath>
#include <string>
#include <tuple>

#include "moe/moe_layer.h"
#include "testutil.h"

namespace moe::test {
namespace {

double max_abs(const std::vector<float>& v) {
  double m = 0;
  for (float x : v) m = std::max(m, double(std::fabs(x)));
  return m;
}

TEST(Fast, MoeBlockMatchesReference) {
  struct Case { int N, C, F, E, K; MlpKind mlp; bool bias, renorm; float cf; float jitter = 0, drop = 0; bool ec = false; };
  for (Case c : {Case{37, 24, 40, 4, 1, MlpKind::Gelu, true, false, 1.0f},
                 Case{64, 32, 48, 8, 2, MlpKind::SwiGLU, false, true, 1.25f},
                 Case{65, 16, 24, 8, 2, MlpKind::SwiGLU, false, false, 0.0f},
                 Case{17, 8, 12, 3, 3, MlpKind::Gelu, true, true, 1.0f},
                 Case{300, 64, 96, 8, 1, MlpKind::SwiGLU, false, true, 2.0f},
                 Case{50, 16, 24, 4, 2, MlpKind::Gelu, true, true, 1.25f, 0.1f, 0.25f},
                 Case{45, 16, 24, 4, 4, MlpKind::SwiGLU, false, false, 1.0f, 0, 0, true},
                 // T5's experts: relu top-1 (Switch), gated-GELU top-2 and expert choice.
                 Case{77, 32, 40, 8, 1, MlpKind::Relu, false, false, 1.0f},
                 Case{64, 24, 40, 4, 2, MlpKind::GeGLU, false, true, 1.25f},
                 Case{48, 16, 24, 4, 4, MlpKind::GeGLU, false, false, 2.0f, 0, 0, true}}) {
    MoeSpec sp;
    sp.C = c.C, sp.F = c.F, sp.E = c.E, sp.K = c.K, sp.mlp = c.mlp, sp.bias = c.bias, sp.renormalize = c.renorm;
    sp.capacity_factor = c.cf;
    sp.jitter = c.jitter, sp.expert_dropout = c.drop, sp.noise_seed = 9;  // the same noise in both paths
    sp.expert_choice = c.ec;
    const int N = c.N, C = c.C, F = c.F, E = c.E;
    auto x = randn<float>(size_t(N) * C, 1), router = randn<float>(size_t(E) * C, 2, 0.5),
         w1 = randn<float>(size_t(E) * F * C, 3, 0.2), w3 = randn<float>(size_t(E) * F * C, 4, 0.2),
         w2 = randn<float>(size_t(E) * C * F, 5, 0.2), b1 = randn<float>(size_t(E) * F, 6, 0.1),
         b2 = randn<float>(size_t(E) * C, 7, 0.1), g = randn<float>(size_t(N) * C, 8);
    for (int i = 0; i < C; i++) router[i] += 0.3f;  // skewed towards expert 0
    const bool swi = moe_gated(c.mlp);  // a W3 matrix
    MoeWeights<float> w{router.data(), w1.data(), c.bias ? b1.data() : nullptr, swi ? w3.data() : nullptr, w2.data(),
                        c.bias ? b2.data() : nullptr};
    std::vector<float> rout(size_t(N) * C), rdx(x.size()), rdr(router.size()), rdw1(w1.size()), rdw3(w3.size()),
        rdw2(w2.size()), rdb1(b1.size()), rdb2(b2.size());
    MoeRouting rr;
    MoeLosses rl;
    moe_forward_ref(rout.data(), rr, rl, x.data(), N, sp, w);
    MoeGrads<float> rg{rdr.data(), rdw1.data(), c.bias ? rdb1.data() : nullptr, swi ? rdw3.data() : nullptr,
                       rdw2.data(), c.bias ? rdb2.data() : nullptr};
    moe_backward_ref(rdx.data(), rg, g.data(), x.data(), N, sp, w, rr, 1.0);

    for (bool bf : {false, true}) {
      std::vector<bf16> w1b(w1.size()), w3b(w3.size()), w2b(w2.size());
      f32_to_bf16(w1b.data(), w1.data(), w1.size());
      f32_to_bf16(w3b.data(), w3.data(), w3.size());
      f32_to_bf16(w2b.data(), w2.data(), w2.size());
      MoeWeights<bf16> wb{nullptr, w1b.data(), nullptr, w3b.data(), w2b.data(), nullptr};
      MoeBlock blk(sp);
      Guarded out(size_t(N) * C), dx(x.size()), dr(router.size()), dw1(w1.size()), dw3(w3.size()), dw2(w2.size()),
          db1(b1.size()), db2(b2.size());
      blk.forward(out.data(), x.data(), N, w, bf ? &wb : nullptr);
      MoeGrads<float> gg{dr.data(), dw1.data(), c.bias ? db1.data() : nullptr, swi ? dw3.data() : nullptr,
                         dw2.data(), c.bias ? db2.data() : nullptr};
      blk.backward(dx.data(), gg, g.data(), x.data(), w, 1.0f);
      if (c.drop > 0) {  // the noise is really applied: without it the output differs
        MoeBlock quiet(sp);
        quiet.set_noise(0, 0, 0);
        std::vector<float> q(size_t(N) * C);
        quiet.forward(q.data(), x.data(), N, w, bf ? &wb : nullptr);
        EXPECT_NE(q, out.vec()) << "expert dropout and jitter must change the output";
      }
      std::string what = std::string(bf ? "bf16 " : "fp32 ") + "N=" + std::to_string(N) + " K=" + std::to_string(c.K);
      for (auto* b : {&out, &dx, &dr, &dw1, &dw3, &dw2, &db1, &db2}) ASSERT_TRUE(b->intact(what));
      // The router is fp32 in both modes: the same decisions.
      EXPECT_EQ(blk.routing().choice, rr.choice) << what;
      EXPECT_EQ(blk.routing().kept, rr.kept) << what;
      if (c.cf == 1.0f && c.K < c.E) {
        EXPECT_GT(rr.dropped(), 0) << what << ": the case must drop pairs";
      }
      EXPECT_NEAR(blk.losses().aux, rl.aux, 1e-6 * std::fabs(rl.aux) + 1e-9) << what;
      EXPECT_NEAR(blk.losses().z, rl.z, 1e-5 * std::fabs(rl.z) + 1e-9) << what;
      // fp32: sums over C and F in fp32 vs double, ~1e-6 of the values' scale.
      // bf16: operands rounded to 8 bits of mantissa (2^-9 relative each), summed over
      // C or F terms of random sign: ~1e-2 of the scale.
      const double t = bf ? 2e-2 : 2e-5;
      EXPECT_TRUE(all_close(out.vec(), rout, t * max_abs(rout), 0, what + " out"));
      // ReLU in bf16: a pre-activation within bf16 rounding of 0 takes the other branch of
      // the kink, so the gradients through W1 (dx, dw1) differ outright in a few entries
      // (~1%): they are compared in fp32 only (the bf16 GEMMs are the GELU experts' code).
      const bool kink = bf && c.mlp == MlpKind::Relu;
      if (!kink) {
        EXPECT_TRUE(all_close(dx.vec(), rdx, t * max_abs(rdx), 0, what + " dx"));
        EXPECT_TRUE(all_close(dw1.vec(), rdw1, t * max_abs(rdw1), 0, what + " dw1"));
      }
      EXPECT_TRUE(all_close(dr.vec(), rdr, t * max_abs(rdr), 0, what + " d router"));
      EXPECT_TRUE(all_close(dw2.vec(), rdw2, t * max_abs(rdw2), 0, what + " dw2"));
      if (swi) {
        EXPECT_TRUE(all_close(dw3.vec(), rdw3, t * max_abs(rdw3), 0, what + " dw3"));
      }
      if (c.bias) {
        EXPECT_TRUE(all_close(db1.vec(), rdb1, t * max_abs(rdb1), 0, what + " db1"));
        EXPECT_TRUE(all_close(db2.vec(), rdb2, t * max_abs(rdb2), 0, what + " db2"));
      }
    }
  }
}

// Expert choice: every expert takes exactly ceil(cf N / E) tokens, the ones with its
// highest probabilities; a token can be taken by several experts or none.
TEST(Fast, ExpertChoiceRouting) {
  MoeSpec sp;
  sp.C = 4, sp.F = 4, sp.E = 3, sp.K = 3, sp.expert_choice = true, sp.renormalize = false, sp.capacity_factor = 1.0f;
  const int N = 10;
  auto p = randn<float>(size_t(N) * sp.E, 3);
  for (auto& v : p) v = std::fabs(v);
  MoeRouting r;
  moe_route(r, p.data(), N, sp);
  EXPECT_EQ(r.capacity, 4);  // ceil(1.0 * 10 / 3)
  for (int e = 0; e < sp.E; e++) {
    int taken = 0;
    float lowest_taken = 1e30f, highest_left = -1e30f;
    for (int n = 0; n < N; n++) {
      const float v = p[size_t(n) * sp.E + e];
      if (r.kept[size_t(n) * sp.K + e]) taken++, lowest_taken = std::min(lowest_taken, v);
      else highest_left = std::max(highest_left, v);
      EXPECT_EQ(r.weight[size_t(n) * sp.K + e], double(v)) << "the raw probability is the weight";
    }
    EXPECT_EQ(taken, 4) << "expert " << e;
    EXPECT_GE(lowest_taken, highest_left) << "expert " << e << " takes its highest tokens";
  }
}

// Expert choice over groups (T5's encoder: each sequence is a group): every expert takes
// exactly ceil(cf G / E) tokens of every group, its highest ones there; a token's
// routing depends on the other tokens of its group (not causal) and on no other group.
// The fast block computes the reference's output and gradients with groups too.
TEST(Fast, ExpertChoiceGroups) {
  MoeSpec sp;
  sp.C = 8, sp.F = 12, sp.E = 4, sp.K = 4, sp.expert_choice = true, sp.renormalize = false;
  sp.capacity_factor = 2.0f, sp.group = 6, sp.mlp = MlpKind::GeGLU;
  const int N = 18, G = sp.group, E = sp.E;
  auto p = randn<float>(size_t(N) * E, 4);
  for (auto& v : p) v = std::fabs(v);
  MoeRouting r;
  moe_route(r, p.data(), N, sp);
  EXPECT_EQ(r.capacity, 3);  // ceil(2.0 * 6 / 4)
  for (int g0 = 0; g0 < N; g0 += G)
    for (int e = 0; e < E; e++) {
      int taken = 0;
      float lowest_taken = 1e30f, highest_left = -1e30f;
      for (int n = g0; n < g0 + G; n++) {
        const float v = p[size_t(n) * E + e];
        if (r.kept[size_t(n) * E + e]) taken++, lowest_taken = std::min(lowest_taken, v);
        else highest_left = std::max(highest_left, v);
      }
      EXPECT_EQ(taken, 3) << "group at " << g0 << ", expert " << e;
      EXPECT_GE(lowest_taken, highest_left) << "expert " << e << " takes the group's highest tokens";
    }
  for (int e = 0; e < E; e++) EXPECT_EQ(r.counts[size_t(e)], 3 * (N / G));
  // Raising token 5's probabilities (the last of group 0) changes which of the group's
  // earlier tokens are taken, and nothing in the other groups.
  auto q = p;
  for (int e = 0; e < E; e++) q[size_t(5) * E + e] = 10.0f;
  MoeRouting r2;
  moe_route(r2, q.data(), N, sp);
  int earlier_changed = 0;
  for (int n = 0; n < 5; n++)
    for (int e = 0; e < E; e++) earlier_changed += r2.kept[size_t(n) * E + e] != r.kept[size_t(n) * E + e];
  EXPECT_GT(earlier_changed, 0) << "a later token changes the routing of earlier ones: expert choice is not causal";
  for (size_t i = size_t(G) * E; i < r.kept.size(); i++) EXPECT_EQ(r2.kept[i], r.kept[i]) << "another group, pair " << i;
  // Fast block against the reference, with groups.
  const int C = sp.C, F = sp.F;
  auto x = randn<float>(size_t(N) * C, 1), router = randn<float>(size_t(E) * C, 2, 0.5),
       w1 = randn<float>(size_t(E) * F * C, 3, 0.2), w3 = randn<float>(size_t(E) * F * C, 4, 0.2),
       w2 = randn<float>(size_t(E) * C * F, 5, 0.2), g = randn<float>(size_t(N) * C, 8);
  MoeWeights<float> w{router.data(), w1.data(), nullptr, w3.data(), w2.data(), nullptr};
  std::vector<float> rout(size_t(N) * C), rdx(x.size()), rdr(router.size()), rdw1(w1.size()), rdw3(w3.size()),
      rdw2(w2.size());
  MoeRouting rr;
  MoeLosses rl;
  moe_forward_ref(rout.data(), rr, rl, x.data(), N, sp, w);
  MoeGrads<float> rg{rdr.data(), rdw1.data(), nullptr, rdw3.data(), rdw2.data(), nullptr};
  moe_backward_ref(rdx.data(), rg, g.data(), x.data(), N, sp, w, rr, 1.0);
  MoeBlock blk(sp);
  std::vector<float> out(size_t(N) * C), dx(x.size()), dr(router.size()), dw1(w1.size()), dw3(w3.size()),
      dw2(w2.size());
  blk.forward(out.data(), x.data(), N, w);
  MoeGrads<float> gg{dr.data(), dw1.data(), nullptr, dw3.data(), dw2.data(), nullptr};
  blk.backward(dx.data(), gg, g.data(), x.data(), w, 1.0f);
  EXPECT_EQ(blk.routing().kept, rr.kept);
  // fp32 against the float reference (double sums): ~1e-6 of the scale.
  for (auto [got, want, name] : {std::tuple{&out, &rout, "out"}, std::tuple{&dx, &rdx, "dx"},
                                 std::tuple{&dr, &rdr, "d router"}, std::tuple{&dw1, &rdw1, "dw1"},
                                 std::tuple{&dw3, &rdw3, "dw3"}, std::tuple{&dw2, &rdw2, "dw2"}})
    EXPECT_TRUE(all_close(*got, *want, 2e-5 * max_abs(*want), 0, std::string("groups ") + name));
}

// Tokens choose within groups with a fixed capacity (HF switch_transformers: each
// sequence fills each expert's expert_capacity in token order): the first `cap` tokens
// of a group routed to an expert are kept, the rest dropped, whatever the other groups do.
TEST(Fast, TokensChooseGroupsWithFixedCapacity) {
  MoeSpec sp;
  sp.C = 8, sp.F = 16, sp.E = 4, sp.K = 1, sp.renormalize = false, sp.mlp = MlpKind::Relu;
  sp.group = 10, sp.fixed_capacity = 2;
  const int N = 30, G = sp.group, E = sp.E;
  auto p = randn<float>(size_t(N) * E, 9);
  for (int n = 0; n < N; n++) p[size_t(n) * E] += 1.5f;  // expert 0 favoured: it overflows
  MoeRouting r;
  moe_route(r, p.data(), N, sp);
  EXPECT_EQ(r.capacity, 2);
  for (int g0 = 0; g0 < N; g0 += G) {
    std::vector<int> seen(E, 0);
    for (int n = g0; n < g0 + G; n++) {
      const int e = r.choice[size_t(n)];
      EXPECT_EQ(bool(r.kept[size_t(n)]), seen[e] < 2) << "token " << n << ": the first 2 of its group per expert";
      seen[e]++;
    }
  }
  EXPECT_GT(r.dropped(), 0);
  auto q = p;
  for (int n = G; n < N; n++) q[size_t(n) * E + 1] += 5.0f;  // groups 1 and 2 now all choose expert 1
  MoeRouting r2;
  moe_route(r2, q.data(), N, sp);
  for (int n = 0; n < G; n++) EXPECT_EQ(r2.kept[size_t(n)], r.kept[size_t(n)]) << "group 0 is on its own";
  // The fast block computes the reference's output and gradients.
  const int C = sp.C, F = sp.F;
  auto x = randn<float>(size_t(N) * C, 1), router = randn<float>(size_t(E) * C, 2, 0.5),
       w1 = randn<float>(size_t(E) * F * C, 3, 0.2), w2 = randn<float>(size_t(E) * C * F, 5, 0.2),
       g = randn<float>(size_t(N) * C, 8);
  MoeWeights<float> w{router.data(), w1.data(), nullptr, nullptr, w2.data(), nullptr};
  std::vector<float> rout(size_t(N) * C), rdx(x.size()), rdr(router.size()), rdw1(w1.size()), rdw2(w2.size());
  MoeRouting rr;
  MoeLosses rl;
  moe_forward_ref(rout.data(), rr, rl, x.data(), N, sp, w);
  MoeGrads<float> rg{rdr.data(), rdw1.data(), nullptr, nullptr, rdw2.data(), nullptr};
  moe_backward_ref(rdx.data(), rg, g.data(), x.data(), N, sp, w, rr, 1.0);
  MoeBlock blk(sp);
  std::vector<float> out(size_t(N) * C), dx(x.size()), dr(router.size()), dw1(w1.size()), dw2(w2.size());
  blk.forward(out.data(), x.data(), N, w);
  MoeGrads<float> gg{dr.data(), dw1.data(), nullptr, nullptr, dw2.data(), nullptr};
  blk.backward(dx.data(), gg, g.data(), x.data(), w, 1.0f);
  EXPECT_EQ(blk.routing().kept, rr.kept);
  EXPECT_GT(rr.dropped(), 0);
  for (auto [got, want, name] : {std::tuple{&out, &rout, "out"}, std::tuple{&dx, &rdx, "dx"},
                                 std::tuple{&dr, &rdr, "d router"}, std::tuple{&dw1, &rdw1, "dw1"},
                                 std::tuple{&dw2, &rdw2, "dw2"}})
    EXPECT_TRUE(all_close(*got, *want, 2e-5 * max_abs(*want), 0, std::string("fixed capacity ") + name));
}

}  // namespace
}  // namespace moe::test
