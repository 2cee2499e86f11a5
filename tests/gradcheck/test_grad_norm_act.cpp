// Gradient checks: LayerNorm, RMSNorm, GELU, SiLU, SwiGLU, ReLU, GeGLU, dropout.
#include "gradcheck/gradcheck.h"
#include "ops/dropout.h"
#include "ops/gelu.h"
#include "ops/layernorm.h"
#include "ops/relu.h"
#include "ops/rmsnorm.h"
#include "ops/swiglu.h"

namespace moe::test {
namespace {

TEST(GradCheck, LayerNorm) {
  for (int C : {1, 3, 17, 65}) {
    const int N = 3;
    auto x = randn<double>(N * C, 1, 2.0), w = randn<double>(C, 2), b = randn<double>(C, 3),
         g = randn<double>(N * C, 4);
    std::vector<double> out(N * C), mean(N), rstd(N), dx(N * C), dw(C, 0.0), db(C, 0.0);
    auto loss = [&] {
      layernorm_forward_ref(out.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), N, C, 1e-5f);
      return dot(out, g);
    };
    loss();
    layernorm_backward_ref(dx.data(), dw.data(), db.data(), g.data(), x.data(), w.data(), mean.data(), rstd.data(),
                           N, C);
    check_grads({{"inp", &x, &dx}, {"w", &w, &dw}, {"b", &b, &db}}, loss, "layernorm C=" + std::to_string(C));
  }
}

TEST(GradCheck, RMSNorm) {
  for (int C : {1, 3, 17, 65}) {
    const int N = 3;
    auto x = randn<double>(N * C, 1, 2.0), w = randn<double>(C, 2), g = randn<double>(N * C, 4);
    std::vector<double> out(N * C), rstd(N), dx(N * C), dw(C, 0.0);
    auto loss = [&] {
      rmsnorm_forward_ref(out.data(), rstd.data(), x.data(), w.data(), N, C, 1e-6f);
      return dot(out, g);
    };
    loss();
    rmsnorm_backward_ref(dx.data(), dw.data(), g.data(), x.data(), w.data(), rstd.data(), N, C);
    check_grads({{"inp", &x, &dx}, {"w", &w, &dw}}, loss, "rmsnorm C=" + std::to_string(C));
  }
}

template <typename Fwd, typename Bwd>
void check_unary(const char* name, Fwd fwd, Bwd bwd) {
  const size_t n = 67;
  auto x = randn<double>(n, 1, 3.0), g = randn<double>(n, 2);
  std::vector<double> out(n), dx(n);
  auto loss = [&] {
    fwd(out.data(), x.data(), n);
    return dot(out, g);
  };
  bwd(dx.data(), x.data(), g.data(), n);
  check_grads({{"inp", &x, &dx}}, loss, name);
}

TEST(GradCheck, Gelu) { check_unary("gelu", gelu_forward_ref<double>, gelu_backward_ref<double>); }
TEST(GradCheck, Silu) { check_unary("silu", silu_forward_ref<double>, silu_backward_ref<double>); }

TEST(GradCheck, SwiGLU) {
  const size_t n = 67;
  auto gate = randn<double>(n, 1, 3.0), up = randn<double>(n, 2), g = randn<double>(n, 3);
  std::vector<double> out(n), dgate(n), dup(n);
  auto loss = [&] {
    swiglu_forward_ref(out.data(), gate.data(), up.data(), n);
    return dot(out, g);
  };
  swiglu_backward_ref(dgate.data(), dup.data(), g.data(), gate.data(), up.data(), n);
  check_grads({{"gate", &gate, &dgate}, {"up", &up, &dup}}, loss, "swiglu");
}

// ReLU's kink at 0 has no derivative: the inputs stay at least 0.1 away from it, more
// than the finite-difference step (1e-5) by far.
TEST(GradCheck, Relu) {
  const size_t n = 67;
  auto x = randn<double>(n, 1, 2.0), g = randn<double>(n, 2);
  for (auto& v : x) v = v < 0 ? v - 0.1 : v + 0.1;
  std::vector<double> out(n), dx(n);
  auto loss = [&] {
    relu_forward_ref(out.data(), x.data(), n);
    return dot(out, g);
  };
  relu_backward_ref(dx.data(), x.data(), g.data(), n);
  check_grads({{"inp", &x, &dx}}, loss, "relu");
}

TEST(GradCheck, Geglu) {
  const size_t n = 67;
  auto gate = randn<double>(n, 1, 3.0), up = randn<double>(n, 2), g = randn<double>(n, 3);
  std::vector<double> out(n), dgate(n), dup(n);
  auto loss = [&] {
    geglu_forward_ref(out.data(), gate.data(), up.data(), n);
    return dot(out, g);
  };
  geglu_backward_ref(dgate.data(), dup.data(), g.data(), gate.data(), up.data(), n);
  check_grads({{"gate", &gate, &dgate}, {"up", &up, &dup}}, loss, "geglu");
}

TEST(GradCheck, Dropout) {
  for (float p : {0.0f, 0.1f, 0.5f}) {
    const size_t n = 129;
    auto x = randn<double>(n, 1), g = randn<double>(n, 2);
    std::vector<double> out(n), dx(n);
    auto loss = [&] {
      dropout_forward_ref(out.data(), x.data(), n, p, 42);
      return dot(out, g);
    };
    dropout_backward_ref(dx.data(), g.data(), n, p, 42);
    check_grads({{"inp", &x, &dx}}, loss, "dropout");
  }
}

}  // namespace
}  // namespace moe::test
