// T5's arithmetic without allocation: parameters (total, active per token), training
// FLOPs per token and the activation arena's bytes (Arch hooks).
#include <algorithm>
#include <cmath>

#include "model/t5/t5.h"
#include "model/t5/t5_family.h"

namespace moe {

namespace {

// Bytes of the activation arena for B rows of Te encoder and Td decoder tokens, without
// the 64-byte alignment of each slice. `layer`: one layer's set.
// T5 (T5Model::ensure_acts): per encoder layer and per decoder layer (with its
// cross-attention), the residual streams, biases, outputs, logits and the scratch.
double t5_arena_bytes_te_td(const ModelConfig& c, int B, int Te, int Td, double* layer) {
  const double C = c.n_embd, F = c.n_inner, V = c.vocab_size, H = c.n_head, Cq = H * c.head_dim();
  const double Ne = double(B) * Te, Nd = double(B) * Td, Nm = std::max(Ne, Nd), Tm = std::max(Te, Td);
  const double g = c.gated_mlp() ? 1 : 0;
  auto self = [&](double N, double T) {  // ln1, q, k, v, att, atty, x_mid, ln2, MLP; bf16 copies
    return 4 * (N * (3 * C + 2 + 4 * Cq + (2 + g) * F) + B * H * T * T) + 2 * N * (2 * C + Cq + F);
  };
  const double enc = self(Ne, Te);
  const double dec = self(Nd, Td) + 4 * (Nd * (2 * C + 1 + 2 * Cq) + 2 * Ne * Cq + B * H * double(Td) * Te) +
                     2 * Nd * (C + Cq);
  *layer = std::max(enc, dec);
  const double rest = 4 * ((c.n_layer + 1) * Ne * C + (c.n_dec_layer + 1) * Nd * C + H * (double(Te) * Te + double(Td) * Td) +
                           Ne * (C + 1) + Nd * (2 * C + 1) + Nd * (V + 3) + Nm * C * 4 + Nm * Cq * 4 +
                           B * H * Tm * Tm + Nm * (2 + g) * F + Ne * C) +
                      2 * (Ne * C + Nd * C + Nm * std::max({V, C, F, Cq}));
  return c.n_layer * enc + c.n_dec_layer * dec + rest;
}

}  // namespace

double t5_arena_bytes(const ModelConfig& c, int B, int T, bool, double* layer) {
  return t5_arena_bytes_te_td(c, B, T, T, layer);  // decoder length: at most the encoder's
}

// Norms, attention (+ cross in the decoder), MLP, 2 bias tables (t5_layout).
double t5_param_count(const ModelConfig& c) {
    const double C = c.n_embd, F = c.n_inner, V = c.vocab_size, Cq = double(c.n_head) * c.head_dim();
    const double mlp = (c.gated_mlp() ? 3 : 2) * F * C;
    const double emlp = double(c.n_experts) * ((c.gated_mlp() ? 3 : 2) * double(c.expert_inner()) * C + C);
    double n = V * C * (c.tied ? 1 : 2) + 2.0 * c.rel_buckets * c.n_head + 2 * C;
    for (int l = 0; l < c.n_layer; l++) n += 2 * C + 4 * C * Cq + (c.moe_layer(l) ? emlp : mlp);
    for (int l = 0; l < c.n_dec_layer; l++) n += 3 * C + 8 * C * Cq + (c.moe_layer(l) ? emlp : mlp);
    return n;
  }

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
