#include "model/t5/t5_family.h"
#include "model/t5/t5_upcycle.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "io/files.h"
#include "model/checkpoint.h"
#include "model/arch.h"
#include "model/config.h"
#include "ops/linear.h"
#include "ops/relu.h"
#include "upcycle/expert_init.h"

namespace moe {

namespace {

[[noreturn]] void bad(const std::string& what) { throw std::invalid_argument(what); }

// The expert recipe of layer slot `slot` (the seed's layer index): the strategy's knobs.
ExpertRecipe recipe_of(const ModelConfig& dc, const T5UpcycleOptions& t, int slot) {
  const UpcycleOptions& o = t.base;
  ExpertRecipe r;
  r.E = o.experts, r.G = o.granularity, r.F = dc.n_inner, r.seed = o.seed, r.layer = slot;
  r.noise = o.strategy == UpcycleStrategy::Noise ? o.noise : 0.0f;
  r.drop_rate = o.strategy == UpcycleStrategy::Drop ? o.drop_rate : 0.0f;
  // Granular shards: each expert holds 1/G of the MLP, so G of them are needed to make it
  // (renormalised top-k: G / K's share; the paper's scaling); otherwise 1 or --weight-scale.
  r.scale = o.weight_scale > 0 ? o.weight_scale : float(r.G);
  r.bias_scale = 1.0f;
  return r;
}

// Dense MLP of a layer on N rows x: out (N, C).
void dense_mlp(const T5Model& m, const LayerOffsets& o, const float* x, int N, float* out) {
  const ModelConfig& c = m.config();
  const int C = c.n_embd, F = c.n_inner;
  const float* P = m.params().data();
  std::vector<float> h1(size_t(N) * F), h2, act(size_t(N) * F);
  if (c.mlp == MlpKind::GeGLU) {
    h2.resize(h1.size());
    linear_forward(h1.data(), x, P + o.gate, nullptr, N, C, F);
    linear_forward(h2.data(), x, P + o.up, nullptr, N, C, F);
    geglu_forward(act.data(), h1.data(), h2.data(), h1.size());
  } else {
    linear_forward(h1.data(), x, P + o.up, nullptr, N, C, F);
    relu_forward(act.data(), h1.data(), h1.size());
  }
  linear_forward(out, act.data(), P + o.down, nullptr, N, F, C);
}

const LayerOffsets& offsets_of(const T5Model& m, int slot) {
  const int L = m.config().n_layer;
  return slot < L ? m.offsets().enc[size_t(slot)].b : m.offsets().dec[size_t(slot - L)].b;
}

}  // namespace

ModelConfig t5_upcycled_config(const ModelConfig& dc, const T5UpcycleOptions& t) {
  const UpcycleOptions& o = t.base;
  if (!t5_family(dc)) bad("t5 upcycling needs a t5 checkpoint (this one is " + dc.family + ")");
  if (dc.is_moe()) bad("--from: already an MoE model (" + std::to_string(dc.n_experts) + " experts)");
  if (o.experts < 1) bad("--experts must be at least 1");
  if (o.top_k < 1 || o.top_k > o.experts)
    bad("--top-k " + std::to_string(o.top_k) + " must be in [1, --experts " + std::to_string(o.experts) + "]");
  if (o.granularity < 1 || dc.n_inner % o.granularity != 0)
    bad("--granularity " + std::to_string(o.granularity) + " must divide the MLP width " + std::to_string(dc.n_inner));
  if (o.carry_optimizer) family_require(dc, Capability::CarryOptimizer);
  if (o.scale_to_dense) family_require(dc, Capability::ScaleToDense);
  ModelConfig mc = dc;
  mc.n_experts = o.experts, mc.top_k = o.top_k, mc.moe_renormalize = o.renormalize;
  mc.moe_inner = o.granularity > 1 ? dc.n_inner / o.granularity : 0;
  mc.moe_layers = o.layers, mc.moe_all_layers = o.all_layers;
  mc.capacity_factor = o.capacity_factor, mc.eval_capacity_factor = o.eval_capacity_factor;
  mc.aux_loss_coef = o.aux_coef, mc.z_loss_coef = o.z_coef;
  mc.expert_choice = t.encoder_expert_choice, mc.enc_capacity_factor = t.encoder_capacity_factor;
  try {
    mc.validate();
  } catch (const std::invalid_argument& e) {
    bad(std::string("upcycled config: ") + e.what());
  }
  return mc;
}

void t5_upcycle_weights(const T5Model& dense, T5Model& moe, const T5UpcycleOptions& t) {
  const ModelConfig &dc = dense.config(), &mc = moe.config();
  const int C = dc.n_embd, F = dc.n_inner, E = mc.n_experts, G = t.base.granularity, Fe = F / G;
  const float router_std = t.base.router_std >= 0 ? t.base.router_std : float(std::sqrt(0.1 / C));  // Switch's
  // Everything the two layouts share by name is copied.
  for (const ParamSpec& s : moe.layout().specs()) {
    if (s.name.find('*') != std::string::npos || s.name.ends_with("router.classifier.weight")) continue;
    const ParamSpec& d = dense.layout().at(s.name);
    std::memcpy(moe.params().data() + s.offset, dense.params().data() + d.offset, size_t(s.shape.numel()) * 4);
  }
  for (int slot = 0; slot < moe.layer_slots(); slot++) {
    if (!moe.moe_block(slot)) continue;
    const LayerOffsets &dl = offsets_of(dense, slot), &ml = offsets_of(moe, slot);
    const ExpertRecipe r = recipe_of(dc, t, slot);
    const float* P = dense.params().data();
    float* Q = moe.params().data();
    // w1 <- wi_0 (gated) or wi; w3 <- wi_1; w2 <- wo: one expert at a time.
    struct Part {
      size_t from, to;
      MlpPart part;
      uint64_t salt;
    };
    std::vector<Part> parts;
    if (dc.mlp == MlpKind::GeGLU) parts = {{dl.gate, ml.ew1, MlpPart::In, 1}, {dl.up, ml.ew3, MlpPart::In, 2}};
    else parts = {{dl.up, ml.ew1, MlpPart::In, 1}};
    parts.push_back({dl.down, ml.ew2, MlpPart::Out, 3});
    for (const Part& p : parts) {
      const bool in = p.part == MlpPart::In;
      const int64_t rows = in ? F : C, cols = in ? C : F;
      const TensorStats st = tensor_stats(P + p.from, size_t(rows * cols));
      const size_t per = size_t(Fe) * C;
      for (int e = 0; e < E; e++) make_expert(r, p.part, in ? 0 : 1, P + p.from, rows, cols, st, e, p.salt, Q + p.to + e * per);
    }
    const std::vector<float> router = router_init(E, G, C, router_std, t.base.seed, slot);
    std::memcpy(Q + ml.router, router.data(), router.size() * sizeof(float));
  }
}

std::string t5_upcycle(const std::string& dense_path, const std::string& out, const T5UpcycleOptions& t, bool force) {
  const std::string dir = resolve_model_dir(dense_path);
  auto dense = t5_load(dir);
  const ModelConfig mc = t5_upcycled_config(dense->config(), t);
  refuse_overlap(out, dir, "the dense checkpoint");  // never write over (or around) what is read
  if (path_exists(out) && !force) throw std::invalid_argument(out + ": already exists (give --force to replace it)");
  T5Model moe(mc, false);
  t5_upcycle_weights(*dense, moe, t);
  const std::string tmp = temp_dir_beside(out);
  try {
    const std::string dt = t.base.dtype;
    t5_save(moe, tmp, dt == "bf16" ? STDType::BF16 : dt == "f16" ? STDType::F16 : STDType::F32);
    nlohmann::ordered_json prov{{"from", dir},
                                {"family", "t5"},
                                {"experts", mc.n_experts},
                                {"decoder_top_k", mc.top_k},
                                {"decoder_combine", mc.moe_renormalize ? "renormalised" : "raw"},
                                {"encoder_routing", mc.expert_choice ? "expert_choice" : "tokens_choose"},
                                {"encoder_capacity_factor", mc.enc_capacity_factor},
                                {"granularity", t.base.granularity},
                                {"noise", t.base.strategy == UpcycleStrategy::Noise ? t.base.noise : 0.0f},
                                {"drop_rate", t.base.strategy == UpcycleStrategy::Drop ? t.base.drop_rate : 0.0f},
                                {"seed", t.base.seed}};
    file_write_atomic(tmp + "/upcycling.json", prov.dump(2) + "\n");
    for (const char* f : {"tokenizer.model", "trainer_state.json"})
      if (path_exists(dir + "/" + f)) file_copy_atomic(dir + "/" + f, tmp + "/" + f);
    fsync_dir(tmp);
    dir_commit(tmp, out);
  } catch (...) {
    remove_tree(tmp);
    throw;
  }
  return dir;
}

Step0Report t5_step0_check(T5Model& dense, T5Model& moe, const TokenBatch& b) {
  ForwardOptions fo;
  fo.training = false;  // evaluation routing
  Step0Report rep;
  rep.B = b.B, rep.T = b.T;
  const int C = dense.config().n_embd, L = dense.config().n_layer;
  rep.dense_loss = dense.forward_rows(b, 0, b.B, fo);
  const int slots = dense.layer_slots();
  std::vector<std::vector<float>> dense_in(static_cast<size_t>(slots)), dense_x(static_cast<size_t>(slots));
  auto rows_of = [&](int slot) { return size_t(b.B) * size_t(slot < L ? b.T : b.Td); };
  for (int s = 0; s < slots; s++) {
    const size_t n = rows_of(s) * C;
    dense_in[size_t(s)].assign(dense.mlp_input(s), dense.mlp_input(s) + n);
    dense_x[size_t(s)].assign(dense.stream_after(s), dense.stream_after(s) + n);
  }
  rep.moe_loss = moe.forward_rows(b, 0, b.B, fo);
  for (int s = 0; s < slots; s++) {
    Step0Layer Ls;
    Ls.layer = s;
    const size_t n = rows_of(s) * C;
    const float* mx = moe.stream_after(s);
    for (size_t i = 0; i < n; i++) Ls.hidden_max_diff = std::max(Ls.hidden_max_diff, double(std::fabs(mx[i] - dense_x[size_t(s)][i])));
    const MoeBlock* mb = moe.moe_block(s);
    Ls.moe = mb != nullptr;
    if (mb) {
      // The block and the dense MLP on the same input: the dense model's.
      const int N = int(rows_of(s));
      MoeBlock blk(mb->spec());
      blk.set_capacity_factor(mb->spec().expert_choice ? moe.config().enc_capacity_factor
                                                       : moe.config().eval_capacity_factor);
      if (mb->spec().expert_choice || t5_is_switch(moe.config())) blk.set_choice_group(s < L ? b.T : b.Td);
      blk.set_noise(0, 0, 0);
      const LayerOffsets& o = offsets_of(moe, s);
      const float* Q = moe.params().data();
      const MoeWeights<float> w{Q + o.router, Q + o.ew1, nullptr, o.ew3 == LayerOffsets::npos ? nullptr : Q + o.ew3,
                                Q + o.ew2, nullptr};
      std::vector<float> ym(n), yd(n);
      blk.forward(ym.data(), dense_in[size_t(s)].data(), N, w);
      dense_mlp(dense, offsets_of(dense, s), dense_in[size_t(s)].data(), N, yd.data());
      double md = 0, dd = 0;
      for (size_t i = 0; i < n; i++) {
        Ls.block_max_diff = std::max(Ls.block_max_diff, double(std::fabs(ym[i] - yd[i])));
        Ls.mlp_max_abs = std::max(Ls.mlp_max_abs, double(std::fabs(yd[i])));
        md += double(ym[i]) * yd[i], dd += double(yd[i]) * yd[i];
      }
      Ls.scale = dd > 0 ? md / dd : 1.0;
      const MoeRouting& r = blk.routing();
      double mass = 0;
      int untaken = 0;
      for (int t = 0; t < N; t++) {
        double m = 0;
        bool any = false;
        for (int k = 0; k < r.K; k++)
          if (r.kept[size_t(t) * r.K + k]) m += r.weight[size_t(t) * r.K + k], any = true;
        mass += m, untaken += !any;
      }
      Ls.gate_mass = mass / N;
      Ls.drop_fraction = double(r.dropped()) / (double(N) * r.K);
      if (mb->spec().expert_choice) {
        Ls.untaken = double(untaken) / N;
        char buf[320];
        std::snprintf(buf, sizeof buf,
                      "expert choice is not exact at step 0: with copied experts the layer computes m(x) x MLP(x), "
                      "m(x) the summed router probability of the experts that took x (mean %.3f here; 1 only when "
                      "every expert takes x); %.1f%% of tokens were taken by no expert (m = 0)",
                      Ls.gate_mass, 100 * Ls.untaken);
        Ls.note = buf;
      }
    }
    rep.layers.push_back(Ls);
  }
  return rep;
}

}  // namespace moe
