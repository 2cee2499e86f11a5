#include "train/optimizer.h"

#include <algorithm>
#include <stdexcept>

namespace moe {

namespace {
const ParamLayout& empty_layout() {
  static const ParamLayout k;
  return k;
}
}  // namespace

AdamW::AdamW(const ParamLayout& layout, Ranges ranges)
    : layout_(&layout), m_(empty_layout()), v_(empty_layout()), sharded_(true), ranges_(std::move(ranges)) {
  size_t n = 0, at = 0;
  for (const auto& [b, e] : ranges_) {
    if (b < at || b > e || e > layout.numel()) throw std::invalid_argument("AdamW: shard outside the layout");
    n += e - b, at = e;
  }
  ms_.assign(n, 0.0f), vs_.assign(n, 0.0f);
}

FlatBuffer& AdamW::m() {
  if (sharded_) throw std::logic_error("AdamW: the moments are sharded (ZeRO-1): gather them first");
  return m_;
}
FlatBuffer& AdamW::v() {
  if (sharded_) throw std::logic_error("AdamW: the moments are sharded (ZeRO-1): gather them first");
  return v_;
}
const FlatBuffer& AdamW::m() const { return const_cast<AdamW*>(this)->m(); }
const FlatBuffer& AdamW::v() const { return const_cast<AdamW*>(this)->v(); }

void AdamW::step(FlatBuffer& params, const FlatBuffer& grads, const AdamWParams& hp, float lr, float grad_scale,
                 bf16* params_bf) {
  if (sharded_) throw std::logic_error("AdamW::step on a sharded optimizer: use step_shard");
  t_++;
  for (const ParamSpec& s : params.layout().specs()) {
    AdamWParams h = hp;
    h.lr = lr;
    h.weight_decay = s.shape.ndim >= 2 ? hp.weight_decay : 0.0f;
    adamw_update(params.data() + s.offset, m_.data() + s.offset, v_.data() + s.offset, grads.data() + s.offset,
                 size_t(s.shape.numel()), h, t_, grad_scale, params_bf ? params_bf + s.offset : nullptr);
  }
}

void AdamW::step_shard(FlatBuffer& params, const FlatBuffer& grads, const AdamWParams& hp, float lr, float grad_scale) {
  if (!sharded_) throw std::logic_error("AdamW::step_shard on a full optimizer: use step");
  t_++;
  size_t at = 0;  // storage offset of the range
  for (const auto& [b, e] : ranges_) {
    float* ms = ms_.data() + at;
    float* vs = vs_.data() + at;
    for (const ParamSpec& s : params.layout().specs()) {
      const size_t lo = std::max(b, s.offset), hi = std::min(e, s.offset + size_t(s.shape.numel()));
      if (lo >= hi) continue;
      AdamWParams h = hp;
      h.lr = lr;
      h.weight_decay = s.shape.ndim >= 2 ? hp.weight_decay : 0.0f;
      adamw_update(params.data() + lo, ms + (lo - b), vs + (lo - b), grads.data() + lo, hi - lo, h, t_, grad_scale,
                   nullptr);
    }
    at += e - b;
  }
}

}  // namespace moe
