#include "train/optimizer.h"

namespace moe {

void AdamW::step(FlatBuffer& params, const FlatBuffer& grads, const AdamWParams& hp, float lr, float grad_scale,
                 bf16* params_bf) {
  t_++;
  for (const ParamSpec& s : params.layout().specs()) {
    AdamWParams h = hp;
    h.lr = lr;
    h.weight_decay = s.shape.ndim >= 2 ? hp.weight_decay : 0.0f;
    adamw_update(params.data() + s.offset, m_.data() + s.offset, v_.data() + s.offset, grads.data() + s.offset,
                 size_t(s.shape.numel()), h, t_, grad_scale, params_bf ? params_bf + s.offset : nullptr);
  }
}

}  // namespace moe
