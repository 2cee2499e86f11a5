// The T5 family's config.json fields (HF T5Config of T5ForConditionalGeneration):
// T5 v1.1 ("gated-gelu": GeGLU MLP, untied head) and the original T5 ("relu", head
// tied to the embedding with the d_model^-0.5 rescale). Tensor names: t5_layout (t5_model.cpp).
#include <algorithm>
#include <stdexcept>
#include <vector>

#include "model/family.h"
#include "model/t5/t5_family.h"
#include "model/hf_json.h"

namespace moe {

namespace {

std::string t5_no_role(Role, int) {
  throw std::logic_error("t5: tensors are named by t5_layout (encoder and decoder stacks), not by role");
}

bool t5_transposed(Role) { return false; }  // every T5 weight is an nn.Linear [out, in]

// The fields T5 and switch_transformers share (everything but the experts).
void t5_common_from_hf(ModelConfig& c, const nlohmann::json& j, const std::string& path) {
  c.vocab_size = hf::req_int(j, "vocab_size", path);
  c.n_embd = hf::req_int(j, "d_model", path);
  c.n_head = hf::req_int(j, "num_heads", path);
  c.n_kv_head = c.n_head;
  c.d_kv = hf::opt_int(j, "d_kv", 64, path);  // HF T5Config's default
  if (c.d_kv <= 0) hf::fail(path, "field 'd_kv' must be a positive integer");
  c.n_inner = hf::req_int(j, "d_ff", path);
  c.n_layer = hf::req_int(j, "num_layers", path);
  c.n_dec_layer = hf::opt_int(j, "num_decoder_layers", c.n_layer, path);
  if (c.n_dec_layer <= 0) hf::fail(path, "field 'num_decoder_layers' must be a positive integer");
  c.rel_buckets = hf::opt_int(j, "relative_attention_num_buckets", 32, path);
  c.rel_max_distance = hf::opt_int(j, "relative_attention_max_distance", 128, path);
  c.norm_eps = hf::opt_float(j, "layer_norm_epsilon", 1e-6f, path);
  c.n_ctx = hf::opt_int(j, "n_positions", 512, path);  // T5 has no position table: our longest sequence
  const std::string ff = hf::opt_string(j, "feed_forward_proj", path).value_or("relu");
  if (ff == "relu") c.mlp = MlpKind::Relu;
  else if (ff == "gated-gelu") c.mlp = MlpKind::GeGLU;
  else hf::fail(path, "field 'feed_forward_proj' must be \"relu\" (T5) or \"gated-gelu\" (T5 v1.1), got \"" + ff + "\"");
  // HF derives these from feed_forward_proj, and lets a stored value override it: refuse a contradiction.
  if (j.contains("is_gated_act") && !j["is_gated_act"].is_null() &&
      hf::opt_bool(j, "is_gated_act", false, path) != (c.mlp == MlpKind::GeGLU))
    hf::fail(path, "field 'is_gated_act' contradicts feed_forward_proj \"" + ff + "\"");
  const std::string act = hf::opt_string(j, "dense_act_fn", path).value_or(c.mlp == MlpKind::Relu ? "relu" : "gelu_new");
  if (act != (c.mlp == MlpKind::Relu ? "relu" : "gelu_new") && !(c.mlp == MlpKind::GeGLU && act == "gelu_pytorch_tanh"))
    hf::fail(path, "field 'dense_act_fn' is \"" + act + "\", which contradicts feed_forward_proj \"" + ff + "\"");
  c.tied = hf::opt_bool(j, "tie_word_embeddings", true, path);  // HF's default: tied (the original T5)
  if (!hf::opt_bool(j, "is_encoder_decoder", true, path)) hf::fail(path, "field 'is_encoder_decoder' must be true");
  c.pad_id = hf::opt_int(j, "pad_token_id", 0, path);
  c.eos_id = hf::opt_int(j, "eos_token_id", 1, path);
  c.bos_id = hf::opt_int(j, "decoder_start_token_id", c.pad_id, path);
}

void t5_from_hf(ModelConfig& c, const nlohmann::json& j, const std::string& path) {
  t5_common_from_hf(c, j, path);
  // MoE T5 (our layout, docs/formats.md): experts in every other layer of both stacks by
  // default; moe_routing is the encoder's (the decoder's tokens choose their top-k).
  moe_from_hf(c, j, path, "num_experts", "num_experts_per_tok", false);
  c.enc_capacity_factor = hf::opt_float(j, "moe_encoder_capacity_factor", 2.0f, path);
}

// HF switch_transformers: layer i of a stack is sparse when sparse_step == 1 or
// i % sparse_step == 1 (HF's rule, kept as it is); both stacks must use the same step.
int switch_step(const nlohmann::json& j, const char* step_key, const char* count_key, int layers,
                const std::string& path) {
  if (j.contains(step_key) && !j[step_key].is_null()) return hf::req_int(j, step_key, path);
  const int n = hf::opt_int(j, count_key, 3, path);  // HF's default: 3 sparse layers
  if (n < 0) hf::fail(path, std::string("field '") + count_key + "' must be non-negative");
  return n > 0 ? std::max(1, layers / n) : layers;
}

void switch_from_hf(ModelConfig& c, const nlohmann::json& j, const std::string& path) {
  t5_common_from_hf(c, j, path);
  if (c.mlp != MlpKind::Relu) hf::fail(path, "switch_transformers experts must be relu (dense_act_fn \"relu\")");
  c.n_experts = hf::opt_int(j, "num_experts", 8, path);
  if (c.n_experts <= 0) hf::fail(path, "field 'num_experts' must be a positive integer");
  c.switch_capacity = hf::opt_int(j, "expert_capacity", 64, path);
  if (c.switch_capacity <= 0) hf::fail(path, "field 'expert_capacity' must be a positive integer");
  if (hf::opt_bool(j, "router_bias", false, path)) hf::fail(path, "field 'router_bias' must be false");
  const std::string dtype = hf::opt_string(j, "router_dtype", path).value_or("float32");
  if (dtype != "float32") hf::fail(path, "field 'router_dtype' must be \"float32\" (the router runs in fp32)");
  c.top_k = 1, c.moe_renormalize = false, c.expert_choice = false;
  c.router_jitter = hf::opt_float(j, "router_jitter_noise", 0.01f, path);
  if (c.router_jitter < 0 || c.router_jitter >= 1) hf::fail(path, "field 'router_jitter_noise' must be in [0, 1)");
  c.aux_loss_coef = hf::opt_float(j, "router_aux_loss_coef", 0.001f, path);
  c.z_loss_coef = hf::opt_float(j, "router_z_loss_coef", 0.001f, path);
  const int es = switch_step(j, "encoder_sparse_step", "num_sparse_encoder_layers", c.n_layer, path);
  const int ds = switch_step(j, "decoder_sparse_step", "num_sparse_decoder_layers", c.n_dec_layer, path);
  if (es != ds || es < 1)
    hf::fail(path, "encoder and decoder sparse steps " + std::to_string(es) + " and " + std::to_string(ds) +
                       ": one positive step for both stacks is supported");
  c.moe_layers.clear(), c.moe_all_layers = es == 1;
  if (std::max(c.n_layer, c.n_dec_layer) > 1024)  // before the loop below (validate would refuse it anyway)
    hf::fail(path, "more than 1024 layers in a stack are not supported");
  if (es > 2)
    for (int l = 0; l < std::max(c.n_layer, c.n_dec_layer); l++)
      if (l % es == 1) c.moe_layers.push_back(l);
  if (es > 2 && c.moe_layers.empty()) hf::fail(path, "sparse step " + std::to_string(es) + " leaves no sparse layer");
}

void t5_to_hf(const ModelConfig& c, nlohmann::json& j) {
  j["vocab_size"] = c.vocab_size;
  j["d_model"] = c.n_embd;
  j["d_kv"] = c.head_dim();
  j["d_ff"] = c.n_inner;
  j["num_layers"] = c.n_layer;
  j["num_decoder_layers"] = c.n_dec_layer;
  j["num_heads"] = c.n_head;
  j["relative_attention_num_buckets"] = c.rel_buckets;
  j["relative_attention_max_distance"] = c.rel_max_distance;
  j["layer_norm_epsilon"] = hf::num(c.norm_eps);
  j["feed_forward_proj"] = c.mlp == MlpKind::Relu ? "relu" : "gated-gelu";
  j["dense_act_fn"] = c.mlp == MlpKind::Relu ? "relu" : "gelu_new";
  j["is_gated_act"] = c.mlp == MlpKind::GeGLU;
  j["tie_word_embeddings"] = c.tied;
  j["is_encoder_decoder"] = true;
  j["n_positions"] = c.n_ctx;
  j["dropout_rate"] = 0.0;
  j["initializer_factor"] = 1.0;
  j["pad_token_id"] = c.pad_id;
  j["eos_token_id"] = c.eos_id;
  j["decoder_start_token_id"] = c.bos_id;
  j["use_cache"] = true;
  if (t5_is_switch(c)) return;  // switch_to_hf writes the experts' fields
  if (c.is_moe()) {
    moe_to_hf(c, j, "num_experts", "num_experts_per_tok", false);
    j["moe_encoder_capacity_factor"] = hf::num(c.enc_capacity_factor);
    // The layer list covers both stacks: left out for the default (every other layer).
    j.erase("moe_layers");
    if (c.moe_all_layers || !c.moe_layers.empty()) {
      std::vector<int> layers;
      for (int l = 0; l < std::max(c.n_layer, c.n_dec_layer); l++)
        if (c.moe_layer(l)) layers.push_back(l);
      j["moe_layers"] = layers;
    }
  }
}

void t5_parts(ModelConfig& c) {
  c.norm = NormKind::RMSNorm;
  if (c.mlp != MlpKind::Relu) c.mlp = MlpKind::GeGLU;  // presets: T5 v1.1; from_hf sets feed_forward_proj's
  c.pos = PosKind::Relative;
  c.bias = false;
  c.fused_qkv = false;
  c.pad_id = 0, c.eos_id = 1, c.bos_id = 0;
  if (c.n_dec_layer == 0) c.n_dec_layer = c.n_layer;
}

bool t5_is_buffer(const std::string&) { return false; }

void switch_to_hf(const ModelConfig& c, nlohmann::json& j) {
  t5_to_hf(c, j);
  const int step = switch_sparse_step(c);  // validate guarantees there is one
  int enc = 0, dec = 0;
  for (int l = 0; l < c.n_layer; l++) enc += c.moe_layer(l);
  for (int l = 0; l < c.n_dec_layer; l++) dec += c.moe_layer(l);
  j["num_experts"] = c.n_experts;
  j["expert_capacity"] = c.switch_capacity;
  j["encoder_sparse_step"] = step, j["decoder_sparse_step"] = step;
  j["num_sparse_encoder_layers"] = enc, j["num_sparse_decoder_layers"] = dec;
  j["router_bias"] = false;
  j["router_jitter_noise"] = hf::num(c.router_jitter);
  j["router_dtype"] = "float32";
  j["router_ignore_padding_tokens"] = false;
  j["router_z_loss_coef"] = hf::num(c.z_loss_coef);
  j["router_aux_loss_coef"] = hf::num(c.aux_loss_coef);
  j["add_router_probs"] = false;
}

void switch_parts(ModelConfig& c) {
  t5_parts(c);
  c.mlp = MlpKind::Relu, c.top_k = 1, c.moe_renormalize = false, c.expert_choice = false;
}

}  // namespace

int switch_sparse_step(const ModelConfig& c) {
  const int L = std::max(c.n_layer, c.n_dec_layer);
  if (L > 4096) return -1;  // more layers than any valid config (validate bounds them)
  std::vector<char> sparse(static_cast<size_t>(L));
  for (int l = 0; l < L; l++) sparse[size_t(l)] = c.moe_layer(l);
  for (int step = 1; step <= std::max(L, 2); step++) {
    bool same = true;
    for (int l = 0; l < L && same; l++) same = bool(sparse[size_t(l)]) == (step == 1 || l % step == 1);
    if (same) return step;
  }
  return -1;
}

namespace {

// T5 v1.1's shape: d_kv = C / H, untied, eps 1e-6; gated-GELU of about 2.5 C.
void t5_preset(ModelConfig& c, const std::string& name) {
  c.n_dec_layer = c.n_layer, c.n_kv_head = c.n_head, c.norm_eps = 1e-6f, c.tied = false;
  c.n_inner = name == "tiny" ? 160 : 1024;
}

// Switch-Base's recipe, small: relu experts of 4 C, top-1, 8 experts.
void switch_preset(ModelConfig& c, const std::string& name) {
  t5_preset(c, name);
  c.n_inner = 4 * c.n_embd, c.n_experts = name == "tiny" ? 4 : 8, c.switch_capacity = 64;
  c.aux_loss_coef = 0.01f, c.z_loss_coef = 1e-3f, c.router_jitter = 0.0f;
}

}  // namespace

const Family& family_switch() {
  static const Family f{"switch_transformers", "SwitchTransformersForConditionalGeneration", t5_no_role, t5_transposed,
                        switch_from_hf, switch_to_hf, switch_parts, t5_is_buffer, nullptr, nullptr, &t5_rules(), "t5",
                        nullptr, nullptr, switch_preset, nullptr,
                        "switch_transformers (HF's Switch: T5 with top-1 relu experts, capacity per sequence = "
                        "--capacity-factor x --seq / E)"};
  return f;
}

const Family& family_t5() {
  static const Family f{"t5", "T5ForConditionalGeneration", t5_no_role, t5_transposed, t5_from_hf, t5_to_hf,
                        t5_parts, t5_is_buffer, nullptr, nullptr, &t5_rules(), "t5", nullptr, nullptr, t5_preset, nullptr,
                        "t5 (encoder-decoder, span corruption)"};
  return f;
}

}  // namespace moe
