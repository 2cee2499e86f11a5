// DataLoader: batches of B sequences of T tokens from one token shard, for training
// and evaluation. Plain integers for state, so a run saves and restores it exactly.
//
// The shard is read as consecutive, non-overlapping windows of T + 1 tokens that
// share their boundary token: row b of a batch starting at token offset `cursor`
// covers tokens [cursor + b*T, cursor + b*T + T]; inputs are its first T tokens and
// targets its last T (inputs shifted by one). A batch consumes B*T tokens:
//
//   next():  when cursor + B*T + 1 > size, wrap first (cursor = 0, epoch += 1); fill
//            the batch at cursor; cursor += B*T.
//
// So one epoch is batches_per_epoch() = (size - 1) / (B*T) batches, and the last
// (size - 1) % (B*T) tokens of each epoch are not seen. Evaluation uses batch_at(i),
// the i-th batch from the start of the shard, which never touches the state.
//
// Training shuffles (set_shuffle): the shard is cut into windows of T + 1 tokens at
// stride T, and each epoch visits them in a permutation drawn from (seed, epoch), B
// windows per batch. A corpus stored document after document (all of the Bible, then
// all of Austen) then feeds every batch from everywhere. The state is the same two
// integers: cursor / T is the position in the epoch's permutation.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/shard.h"

namespace moe {

struct LoaderState {
  uint64_t cursor = 0;  // token offset of the next batch (before any wrap)
  uint64_t epoch = 0;   // completed passes over the shard
  bool operator==(const LoaderState&) const = default;
};

class DataLoader {
 public:
  // Throws naming the shard's file and the sizes when it holds fewer than B*T + 1
  // tokens (one batch), or when B or T < 1.
  DataLoader(TokenShard shard, int64_t B, int64_t T);
  // TokenShard::open(path, expected_vocab) + check_tokens(), then the constructor above.
  static DataLoader open(const std::string& path, int64_t B, int64_t T, uint64_t expected_vocab = 0);

  int64_t B() const { return B_; }
  int64_t T() const { return T_; }
  const TokenShard& shard() const { return shard_; }
  uint64_t batches_per_epoch() const { return (shard_.size() - 1) / uint64_t(B_ * T_); }

  // inputs (B, T), targets (B, T): caller-owned, int32.
  void next(int32_t* inputs, int32_t* targets);
  // Batch i (i < batches_per_epoch()) from the start of the shard: what next() returns
  // from state {i*B*T, any epoch}. Throws when i is out of range.
  void batch_at(uint64_t i, int32_t* inputs, int32_t* targets) const;

  // Visit windows in a seeded random order per epoch (next() only; batch_at stays
  // sequential, for evaluation).
  void set_shuffle(uint64_t seed);

  LoaderState state() const { return state_; }
  // Throws when the cursor is beyond the shard (a state saved for another shard).
  void set_state(const LoaderState& s);

 private:
  void fill(uint64_t cursor, int32_t* inputs, int32_t* targets) const;
  void fill_row(uint64_t token_offset, int64_t b, int32_t* inputs, int32_t* targets) const;
  bool shuffle_ = false;
  uint64_t seed_ = 0;
  uint64_t perm_epoch_ = ~0ull;    // epoch whose permutation perm_ holds
  std::vector<uint64_t> perm_;     // window order of that epoch
  TokenShard shard_;
  int64_t B_, T_;
  LoaderState state_;
};

}  // namespace moe
