// The decoder families' config rules (model/family.h ConfigRules): their own checks,
// and the parameter and activation arithmetic of a config, without the model.
#include <algorithm>
#include <cmath>

#include "model/decoder/decoder.h"

namespace moe {

namespace {

void decoder_validate(const ModelConfig& c, const std::function<void(bool, const std::string&)>& need) {
  need(c.n_dec_layer == 0 && c.d_kv == 0 && c.pos != PosKind::Relative && c.mlp != MlpKind::Relu &&
           c.mlp != MlpKind::GeGLU,
       "decoder-only families have no decoder stack, d_kv, relative positions or T5 MLPs");
  if (c.n_experts > 0)
    need(!c.expert_choice,
         "expert-choice routing is not causal (an expert picks its tokens from the whole batch, so a token's "
         "output depends on later tokens): a decoder must use tokens-choose top-k routing");
}

}  // namespace

double decoder_param_count(const ModelConfig& c) {
  const double C = c.n_embd, F = c.n_inner, V = c.vocab_size, D = double(c.n_embd / std::max(1, c.n_head));
  const double Cq = c.n_head * D, Ckv = c.n_kv_head * D, b = c.bias ? 1 : 0;
  const double gated = c.gated_mlp() ? 1 : 0;
  double n = V * C;                                   // token embedding
  if (c.pos == PosKind::Learned) n += double(c.n_ctx) * C;
  for (int l = 0; l < c.n_layer; l++) {
    n += C * (1 + b) * 2;                             // two norms
    n += c.fused_qkv ? 3 * C * C + b * 3 * C : (Cq + 2 * Ckv) * C;
    n += C * Cq + b * C;                              // output projection
    if (c.moe_layer(l)) {
      const double E = c.n_experts, Fe = c.expert_inner();
      n += E * C + E * ((2 + gated) * Fe * C + b * (Fe + C));
    } else {
      n += (2 + gated) * F * C + b * (F + C);
    }
  }
  n += C * (1 + b);                                   // final norm
  if (!c.tied) n += V * C;                            // lm_head
  return n;
}

// Bytes of the activation arena (model.cpp, ensure_acts) for N = B T tokens, without
// the 64-byte alignment of each slice (< 64 bytes x ~40 slices). `layer`: one layer's set.
double decoder_arena_bytes(const ModelConfig& c, int B, int T, bool recompute, double* layer) {
  const double N = double(B) * T, C = c.n_embd, F = c.n_inner, V = c.vocab_size;
  const double D = double(c.n_embd / std::max(1, c.n_head)), Cq = c.n_head * D, Ckv = c.n_kv_head * D;
  const double A = double(B) * c.n_head * double(T) * T;  // attention probabilities
  const double swiglu = c.gated_mlp() ? 1 : 0, fused = c.fused_qkv ? 1 : 0;
  // ln1, x_mid, ln2 (N,C); means and rstds; qkv; q, atty; k, v; MLP h1, h2, act; bf16 copies.
  *layer = 4 * (N * (3 * C + 4 + fused * 3 * C + 2 * Cq + 2 * Ckv + (2 + swiglu) * F) + A) +
           2 * N * (2 * C + Cq + F);
  const double sets = recompute ? 1 : c.n_layer;
  // L+1 residual streams; final norm (+ bf16); logits, losses, lse, dlosses; branch;
  // backward scratch dres, dtmp, dln, datty, dq, dk, dv, dqkv, dact, dh1, dh2, dout_bf.
  const double rest = 4 * N * ((c.n_layer + 1) * C + C + 2 + V + 3 + C + 3 * C + 2 * Cq + 2 * Ckv + fused * 3 * C +
                               (2 + swiglu) * F) +
                      2 * N * C + 2 * N * std::max({V, 3 * C, F});
  return sets * *layer + rest;
}

const ConfigRules& decoder_rules() {
  static const ConfigRules r{decoder_validate,
                             "hidden size (n_embd / hidden_size)",
                             "layer count (n_layer / num_hidden_layers)",
                             "MLP width (n_inner / intermediate_size)",
                             decoder_param_count,
                             decoder_arena_bytes};
  return r;
}

}  // namespace moe
