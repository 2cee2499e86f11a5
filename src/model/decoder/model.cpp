// Model construction: the parameter layout (HF names, our [out, in] shapes), the
// role offsets, weight init, and the activation arena.
#include "model/decoder/decoder.h"
#include "model/decoder/model.h"

#include <cmath>
#include <map>
#include <random>
#include <stdexcept>

#include "model/decoder/acts.h"

namespace moe {

namespace {

// Counts bytes (base == nullptr) or hands out 64-byte aligned slices of a block.
struct Carver {
  char* base = nullptr;
  size_t used = 0;
  template <typename T>
  T* take(size_t n) {
    used = (used + 63) / 64 * 64;
    T* p = base ? reinterpret_cast<T*>(base + used) : nullptr;
    used += n * sizeof(T);
    return p;
  }
};

}  // namespace

ModelLayout model_layout(const ModelConfig& cfg, ExpertSplit split) {
  if (&arch_of(cfg) != &decoder_arch())
    throw std::invalid_argument("a " + cfg.family + " (" + arch_of(cfg).kind +
                                ") model: this command takes decoder-only models (gpt2, llama, mixtral) so far");
  ModelLayout m;
  const Family& fam = family_of(cfg.family);
  const int C = cfg.n_embd, F = cfg.n_inner, V = cfg.vocab_size, D = cfg.head_dim();
  const int Cq = cfg.n_head * D, Ckv = cfg.n_kv_head * D;
  auto add = [&](Role r, int l, Shape s) { return m.layout.add(fam.name(r, l), s); };
  auto add_experts = [&](int l) {  // the experts held of MoE layer l
    LayerOffsets& o = m.layers[l];
    const int E = split.count(cfg.n_experts), F = cfg.expert_inner();
    o.ew1 = add(Role::ExpertW1, l, {E, F, C});
    if (cfg.bias) o.eb1 = add(Role::ExpertB1, l, {E, F});
    if (cfg.mlp == MlpKind::SwiGLU) o.ew3 = add(Role::ExpertW3, l, {E, F, C});
    o.ew2 = add(Role::ExpertW2, l, {E, C, F});
    if (cfg.bias) o.eb2 = add(Role::ExpertB2, l, {E, C});
  };
  m.embed = add(Role::Embed, 0, {V, C});
  if (cfg.pos == PosKind::Learned) m.pos = add(Role::Pos, 0, {cfg.n_ctx, C});
  m.layers.resize(cfg.n_layer);
  for (int l = 0; l < cfg.n_layer; l++) {
    LayerOffsets& o = m.layers[l];
    o.norm1 = add(Role::Norm1, l, {C});
    if (cfg.bias) o.norm1_b = add(Role::Norm1Bias, l, {C});
    if (cfg.fused_qkv) {
      o.qkv = add(Role::QKV, l, {3 * C, C});
      if (cfg.bias) o.qkv_b = add(Role::QKVBias, l, {3 * C});
    } else {
      o.q = add(Role::Q, l, {Cq, C});
      o.k = add(Role::K, l, {Ckv, C});
      o.v = add(Role::V, l, {Ckv, C});
    }
    o.o = add(Role::O, l, {C, Cq});
    if (cfg.bias) o.o_b = add(Role::OBias, l, {C});
    o.norm2 = add(Role::Norm2, l, {C});
    if (cfg.bias) o.norm2_b = add(Role::Norm2Bias, l, {C});
    if (cfg.moe_layer(l)) {
      o.router = add(Role::Router, l, {cfg.n_experts, C});  // routes to all of them
      if (!split.partial()) add_experts(l);
    } else {
      if (cfg.mlp == MlpKind::SwiGLU) o.gate = add(Role::Gate, l, {F, C});
      o.up = add(Role::Up, l, {F, C});
      if (cfg.bias) o.up_b = add(Role::UpBias, l, {F});
      o.down = add(Role::Down, l, {C, F});
      if (cfg.bias) o.down_b = add(Role::DownBias, l, {C});
    }
  }
  m.lnf = add(Role::FinalNorm, 0, {C});
  if (cfg.bias) m.lnf_b = add(Role::FinalNormBias, 0, {C});
  m.head = cfg.tied ? m.embed : add(Role::LMHead, 0, {V, C});
  // A partial split keeps its experts after everything else: the flat buffers are then
  // [replicated | this rank's experts], two ranges summed (and ZeRO-sharded) over
  // different groups of ranks (train/data_parallel.h).
  if (split.partial())
    for (int l = 0; l < cfg.n_layer; l++)
      if (cfg.moe_layer(l)) add_experts(l);
  return m;
}

std::map<std::string, size_t> model_tensor_index(const ModelConfig& cfg) {
  std::map<std::string, size_t> out;
  const ModelLayout full = model_layout(cfg);
  for (const ParamSpec& s : full.layout.specs()) out.emplace(s.name, out.size());
  return out;
}

Model::Model(const ModelConfig& cfg, bool trainable, ExpertSplit split)
    : cfg_(cfg), split_(split), family_(&family_of(cfg.family)), params_(layout_), grads_(layout_) {
  cfg_.validate();
  if (split_.partial() && !cfg_.is_moe())
    throw std::invalid_argument("expert parallelism needs an MoE model (this " + cfg_.family + " model is dense)");
  if (split_.ranks < 1 || split_.rank < 0 || split_.rank >= split_.ranks || cfg_.n_experts % split_.ranks != 0)
    throw std::invalid_argument("expert parallelism over " + std::to_string(split_.ranks) + " ranks: the " +
                                std::to_string(cfg_.n_experts) + " experts do not split evenly");
  if (split_.group && (split_.group->size() != split_.ranks || split_.group->rank() != split_.rank))
    throw std::invalid_argument("expert parallelism: the group of " + std::to_string(split_.group->size()) +
                                " ranks does not hold this split's " + std::to_string(split_.ranks) + " parts");
  const int C = cfg_.n_embd;
  {
    ModelLayout ml = model_layout(cfg_, split_);
    layout_ = std::move(ml.layout);
    off_embed_ = ml.embed, off_pos_ = ml.pos, off_lnf_ = ml.lnf, off_lnf_b_ = ml.lnf_b, off_head_ = ml.head;
    lay_ = std::move(ml.layers);
  }
  moe_.resize(cfg_.n_layer);
  for (int l = 0; l < cfg_.n_layer; l++) {
    if (!cfg_.moe_layer(l)) continue;
    MoeSpec sp;
    sp.C = C, sp.F = cfg_.expert_inner(), sp.E = cfg_.n_experts, sp.K = cfg_.top_k, sp.mlp = cfg_.mlp, sp.bias = cfg_.bias;
    sp.capacity_factor = cfg_.capacity_factor, sp.renormalize = cfg_.moe_renormalize;
    sp.aux_coef = cfg_.aux_loss_coef, sp.z_coef = cfg_.z_loss_coef;
    moe_[l] = std::make_unique<MoeBlock>(sp);
    if (split_.group) moe_[l]->set_expert_group(split_.group);  // expert parallelism: the ranks holding the others
  }
  // The buffers were built over the empty layout: size them now.
  params_ = FlatBuffer(layout_);
  static const ParamLayout kNoParams;
  grads_ = FlatBuffer(trainable ? layout_ : kNoParams);
}

Model::~Model() = default;

MoeWeights<float> Model::moe_weights(int l) const {
  const LayerOffsets& o = lay_[l];
  const float* P = params_.data();
  auto p = [&](size_t off) { return off == LayerOffsets::npos ? nullptr : P + off; };
  return MoeWeights<float>{p(o.router), p(o.ew1), p(o.eb1), p(o.ew3), p(o.ew2), p(o.eb2)};
}

MoeWeights<bf16> Model::moe_weights_bf16(int l) const {
  const LayerOffsets& o = lay_[l];
  const bf16* P = params_bf_.data();
  auto p = [&](size_t off) { return off == LayerOffsets::npos ? nullptr : P + off; };
  return MoeWeights<bf16>{nullptr, p(o.ew1), nullptr, p(o.ew3), p(o.ew2), nullptr};
}

void Model::init_weights(uint64_t seed) {
  bf16_fresh_ = false;  // the bf16 compute copy must be rebuilt from the new weights
  const double std_w = 0.02, std_res = 0.02 / std::sqrt(2.0 * cfg_.n_layer);
  // Each tensor's stream is seeded by its place in the full model's layout (a partial
  // split orders its tensors differently but draws the same weights).
  const std::map<std::string, size_t> canonical = split_.partial() ? model_tensor_index(cfg_)
                                                                     : std::map<std::string, size_t>{};
  size_t index = 0;
  for (const ParamSpec& s : layout_.specs()) {
    if (split_.partial()) index = canonical.at(s.name);
    float* p = params_.data() + s.offset;
    size_t n = size_t(s.shape.numel());
    bool is_norm = s.name.find("norm") != std::string::npos || s.name.find("ln_") != std::string::npos;
    if (s.shape.ndim == 1) {
      for (size_t i = 0; i < n; i++) p[i] = is_norm && s.name.ends_with("weight") ? 1.0f : 0.0f;
    } else {
      bool residual_out = false, router = false;
      for (int l = 0; l < cfg_.n_layer; l++) {
        residual_out |= s.offset == lay_[l].o || s.offset == lay_[l].down || s.offset == lay_[l].ew2;
        router |= s.offset == lay_[l].router;
      }
      // Routers: Switch's smaller init, std sqrt(0.1 / fan_in).
      const double std_router = std::sqrt(double(cfg_.router_init_scale) / cfg_.n_embd);
      std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ull + index);
      std::normal_distribution<double> d(0.0, router ? std_router : residual_out ? std_res : std_w);
      // A partial expert split draws the whole [E, ...] tensor's stream and keeps its
      // rows: the same weights as the full model's.
      if (split_.partial() && s.name.find('*') != std::string::npos)
        for (size_t i = 0, skip = n / size_t(s.shape[0]) * size_t(split_.first(cfg_.n_experts)); i < skip; i++) d(rng);
      for (size_t i = 0; i < n; i++) p[i] = float(d(rng));
    }
    index++;
  }
}

LayerActs& Model::layer_acts(int l) { return acts_->L[acts_recompute_ ? 0 : l]; }

size_t Model::activation_bytes() const {
  size_t b = arena_bytes_;
  for (const auto& blk : moe_)
    if (blk) b += blk->buffer_bytes();
  return moe_shared_ ? b + moe_shared_->buffer_bytes() : b;
}

void Model::ensure_acts(int B, int T) {
  if (acts_ && B == B_ && T == T_ && acts_recompute_ == recompute_) return;
  if (T > cfg_.n_ctx)
    throw std::invalid_argument("sequence length " + std::to_string(T) + " exceeds the model's " +
                                std::to_string(cfg_.n_ctx) + " positions");
  const size_t N = size_t(B) * T, C = cfg_.n_embd, F = cfg_.n_inner, V = cfg_.vocab_size;
  const size_t D = cfg_.head_dim(), Cq = cfg_.n_head * D, Ckv = cfg_.n_kv_head * D;
  const size_t A = size_t(B) * cfg_.n_head * T * T;
  const bool bf = true;  // bf16 copies are small next to the fp32 activations: always carve them
  auto carve = [&](Carver& cv, Acts& a) {
    a.L.resize(recompute_ ? 1 : cfg_.n_layer);  // recompute: one set, shared by every layer
    a.xs.resize(cfg_.n_layer + 1);
    for (auto& x : a.xs) x = cv.take<float>(N * C);
    for (auto& l : a.L) {
      l.ln1 = cv.take<float>(N * C), l.ln1_mean = cv.take<float>(N), l.ln1_rstd = cv.take<float>(N);
      l.qkv = cfg_.fused_qkv ? cv.take<float>(N * 3 * C) : nullptr;
      l.q = cv.take<float>(N * Cq), l.k = cv.take<float>(N * Ckv), l.v = cv.take<float>(N * Ckv);
      l.att = cv.take<float>(A);
      l.atty = cv.take<float>(N * Cq);
      l.x_mid = cv.take<float>(N * C);
      l.ln2 = cv.take<float>(N * C), l.ln2_mean = cv.take<float>(N), l.ln2_rstd = cv.take<float>(N);
      l.h1 = cv.take<float>(N * F);
      l.h2 = cfg_.mlp == MlpKind::SwiGLU ? cv.take<float>(N * F) : nullptr;
      l.act = cfg_.mlp == MlpKind::SwiGLU ? cv.take<float>(N * F) : cv.take<float>(N * F);
      l.ln1_bf = bf ? cv.take<bf16>(N * C) : nullptr;
      l.atty_bf = bf ? cv.take<bf16>(N * Cq) : nullptr;
      l.ln2_bf = bf ? cv.take<bf16>(N * C) : nullptr;
      l.act_bf = bf ? cv.take<bf16>(N * F) : nullptr;
    }
    a.lnf = cv.take<float>(N * C), a.lnf_mean = cv.take<float>(N), a.lnf_rstd = cv.take<float>(N);
    a.lnf_bf = cv.take<bf16>(N * C);
    a.logits = cv.take<float>(N * V), a.losses = cv.take<float>(N), a.lse = cv.take<float>(N);
    a.dlosses = cv.take<float>(N);
    a.branch = cv.take<float>(N * C);
    a.dres = cv.take<float>(N * C), a.dtmp = cv.take<float>(N * C), a.dln = cv.take<float>(N * C);
    a.datty = cv.take<float>(N * Cq);
    a.dq = cv.take<float>(N * Cq), a.dk = cv.take<float>(N * Ckv), a.dv = cv.take<float>(N * Ckv);
    a.dqkv = cfg_.fused_qkv ? cv.take<float>(N * 3 * C) : nullptr;
    a.dact = cv.take<float>(N * F), a.dh1 = cv.take<float>(N * F);
    a.dh2 = cfg_.mlp == MlpKind::SwiGLU ? cv.take<float>(N * F) : nullptr;
    a.dout_bf = cv.take<bf16>(N * std::max({V, 3 * C, F, C}));
  };
  acts_.reset();
  arena_.reset();
  Acts probe;
  Carver count;
  carve(count, probe);
  arena_ = std::make_unique<Arena>(count.used + 64);
  acts_ = std::make_unique<Acts>();
  Carver real{static_cast<char*>(arena_->alloc_bytes(count.used)), 0};
  carve(real, *acts_);
  B_ = B, T_ = T, acts_recompute_ = recompute_, arena_bytes_ = count.used;
  if (recompute_ && cfg_.is_moe()) {
    for (const auto& blk : moe_) {
      if (!blk) continue;
      moe_shared_ = std::make_unique<MoeBlock>(blk->spec());  // only its buffers are used
      MoeBlock empty(blk->spec());
      blk->swap_buffers(empty);  // frees what a forward without recompute left in the block
    }
  } else {
    moe_shared_.reset();
  }
}

}  // namespace moe
