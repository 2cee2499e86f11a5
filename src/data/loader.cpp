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

void DataLoader::fill(uint64_t cursor, int32_t* inputs, int32_t* targets) const {
  const uint64_t T = uint64_t(T_);
  std::vector<int32_t> row(T + 1);
  for (int64_t b = 0; b < B_; b++) {
    shard_.read(cursor + uint64_t(b) * T, T + 1, row.data());  // (T+1,)
    std::memcpy(inputs + b * T_, row.data(), T * sizeof(int32_t));
    std::memcpy(targets + b * T_, row.data() + 1, T * sizeof(int32_t));
  }
}

void DataLoader::next(int32_t* inputs, int32_t* targets) {
  const uint64_t step = uint64_t(B_) * uint64_t(T_);
  if (state_.cursor + step + 1 > shard_.size()) {
    state_.cursor = 0;
    state_.epoch += 1;
  }
  fill(state_.cursor, inputs, targets);
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
