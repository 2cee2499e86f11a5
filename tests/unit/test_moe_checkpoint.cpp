// MoE checkpoints: a Llama-family MoE is a Mixtral directory (names, shapes, config
// fields), a GPT-2 MoE uses the documented GPT-2 names; both reload exactly.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "io/files.h"
#include "io/safetensors.h"
#include "model/checkpoint.h"
#include "model/decoder/model_io.h"
#include "testutil.h"

namespace moe {
namespace {

using test::fresh_dir;

void expect_same_params(Model& a, Model& b) {
  ASSERT_EQ(a.layout().numel(), b.layout().numel());
  for (size_t i = 0; i < a.layout().numel(); i++) ASSERT_EQ(a.params().data()[i], b.params().data()[i]) << i;
}

TEST(MoeCheckpoint, LlamaMoeIsAMixtralDirectory) {
  ModelConfig c = model_preset("llama", "tiny", 96);
  c.family = "mixtral", c.n_experts = 4, c.top_k = 2, c.moe_all_layers = true, c.capacity_factor = 0;
  Model m(c);
  m.init_weights(3);
  const std::string dir = fresh_dir("moe_ckpt_mixtral");
  model_save(m, dir);
  auto j = nlohmann::json::parse(file_read(dir + "/config.json"));
  EXPECT_EQ(j["model_type"], "mixtral");
  EXPECT_EQ(j["architectures"][0], "MixtralForCausalLM");
  EXPECT_EQ(j["num_local_experts"], 4);
  EXPECT_EQ(j["num_experts_per_tok"], 2);
  EXPECT_FALSE(j.contains("moe_layers")) << "every layer is MoE: a plain Mixtral config";
  auto f = SafeTensorsFile::open(dir + "/model.safetensors");
  const int64_t C = c.n_embd, F = c.n_inner;
  for (int l = 0; l < c.n_layer; l++) {
    const std::string p = "model.layers." + std::to_string(l) + ".block_sparse_moe.";
    EXPECT_EQ(f.at(p + "gate.weight").shape, (std::vector<int64_t>{4, C}));
    for (int e = 0; e < 4; e++) {
      const std::string x = p + "experts." + std::to_string(e) + ".";
      EXPECT_EQ(f.at(x + "w1.weight").shape, (std::vector<int64_t>{F, C}));
      EXPECT_EQ(f.at(x + "w3.weight").shape, (std::vector<int64_t>{F, C}));
      EXPECT_EQ(f.at(x + "w2.weight").shape, (std::vector<int64_t>{C, F}));
    }
    EXPECT_EQ(f.find("model.layers." + std::to_string(l) + ".mlp.up_proj.weight"), nullptr);
  }
  auto back = model_load(dir);
  EXPECT_EQ(back->config().family, "mixtral");
  EXPECT_EQ(back->config().n_experts, 4);
  EXPECT_TRUE(back->config().moe_layer(0) && back->config().moe_layer(1));
  expect_same_params(m, *back);
}

// Raw top-k gates (Switch's combine) are not what HF's MixtralForCausalLM computes
// (it renormalises): such a model is written under moe's own model_type, with
// Mixtral's tensors, and reads back as the same raw-gate model (issue 21, item 4).
TEST(MoeCheckpoint, RawGatesAreNotLabelledMixtral) {
  ModelConfig c = model_preset("llama", "tiny", 96);
  c.family = "mixtral", c.n_experts = 4, c.top_k = 1, c.moe_all_layers = true, c.moe_renormalize = false;
  Model m(c);
  m.init_weights(5);
  const std::string dir = fresh_dir("moe_ckpt_mixtral_raw");
  model_save(m, dir);
  auto j = nlohmann::json::parse(file_read(dir + "/config.json"));
  EXPECT_EQ(j["model_type"], "mixtral_raw_gates");
  EXPECT_EQ(j["architectures"][0], "MixtralRawGatesForCausalLM");
  EXPECT_EQ(j["moe_renormalize"], false);
  auto f = SafeTensorsFile::open(dir + "/model.safetensors");
  EXPECT_NE(f.find("model.layers.0.block_sparse_moe.experts.3.w2.weight"), nullptr) << "Mixtral's tensor names";
  auto back = model_load(dir);
  EXPECT_EQ(back->config().family, "mixtral");
  EXPECT_FALSE(back->config().moe_renormalize);
  expect_same_params(m, *back);
  // The label and the field must agree; older checkpoints (mixtral + moe_renormalize
  // false) still read as raw gates.
  j["moe_renormalize"] = true;
  try {
    config_from_hf(j, "x/config.json");
    ADD_FAILURE() << "mixtral_raw_gates with moe_renormalize true was accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("'moe_renormalize' is true"), std::string::npos) << e.what();
  }
  j["model_type"] = "mixtral", j["moe_renormalize"] = false;
  EXPECT_FALSE(config_from_hf(j, "x/config.json").moe_renormalize);
  j["moe_renormalize"] = true;
  EXPECT_EQ(config_to_hf(config_from_hf(j, "x/config.json"))["model_type"], "mixtral") << "renormalised: Mixtral";
}

TEST(MoeCheckpoint, Gpt2MoeEveryOtherLayer) {
  ModelConfig c = model_preset("gpt2", "tiny", 96);
  c.n_experts = 3, c.top_k = 1, c.moe_renormalize = false;
  Model m(c);
  m.init_weights(4);
  const std::string dir = fresh_dir("moe_ckpt_gpt2");
  model_save(m, dir, STDType::F32);
  auto j = nlohmann::json::parse(file_read(dir + "/config.json"));
  EXPECT_EQ(j["model_type"], "gpt2");
  EXPECT_EQ(j["n_experts"], 3);
  EXPECT_EQ(j["moe_layers"], nlohmann::json::array({1}));
  auto f = SafeTensorsFile::open(dir + "/model.safetensors");
  const int64_t C = c.n_embd, F = c.n_inner;
  EXPECT_NE(f.find("transformer.h.0.mlp.c_fc.weight"), nullptr) << "layer 0 stays dense";
  EXPECT_EQ(f.at("transformer.h.1.mlp.router.weight").shape, (std::vector<int64_t>{3, C}));
  EXPECT_EQ(f.at("transformer.h.1.mlp.experts.2.c_fc.weight").shape, (std::vector<int64_t>{C, F})) << "Conv1D [in, out]";
  EXPECT_EQ(f.at("transformer.h.1.mlp.experts.2.c_proj.weight").shape, (std::vector<int64_t>{F, C}));
  EXPECT_EQ(f.at("transformer.h.1.mlp.experts.0.c_fc.bias").shape, (std::vector<int64_t>{F}));
  auto back = model_load(dir);
  EXPECT_FALSE(back->config().moe_layer(0));
  EXPECT_TRUE(back->config().moe_layer(1));
  expect_same_params(m, *back);
}

TEST(MoeCheckpoint, MissingExpertIsNamed) {
  ModelConfig c = model_preset("llama", "tiny", 96);
  c.family = "mixtral", c.n_experts = 2, c.top_k = 1, c.moe_layers = {1};
  Model m(c);
  m.init_weights(5);
  const std::string dir = fresh_dir("moe_ckpt_missing");
  model_save(m, dir);
  // Rewrite the file without expert 1's w2 of layer 1.
  auto f = SafeTensorsFile::open(dir + "/model.safetensors");
  SafeTensorsWriter w;
  for (const STEntry& e : f.tensors())
    if (e.name != "model.layers.1.block_sparse_moe.experts.1.w2.weight") w.add(e.name, e.dtype, e.shape, f.data(e));
  w.write(dir + "/model2.safetensors");
  std::filesystem::rename(dir + "/model2.safetensors", dir + "/model.safetensors");
  try {
    model_load(dir);
    FAIL() << "a missing expert tensor must fail";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("model.layers.1.block_sparse_moe.experts.1.w2.weight"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace moe

namespace moe {
namespace {

// Expert-choice routing is not causal: a decoder refuses it, from a config or a file.
TEST(MoeConfig, ExpertChoiceIsRefusedOnACausalDecoder) {
  ModelConfig c = model_preset("llama", "tiny", 96);
  c.family = "mixtral", c.n_experts = 4, c.top_k = 4, c.expert_choice = true;
  try {
    c.validate();
    FAIL() << "expert choice must be refused";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("expert-choice"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("causal"), std::string::npos) << e.what();
  }
  nlohmann::json j = config_to_hf(model_preset("llama", "tiny", 96));
  j["model_type"] = "mixtral", j["num_local_experts"] = 4, j["num_experts_per_tok"] = 2;
  j["moe_routing"] = "expert_choice";
  try {
    config_from_hf(j, "some/config.json");
    FAIL() << "expert choice in config.json must be refused";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("some/config.json"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("causal"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace moe
