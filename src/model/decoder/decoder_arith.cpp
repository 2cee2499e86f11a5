// The decoder families' arithmetic without allocation: parameters (total, active per
// token), training FLOPs per token and the activation arena's bytes (Arch hooks).
#include "model/decoder/decoder.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "model/decoder/model.h"

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

ParamCounts decoder_param_counts(const ModelConfig& c) {
  ParamCounts pc;
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

}  // namespace moe
