#include "model/config.h"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <stdexcept>

#include "model/family.h"
#include "model/hf_json.h"
#include "io/files.h"
#include "model/memory.h"

namespace moe {

void parse_moe_layers(const std::string& spec, std::vector<int>* layers, bool* all) {
  layers->clear();
  *all = spec == "all";
  if (spec == "all" || spec == "every-other") return;
  std::stringstream ss(spec);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      size_t used = 0;
      int l = std::stoi(item, &used);
      if (used != item.size() || l < 0) throw std::invalid_argument(item);
      layers->push_back(l);
    } catch (const std::exception&) {
      throw std::invalid_argument("--moe-layers must be every-other, all, or a comma list of layer indices; got \"" +
                                  spec + "\"");
    }
  }
}

bool ModelConfig::moe_layer(int l) const {
  if (n_experts <= 0) return false;
  if (moe_all_layers) return true;
  if (moe_layers.empty()) return l % 2 == 1;
  for (int m : moe_layers)
    if (m == l) return true;
  return false;
}

void ModelConfig::validate() const {
  auto need = [](bool ok, const std::string& what) {
    if (!ok) throw std::invalid_argument("model config: " + what);
  };
  need(vocab_size > 0, "vocab_size must be positive");
  need(n_ctx > 0, "n_ctx (max positions) must be positive");
  need(n_embd > 0 && n_layer > 0 && n_head > 0 && n_inner > 0, "sizes must be positive");
  // Upper bounds far above any model this engine can train, low enough that every
  // product of two or three of them fits in 64 bits (nothing is allocated yet).
  auto at_most = [&](int64_t v, int64_t max, const char* field) {
    need(v <= max, std::string(field) + " is " + std::to_string(v) + ", more than the supported " + std::to_string(max));
  };
  at_most(vocab_size, int64_t(1) << 24, "vocab_size");
  at_most(n_ctx, int64_t(1) << 20, "max positions (n_ctx / max_position_embeddings)");
  const ConfigRules& arch = *family_of(family).rules;  // the fields are named after the family's config.json
  at_most(n_embd, int64_t(1) << 16, arch.hidden_name);
  at_most(n_layer, 1024, arch.layers_name);
  at_most(n_inner, int64_t(1) << 20, arch.inner_name);
  at_most(moe_inner, int64_t(1) << 20, "expert MLP width (moe_intermediate_size)");
  at_most(n_head, n_embd, "head count");
  at_most(n_experts, 4096, "expert count");
  need(std::isfinite(norm_eps) && norm_eps < 1, "norm epsilon must be a small positive number");
  need(pos != PosKind::Rope || (std::isfinite(rope_theta) && rope_theta > 1),
       "rope_theta must be a finite number above 1 (the RoPE base; 10000 is usual)");
  need(bos_id >= -1 && eos_id >= -1, "bos/eos ids must be token ids (or -1 for none)");
  need(d_kv > 0 || n_embd % n_head == 0, "hidden size " + std::to_string(n_embd) +
                                             " must be a multiple of the head count " + std::to_string(n_head));
  at_most(d_kv, int64_t(1) << 16, "head size (d_kv)");
  need(d_kv >= 0, "head size (d_kv) must be positive");
  arch.validate(*this, need);
  need(n_kv_head > 0 && n_head % n_kv_head == 0, "head count " + std::to_string(n_head) +
                                                     " must be a multiple of the key/value head count " +
                                                     std::to_string(n_kv_head));
  need(pos != PosKind::Rope || head_dim() % 2 == 0, "RoPE needs an even head dimension");
  need(!fused_qkv || n_kv_head == n_head, "a fused qkv projection needs as many key/value heads as heads");
  need(norm_eps > 0, "norm epsilon must be positive");
  need(bos_id < vocab_size && eos_id < vocab_size, "bos/eos ids must be inside the vocabulary");
  if (n_experts > 0) {
    need(top_k >= 1 && top_k <= n_experts, "top-k " + std::to_string(top_k) + " must be in [1, experts = " +
                                               std::to_string(n_experts) + "]");
    const int layers = std::max(n_layer, n_dec_layer);  // encoder-decoders: both stacks
    for (int l : moe_layers)
      need(l >= 0 && l < layers, "MoE layer " + std::to_string(l) + " is not a layer of this " +
                                     std::to_string(layers) + "-layer model");
    // moe_layer(l) for some l, without a loop over up to 2^30 layers (the listed ones are in range).
    bool any = moe_all_layers || !moe_layers.empty() || n_layer > 1;
    need(any, "an MoE model needs at least one MoE layer (a 1-layer model has no odd layer: use all layers)");
    need(moe_inner >= 0, "expert MLP width (moe_intermediate_size) must be positive");
    need(aux_loss_coef >= 0 && z_loss_coef >= 0, "aux and z loss coefficients must be non-negative");
    need(std::isfinite(capacity_factor) && std::isfinite(eval_capacity_factor) && capacity_factor <= 1000 &&
             eval_capacity_factor <= 1000,
         "capacity factors must be at most 1000 (<= 0: dropless)");
    need(std::isfinite(router_init_scale) && router_init_scale > 0, "router_init_scale must be positive");
    need(router_jitter >= 0 && router_jitter < 1 && expert_dropout >= 0 && expert_dropout < 1,
         "router jitter and expert dropout must be in [0, 1)");
    need(std::isfinite(enc_capacity_factor) && enc_capacity_factor > 0 && enc_capacity_factor <= 1000,
         "moe_encoder_capacity_factor must be in (0, 1000]");
  }
}

// Sizes: tiny is for tests and quick looks; small is the demo and benchmark model
// (about 20M parameters with an 8192 vocabulary: a few minutes of training on 2 cores
// already produces text that reads like the corpus).
ModelConfig model_preset(const std::string& family, const std::string& name, int vocab_size) {
  ModelConfig c;
  c.family = family;
  const Family& f = family_of(family);
  f.set_parts(c);
  c.vocab_size = vocab_size;
  c.tied = false, c.norm_eps = 1e-5f;
  if (name == "tiny") {
    c.n_ctx = 128, c.n_embd = 64, c.n_layer = 2, c.n_head = 4, c.n_inner = 256, c.n_kv_head = 4;
  } else if (name == "small") {
    c.n_ctx = 256, c.n_embd = 384, c.n_layer = 6, c.n_head = 6, c.n_inner = 1536, c.n_kv_head = 6;
  } else {
    throw std::invalid_argument("unknown preset \"" + name + "\" (expected tiny or small)");
  }
  if (f.preset) f.preset(c, name);  // the family's own shape
  c.validate();
  return c;
}

ModelConfig config_from_hf(const nlohmann::json& j, const std::string& path) {
  if (!j.is_object()) hf::fail(path, "expected a JSON object");
  auto type = hf::opt_string(j, "model_type", path);
  if (!type) hf::fail(path, "missing field 'model_type' (expected " + family_names_quoted() + ")");
  if (!family_known(*type)) hf::fail(path, "field 'model_type' is \"" + *type + "\", expected " + family_names_quoted());
  const Family& f = family_of(*type);
  ModelConfig c;
  c.family = f.reads_as ? f.reads_as : *type;  // a variant's label reads as its family
  f.set_parts(c);
  f.from_hf(c, j, path);
  try {
    c.validate();
  } catch (const std::invalid_argument& e) {
    hf::fail(path, e.what());
  }
  return c;
}

nlohmann::json config_to_hf(const ModelConfig& c) {
  const Family& f = family_to_write(c);
  nlohmann::json j;
  j["model_type"] = f.model_type;
  j["architectures"] = {f.architecture};
  j["torch_dtype"] = "float32";
  f.to_hf(c, j);
  return j;
}

ModelConfig config_load(const std::string& path) {
  std::string text;
  try {
    text = file_read(path, 16u << 20);  // a config.json is a few KB
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(std::string(e.what()) + " (expected a Hugging Face config.json)");
  }
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded()) throw std::runtime_error(path + ": invalid JSON");
  ModelConfig c = config_from_hf(j, path);
  // Before anything is allocated from it: the weights alone must fit in memory.
  model_check_memory(c, false, false, 0, 0, path);
  return c;
}

}  // namespace moe
