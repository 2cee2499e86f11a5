// What training, evaluation and checkpoints need of a model, whatever its shape: the
// decoder-only Model (model.h: GPT-2, Llama, Mixtral) and the T5 encoder-decoder
// (t5.h) both are a LanguageModel. Parameters live in one flat buffer under HF names;
// a forward reads some rows of a TokenBatch.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/token_batch.h"
#include "io/safetensors.h"
#include "model/config.h"
#include "tensor/dtype.h"
#include "tensor/flat.h"

namespace moe {

class Comm;
class MoeBlock;

enum class Compute { F32, BF16 };  // bf16: GEMM operands in bf16, fp32 accumulation and master weights

struct ForwardOptions {
  Compute compute = Compute::F32;
  bool training = true;       // MoE: the training capacity factor (else the evaluation one)
  float dropout = 0.0f;       // on the embedding output and both residual branches
  uint64_t dropout_seed = 0;  // with dropout > 0: one mask per (seed, layer, site)
  // The global index of the batch's first token (data parallelism: rank r runs rows
  // [r B/P, ...) of the global batch): every mask (dropout, router jitter, expert dropout)
  // is drawn by global element index, so the ranks draw the one-process masks.
  int64_t token_offset = 0;
  // Inference on a slice of layers (upcycling's step-0 check): start from this (B,T,C)
  // residual stream instead of the embedding; inputs may then be null. No backward.
  const float* hidden_in = nullptr;
};

// Expert parallelism: a model that holds part `rank` of `ranks` equal parts of every
// MoE layer's experts (experts [rank E/ranks, (rank+1) E/ranks)). Its expert tensors
// are then [E/ranks, ...] (names unchanged: '*' stands for the global expert index,
// the first held one at row 0). The default holds every expert. `group`: the ranks
// holding the parts (its rank and size are rank and ranks), handed to the MoE blocks
// when the model is built, which then exchange token rows with them; null: a part
// that computes alone (tests, gathering).
struct ExpertSplit {
  int rank = 0, ranks = 1;
  Comm* group = nullptr;
  bool partial() const { return ranks > 1; }
  int count(int E) const { return E / ranks; }
  int first(int E) const { return rank * (E / ranks); }
};

class LanguageModel {
 public:
  virtual ~LanguageModel() = default;
  virtual const ModelConfig& config() const = 0;
  virtual const ParamLayout& layout() const = 0;
  // Mutable access marks the bf16 compute copy stale (refreshed by the next bf16 forward).
  virtual FlatBuffer& params() = 0;
  virtual const FlatBuffer& params() const = 0;
  virtual FlatBuffer& grads() = 0;
  // For an optimizer that writes the bf16 copy in its own pass over the parameters.
  virtual bf16* bf16_copy_for_update() = 0;
  virtual void mark_bf16_fresh() = 0;
  size_t num_params() const { return layout().num_params(); }
  virtual void init_weights(uint64_t seed) = 0;  // deterministic in the seed

  // Rows [row0, row0 + rows) of b; returns their mean loss over the valid targets.
  virtual float forward_rows(const TokenBatch& b, int row0, int rows, const ForwardOptions& opt) = 0;
  // Gradients of (loss_scale x the last forward's mean loss), accumulated into grads().
  virtual void backward(float loss_scale = 1.0f) = 0;
  virtual int valid_targets() const = 0;
  virtual double moe_loss() const = 0;  // MoE aux + z losses of the last forward (0: dense)
  // MoE blocks by layer slot (decoder-only: the layers; T5: encoder then decoder layers).
  virtual int layer_slots() const = 0;
  virtual const MoeBlock* moe_block(int slot) const = 0;
  virtual void set_moe_group(Comm* group) = 0;  // data parallelism: route over the group's global batch
  virtual void set_recompute(bool on) = 0;
  // Bytes of the activations carved for the last forward (0: not measured by this family).
  virtual size_t activation_bytes() const { return 0; }
  virtual ExpertSplit expert_split() const = 0;
  // Training FLOPs of one batch of B rows (T tokens; T5: T encoder and Td decoder tokens)
  // divided by its tokens() (6 x matmul parameters per token, plus attention).
  virtual double train_flops_per_token(int T, int Td) const = 0;
  // config.json + model.safetensors into the existing directory `dir` (F32, BF16 or F16).
  virtual void save(const std::string& dir, STDType dtype) const = 0;
};

}  // namespace moe
