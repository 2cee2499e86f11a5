// The decoder families' arithmetic without allocation: parameters (total, active per
// token), training FLOPs per token and the activation arena's bytes (Arch hooks).
#include "model/decoder/decoder.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "model/decoder/model.h"

namespace moe {

namespace {
// Offsets of the [E, ...] expert tensors (weights and GPT-2's biases) of a layout.
std::vector<size_t> expert_offsets(const std::vector<LayerOffsets>& layers) {
  std::vector<size_t> v;
  for (const LayerOffsets& o : layers)
    for (size_t off : {o.ew1, o.eb1, o.ew3, o.ew2, o.eb2})
      if (off != LayerOffsets::npos) v.push_back(off);
  return v;
}
bool contains(const std::vector<size_t>& v, size_t x) { return std::find(v.begin(), v.end(), x) != v.end(); }
}  // namespace


ParamCounts decoder_param_counts(const ModelConfig& c) {
  ParamCounts pc;
  size_t expert = 0;
  const ModelLayout ml = model_layout(c);
  const std::vector<size_t> experts = expert_offsets(ml.layers);
  for (const ParamSpec& s : ml.layout.specs()) {
    pc.total += size_t(s.shape.numel());
    if (contains(experts, s.offset)) expert += size_t(s.shape.numel());
  }
  pc.active = c.is_moe() ? pc.total - expert + expert / c.n_experts * c.top_k : pc.total;
  return pc;
}

double model_train_flops_per_token(const Model& m, int T) {
  const ModelConfig& c = m.config();
  double matmul_params = 0;
  std::vector<size_t> expert_biases;
  for (int l = 0; l < c.n_layer; l++)
    for (size_t off : {m.layer_offsets(l).eb1, m.layer_offsets(l).eb2})
      if (off != LayerOffsets::npos) expert_biases.push_back(off);
  for (const ParamSpec& s : m.layout().specs()) {
    if (contains(expert_biases, s.offset)) continue;  // [E, F] / [E, C] biases: no matmul
    if (s.shape.ndim == 3) {  // experts [E, out, in]: a token runs K of them
      matmul_params += double(c.top_k) * double(s.shape[1]) * double(s.shape[2]);
      continue;
    }
    if (s.shape.ndim != 2) continue;
    bool lookup_only = s.offset == m.off_embed() && !c.tied;  // untied embedding: a lookup, no matmul
    if (s.offset == m.off_pos()) lookup_only = true;
    if (!lookup_only) matmul_params += double(s.shape.numel());
  }
  return 6.0 * matmul_params + 12.0 * c.n_layer * double(T) * c.n_embd;
}

double Model::train_flops_per_token(int T, int) const { return model_train_flops_per_token(*this, T); }

}  // namespace moe
