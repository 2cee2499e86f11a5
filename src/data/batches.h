// Where training and evaluation take their batches from, whatever the objective: the
// language-model windows of a DataLoader (decoder-only models) or T5's span corruption
// (SpanCorruptionLoader), as TokenBatch (model/lm.h). Both keep the DataLoader's
// cursor/epoch state, so a run resumes exactly.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "data/loader.h"
#include "data/span_loader.h"
#include "data/token_batch.h"

namespace moe {

class BatchSource {
 public:
  virtual ~BatchSource() = default;
  virtual int64_t B() const = 0;
  virtual int T() const = 0;   // inputs per row (T5: encoder tokens)
  virtual int Td() const = 0;  // decoder tokens per row (0: decoder-only)
  virtual uint64_t batches_per_epoch() const = 0;
  // Shard tokens one batch consumes (B T, or B x the raw window for span corruption).
  virtual uint64_t shard_tokens_per_batch() const = 0;
  virtual void next(TokenBatch& b) = 0;
  virtual void batch_at(uint64_t i, TokenBatch& b) const = 0;  // evaluation: independent of the state
  virtual LoaderState state() const = 0;
  virtual void set_state(const LoaderState& s) = 0;
  virtual void set_shuffle(uint64_t seed) = 0;
};

// Language-model windows (inputs and targets shifted by one) of a token shard.
std::unique_ptr<BatchSource> lm_batches(const std::string& path, int64_t B, int64_t T, uint64_t vocab);
// Span corruption of a token shard (inputs_length in spec).
std::unique_ptr<BatchSource> span_batches(const std::string& path, int64_t B, const SpanCorruptionSpec& spec,
                                          uint64_t vocab);

}  // namespace moe
