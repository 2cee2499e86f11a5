// The T5 family's config.json fields (HF T5Config of T5ForConditionalGeneration):
// T5 v1.1 ("gated-gelu": GeGLU MLP, untied head) and the original T5 ("relu", head
// tied to the embedding with the d_model^-0.5 rescale). Tensor names: t5_layout (t5_model.cpp).
#include <algorithm>
#include <stdexcept>
#include <vector>

#include "model/family.h"
#include "model/hf_json.h"

namespace moe {

namespace {

std::string t5_no_role(Role, int) {
  throw std::logic_error("t5: tensors are named by t5_layout (encoder and decoder stacks), not by role");
}

bool t5_transposed(Role) { return false; }  // every T5 weight is an nn.Linear [out, in]

void t5_from_hf(ModelConfig& c, const nlohmann::json& j, const std::string& path) {
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
  // MoE T5 (our layout, docs/formats.md): experts in every other layer of both stacks by
  // default; moe_routing is the encoder's (the decoder's tokens choose their top-k).
  moe_from_hf(c, j, path, "num_experts", "num_experts_per_tok", false);
  c.enc_capacity_factor = hf::opt_float(j, "moe_encoder_capacity_factor", 2.0f, path);
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

}  // namespace

const Family& family_t5() {
  static const Family f{"t5", "T5ForConditionalGeneration", t5_no_role, t5_transposed, t5_from_hf, t5_to_hf,
                        t5_parts, t5_is_buffer};
  return f;
}

}  // namespace moe
