// Validation loss: the mean token cross-entropy over the first `batches` batches of
// a shard (all of them when batches <= 0), always the same windows (and for span
// corruption the same masks): the language-model loss, or T5's span-corruption loss
// (the cross-entropy of the targets: sentinels, spans, eos).
#pragma once
#include "data/batches.h"
#include "data/dataset.h"
#include "dist/comm.h"
#include "model/lm.h"

namespace moe {

// The batches of a dataset's shard for this model: language-model windows of `seq`
// tokens, or for an encoder-decoder T5's span corruption with `seq` encoder tokens (the
// dataset's tokenizer reserves the sentinels at the top of its vocabulary; seed: the
// masks'). Throws naming the dataset when it has no sentinels for a T5 model.
// Throws (naming the dataset) when a T5 model meets a dataset without sentinels.
void check_dataset_for(const DatasetInfo& ds, const ModelConfig& mc);
std::unique_ptr<BatchSource> model_batches(const DatasetInfo& ds, const ModelConfig& mc, const std::string& shard,
                                           int B, int seq, uint64_t seed);

struct EvalResult {
  double loss = 0;       // mean over tokens
  double perplexity = 0; // exp(loss)
  uint64_t tokens = 0;
  int batches = 0;
};

// comm (several ranks): batch i is run by rank i mod P and the per-batch sums are
// all-reduced, then added in batch order: every rank gets the one-process result, bit
// for bit. Each batch is routed on its own (MoE blocks must not be grouped meanwhile).
// replicas > 1 (expert parallelism): ranks [g replicas, (g+1) replicas) hold the parts
// of one model and run group g's batches together (i mod (size / replicas) == g), each
// its B / replicas rows; the caller routes the MoE blocks over that group
// (LanguageModel::set_moe_group), so capacity is the whole batch's as in one process. The
// per-batch sums then add the parts in another order: equal to fp32 rounding.
EvalResult evaluate(LanguageModel& m, const BatchSource& data, int batches, Compute compute, Comm* comm = nullptr,
                    int replicas = 1);

}  // namespace moe
