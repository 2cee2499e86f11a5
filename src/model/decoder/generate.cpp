#include "model/decoder/generate.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <stdexcept>

#include "ops/attention.h"
#include "ops/embedding.h"
#include "ops/gelu.h"
#include "ops/layernorm.h"
#include "ops/linear.h"
#include "ops/residual.h"
#include "ops/rmsnorm.h"
#include "ops/rope.h"
#include "ops/swiglu.h"

namespace moe {

namespace {
constexpr size_t npos = LayerOffsets::npos;
}

Decoder::Decoder(const Model& m) : m_(m) {
  const ModelConfig& c = m.config();
  const size_t kv = size_t(c.n_ctx) * c.n_kv_head * c.head_dim();
  kc_.assign(c.n_layer, std::vector<float>(kv));
  vc_.assign(c.n_layer, std::vector<float>(kv));
  moe_.resize(c.n_layer);
  for (int l = 0; l < c.n_layer; l++)
    if (const MoeBlock* b = m.moe_block(l)) {
      moe_[l] = std::make_unique<MoeBlock>(b->spec());
      moe_[l]->set_capacity_factor(c.eval_capacity_factor);
    }
}

const std::vector<float>& Decoder::feed(const std::vector<int32_t>& tokens) {
  const ModelConfig& c = m_.config();
  const int n = int(tokens.size());
  if (n == 0) throw std::invalid_argument("Decoder::feed: no tokens");
  if (len_ + n > c.n_ctx)
    throw std::invalid_argument("sequence of " + std::to_string(len_ + n) + " tokens exceeds the model's " +
                                std::to_string(c.n_ctx) + " positions");
  for (int32_t t : tokens)
    if (t < 0 || t >= c.vocab_size) throw std::invalid_argument("token id " + std::to_string(t) + " outside the vocabulary");
  const int C = c.n_embd, F = c.n_inner, V = c.vocab_size, H = c.n_head, Hkv = c.n_kv_head, D = c.head_dim();
  const int Cq = H * D, Ckv = Hkv * D;
  const float* P = m_.params().data();
  auto pb = [&](size_t off) { return off == npos ? nullptr : P + off; };
  const bool ln = c.norm == NormKind::LayerNorm;
  std::vector<float> x(size_t(n) * C), h(size_t(n) * C), mean(n), rstd(n), q(size_t(n) * Cq), qkv,
      att(size_t(n) * Cq), br(size_t(n) * C), u1(size_t(n) * F), u2(size_t(n) * F), act(size_t(n) * F);
  auto norm = [&](float* out, const float* in, size_t w, size_t b) {
    if (ln) layernorm_forward(out, mean.data(), rstd.data(), in, P + w, pb(b), n, C, c.norm_eps);
    else rmsnorm_forward(out, rstd.data(), in, P + w, n, C, c.norm_eps);
  };
  const size_t pos_off = m_.off_pos();
  embedding_forward(x.data(), tokens.data(), P + m_.off_embed(),
                    pos_off == npos ? nullptr : P + pos_off + size_t(len_) * C, 1, n, C);
  for (int l = 0; l < c.n_layer; l++) {
    const LayerOffsets& o = m_.layer_offsets(l);
    float* kcache = kc_[l].data() + size_t(len_) * Ckv;
    float* vcache = vc_[l].data() + size_t(len_) * Ckv;
    norm(h.data(), x.data(), o.norm1, o.norm1_b);
    if (c.fused_qkv) {
      qkv.resize(size_t(n) * 3 * C);
      linear_forward(qkv.data(), h.data(), P + o.qkv, pb(o.qkv_b), n, C, 3 * C);
      for (int i = 0; i < n; i++) {
        std::memcpy(q.data() + size_t(i) * Cq, qkv.data() + size_t(i) * 3 * C, Cq * sizeof(float));
        std::memcpy(kcache + size_t(i) * Ckv, qkv.data() + size_t(i) * 3 * C + C, Ckv * sizeof(float));
        std::memcpy(vcache + size_t(i) * Ckv, qkv.data() + size_t(i) * 3 * C + 2 * C, Ckv * sizeof(float));
      }
    } else {
      linear_forward(q.data(), h.data(), P + o.q, nullptr, n, C, Cq);
      linear_forward(kcache, h.data(), P + o.k, nullptr, n, C, Ckv);
      linear_forward(vcache, h.data(), P + o.v, nullptr, n, C, Ckv);
    }
    if (c.pos == PosKind::Rope) {
      rope_forward(q.data(), q.data(), 1, n, H, D, c.rope_theta, len_);
      rope_forward(kcache, kcache, 1, n, Hkv, D, c.rope_theta, len_);
    }
    attention_forward_cached(att.data(), q.data(), kc_[l].data(), vc_[l].data(), n, len_, H, Hkv, D);
    linear_forward(br.data(), att.data(), P + o.o, pb(o.o_b), n, Cq, C);
    residual_forward(x.data(), x.data(), br.data(), size_t(n) * C);
    norm(h.data(), x.data(), o.norm2, o.norm2_b);
    if (moe_[l]) {
      moe_[l]->forward(br.data(), h.data(), n, m_.moe_weights(l));
    } else {
      if (c.mlp == MlpKind::Gelu) {
        linear_forward(u1.data(), h.data(), P + o.up, pb(o.up_b), n, C, F);
        gelu_forward(act.data(), u1.data(), size_t(n) * F);
      } else {
        linear_forward(u1.data(), h.data(), P + o.gate, nullptr, n, C, F);
        linear_forward(u2.data(), h.data(), P + o.up, nullptr, n, C, F);
        swiglu_forward(act.data(), u1.data(), u2.data(), size_t(n) * F);
      }
      linear_forward(br.data(), act.data(), P + o.down, pb(o.down_b), n, F, C);
    }
    residual_forward(x.data(), x.data(), br.data(), size_t(n) * C);
  }
  // Only the last position's logits are needed.
  const float* xl = x.data() + size_t(n - 1) * C;
  std::vector<float> hl(C);
  float m1, r1;
  if (ln) layernorm_forward(hl.data(), &m1, &r1, xl, P + m_.off_final_norm(), pb(m_.off_final_norm_bias()), 1, C, c.norm_eps);
  else rmsnorm_forward(hl.data(), &r1, xl, P + m_.off_final_norm(), 1, C, c.norm_eps);
  logits_.resize(V);
  linear_forward(logits_.data(), hl.data(), P + m_.off_head(), nullptr, 1, C, V);
  len_ += n;
  return logits_;
}

std::vector<int32_t> generate(const Model& m, const std::vector<int32_t>& prompt, const SampleOptions& o,
                              const std::function<bool(int32_t)>& on_token) {
  if (prompt.empty()) throw std::invalid_argument("generate: empty prompt");
  Decoder dec(m);
  return sample_with([&](const std::vector<int32_t>& t) -> const std::vector<float>& { return dec.feed(t); },
                     [&] { return dec.length() < m.config().n_ctx; }, prompt, m.config().vocab_size, o, on_token);
}

}  // namespace moe
