#include "model/t5/t5_generate.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "ops/attention_general.h"
#include "ops/embedding.h"
#include "ops/linear.h"
#include "ops/relpos.h"
#include "ops/relu.h"
#include "ops/residual.h"
#include "ops/rmsnorm.h"

namespace moe {

T5Decoder::T5Decoder(T5Model& m, const std::vector<int32_t>& input) : m_(m), Te_(int(input.size())) {
  const ModelConfig& c = m.config();
  if (input.empty()) throw std::invalid_argument("t5 decoding: empty encoder input");
  // The encoder, through the verified forward (with a one-token decoder input whose
  // logits are not used).
  const int32_t start = c.bos_id;
  ForwardOptions fo;
  fo.training = false;  // MoE: the evaluation capacity, no router noise
  m.forward(input.data(), &start, nullptr, 1, Te_, 1, fo);
  const int C = c.n_embd, Cq = c.n_head * c.head_dim();
  enc_.assign(m.encoder_output(), m.encoder_output() + size_t(Te_) * C);
  const float* P = m.params().data();
  const size_t kv = size_t(c.n_ctx) * Cq;
  kc_.assign(c.n_dec_layer, std::vector<float>(kv));
  vc_.assign(c.n_dec_layer, std::vector<float>(kv));
  xk_.assign(c.n_dec_layer, std::vector<float>(size_t(Te_) * Cq));
  xv_.assign(c.n_dec_layer, std::vector<float>(size_t(Te_) * Cq));
  moe_.resize(c.n_dec_layer);
  for (int l = 0; l < c.n_dec_layer; l++) {
    const T5LayerOffsets& lo = m.offsets().dec[l];
    linear_forward(xk_[l].data(), enc_.data(), P + lo.xk, nullptr, Te_, C, Cq);
    linear_forward(xv_[l].data(), enc_.data(), P + lo.xv, nullptr, Te_, C, Cq);
    if (const MoeBlock* b = m.moe_block(c.n_layer + l)) {
      moe_[l] = std::make_unique<MoeBlock>(b->spec());
      moe_[l]->set_capacity_factor(c.eval_capacity_factor);
      moe_[l]->set_noise(0, 0, 0);
    }
  }
}

const std::vector<float>& T5Decoder::feed(const std::vector<int32_t>& tokens) {
  const ModelConfig& c = m_.config();
  const int n = int(tokens.size());
  if (n == 0) throw std::invalid_argument("T5Decoder::feed: no tokens");
  if (len_ + n > c.n_ctx)
    throw std::invalid_argument("decoder sequence of " + std::to_string(len_ + n) + " tokens exceeds the model's " +
                                std::to_string(c.n_ctx) + " positions");
  for (int32_t t : tokens)
    if (t < 0 || t >= c.vocab_size) throw std::invalid_argument("token id " + std::to_string(t) + " outside the vocabulary");
  const int C = c.n_embd, F = c.n_inner, V = c.vocab_size, H = c.n_head, D = c.head_dim(), Cq = H * D;
  const int Tk = len_ + n;
  const float* P = m_.params().data();
  const T5Layout& L = m_.offsets();
  std::vector<float> x(size_t(n) * C), h(size_t(n) * C), rstd(n), q(size_t(n) * Cq), att(size_t(n) * Cq),
      br(size_t(n) * C), u1(size_t(n) * F), u2(size_t(n) * F), act(size_t(n) * F), bias(size_t(H) * n * Tk);
  embedding_forward(x.data(), tokens.data(), P + L.shared, nullptr, 1, n, C);
  // The decoder's causal position bias of queries len_ .. len_+n-1 against keys 0 .. Tk-1.
  relpos_bias_forward(bias.data(), P + L.dec_rel, n, Tk, H, c.rel_buckets, c.rel_max_distance, false, len_);
  for (int l = 0; l < c.n_dec_layer; l++) {
    const T5LayerOffsets& lo = L.dec[l];
    const LayerOffsets& o = lo.b;
    float* kcache = kc_[l].data() + size_t(len_) * Cq;
    float* vcache = vc_[l].data() + size_t(len_) * Cq;
    rmsnorm_forward(h.data(), rstd.data(), x.data(), P + o.norm1, n, C, c.norm_eps);
    linear_forward(q.data(), h.data(), P + o.q, nullptr, n, C, Cq);
    linear_forward(kcache, h.data(), P + o.k, nullptr, n, C, Cq);
    linear_forward(vcache, h.data(), P + o.v, nullptr, n, C, Cq);
    attention_general_forward_cached(att.data(), q.data(), kc_[l].data(), vc_[l].data(), bias.data(), n, len_, Tk, H,
                                     D, 1.0f, true);
    linear_forward(br.data(), att.data(), P + o.o, nullptr, n, Cq, C);
    residual_forward(x.data(), x.data(), br.data(), size_t(n) * C);
    rmsnorm_forward(h.data(), rstd.data(), x.data(), P + lo.xnorm, n, C, c.norm_eps);
    linear_forward(q.data(), h.data(), P + lo.xq, nullptr, n, C, Cq);
    attention_general_forward_cached(att.data(), q.data(), xk_[l].data(), xv_[l].data(), nullptr, n, 0, Te_, H, D,
                                     1.0f, false);
    linear_forward(br.data(), att.data(), P + lo.xo, nullptr, n, Cq, C);
    residual_forward(x.data(), x.data(), br.data(), size_t(n) * C);
    rmsnorm_forward(h.data(), rstd.data(), x.data(), P + o.norm2, n, C, c.norm_eps);
    if (moe_[l]) {
      const MoeWeights<float> w{P + o.router, P + o.ew1, nullptr, o.ew3 == LayerOffsets::npos ? nullptr : P + o.ew3,
                                P + o.ew2, nullptr};
      moe_[l]->forward(br.data(), h.data(), n, w);
    } else if (c.mlp == MlpKind::GeGLU) {
      linear_forward(u1.data(), h.data(), P + o.gate, nullptr, n, C, F);
      linear_forward(u2.data(), h.data(), P + o.up, nullptr, n, C, F);
      geglu_forward(act.data(), u1.data(), u2.data(), size_t(n) * F);
    } else {
      linear_forward(u1.data(), h.data(), P + o.up, nullptr, n, C, F);
      relu_forward(act.data(), u1.data(), size_t(n) * F);
    }
    if (!moe_[l]) linear_forward(br.data(), act.data(), P + o.down, nullptr, n, F, C);
    residual_forward(x.data(), x.data(), br.data(), size_t(n) * C);
  }
  // The last position's logits only.
  std::vector<float> hl(C);
  float r1;
  rmsnorm_forward(hl.data(), &r1, x.data() + size_t(n - 1) * C, P + L.dec_norm, 1, C, c.norm_eps);
  if (c.tied)
    for (float& v : hl) v *= float(1.0 / std::sqrt(double(C)));
  logits_.resize(V);
  linear_forward(logits_.data(), hl.data(), P + L.head, nullptr, 1, C, V);
  len_ += n;
  return logits_;
}

std::vector<int32_t> t5_generate(T5Model& m, const std::vector<int32_t>& input, const SampleOptions& o,
                                 const std::function<bool(int32_t)>& on_token) {
  T5Decoder dec(m, input);
  return sample_with([&](const std::vector<int32_t>& t) -> const std::vector<float>& { return dec.feed(t); },
                     [&] { return dec.length() < m.config().n_ctx; }, {m.config().bos_id}, m.config().vocab_size, o,
                     on_token);
}

bool t5_answer_ended(int32_t token, int eos, int pad, int V, int pieces, int last_sentinel) {
  if (token == eos || token == pad) return true;
  return token >= pieces && V - 1 - token > last_sentinel;
}

int t5_last_sentinel(const std::vector<int32_t>& input, int V, int pieces) {
  int last = -1;
  for (int32_t t : input)
    if (t >= pieces && t < V) last = std::max(last, V - 1 - t);
  return last;
}

}  // namespace moe
