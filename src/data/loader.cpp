#include "data/loader.h"

#include <cstring>
#include <stdexcept>
#include <utility>
#include <vector>

namespace moe {

DataLoader::DataLoader(TokenShard shard, int64_t B, int64_t T) : shard_(std::move(shard)), B_(B), T_(T) {
  const std::string& path = shard_.path();
  if (B < 1 || T < 1)
    throw std::runtime_error("data loader: " + path + ": batch size B=" + std::to_string(B) + " and sequence length T=" +
                             std::to_string(T) + " must be >= 1");
  const uint64_t need = uint64_t(B) * uint64_t(T) + 1;
  if (shard_.size() < need)
    throw std::runtime_error("data loader: " + path + ": holds " + std::to_string(shard_.size()) +
                             " tokens, fewer than one batch needs (B*T + 1 = " + std::to_string(B) + "*" +
                             std::to_string(T) + " + 1 = " + std::to_string(need) + ")");
}

DataLoader DataLoader::open(const std::string& path, int64_t B, int64_t T, uint64_t expected_vocab) {
  TokenShard s = TokenShard::open(path, expected_vocab);
  s.check_tokens();
  return DataLoader(std::move(s), B, T);
}

void DataLoader::fill_row(uint64_t token_offset, int64_t b, int32_t* inputs, int32_t* targets) const {
  const uint64_t T = uint64_t(T_);
  std::vector<int32_t> row(T + 1);
  shard_.read(token_offset, T + 1, row.data());  // (T+1,)
  std::memcpy(inputs + b * T_, row.data(), T * sizeof(int32_t));
  std::memcpy(targets + b * T_, row.data() + 1, T * sizeof(int32_t));
}

void DataLoader::fill(uint64_t cursor, int32_t* inputs, int32_t* targets) const {
  for (int64_t b = 0; b < B_; b++) fill_row(cursor + uint64_t(b) * uint64_t(T_), b, inputs, targets);
}

void DataLoader::set_shuffle(uint64_t seed) {
  shuffle_ = true;
  seed_ = seed;
  perm_epoch_ = ~0ull;
}

void DataLoader::next(int32_t* inputs, int32_t* targets) {
  const uint64_t step = uint64_t(B_) * uint64_t(T_);
  if (state_.cursor + step + 1 > shard_.size()) {
    state_.cursor = 0;
    state_.epoch += 1;
  }
  if (!shuffle_) {
    fill(state_.cursor, inputs, targets);
  } else {
    // Windows of T+1 tokens at stride T; the epoch's permutation, Fisher-Yates on a
    // splitmix64 stream of (seed, epoch): the same on every machine.
    const uint64_t windows = (shard_.size() - 1) / uint64_t(T_);
    if (perm_epoch_ != state_.epoch) {
      perm_.resize(windows);
      for (uint64_t i = 0; i < windows; i++) perm_[i] = i;
      uint64_t z = seed_ * 0x9E3779B97F4A7C15ull ^ (state_.epoch + 1) * 0xD1B54A32D192ED03ull;
      for (uint64_t i = windows - 1; i > 0; i--) {
        z += 0x9E3779B97F4A7C15ull;
        uint64_t r = z;
        r = (r ^ (r >> 30)) * 0xBF58476D1CE4E5B9ull;
        r = (r ^ (r >> 27)) * 0x94D049BB133111EBull;
        r ^= r >> 31;
        std::swap(perm_[i], perm_[r % (i + 1)]);
      }
      perm_epoch_ = state_.epoch;
    }
    const uint64_t first = state_.cursor / uint64_t(T_);
    for (int64_t b = 0; b < B_; b++) fill_row(perm_[first + uint64_t(b)] * uint64_t(T_), b, inputs, targets);
  }
  state_.cursor += step;
}

void DataLoader::batch_at(uint64_t i, int32_t* inputs, int32_t* targets) const {
  if (i >= batches_per_epoch())
    throw std::runtime_error("data loader: " + shard_.path() + ": batch " + std::to_string(i) + " requested, the shard holds " +
                             std::to_string(batches_per_epoch()) + " batches of B=" + std::to_string(B_) +
                             ", T=" + std::to_string(T_));
  fill(i * uint64_t(B_) * uint64_t(T_), inputs, targets);
}

void DataLoader::set_state(const LoaderState& s) {
  if (s.cursor >= shard_.size())
    throw std::runtime_error("data loader: " + shard_.path() + ": saved cursor " + std::to_string(s.cursor) +
                             " is beyond the shard's " + std::to_string(shard_.size()) + " tokens");
  state_ = s;
}

}  // namespace moe
