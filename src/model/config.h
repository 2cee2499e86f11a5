// Model configuration: one decoder-only transformer whose parts are chosen by
// flags, so the GPT-2 and Llama families share one code path. A family (model/decoder/
// family_gpt2.cpp, family_llama.cpp) sets the flags, knows its Hugging Face config fields and tensor names.
// The T5 family (model/t5/) is an encoder-decoder (model/t5/t5.h): the same fields describe
// its encoder (n_layer) and decoder (n_dec_layer) stacks.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "moe/mlp_kind.h"

namespace moe {

enum class NormKind { LayerNorm, RMSNorm };
enum class PosKind { Learned, Rope, Relative };  // Relative: T5's bucketed position bias

struct ModelConfig {
  std::string family = "llama";  // "gpt2" | "llama" | "mixtral" | "t5": the HF model_type
  int vocab_size = 8192;          // V
  int n_ctx = 256;                // max positions
  int n_embd = 256;               // C
  int n_layer = 4;                // L
  int n_head = 4;                 // H
  int n_kv_head = 4;              // Hkv (grouped-query attention when < H)
  int n_inner = 1024;             // F, the MLP width
  float norm_eps = 1e-5f;
  float rope_theta = 10000.0f;
  int bos_id = 1, eos_id = 2;     // T5: bos_id is the decoder start token (= pad)
  int pad_id = -1;                // T5: 0
  // T5 (encoder-decoder):
  int n_dec_layer = 0;            // decoder layers (the encoder has n_layer)
  int d_kv = 0;                   // head size when it is not n_embd / n_head (T5's d_kv)
  int rel_buckets = 32;           // relative position buckets per stack
  int rel_max_distance = 128;     // distances beyond this share the last bucket
  // Parts, set by the family:
  NormKind norm = NormKind::RMSNorm;
  MlpKind mlp = MlpKind::SwiGLU;
  PosKind pos = PosKind::Rope;
  bool bias = false;        // biases on linears and norms
  bool fused_qkv = false;   // one (3C, C) projection (GPT-2's c_attn) instead of q, k, v
  bool tied = false;        // lm_head shares the token embedding (T5: the decoder output scaled by n_embd^-0.5)

  // Mixture of Experts (n_experts = 0: dense). MoE blocks replace the MLP of the
  // layers in moe_layers (empty: every other layer, 1, 3, 5, ...).
  int n_experts = 0;                 // E
  int top_k = 1;                     // K (1: Switch)
  int moe_inner = 0;                 // expert MLP width (0: n_inner); granular upcycling: n_inner / G
  std::vector<int> moe_layers;       // explicit list; empty = every other
  bool moe_all_layers = false;       // every layer (Mixtral)
  float capacity_factor = 1.25f;     // training; <= 0: dropless
  float eval_capacity_factor = 2.0f; // evaluation and generation; <= 0: dropless
  bool moe_renormalize = true;       // combine: renormalised top-k (Mixtral) or raw gates (Switch)
  float aux_loss_coef = 0.01f;
  float z_loss_coef = 1e-3f;
  bool expert_choice = false;        // experts choose tokens: refused by causal decoders; T5: the encoder's routing
  float enc_capacity_factor = 2.0f;  // T5's encoder with expert choice: each expert takes cf T / E tokens of a sequence
  int switch_capacity = 0;           // switch_transformers: expert_capacity, tokens per expert per sequence
  float router_init_scale = 0.1f;    // router init std sqrt(scale / C): Switch's smaller init (1.0: the usual)
  float router_jitter = 0.0f;        // training: router input times U[1-j, 1+j]
  float expert_dropout = 0.0f;       // training: dropout inside the experts

  int head_dim() const { return d_kv > 0 ? d_kv : n_embd / n_head; }
  bool gated_mlp() const { return mlp == MlpKind::SwiGLU || mlp == MlpKind::GeGLU; }
  int expert_inner() const { return moe_inner > 0 ? moe_inner : n_inner; }
  bool is_moe() const { return n_experts > 0; }
  bool moe_layer(int l) const;
  // Throws std::invalid_argument naming the field and what was expected.
  void validate() const;
};

// --moe-layers: "every-other" (empty list), "all" (*all), or a comma list of indices;
// throws naming the flag.
void parse_moe_layers(const std::string& spec, std::vector<int>* layers, bool* all);

// Named presets of a family: "tiny", "small" (see config.cpp for sizes).
ModelConfig model_preset(const std::string& family, const std::string& name, int vocab_size);

// Hugging Face config.json <-> ModelConfig. from_hf throws naming `path` and the field.
ModelConfig config_from_hf(const nlohmann::json& j, const std::string& path);
nlohmann::json config_to_hf(const ModelConfig& c);
ModelConfig config_load(const std::string& path);  // reads and validates a config.json

}  // namespace moe
