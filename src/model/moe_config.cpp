// The MoE fields of config.json, shared by the families (family.h).
#include <algorithm>

#include "model/family.h"
#include "model/hf_json.h"

namespace moe {

std::string expert_tensor_name(const std::string& pattern, int e) {
  std::string s = pattern;
  auto star = s.find('*');
  if (star != std::string::npos) s.replace(star, 1, std::to_string(e));
  return s;
}

void moe_from_hf(ModelConfig& c, const nlohmann::json& j, const std::string& path, const char* experts_key,
                 const char* topk_key, bool all_by_default) {
  c.n_experts = hf::opt_int(j, experts_key, 0, path);
  if (c.n_experts == 0) return;
  c.top_k = hf::opt_int(j, topk_key, all_by_default ? 2 : 1, path);
  c.moe_inner = hf::opt_int(j, "moe_intermediate_size", 0, path);
  if (c.moe_inner < 0) hf::fail(path, "field 'moe_intermediate_size' must be positive");
  c.aux_loss_coef = hf::opt_float(j, "router_aux_loss_coef", 0.01f, path);
  c.z_loss_coef = hf::opt_float(j, "router_z_loss_coef", 1e-3f, path);
  c.capacity_factor = hf::opt_float(j, "moe_capacity_factor", all_by_default ? 0.0f : 1.25f, path);
  c.eval_capacity_factor = hf::opt_float(j, "moe_eval_capacity_factor", all_by_default ? 0.0f : 2.0f, path);
  c.moe_renormalize = hf::opt_bool(j, "moe_renormalize", all_by_default, path);
  auto routing = hf::opt_string(j, "moe_routing", path).value_or("tokens_choose");
  if (routing != "tokens_choose" && routing != "expert_choice")
    hf::fail(path, "field 'moe_routing' must be \"tokens_choose\" or \"expert_choice\", got \"" + routing + "\"");
  c.expert_choice = routing == "expert_choice";
  c.router_init_scale = hf::opt_float(j, "router_init_scale", 0.1f, path);
  c.router_jitter = hf::opt_float(j, "router_jitter_noise", 0.0f, path);  // HF Mixtral's key
  c.expert_dropout = hf::opt_float(j, "moe_expert_dropout", 0.0f, path);
  if (c.router_jitter < 0 || c.router_jitter >= 1) hf::fail(path, "field 'router_jitter_noise' must be in [0, 1)");
  if (c.expert_dropout < 0 || c.expert_dropout >= 1) hf::fail(path, "field 'moe_expert_dropout' must be in [0, 1)");
  c.moe_layers.clear();
  c.moe_all_layers = false;
  auto it = j.find("moe_layers");
  if (it == j.end() || it->is_null()) {
    c.moe_all_layers = all_by_default;
  } else {
    if (!it->is_array()) hf::fail(path, "field 'moe_layers' must be a list of layer indices");
    for (const auto& v : *it) {
      if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > (int64_t(1) << 30))  // int() below
        hf::fail(path, "field 'moe_layers' must be a list of non-negative layer indices, got " + hf::shown(v));
      c.moe_layers.push_back(int(v.get<int64_t>()));
    }
    if (c.moe_layers.empty()) hf::fail(path, "field 'moe_layers' is empty: an MoE model needs an MoE layer");
  }
}

void moe_to_hf(const ModelConfig& c, nlohmann::json& j, const char* experts_key, const char* topk_key,
               bool all_by_default) {
  j[experts_key] = c.n_experts;
  j[topk_key] = c.top_k;
  if (c.moe_inner > 0 && c.moe_inner != c.n_inner) j["moe_intermediate_size"] = c.moe_inner;
  j["router_aux_loss_coef"] = hf::num(c.aux_loss_coef);
  j["router_z_loss_coef"] = hf::num(c.z_loss_coef);
  j["moe_capacity_factor"] = hf::num(c.capacity_factor);
  j["moe_eval_capacity_factor"] = hf::num(c.eval_capacity_factor);
  j["moe_renormalize"] = c.moe_renormalize;
  j["moe_routing"] = c.expert_choice ? "expert_choice" : "tokens_choose";
  j["router_jitter_noise"] = hf::num(c.router_jitter);
  j["router_init_scale"] = hf::num(c.router_init_scale);
  j["moe_expert_dropout"] = hf::num(c.expert_dropout);
  j["output_router_logits"] = false;
  bool all = true;
  std::vector<int> layers;
  for (int l = 0; l < c.n_layer; l++)
    if (c.moe_layer(l)) layers.push_back(l);
    else all = false;
  if (!(all && all_by_default)) j["moe_layers"] = layers;  // a pure Mixtral leaves it out
}

}  // namespace moe
