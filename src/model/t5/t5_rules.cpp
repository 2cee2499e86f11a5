// The t5 families' config rules (model/family.h ConfigRules): their own checks, and the
// parameter and activation arithmetic of a config, without the model.
#include <algorithm>
#include <cmath>
#include <string>

#include "model/t5/t5_family.h"

namespace moe {

bool t5_is_switch(const ModelConfig& c) { return c.family == "switch_transformers"; }

namespace {

void t5_validate(const ModelConfig& c, const std::function<void(bool, const std::string&)>& need) {
  auto at_most = [&](int64_t v, int64_t max, const char* field) {
    need(v <= max, std::string(field) + " is " + std::to_string(v) + ", more than the supported " + std::to_string(max));
  };
  at_most(c.n_dec_layer, 1024, "decoder layer count (num_decoder_layers)");
  need(c.n_dec_layer > 0, "an encoder-decoder model needs decoder layers (num_decoder_layers)");
  need(c.pos == PosKind::Relative && c.norm == NormKind::RMSNorm && !c.bias && !c.fused_qkv && c.n_kv_head == c.n_head,
       "t5 parts: relative positions, RMS norm, no biases, separate q/k/v, one key/value head per head");
  need(c.mlp == MlpKind::Relu || c.mlp == MlpKind::GeGLU, "t5 MLP must be relu or gated-gelu");
  // The decoder's log-spaced buckets start at max_exact = buckets / 2: HF divides by
  // log(max_distance / max_exact), which must be positive.
  need(c.rel_buckets >= 4 && c.rel_buckets <= 4096 && c.rel_buckets % 2 == 0,
       "relative_attention_num_buckets must be an even number in [4, 4096]");
  need(c.rel_max_distance > c.rel_buckets / 2 && c.rel_max_distance <= (1 << 20),
       "relative_attention_max_distance must be above half the buckets (the decoder's exact range) and at most 2^20");
  need(c.pad_id >= 0 && c.pad_id < c.vocab_size, "pad_token_id must be a token id inside the vocabulary");
  if (t5_is_switch(c))
    need(c.is_moe() && c.top_k == 1 && !c.moe_renormalize && !c.expert_choice && c.mlp == MlpKind::Relu &&
             c.switch_capacity > 0 && (c.moe_inner == 0 || c.moe_inner == c.n_inner),
         "switch_transformers: num_experts > 0, top-1 routing with raw gates in both stacks, relu experts of d_ff "
         "and an expert_capacity > 0");
  if (t5_is_switch(c))
    need(switch_sparse_step(c) > 0, "switch_transformers: the MoE layers must be every sparse_step-th layer "
                                    "(i % step == 1) of both stacks");
  need(c.bos_id >= 0 && c.eos_id >= 0, "decoder_start_token_id and eos_token_id must be token ids inside the vocabulary");
  at_most(int64_t(c.n_head) * c.head_dim(), int64_t(1) << 20, "attention width (num_heads x d_kv)");
}

}  // namespace

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

const ConfigRules& t5_rules() {
  static const ConfigRules r{t5_validate, "hidden size (d_model)", "layer count (num_layers)", "MLP width (d_ff)",
                             t5_param_count, t5_arena_bytes};
  return r;
}

}  // namespace moe
