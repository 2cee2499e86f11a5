#include "data/span_loader.h"

#include <stdexcept>
#include <utility>

namespace moe {

SpanCorruptionLoader::SpanCorruptionLoader(DataLoader raw, const SpanCorruptionSpec& spec, const SpanLengths& len)
    : raw_(std::move(raw)), spec_(spec), len_(len) {
  windows_.resize(size_t(raw_.B()) * size_t(len_.raw));
  unused_.resize(windows_.size());
}

SpanCorruptionLoader SpanCorruptionLoader::open(const std::string& path, int64_t B, const SpanCorruptionSpec& spec_in,
                                                uint64_t vocab) {
  SpanCorruptionSpec spec = spec_in;
  const int64_t V = int64_t(vocab);
  if (spec.sentinel0 < 0) spec.sentinel0 = int32_t(V - 1);  // HF's <extra_id_0>: the last id
  const SpanLengths len = span_corruption_lengths(spec.inputs_length, spec.density, spec.mean_span);
  if (len.spans > spec.max_sentinels)
    throw std::invalid_argument("span corruption: " + std::to_string(len.spans) + " noise spans per row need as many "
                                "sentinels, the tokenizer has " + std::to_string(spec.max_sentinels) +
                                " (shorten --seq)");
  const int64_t lowest = int64_t(spec.sentinel0) - spec.max_sentinels + 1;  // the last sentinel
  auto id_in = [&](int64_t id, const char* what) {
    if (id < 0 || id >= V)
      throw std::invalid_argument("span corruption: " + std::string(what) + " " + std::to_string(id) +
                                  " is outside the vocabulary [0, " + std::to_string(V) + ")");
  };
  id_in(spec.sentinel0, "the first sentinel (<extra_id_0>)");
  id_in(lowest, "the last sentinel");
  id_in(spec.eos, "eos");
  id_in(spec.pad, "pad (the decoder start)");
  for (auto [id, what] : {std::pair{spec.eos, "eos"}, std::pair{spec.pad, "pad"}})
    if (id >= lowest)
      throw std::invalid_argument(std::string("span corruption: ") + what + " " + std::to_string(id) +
                                  " is one of the sentinel ids [" + std::to_string(lowest) + ", " +
                                  std::to_string(spec.sentinel0) + "]");
  // One pass over the tokens for both checks: inside the vocabulary (DataLoader::open's)
  // and no text token a sentinel (the inputs and targets would be ambiguous).
  TokenShard sh = TokenShard::open(path, vocab);
  const uint32_t mx = sh.max_token();
  if (mx >= vocab) sh.check_tokens();  // its error names the token
  if (int64_t(mx) >= lowest)
    for (uint64_t i = 0; i < sh.size(); i++)
      if (int64_t(sh.at(i)) >= lowest)
        throw std::invalid_argument(path + ": token " + std::to_string(sh.at(i)) + " at index " + std::to_string(i) +
                                    " is a sentinel id (the top " + std::to_string(spec.max_sentinels) +
                                    " of the vocabulary): use a tokenizer that reserves them (moe data --t5)");
  return SpanCorruptionLoader(DataLoader(std::move(sh), B, len.raw), spec, len);
}

// Row b's mask is drawn from (seed, stream, row0 + b): stream is the epoch for training
// and all ones for evaluation; row0 the first row's place in the epoch (or batch i * B).
void SpanCorruptionLoader::corrupt(const int32_t* windows, uint64_t stream, uint64_t row0, int32_t* enc, int32_t* dec,
                                   int32_t* tgt) const {
  const int R = len_.raw, I = len_.inputs, Tt = len_.targets;
  for (int64_t b = 0; b < raw_.B(); b++) {
    const uint64_t seed = (spec_.seed * 0x9E3779B97F4A7C15ull) ^ (stream * 0xD1B54A32D192ED03ull) ^ (row0 + uint64_t(b));
    const std::vector<uint8_t> mask = random_spans_noise_mask(R, spec_.density, spec_.mean_span, seed);
    int32_t* t = tgt + b * Tt;
    span_corrupt(enc + b * I, t, windows + b * R, mask.data(), R, spec_.sentinel0, spec_.eos);
    int32_t* d = dec + b * Tt;
    d[0] = spec_.pad;
    for (int i = 1; i < Tt; i++) d[i] = t[i - 1];
  }
}

void SpanCorruptionLoader::next(int32_t* enc, int32_t* dec, int32_t* tgt) {
  raw_.next(windows_.data(), unused_.data());
  const LoaderState s = raw_.state();  // after the batch: its first row was B rows back
  const uint64_t rows = uint64_t(raw_.B());
  corrupt(windows_.data(), s.epoch, s.cursor / uint64_t(len_.raw) - rows, enc, dec, tgt);
}

void SpanCorruptionLoader::batch_at(uint64_t i, int32_t* enc, int32_t* dec, int32_t* tgt) const {
  raw_.batch_at(i, windows_.data(), unused_.data());
  corrupt(windows_.data(), ~uint64_t(0), i * uint64_t(raw_.B()), enc, dec, tgt);
}

}  // namespace moe
