// Gradient checks: RoPE, causal attention (MHA, GQA, MQA), cross-entropy.
#include "gradcheck/gradcheck.h"
#include "ops/attention.h"
#include "ops/cross_entropy.h"
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
