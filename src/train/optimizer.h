// AdamW over the model's flat buffers: moments m and v share the parameters'
// layout. Weight decay applies to matrices (ndim >= 2: linear weights and
// embeddings), not to norm weights or biases (the nanoGPT / common LLM rule).
//
// Sharded (ZeRO stage 1): the moments of some ranges of the flat buffer only (one
// range; two under expert parallelism: a shard of the replicated tensors and one of the
// rank's experts), stored back to back; step_shard updates just those parameters (the
// caller all-gathers the rest).
// Every element is updated by the same arithmetic as in the full optimizer, so the
// sharded and the replicated optimizer give the same bits.
#pragma once
#include <utility>
#include <vector>

#include "ops/adamw.h"
#include "tensor/flat.h"

namespace moe {

class AdamW {
 public:
  using Ranges = std::vector<std::pair<size_t, size_t>>;
  explicit AdamW(const ParamLayout& layout) : layout_(&layout), m_(layout), v_(layout) {}
  // ZeRO-1: moments of [begin, end) only.
  AdamW(const ParamLayout& layout, size_t begin, size_t end) : AdamW(layout, Ranges{{begin, end}}) {}
  // ZeRO-1: moments of these [begin, end) ranges (ascending, disjoint) only.
  AdamW(const ParamLayout& layout, Ranges ranges);

  // One update with learning rate lr (hp.lr is ignored); t counts from 1. Gradients are
  // multiplied by grad_scale (the clipping factor) on the fly; params_bf, when given,
  // receives the new parameters in bf16 (same layout). Full optimizer only.
  void step(FlatBuffer& params, const FlatBuffer& grads, const AdamWParams& hp, float lr, float grad_scale = 1.0f,
            bf16* params_bf = nullptr);
  // Sharded: updates the parameters of its ranges from the same elements of grads.
  void step_shard(FlatBuffer& params, const FlatBuffer& grads, const AdamWParams& hp, float lr, float grad_scale);

  int t() const { return t_; }
  void set_t(int t) { t_ = t; }
  bool sharded() const { return sharded_; }
  const Ranges& ranges() const { return ranges_; }  // sharded: the elements held
  // The full moments (full optimizer only; throws when sharded).
  FlatBuffer& m();
  FlatBuffer& v();
  const FlatBuffer& m() const;
  const FlatBuffer& v() const;
  // Sharded: the moments of the ranges' elements, back to back.
  float* m_shard() { return ms_.data(); }
  float* v_shard() { return vs_.data(); }

 private:
  const ParamLayout* layout_;
  FlatBuffer m_, v_;
  std::vector<float> ms_, vs_;
  bool sharded_ = false;
  Ranges ranges_;
  int t_ = 0;
};

}  // namespace moe
