// T5: config.json fields and refusals, the encoder's bidirectional and the decoder's
// causal dependence, checkpoints (round trip, HF's tied embedding copies, bad files),
// bf16 compute. The numerics against PyTorch: tests/oracle/test_oracle_t5.cpp.
#include <cmath>
#include <cstring>
#include <functional>
#include <map>

#include "io/files.h"
#include "io/safetensors.h"
#include "model/checkpoint.h"
#include "model/memory.h"
#include "model/decoder/model.h"
#include "model/t5/t5.h"
#include "model/t5/t5_family.h"
#include "model/t5/t5_generate.h"
#include "testutil.h"

namespace moe::test {
namespace {

ModelConfig tiny_t5(MlpKind mlp = MlpKind::GeGLU, bool tied = false) {
  ModelConfig c = model_preset("t5", "tiny", 96);
  c.mlp = mlp, c.tied = tied;
  c.n_layer = 2, c.n_dec_layer = 3, c.d_kv = 8;  // H * d_kv = 32 != C = 64
  c.rel_buckets = 8, c.rel_max_distance = 20;
  c.validate();
  return c;
}

TEST(T5Config, RoundTripsThroughHfFields) {
  for (MlpKind mlp : {MlpKind::GeGLU, MlpKind::Relu})
    for (bool tied : {false, true}) {
      const ModelConfig c = tiny_t5(mlp, tied);
      nlohmann::json j = config_to_hf(c);
      EXPECT_EQ(j["model_type"], "t5");
      EXPECT_EQ(j["architectures"][0], "T5ForConditionalGeneration");
      EXPECT_EQ(j["feed_forward_proj"], mlp == MlpKind::Relu ? "relu" : "gated-gelu");
      EXPECT_EQ(j["d_kv"], 8);
      EXPECT_EQ(j["num_decoder_layers"], 3);
      const ModelConfig r = config_from_hf(j, "config.json");
      EXPECT_EQ(r.family, "t5");
      EXPECT_EQ(r.mlp, mlp);
      EXPECT_EQ(r.tied, tied);
      EXPECT_EQ(r.n_layer, 2);
      EXPECT_EQ(r.n_dec_layer, 3);
      EXPECT_EQ(r.head_dim(), 8);
      EXPECT_EQ(r.rel_buckets, 8);
      EXPECT_EQ(r.rel_max_distance, 20);
      EXPECT_EQ(r.pad_id, 0);
      EXPECT_EQ(r.eos_id, 1);
      EXPECT_EQ(r.bos_id, 0) << "the decoder starts with pad";
      EXPECT_EQ(config_to_hf(r), j);
    }
}

// MoE T5: expert choice in the encoder, top-2 in the decoder, every other layer of both
// stacks by default; the config round-trips and the layout holds the experts.
ModelConfig moe_t5(MlpKind mlp = MlpKind::GeGLU, bool ec = true, int K = 2, float cf = 0.0f) {
  ModelConfig c = tiny_t5(mlp, false);
  c.n_experts = 4, c.top_k = K, c.expert_choice = ec, c.enc_capacity_factor = 2.0f, c.capacity_factor = cf;
  c.moe_renormalize = K > 1, c.aux_loss_coef = 0.01f, c.z_loss_coef = 1e-3f;
  c.validate();
  return c;
}

TEST(T5Config, MoeRoundTripsAndLaysOutExperts) {
  const ModelConfig c = moe_t5();
  nlohmann::json j = config_to_hf(c);
  EXPECT_EQ(j["num_experts"], 4);
  EXPECT_EQ(j["num_experts_per_tok"], 2);
  EXPECT_EQ(j["moe_routing"], "expert_choice");
  EXPECT_FALSE(j.contains("moe_layers")) << "the default, every other layer of both stacks";
  const ModelConfig r = config_from_hf(j, "config.json");
  EXPECT_EQ(config_to_hf(r), j);
  EXPECT_TRUE(r.expert_choice && r.is_moe());
  const T5Layout L = t5_layout(c);
  EXPECT_NE(L.layout.find("encoder.block.1.layer.1.mlp.router.classifier.weight"), nullptr);
  EXPECT_NE(L.layout.find("encoder.block.1.layer.1.mlp.experts.expert_*.wi_0.weight"), nullptr);
  EXPECT_NE(L.layout.find("decoder.block.1.layer.2.mlp.experts.expert_*.wo.weight"), nullptr);
  EXPECT_NE(L.layout.find("decoder.block.2.layer.2.DenseReluDense.wi_1.weight"), nullptr) << "layer 2: dense";
  EXPECT_EQ(L.layout.find("encoder.block.0.layer.1.mlp.router.classifier.weight"), nullptr);
  T5Model m(c, false);
  EXPECT_EQ(double(m.num_params()), model_param_count(c));
  EXPECT_NE(m.moe_block(1), nullptr);                         // encoder layer 1
  EXPECT_TRUE(m.moe_block(1)->spec().expert_choice);
  EXPECT_NE(m.moe_block(c.n_layer + 1), nullptr);             // decoder layer 1
  EXPECT_FALSE(m.moe_block(c.n_layer + 1)->spec().expert_choice) << "the decoder's tokens choose";
  EXPECT_EQ(m.moe_block(c.n_layer + 1)->spec().K, 2);
  // A decoder-only model refuses expert choice (not causal); T5 takes it for its encoder.
  ModelConfig d = model_preset("llama", "tiny", 96);
  d.family = "mixtral", d.n_experts = 4, d.top_k = 2, d.expert_choice = true;
  EXPECT_THROW(d.validate(), std::invalid_argument);
}

// HF switch_transformers: its config fields (sparse steps, expert_capacity, the router's),
// its dense MLPs named mlp.wi / mlp.wo, top-1 raw routing with capacity per sequence.
TEST(T5Config, SwitchTransformersFields) {
  nlohmann::json j = {{"model_type", "switch_transformers"}, {"vocab_size", 100}, {"d_model", 32}, {"num_heads", 4},
                      {"d_kv", 8},  {"d_ff", 64}, {"num_layers", 4}, {"num_decoder_layers", 4},
                      {"num_experts", 4}, {"expert_capacity", 6}, {"num_sparse_encoder_layers", 2},
                      {"num_sparse_decoder_layers", 2}, {"router_jitter_noise", 0.0}};
  ModelConfig c = config_from_hf(j, "cfg.json");
  EXPECT_TRUE(t5_is_switch(c) && t5_family(c));
  EXPECT_EQ(c.n_experts, 4);
  EXPECT_EQ(c.switch_capacity, 6);
  EXPECT_EQ(c.top_k, 1);
  EXPECT_FALSE(c.moe_renormalize);
  EXPECT_EQ(c.mlp, MlpKind::Relu) << "switch_transformers' relu experts";
  for (int l = 0; l < 4; l++) EXPECT_EQ(c.moe_layer(l), l % 2 == 1) << "4 / 2 sparse layers: step 2";
  EXPECT_TRUE(c.tied);
  nlohmann::json w = config_to_hf(c);
  EXPECT_EQ(w["encoder_sparse_step"], 2);
  EXPECT_EQ(w["num_sparse_encoder_layers"], 2);
  EXPECT_EQ(w["expert_capacity"], 6);
  EXPECT_EQ(config_to_hf(config_from_hf(w, "cfg.json")), w);
  const T5Layout L = t5_layout(c);
  EXPECT_NE(L.layout.find("encoder.block.0.layer.1.mlp.wi.weight"), nullptr) << "HF's dense MLP: mlp, not DenseReluDense";
  EXPECT_NE(L.layout.find("decoder.block.3.layer.2.mlp.experts.expert_*.wo.weight"), nullptr);
  EXPECT_EQ(L.layout.find("encoder.block.0.layer.1.DenseReluDense.wi.weight"), nullptr);
  // Sparse step 1: every layer; different steps, a router bias, gated experts: refused.
  j["encoder_sparse_step"] = 1, j["decoder_sparse_step"] = 1;
  c = config_from_hf(j, "cfg.json");
  for (int l = 0; l < 4; l++) EXPECT_TRUE(c.moe_layer(l));
  auto refused = [&](const char* key, nlohmann::json v, const char* says) {
    nlohmann::json b = j;
    b[key] = v;
    try {
      config_from_hf(b, "cfg.json");
      ADD_FAILURE() << key << " accepted";
    } catch (const std::exception& e) {
      EXPECT_NE(std::string(e.what()).find(says), std::string::npos) << e.what();
    }
  };
  refused("decoder_sparse_step", 2, "sparse steps");
  refused("router_bias", true, "router_bias");
  refused("expert_capacity", 0, "expert_capacity");
  refused("dense_act_fn", "gelu_new", "dense_act_fn");
  refused("router_dtype", "bfloat16", "router_dtype");
}

TEST(T5Config, HfDefaultsAndRefusals) {
  nlohmann::json j = {{"model_type", "t5"}, {"vocab_size", 100}, {"d_model", 32}, {"num_heads", 4},
                      {"d_ff", 64},         {"num_layers", 2}};
  ModelConfig c = config_from_hf(j, "cfg.json");
  EXPECT_EQ(c.head_dim(), 64) << "HF T5Config's d_kv default";
  EXPECT_EQ(c.n_dec_layer, 2) << "num_decoder_layers defaults to num_layers";
  EXPECT_EQ(c.mlp, MlpKind::Relu) << "HF's feed_forward_proj default";
  EXPECT_TRUE(c.tied) << "HF's tie_word_embeddings default";
  EXPECT_EQ(c.rel_buckets, 32);
  EXPECT_EQ(c.rel_max_distance, 128);
  EXPECT_FLOAT_EQ(c.norm_eps, 1e-6f);
  auto refused = [&](const char* key, nlohmann::json v, const char* says) {
    nlohmann::json b = j;
    b[key] = v;
    try {
      config_from_hf(b, "cfg.json");
      ADD_FAILURE() << key << " = " << v << " was accepted";
    } catch (const std::exception& e) {
      EXPECT_NE(std::string(e.what()).find("cfg.json"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(says), std::string::npos) << e.what();
    }
  };
  refused("feed_forward_proj", "gated-silu", "feed_forward_proj");
  refused("is_encoder_decoder", false, "is_encoder_decoder");
  refused("num_decoder_layers", 0, "num_decoder_layers");
  refused("relative_attention_num_buckets", 7, "relative_attention_num_buckets");
  refused("relative_attention_max_distance", 16, "relative_attention_max_distance");  // <= 32 / 2
  refused("is_gated_act", true, "is_gated_act");
  refused("dense_act_fn", "gelu_new", "dense_act_fn");
  refused("d_kv", -1, "d_kv");
  refused("pad_token_id", 100, "pad_token_id");
  // Sizes beyond the supported ones are named by T5's own keys (issue 21: GPT-2's were).
  refused("num_layers", 2000, "layer count (num_layers)");
  refused("num_decoder_layers", 2000, "(num_decoder_layers)");
  refused("d_model", 100000, "hidden size (d_model)");
  refused("d_ff", 2000000, "MLP width (d_ff)");
}

// Where moe generate's T5 answer ends (issue 21: it invented <extra_id_N> past the
// prompt's last and padded with blank lines to --max-tokens): V 120, 100 pieces, 20
// sentinels (<extra_id_n> = 119 - n), eos 1, pad 0.
TEST(T5Generate, TheAnswerEndsAfterThePromptsLastSentinel) {
  const int V = 120, pieces = 100;
  const std::vector<int32_t> prompt{5, 119, 7, 118, 9, 1};  // "a <extra_id_0> b <extra_id_1> c" eos
  const int last = t5_last_sentinel(prompt, V, pieces);
  EXPECT_EQ(last, 1);
  EXPECT_EQ(t5_last_sentinel({5, 6, 1}, V, pieces), -1);
  auto ended = [&](int32_t t) { return t5_answer_ended(t, 1, 0, V, pieces, last); };
  for (int32_t t : {119, 118, 2, 5, 99}) EXPECT_FALSE(ended(t)) << t << ": <extra_id_0/1> and text go on";
  for (int32_t t : {1, 0, 117, 100}) EXPECT_TRUE(ended(t)) << t << ": eos, pad, <extra_id_2>, <extra_id_19> end it";
}

TEST(T5Config, DecoderOnlyPathsRefuseIt) {
  try {
    Model m(tiny_t5());
    ADD_FAILURE() << "a decoder-only Model accepted a t5 config";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("encoder-decoder"), std::string::npos) << e.what();
  }
}

TEST(T5Config, ParameterCountMatchesLayout) {
  for (bool tied : {false, true}) {
    const ModelConfig c = tiny_t5(MlpKind::GeGLU, tied);
    T5Model m(c, false);
    EXPECT_EQ(double(m.num_params()), model_param_count(c));
  }
}

struct Batch {
  int B = 2, Te = 12, Td = 7;
  std::vector<int32_t> enc, dec, tgt;
  explicit Batch(int V, uint64_t seed) {
    enc = randint(size_t(B) * Te, V, seed);
    tgt = randint(size_t(B) * Td, V, seed + 1);
    dec.resize(tgt.size());
    for (int b = 0; b < B; b++)
      for (int t = 0; t < Td; t++) dec[b * Td + t] = t == 0 ? 0 : tgt[b * Td + t - 1];  // shift right behind pad
  }
};

std::vector<float> copy_of(const float* p, size_t n) { return std::vector<float>(p, p + n); }

TEST(T5Model, EncoderIsBidirectionalDecoderIsCausal) {
  const ModelConfig c = tiny_t5();
  T5Model m(c, false);
  m.init_weights(5);
  Batch b(c.vocab_size, 7);
  const size_t C = c.n_embd, V = c.vocab_size;
  const float loss = m.forward(b.enc.data(), b.dec.data(), b.tgt.data(), b.B, b.Te, b.Td);
  EXPECT_TRUE(std::isfinite(loss));
  EXPECT_LT(std::fabs(loss - std::log(double(V))), 1.5) << "init loss near ln V";
  const auto enc0 = copy_of(m.encoder_output(), size_t(b.B) * b.Te * C);
  const auto logits0 = copy_of(m.logits(), size_t(b.B) * b.Td * V);
  // A later encoder token changes the encoder output at position 0 (bidirectional) and
  // every decoder position (cross-attention).
  Batch e = b;
  e.enc[b.Te - 1] = (e.enc[b.Te - 1] + 1) % c.vocab_size;
  m.forward(e.enc.data(), e.dec.data(), e.tgt.data(), e.B, e.Te, e.Td);
  double d_enc0 = 0, d_dec0 = 0;
  for (size_t i = 0; i < C; i++) d_enc0 = std::max(d_enc0, double(std::fabs(m.encoder_output()[i] - enc0[i])));
  for (size_t i = 0; i < V; i++) d_dec0 = std::max(d_dec0, double(std::fabs(m.logits()[i] - logits0[i])));
  EXPECT_GT(d_enc0, 1e-4) << "encoder position 0 must see the last encoder token";
  EXPECT_GT(d_dec0, 1e-4) << "decoder position 0 must see the encoder";
  // A later decoder input changes nothing before it.
  Batch d = b;
  const int t = 4;
  d.dec[t] = (d.dec[t] + 1) % c.vocab_size;
  m.forward(d.enc.data(), d.dec.data(), d.tgt.data(), d.B, d.Te, d.Td);
  for (int s = 0; s < b.Td; s++) {
    double diff = 0;
    for (size_t i = 0; i < V; i++) diff = std::max(diff, double(std::fabs(m.logits()[s * V + i] - logits0[s * V + i])));
    if (s < t) EXPECT_EQ(diff, 0.0) << "decoder position " << s << " saw input " << t;
    else EXPECT_GT(diff, 1e-5) << "decoder position " << s << " must see input " << t;
  }
}

// The KV-cached decoder (encoder once, self-attention cache, cross keys and values once)
// gives the teacher-forced forward's logits at every position: fed 3 tokens at once,
// then one at a time.
TEST(T5Model, CachedDecodingMatchesTheForward) {
  for (MlpKind mlp : {MlpKind::GeGLU, MlpKind::Relu}) {
    const ModelConfig c = tiny_t5(mlp, mlp == MlpKind::Relu);
    T5Model m(c, false);
    m.init_weights(21);
    const int Te = 11, Td = 9, V = c.vocab_size;
    std::vector<int32_t> enc = randint(Te, V, 8), dec = randint(Td, V, 9);
    dec[0] = c.bos_id;
    m.forward(enc.data(), dec.data(), nullptr, 1, Te, Td);
    const std::vector<float> want = copy_of(m.logits(), size_t(Td) * V);
    double scale = 0;
    for (float v : want) scale = std::max(scale, double(std::fabs(v)));
    T5Decoder d(m, enc);
    // fp32 through other GEMM shapes (rows at a time): rounding differences only.
    const double tol = 2e-5 * scale;
    const std::vector<float>& l2 = d.feed({dec[0], dec[1], dec[2]});
    EXPECT_TRUE(all_close(l2.data(), want.data() + 2 * V, V, tol, 1e-5, "cached logits at 2"));
    for (int t = 3; t < Td; t++) {
      const std::vector<float>& lt = d.feed({dec[t]});
      EXPECT_TRUE(all_close(lt.data(), want.data() + size_t(t) * V, V, tol, 1e-5, "cached logits at " + std::to_string(t)));
    }
    EXPECT_EQ(d.length(), Td);
    // Greedy decoding stops at eos or the token limit, and is deterministic.
    SampleOptions so;
    so.temperature = 0, so.max_tokens = 6, so.stop_token = c.eos_id;
    const auto g1 = t5_generate(m, enc, so), g2 = t5_generate(m, enc, so);
    EXPECT_EQ(g1, g2);
    EXPECT_GE(g1.size(), 1u);
    EXPECT_LE(g1.size(), 6u);
  }
}

// MoE T5: the encoder's expert-choice routing of a token depends on the other tokens of
// its sequence (so it is not causal, and only the encoder may use it); every expert
// takes exactly its capacity of each sequence; the decoder (dropless top-2) stays causal;
// the MoE losses are part of the loss; cached decoding matches the forward.
TEST(T5Model, MoeExpertChoiceEncoderTopKDecoder) {
  const ModelConfig c = moe_t5();
  T5Model m(c);
  m.init_weights(7);
  Batch b(c.vocab_size, 5);
  const int V = c.vocab_size, Te = b.Te;
  m.forward(b.enc.data(), b.dec.data(), b.tgt.data(), b.B, b.Te, b.Td);
  EXPECT_GT(m.moe_loss(), 0.0);
  const MoeBlock* enc = m.moe_block(1);
  ASSERT_NE(enc, nullptr);
  const MoeRouting r0 = enc->routing();
  const int cap = int(std::ceil(2.0 * Te / c.n_experts - 1e-9));
  EXPECT_EQ(r0.capacity, cap);
  for (int row = 0; row < b.B; row++)
    for (int e = 0; e < c.n_experts; e++) {
      int taken = 0;
      for (int t = 0; t < Te; t++) taken += r0.kept[(size_t(row) * Te + t) * c.n_experts + e];
      EXPECT_EQ(taken, cap) << "row " << row << ", expert " << e << " takes exactly its capacity";
    }
  const auto logits0 = copy_of(m.logits(), size_t(b.B) * b.Td * V);
  // Change the last encoder token of row 0 until the routing of an earlier token changes.
  bool earlier = false;
  for (int tries = 0; tries < 20 && !earlier; tries++) {
    Batch e = b;
    e.enc[Te - 1] = (e.enc[Te - 1] + 7 * (tries + 1)) % V;
    m.forward(e.enc.data(), e.dec.data(), e.tgt.data(), e.B, e.Te, e.Td);
    const MoeRouting& r = m.moe_block(1)->routing();
    for (size_t i = 0; i < size_t(Te - 1) * c.n_experts; i++) earlier |= r.kept[i] != r0.kept[i];
    for (size_t i = size_t(Te) * c.n_experts; i < r.kept.size(); i++)
      EXPECT_EQ(r.kept[i], r0.kept[i]) << "row 1's routing depends on row 0";
  }
  EXPECT_TRUE(earlier) << "a later token must change an earlier token's expert-choice routing";
  // The decoder is causal: a later decoder input changes nothing before it.
  Batch d = b;
  d.dec[5] = (d.dec[5] + 1) % V;
  m.forward(d.enc.data(), d.dec.data(), d.tgt.data(), d.B, d.Te, d.Td);
  for (int s = 0; s < 5; s++)
    for (int i = 0; i < V; i++) ASSERT_EQ(m.logits()[s * V + i], logits0[size_t(s) * V + i]) << "position " << s;
  // Cached decoding of row 0 equals the teacher-forced forward.
  std::vector<int32_t> enc0(b.enc.begin(), b.enc.begin() + Te), dec0(b.dec.begin(), b.dec.begin() + b.Td);
  ForwardOptions fo;
  fo.training = false;
  m.forward(enc0.data(), dec0.data(), nullptr, 1, Te, b.Td, fo);
  const auto want = copy_of(m.logits(), size_t(b.Td) * V);
  double scale = 0;
  for (float v : want) scale = std::max(scale, double(std::fabs(v)));
  T5Decoder dec(m, enc0);
  for (int t = 0; t < b.Td; t++) {
    const std::vector<float>& l = dec.feed({dec0[t]});
    EXPECT_TRUE(all_close(l.data(), want.data() + size_t(t) * V, V, 2e-5 * scale, 1e-5, "moe cached " + std::to_string(t)));
  }
}

TEST(T5Checkpoint, MoeRoundTrip) {
  const ModelConfig c = moe_t5(MlpKind::Relu, true, 1, 1.0f);
  T5Model m(c, false);
  m.init_weights(3);
  const std::string dir = fresh_dir("t5_moe_ckpt");
  t5_save(m, dir);
  auto f = SafeTensorsFile::open(dir + "/model.safetensors");
  EXPECT_NE(f.find("encoder.block.1.layer.1.mlp.experts.expert_3.wi.weight"), nullptr) << "one HF tensor per expert";
  auto r = t5_load(dir);
  EXPECT_EQ(0, std::memcmp(r->params().data(), m.params().data(), m.params().numel() * sizeof(float)));
  EXPECT_EQ(r->config().top_k, 1);
  EXPECT_TRUE(r->config().expert_choice);
}

TEST(T5Model, Bf16ComputeIsCloseToF32) {
  for (MlpKind mlp : {MlpKind::GeGLU, MlpKind::Relu}) {
    const ModelConfig c = tiny_t5(mlp, mlp == MlpKind::Relu);
    T5Model m(c);
    m.init_weights(11);
    Batch b(c.vocab_size, 3);
    const float l32 = m.forward(b.enc.data(), b.dec.data(), b.tgt.data(), b.B, b.Te, b.Td);
    m.grads().zero();
    m.backward();
    const auto g32 = copy_of(m.grads().data(), m.grads().numel());
    ForwardOptions fo;
    fo.compute = Compute::BF16;
    const float l16 = m.forward(b.enc.data(), b.dec.data(), b.tgt.data(), b.B, b.Te, b.Td, fo);
    m.grads().zero();
    m.backward();
    // bf16 operands (8 bits of mantissa) through 5 layers: about 1% of the loss and gradients.
    EXPECT_NEAR(l16, l32, 0.02 * l32);
    double num = 0, den = 0;
    for (size_t i = 0; i < g32.size(); i++) {
      const double d = m.grads().data()[i] - g32[i];
      num += d * d, den += double(g32[i]) * g32[i];
    }
    EXPECT_LT(std::sqrt(num / den), 0.05) << "relative L2 error of all gradients";
  }
}

// Rewrites dir/model.safetensors with `edit` applied to its tensors.
void rewrite(const std::string& dir, const std::function<void(std::map<std::string, std::vector<float>>&,
                                                              std::map<std::string, std::vector<int64_t>>&)>& edit) {
  auto f = SafeTensorsFile::open(dir + "/model.safetensors");
  std::map<std::string, std::vector<float>> t;
  std::map<std::string, std::vector<int64_t>> s;
  for (const STEntry& e : f.tensors()) t[e.name] = f.read_f32(e), s[e.name] = e.shape;
  edit(t, s);
  SafeTensorsWriter w;
  for (auto& [n, v] : t) w.add_f32(n, s[n], v.data());
  w.write(dir + "/model.safetensors");
}

std::string load_error(const std::string& dir) {
  try {
    t5_load(dir);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

TEST(T5Checkpoint, RoundTripAndDtypes) {
  const ModelConfig c = tiny_t5(MlpKind::Relu, true);
  T5Model m(c, false);
  m.init_weights(2);
  for (STDType dt : {STDType::F32, STDType::BF16}) {
    const std::string dir = fresh_dir(std::string("t5_ckpt_") + st_dtype_name(dt));
    t5_save(m, dir, dt);
    auto r = t5_load(dir);
    ASSERT_EQ(r->params().numel(), m.params().numel());
    size_t differ = 0;
    for (size_t i = 0; i < m.params().numel(); i++) {
      const float want = dt == STDType::F32 ? m.params().data()[i] : bf16_to_f32(f32_to_bf16(m.params().data()[i]));
      differ += r->params().data()[i] != want;
    }
    EXPECT_EQ(differ, 0u) << st_dtype_name(dt);
    EXPECT_EQ(config_load(dir + "/config.json").family, "t5");
  }
  const std::string dir = fresh_dir("t5_ckpt_tied_head");
  t5_save(m, dir);
  rewrite(dir, [](auto& t, auto& s) {
    t["lm_head.weight"] = std::vector<float>(t["shared.weight"].size(), 3.0f), s["lm_head.weight"] = s["shared.weight"];
  });
  auto r = t5_load(dir);
  EXPECT_EQ(0, std::memcmp(r->params().data(), m.params().data(), m.params().numel() * sizeof(float)))
      << "a tied model's stored lm_head.weight is ignored (HF ties it to shared.weight)";
}

TEST(T5Checkpoint, TiedEmbeddingCopiesAndBadFiles) {
  const ModelConfig c = tiny_t5();
  T5Model m(c, false);
  m.init_weights(4);
  const std::string dir = fresh_dir("t5_ckpt_aliases");
  t5_save(m, dir);
  // HF may keep the stacks' embed_tokens copies, or one of them instead of shared.weight.
  rewrite(dir, [](auto& t, auto& s) {
    t["encoder.embed_tokens.weight"] = t["shared.weight"], s["encoder.embed_tokens.weight"] = s["shared.weight"];
    t["decoder.embed_tokens.weight"] = t["shared.weight"], s["decoder.embed_tokens.weight"] = s["shared.weight"];
  });
  EXPECT_EQ(load_error(dir), "");
  rewrite(dir, [](auto& t, auto& s) { t.erase("shared.weight"), s.erase("shared.weight"); });
  {
    auto r = t5_load(dir);
    const ParamSpec& e = r->layout().at("shared.weight");
    EXPECT_EQ(0, std::memcmp(r->params().data() + e.offset, m.params().data() + e.offset, e.shape.numel() * 4));
  }
  rewrite(dir, [](auto& t, auto&) { t["decoder.embed_tokens.weight"][5] += 1.0f; });
  EXPECT_NE(load_error(dir).find("differs"), std::string::npos) << load_error(dir);
  // The original T5 files' unused cross-attention bias table (HF ignores it), and a tied
  // model's stored lm_head: ignored. The table with a wrong shape: refused.
  t5_save(m, dir);
  const std::string dead = "decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight";
  const int64_t NB = c.rel_buckets, H = c.n_head;
  rewrite(dir, [&](auto& t, auto& s) { t[dead] = std::vector<float>(size_t(NB * H), 0.5f), s[dead] = {NB, H}; });
  EXPECT_EQ(load_error(dir), "");
  rewrite(dir, [&](auto& t, auto& s) { t[dead].resize(size_t(NB * H) + 1), s[dead] = {NB * H + 1}; });
  EXPECT_NE(load_error(dir).find(dead), std::string::npos) << load_error(dir);
  // Missing, unexpected and misshapen tensors: one line naming the file and the tensor.
  t5_save(m, dir);
  rewrite(dir, [](auto& t, auto& s) { t.erase("decoder.block.1.layer.1.EncDecAttention.k.weight"), s.erase("decoder.block.1.layer.1.EncDecAttention.k.weight"); });
  EXPECT_NE(load_error(dir).find("decoder.block.1.layer.1.EncDecAttention.k.weight"), std::string::npos);
  t5_save(m, dir);
  rewrite(dir, [](auto& t, auto& s) { t["encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight"] = {1, 2}, s["encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight"] = {2}; });
  EXPECT_NE(load_error(dir).find("unexpected tensor 'encoder.block.1.layer.0.SelfAttention.relative_attention_bias"),
            std::string::npos) << load_error(dir);
  t5_save(m, dir);
  rewrite(dir, [](auto& t, auto& s) {
    const std::string n = "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight";
    t[n].resize(t[n].size() + 4), s[n][0] += 1;
  });
  EXPECT_NE(load_error(dir).find("relative_attention_bias"), std::string::npos) << load_error(dir);
}

}  // namespace
}  // namespace moe::test
