// The model's forward and backward: the ops composed in order, then in reverse.
// Shapes: N = B*T tokens, C model width, F MLP width, V vocabulary,
// H heads, Hkv key/value heads, D head size.
#include <cstring>
#include <stdexcept>
#include <string>

#include "model/decoder/acts.h"
#include "model/lin.h"
#include "model/decoder/model.h"
#include "ops/attention.h"
#include "ops/cross_entropy.h"
#include "ops/dropout.h"
#include "ops/embedding.h"
#include "ops/gelu.h"
#include "ops/layernorm.h"
#include "ops/linear.h"
#include "ops/matmul.h"
#include "ops/bias.h"
#include "ops/residual.h"
#include "ops/rmsnorm.h"
#include "ops/rope.h"
#include "ops/swiglu.h"

namespace moe {

namespace {
constexpr size_t npos = LayerOffsets::npos;

// One dropout mask per (run seed, layer, site); layer -1 is the embedding.
uint64_t site_seed(uint64_t seed, int layer, int site) {
  return seed * 0x9E3779B97F4A7C15ull + uint64_t(layer + 1) * 0xD1B54A32D192ED03ull + uint64_t(site);
}

// Copies column block [c0, c0+w) of each row of src (N, ld) to dst (N, w), or back.
void copy_cols(float* dst, size_t ldd, const float* src, size_t lds, size_t N, size_t w) {
#pragma omp parallel for schedule(static)
  for (size_t n = 0; n < N; n++) std::memcpy(dst + n * ldd, src + n * lds, w * sizeof(float));
}
}  // namespace

const bf16* Model::to_bf16(bf16* dst, const float* src, size_t n) {
  f32_to_bf16(dst, src, n);
  return dst;
}

void Model::lin_fwd(float* out, const float* inp, const bf16* inp_bf, size_t W, size_t b, int N, int IC, int OC) {
  lin_forward(lin_buffers(), out, inp, inp_bf, W, b, N, IC, OC);
}

// dinp (N,IC) = dout · W (assigned, or added when acc_dinp); dW += dout^T · inp; db += sum dout.
void Model::lin_bwd(float* dinp, bool acc_dinp, const float* dout, const float* inp, const bf16* inp_bf, size_t W,
                    size_t b, int N, int IC, int OC) {
  lin_backward(lin_buffers(), dinp, acc_dinp, dout, inp, inp_bf, W, b, N, IC, OC);
}

LinearBuffers Model::lin_buffers() {
  LinearBuffers lb;
  lb.P = params_.data(), lb.Pbf = params_bf_.data(), lb.G = grads_.data();
  lb.dout_bf = acts_ ? acts_->dout_bf : nullptr, lb.use_bf16 = fopt_.compute == Compute::BF16;
  return lb;
}

void Model::norm_fwd(float* out, float* mean, float* rstd, const float* inp, size_t w, size_t b, size_t N) {
  const float* P = params_.data();
  const int C = cfg_.n_embd;
  if (cfg_.norm == NormKind::LayerNorm)
    layernorm_forward(out, mean, rstd, inp, P + w, b == npos ? nullptr : P + b, int(N), C, cfg_.norm_eps);
  else
    rmsnorm_forward(out, rstd, inp, P + w, int(N), C, cfg_.norm_eps);
}

void Model::layer_forward(int l, LayerActs& la, float* x_out) {
  const int B = B_, T = T_;
  const int C = cfg_.n_embd, F = cfg_.n_inner, H = cfg_.n_head, Hkv = cfg_.n_kv_head;
  const int D = cfg_.head_dim(), Cq = H * D, Ckv = Hkv * D;
  const size_t N = size_t(B) * T;
  const ForwardOptions& opt = fopt_;
  const bool bf = opt.compute == Compute::BF16;
  Acts& a = *acts_;
  const LayerOffsets& o = lay_[l];
  auto drop = [&](float* x, size_t n, int site) {
    if (opt.dropout > 0)
      dropout_forward(x, x, n, opt.dropout, site_seed(opt.dropout_seed, l, site), uint64_t(opt.token_offset) * C);
  };
  // attention: x_mid = x + drop(o(attn(rope(q), rope(k), v)))
  norm_fwd(la.ln1, la.ln1_mean, la.ln1_rstd, a.xs[l], o.norm1, o.norm1_b, N);
  if (bf) to_bf16(la.ln1_bf, la.ln1, N * C);
  if (cfg_.fused_qkv) {
    lin_fwd(la.qkv, la.ln1, la.ln1_bf, o.qkv, o.qkv_b, int(N), C, 3 * C);
    copy_cols(la.q, Cq, la.qkv, 3 * C, N, Cq);
    copy_cols(la.k, Ckv, la.qkv + C, 3 * C, N, Ckv);
    copy_cols(la.v, Ckv, la.qkv + 2 * C, 3 * C, N, Ckv);
  } else {
    lin_fwd(la.q, la.ln1, la.ln1_bf, o.q, npos, int(N), C, Cq);
    lin_fwd(la.k, la.ln1, la.ln1_bf, o.k, npos, int(N), C, Ckv);
    lin_fwd(la.v, la.ln1, la.ln1_bf, o.v, npos, int(N), C, Ckv);
  }
  if (cfg_.pos == PosKind::Rope) {
    rope_forward(la.q, la.q, B, T, H, D, cfg_.rope_theta, 0);
    rope_forward(la.k, la.k, B, T, Hkv, D, cfg_.rope_theta, 0);
  }
  attention_forward(la.atty, la.att, la.q, la.k, la.v, B, T, H, Hkv, D);
  if (bf) to_bf16(la.atty_bf, la.atty, N * Cq);
  lin_fwd(a.branch, la.atty, la.atty_bf, o.o, o.o_b, int(N), Cq, C);
  drop(a.branch, N * C, 1);
  residual_forward(la.x_mid, a.xs[l], a.branch, N * C);
  // MLP: x_out = x_mid + drop(down(act(ln2(x_mid))))
  norm_fwd(la.ln2, la.ln2_mean, la.ln2_rstd, la.x_mid, o.norm2, o.norm2_b, N);
  if (bf && !moe_[l]) to_bf16(la.ln2_bf, la.ln2, N * C);  // an MoE block converts its gathered rows
  if (MoeBlock* blk = moe_[l].get()) {
    // The same capacity and noise seed when the backward reruns it: the same routing and masks.
    blk->set_capacity_factor(opt.training ? cfg_.capacity_factor : cfg_.eval_capacity_factor);
    blk->set_noise(opt.training ? cfg_.router_jitter : 0.0f, opt.training ? cfg_.expert_dropout : 0.0f,
                   site_seed(opt.dropout_seed, l, 3), opt.token_offset);
    MoeWeights<float> w = moe_weights(l);
    MoeWeights<bf16> wb = moe_weights_bf16(l);
    if (moe_shared_) blk->swap_buffers(*moe_shared_);
    blk->reserve_buffers(int(N), grads_.numel() > 0, bf);  // once: no reallocation in later steps
    blk->forward(a.branch, la.ln2, int(N), w, bf ? &wb : nullptr);
    if (moe_shared_) blk->swap_buffers(*moe_shared_);
  } else {
    if (cfg_.mlp == MlpKind::Gelu) {
      lin_fwd(la.h1, la.ln2, la.ln2_bf, o.up, o.up_b, int(N), C, F);
      gelu_forward(la.act, la.h1, N * F);
    } else {
      lin_fwd(la.h1, la.ln2, la.ln2_bf, o.gate, npos, int(N), C, F);
      lin_fwd(la.h2, la.ln2, la.ln2_bf, o.up, npos, int(N), C, F);
      swiglu_forward(la.act, la.h1, la.h2, N * F);
    }
    if (bf) to_bf16(la.act_bf, la.act, N * F);
    lin_fwd(a.branch, la.act, la.act_bf, o.down, o.down_b, int(N), F, C);
  }
  drop(a.branch, N * C, 2);
  residual_forward(x_out, la.x_mid, a.branch, N * C);
}

float Model::forward(const int32_t* inputs, const int32_t* targets, int B, int T, const ForwardOptions& opt) {
  const int C = cfg_.n_embd, V = cfg_.vocab_size;
  const size_t N = size_t(B) * T;
  for (size_t i = 0; i < N && !opt.hidden_in; i++)
    if (inputs[i] < 0 || inputs[i] >= V)
      throw std::invalid_argument("token id " + std::to_string(inputs[i]) + " at position " + std::to_string(i) +
                                  " is outside the vocabulary [0, " + std::to_string(V) + ")");
  ensure_acts(B, T);
  fopt_ = opt;
  Acts& a = *acts_;
  inputs_copy_.clear();
  if (!opt.hidden_in) inputs_copy_.assign(inputs, inputs + N);
  targets_copy_.clear();
  if (targets && !opt.hidden_in) targets_copy_.assign(targets, targets + N);
  const bool bf = opt.compute == Compute::BF16;
  if (bf && !bf16_fresh_) {
    params_bf_.resize(params_.numel());
    f32_to_bf16(params_bf_.data(), params_.data(), params_.numel());
    bf16_fresh_ = true;
  }
  const float* P = params_.data();

  moe_loss_ = 0;
  if (opt.hidden_in) {
    std::memcpy(a.xs[0], opt.hidden_in, N * C * sizeof(float));
  } else {
    embedding_forward(a.xs[0], inputs, P + off_embed_, off_pos_ == npos ? nullptr : P + off_pos_, B, T, C);
    if (opt.dropout > 0)
      dropout_forward(a.xs[0], a.xs[0], N * C, opt.dropout, site_seed(opt.dropout_seed, -1, 0),
                      uint64_t(opt.token_offset) * C);
  }
  for (int l = 0; l < cfg_.n_layer; l++) {
    layer_forward(l, layer_acts(l), a.xs[l + 1]);
    if (const MoeBlock* blk = moe_[l].get()) moe_loss_ += blk->losses().aux + blk->losses().z;
  }
  norm_fwd(a.lnf, a.lnf_mean, a.lnf_rstd, a.xs[cfg_.n_layer], off_lnf_, off_lnf_b_, N);
  if (bf) to_bf16(a.lnf_bf, a.lnf, N * C);
  lin_fwd(a.logits, a.lnf, a.lnf_bf, off_head_, npos, int(N), C, V);
  logits_ = a.logits;
  losses_ = a.losses;
  n_valid_ = 0;
  if (!targets) return 0.0f;
  for (size_t i = 0; i < N; i++)
    if (targets[i] >= V)
      throw std::invalid_argument("target id " + std::to_string(targets[i]) + " at position " + std::to_string(i) +
                                  " is outside the vocabulary [0, " + std::to_string(V) + ")");
  crossentropy_forward(a.losses, a.lse, a.logits, targets, int(N), V);
  double sum = 0;
  for (size_t i = 0; i < N; i++)
    if (targets[i] >= 0) sum += a.losses[i], n_valid_++;
  return n_valid_ ? float(sum / n_valid_) : 0.0f;
}

const float* Model::hidden(int l) const {
  if (!acts_ || l < 0 || l > cfg_.n_layer) throw std::logic_error("Model::hidden: no forward, or no such layer");
  return acts_->xs[l];
}

const float* Model::last_mlp_output() const {
  if (!acts_) throw std::logic_error("Model::last_mlp_output without a forward");
  return acts_->branch;
}

// d a.dres (d x_out) -> d xs[l], through layer l's MLP and attention branches.
void Model::layer_backward(int l, LayerActs& la) {
  const int B = B_, T = T_;
  const int C = cfg_.n_embd, F = cfg_.n_inner, H = cfg_.n_head, Hkv = cfg_.n_kv_head;
  const int D = cfg_.head_dim(), Cq = H * D, Ckv = Hkv * D;
  const size_t N = size_t(B) * T;
  Acts& a = *acts_;
  const float* P = params_.data();
  float* G = grads_.data();
  const bool ln = cfg_.norm == NormKind::LayerNorm;
  const LayerOffsets& o = lay_[l];
  // dinp (assigned) of a norm whose input was `inp`; weight/bias gradients accumulate.
  auto norm_backward = [&](float* dinp, const float* dout, const float* inp, size_t w, size_t b, const float* mean,
                           const float* rstd) {
    if (ln)
      layernorm_backward(dinp, G + w, b == npos ? nullptr : G + b, dout, inp, P + w, mean, rstd, int(N), C);
    else
      rmsnorm_backward(dinp, G + w, dout, inp, P + w, rstd, int(N), C);
  };
  // The gradient of a dropped-out branch: the mask again, into dtmp.
  auto undrop = [&](const float* d, int site) -> const float* {
    if (fopt_.dropout <= 0) return d;
    dropout_backward(a.dtmp, d, N * C, fopt_.dropout, site_seed(fopt_.dropout_seed, l, site),
                     uint64_t(fopt_.token_offset) * C);
    return a.dtmp;
  };
  // MLP branch
  const float* dbranch = undrop(a.dres, 2);
  if (MoeBlock* blk = moe_[l].get()) {
    auto gp = [&](size_t off) { return off == npos ? nullptr : G + off; };
    MoeGrads<float> g{gp(o.router), gp(o.ew1), gp(o.eb1), gp(o.ew3), gp(o.ew2), gp(o.eb2)};
    if (moe_shared_) blk->swap_buffers(*moe_shared_);
    blk->backward(a.dln, g, dbranch, la.ln2, moe_weights(l), bwd_scale_);
    if (moe_shared_) blk->swap_buffers(*moe_shared_);
  } else {
    lin_bwd(a.dact, false, dbranch, la.act, la.act_bf, o.down, o.down_b, int(N), F, C);
    if (cfg_.mlp == MlpKind::Gelu) {
      gelu_backward(a.dh1, la.h1, a.dact, N * F);
      lin_bwd(a.dln, false, a.dh1, la.ln2, la.ln2_bf, o.up, o.up_b, int(N), C, F);
    } else {
      swiglu_backward(a.dh1, a.dh2, a.dact, la.h1, la.h2, N * F);
      lin_bwd(a.dln, false, a.dh1, la.ln2, la.ln2_bf, o.gate, npos, int(N), C, F);
      lin_bwd(a.dln, true, a.dh2, la.ln2, la.ln2_bf, o.up, npos, int(N), C, F);
    }
  }
  norm_backward(a.dtmp, a.dln, la.x_mid, o.norm2, o.norm2_b, la.ln2_mean, la.ln2_rstd);
  residual_forward(a.dres, a.dres, a.dtmp, N * C);  // d x_mid = d x_out + through the MLP
  // attention branch
  dbranch = undrop(a.dres, 1);
  lin_bwd(a.datty, false, dbranch, la.atty, la.atty_bf, o.o, o.o_b, int(N), Cq, C);
  attention_backward(a.dq, a.dk, a.dv, a.datty, la.q, la.k, la.v, la.att, B, T, H, Hkv, D);
  if (cfg_.pos == PosKind::Rope) {
    rope_backward(a.dq, a.dq, B, T, H, D, cfg_.rope_theta, 0);
    rope_backward(a.dk, a.dk, B, T, Hkv, D, cfg_.rope_theta, 0);
  }
  if (cfg_.fused_qkv) {
    copy_cols(a.dqkv, 3 * C, a.dq, Cq, N, Cq);
    copy_cols(a.dqkv + C, 3 * C, a.dk, Ckv, N, Ckv);
    copy_cols(a.dqkv + 2 * C, 3 * C, a.dv, Ckv, N, Ckv);
    lin_bwd(a.dln, false, a.dqkv, la.ln1, la.ln1_bf, o.qkv, o.qkv_b, int(N), C, 3 * C);
  } else {
    lin_bwd(a.dln, false, a.dq, la.ln1, la.ln1_bf, o.q, npos, int(N), C, Cq);
    lin_bwd(a.dln, true, a.dk, la.ln1, la.ln1_bf, o.k, npos, int(N), C, Ckv);
    lin_bwd(a.dln, true, a.dv, la.ln1, la.ln1_bf, o.v, npos, int(N), C, Ckv);
  }
  norm_backward(a.dtmp, a.dln, a.xs[l], o.norm1, o.norm1_b, la.ln1_mean, la.ln1_rstd);
  residual_forward(a.dres, a.dres, a.dtmp, N * C);  // d x_in = d x_mid + through attention
}

void Model::backward(float loss_scale) {
  if (!acts_ || targets_copy_.empty()) throw std::logic_error("Model::backward without a forward with targets");
  if (grads_.numel() != params_.numel()) throw std::logic_error("Model::backward on an inference-only model");
  const int B = B_, T = T_;
  const int C = cfg_.n_embd, V = cfg_.vocab_size;
  const size_t N = size_t(B) * T;
  Acts& a = *acts_;
  const float* P = params_.data();
  float* G = grads_.data();
  const int32_t* targets = targets_copy_.data();
  bwd_scale_ = loss_scale;

  // loss = scale * mean over valid targets of the token losses
  for (size_t i = 0; i < N; i++) a.dlosses[i] = targets[i] >= 0 ? loss_scale / float(n_valid_) : 0.0f;
  crossentropy_backward(a.logits, a.dlosses, a.logits, a.lse, targets, int(N), V);  // in place: logits -> dlogits
  lin_bwd(a.dln, false, a.logits, a.lnf, a.lnf_bf, off_head_, npos, int(N), C, V);
  if (cfg_.norm == NormKind::LayerNorm)
    layernorm_backward(a.dres, G + off_lnf_, off_lnf_b_ == npos ? nullptr : G + off_lnf_b_, a.dln,
                       a.xs[cfg_.n_layer], P + off_lnf_, a.lnf_mean, a.lnf_rstd, int(N), C);
  else
    rmsnorm_backward(a.dres, G + off_lnf_, a.dln, a.xs[cfg_.n_layer], P + off_lnf_, a.lnf_rstd, int(N), C);

  for (int l = cfg_.n_layer - 1; l >= 0; l--) {
    // Recompute: rerun the layer's forward from its kept input (x_out is rewritten
    // with the same values), then its backward.
    if (acts_recompute_) layer_forward(l, layer_acts(l), a.xs[l + 1]);
    layer_backward(l, layer_acts(l));
  }
  const float* demb = a.dres;
  if (fopt_.dropout > 0) {
    dropout_backward(a.dtmp, a.dres, N * C, fopt_.dropout, site_seed(fopt_.dropout_seed, -1, 0),
                     uint64_t(fopt_.token_offset) * C);
    demb = a.dtmp;
  }
  embedding_backward(G + off_embed_, off_pos_ == npos ? nullptr : G + off_pos_, demb, inputs_copy_.data(), B, T, C);
  logits_ = nullptr;  // the logits buffer now holds their gradient
}

}  // namespace moe
