// AdamW over the model's flat buffers: moments m and v share the parameters'
// layout. Weight decay applies to matrices (ndim >= 2: linear weights and
// embeddings), not to norm weights or biases (the nanoGPT / common LLM rule).
#pragma once
#include "ops/adamw.h"
#include "tensor/flat.h"

namespace moe {

class AdamW {
 public:
  explicit AdamW(const ParamLayout& layout) : m_(layout), v_(layout) {}
  // One update with learning rate lr (hp.lr is ignored); t counts from 1. Gradients are
  // multiplied by grad_scale (the clipping factor) on the fly; params_bf, when given,
  // receives the new parameters in bf16 (same layout).
  void step(FlatBuffer& params, const FlatBuffer& grads, const AdamWParams& hp, float lr, float grad_scale = 1.0f,
            bf16* params_bf = nullptr);
  int t() const { return t_; }
  void set_t(int t) { t_ = t; }
  FlatBuffer& m() { return m_; }
  FlatBuffer& v() { return v_; }
  const FlatBuffer& m() const { return m_; }
  const FlatBuffer& v() const { return v_; }

 private:
  FlatBuffer m_, v_;
  int t_ = 0;
};

}  // namespace moe
