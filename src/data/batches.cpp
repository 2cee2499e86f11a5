#include "data/batches.h"

#include <utility>

namespace moe {

namespace {

class LmBatches : public BatchSource {
 public:
  explicit LmBatches(DataLoader d) : d_(std::move(d)) {}
  int64_t B() const override { return d_.B(); }
  int T() const override { return int(d_.T()); }
  int Td() const override { return 0; }
  uint64_t batches_per_epoch() const override { return d_.batches_per_epoch(); }
  uint64_t shard_tokens_per_batch() const override { return uint64_t(d_.B() * d_.T()); }
  void next(TokenBatch& b) override {
    b.resize(int(d_.B()), int(d_.T()), 0);
    d_.next(b.inputs.data(), b.targets.data());
  }
  void batch_at(uint64_t i, TokenBatch& b) const override {
    b.resize(int(d_.B()), int(d_.T()), 0);
    d_.batch_at(i, b.inputs.data(), b.targets.data());
  }
  LoaderState state() const override { return d_.state(); }
  void set_state(const LoaderState& s) override { d_.set_state(s); }
  void set_shuffle(uint64_t seed) override { d_.set_shuffle(seed); }

 private:
  DataLoader d_;
};

class SpanBatches : public BatchSource {
 public:
  explicit SpanBatches(SpanCorruptionLoader s) : s_(std::move(s)) {}
  int64_t B() const override { return s_.B(); }
  int T() const override { return s_.lengths().inputs; }
  int Td() const override { return s_.lengths().targets; }
  uint64_t batches_per_epoch() const override { return s_.batches_per_epoch(); }
  uint64_t shard_tokens_per_batch() const override { return uint64_t(s_.B()) * uint64_t(s_.lengths().raw); }
  void next(TokenBatch& b) override {
    b.resize(int(s_.B()), T(), Td());
    s_.next(b.inputs.data(), b.dec.data(), b.targets.data());
  }
  void batch_at(uint64_t i, TokenBatch& b) const override {
    b.resize(int(s_.B()), T(), Td());
    s_.batch_at(i, b.inputs.data(), b.dec.data(), b.targets.data());
  }
  LoaderState state() const override { return s_.state(); }
  void set_state(const LoaderState& s) override { s_.set_state(s); }
  void set_shuffle(uint64_t seed) override { s_.set_shuffle(seed); }

 private:
  SpanCorruptionLoader s_;
};

}  // namespace

std::unique_ptr<BatchSource> lm_batches(const std::string& path, int64_t B, int64_t T, uint64_t vocab) {
  return std::make_unique<LmBatches>(DataLoader::open(path, B, T, vocab));
}

std::unique_ptr<BatchSource> span_batches(const std::string& path, int64_t B, const SpanCorruptionSpec& spec,
                                          uint64_t vocab) {
  return std::make_unique<SpanBatches>(SpanCorruptionLoader::open(path, B, spec, vocab));
}

}  // namespace moe
