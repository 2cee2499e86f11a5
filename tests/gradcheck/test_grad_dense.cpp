// Gradient checks: embedding, matmul, linear, bias add, residual add.
#include "gradcheck/gradcheck.h"
#include "ops/bias.h"
#include "ops/embedding.h"
#include "ops/linear.h"
#include "ops/matmul.h"
#include "ops/residual.h"

namespace moe::test {
namespace {

TEST(GradCheck, Embedding) {
  for (bool positions : {true, false}) {
    const int B = 2, T = 5, C = 7, V = 11;
    auto tokens = randint(B * T, V, 1);
    tokens[3] = tokens[7];  // a repeated token: its gradient rows must add
    auto wte = randn<double>(V * C, 2), wpe = randn<double>(T * C, 3), g = randn<double>(B * T * C, 4);
    std::vector<double> out(B * T * C), dwte(V * C), dwpe(T * C);
    const double* pe = positions ? wpe.data() : nullptr;
    auto loss = [&] {
      embedding_forward_ref(out.data(), tokens.data(), wte.data(), positions ? wpe.data() : nullptr, B, T, C);
      return dot(out, g);
    };
    embedding_backward_ref(dwte.data(), positions ? dwpe.data() : nullptr, g.data(), tokens.data(), B, T, C);
    (void)pe;
    std::vector<GradInput> in{{"wte", &wte, &dwte}};
    if (positions) in.push_back({"wpe", &wpe, &dwpe});
    check_grads(in, loss, positions ? "embedding+positions" : "embedding");
  }
}

// matmul has no backward function of its own: its gradients are matmuls with the
// transposes flipped, exactly as linear_backward and the model use them. This
// checks that those transposed products are the gradients, for all four layouts.
TEST(GradCheck, MatmulAllTransposes) {
  const int M = 3, N = 5, K = 7;
  for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++) {
      auto A = randn<double>(M * K, 10 + ta), Bm = randn<double>(K * N, 20 + tb), g = randn<double>(M * N, 30);
      std::vector<double> C(M * N), dA(M * K), dB(K * N);
      auto loss = [&] {
        matmul_ref(C.data(), A.data(), Bm.data(), M, N, K, ta, tb, false);
        return dot(C, g);
      };
      // dA = g · op(B)^T, laid out like A;  dB = op(A)^T · g, laid out like B.
      if (!ta) matmul_ref(dA.data(), g.data(), Bm.data(), M, K, N, false, !tb, false);
      else matmul_ref(dA.data(), Bm.data(), g.data(), K, M, N, bool(tb), true, false);
      if (!tb) matmul_ref(dB.data(), A.data(), g.data(), K, N, M, !ta, false, false);
      else matmul_ref(dB.data(), g.data(), A.data(), N, K, M, true, bool(ta), false);
      std::string name = std::string("matmul ") + (ta ? "T" : "N") + (tb ? "T" : "N");
      check_grads({{"A", &A, &dA}, {"B", &Bm, &dB}}, loss, name);
    }
}

TEST(GradCheck, Linear) {
  for (bool bias : {true, false}) {
    const int N = 7, IC = 5, OC = 3;
    auto x = randn<double>(N * IC, 1), W = randn<double>(OC * IC, 2), b = randn<double>(OC, 3),
         g = randn<double>(N * OC, 4);
    std::vector<double> out(N * OC), dx(N * IC), dW(OC * IC, 0.0), db(OC, 0.0);
    auto loss = [&] {
      linear_forward_ref(out.data(), x.data(), W.data(), bias ? b.data() : nullptr, N, IC, OC);
      return dot(out, g);
    };
    linear_backward_ref(dx.data(), dW.data(), bias ? db.data() : nullptr, g.data(), x.data(), W.data(), N, IC, OC);
    std::vector<GradInput> in{{"inp", &x, &dx}, {"W", &W, &dW}};
    if (bias) in.push_back({"b", &b, &db});
    check_grads(in, loss, "linear");
  }
}

TEST(GradCheck, BiasAdd) {
  const int N = 5, C = 17;
  auto x = randn<double>(N * C, 1), b = randn<double>(C, 2), g = randn<double>(N * C, 3);
  std::vector<double> out(N * C), db(C, 0.0);
  auto loss = [&] {
    out = x;
    bias_forward_ref(out.data(), b.data(), N, C);
    return dot(out, g);
  };
  bias_backward_ref(db.data(), g.data(), N, C);
  check_grads({{"inp", &x, &g}, {"b", &b, &db}}, loss, "bias");  // d/dinp of a bias add is dout
}

TEST(GradCheck, Residual) {
  const size_t n = 65;
  auto a = randn<double>(n, 1), b = randn<double>(n, 2), g = randn<double>(n, 3);
  std::vector<double> out(n), da(n, 0.0), db(n, 0.0);
  auto loss = [&] {
    residual_forward_ref(out.data(), a.data(), b.data(), n);
    return dot(out, g);
  };
  residual_backward_ref(da.data(), db.data(), g.data(), n);
  check_grads({{"a", &a, &da}, {"b", &b, &db}}, loss, "residual");
}

}  // namespace
}  // namespace moe::test
