#include "model/flops.h"

namespace moe {

ParamCounts model_param_counts(const ModelConfig& c) {
  ParamCounts pc;
  size_t expert = 0;
  const ModelLayout ml = model_layout(c);
  for (const ParamSpec& s : ml.layout.specs()) {
    pc.total += size_t(s.shape.numel());
    if (s.shape.ndim == 3) expert += size_t(s.shape.numel());  // [E, ...] expert weights
  }
  pc.active = c.is_moe() ? pc.total - expert + expert / c.n_experts * c.top_k : pc.total;
  return pc;
}

double model_train_flops_per_token(const Model& m, int T) {
  const ModelConfig& c = m.config();
  double matmul_params = 0;
  for (const ParamSpec& s : m.layout().specs()) {
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

}  // namespace moe
