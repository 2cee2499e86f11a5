#include "model/config.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "model/family.h"
#include "model/hf_json.h"
#include "io/files.h"
#include "model/memory.h"

namespace moe {

const Family& family_of(const std::string& t) {
  if (t == "gpt2") return family_gpt2();
  if (t == "llama") return family_llama();
  if (t == "mixtral") return family_mixtral();
  if (t == kMixtralRawGates) return family_mixtral_raw();
  if (t == "t5") return family_t5();
  if (t == "switch_transformers") return family_switch();
  throw std::invalid_argument("unknown model family \"" + t + "\" (expected gpt2, llama, mixtral, " +
                              kMixtralRawGates + ", t5 or switch_transformers)");
}

const Family& family_to_write(const ModelConfig& c) {
  const Family& f = family_of(c.family);
  return f.writes_as ? f.writes_as(c) : f;
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
  const bool t5 = encoder_decoder();  // the fields are named after the family's config.json
  at_most(n_embd, int64_t(1) << 16, t5 ? "hidden size (d_model)" : "hidden size (n_embd / hidden_size)");
  at_most(n_layer, 1024, t5 ? "layer count (num_layers)" : "layer count (n_layer / num_hidden_layers)");
  if (t5) at_most(n_dec_layer, 1024, "decoder layer count (num_decoder_layers)");
  at_most(n_inner, int64_t(1) << 20, t5 ? "MLP width (d_ff)" : "MLP width (n_inner / intermediate_size)");
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
  if (encoder_decoder()) {
    need(n_dec_layer > 0, "an encoder-decoder model needs decoder layers (num_decoder_layers)");
    at_most(n_dec_layer, 1024, "decoder layer count (num_decoder_layers)");
    need(pos == PosKind::Relative && norm == NormKind::RMSNorm && !bias && !fused_qkv && n_kv_head == n_head,
         "t5 parts: relative positions, RMS norm, no biases, separate q/k/v, one key/value head per head");
    need(mlp == MlpKind::Relu || mlp == MlpKind::GeGLU, "t5 MLP must be relu or gated-gelu");
    // The decoder's log-spaced buckets start at max_exact = buckets / 2: HF divides by
    // log(max_distance / max_exact), which must be positive.
    need(rel_buckets >= 4 && rel_buckets <= 4096 && rel_buckets % 2 == 0,
         "relative_attention_num_buckets must be an even number in [4, 4096]");
    need(rel_max_distance > rel_buckets / 2 && rel_max_distance <= (1 << 20),
         "relative_attention_max_distance must be above half the buckets (the decoder's exact range) and at most 2^20");
    need(pad_id >= 0 && pad_id < vocab_size, "pad_token_id must be a token id inside the vocabulary");
    if (hf_switch())
      need(is_moe() && top_k == 1 && !moe_renormalize && !expert_choice && mlp == MlpKind::Relu &&
               switch_capacity > 0 && (moe_inner == 0 || moe_inner == n_inner),
           "switch_transformers: num_experts > 0, top-1 routing with raw gates in both stacks, relu experts of d_ff "
           "and an expert_capacity > 0");
    if (hf_switch())
      need(switch_sparse_step(*this) > 0, "switch_transformers: the MoE layers must be every sparse_step-th layer "
                                          "(i % step == 1) of both stacks");
    need(bos_id >= 0 && eos_id >= 0, "decoder_start_token_id and eos_token_id must be token ids inside the vocabulary");
    at_most(int64_t(n_head) * head_dim(), int64_t(1) << 20, "attention width (num_heads x d_kv)");
  } else {
    need(n_dec_layer == 0 && d_kv == 0 && pos != PosKind::Relative && mlp != MlpKind::Relu && mlp != MlpKind::GeGLU,
         "decoder-only families have no decoder stack, d_kv, relative positions or T5 MLPs");
  }
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
    const int layers = encoder_decoder() ? std::max(n_layer, n_dec_layer) : n_layer;  // T5: both stacks
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
    need(!expert_choice || encoder_decoder(),  // T5: the encoder's routing; its decoder always has tokens choose
         "expert-choice routing is not causal (an expert picks its tokens from the whole batch, so a token's "
         "output depends on later tokens): a decoder must use tokens-choose top-k routing");
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
  if (family == "gpt2") c.tied = true, c.norm_eps = 1e-5f;
  else c.tied = false, c.norm_eps = 1e-5f;
  if (name == "tiny") {
    c.n_ctx = 128, c.n_embd = 64, c.n_layer = 2, c.n_head = 4, c.n_inner = 256;
    c.n_kv_head = family == "llama" ? 2 : 4;
  } else if (name == "small") {
    c.n_ctx = 256, c.n_embd = 384, c.n_layer = 6, c.n_head = 6, c.n_inner = 1536;
    c.n_kv_head = family == "llama" ? 2 : 6;
    if (family == "llama") c.n_inner = 1024;  // SwiGLU: 3 matrices of F, keep the MLP's parameters ~ GELU's 2 x 4C
  } else {
    throw std::invalid_argument("unknown preset \"" + name + "\" (expected tiny or small)");
  }
  if (family == "t5" || family == "switch_transformers") {  // T5 v1.1's shape: d_kv = C / H, untied, eps 1e-6
    c.n_dec_layer = c.n_layer, c.n_kv_head = c.n_head, c.norm_eps = 1e-6f, c.tied = false;
    c.n_inner = name == "tiny" ? 160 : 1024;  // gated-GELU of about 2.5 C
  }
  if (family == "switch_transformers") {  // Switch-Base's recipe, small: relu experts of 4 C, top-1, 8 experts
    c.n_inner = 4 * c.n_embd, c.n_experts = name == "tiny" ? 4 : 8, c.switch_capacity = 64;
    c.aux_loss_coef = 0.01f, c.z_loss_coef = 1e-3f, c.router_jitter = 0.0f;
  }
  c.validate();
  return c;
}

ModelConfig config_from_hf(const nlohmann::json& j, const std::string& path) {
  if (!j.is_object()) hf::fail(path, "expected a JSON object");
  auto type = hf::opt_string(j, "model_type", path);
  const std::string known = std::string("\"gpt2\", \"llama\", \"mixtral\", \"") + kMixtralRawGates +
                            "\", \"t5\" or \"switch_transformers\"";
  if (!type) hf::fail(path, "missing field 'model_type' (expected " + known + ")");
  if (*type != "gpt2" && *type != "llama" && *type != "mixtral" && *type != kMixtralRawGates && *type != "t5" &&
      *type != "switch_transformers")
    hf::fail(path, "field 'model_type' is \"" + *type + "\", expected " + known);
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
