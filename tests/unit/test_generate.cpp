// The KV-cache decoder (Decoder::feed) against the training forward (Model::forward)
// on the full sequence: the same logits at every position, for both families, when
// the prompt is fed in one chunk, token by token, or in a chunk then tokens.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

#include "model/decoder/generate.h"
#include "model/decoder/model.h"
#include "tensor/cpu.h"
#include "testutil.h"

namespace moe {
namespace {

constexpr int kV = 96, kT = 24;

// Row t of the full forward's (1, T, V) logits.
std::vector<float> row(const Model& m, int t) {
  const float* l = m.logits() + size_t(t) * kV;
  return std::vector<float>(l, l + kV);
}

// 1e-5 relative to the largest logit: the decoder runs the same ops on the same
// weights, but on n rows instead of B*T (other GEMM blocking, hence other float
// summation orders) and attention over the cache instead of the causal kernel.
::testing::AssertionResult close(const std::vector<float>& got, const std::vector<float>& want, const std::string& what) {
  double scale = 0;
  for (float x : want) scale = std::max(scale, double(std::fabs(x)));
  return test::all_close(got, want, 1e-5 * scale, 1e-5, what);
}

void check_family(const std::string& family) {
  SCOPED_TRACE(family);
  // One thread: the comparison does not depend on the thread count, and OpenMP's
  // spinning threads make a tiny model 100x slower when the cores are busy.
  threads_set(1);
  Model m(model_preset(family, "tiny", kV));
  m.init_weights(42);
  const std::vector<int32_t> tokens = test::randint(kT, kV, 7);
  m.forward(tokens.data(), nullptr, 1, kT);
  std::vector<std::vector<float>> ref;
  for (int t = 0; t < kT; t++) ref.push_back(row(m, t));
  // The logits are not trivially equal across positions (the check below is specific).
  ASSERT_FALSE(close(ref[0], ref[kT - 1], "position 0 vs last"));

  {  // the whole prompt in one chunk
    Decoder d(m);
    EXPECT_TRUE(close(d.feed(tokens), ref[kT - 1], family + ": one chunk, last position"));
    EXPECT_EQ(d.length(), kT);
  }
  {  // token by token: every position
    Decoder d(m);
    for (int t = 0; t < kT; t++)
      EXPECT_TRUE(close(d.feed({tokens[t]}), ref[t], family + ": token by token, position " + std::to_string(t)));
  }
  {  // a chunk, then the rest token by token
    Decoder d(m);
    const int n0 = 9;
    EXPECT_TRUE(close(d.feed(std::vector<int32_t>(tokens.begin(), tokens.begin() + n0)), ref[n0 - 1],
                      family + ": first chunk"));
    for (int t = n0; t < kT; t++)
      EXPECT_TRUE(close(d.feed({tokens[t]}), ref[t], family + ": after a chunk, position " + std::to_string(t)));
  }
  {  // past the model's positions: refused, not written out of bounds
    Decoder d(m);
    const int n_ctx = m.config().n_ctx;
    d.feed(std::vector<int32_t>(size_t(n_ctx), 1));
    EXPECT_THROW(d.feed({1}), std::invalid_argument);
    Decoder d2(m);
    EXPECT_THROW(d2.feed(std::vector<int32_t>(size_t(n_ctx) + 1, 1)), std::invalid_argument);
    EXPECT_THROW(d2.feed({kV}), std::invalid_argument);  // a token outside the vocabulary
  }
}

TEST(Generate, DecoderMatchesForwardLlama) { check_family("llama"); }
TEST(Generate, DecoderMatchesForwardGpt2) { check_family("gpt2"); }

// Greedy generation is the argmax of the full forward at each step.
TEST(Generate, GreedyFollowsForwardArgmax) {
  threads_set(1);
  Model m(model_preset("gpt2", "tiny", kV));
  m.init_weights(3);
  std::vector<int32_t> seq = test::randint(5, kV, 11);
  SampleOptions o;
  o.temperature = 0;
  o.max_tokens = 6;
  const std::vector<int32_t> out = generate(m, seq, o);
  ASSERT_EQ(out.size(), 6u);
  for (int32_t t : out) {
    m.forward(seq.data(), nullptr, 1, int(seq.size()));
    std::vector<float> last = row(m, int(seq.size()) - 1);
    EXPECT_EQ(t, int32_t(std::max_element(last.begin(), last.end()) - last.begin()));
    seq.push_back(t);
  }
}

}  // namespace
}  // namespace moe
