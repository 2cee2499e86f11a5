// A model family: its Hugging Face config fields and tensor names. The model asks
// for tensors by role; only the family knows what HF calls them and whether HF
// stores them transposed (GPT-2's Conv1D keeps [in, out]; we keep every linear
// weight as [out, in], like torch.nn.Linear).
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "model/config.h"

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
};

const Family& family_of(const std::string& model_type);  // throws listing the known ones
const Family& family_gpt2();
const Family& family_llama();
const Family& family_mixtral();  // Llama with MoE layers: Mixtral's names and config fields
// The same with raw top-k gates (moe_renormalize false), which HF's Mixtral does not
// compute: our own model_type (kMixtralRawGates), read back as family "mixtral".
inline constexpr const char* kMixtralRawGates = "mixtral_raw_gates";
const Family& family_mixtral_raw();
// The family whose model_type and architecture config.json gets for c: its own, or
// the one its writes_as chooses.
const Family& family_to_write(const ModelConfig& c);
// T5 (T5ForConditionalGeneration): config fields only; its tensors are named by
// t5_layout (model/t5.h), which has encoder and decoder stacks the roles cannot say.
const Family& family_t5();
// HF switch_transformers (SwitchTransformersForConditionalGeneration): T5 with top-1
// experts in every sparse_step-th layer, capacity per sequence (model/t5.h).
const Family& family_switch();
// The sparse step (layer i sparse when step == 1 or i % step == 1) that gives c's MoE
// layers in both stacks, or -1 when none does.
int switch_sparse_step(const ModelConfig& c);

// MoE config fields, shared by the families: HF's where they exist (Mixtral:
// num_local_experts, num_experts_per_tok, router_aux_loss_coef), ours otherwise
// (moe_layers, moe_capacity_factor, moe_eval_capacity_factor, moe_renormalize,
// router_z_loss_coef). `all_by_default`: no moe_layers key means every layer (Mixtral).
void moe_from_hf(ModelConfig& c, const nlohmann::json& j, const std::string& path, const char* experts_key,
                 const char* topk_key, bool all_by_default);
void moe_to_hf(const ModelConfig& c, nlohmann::json& j, const char* experts_key, const char* topk_key,
               bool all_by_default);

}  // namespace moe
