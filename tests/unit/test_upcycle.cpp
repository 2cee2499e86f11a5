// Sparse upcycling (src/upcycle): step 0 equals the dense model when it should, the
// strategies do exactly what they say, the output is a valid Mixtral / GPT-2 MoE
// directory (also sharded), bad dense checkpoints are refused naming the problem.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "io/files.h"
#include "io/safetensors.h"
#include "model/checkpoint.h"
#include "model/decoder/model_io.h"
#include "ops/adamw.h"
#include "testutil.h"
#include "train/optimizer.h"
#include "train/state.h"
#include "upcycle/expert_init.h"
#include "model/decoder/step0.h"
#include "model/decoder/upcycle.h"

namespace moe {
namespace {

namespace fs = std::filesystem;

std::string test_dir(const std::string& name) {
  const std::string dir = std::string(MOE_TEST_BIN) + "/upcycle_" + name;
  fs::remove_all(dir);
  return dir;
}

// A dense tiny model whose weights are large enough that every block matters: the
// MLP output is O(1), so a wrong expert or gate shows far above 1e-5. Biases and norm
// weights are random too (GPT-2's MLP biases must be sharded and scaled right).
std::unique_ptr<Model> dense_model(const std::string& family, uint64_t seed = 5) {
  ModelConfig c = model_preset(family, "tiny", 96);
  c.n_layer = 4;
  auto m = std::make_unique<Model>(c);
  m->init_weights(seed);
  uint64_t k = seed;
  for (const ParamSpec& s : m->layout().specs()) {
    float* p = m->params().data() + s.offset;
    const size_t n = size_t(s.shape.numel());
    if (s.shape.ndim == 2 && s.offset != m->off_embed())
      for (size_t i = 0; i < n; i++) p[i] *= 4.0f;
    if (s.shape.ndim == 1) {
      auto r = test::randn<float>(n, ++k, 0.2);
      for (size_t i = 0; i < n; i++) p[i] += r[i];  // norms: 1 + noise; biases: noise
    }
  }
  return m;
}

std::string save_dense(const Model& m, const std::string& name) {
  const std::string dir = test_dir(name);
  fs::create_directories(dir);
  model_save(m, dir);
  return dir;
}

std::vector<float> logits(Model& m, int B = 2, int T = 16) {
  auto in = test::randint(size_t(B) * T, m.config().vocab_size, 11);
  ForwardOptions fo;
  fo.training = false;
  m.forward(in.data(), nullptr, B, T, fo);
  return std::vector<float>(m.logits(), m.logits() + size_t(B) * T * m.config().vocab_size);
}

double max_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double d = 0;
  for (size_t i = 0; i < a.size(); i++) d = std::max(d, double(std::fabs(a[i] - b[i])));
  return d;
}

// Upcycles m and returns the max |logit difference| between the two models.
double upcycle_logit_diff(Model& dense, const std::string& name, const UpcycleOptions& o, std::string* out = nullptr) {
  const std::string src = save_dense(dense, name + "_dense"), dst = test_dir(name);
  Upcycler(src, o).write(dst);
  auto moe = model_load(dst);
  EXPECT_TRUE(moe->config().is_moe());
  if (out) *out = dst;
  return max_diff(logits(dense), logits(*moe));
}

TEST(Upcycle, RenormCopyEqualsDenseLlama) {
  auto d = dense_model("llama");
  UpcycleOptions o;
  o.experts = 4, o.top_k = 2;
  EXPECT_LE(upcycle_logit_diff(*d, "llama_copy", o), 1e-5);
  o.all_layers = true, o.top_k = 3;
  EXPECT_LE(upcycle_logit_diff(*d, "llama_copy_all", o), 1e-5);
}

TEST(Upcycle, RenormCopyEqualsDenseGpt2) {
  auto d = dense_model("gpt2");
  UpcycleOptions o;
  o.experts = 4, o.top_k = 2;
  EXPECT_LE(upcycle_logit_diff(*d, "gpt2_copy", o), 1e-5);
}

TEST(Upcycle, GranularWithScalingEqualsDense) {
  for (const char* fam : {"llama", "gpt2"}) {
    auto d = dense_model(fam);
    UpcycleOptions o;
    o.strategy = UpcycleStrategy::Granular, o.experts = 8, o.granularity = 2, o.top_k = 2;
    EXPECT_LE(upcycle_logit_diff(*d, std::string(fam) + "_gran2", o), 1e-5) << fam;
    o.granularity = 4, o.top_k = 4, o.all_layers = true;
    std::string out;
    EXPECT_LE(upcycle_logit_diff(*d, std::string(fam) + "_gran4", o, &out), 1e-5) << fam;
    EXPECT_EQ(config_load(out + "/config.json").expert_inner(), d->config().n_inner / 4);
    // Zero routers tie every expert: top-k takes the first k, whole groups again.
    o.router_std = 0;
    EXPECT_LE(upcycle_logit_diff(*d, std::string(fam) + "_gran4z", o), 1e-5) << fam;
  }
}

TEST(Upcycle, TheTestsAreSensitive) {
  // Without renormalisation the gates shrink the MLP: far above the 1e-5 above.
  auto d = dense_model("llama");
  UpcycleOptions o;
  o.experts = 4, o.top_k = 1, o.renormalize = false;
  EXPECT_GT(upcycle_logit_diff(*d, "llama_raw", o), 1e-2);
  // Granular with k not a multiple of G splits virtual groups.
  o.renormalize = true, o.strategy = UpcycleStrategy::Granular, o.granularity = 2, o.experts = 8, o.top_k = 1;
  EXPECT_GT(upcycle_logit_diff(*d, "llama_gran_k1", o), 1e-2);
}

TEST(Upcycle, Step0ReportShowsSwitchShrinkage) {
  auto d = dense_model("llama");
  const std::string src = save_dense(*d, "shrink_dense");
  auto in = test::randint(4 * 32, 96, 3), tgt = test::randint(4 * 32, 96, 4);
  {  // renormalised copy: equal
    UpcycleOptions o;
    o.experts = 4, o.top_k = 2;
    const std::string dst = test_dir("shrink_exact");
    Upcycler(src, o).write(dst);
    Step0Report r = step0_check(src, dst, in, tgt, 4, 32);
    ASSERT_EQ(r.layers.size(), 4u);
    for (const Step0Layer& L : r.layers) {
      EXPECT_LE(L.block_max_diff, 1e-5 * std::max(1.0, L.mlp_max_abs)) << L.layer;
      if (L.moe) {
        EXPECT_NEAR(L.scale, 1.0, 1e-6);
      }
    }
    EXPECT_NEAR(r.dense_loss, r.moe_loss, 1e-5);
  }
  {  // Switch top-1 raw gates: the block is the MLP times the chosen gate (about 1/E)
    UpcycleOptions o;
    o.experts = 8, o.top_k = 1, o.renormalize = false;
    const std::string dst = test_dir("shrink_switch");
    Upcycler(src, o).write(dst);
    Step0Report r = step0_check(src, dst, in, tgt, 4, 32);
    int moe_layers = 0;
    for (const Step0Layer& L : r.layers) {
      if (!L.moe) continue;
      moe_layers++;
      EXPECT_GT(L.gate_mass, 1.0 / 8) << "the top-1 gate is the largest of 8";
      EXPECT_LT(L.gate_mass, 0.3) << "a fresh small router is near uniform";
      EXPECT_NEAR(L.scale, L.gate_mass, 0.05) << "output = gate x dense MLP";
      EXPECT_GT(L.block_max_diff, 0.5 * L.mlp_max_abs);
    }
    EXPECT_EQ(moe_layers, 2);
    EXPECT_GT(std::fabs(r.moe_loss - r.dense_loss), 1e-3);
  }
}

TEST(Upcycle, DropUpcyclingReinitialisesExactlyTheFraction) {
  auto d = dense_model("llama");
  UpcycleOptions o;
  o.experts = 4, o.top_k = 2, o.strategy = UpcycleStrategy::Drop, o.drop_rate = 0.3f, o.seed = 9;
  std::string out;
  upcycle_logit_diff(*d, "drop", o, &out);
  auto m = model_load(out);
  const ModelConfig& c = m->config();
  const int F = c.n_inner, C = c.n_embd, want = int(std::lround(0.3 * F));
  for (int l = 0; l < c.n_layer; l++) {
    if (!c.moe_layer(l)) continue;
    const float* gate = d->params().data() + d->layer_offsets(l).gate;
    const float* up = d->params().data() + d->layer_offsets(l).up;
    const float* down = d->params().data() + d->layer_offsets(l).down;
    MoeWeights<float> w = m->moe_weights(l);
    std::set<std::vector<int>> subsets;
    for (int e = 0; e < c.n_experts; e++) {
      std::vector<int> changed;
      for (int u = 0; u < F; u++) {
        const float* w1 = w.w1 + (size_t(e) * F + u) * C;
        const float* w3 = w.w3 + (size_t(e) * F + u) * C;
        bool r1 = std::memcmp(w1, gate + size_t(u) * C, C * 4) != 0, r3 = std::memcmp(w3, up + size_t(u) * C, C * 4) != 0;
        bool r2 = false;
        for (int i = 0; i < C; i++) r2 |= w.w2[size_t(e) * C * F + size_t(i) * F + u] != down[size_t(i) * F + u];
        EXPECT_EQ(r1, r3) << "w1 and w3 re-initialise the same units";
        EXPECT_EQ(r1, r2) << "w2's columns follow the units";
        if (r1) changed.push_back(u);
      }
      EXPECT_EQ(int(changed.size()), want) << "layer " << l << " expert " << e;
      EXPECT_EQ(changed, drop_units(ExpertRecipe{4, 1, F, 1, 1, 0, 0.3f, 9, l}, e));
      subsets.insert(changed);
    }
    EXPECT_EQ(int(subsets.size()), c.n_experts) << "a different subset per expert";
  }
}

TEST(Upcycle, DropStatisticsAndNoise) {
  // Re-initialised values follow the dense tensor's mean and std; noise has the asked std.
  std::vector<float> dense = test::randn<float>(512 * 64, 1, 0.5);
  for (float& x : dense) x += 0.1f;
  const TensorStats st = tensor_stats(dense.data(), dense.size());
  EXPECT_NEAR(st.mean, 0.1, 0.01);
  EXPECT_NEAR(st.std, 0.5, 0.01);
  ExpertRecipe r;
  r.E = 2, r.F = 512, r.drop_rate = 1.0f;
  std::vector<float> out(dense.size());
  make_expert(r, MlpPart::In, 0, dense.data(), 512, 64, st, 1, 0, out.data());
  const TensorStats so = tensor_stats(out.data(), out.size());
  EXPECT_NEAR(so.mean, st.mean, 0.02);
  EXPECT_NEAR(so.std, st.std, 0.02);
  r.drop_rate = 0, r.noise = 0.1f;
  make_expert(r, MlpPart::In, 0, dense.data(), 512, 64, st, 1, 0, out.data());
  for (size_t i = 0; i < out.size(); i++) out[i] -= dense[i];
  EXPECT_NEAR(tensor_stats(out.data(), out.size()).std, 0.1 * st.std, 0.005);
}

TEST(Upcycle, MixtralDirectoryLayoutReloadsAndTrains) {
  auto d = dense_model("llama");
  UpcycleOptions o;
  o.experts = 4, o.top_k = 2;
  const std::string src = save_dense(*d, "mixtral_dense"), dst = test_dir("mixtral");
  Upcycler(src, o).write(dst);
  auto j = nlohmann::json::parse(file_read(dst + "/config.json"));
  EXPECT_EQ(j["model_type"], "mixtral");
  EXPECT_EQ(j["architectures"][0], "MixtralForCausalLM");
  EXPECT_EQ(j["num_local_experts"], 4);
  EXPECT_EQ(j["num_experts_per_tok"], 2);
  EXPECT_EQ(j["intermediate_size"], d->config().n_inner);
  EXPECT_EQ(j["moe_layers"], nlohmann::json::array({1, 3}));
  auto f = SafeTensorsFile::open(dst + "/model.safetensors");
  const int C = d->config().n_embd, F = d->config().n_inner;
  for (int l : {1, 3}) {
    const std::string p = "model.layers." + std::to_string(l) + ".block_sparse_moe.";
    f.expect(p + "gate.weight", {4, C});
    for (int e = 0; e < 4; e++) {
      const std::string x = p + "experts." + std::to_string(e) + ".";
      f.expect(x + "w1.weight", {F, C});
      f.expect(x + "w3.weight", {F, C});
      f.expect(x + "w2.weight", {C, F});
    }
    EXPECT_EQ(f.find("model.layers." + std::to_string(l) + ".mlp.up_proj.weight"), nullptr);
  }
  f.expect("model.layers.0.mlp.up_proj.weight", {F, C});
  EXPECT_EQ(f.tensors().size(), size_t(3 + 9 * 2 + (9 - 3 + 1 + 12) * 2)) << "every tensor, nothing more";
  // Reloads and trains: a few AdamW steps on one batch lower the loss.
  auto m = model_load(dst);
  AdamW opt(m->layout());
  auto in = test::randint(64, 96, 1), tgt = test::randint(64, 96, 2);
  float first = 0, last = 0;
  for (int step = 0; step < 8; step++) {
    m->grads().zero();
    last = m->forward(in.data(), tgt.data(), 2, 32);
    if (step == 0) first = last;
    m->backward();
    opt.step(m->params(), m->grads(), AdamWParams{1e-3f, 0.9f, 0.95f, 1e-8f, 0.0f}, 1e-3f);
  }
  EXPECT_LT(last, first - 0.1f);
}

TEST(Upcycle, Gpt2MoeLayoutKeepsConv1DOrientation) {
  auto d = dense_model("gpt2");
  UpcycleOptions o;
  o.experts = 2, o.top_k = 1, o.strategy = UpcycleStrategy::Granular, o.granularity = 2;
  const std::string src = save_dense(*d, "gpt2_layout_dense"), dst = test_dir("gpt2_layout");
  Upcycler(src, o).write(dst);
  auto f = SafeTensorsFile::open(dst + "/model.safetensors");
  const int C = d->config().n_embd, F = d->config().n_inner;
  f.expect("transformer.h.1.mlp.router.weight", {2, C});
  f.expect("transformer.h.1.mlp.experts.1.c_fc.weight", {C, F / 2});  // Conv1D: [in, out]
  f.expect("transformer.h.1.mlp.experts.1.c_fc.bias", {F / 2});
  f.expect("transformer.h.1.mlp.experts.1.c_proj.weight", {F / 2, C});
  f.expect("transformer.h.1.mlp.experts.1.c_proj.bias", {C});
  EXPECT_EQ(config_load(dst + "/config.json").family, "gpt2");
}

TEST(Upcycle, ShardedOutputReloadsIdentically) {
  auto d = dense_model("llama");
  UpcycleOptions o;
  o.experts = 4, o.top_k = 2, o.max_shard_bytes = 200000;  // a few tensors per shard
  std::string out;
  EXPECT_LE(upcycle_logit_diff(*d, "sharded", o, &out), 1e-5);
  ASSERT_TRUE(path_exists(out + "/model.safetensors.index.json"));
  EXPECT_FALSE(path_exists(out + "/model.safetensors"));
  auto idx = nlohmann::json::parse(file_read(out + "/model.safetensors.index.json"));
  std::set<std::string> files;
  for (auto& [k, v] : idx["weight_map"].items()) files.insert(v.get<std::string>());
  EXPECT_GT(files.size(), 3u);
  uint64_t total = 0;
  for (const std::string& fn : files) {
    auto f = SafeTensorsFile::open(out + "/" + fn);
    for (const STEntry& e : f.tensors()) total += e.nbytes;
  }
  EXPECT_EQ(idx["metadata"]["total_size"].get<uint64_t>(), total);
}

TEST(Upcycle, KeepsTheInputDtype) {
  auto d = dense_model("llama");
  const std::string src = test_dir("bf16_dense"), dst = test_dir("bf16");
  fs::create_directories(src);
  model_save(*d, src, STDType::BF16);
  UpcycleOptions o;
  o.experts = 2, o.top_k = 2;
  Upcycler(src, o).write(dst);
  auto f = SafeTensorsFile::open(dst + "/model.safetensors");
  for (const STEntry& e : f.tensors()) EXPECT_EQ(e.dtype, STDType::BF16) << e.name;
  // Same function as the bf16 dense model, exactly (the bytes are copied).
  auto a = model_load(src), b = model_load(dst);
  EXPECT_LE(max_diff(logits(*a), logits(*b)), 1e-5);
}

TEST(Upcycle, NarrowerDtypeIsNotCalledExact) {
  auto d = dense_model("llama");
  const std::string src = save_dense(*d, "narrow_dense"), dst = test_dir("narrow");
  UpcycleOptions o;
  o.experts = 2, o.top_k = 2, o.dtype = "bf16";
  Upcycler up(src, o);
  EXPECT_NE(up.exactness().find("rounded to the narrower --dtype"), std::string::npos) << up.exactness();
  up.write(dst);
  auto f = SafeTensorsFile::open(dst + "/model.safetensors");
  for (const STEntry& e : f.tensors()) EXPECT_EQ(e.dtype, STDType::BF16) << e.name;
  auto m = model_load(dst);
  const double diff = max_diff(logits(*d), logits(*m));
  EXPECT_GT(diff, 1e-5) << "bf16 rounding shows";
  EXPECT_LT(diff, 0.5) << "but it is only rounding";
}

TEST(Upcycle, OutputNeverOverlapsTheDenseCheckpoint) {
  auto d = dense_model("llama");
  const std::string src = save_dense(*d, "overlap_dense");
  UpcycleOptions o;
  for (const std::string& out : {src, src + "/", src + "/inner", std::string(fs::path(src).parent_path())}) {
    try {
      Upcycler(src, o).write(out, /*replace=*/true);
      ADD_FAILURE() << "wrote over the dense checkpoint: " << out;
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find("overlaps the dense checkpoint"), std::string::npos) << e.what();
    }
  }
  EXPECT_TRUE(path_exists(src + "/model.safetensors"));
  // A trailing slash names the same new directory.
  const std::string dst = test_dir("slash");
  Upcycler(src, o).write(dst + "/");
  EXPECT_TRUE(path_exists(dst + "/model.safetensors"));
  for (const auto& e : fs::directory_iterator(fs::path(dst).parent_path()))
    EXPECT_EQ(e.path().filename().string().find("upcycle_slash.tmp"), std::string::npos) << "temp dir left behind";
}

TEST(Upcycle, ExtraTensorFailsNamingIt) {
  auto d = dense_model("llama");
  const std::string src = save_dense(*d, "extra_dense"), dst = test_dir("extra");
  // Rewrite the dense file with one more tensor.
  auto f = SafeTensorsFile::open(src + "/model.safetensors");
  SafeTensorsWriter w;
  std::vector<std::vector<float>> keep;
  for (const STEntry& e : f.tensors()) {
    keep.push_back(f.read_f32(e));
    w.add_f32(e.name, e.shape, keep.back().data());
  }
  std::vector<float> extra(8, 1.0f);
  w.add_f32("model.layers.0.mlp.extra_proj.weight", {2, 4}, extra.data());
  w.write(src + "/model.safetensors.new");
  fs::rename(src + "/model.safetensors.new", src + "/model.safetensors");
  UpcycleOptions o;
  try {
    Upcycler(src, o).write(dst);
    FAIL() << "an extra tensor must fail";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("model.layers.0.mlp.extra_proj.weight"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(path_exists(dst));
}

TEST(Upcycle, ShapeCheckedAgainstConfig) {
  auto d = dense_model("llama");
  const std::string src = save_dense(*d, "shape_dense");
  auto j = nlohmann::json::parse(file_read(src + "/config.json"));
  j["intermediate_size"] = 128;
  file_write_atomic(src + "/config.json", j.dump());
  try {
    Upcycler(src, UpcycleOptions{});
    FAIL() << "a shape that disagrees with config.json must fail";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("gate_proj.weight': has shape [256, 64], expected [128, 64]"), std::string::npos)
        << e.what();
  }
}

TEST(Upcycle, BadOptionsAreRefused) {
  auto d = dense_model("llama");
  const std::string src = save_dense(*d, "opts_dense");
  auto refuse = [&](UpcycleOptions o, const std::string& needle) {
    try {
      Upcycler(src, o);
      ADD_FAILURE() << "accepted: " << needle;
    } catch (const std::exception& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  UpcycleOptions o;
  o.strategy = UpcycleStrategy::Granular;
  refuse(o, "--granularity");
  o.granularity = 3;
  refuse(o, "multiple of --granularity");
  o = UpcycleOptions{};
  o.top_k = 9;
  refuse(o, "top-k 9");
  o = UpcycleOptions{};
  o.carry_optimizer = true;
  refuse(o, "optimizer.safetensors");
  o = UpcycleOptions{};
  o.layers = {7};
  refuse(o, "MoE layer 7");
}

TEST(Upcycle, OptimizerCarriedIntoEveryExpert) {
  auto d = dense_model("llama");
  AdamW dopt(d->layout());
  auto rm = test::randn<float>(dopt.m().numel(), 1), rv = test::randn<float>(dopt.v().numel(), 2);
  for (size_t i = 0; i < rm.size(); i++) dopt.m().data()[i] = rm[i], dopt.v().data()[i] = std::fabs(rv[i]);
  dopt.set_t(120);
  const std::string run = test_dir("carry_run"), dst = test_dir("carry");
  TrainerState st;
  st.step = 120;
  const std::string ck = checkpoint_write(run, *d, dopt, st, "", 1);
  UpcycleOptions o;
  o.experts = 4, o.top_k = 2, o.carry_optimizer = true, o.strategy = UpcycleStrategy::Drop, o.drop_rate = 0.25f;
  Upcycler(run, o).write(dst);
  auto m = model_load(dst);
  AdamW mopt(m->layout());
  optimizer_load(mopt, *m, dst);
  EXPECT_EQ(mopt.t(), 120);
  const ModelConfig& c = m->config();
  const int F = c.n_inner, C = c.n_embd;
  for (int l = 0; l < c.n_layer; l++) {
    if (!c.moe_layer(l)) {
      const size_t off = m->layer_offsets(l).up, doff = d->layer_offsets(l).up;
      EXPECT_EQ(std::memcmp(mopt.v().data() + off, dopt.v().data() + doff, size_t(F) * C * 4), 0);
      continue;
    }
    const size_t r = m->layer_offsets(l).router;
    for (int i = 0; i < c.n_experts * C; i++) ASSERT_EQ(mopt.m().data()[r + i], 0.0f);
    for (int e = 0; e < c.n_experts; e++) {
      auto dropped = drop_units(ExpertRecipe{4, 1, F, 1, 1, 0, 0.25f, 0, l}, e);
      std::set<int> ds(dropped.begin(), dropped.end());
      for (int u = 0; u < F; u++)
        for (int i = 0; i < C; i++) {
          const float got = mopt.m().data()[m->layer_offsets(l).ew1 + (size_t(e) * F + u) * C + i];
          const float want = ds.count(u) ? 0.0f : dopt.m().data()[d->layer_offsets(l).gate + size_t(u) * C + i];
          ASSERT_EQ(got, want) << "layer " << l << " expert " << e << " unit " << u;
          // w2 [C, F]: the units are columns.
          const float got2 = mopt.v().data()[m->layer_offsets(l).ew2 + (size_t(e) * C + i) * F + u];
          const float want2 = ds.count(u) ? 0.0f : dopt.v().data()[d->layer_offsets(l).down + size_t(i) * F + u];
          ASSERT_EQ(got2, want2) << "w2 layer " << l << " expert " << e << " unit " << u;
        }
    }
  }
}

TEST(Upcycle, DryRunPlanCountsParameters) {
  auto d = dense_model("llama");
  const std::string src = save_dense(*d, "plan_dense");
  UpcycleOptions o;
  o.experts = 8, o.top_k = 2;
  Upcycler up(src, o);
  auto j = up.plan_json();
  const ModelConfig& c = d->config();
  const size_t mlp = size_t(3) * c.n_inner * c.n_embd, router = size_t(8) * c.n_embd;
  EXPECT_EQ(j["params_total"].get<size_t>(), d->num_params() + 2 * (7 * mlp + router));
  EXPECT_EQ(j["params_active_per_token"].get<size_t>(), d->num_params() + 2 * (mlp + router));
  EXPECT_EQ(j["tensors"].size(), size_t(3 + 2 * 9 + 2 * (6 + 1 + 24)));
  EXPECT_NE(up.exactness().find("exact"), std::string::npos);
}

}  // namespace
}  // namespace moe
