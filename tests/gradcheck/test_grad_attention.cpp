// Gradient checks: RoPE, causal attention (MHA, GQA, MQA), general attention (self/cross,
// causal or not, scaled, with a bias), T5's relative position bias, cross-entropy.
#include "gradcheck/gradcheck.h"
#include "ops/attention.h"
#include "ops/attention_general.h"
#include "ops/cross_entropy.h"
#include "ops/relpos.h"
#include "ops/rope.h"

namespace moe::test {
namespace {

TEST(GradCheck, Rope) {
  for (int pos0 : {0, 5}) {
    const int B = 2, T = 3, H = 3, D = 8;
    const size_t n = size_t(B) * T * H * D;
    auto x = randn<double>(n, 1), g = randn<double>(n, 2);
    std::vector<double> out(n), dx(n);
    auto loss = [&] {
      rope_forward_ref(out.data(), x.data(), B, T, H, D, 10000.0f, pos0);
      return dot(out, g);
    };
    rope_backward_ref(dx.data(), g.data(), B, T, H, D, 10000.0f, pos0);
    check_grads({{"inp", &x, &dx}}, loss, "rope");
  }
}

TEST(GradCheck, Attention) {
  struct Case { int B, T, H, Hkv, D; };
  for (Case c : {Case{2, 5, 2, 2, 3}, Case{1, 7, 4, 2, 4}, Case{2, 3, 3, 1, 5}, Case{1, 1, 2, 1, 2}}) {
    const size_t nq = size_t(c.B) * c.T * c.H * c.D, nk = size_t(c.B) * c.T * c.Hkv * c.D;
    auto q = randn<double>(nq, 1), k = randn<double>(nk, 2), v = randn<double>(nk, 3), g = randn<double>(nq, 4);
    std::vector<double> out(nq), att(size_t(c.B) * c.H * c.T * c.T), dq(nq), dk(nk), dv(nk);
    auto loss = [&] {
      attention_forward_ref(out.data(), att.data(), q.data(), k.data(), v.data(), c.B, c.T, c.H, c.Hkv, c.D);
      return dot(out, g);
    };
    loss();
    attention_backward_ref(dq.data(), dk.data(), dv.data(), g.data(), q.data(), k.data(), v.data(), att.data(), c.B,
                           c.T, c.H, c.Hkv, c.D);
    check_grads({{"q", &q, &dq}, {"k", &k, &dk}, {"v", &v, &dv}}, loss,
                "attention H=" + std::to_string(c.H) + " Hkv=" + std::to_string(c.Hkv));
  }
}

// The bias's gradient is the scores' gradient summed over the batch (the bias is
// shared by every sequence): dbias[h,i,j] = sum_b dscores[b,h,i,j], checked as an input
// like q, k, v. Cross-attention has Tq != Tk (both ways round); causal needs Tq == Tk.
TEST(GradCheck, AttentionGeneral) {
  struct Case { int B, Tq, Tk, H, D; double scale; bool causal, bias; };
  for (Case c : {Case{2, 5, 5, 2, 3, 1.0, true, true}, Case{2, 5, 5, 2, 3, 0.3, false, true},
                 Case{1, 4, 7, 3, 4, 0.3, false, true}, Case{2, 6, 3, 2, 4, 1.0, false, true},
                 Case{2, 3, 3, 2, 5, 0.3, true, false}, Case{1, 7, 2, 1, 3, 1.0, false, false},
                 Case{1, 1, 1, 1, 2, 1.0, true, true}, Case{1, 1, 4, 2, 2, 0.3, false, true}}) {
    const size_t nq = size_t(c.B) * c.Tq * c.H * c.D, nk = size_t(c.B) * c.Tk * c.H * c.D,
                 nb = size_t(c.H) * c.Tq * c.Tk, na = size_t(c.B) * nb;
    auto q = randn<double>(nq, 1), k = randn<double>(nk, 2), v = randn<double>(nk, 3), g = randn<double>(nq, 4),
         bias = randn<double>(nb, 5);
    std::vector<double> out(nq), att(na), dq(nq), dk(nk), dv(nk), dscores(na), dbias(nb, 0.0);
    const double* bp = c.bias ? bias.data() : nullptr;
    auto loss = [&] {
      attention_general_forward_ref(out.data(), att.data(), q.data(), k.data(), v.data(), bp, c.B, c.Tq, c.Tk, c.H,
                                    c.D, c.scale, c.causal);
      return dot(out, g);
    };
    loss();
    attention_general_backward_ref(dq.data(), dk.data(), dv.data(), dscores.data(), g.data(), q.data(), k.data(),
                                   v.data(), att.data(), c.B, c.Tq, c.Tk, c.H, c.D, c.scale, c.causal);
    for (int b = 0; b < c.B; b++)
      for (size_t x = 0; x < nb; x++) dbias[x] += dscores[b * nb + x];
    std::string what = "attention_general Tq=" + std::to_string(c.Tq) + " Tk=" + std::to_string(c.Tk) +
                       " scale=" + std::to_string(c.scale) + (c.causal ? " causal" : "") + (c.bias ? " bias" : "");
    std::vector<GradInput> inputs = {{"q", &q, &dq}, {"k", &k, &dk}, {"v", &v, &dv}};
    if (c.bias) inputs.push_back({"bias", &bias, &dbias});
    check_grads(inputs, loss, what);
  }
}

// The table's gradient through the batch's scores: L = sum_b sum(bias * g[b]), so
// dtable comes from relpos_bias_backward with dscores = g. Sizes reach past
// max_distance (every bucket used), both directions, and a query offset q0 (decoding).
TEST(GradCheck, RelposBias) {
  struct Case { int B, Tq, Tk, H, nb, md; bool bidirectional; int q0; };
  for (Case c : {Case{2, 5, 5, 3, 8, 20, true, 0}, Case{1, 4, 9, 2, 8, 20, false, 5},
                 Case{2, 30, 30, 2, 8, 20, true, 0}, Case{1, 3, 40, 2, 32, 128, false, 37},
                 Case{1, 1, 1, 1, 32, 128, true, 0}}) {
    const size_t nb = size_t(c.H) * c.Tq * c.Tk;
    auto table = randn<double>(size_t(c.nb) * c.H, 1), g = randn<double>(c.B * nb, 2);
    std::vector<double> bias(nb), dtable(table.size(), 0.0);
    auto loss = [&] {
      relpos_bias_forward_ref(bias.data(), table.data(), c.Tq, c.Tk, c.H, c.nb, c.md, c.bidirectional, c.q0);
      double l = 0;
      for (int b = 0; b < c.B; b++)
        for (size_t x = 0; x < nb; x++) l += bias[x] * g[b * nb + x];
      return l;
    };
    relpos_bias_backward_ref(dtable.data(), g.data(), c.B, c.Tq, c.Tk, c.H, c.nb, c.md, c.bidirectional, c.q0);
    check_grads({{"table", &table, &dtable}}, loss,
                "relpos bias Tq=" + std::to_string(c.Tq) + " Tk=" + std::to_string(c.Tk) +
                    (c.bidirectional ? " bidirectional" : " causal") + " q0=" + std::to_string(c.q0));
  }
}

TEST(GradCheck, CrossEntropy) {
  const int N = 7, V = 17;
  auto logits = randn<double>(N * V, 1, 2.0), dl = randn<double>(N, 2);
  auto targets = randint(N, V, 3);
  targets[2] = -1;  // an ignored position
  std::vector<double> losses(N), lse(N), dlogits(N * V);
  auto loss = [&] {
    crossentropy_forward_ref(losses.data(), lse.data(), logits.data(), targets.data(), N, V);
    return dot(losses, dl);
  };
  loss();
  crossentropy_backward_ref(dlogits.data(), dl.data(), logits.data(), lse.data(), targets.data(), N, V);
  check_grads({{"logits", &logits, &dlogits}}, loss, "cross-entropy");
}

}  // namespace
}  // namespace moe::test
