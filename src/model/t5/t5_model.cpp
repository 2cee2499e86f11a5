// T5: the parameter layout under HF names, init, and HF t5 checkpoint directories.
#include <cmath>
#include <random>
#include <set>
#include <stdexcept>

#include "io/files.h"
#include "io/st_dir.h"
#include "model/checkpoint.h"
#include "model/t5/t5_family.h"
#include "model/t5/t5.h"
#include "model/t5/t5_acts.h"

namespace moe {

namespace {

const ModelConfig& checked(const ModelConfig& c) {
  c.validate();
  if (!t5_family(c))
    throw std::invalid_argument("T5Model needs a t5 config (this one is " + c.family + ")");
  return c;
}

}  // namespace

T5Layout t5_layout(const ModelConfig& cfg) {
  T5Layout m;
  const int C = cfg.n_embd, F = cfg.n_inner, V = cfg.vocab_size, Cq = cfg.n_head * cfg.head_dim();
  const int H = cfg.n_head, NB = cfg.rel_buckets;
  auto add = [&](const std::string& name, Shape s) { return m.layout.add(name, s); };
  auto attention = [&](const std::string& p, size_t& q, size_t& k, size_t& v, size_t& o) {
    q = add(p + "q.weight", {Cq, C});
    k = add(p + "k.weight", {Cq, C});
    v = add(p + "v.weight", {Cq, C});
    o = add(p + "o.weight", {C, Cq});
  };
  const int E = cfg.n_experts, Fe = cfg.expert_inner();
  const std::string dense = t5_is_switch(cfg) ? "mlp." : "DenseReluDense.";  // HF switch_transformers' dense MLP: "mlp"
  auto mlp = [&](const std::string& p, LayerOffsets& o, int l) {
    if (cfg.moe_layer(l)) {  // HF switch_transformers' names; '*' is the expert index
      o.router = add(p + "mlp.router.classifier.weight", {E, C});
      if (cfg.mlp == MlpKind::GeGLU) {
        o.ew1 = add(p + "mlp.experts.expert_*.wi_0.weight", {E, Fe, C});
        o.ew3 = add(p + "mlp.experts.expert_*.wi_1.weight", {E, Fe, C});
      } else {
        o.ew1 = add(p + "mlp.experts.expert_*.wi.weight", {E, Fe, C});
      }
      o.ew2 = add(p + "mlp.experts.expert_*.wo.weight", {E, C, Fe});
    } else if (cfg.mlp == MlpKind::GeGLU) {
      o.gate = add(p + dense + "wi_0.weight", {F, C});
      o.up = add(p + dense + "wi_1.weight", {F, C});
    } else {
      o.up = add(p + dense + "wi.weight", {F, C});
    }
    if (!cfg.moe_layer(l)) o.down = add(p + dense + "wo.weight", {C, F});
    o.norm2 = add(p + "layer_norm.weight", {C});
  };
  m.shared = add("shared.weight", {V, C});
  m.enc.resize(cfg.n_layer);
  for (int l = 0; l < cfg.n_layer; l++) {
    const std::string p = "encoder.block." + std::to_string(l) + ".layer.";
    LayerOffsets& o = m.enc[l].b;
    attention(p + "0.SelfAttention.", o.q, o.k, o.v, o.o);
    if (l == 0) m.enc_rel = add(p + "0.SelfAttention.relative_attention_bias.weight", {NB, H});
    o.norm1 = add(p + "0.layer_norm.weight", {C});
    mlp(p + "1.", o, l);
  }
  m.enc_norm = add("encoder.final_layer_norm.weight", {C});
  m.dec.resize(cfg.n_dec_layer);
  for (int l = 0; l < cfg.n_dec_layer; l++) {
    const std::string p = "decoder.block." + std::to_string(l) + ".layer.";
    T5LayerOffsets& d = m.dec[l];
    attention(p + "0.SelfAttention.", d.b.q, d.b.k, d.b.v, d.b.o);
    if (l == 0) m.dec_rel = add(p + "0.SelfAttention.relative_attention_bias.weight", {NB, H});
    d.b.norm1 = add(p + "0.layer_norm.weight", {C});
    attention(p + "1.EncDecAttention.", d.xq, d.xk, d.xv, d.xo);
    d.xnorm = add(p + "1.layer_norm.weight", {C});
    mlp(p + "2.", d.b, l);
  }
  m.dec_norm = add("decoder.final_layer_norm.weight", {C});
  m.head = cfg.tied ? m.shared : add("lm_head.weight", {V, C});
  return m;
}

T5Model::T5Model(const ModelConfig& cfg, bool trainable)
    : cfg_(checked(cfg)), lay_(t5_layout(cfg_)), params_(lay_.layout), grads_(lay_.layout) {
  if (!trainable) {
    static const ParamLayout kNoParams;
    grads_ = FlatBuffer(kNoParams);
  }
  // MoE layers: the encoder's experts choose their tokens of each sequence (or tokens
  // choose, as the decoder's always do).
  auto block = [&](bool encoder) {
    MoeSpec sp;
    sp.C = cfg_.n_embd, sp.F = cfg_.expert_inner(), sp.E = cfg_.n_experts, sp.mlp = cfg_.mlp, sp.bias = false;
    sp.aux_coef = cfg_.aux_loss_coef, sp.z_coef = cfg_.z_loss_coef;
    sp.expert_choice = encoder && cfg_.expert_choice;
    sp.K = sp.expert_choice ? sp.E : cfg_.top_k;
    sp.renormalize = !sp.expert_choice && cfg_.moe_renormalize;
    sp.capacity_factor = sp.expert_choice ? cfg_.enc_capacity_factor : cfg_.capacity_factor;
    sp.fixed_capacity = t5_is_switch(cfg_) ? cfg_.switch_capacity : 0;  // HF's expert_capacity, per sequence
    return std::make_unique<MoeBlock>(sp);
  };
  enc_moe_.resize(cfg_.n_layer);
  dec_moe_.resize(cfg_.n_dec_layer);
  for (int l = 0; l < cfg_.n_layer; l++)
    if (cfg_.moe_layer(l)) enc_moe_[l] = block(true);
  for (int l = 0; l < cfg_.n_dec_layer; l++)
    if (cfg_.moe_layer(l)) dec_moe_[l] = block(false);
}

const MoeBlock* T5Model::moe_block(int slot) const {
  if (slot < 0 || slot >= layer_slots()) return nullptr;
  return slot < cfg_.n_layer ? enc_moe_[slot].get() : dec_moe_[slot - cfg_.n_layer].get();
}

void T5Model::set_moe_group(Comm* group) {
  for (auto* v : {&enc_moe_, &dec_moe_})
    for (auto& b : *v)
      if (b) b->set_group(group);
}

T5Model::~T5Model() = default;

void T5Model::init_weights(uint64_t seed) {
  bf16_fresh_ = false;
  const double C = cfg_.n_embd, Dkv = cfg_.head_dim(), Cq = cfg_.n_head * Dkv, F = cfg_.n_inner;
  auto std_of = [&](const std::string& n) -> double {
    if (n == "shared.weight") return 1.0;
    if (n == "lm_head.weight") return 1.0 / std::sqrt(C);
    if (n.ends_with("relative_attention_bias.weight")) return 1.0 / std::sqrt(C);
    if (n.ends_with("router.classifier.weight")) return std::sqrt(double(cfg_.router_init_scale) / C);  // Switch's
    if (n.ends_with(".q.weight")) return 1.0 / std::sqrt(C * Dkv);
    if (n.ends_with(".k.weight") || n.ends_with(".v.weight")) return 1.0 / std::sqrt(C);
    if (n.ends_with(".o.weight")) return 1.0 / std::sqrt(Cq);
    if (n.ends_with(".wo.weight")) return 1.0 / std::sqrt(F);
    return 1.0 / std::sqrt(C);  // wi, wi_0, wi_1
  };
  size_t index = 0;
  for (const ParamSpec& s : lay_.layout.specs()) {
    float* p = params_.data() + s.offset;
    const size_t n = size_t(s.shape.numel());
    if (s.shape.ndim == 1) {
      for (size_t i = 0; i < n; i++) p[i] = 1.0f;  // every 1-D T5 tensor is a norm weight
    } else {
      std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ull + index);
      std::normal_distribution<double> d(0.0, std_of(s.name));
      for (size_t i = 0; i < n; i++) p[i] = float(d(rng));
    }
    index++;
  }
}

float T5Model::forward_rows(const TokenBatch& b, int row0, int rows, const ForwardOptions& opt) {
  if (b.Td <= 0) throw std::invalid_argument("t5: a batch without decoder inputs (a decoder-only dataset?)");
  const size_t e = size_t(row0) * b.T, d = size_t(row0) * b.Td;
  first_row_ = row0;  // the MoE blocks' noise masks: by global token index
  const float loss = forward(b.inputs.data() + e, b.dec.data() + d, b.targets.data() + d, rows, b.T, b.Td, opt);
  first_row_ = 0;
  return loss;
}

void T5Model::set_recompute(bool on) {
  if (on) throw std::invalid_argument("--recompute: not implemented for t5 models yet");
}

double T5Model::train_flops_per_token(int Te, int Td) const { return t5_train_flops_per_token(cfg_, Te, Td); }

void T5Model::save(const std::string& dir, STDType dtype) const { t5_save(*this, dir, dtype); }

const float* T5Model::mlp_input(int slot) const {
  if (!acts_ || slot < 0 || slot >= layer_slots()) throw std::logic_error("T5Model::mlp_input: no forward, or no such slot");
  return slot < cfg_.n_layer ? acts_->enc[size_t(slot)].ln2 : acts_->dec[size_t(slot - cfg_.n_layer)].ln2;
}

const float* T5Model::stream_after(int slot) const {
  if (!acts_ || slot < 0 || slot >= layer_slots()) throw std::logic_error("T5Model::stream_after: no forward, or no such slot");
  return slot < cfg_.n_layer ? acts_->xe[size_t(slot) + 1] : acts_->xd[size_t(slot - cfg_.n_layer) + 1];
}

const float* T5Model::encoder_output() const {
  if (!acts_) throw std::logic_error("T5Model::encoder_output without a forward");
  return acts_->enc_out;
}

void t5_save(const T5Model& m, const std::string& dir, STDType dtype) {
  if (dtype != STDType::F32 && dtype != STDType::BF16 && dtype != STDType::F16)
    throw std::invalid_argument("t5_save: dtype must be F32, BF16 or F16");
  nlohmann::json cfg = config_to_hf(m.config());
  cfg["torch_dtype"] = dtype == STDType::F32 ? "float32" : dtype == STDType::BF16 ? "bfloat16" : "float16";
  SafeTensorsWriter w;
  std::vector<std::vector<char>> store;  // converted bytes, alive until write()
  auto emit = [&](const std::string& name, const float* src, const std::vector<int64_t>& shape, size_t n) {
    if (dtype == STDType::F32) {
      w.add(name, dtype, shape, src);
      return;
    }
    store.emplace_back(n * st_dtype_size(dtype));
    st_encode_f32_checked(store.back().data(), src, n, dtype, name);
    w.add(name, dtype, shape, store.back().data());
  };
  for (const ParamSpec& s : m.layout().specs()) {
    const float* src = m.params().data() + s.offset;
    if (s.name.find('*') == std::string::npos) {
      emit(s.name, src, s.shape.vec(), size_t(s.shape.numel()));
      continue;
    }
    // [E, ...] experts: one HF tensor each (expert_0, expert_1, ...).
    const std::vector<int64_t> full = s.shape.vec(), one(full.begin() + 1, full.end());
    const size_t per = size_t(s.shape.numel() / s.shape[0]);
    for (int64_t e = 0; e < s.shape[0]; e++) emit(expert_tensor_name(s.name, int(e)), src + e * per, one, per);
  }
  w.set_metadata("format", "pt");
  file_write_atomic(dir + "/config.json", cfg.dump(2) + "\n");
  w.write(dir + "/model.safetensors");
}

void t5_load_weights(T5Model& m, const std::string& dir) {
  const TensorDir src = TensorDir::open(dir);
  const std::string why = "config.json t5 model needs it";
  // The embedding: shared.weight, or one of the stacks' tied copies HF may have kept instead.
  const char* aliases[] = {"encoder.embed_tokens.weight", "decoder.embed_tokens.weight"};
  std::string embed_from = "shared.weight";
  if (!src.find("shared.weight"))
    for (const char* a : aliases)
      if (src.find(a)) {
        embed_from = a;
        break;
      }
  std::set<std::string> used;
  for (const ParamSpec& s : m.layout().specs()) {
    float* dst = m.params().data() + s.offset;
    if (s.name.find('*') != std::string::npos) {  // [E, ...] experts from one HF tensor each
      const std::vector<int64_t> full = s.shape.vec(), one(full.begin() + 1, full.end());
      const size_t per = size_t(s.shape.numel() / s.shape[0]);
      for (int64_t e = 0; e < s.shape[0]; e++) {
        const std::string n = expert_tensor_name(s.name, int(e));
        read_hf_tensor(src, n, one, false, dst + e * per, why);
        used.insert(n);
      }
      continue;
    }
    const std::string from = s.name == "shared.weight" ? embed_from : s.name;
    read_hf_tensor(src, from, s.shape.vec(), false, dst, why);
    used.insert(from);
  }
  const ParamSpec& emb = m.layout().at("shared.weight");
  // The original T5 checkpoints (t5-small, -base, -large) carry a relative bias table in
  // block 0's cross-attention that T5 never uses (HF ignores it on load): so do we.
  const std::string dead = "decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight";
  for (const std::string& name : src.names()) {
    if (used.count(name)) continue;
    if (name == dead) {
      src.file_of(name).expect(name, {m.config().rel_buckets, m.config().n_head});
      continue;
    }
    const bool alias = name == aliases[0] || name == aliases[1];
    if (alias || (m.config().tied && name == "lm_head.weight")) {
      if (!alias) continue;  // a tied head saved anyway: HF ignores it too
      std::vector<float> copy(size_t(emb.shape.numel()));
      read_hf_tensor(src, name, emb.shape.vec(), false, copy.data(), why);
      const float* e = m.params().data() + emb.offset;
      for (size_t i = 0; i < copy.size(); i++)
        if (copy[i] != e[i])
          throw std::runtime_error(src.file_of(name).path() + ": tensor '" + name + "' differs from " + embed_from +
                                   " at index " + std::to_string(i) + " (HF ties the two: they must be equal)");
      continue;
    }
    throw std::runtime_error(src.file_of(name).path() + ": unexpected tensor '" + name +
                             "' (not part of a t5 model with this config.json)");
  }
}

std::unique_ptr<T5Model> t5_load(const std::string& dir) {
  auto m = std::make_unique<T5Model>(config_load(dir + "/config.json"), true);
  t5_load_weights(*m, dir);
  return m;
}

}  // namespace moe
