#include "model/decoder/step0.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>
#include <stdexcept>

#include "io/st_dir.h"
#include "model/checkpoint.h"
#include "model/decoder/model_io.h"
#include "model/decoder/model.h"
#include "ops/cross_entropy.h"
#include "ops/embedding.h"
#include "ops/layernorm.h"
#include "ops/linear.h"
#include "ops/rmsnorm.h"

namespace moe {

namespace {

// One side of the comparison: a checkpoint directory read layer by layer.
struct Side {
  ModelConfig cfg;
  TensorDir src;
  std::vector<float> x;  // residual stream (N, C)

  explicit Side(const std::string& dir) : cfg(config_load(dir + "/config.json")), src(TensorDir::open(dir)) {}

  std::vector<float> tensor(Role r, std::vector<int64_t> shape) const {
    std::vector<float> v(size_t(shape[0]) * (shape.size() > 1 ? size_t(shape[1]) : 1));
    const Family& f = family_of(cfg.family);
    read_hf_tensor(src, f.name(r, 0), shape, f.hf_transposed(r), v.data(), "config.json needs it");
    return v;
  }

  void embed(const std::vector<int32_t>& in, int B, int T) {
    const int C = cfg.n_embd;
    std::vector<float> wte = tensor(Role::Embed, {cfg.vocab_size, C}), wpe;
    if (cfg.pos == PosKind::Learned) wpe = tensor(Role::Pos, {cfg.n_ctx, C});
    x.resize(size_t(B) * T * C);
    embedding_forward(x.data(), in.data(), wte.data(), wpe.empty() ? nullptr : wpe.data(), B, T, C);
  }

  // Layer l alone, as a 1-layer model (no embedding or head to speak of).
  std::unique_ptr<Model> layer(int l) const {
    ModelConfig sc = cfg;
    sc.n_layer = 1, sc.vocab_size = 1, sc.bos_id = sc.eos_id = 0, sc.tied = true;
    if (cfg.is_moe() && cfg.moe_layer(l)) sc.moe_layers = {0}, sc.moe_all_layers = false;
    else sc.n_experts = 0;
    auto m = std::make_unique<Model>(sc, /*trainable=*/false);
    const Family& f = family_of(cfg.family);
    model_load_params(*m, src, [&](const std::string&, const TensorRole* r) -> std::string {
      if (!r) throw std::logic_error("step0: a parameter without a role");
      switch (r->role) {
        case Role::Embed: case Role::Pos: case Role::FinalNorm: case Role::FinalNormBias: case Role::LMHead:
          return "";  // model-wide: not part of the slice
        default: return f.name(r->role, l);
      }
    }, nullptr);
    return m;
  }

  double loss(const std::vector<int32_t>& tgt, int N) const {
    const int C = cfg.n_embd, V = cfg.vocab_size;
    std::vector<float> w = tensor(Role::FinalNorm, {C}), b, h(size_t(N) * C), mean(N), rstd(N);
    if (cfg.norm == NormKind::LayerNorm) {
      if (cfg.bias) b = tensor(Role::FinalNormBias, {C});
      layernorm_forward(h.data(), mean.data(), rstd.data(), x.data(), w.data(), b.empty() ? nullptr : b.data(), N, C,
                        cfg.norm_eps);
    } else {
      rmsnorm_forward(h.data(), rstd.data(), x.data(), w.data(), N, C, cfg.norm_eps);
    }
    std::vector<float> head = tensor(cfg.tied ? Role::Embed : Role::LMHead, {V, C});
    std::vector<float> logits(size_t(N) * V), losses(N), lse(N);
    linear_forward(logits.data(), h.data(), head.data(), nullptr, N, C, V);
    crossentropy_forward(losses.data(), lse.data(), logits.data(), tgt.data(), N, V);
    double s = 0;
    for (float v : losses) s += v;
    return s / N;
  }
};

double max_abs_diff(const float* a, const float* b, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; i++) m = std::max(m, std::fabs(double(a[i]) - double(b[i])));
  return m;
}

}  // namespace

Step0Report step0_check(const std::string& dense_dir, const std::string& moe_dir, const std::vector<int32_t>& in,
                        const std::vector<int32_t>& tgt, int B, int T) {
  Side d(dense_dir), m(moe_dir);
  const ModelConfig &dc = d.cfg, &mc = m.cfg;
  if (dc.n_layer != mc.n_layer || dc.n_embd != mc.n_embd || dc.vocab_size != mc.vocab_size)
    throw std::runtime_error(moe_dir + "/config.json: layers, width or vocabulary differ from " + dense_dir +
                             "/config.json; not an upcycling of it");
  const size_t N = size_t(B) * T, C = size_t(dc.n_embd);
  if (in.size() != N || tgt.size() != N) throw std::invalid_argument("step0_check: expected B*T inputs and targets");
  for (int32_t v : in)
    if (v < 0 || v >= dc.vocab_size) throw std::invalid_argument("step0_check: token id outside the vocabulary");
  Step0Report rep;
  rep.B = B, rep.T = T;
  d.embed(in, B, T);
  m.embed(in, B, T);
  ForwardOptions fo;
  fo.training = false;  // evaluation capacity factor, no noise
  std::vector<float> dense_out(N * C), dense_mlp(N * C);
  for (int l = 0; l < dc.n_layer; l++) {
    Step0Layer L;
    L.layer = l;
    L.moe = mc.moe_layer(l);
    {
      auto dl = d.layer(l);
      fo.hidden_in = d.x.data();
      dl->forward(nullptr, nullptr, B, T, fo);
      std::copy(dl->hidden(1), dl->hidden(1) + N * C, dense_out.begin());
      std::copy(dl->last_mlp_output(), dl->last_mlp_output() + N * C, dense_mlp.begin());
    }
    auto ml = m.layer(l);
    if (L.moe) {  // the MoE block on the dense model's stream: the same input as the dense MLP
      fo.hidden_in = d.x.data();
      ml->forward(nullptr, nullptr, B, T, fo);
      const float* mo = ml->last_mlp_output();
      L.block_max_diff = max_abs_diff(mo, dense_mlp.data(), N * C);
      double dot = 0, nn = 0;
      for (size_t i = 0; i < N * C; i++) {
        L.mlp_max_abs = std::max(L.mlp_max_abs, std::fabs(double(dense_mlp[i])));
        dot += double(mo[i]) * dense_mlp[i], nn += double(dense_mlp[i]) * dense_mlp[i];
      }
      L.scale = nn > 0 ? dot / nn : 1.0;
      const MoeRouting& r = ml->moe_block(0)->routing();
      double mass = 0;
      for (size_t i = 0; i < r.weight.size(); i++)
        if (r.kept[i]) mass += r.weight[i];
      L.gate_mass = mass / r.N;
      L.drop_fraction = double(r.dropped()) / (double(r.N) * r.K);
    }
    fo.hidden_in = m.x.data();
    ml->forward(nullptr, nullptr, B, T, fo);
    std::copy(ml->hidden(1), ml->hidden(1) + N * C, m.x.begin());
    std::copy(dense_out.begin(), dense_out.end(), d.x.begin());
    L.hidden_max_diff = max_abs_diff(d.x.data(), m.x.data(), N * C);
    rep.layers.push_back(L);
  }
  rep.dense_loss = d.loss(tgt, int(N));
  rep.moe_loss = m.loss(tgt, int(N));
  return rep;
}


}  // namespace moe
