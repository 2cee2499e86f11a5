// The decoder-only transformer: parameters in one flat buffer with HF tensor
// names, explicit forward and backward over the ops (no tape), activations kept in
// an arena sized for the batch. GPT-2 and Llama families share this code; the
// config's part flags choose norm, MLP, positions, biases and qkv fusion.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/family.h"
#include "model/layer_offsets.h"
#include "model/lm.h"
#include "moe/moe_layer.h"
#include "tensor/arena.h"
#include "tensor/dtype.h"
#include "tensor/flat.h"

namespace moe {

struct LayerActs;
struct LinearBuffers;  // model/lin.h

// Every parameter's name (HF, '*' for the expert index of [E, ...] tensors) and
// shape (ours: linear weights [out, in]) with the role offsets: what a Model of this
// config holds, computed without allocating it (upcycling plans a 7B model this way).
struct ModelLayout {
  ParamLayout layout;
  size_t embed = 0, pos = LayerOffsets::npos, lnf = 0, lnf_b = LayerOffsets::npos, head = 0;
  std::vector<LayerOffsets> layers;
};

// cfg must be valid. A partial split lays its expert tensors out after all the others.
ModelLayout model_layout(const ModelConfig& cfg, ExpertSplit split = {});
// The index of every tensor in the full model's layout (what seeds its init stream).
std::map<std::string, size_t> model_tensor_index(const ModelConfig& cfg);


class Model : public LanguageModel {
 public:
  // trainable = false: no gradient buffer (inference only; backward() refuses).
  // split: the experts held (expert parallelism; see ExpertSplit).
  explicit Model(const ModelConfig& cfg, bool trainable = true, ExpertSplit split = {});
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  const ModelConfig& config() const override { return cfg_; }
  ExpertSplit expert_split() const override { return split_; }
  const Family& family() const { return *family_; }
  const ParamLayout& layout() const override { return layout_; }
  // Mutable access marks the bf16 compute copy stale (refreshed by the next bf16 forward).
  FlatBuffer& params() override {
    bf16_fresh_ = false;
    return params_;
  }
  // For an optimizer that writes the bf16 copy in its own pass over the parameters:
  // the buffer to write (sized to the layout), then mark_bf16_fresh() once written.
  bf16* bf16_copy_for_update() override {
    params_bf_.resize(params_.numel());
    return params_bf_.data();
  }
  void mark_bf16_fresh() override { bf16_fresh_ = true; }
  FlatBuffer& grads() override { return grads_; }
  const FlatBuffer& params() const override { return params_; }
  // Role -> tensor name, and the tensor of a role (nullptr when the config has none).
  std::string name(Role r, int layer = 0) const { return family_->name(r, layer); }

  // GPT-2-style init: N(0, 0.02) weights, residual projections N(0, 0.02/sqrt(2L)),
  // norm weights 1, biases 0. Deterministic in `seed`.
  void init_weights(uint64_t seed) override;

  // inputs (B,T) token ids in [0, V); targets (B,T) with -1 = ignored, or null for
  // logits only. Returns the mean cross-entropy over the valid targets (0 when
  // none or no targets). Keeps the activations the backward needs.
  float forward(const int32_t* inputs, const int32_t* targets, int B, int T, const ForwardOptions& opt = {});
  // Gradients of (loss_scale x the last forward's mean loss), accumulated into grads().
  void backward(float loss_scale = 1.0f) override;
  float forward_rows(const TokenBatch& b, int row0, int rows, const ForwardOptions& opt) override {
    const size_t at = size_t(row0) * b.T;
    return forward(b.inputs.data() + at, b.targets.data() + at, rows, b.T, opt);
  }
  double train_flops_per_token(int T, int Td) const override;
  void save(const std::string& dir, STDType dtype) const override;
  const float* logits() const { return logits_; }  // (B,T,V) of the last forward
  // The last forward's residual stream entering layer l (l = n_layer: after the last
  // layer, before the final norm), and the last layer's MLP / MoE output (B,T,C)
  // (after a backward with recompute: layer 0's, the last one rerun).
  const float* hidden(int l) const;
  const float* last_mlp_output() const;
  int valid_targets() const override { return n_valid_; }

  // Where each tensor lives in the flat buffers (for inference paths such as generate.cpp).
  const LayerOffsets& layer_offsets(int l) const { return lay_[l]; }
  size_t off_embed() const { return off_embed_; }
  size_t off_pos() const { return off_pos_; }
  size_t off_final_norm() const { return off_lnf_; }
  size_t off_final_norm_bias() const { return off_lnf_b_; }
  size_t off_head() const { return off_head_; }

  // MoE: the aux + z losses of the last forward (summed over MoE layers; part of the
  // loss the backward differentiates), and each MoE layer's block (null for dense layers).
  double moe_loss() const override { return moe_loss_; }
  MoeWeights<float> moe_weights(int l) const;  // pointers into params() of MoE layer l
  const MoeBlock* moe_block(int l) const override { return moe_[l].get(); }
  int layer_slots() const override { return cfg_.n_layer; }
  // Data parallelism: every MoE block routes over the global batch of `group` (MoeBlock::set_group).
  void set_moe_group(Comm* group) override {
    for (auto& b : moe_)
      if (b) b->set_group(group);
  }

  // Per-token losses of the last forward (B*T; 0 where ignored).
  const float* token_losses() const { return losses_; }

  // Activation recomputation: the forward keeps only each layer's input (the residual
  // stream) and what the loss needs; the backward reruns each layer's forward into one
  // shared set of layer buffers, then that layer's backward. Gradients, losses and
  // routing are bit-identical to the run without it (same ops in the same order, same
  // dropout, jitter and expert-dropout masks); the arena holds one layer's activations
  // instead of L. Takes effect at the next forward.
  void set_recompute(bool on) override { recompute_ = on; }
  bool recompute() const { return recompute_; }
  // Bytes of the activation arena carved for the last forward's (B, T), and of the
  // arena plus the MoE blocks' buffers (0 before the first forward).
  size_t arena_bytes() const { return arena_bytes_; }
  size_t activation_bytes() const override;

 private:
  struct Acts;
  void ensure_acts(int B, int T);
  LayerActs& layer_acts(int l);
  // Layer l: xs[l] -> x_out, activations into la (model_step.cpp).
  void layer_forward(int l, LayerActs& la, float* x_out);
  // Layer l's backward: a.dres holds d x_out on entry, d xs[l] on return.
  void layer_backward(int l, LayerActs& la);
  void norm_fwd(float* out, float* mean, float* rstd, const float* inp, size_t w, size_t b, size_t N);
  void lin_fwd(float* out, const float* inp, const bf16* inp_bf, size_t W, size_t b, int N, int IC, int OC);
  void lin_bwd(float* dinp, bool acc_dinp, const float* dout, const float* inp, const bf16* inp_bf, size_t W,
               size_t b, int N, int IC, int OC);
  const bf16* to_bf16(bf16* dst, const float* src, size_t n);
  LinearBuffers lin_buffers();

  ModelConfig cfg_;
  ExpertSplit split_;
  const Family* family_;
  ParamLayout layout_;
  FlatBuffer params_, grads_;
  size_t off_embed_ = 0, off_pos_ = LayerOffsets::npos, off_lnf_ = 0, off_lnf_b_ = LayerOffsets::npos,
         off_head_ = 0;
  std::vector<LayerOffsets> lay_;

  // bf16 copy of the parameters (same layout), refreshed at every forward in bf16 mode.
  std::vector<bf16> params_bf_;
  bool bf16_fresh_ = false;
  std::unique_ptr<Arena> arena_;
  std::unique_ptr<Acts> acts_;
  bool recompute_ = false, acts_recompute_ = false;  // wanted; how the arena was carved
  size_t arena_bytes_ = 0;
  int B_ = 0, T_ = 0, n_valid_ = 0;
  ForwardOptions fopt_;
  float bwd_scale_ = 1.0f;  // the running backward's loss_scale (MoE losses' weight)
  const int32_t* inputs_ = nullptr;
  std::vector<int32_t> inputs_copy_, targets_copy_;
  float* logits_ = nullptr;
  float* losses_ = nullptr;
  std::vector<std::unique_ptr<MoeBlock>> moe_;  // per layer, null when dense
  std::unique_ptr<MoeBlock> moe_shared_;        // recompute: the one set of MoE buffers, swapped in
  double moe_loss_ = 0;
  MoeWeights<bf16> moe_weights_bf16(int l) const;
};

}  // namespace moe
