// Batches for T5's span corruption objective (data/span_corruption.h) from a token
// shard: each row is one window of `lengths().raw` raw tokens, read by a DataLoader
// (the same windows, shuffle and cursor/epoch state, so a run resumes exactly),
// corrupted with a noise mask drawn from (seed, epoch, the row's place in the epoch):
//   enc (B, inputs)   the text with each noise span replaced by a sentinel, then eos
//   dec (B, targets)  the targets shifted right behind the decoder start token (pad)
//   tgt (B, targets)  sentinel 0, span 0, sentinel 1, span 1, ..., eos
// Evaluation (batch_at) draws its masks from (seed, batch index) alone: the same
// batches whenever it runs. The sentinels are the top ids sentinel0, sentinel0 - 1, ...
// (the tokenizer reserves them: open() refuses a shard holding one).
#pragma once
#include <cstdint>
#include <string>

#include "data/loader.h"
#include "data/span_corruption.h"

namespace moe {

struct SpanCorruptionSpec {
  int inputs_length = 512;   // encoder tokens per row
  double density = 0.15;     // noise fraction
  double mean_span = 3.0;    // mean noise span length
  int32_t sentinel0 = -1;    // <extra_id_0>; -1: the vocabulary's last id
  int max_sentinels = 100;   // sentinels the tokenizer holds
  int32_t eos = 1, pad = 0;  // pad: the decoder start token (the model's decoder_start_token_id)
  uint64_t seed = 0;
};

class SpanCorruptionLoader {
 public:
  // Throws naming the shard when it holds less than one batch of windows, and naming the
  // setting when the spec does not fit (more spans than sentinels, ids out of range).
  static SpanCorruptionLoader open(const std::string& path, int64_t B, const SpanCorruptionSpec& spec,
                                   uint64_t vocab);

  const SpanLengths& lengths() const { return len_; }
  const SpanCorruptionSpec& spec() const { return spec_; }
  int64_t B() const { return raw_.B(); }
  uint64_t batches_per_epoch() const { return raw_.batches_per_epoch(); }
  void set_shuffle(uint64_t seed) { raw_.set_shuffle(seed); }

  void next(int32_t* enc, int32_t* dec, int32_t* tgt);
  void batch_at(uint64_t i, int32_t* enc, int32_t* dec, int32_t* tgt) const;

  LoaderState state() const { return raw_.state(); }
  void set_state(const LoaderState& s) { raw_.set_state(s); }

 private:
  SpanCorruptionLoader(DataLoader raw, const SpanCorruptionSpec& spec, const SpanLengths& len);
  void corrupt(const int32_t* windows, uint64_t stream, uint64_t row0, int32_t* enc, int32_t* dec, int32_t* tgt) const;
  DataLoader raw_;
  SpanCorruptionSpec spec_;
  SpanLengths len_;
  mutable std::vector<int32_t> windows_, unused_;
};

}  // namespace moe
