#include "model/flops.h"

#include <algorithm>
#include <vector>

#include "model/t5.h"

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

ParamCounts model_param_counts(const ModelConfig& c) {
  ParamCounts pc;
  if (c.encoder_decoder()) {  // T5: dense (MoE T5 counts its experts like the decoder families, later)
    pc.total = pc.active = t5_layout(c).layout.num_params();
    return pc;
  }
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

double t5_train_flops_per_token(const ModelConfig& c, int Te, int Td) {
  const double C = c.n_embd, Cq = double(c.n_head) * c.head_dim(), F = c.n_inner, V = c.vocab_size;
  const double mlp = (c.gated_mlp() ? 3 : 2) * F * C, te = Te, td = Td;
  // Matmul parameters a token runs through: encoder layers per encoder token; decoder
  // layers (self-attention, cross q and o, MLP) and the head per decoder token; the
  // cross-attention's k and v per encoder token and decoder layer.
  const double enc = c.n_layer * (4 * C * Cq + mlp) * te;
  const double dec = (c.n_dec_layer * (6 * C * Cq + mlp) + V * C) * td + c.n_dec_layer * 2 * C * Cq * te;
  // Attention scores and weighted sums: 4 Tq Tk Cq forward, x 3 with the backward.
  const double att = 12 * Cq * (c.n_layer * te * te + c.n_dec_layer * (td * td + td * te));
  return (6 * (enc + dec) + att) / (te + td);
}

}  // namespace moe
