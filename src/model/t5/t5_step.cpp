// T5's forward and backward: the ops composed in order, then in reverse.
// Shapes: Ne = B*Te encoder tokens, Nd = B*Td decoder tokens, C model width,
// Cq = H*D attention width (T5's d_kv need not be C/H), F MLP width, V vocabulary.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "model/lin.h"
#include "model/t5/t5_family.h"
#include "model/t5/t5.h"
#include "model/t5/t5_acts.h"
#include "ops/attention_general.h"
#include "ops/cross_entropy.h"
#include "ops/embedding.h"
#include "ops/relpos.h"
#include "ops/relu.h"
#include "ops/residual.h"
#include "ops/rmsnorm.h"

namespace moe {

namespace {
constexpr size_t npos = LayerOffsets::npos;

// Hands out 16-float aligned slices of one buffer; the first pass (base null) counts.
template <typename T>
struct Slicer {
  T* base = nullptr;
  size_t used = 0;
  T* take(size_t n) {
    used = (used + 15) / 16 * 16;
    T* p = base ? base + used : nullptr;
    used += n;
    return p;
  }
};
}  // namespace

LinearBuffers T5Model::lin_buffers() {
  LinearBuffers lb;
  lb.P = params_.data(), lb.Pbf = params_bf_.data(), lb.G = grads_.data();
  lb.dout_bf = acts_ ? acts_->dout_bf : nullptr, lb.use_bf16 = fopt_.compute == Compute::BF16;
  return lb;
}

void T5Model::ensure_acts(int B, int Te, int Td) {
  if (acts_ && B == B_ && Te == Te_ && Td == Td_) return;
  for (int T : {Te, Td})
    if (T < 1 || T > cfg_.n_ctx)
      throw std::invalid_argument("sequence length " + std::to_string(T) + " is outside the model's [1, " +
                                  std::to_string(cfg_.n_ctx) + "] (n_positions)");
  const size_t C = cfg_.n_embd, F = cfg_.n_inner, V = cfg_.vocab_size, H = cfg_.n_head;
  const size_t Cq = H * cfg_.head_dim();
  const size_t Ne = size_t(B) * Te, Nd = size_t(B) * Td, Nm = std::max(Ne, Nd), Tm = std::max(Te, Td);
  const bool gated = cfg_.gated_mlp();
  auto carve = [&](Slicer<float>& f, Slicer<bf16>& h, Acts& a) {
    auto layer = [&](LayerActs& l, size_t N, size_t T, bool dec) {
      l.ln1 = f.take(N * C), l.ln1_rstd = f.take(N);
      l.q = f.take(N * Cq), l.k = f.take(N * Cq), l.v = f.take(N * Cq);
      l.att = f.take(size_t(B) * H * T * T), l.atty = f.take(N * Cq), l.x_mid = f.take(N * C);
      l.lnx = l.lnx_rstd = l.xq = l.xk = l.xv = l.xatt = l.xatty = l.x_mid2 = nullptr;
      l.lnx_bf = l.xatty_bf = nullptr;
      if (dec) {
        l.lnx = f.take(N * C), l.lnx_rstd = f.take(N), l.xq = f.take(N * Cq);
        l.xk = f.take(Ne * Cq), l.xv = f.take(Ne * Cq);
        l.xatt = f.take(size_t(B) * H * T * Te), l.xatty = f.take(N * Cq), l.x_mid2 = f.take(N * C);
        l.lnx_bf = h.take(N * C), l.xatty_bf = h.take(N * Cq);
      }
      l.ln2 = f.take(N * C), l.ln2_rstd = f.take(N);
      l.h1 = f.take(N * F), l.h2 = gated ? f.take(N * F) : nullptr, l.act = f.take(N * F);
      l.ln1_bf = h.take(N * C), l.atty_bf = h.take(N * Cq), l.ln2_bf = h.take(N * C), l.act_bf = h.take(N * F);
    };
    a.enc.resize(cfg_.n_layer), a.dec.resize(cfg_.n_dec_layer);
    for (auto& l : a.enc) layer(l, Ne, Te, false);
    for (auto& l : a.dec) layer(l, Nd, Td, true);
    a.xe.resize(cfg_.n_layer + 1), a.xd.resize(cfg_.n_dec_layer + 1);
    for (auto& x : a.xe) x = f.take(Ne * C);
    for (auto& x : a.xd) x = f.take(Nd * C);
    a.bias_enc = f.take(H * Te * Te), a.bias_dec = f.take(H * Td * Td);
    a.enc_out = f.take(Ne * C), a.enc_rstd = f.take(Ne), a.dec_out = f.take(Nd * C), a.dec_rstd = f.take(Nd);
    a.head_in = cfg_.tied ? f.take(Nd * C) : a.dec_out;
    a.enc_out_bf = h.take(Ne * C), a.head_in_bf = h.take(Nd * C);
    a.logits = f.take(Nd * V), a.losses = f.take(Nd), a.lse = f.take(Nd), a.dlosses = f.take(Nd);
    a.branch = f.take(Nm * C);
    a.dres = f.take(Nm * C), a.dtmp = f.take(Nm * C), a.dln = f.take(Nm * C), a.datty = f.take(Nm * Cq);
    a.dq = f.take(Nm * Cq), a.dk = f.take(Nm * Cq), a.dv = f.take(Nm * Cq);
    a.dscores = f.take(size_t(B) * H * Tm * Tm);
    a.dact = f.take(Nm * F), a.dh1 = f.take(Nm * F), a.dh2 = gated ? f.take(Nm * F) : nullptr;
    a.denc = f.take(Ne * C);
    a.dout_bf = h.take(Nm * std::max({V, C, F, Cq}));
  };
  acts_.reset();
  auto a = std::make_unique<Acts>();
  Slicer<float> fc;
  Slicer<bf16> hc;
  carve(fc, hc, *a);
  a->fstore.assign(fc.used, 0.0f);
  a->bstore.assign(hc.used, bf16{});
  Slicer<float> f{a->fstore.data(), 0};
  Slicer<bf16> h{a->bstore.data(), 0};
  carve(f, h, *a);
  acts_ = std::move(a);
  B_ = B, Te_ = Te, Td_ = Td;
}

void T5Model::mlp_forward(const LayerOffsets& o, LayerActs& la, float* out, int N) {
  const int C = cfg_.n_embd, F = cfg_.n_inner;
  const LinearBuffers lb = lin_buffers();
  const size_t NF = size_t(N) * F;
  if (cfg_.mlp == MlpKind::GeGLU) {
    lin_forward(lb, la.h1, la.ln2, la.ln2_bf, o.gate, npos, N, C, F);
    lin_forward(lb, la.h2, la.ln2, la.ln2_bf, o.up, npos, N, C, F);
    geglu_forward(la.act, la.h1, la.h2, NF);
  } else {
    lin_forward(lb, la.h1, la.ln2, la.ln2_bf, o.up, npos, N, C, F);
    relu_forward(la.act, la.h1, NF);
  }
  if (lb.use_bf16) f32_to_bf16(la.act_bf, la.act, NF);
  lin_forward(lb, out, la.act, la.act_bf, o.down, npos, N, F, C);
}

void T5Model::layer_forward(Stack s, int l) {
  Acts& a = *acts_;
  const bool dec = s == Dec;
  const int B = B_, T = dec ? Td_ : Te_, C = cfg_.n_embd, H = cfg_.n_head, D = cfg_.head_dim(), Cq = H * D;
  const int N = B * T, Ne = B * Te_;
  const LinearBuffers lb = lin_buffers();
  const float* P = params_.data();
  const float eps = cfg_.norm_eps;
  const T5LayerOffsets& lo = dec ? lay_.dec[l] : lay_.enc[l];
  const LayerOffsets& o = lo.b;
  LayerActs& la = dec ? a.dec[l] : a.enc[l];
  const float* x = dec ? a.xd[l] : a.xe[l];
  float* x_out = dec ? a.xd[l + 1] : a.xe[l + 1];
  auto bf = [&](bf16* dst, const float* src, size_t n) {
    if (lb.use_bf16) f32_to_bf16(dst, src, n);
  };
  // self-attention: x_mid = x + o(attn(q, k, v) with the stack's position bias)
  rmsnorm_forward(la.ln1, la.ln1_rstd, x, P + o.norm1, N, C, eps);
  bf(la.ln1_bf, la.ln1, size_t(N) * C);
  lin_forward(lb, la.q, la.ln1, la.ln1_bf, o.q, npos, N, C, Cq);
  lin_forward(lb, la.k, la.ln1, la.ln1_bf, o.k, npos, N, C, Cq);
  lin_forward(lb, la.v, la.ln1, la.ln1_bf, o.v, npos, N, C, Cq);
  attention_general_forward(la.atty, la.att, la.q, la.k, la.v, dec ? a.bias_dec : a.bias_enc, B, T, T, H, D, 1.0f,
                            dec);
  bf(la.atty_bf, la.atty, size_t(N) * Cq);
  lin_forward(lb, a.branch, la.atty, la.atty_bf, o.o, npos, N, Cq, C);
  residual_forward(la.x_mid, x, a.branch, size_t(N) * C);
  const float* h = la.x_mid;
  if (dec) {  // cross-attention: x_mid2 = x_mid + o(attn(q(x_mid), k(enc), v(enc))), no position bias
    rmsnorm_forward(la.lnx, la.lnx_rstd, la.x_mid, P + lo.xnorm, N, C, eps);
    bf(la.lnx_bf, la.lnx, size_t(N) * C);
    lin_forward(lb, la.xq, la.lnx, la.lnx_bf, lo.xq, npos, N, C, Cq);
    lin_forward(lb, la.xk, a.enc_out, a.enc_out_bf, lo.xk, npos, Ne, C, Cq);
    lin_forward(lb, la.xv, a.enc_out, a.enc_out_bf, lo.xv, npos, Ne, C, Cq);
    attention_general_forward(la.xatty, la.xatt, la.xq, la.xk, la.xv, nullptr, B, T, Te_, H, D, 1.0f, false);
    bf(la.xatty_bf, la.xatty, size_t(N) * Cq);
    lin_forward(lb, a.branch, la.xatty, la.xatty_bf, lo.xo, npos, N, Cq, C);
    residual_forward(la.x_mid2, la.x_mid, a.branch, size_t(N) * C);
    h = la.x_mid2;
  }
  rmsnorm_forward(la.ln2, la.ln2_rstd, h, P + o.norm2, N, C, eps);
  if (MoeBlock* blk = (dec ? dec_moe_ : enc_moe_)[size_t(l)].get()) {
    const bool ec = blk->spec().expert_choice;
    const bool train = fopt_.training;
    blk->set_capacity_factor(ec ? cfg_.enc_capacity_factor : train ? cfg_.capacity_factor : cfg_.eval_capacity_factor);
    // Each sequence a group: the experts choose among its tokens (expert choice), or its
    // tokens fill each expert's capacity in order (HF switch_transformers).
    if (ec || t5_is_switch(cfg_)) blk->set_choice_group(T);
    const int slot = dec ? cfg_.n_layer + l : l;
    blk->set_noise(train ? cfg_.router_jitter : 0.0f, train ? cfg_.expert_dropout : 0.0f,
                   fopt_.dropout_seed * 0x9E3779B97F4A7C15ull + uint64_t(slot + 1), first_row_ * T);
    const MoeWeights<float> w = moe_weights(o);
    const MoeWeights<bf16> wb = moe_weights_bf16(o);
    blk->reserve_buffers(N, grads_.numel() > 0, lb.use_bf16);  // once: no reallocation in later steps
    blk->forward(a.branch, la.ln2, N, w, lb.use_bf16 ? &wb : nullptr);  // the block converts its rows to bf16
    moe_loss_ += blk->losses().aux + blk->losses().z;
  } else {
    bf(la.ln2_bf, la.ln2, size_t(N) * C);
    mlp_forward(o, la, a.branch, N);
  }
  residual_forward(x_out, h, a.branch, size_t(N) * C);
}

MoeWeights<float> T5Model::moe_weights(const LayerOffsets& o) const {
  const float* P = params_.data();
  return MoeWeights<float>{P + o.router, P + o.ew1, nullptr, o.ew3 == npos ? nullptr : P + o.ew3, P + o.ew2, nullptr};
}

MoeWeights<bf16> T5Model::moe_weights_bf16(const LayerOffsets& o) const {
  const bf16* P = params_bf_.data();
  return MoeWeights<bf16>{nullptr, P + o.ew1, nullptr, o.ew3 == npos ? nullptr : P + o.ew3, P + o.ew2, nullptr};
}

float T5Model::forward(const int32_t* enc, const int32_t* dec, const int32_t* targets, int B, int Te, int Td,
                       const ForwardOptions& opt) {
  if (opt.dropout > 0) throw std::invalid_argument("t5: dropout is not implemented (use --dropout 0)");
  if (opt.hidden_in) throw std::invalid_argument("t5: ForwardOptions::hidden_in is not implemented");
  const int C = cfg_.n_embd, V = cfg_.vocab_size, H = cfg_.n_head;
  if (B < 1) throw std::invalid_argument("t5: batch size must be positive");
  ensure_acts(B, Te, Td);
  const size_t Ne = size_t(B) * Te, Nd = size_t(B) * Td;
  auto check_ids = [&](const int32_t* ids, size_t n, const char* what) {
    for (size_t i = 0; i < n; i++)
      if (ids[i] < 0 || ids[i] >= V)
        throw std::invalid_argument(std::string(what) + " token id " + std::to_string(ids[i]) + " at position " +
                                    std::to_string(i) + " is outside the vocabulary [0, " + std::to_string(V) + ")");
  };
  check_ids(enc, Ne, "encoder");
  check_ids(dec, Nd, "decoder");
  if (targets)
    for (size_t i = 0; i < Nd; i++)
      if (targets[i] >= V)
        throw std::invalid_argument("target id " + std::to_string(targets[i]) + " at position " + std::to_string(i) +
                                    " is outside the vocabulary [0, " + std::to_string(V) + ")");
  fopt_ = opt;
  enc_copy_.assign(enc, enc + Ne);
  dec_copy_.assign(dec, dec + Nd);
  targets_copy_.clear();
  if (targets) targets_copy_.assign(targets, targets + Nd);
  const bool bfc = opt.compute == Compute::BF16;
  if (bfc && !bf16_fresh_) {
    params_bf_.resize(params_.numel());
    f32_to_bf16(params_bf_.data(), params_.data(), params_.numel());
    bf16_fresh_ = true;
  }
  Acts& a = *acts_;
  const float* P = params_.data();
  const LinearBuffers lb = lin_buffers();
  const int NB = cfg_.rel_buckets, MD = cfg_.rel_max_distance;
  moe_loss_ = 0;

  embedding_forward(a.xe[0], enc, P + lay_.shared, nullptr, B, Te, C);
  relpos_bias_forward(a.bias_enc, P + lay_.enc_rel, Te, Te, H, NB, MD, true, 0);
  for (int l = 0; l < cfg_.n_layer; l++) layer_forward(Enc, l);
  rmsnorm_forward(a.enc_out, a.enc_rstd, a.xe[cfg_.n_layer], P + lay_.enc_norm, int(Ne), C, cfg_.norm_eps);
  if (bfc) f32_to_bf16(a.enc_out_bf, a.enc_out, Ne * C);

  embedding_forward(a.xd[0], dec, P + lay_.shared, nullptr, B, Td, C);
  relpos_bias_forward(a.bias_dec, P + lay_.dec_rel, Td, Td, H, NB, MD, false, 0);
  for (int l = 0; l < cfg_.n_dec_layer; l++) layer_forward(Dec, l);
  rmsnorm_forward(a.dec_out, a.dec_rstd, a.xd[cfg_.n_dec_layer], P + lay_.dec_norm, int(Nd), C, cfg_.norm_eps);
  if (cfg_.tied) {  // HF: sequence_output * d_model^-0.5 before the tied head
    const float sc = float(1.0 / std::sqrt(double(C)));
    for (size_t i = 0; i < Nd * C; i++) a.head_in[i] = a.dec_out[i] * sc;
  }
  if (bfc) f32_to_bf16(a.head_in_bf, a.head_in, Nd * C);
  lin_forward(lb, a.logits, a.head_in, a.head_in_bf, lay_.head, npos, int(Nd), C, V);
  logits_ = a.logits;
  losses_ = a.losses;
  n_valid_ = 0;
  if (!targets) return 0.0f;
  crossentropy_forward(a.losses, a.lse, a.logits, targets, int(Nd), V);
  double sum = 0;
  for (size_t i = 0; i < Nd; i++)
    if (targets[i] >= 0) sum += a.losses[i], n_valid_++;
  return n_valid_ ? float(sum / n_valid_) : 0.0f;
}

void T5Model::mlp_backward(const LayerOffsets& o, LayerActs& la, const float* dout, float* dln, int N) {
  Acts& a = *acts_;
  const int C = cfg_.n_embd, F = cfg_.n_inner;
  const LinearBuffers lb = lin_buffers();
  const size_t NF = size_t(N) * F;
  lin_backward(lb, a.dact, false, dout, la.act, la.act_bf, o.down, npos, N, F, C);
  if (cfg_.mlp == MlpKind::GeGLU) {
    geglu_backward(a.dh1, a.dh2, a.dact, la.h1, la.h2, NF);
    lin_backward(lb, dln, false, a.dh1, la.ln2, la.ln2_bf, o.gate, npos, N, C, F);
    lin_backward(lb, dln, true, a.dh2, la.ln2, la.ln2_bf, o.up, npos, N, C, F);
  } else {
    relu_backward(a.dh1, la.h1, a.dact, NF);
    lin_backward(lb, dln, false, a.dh1, la.ln2, la.ln2_bf, o.up, npos, N, C, F);
  }
}

// a.dres holds d x_out on entry and d x (the layer's input) on return; a decoder layer
// adds its cross-attention's gradient of the encoder output into a.denc.
void T5Model::layer_backward(Stack s, int l) {
  Acts& a = *acts_;
  const bool dec = s == Dec;
  const int B = B_, T = dec ? Td_ : Te_, C = cfg_.n_embd, H = cfg_.n_head, D = cfg_.head_dim(), Cq = H * D;
  const int N = B * T, Ne = B * Te_;
  const size_t NC = size_t(N) * C;
  const LinearBuffers lb = lin_buffers();
  const float* P = params_.data();
  float* G = grads_.data();
  const T5LayerOffsets& lo = dec ? lay_.dec[l] : lay_.enc[l];
  const LayerOffsets& o = lo.b;
  LayerActs& la = dec ? a.dec[l] : a.enc[l];
  const float* x = dec ? a.xd[l] : a.xe[l];
  const float* h = dec ? la.x_mid2 : la.x_mid;
  // MLP (or MoE block)
  if (MoeBlock* blk = (dec ? dec_moe_ : enc_moe_)[size_t(l)].get()) {
    auto gp = [&](size_t off) { return off == npos ? nullptr : G + off; };
    MoeGrads<float> g{gp(o.router), gp(o.ew1), nullptr, gp(o.ew3), gp(o.ew2), nullptr};
    blk->backward(a.dln, g, a.dres, la.ln2, moe_weights(o), bwd_scale_);
  } else {
    mlp_backward(o, la, a.dres, a.dln, N);
  }
  rmsnorm_backward(a.dtmp, G + o.norm2, a.dln, h, P + o.norm2, la.ln2_rstd, N, C);
  residual_forward(a.dres, a.dres, a.dtmp, NC);  // d h
  if (dec) {  // cross-attention
    lin_backward(lb, a.datty, false, a.dres, la.xatty, la.xatty_bf, lo.xo, npos, N, Cq, C);
    attention_general_backward(a.dq, a.dk, a.dv, nullptr, a.datty, la.xq, la.xk, la.xv, la.xatt, B, T, Te_, H, D,
                               1.0f, false);
    lin_backward(lb, a.denc, true, a.dk, a.enc_out, a.enc_out_bf, lo.xk, npos, Ne, C, Cq);
    lin_backward(lb, a.denc, true, a.dv, a.enc_out, a.enc_out_bf, lo.xv, npos, Ne, C, Cq);
    lin_backward(lb, a.dln, false, a.dq, la.lnx, la.lnx_bf, lo.xq, npos, N, C, Cq);
    rmsnorm_backward(a.dtmp, G + lo.xnorm, a.dln, la.x_mid, P + lo.xnorm, la.lnx_rstd, N, C);
    residual_forward(a.dres, a.dres, a.dtmp, NC);  // d x_mid
  }
  // self-attention, and the stack's position bias through the scores
  lin_backward(lb, a.datty, false, a.dres, la.atty, la.atty_bf, o.o, npos, N, Cq, C);
  attention_general_backward(a.dq, a.dk, a.dv, a.dscores, a.datty, la.q, la.k, la.v, la.att, B, T, T, H, D, 1.0f,
                             dec);
  relpos_bias_backward(G + (dec ? lay_.dec_rel : lay_.enc_rel), a.dscores, B, T, T, H, cfg_.rel_buckets,
                       cfg_.rel_max_distance, !dec, 0);
  lin_backward(lb, a.dln, false, a.dq, la.ln1, la.ln1_bf, o.q, npos, N, C, Cq);
  lin_backward(lb, a.dln, true, a.dk, la.ln1, la.ln1_bf, o.k, npos, N, C, Cq);
  lin_backward(lb, a.dln, true, a.dv, la.ln1, la.ln1_bf, o.v, npos, N, C, Cq);
  rmsnorm_backward(a.dtmp, G + o.norm1, a.dln, x, P + o.norm1, la.ln1_rstd, N, C);
  residual_forward(a.dres, a.dres, a.dtmp, NC);  // d x
}

void T5Model::backward(float loss_scale) {
  if (!acts_ || targets_copy_.empty()) throw std::logic_error("T5Model::backward without a forward with targets");
  if (grads_.numel() != params_.numel()) throw std::logic_error("T5Model::backward on an inference-only model");
  Acts& a = *acts_;
  const int B = B_, C = cfg_.n_embd, V = cfg_.vocab_size;
  const size_t Ne = size_t(B) * Te_, Nd = size_t(B) * Td_;
  const float* P = params_.data();
  float* G = grads_.data();
  const LinearBuffers lb = lin_buffers();
  const int32_t* targets = targets_copy_.data();
  bwd_scale_ = loss_scale;
  for (size_t i = 0; i < Nd; i++) a.dlosses[i] = targets[i] >= 0 ? loss_scale / float(n_valid_) : 0.0f;
  crossentropy_backward(a.logits, a.dlosses, a.logits, a.lse, targets, int(Nd), V);  // in place
  lin_backward(lb, a.dln, false, a.logits, a.head_in, a.head_in_bf, lay_.head, npos, int(Nd), C, V);
  if (cfg_.tied) {
    const float sc = float(1.0 / std::sqrt(double(C)));
    for (size_t i = 0; i < Nd * C; i++) a.dln[i] *= sc;
  }
  rmsnorm_backward(a.dres, G + lay_.dec_norm, a.dln, a.xd[cfg_.n_dec_layer], P + lay_.dec_norm, a.dec_rstd, int(Nd),
                   C);
  std::memset(a.denc, 0, Ne * C * sizeof(float));
  for (int l = cfg_.n_dec_layer - 1; l >= 0; l--) layer_backward(Dec, l);
  embedding_backward(G + lay_.shared, nullptr, a.dres, dec_copy_.data(), B, Td_, C);
  rmsnorm_backward(a.dres, G + lay_.enc_norm, a.denc, a.xe[cfg_.n_layer], P + lay_.enc_norm, a.enc_rstd, int(Ne), C);
  for (int l = cfg_.n_layer - 1; l >= 0; l--) layer_backward(Enc, l);
  embedding_backward(G + lay_.shared, nullptr, a.dres, enc_copy_.data(), B, Te_, C);
  logits_ = nullptr;  // the logits buffer now holds their gradient
}

}  // namespace moe
