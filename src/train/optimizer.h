// AdamW over the model's flat buffers: moments m and v share the parameters'
// layout. Weight decay applies to matrices (ndim >= 2: linear weights and
// embeddings), not to norm weights or biases (the nanoGPT / common LLM rule).
//
// Sharded (ZeRO stage 1): the moments of elements [begin, end) of the flat buffer
// only; step_shard updates just those parameters (the caller all-gathers the rest).
// Every element is updated by the same arithmetic as in the full optimizer, so the
// sharded and the replicated optimizer give the same bits.
#pragma once
#include <vector>

#include "ops/adamw.h"
#include "tensor/flat.h"

namespace moe {

class AdamW {
 public:
  explicit AdamW(const ParamLayout& layout) : layout_(&layout), m_(layout), v_(layout), end_(layout.numel()) {}
  // ZeRO-1: moments of [begin, end) only.
  AdamW(const ParamLayout& layout, size_t begin, size_t end);

  // One update with learning rate lr (hp.lr is ignored); t counts from 1. Gradients are
  // multiplied by grad_scale (the clipping factor) on the fly; params_bf, when given,
  // receives the new parameters in bf16 (same layout). Full optimizer only.
  void step(FlatBuffer& params, const FlatBuffer& grads, const AdamWParams& hp, float lr, float grad_scale = 1.0f,
            bf16* params_bf = nullptr);
  // Sharded: updates the parameters of [begin, end) from the same elements of grads.
  void step_shard(FlatBuffer& params, const FlatBuffer& grads, const AdamWParams& hp, float lr, float grad_scale);

  int t() const { return t_; }
  void set_t(int t) { t_ = t; }
  bool sharded() const { return sharded_; }
  size_t begin() const { return begin_; }
  size_t end() const { return end_; }
  // The full moments (full optimizer only; throws when sharded).
  FlatBuffer& m();
  FlatBuffer& v();
  const FlatBuffer& m() const;
  const FlatBuffer& v() const;
  // Moments of element begin() + i: the shard's storage (either kind).
  float* m_shard() { return sharded_ ? ms_.data() : m_.data() + begin_; }
  float* v_shard() { return sharded_ ? vs_.data() : v_.data() + begin_; }

 private:
  const ParamLayout* layout_;
  FlatBuffer m_, v_;
  std::vector<float> ms_, vs_;
  bool sharded_ = false;
  size_t begin_ = 0, end_ = 0;
  int t_ = 0;
};

}  // namespace moe
