// The T5 encoder-decoder (HF T5ForConditionalGeneration semantics): an encoder stack
// (bidirectional self-attention, MLP) and a decoder stack (causal self-attention,
// cross-attention over the encoder's output, MLP), each pre-norm with T5's RMS norm,
// attention without the 1/sqrt(d) scale, one relative position bias table per stack
// (held by block 0, added to every layer's scores), no biases, the token embedding
// shared by both stacks; the head is untied (T5 v1.1) or the embedding with the
// decoder output scaled by d_model^-0.5 (the original T5). MLP: relu (wo(relu(wi x)))
// or gated-gelu (wo(gelu_tanh(wi_0 x) * wi_1 x)).
//
// Parameters live in one flat buffer under HF names, like Model's (model.h); the
// forward and backward are explicit over the ops (t5_step.cpp).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "model/config.h"
#include "model/lm.h"
#include "model/layer_offsets.h"
#include "moe/moe_layer.h"
#include "tensor/dtype.h"
#include "tensor/flat.h"

namespace moe {

struct LinearBuffers;  // model/lin.h

// Offsets of one block's tensors. `b` uses Model's fields for the parts both have:
// norm1 + q, k, v, o (self-attention), norm2 (the MLP's norm), gate = wi_0 and up =
// wi_1 (gated-gelu) or up = wi (relu), down = wo. Decoder blocks add the cross-attention.
struct T5LayerOffsets {
  static constexpr size_t npos = LayerOffsets::npos;
  LayerOffsets b;
  size_t xnorm = npos, xq = npos, xk = npos, xv = npos, xo = npos;
};

struct T5Layout {
  ParamLayout layout;
  size_t shared = 0, enc_rel = 0, dec_rel = 0, enc_norm = 0, dec_norm = 0, head = 0;
  std::vector<T5LayerOffsets> enc, dec;
};

// Every tensor's HF name and shape (linear weights [out, in], as HF stores them).
T5Layout t5_layout(const ModelConfig& cfg);

class T5Model : public LanguageModel {
 public:
  // cfg.family must be "t5". trainable = false: no gradient buffer.
  explicit T5Model(const ModelConfig& cfg, bool trainable = true);
  ~T5Model();
  T5Model(const T5Model&) = delete;
  T5Model& operator=(const T5Model&) = delete;

  const ModelConfig& config() const override { return cfg_; }
  const ParamLayout& layout() const override { return lay_.layout; }
  const T5Layout& offsets() const { return lay_; }
  FlatBuffer& params() override {
    bf16_fresh_ = false;
    return params_;
  }
  const FlatBuffer& params() const override { return params_; }
  FlatBuffer& grads() override { return grads_; }
  bf16* bf16_copy_for_update() override {
    params_bf_.resize(params_.numel());
    return params_bf_.data();
  }
  void mark_bf16_fresh() override { bf16_fresh_ = true; }

  // HF's T5 init with factor 1 (embedding N(0, 1); q N(0, (C d_kv)^-1/2), k, v and wi
  // N(0, C^-1/2), o N(0, (H d_kv)^-1/2), wo N(0, F^-1/2), relative bias N(0, C^-1/2),
  // norms 1), except the untied head: N(0, C^-1/2) (fan-in scaling, as T5X; HF's N(0, 1)
  // starts with logits of size sqrt(C)). Deterministic in `seed`.
  void init_weights(uint64_t seed) override;

  // enc (B,Te) encoder token ids, dec (B,Td) decoder inputs (the targets shifted right
  // behind the decoder start token), targets (B,Td) with -1 = ignored, or null for
  // logits only. Returns the mean cross-entropy over the valid targets. Keeps what the
  // backward needs. Refuses dropout and hidden_in (not implemented for T5).
  float forward(const int32_t* enc, const int32_t* dec, const int32_t* targets, int B, int Te, int Td,
                const ForwardOptions& opt = {});
  // Gradients of (loss_scale x the last forward's mean loss), accumulated into grads().
  void backward(float loss_scale = 1.0f) override;
  float forward_rows(const TokenBatch& b, int row0, int rows, const ForwardOptions& opt) override;
  const float* logits() const { return logits_; }  // (B,Td,V) of the last forward
  const float* encoder_output() const;              // (B,Te,C): the encoder's final-normed output
  int valid_targets() const override { return n_valid_; }
  // Of the last forward, by layer slot (encoder l, decoder n_layer + l): the MLP's (or MoE
  // block's) normed input, and the residual stream after the layer (upcycling's step 0).
  const float* mlp_input(int slot) const;
  const float* stream_after(int slot) const;
  const float* token_losses() const { return losses_; }
  // MoE: the aux + z losses of the last forward (both stacks), and the blocks by slot:
  // encoder layer l is slot l, decoder layer l slot n_layer + l (null for dense layers).
  double moe_loss() const override { return moe_loss_; }
  int layer_slots() const override { return cfg_.n_layer + cfg_.n_dec_layer; }
  const MoeBlock* moe_block(int slot) const override;
  void set_moe_group(Comm* group) override;
  // What T5 does not have yet: recomputation, expert parallelism.
  void set_recompute(bool on) override;
  ExpertSplit expert_split() const override { return {}; }
  double train_flops_per_token(int Te, int Td) const override;
  void save(const std::string& dir, STDType dtype) const override;

 private:
  struct Acts;
  struct LayerActs;
  enum Stack { Enc, Dec };
  void ensure_acts(int B, int Te, int Td);
  void layer_forward(Stack s, int l);
  void layer_backward(Stack s, int l);
  void mlp_forward(const LayerOffsets& o, LayerActs& la, float* out, int N);
  void mlp_backward(const LayerOffsets& o, LayerActs& la, const float* dout, float* dln, int N);
  LinearBuffers lin_buffers();

  ModelConfig cfg_;
  T5Layout lay_;  // before the buffers, which it lays out
  FlatBuffer params_, grads_;
  std::vector<bf16> params_bf_;
  bool bf16_fresh_ = false;
  std::unique_ptr<Acts> acts_;
  int B_ = 0, Te_ = 0, Td_ = 0, n_valid_ = 0;
  ForwardOptions fopt_;
  std::vector<int32_t> enc_copy_, dec_copy_, targets_copy_;
  std::vector<std::unique_ptr<MoeBlock>> enc_moe_, dec_moe_;  // per layer, null when dense
  double moe_loss_ = 0;
  float bwd_scale_ = 1.0f;  // the running backward's loss_scale (the MoE losses' weight)
  int64_t first_row_ = 0;   // forward_rows: the global index of the first row
  MoeWeights<float> moe_weights(const LayerOffsets& o) const;
  MoeWeights<bf16> moe_weights_bf16(const LayerOffsets& o) const;
  float* logits_ = nullptr;
  float* losses_ = nullptr;
};

// Checkpoints: a Hugging Face t5 directory (config.json + model.safetensors). Loading
// checks every tensor against config.json (none missing, none unexpected, shapes,
// dtypes F32/BF16/F16, finite); encoder.embed_tokens.weight / decoder.embed_tokens.weight
// (HF ties them to shared.weight) are accepted when equal to it, and serve as the
// embedding when shared.weight is absent; a tied model's stored lm_head.weight is ignored.
void t5_save(const T5Model& m, const std::string& dir, STDType dtype = STDType::F32);
void t5_load_weights(T5Model& m, const std::string& dir);
std::unique_ptr<T5Model> t5_load(const std::string& dir);

}  // namespace moe
