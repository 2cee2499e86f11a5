// Gradient check of the MoE block (router, top-k selection, combine weights raw and
// renormalised, capacity dropping, experts GELU+bias and SwiGLU, aux and z losses)
// on the double reference. The routing is piecewise constant: inputs are drawn so that
// no two router probabilities of a token are within 1e-3 (far from ties compared with
// the 1e-5 perturbation), and the check asserts the decisions do not change.
#include <cmath>

#include "gradcheck/gradcheck.h"
#include "moe/moe_layer.h"

namespace moe::test {
namespace {

struct Case {
  const char* name;
  int K;
  MlpKind mlp;
  bool bias, renorm;
  float cf;
  float jitter = 0, expert_dropout = 0;
  bool expert_choice = false;
};

TEST(GradCheck, MoeBlock) {
  for (Case c : {Case{"switch top-1 raw, dropping", 1, MlpKind::Gelu, true, false, 1.0f},
                 Case{"top-2 renormalised, dropping", 2, MlpKind::SwiGLU, false, true, 0.75f},
                 Case{"top-2 raw dropless", 2, MlpKind::SwiGLU, false, false, 0.0f},
                 Case{"top-3 renormalised gelu", 3, MlpKind::Gelu, true, true, 2.0f},
                 Case{"top-2 with router jitter and expert dropout", 2, MlpKind::SwiGLU, false, true, 1.0f, 0.2f,
                      0.3f},
                 Case{"expert choice (each expert takes its top tokens)", 4, MlpKind::SwiGLU, false, false, 1.0f, 0,
                      0, true},
                 // T5's experts: relu (the original T5, Switch) and gated-GELU (T5 v1.1), with expert choice.
                 Case{"t5 relu top-1 raw, dropping", 1, MlpKind::Relu, false, false, 1.0f},
                 Case{"t5 gated-gelu top-2 renormalised, dropping", 2, MlpKind::GeGLU, false, true, 0.75f},
                 Case{"t5 gated-gelu expert choice", 4, MlpKind::GeGLU, false, false, 2.0f, 0, 0, true}}) {
    MoeSpec sp;
    sp.C = 5, sp.F = 6, sp.E = 4, sp.K = c.K, sp.mlp = c.mlp, sp.bias = c.bias, sp.renormalize = c.renorm;
    sp.capacity_factor = c.cf, sp.aux_coef = 0.3f, sp.z_coef = 0.2f;  // large: their gradients must show
    sp.jitter = c.jitter, sp.expert_dropout = c.expert_dropout, sp.noise_seed = 77;
    sp.expert_choice = c.expert_choice;
    const int N = 9, C = sp.C, F = sp.F, E = sp.E;
    auto x = randn<double>(size_t(N) * C, 1), router = randn<double>(size_t(E) * C, 2, 1.5),
         w1 = randn<double>(size_t(E) * F * C, 3, 0.5), w3 = randn<double>(size_t(E) * F * C, 4, 0.5),
         w2 = randn<double>(size_t(E) * C * F, 5, 0.5), b1 = randn<double>(size_t(E) * F, 6, 0.1),
         b2 = randn<double>(size_t(E) * C, 7, 0.1), g = randn<double>(size_t(N) * C, 8);
    for (int e = 0; e < C; e++) router[e] += 1.0;  // expert 0 favoured: some pairs drop
    MoeWeights<double> w{router.data(), w1.data(), c.bias ? b1.data() : nullptr,
                         moe_gated(c.mlp) ? w3.data() : nullptr, w2.data(), c.bias ? b2.data() : nullptr};
    std::vector<double> out(size_t(N) * C);
    MoeRouting r0;
    MoeLosses l0;
    moe_forward_ref(out.data(), r0, l0, x.data(), N, sp, w);
    if (c.cf > 0 && c.cf < 1.5f) {
      EXPECT_GT(r0.dropped(), 0) << c.name << ": the case must drop pairs";
    }
    auto loss = [&] {
      MoeRouting r;
      MoeLosses l;
      moe_forward_ref(out.data(), r, l, x.data(), N, sp, w);
      EXPECT_EQ(r.choice, r0.choice) << c.name << ": a perturbation changed the routing (a tie)";
      EXPECT_EQ(r.kept, r0.kept) << c.name;
      return dot(out, g) + l.aux + l.z;
    };
    std::vector<double> dx(x.size()), dr(router.size(), 0.0), dw1(w1.size(), 0.0), dw3(w3.size(), 0.0),
        dw2(w2.size(), 0.0), db1(b1.size(), 0.0), db2(b2.size(), 0.0);
    MoeGrads<double> gr{dr.data(), dw1.data(), c.bias ? db1.data() : nullptr,
                        moe_gated(c.mlp) ? dw3.data() : nullptr, dw2.data(), c.bias ? db2.data() : nullptr};
    moe_backward_ref(dx.data(), gr, g.data(), x.data(), N, sp, w, r0, 1.0);
    std::vector<GradInput> in{{"x", &x, &dx}, {"router", &router, &dr}, {"w1", &w1, &dw1}, {"w2", &w2, &dw2}};
    if (moe_gated(c.mlp)) in.push_back({"w3", &w3, &dw3});
    if (c.bias) in.push_back({"b1", &b1, &db1}), in.push_back({"b2", &b2, &db2});
    check_grads(in, loss, std::string("moe ") + c.name);
  }
}

}  // namespace
}  // namespace moe::test
