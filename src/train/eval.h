// Validation loss: the mean token cross-entropy over the first `batches` batches of
// a shard (all of them when batches <= 0), always the same windows.
#pragma once
#include "data/loader.h"
#include "model/model.h"

namespace moe {

struct EvalResult {
  double loss = 0;       // mean over tokens
  double perplexity = 0; // exp(loss)
  uint64_t tokens = 0;
  int batches = 0;
};

EvalResult evaluate(Model& m, const DataLoader& data, int batches, Compute compute);

}  // namespace moe
