// A model family: everything the rest of the code asks of a model's kind, answered in
// one place. Two levels:
//   Family: one Hugging Face model_type (gpt2, llama, mixtral, t5, ...): its config.json
//           fields, tensor names and part flags;
//   Arch:   what a family folder provides for all its model_types (model/decoder/,
//           model/t5/): its capabilities, build and load, memory and FLOP arithmetic,
//           batch source, descriptions, generation and upcycling entry points.
// The registry (model/families.cpp) lists every Family; the CLI, the trainer and the
// benchmarks go through it and never ask which family a config is.
#pragma once
#include <memory>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/lm.h"

namespace moe {

enum class Role {
  // model-wide
  Embed, Pos, FinalNorm, FinalNormBias, LMHead,
  // per layer
  Norm1, Norm1Bias, QKV, QKVBias, Q, K, V, O, OBias, Norm2, Norm2Bias,
  Up, UpBias, Gate, Down, DownBias,
  // per MoE layer: the router and the experts' weights, stored [E, ...]. Their names
  // contain '*' where HF puts the expert index (one HF tensor per expert).
  Router, ExpertW1, ExpertB1, ExpertW3, ExpertW2, ExpertB2,
};

struct Arch;

// A family folder's rules for a config, without its model: what parsing and checking a
// config.json and its memory needs (kept apart from Arch, whose hooks reach the whole
// model, so that the config parsers link alone: tests/fuzz).
struct ConfigRules {
  // The family's own checks (need(ok, what) throws "model config: what"), and the names
  // its config.json gives the sizes (for the shared checks' messages).
  void (*validate)(const ModelConfig& c, const std::function<void(bool, const std::string&)>& need);
  const char* hidden_name;  // "hidden size (n_embd / hidden_size)"
  const char* layers_name;
  const char* inner_name;
  // Parameters in floating point (an absurd config cannot overflow), and the bytes of
  // the activation arena for B x T (*layer: one layer's share), without allocating.
  double (*param_count)(const ModelConfig& c);
  double (*arena_bytes)(const ModelConfig& c, int B, int T, bool recompute, double* layer);
};

// "model.layers.0.block_sparse_moe.experts.*.w1.weight" -> "...experts.3.w1.weight"
std::string expert_tensor_name(const std::string& pattern, int e);

struct Family {
  const char* model_type;  // "gpt2", "llama"
  const char* architecture;  // "GPT2LMHeadModel", "LlamaForCausalLM"
  // HF tensor name of a role (layer ignored for model-wide roles).
  std::string (*name)(Role r, int layer);
  // True when HF stores this 2-D weight as [in, out] (we store [out, in]).
  bool (*hf_transposed)(Role r);
  // Config fields: fill c from j (throwing naming `path` and the field), and back.
  void (*from_hf)(ModelConfig& c, const nlohmann::json& j, const std::string& path);
  void (*to_hf)(const ModelConfig& c, nlohmann::json& j);
  // Sets the part flags (norm, mlp, positions, bias, fused qkv) of this family.
  void (*set_parts)(ModelConfig& c);
  // HF buffers that are not parameters and may appear in a checkpoint (ignored).
  bool (*is_buffer)(const std::string& name);
  // A label of its own for a variant of another family: the family it reads as
  // (nullptr: model_type itself), and the label a config of this family is written
  // under (nullptr: this one; Mixtral with raw gates: mixtral_raw_gates).
  const char* reads_as = nullptr;
  const Family& (*writes_as)(const ModelConfig& c) = nullptr;
  // The family folder: its config rules, and its name, which the Arch registry
  // (model/archs.cpp) binds to its hooks (arch_of).
  const ConfigRules* rules = nullptr;
  const char* folder = nullptr;  // "decoder", "t5"
  // The model_type a dense config of this family becomes with experts (llama: mixtral);
  // nullptr: its own.
  const char* with_experts = nullptr;
  // A note for `moe inspect` beside the model_type it is written under (nullptr: none).
  const char* label_note = nullptr;
  // Its presets' shape beyond the shared sizes (model_preset; nullptr: none).
  void (*preset)(ModelConfig& c, const std::string& name) = nullptr;
  // llama.cpp's architecture for its GGUF export (nullptr: none; Capability::ExportGguf).
  const char* gguf_arch = nullptr;
  // What `--family NAME` trains, for moe train's and moe bench's help (nullptr: not a
  // choice there: a variant reached by flags, e.g. mixtral = llama with --experts).
  const char* train_help = nullptr;
};

// The registry (model/families.cpp): every model_type moe reads and writes.
const Family& family_of(const std::string& model_type);  // throws listing the known ones
bool family_known(const std::string& model_type);
std::vector<const Family*> family_list();  // every registered model_type, in registry order
// The --family choices (the families with a train_help), and their help text.
std::vector<std::string> family_train_choices();
std::string family_train_help();
std::string family_names_quoted();  // "\"gpt2\", ... or \"switch_transformers\""
// The family whose model_type and architecture config.json gets for c: its own, or
// the one its writes_as chooses.
const Family& family_to_write(const ModelConfig& c);

// MoE config fields, shared by the families: HF's where they exist (Mixtral:
// num_local_experts, num_experts_per_tok, router_aux_loss_coef), ours otherwise
// (moe_layers, moe_capacity_factor, moe_eval_capacity_factor, moe_renormalize,
// router_z_loss_coef). `all_by_default`: no moe_layers key means every layer (Mixtral).
void moe_from_hf(ModelConfig& c, const nlohmann::json& j, const std::string& path, const char* experts_key,
                 const char* topk_key, bool all_by_default);
void moe_to_hf(const ModelConfig& c, nlohmann::json& j, const char* experts_key, const char* topk_key,
               bool all_by_default);

}  // namespace moe
