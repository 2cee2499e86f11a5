// Model configuration: one decoder-only transformer whose parts are chosen by
// flags, so the GPT-2 and Llama families share one code path. A family (gpt2.cpp,
// llama.cpp) sets the flags, knows its Hugging Face config fields and tensor names.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace moe {

enum class NormKind { LayerNorm, RMSNorm };
enum class MlpKind { Gelu, SwiGLU };
enum class PosKind { Learned, Rope };

struct ModelConfig {
  std::string family = "llama";  // "gpt2" | "llama": the HF model_type
  int vocab_size = 8192;          // V
  int n_ctx = 256;                // max positions
  int n_embd = 256;               // C
  int n_layer = 4;                // L
  int n_head = 4;                 // H
  int n_kv_head = 4;              // Hkv (grouped-query attention when < H)
  int n_inner = 1024;             // F, the MLP width
  float norm_eps = 1e-5f;
  float rope_theta = 10000.0f;
  int bos_id = 1, eos_id = 2;
  // Parts, set by the family:
  NormKind norm = NormKind::RMSNorm;
  MlpKind mlp = MlpKind::SwiGLU;
  PosKind pos = PosKind::Rope;
  bool bias = false;        // biases on linears and norms
  bool fused_qkv = false;   // one (3C, C) projection (GPT-2's c_attn) instead of q, k, v
  bool tied = false;        // lm_head shares the token embedding

  int head_dim() const { return n_embd / n_head; }
  // Throws std::invalid_argument naming the field and what was expected.
  void validate() const;
};

// Named presets of a family: "tiny", "small" (see config.cpp for sizes).
ModelConfig model_preset(const std::string& family, const std::string& name, int vocab_size);

// Hugging Face config.json <-> ModelConfig. from_hf throws naming `path` and the field.
ModelConfig config_from_hf(const nlohmann::json& j, const std::string& path);
nlohmann::json config_to_hf(const ModelConfig& c);
ModelConfig config_load(const std::string& path);  // reads and validates a config.json

}  // namespace moe
