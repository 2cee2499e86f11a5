// T5's arithmetic without allocation: parameters (total, active per token), training
// FLOPs per token and the activation arena's bytes (Arch hooks).
#include <algorithm>
#include <cmath>

#include "model/t5/t5.h"
#include "model/t5/t5_family.h"

namespace moe {

// A decoder token runs K of E experts, an encoder token on average min(cf, E) (expert choice).
ParamCounts t5_param_counts(const ModelConfig& c) {
  ParamCounts pc;
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
