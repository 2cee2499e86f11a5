// Validation loss: the mean token cross-entropy over the first `batches` batches of
// a shard (all of them when batches <= 0), always the same windows.
#pragma once
#include "data/loader.h"
#include "dist/comm.h"
#include "model/model.h"

namespace moe {

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
// (Model::set_moe_group), so capacity is the whole batch's as in one process. The
// per-batch sums then add the parts in another order: equal to fp32 rounding.
EvalResult evaluate(Model& m, const DataLoader& data, int batches, Compute compute, Comm* comm = nullptr,
                    int replicas = 1);

}  // namespace moe
