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
  if (c.encoder_decoder()) {  // T5: a decoder token runs K of E experts, an encoder token on average min(cf, E) (expert choice)
    const T5Layout tl = t5_layout(c);
    double active = 0;
    for (const ParamSpec& s : tl.layout.specs()) {
      const double n = double(s.shape.numel());
      pc.total += size_t(s.shape.numel());
      if (s.name.find('*') == std::string::npos) active += n;
      else {
        const bool ec = c.expert_choice && s.name.rfind("encoder.", 0) == 0;
        active += n * (ec ? std::min(double(c.enc_capacity_factor), double(c.n_experts)) : double(c.top_k)) / c.n_experts;
      }
    }
    pc.active = size_t(active + 0.5);
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
  // An MoE layer's MLP runs K experts per token (expert choice: cf on average), plus the router.
  const double Fe = c.expert_inner(), emlp = (c.gated_mlp() ? 3 : 2) * Fe * C, E = c.n_experts;
  auto mlp_of = [&](bool encoder, int l) {
    if (!c.moe_layer(l)) return mlp;
    const double k = encoder && c.expert_choice ? std::min(double(c.enc_capacity_factor), E) : double(c.top_k);
    return k * emlp + E * C;
  };
  double enc = 0, dec = 0;
  for (int l = 0; l < c.n_layer; l++) enc += (4 * C * Cq + mlp_of(true, l)) * te;
  for (int l = 0; l < c.n_dec_layer; l++) dec += (6 * C * Cq + mlp_of(false, l)) * td + 2 * C * Cq * te;
  dec += V * C * td;
  // Attention scores and weighted sums: 4 Tq Tk Cq forward, x 3 with the backward.
  const double att = 12 * Cq * (c.n_layer * te * te + c.n_dec_layer * (td * td + td * te));
  return (6 * (enc + dec) + att) / (te + td);
}

}  // namespace moe
