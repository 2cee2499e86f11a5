#include "model/flops.h"

namespace moe {

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
