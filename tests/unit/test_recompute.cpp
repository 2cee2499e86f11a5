// Activation recomputation (Model::set_recompute): the same loss, gradients, MoE
// losses and routing bit for bit; an arena smaller by at least L-1 layers'
// activations; and the analytic memory model (model/memory.h) against the real
// arena and buffers, the layout's parameter count and AdamW's moment buffers.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "model/flops.h"
#include "model/memory.h"
#include "model/decoder/model.h"
#include "tensor/cpu.h"
#include "train/optimizer.h"

namespace moe {
namespace {

struct Case {
  const char* name;
  const char* family;
  int experts, top_k;
  float capacity;  // 0: dropless
  bool bf16;
};
// Dense and MoE (top-1 with capacity dropping and router noise; top-2 dropless), both
// families, f32 and bf16.
const Case kCases[] = {
    {"llama dense f32", "llama", 0, 1, 0, false},   {"gpt2 dense bf16", "gpt2", 0, 1, 0, true},
    {"mixtral top-1 cf 1.0 f32", "llama", 4, 1, 1.0f, false}, {"gpt2 moe top-2 dropless bf16", "gpt2", 4, 2, 0, true},
    {"mixtral top-2 dropless bf16", "llama", 4, 2, 0, true},  {"gpt2 moe top-1 cf 1.0 f32", "gpt2", 4, 1, 1.0f, false},
};

ModelConfig config_of(const Case& k, int layers) {
  ModelConfig c = model_preset(k.family, "tiny", 128);
  c.n_layer = layers;
  if (k.experts) {
    c.n_experts = k.experts, c.top_k = k.top_k, c.capacity_factor = k.capacity, c.moe_all_layers = true;
    c.moe_renormalize = k.top_k > 1;
    c.router_jitter = 0.1f, c.expert_dropout = 0.1f;  // noise that must be the same when rerun
    if (c.family == "llama") c.family = "mixtral";
  }
  c.validate();
  return c;
}

struct StepResult {
  float loss = 0;
  double moe_loss = 0;
  std::vector<float> grads;
  std::vector<std::vector<int32_t>> choices;
  std::vector<std::vector<uint8_t>> kept;
  size_t arena = 0, activations = 0;
};

// Two micro-batches of forward + backward with dropout (accumulated gradients).
StepResult run_step(const ModelConfig& c, bool bf16, bool recompute, int B, int T) {
  Model m(c);
  m.init_weights(7);
  m.set_recompute(recompute);
  std::mt19937 rng(5);
  const int N = B * T;
  std::vector<int32_t> in(N), tgt(N);
  StepResult r;
  m.grads().zero();
  for (int micro = 0; micro < 2; micro++) {
    for (auto& t : in) t = int32_t(rng() % c.vocab_size);
    for (auto& t : tgt) t = int32_t(rng() % c.vocab_size);
    ForwardOptions fo;
    fo.compute = bf16 ? Compute::BF16 : Compute::F32;
    fo.dropout = 0.1f, fo.dropout_seed = 99 + micro;
    r.loss += m.forward(in.data(), tgt.data(), B, T, fo);
    r.moe_loss += m.moe_loss();
    m.backward(0.5f);
  }
  r.grads.assign(m.grads().data(), m.grads().data() + m.grads().numel());
  for (int l = 0; l < c.n_layer; l++)
    if (const MoeBlock* b = m.moe_block(l)) r.choices.push_back(b->routing().choice), r.kept.push_back(b->routing().kept);
  r.arena = m.arena_bytes(), r.activations = m.activation_bytes();
  return r;
}

TEST(Recompute, GradientsLossesAndRoutingAreBitIdentical) {
  for (const Case& k : kCases) {
    const ModelConfig c = config_of(k, 3);
    const StepResult a = run_step(c, k.bf16, false, 2, 32), b = run_step(c, k.bf16, true, 2, 32);
    EXPECT_EQ(std::memcmp(&a.loss, &b.loss, sizeof(float)), 0) << k.name << ": " << a.loss << " vs " << b.loss;
    EXPECT_EQ(a.moe_loss, b.moe_loss) << k.name;
    ASSERT_EQ(a.grads.size(), b.grads.size());
    size_t differ = 0;
    for (size_t i = 0; i < a.grads.size(); i++) differ += std::memcmp(&a.grads[i], &b.grads[i], sizeof(float)) != 0;
    EXPECT_EQ(differ, 0u) << k.name << ": gradients that differ";
    EXPECT_EQ(a.choices, b.choices) << k.name;
    EXPECT_EQ(a.kept, b.kept) << k.name;
    if (k.experts && k.capacity > 0) {  // the capacity case does drop pairs (else it tests nothing more)
      size_t dropped = 0;
      for (const auto& v : a.kept)
        for (uint8_t x : v) dropped += !x;
      EXPECT_GT(dropped, 0u) << k.name;
    }
    EXPECT_LT(b.activations, a.activations) << k.name;
  }
}

// One layer's kept activations, counted here from the shapes (fp32 only, a lower
// bound): ln1, q, k, v, attention output, x_mid, ln2 (N,·), the MLP's hidden
// activations (N,F) and the attention probabilities (B,H,T,T).
double layer_floor_bytes(const ModelConfig& c, int B, int T) {
  const double N = double(B) * T, D = c.head_dim(), Cq = c.n_head * D, Ckv = c.n_kv_head * D;
  const double mlp = c.mlp == MlpKind::SwiGLU ? 3 : 2;
  return 4 * (N * (3 * c.n_embd + 2 * Cq + 2 * Ckv + mlp * c.n_inner) + double(B) * c.n_head * T * T);
}

TEST(Recompute, ArenaShrinksByAtLeastLMinusOneLayers) {
  for (const char* family : {"llama", "gpt2"})
    for (int layers : {2, 6}) {
      ModelConfig c = model_preset(family, "tiny", 128);
      c.n_layer = layers;
      const int B = 3, T = 64;
      Model m(c);
      m.init_weights(1);
      std::vector<int32_t> in(B * T, 5);
      m.forward(in.data(), nullptr, B, T);
      const size_t full = m.arena_bytes();
      m.set_recompute(true);
      m.forward(in.data(), nullptr, B, T);  // re-carved for recompute
      const size_t rc = m.arena_bytes();
      EXPECT_GE(double(full) - double(rc), (layers - 1) * layer_floor_bytes(c, B, T)) << family << " L=" << layers;
      m.set_recompute(false);
      m.forward(in.data(), nullptr, B, T);
      EXPECT_EQ(m.arena_bytes(), full) << family << ": switching back carves the full arena again";
    }
}

// The estimate of the activations against Model::activation_bytes() after a training
// step. Dense: the arena formula is exact but for each slice's 64-byte alignment
// (< 64 bytes x ~40 slices): 0.5%. MoE: the grouped rows are data-dependent (kept
// pairs plus each expert's padding to 16 rows); the estimate counts the upper bound
// (all N K pairs or E x capacity, plus 15 rows per expert), so it is at least the
// real size; above it by the dropped pairs and unused padding, which at these sizes
// (N = 256 tokens, 4 experts, up to 64 rows each) measured 2.5-4% dropless and 6-11%
// with capacity 1.0: 15%.
TEST(Recompute, EstimateMatchesTheRealActivations) {
  const int threads = threads_get();
  threads_set(1);  // sizes do not depend on threads; one is faster on a busy machine
  for (const Case& k : kCases)
    for (bool recompute : {false, true}) {
      const ModelConfig c = config_of(k, 3);
      const int B = 4, T = 64;
      const StepResult r = run_step(c, k.bf16, recompute, B, T);
      MemoryOptions o;
      o.bf16 = k.bf16, o.recompute = recompute, o.B = B, o.T = T;
      const MemoryEstimate e = model_memory_estimate(c, o);
      const std::string what = std::string(k.name) + (recompute ? " recompute" : "");
      if (!k.experts) {
        EXPECT_NEAR(e.activations, double(r.activations), 0.005 * r.activations) << what;
      } else {
        EXPECT_GE(e.activations, 0.999 * r.activations) << what;
        EXPECT_LE(e.activations, 1.15 * r.activations) << what;
      }
    }
  threads_set(threads);
}

// Parameters, gradients and moments are exact: the layout's count, AdamW's two
// buffers; per rank, the experts split over EP and ZeRO-1's moment shards.
TEST(Recompute, EstimateParametersAndMomentsAreExact) {
  for (const Case& k : kCases) {
    const ModelConfig c = config_of(k, 4);
    Model m(c);
    AdamW opt(m.layout());
    MemoryOptions o;
    o.bf16 = k.bf16;
    const MemoryEstimate e = model_memory_estimate(c, o);
    EXPECT_EQ(e.n_params, double(m.num_params())) << k.name;
    EXPECT_EQ(e.params, 4.0 * m.params().numel()) << k.name;
    EXPECT_EQ(e.grads, 4.0 * m.grads().numel()) << k.name;
    EXPECT_EQ(e.moments, 4.0 * (opt.m().numel() + opt.v().numel())) << k.name;
    EXPECT_EQ(e.bf16_copy, k.bf16 ? 2.0 * m.num_params() : 0.0) << k.name;
    // Expert weights: the layout's [E, ...] tensors (named with '*').
    double experts = 0;
    for (const ParamSpec& s : m.layout().specs())
      if (s.name.find('*') != std::string::npos) experts += double(s.shape.numel());
    EXPECT_EQ(model_expert_param_count(c), experts) << k.name;
    if (!k.experts) continue;
    const double shared = double(m.num_params()) - experts;
    o.ranks = 8, o.expert_parallel = 4, o.zero = 0, o.B = 16, o.T = 32;
    MemoryEstimate d = model_memory_estimate(c, o);
    EXPECT_EQ(d.n_params_rank, shared + experts / 4) << k.name;
    EXPECT_EQ(d.params, 4 * (shared + experts / 4)) << k.name;
    EXPECT_EQ(d.moments, 8 * (shared + experts / 4)) << k.name;
    EXPECT_EQ(d.local_batch, 2) << k.name;
    o.zero = 1;
    d = model_memory_estimate(c, o);
    // ZeRO-1: the replicated part over all 8 ranks, each expert over the 2 ranks holding it.
    EXPECT_EQ(d.moments, 8 * (shared / 8 + experts / 4 / 2)) << k.name;
    EXPECT_EQ(d.grads, 4 * (shared + experts / 4)) << k.name;  // gradients are not sharded
    // The activations of 8 data-parallel ranks of 2 sequences each are those of one
    // process with 2; expert parallelism adds its exchange buffers.
    MemoryOptions one;
    one.bf16 = k.bf16, one.B = 2, one.T = 32;
    MemoryOptions dp = o;
    dp.expert_parallel = 1;
    EXPECT_EQ(model_memory_estimate(c, dp).activations, model_memory_estimate(c, one).activations) << k.name;
    EXPECT_GT(d.activations, model_memory_estimate(c, one).activations) << k.name;
    EXPECT_GT(d.comm, 0) << k.name;
    EXPECT_EQ(model_memory_estimate(c, one).comm, 0) << k.name;
  }
}

}  // namespace
}  // namespace moe
