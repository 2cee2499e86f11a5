// The Llama family: RMSNorm, SwiGLU MLP, RoPE, no biases, grouped-query attention,
// untied lm_head. HF names of LlamaForCausalLM; every weight [out, in].
#include <stdexcept>

#include "model/decoder/decoder.h"
#include "model/family.h"
#include "model/hf_json.h"

namespace moe {

namespace {

std::string llama_name(Role r, int l) {
  const std::string p = "model.layers." + std::to_string(l) + ".";
  switch (r) {
    case Role::Embed: return "model.embed_tokens.weight";
    case Role::FinalNorm: return "model.norm.weight";
    case Role::LMHead: return "lm_head.weight";
    case Role::Norm1: return p + "input_layernorm.weight";
    case Role::Q: return p + "self_attn.q_proj.weight";
    case Role::K: return p + "self_attn.k_proj.weight";
    case Role::V: return p + "self_attn.v_proj.weight";
    case Role::O: return p + "self_attn.o_proj.weight";
    case Role::Norm2: return p + "post_attention_layernorm.weight";
    case Role::Gate: return p + "mlp.gate_proj.weight";
    case Role::Up: return p + "mlp.up_proj.weight";
    case Role::Down: return p + "mlp.down_proj.weight";
    case Role::Router: return p + "block_sparse_moe.gate.weight";
    case Role::ExpertW1: return p + "block_sparse_moe.experts.*.w1.weight";
    case Role::ExpertW3: return p + "block_sparse_moe.experts.*.w3.weight";
    case Role::ExpertW2: return p + "block_sparse_moe.experts.*.w2.weight";
    default: throw std::logic_error("llama: no tensor for this role");
  }
}

bool llama_transposed(Role) { return false; }

void llama_from_hf(ModelConfig& c, const nlohmann::json& j, const std::string& path) {
  c.vocab_size = hf::req_int(j, "vocab_size", path);
  c.n_ctx = hf::opt_int(j, "max_position_embeddings", 2048, path);
  c.n_embd = hf::req_int(j, "hidden_size", path);
  c.n_layer = hf::req_int(j, "num_hidden_layers", path);
  c.n_head = hf::req_int(j, "num_attention_heads", path);
  c.n_kv_head = hf::opt_int(j, "num_key_value_heads", c.n_head, path);
  c.n_inner = hf::req_int(j, "intermediate_size", path);
  c.norm_eps = hf::opt_float(j, "rms_norm_eps", 1e-6f, path);
  c.rope_theta = hf::opt_float(j, "rope_theta", 10000.0f, path);
  c.tied = hf::opt_bool(j, "tie_word_embeddings", false, path);
  c.bos_id = hf::opt_int(j, "bos_token_id", c.bos_id, path);
  c.eos_id = hf::opt_int(j, "eos_token_id", c.eos_id, path);
  auto act = hf::opt_string(j, "hidden_act", path).value_or("silu");
  if (act != "silu") hf::fail(path, "field 'hidden_act' must be \"silu\" (SwiGLU MLP), got \"" + act + "\"");
  if (hf::opt_bool(j, "attention_bias", false, path)) hf::fail(path, "field 'attention_bias' must be false");
  if (hf::opt_bool(j, "mlp_bias", false, path)) hf::fail(path, "field 'mlp_bias' must be false");
  if (j.contains("rope_scaling") && !j["rope_scaling"].is_null())
    hf::fail(path, "field 'rope_scaling' is not supported (expected null)");
  int head_dim = hf::opt_int(j, "head_dim", 0, path);
  if (head_dim != 0 && int64_t(head_dim) * c.n_head != c.n_embd)  // both up to 2^30: no int overflow
    hf::fail(path, "field 'head_dim' must equal hidden_size / num_attention_heads = " +
                       std::to_string(c.n_embd / c.n_head) + ", got " + std::to_string(head_dim));
}

void llama_to_hf(const ModelConfig& c, nlohmann::json& j) {
  j["vocab_size"] = c.vocab_size;
  j["max_position_embeddings"] = c.n_ctx;
  j["hidden_size"] = c.n_embd;
  j["num_hidden_layers"] = c.n_layer;
  j["num_attention_heads"] = c.n_head;
  j["num_key_value_heads"] = c.n_kv_head;
  j["intermediate_size"] = c.n_inner;
  j["rms_norm_eps"] = hf::num(c.norm_eps);
  j["rope_theta"] = hf::num(c.rope_theta);
  j["hidden_act"] = "silu";
  j["tie_word_embeddings"] = c.tied;
  j["attention_bias"] = false;
  j["mlp_bias"] = false;
  j["rope_scaling"] = nullptr;
  j["head_dim"] = c.head_dim();
  j["bos_token_id"] = c.bos_id;
  j["eos_token_id"] = c.eos_id;
}

void llama_parts(ModelConfig& c) {
  c.norm = NormKind::RMSNorm;
  c.mlp = MlpKind::SwiGLU;
  c.pos = PosKind::Rope;
  c.bias = false;
  c.fused_qkv = false;
}

bool llama_is_buffer(const std::string& n) { return n.find("rotary_emb.inv_freq") != std::string::npos; }

void mixtral_from_hf(ModelConfig& c, const nlohmann::json& j, const std::string& path) {
  llama_from_hf(c, j, path);
  if (j.contains("sliding_window") && !j["sliding_window"].is_null())
    hf::fail(path, "field 'sliding_window' is not supported (expected null)");
  moe_from_hf(c, j, path, "num_local_experts", "num_experts_per_tok", true);
  if (!c.is_moe()) hf::fail(path, "field 'num_local_experts' must be a positive integer for a mixtral model");
}

void mixtral_to_hf(const ModelConfig& c, nlohmann::json& j) {
  llama_to_hf(c, j);
  j["sliding_window"] = nullptr;
  moe_to_hf(c, j, "num_local_experts", "num_experts_per_tok", true);
}

// Raw top-k gates (moe_renormalize false) under Mixtral's names and fields. HF's
// MixtralForCausalLM always renormalises the chosen gates, so it would load such
// a model without a word and compute another function (issue 21, item 4): this
// model_type, which no HF class claims, makes transformers refuse it instead.
void mixtral_raw_from_hf(ModelConfig& c, const nlohmann::json& j, const std::string& path) {
  mixtral_from_hf(c, j, path);
  if (j.contains("moe_renormalize") && c.moe_renormalize)
    hf::fail(path, "field 'moe_renormalize' is true, but model_type \"" + std::string(kMixtralRawGates) +
                       "\" means raw gates (a renormalised model is model_type \"mixtral\")");
  c.moe_renormalize = false;
}

const Family& mixtral_label(const ModelConfig& c) {
  return c.moe_renormalize ? family_mixtral() : family_mixtral_raw();
}

// Llama's presets: grouped-query attention (2 key/value heads); SwiGLU's 3 matrices of
// F keep the small MLP's parameters near GELU's 2 x 4C.
void llama_preset(ModelConfig& c, const std::string& name) {
  c.n_kv_head = 2;
  if (name == "small") c.n_inner = 1024;
}

}  // namespace

const Family& family_mixtral_raw() {
  static const Family f{kMixtralRawGates, "MixtralRawGatesForCausalLM", llama_name, llama_transposed,
                        mixtral_raw_from_hf, mixtral_to_hf, llama_parts, llama_is_buffer, "mixtral", nullptr,
                        &decoder_rules(), "decoder", nullptr,
                        "(moe's own: raw top-k gates, which HF's MixtralForCausalLM does not compute)", nullptr, "llama"};
  return f;
}

const Family& family_mixtral() {
  static const Family f{"mixtral", "MixtralForCausalLM", llama_name, llama_transposed, mixtral_from_hf,
                        mixtral_to_hf, llama_parts, llama_is_buffer, nullptr, mixtral_label, &decoder_rules(), "decoder", nullptr,
                        nullptr, nullptr, "llama"};
  return f;
}

const Family& family_llama() {
  static const Family f{"llama", "LlamaForCausalLM", llama_name, llama_transposed, llama_from_hf, llama_to_hf,
                        llama_parts, llama_is_buffer, nullptr, nullptr, &decoder_rules(), "decoder", "mixtral", nullptr,
                        llama_preset, "llama", "llama"};
  return f;
}

}  // namespace moe
