// moe inspect: what a checkpoint is: family, sizes, parameters total and active per
// token, the MoE layout.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/model_open.h"
#include "model/checkpoint.h"
#include "model/family.h"
#include "model/describe.h"
#include "model/flops.h"

namespace moe::cli {

namespace {

struct InspectOpts {
  std::string model;
  bool json = false;
};

void run_inspect(const InspectOpts& o) {
  OpenedModel opened = open_model(o.model);
  const std::string& dir = opened.dir;
  auto& m = opened.model;
  const ModelConfig& c = m->config();
  const ParamCounts pc = model_param_counts(c);
  const size_t total = pc.total, active = pc.active;
  std::vector<int> layers;
  for (int l = 0; l < c.n_layer; l++)
    if (c.moe_layer(l)) layers.push_back(l);
  if (o.json) {
    nlohmann::ordered_json j{{"model", dir}, {"family", c.family}, {"layers", c.n_layer + c.n_dec_layer}, {"hidden", c.n_embd},
                             {"heads", c.n_head}, {"kv_heads", c.n_kv_head}, {"mlp", c.n_inner},
                             {"vocab", c.vocab_size}, {"positions", c.n_ctx}, {"params_total", total},
                             {"params_active_per_token", active}, {"experts", c.n_experts},
                             {"model_type", family_to_write(c).model_type},
                             {"architecture", family_to_write(c).architecture}};
    if (const auto extra = arch_of(c).inspect_json) extra(c, j);
    if (c.is_moe()) {  // a dense model has no routing settings to report
      j["top_k"] = c.top_k;
      j["moe_layers"] = layers;
      j["capacity_factor"] = c.capacity_factor;
      j["eval_capacity_factor"] = c.eval_capacity_factor;
      j["combine"] = c.moe_renormalize ? "renormalised" : "raw";
    }
    std::printf("%s\n", j.dump().c_str());
    return;
  }
  std::printf("%s\n", dir.c_str());
  const char* mlp = c.mlp == MlpKind::Gelu ? "GELU" : c.mlp == MlpKind::SwiGLU ? "SwiGLU"
                    : c.mlp == MlpKind::Relu ? "ReLU" : "gated-GELU";
  const char* pos = c.pos == PosKind::Rope ? "RoPE" : c.pos == PosKind::Learned ? "learned" : "relative (bucketed)";
  std::printf("  family      %s (%s norm, %s MLP, %s positions%s%s)\n", c.family.c_str(),
              c.norm == NormKind::LayerNorm ? "Layer" : "RMS", mlp, pos, c.bias ? ", biases" : "",
              c.tied ? ", tied head" : "");
  const ConfigText text = describe_config(c, double(total));
  std::printf("  shape       %s\n", text.inspect_shape.c_str());
  const Family& label = family_to_write(c);
  std::printf("  config.json model_type %s, %s%s%s\n", label.model_type, label.architecture,
              label.label_note ? " " : "", label.label_note ? label.label_note : "");
  std::printf("  parameters  %.2fM total, %.2fM active per token\n", total / 1e6, active / 1e6);
  if (c.is_moe()) {
    std::string ls;
    for (int l : layers) ls += (ls.empty() ? "" : ",") + std::to_string(l);
    std::printf("  moe         %d experts, top-%d, %s combine, layers %s\n", c.n_experts, c.top_k,
                c.moe_renormalize ? "renormalised" : "raw-gate", ls.c_str());
    std::printf("              %s\n", text.inspect_capacity.c_str());
    if (!text.inspect_routing.empty()) std::printf("              %s\n", text.inspect_routing.c_str());
  }
}

}  // namespace

void register_inspect(CLI::App& app) {
  auto o = std::make_shared<InspectOpts>();
  CLI::App* sub = app.add_subcommand("inspect", "Architecture, parameters (total and active per token), MoE layout");
  sub->add_option("model", o->model, "checkpoint directory (or a run directory)")->required();
  sub->add_flag("--json", o->json, "one JSON object");
  sub->callback([o] { run_inspect(*o); });
}

}  // namespace moe::cli
