// Checks shared by the whole-model oracle tests (test_oracle_model.cpp, test_oracle_t5.cpp).
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "model/lm.h"
#include "moe/moe_layer.h"
#include "ops/clip.h"
#include "tensor/flat.h"
#include "testutil.h"
#include "train/optimizer.h"

namespace moe::test {

// One tensor's weights after `steps` AdamW steps at rate lr, ours against the oracle's.
// Each entry moved by <= steps * lr. Adam divides each gradient by its own running rms,
// so an entry whose gradient is near zero (at fp32 noise level) takes a step of arbitrary
// relative error: at most 0.1% of the entries may differ beyond 1e-5, and none by more
// than a tenth of the largest possible move. Returns the largest difference.
inline double expect_adam_final_close(const std::vector<float>& got, const std::vector<float>& want, int steps,
                                      float lr, const std::string& what) {
  EXPECT_EQ(got.size(), want.size()) << what;
  size_t loose = 0;
  double worst = 0;
  for (size_t i = 0; i < got.size() && i < want.size(); i++) {
    const double d = std::fabs(double(got[i]) - want[i]);
    worst = std::max(worst, d);
    loose += d > 1e-5 + 1e-5 * std::fabs(want[i]);
  }
  EXPECT_LE(loose, got.size() / 1000) << what << ": " << loose << " entries beyond 1e-5";
  EXPECT_LE(worst, 0.1 * steps * lr) << what;
  return worst;
}

// A per-expert HF tensor name ("...experts.3.w1.weight", Mixtral's; "...experts.expert_3.wi.weight",
// switch_transformers') as expert 3's slice of our stacked [E, ...] tensor ("...experts.*.w1.weight",
// "...experts.expert_*.wi.weight"); nullopt when the name is not an expert's.
inline std::optional<std::vector<float>> expert_slice(const ParamLayout& L, const FlatBuffer& buf,
                                                      const std::string& name) {
  static const std::regex expert(R"(\.experts\.(expert_)?(\d+)\.)");
  std::smatch mt;
  if (L.find(name) || !std::regex_search(name, mt, expert)) return std::nullopt;
  const ParamSpec& s = L.at(mt.prefix().str() + ".experts." + mt[1].str() + "*." + mt.suffix().str());
  const int64_t e = std::stoll(mt[2].str()), per = s.shape.numel() / s.shape[0];
  EXPECT_LT(e, s.shape[0]) << name;
  const float* p = buf.data() + s.offset + e * per;
  return std::vector<float>(p, p + per);  // experts are [out, in] as ours: never transposed
}

// How many tensors the HF checkpoint holds (an [E, ...] expert tensor is E of them).
inline size_t hf_tensor_count(const ParamLayout& L) {
  size_t n = 0;
  for (const ParamSpec& s : L.specs()) n += s.name.find('*') == std::string::npos ? 1 : size_t(s.shape[0]);
  return n;
}

// Every MoE block's routing of the last forward (choices, kept pairs, counts) equals the
// oracle's "moe.<slot>.*" exactly, a block on both sides or on neither; with losses, also
// each block's aux and z (to 1e-6). Returns the blocks seen; *dropped gets their dropped pairs.
inline int expect_routing(const SafeTensorsFile& tf, const LanguageModel& m, const std::string& what, bool losses,
                          int* dropped) {
  int blocks = 0;
  *dropped = 0;
  for (int slot = 0; slot < m.layer_slots(); slot++) {
    const MoeBlock* blk = m.moe_block(slot);
    const std::string pre = "moe." + std::to_string(slot) + ".";
    EXPECT_EQ(blk != nullptr, tf.find(pre + "choice") != nullptr) << what << " layer " << slot << ": MoE on one side only";
    if (!blk || !tf.find(pre + "choice")) continue;
    blocks++;
    const MoeRouting& r = blk->routing();
    auto choice = tf.read_f32(tf.at(pre + "choice")), kept = tf.read_f32(tf.at(pre + "kept"));
    auto counts = tf.read_f32(tf.at(pre + "counts"));
    EXPECT_EQ(r.choice.size(), choice.size()) << pre;
    if (r.choice.size() != choice.size()) continue;
    int diff = 0;
    for (size_t i = 0; i < choice.size(); i++) diff += r.choice[i] != int(choice[i]) || int(r.kept[i]) != int(kept[i]);
    for (size_t e = 0; e < counts.size(); e++) diff += r.counts[e] != int(counts[e]);
    EXPECT_EQ(diff, 0) << what << " layer " << slot << ": routing (choices, kept, counts) differs";
    if (losses) {
      EXPECT_NEAR(blk->losses().aux, tf.read_f32(tf.at(pre + "aux"))[0], 1e-6) << pre;
      EXPECT_NEAR(blk->losses().z, tf.read_f32(tf.at(pre + "z"))[0], 1e-6) << pre;
    }
    *dropped += r.dropped();
  }
  return blocks;
}

// Every "grad.<name>" of the oracle against ours (ours(name): in the file's layout),
// each against its own scale: 2e-5 of its largest entry. Also: one gradient for every
// HF tensor. Returns the largest error as a fraction of its tensor's largest entry.
inline double expect_grads(const SafeTensorsFile& tf, const std::function<std::vector<float>(const std::string&)>& ours,
                           size_t hf_tensors, const std::string& what) {
  size_t checked = 0;
  double worst = 0;
  auto max_abs = [](const std::vector<float>& v) {
    double m = 0;
    for (float x : v) m = std::max(m, double(std::fabs(x)));
    return m;
  };
  for (const STEntry& e : tf.tensors()) {
    if (e.name.rfind("grad.", 0) != 0) continue;
    const std::string name = e.name.substr(5);
    auto want = tf.read_f32(e);
    auto got = ours(name);
    EXPECT_TRUE(all_close(got, want, 2e-5 * max_abs(want) + 1e-9, 1e-5, what + " grad " + name));
    if (got.size() == want.size()) {
      double d = 0;
      for (size_t i = 0; i < got.size(); i++) d = std::max(d, std::fabs(double(got[i]) - want[i]));
      worst = std::max(worst, d / (max_abs(want) + 1e-30));
    }
    checked++;
  }
  EXPECT_EQ(checked, hf_tensors) << "the oracle must give a gradient for every parameter";
  return worst;
}

// `steps` steps of global-norm clipping + AdamW on one batch at a constant rate, as the
// oracle runs them: the losses before each update and the norms before clipping.
inline void train_steps(LanguageModel& m, const TokenBatch& b, int steps, const AdamWParams& hp, float clip,
                        std::vector<float>* losses, std::vector<float>* norms) {
  AdamW opt(m.layout());
  for (int s = 0; s < steps; s++) {
    m.grads().zero();
    losses->push_back(m.forward_rows(b, 0, b.B, ForwardOptions{}));
    m.backward();
    norms->push_back(float(grad_clip(m.grads().data(), m.grads().numel(), clip)));
    opt.step(m.params(), m.grads(), hp, hp.lr);
  }
}

}  // namespace moe::test
