// Span corruption (data/span_corruption.h) against T5's formulas: the lengths, the
// noise fraction and span count of every mask, the span-length distribution of a
// uniform partition, and exact reconstruction of the text from inputs + targets.
#include <cmath>
#include <functional>
#include <map>
#include <algorithm>
#include <set>
#include <string>

#include "data/shard.h"
#include "data/span_corruption.h"
#include "data/span_loader.h"
#include "data_util.h"
#include "testutil.h"

namespace moe::test {
namespace {

TEST(SpanCorruption, LengthsAsT5ComputesThem) {
  // T5's pretraining setting: 512 input tokens come from 568 raw ones, with 114 targets.
  SpanLengths s = span_corruption_lengths(512);
  EXPECT_EQ(s.raw, 568);
  EXPECT_EQ(s.inputs, 512);
  EXPECT_EQ(s.targets, 114);
  EXPECT_EQ(s.noise, 85);
  EXPECT_EQ(s.spans, 28);
  // Python's round: ties to even (128 * 0.15 = 19.2 -> 19; 10 * 0.25 = 2.5 -> 2).
  EXPECT_EQ(span_lengths_for_raw(10, 0.25, 1.0).noise, 2);
  EXPECT_EQ(span_lengths_for_raw(14, 0.25, 1.0).noise, 4);  // 3.5 -> 4
  for (int in : {8, 32, 100, 128, 256, 1024}) {
    SpanLengths t = span_corruption_lengths(in);
    EXPECT_LE(t.inputs, in);
    EXPECT_GT(span_lengths_for_raw(t.raw + 1, 0.15, 3.0).inputs, in) << "the largest raw length that fits";
  }
  // Density 0.5: T5 trims one raw token when the targets would be longer than the inputs.
  SpanLengths h = span_corruption_lengths(128, 0.5, 3.0);
  EXPECT_LE(h.targets, 128);
  EXPECT_THROW(span_corruption_lengths(2), std::invalid_argument);
  EXPECT_THROW(span_lengths_for_raw(100, 0.0, 3.0), std::invalid_argument);
  EXPECT_THROW(span_lengths_for_raw(100, 0.15, 0.5), std::invalid_argument);
}

// Probability that one segment of a uniform partition of n items into s non-empty
// segments has length k: C(n-k-1, s-2) / C(n-1, s-1).
double segment_length_p(int n, int s, int k) {
  auto lc = [](double a, double b) { return std::lgamma(a + 1) - std::lgamma(b + 1) - std::lgamma(a - b + 1); };
  if (n - k - 1 < s - 2) return 0;
  return std::exp(lc(n - k - 1, s - 2) - lc(n - 1, s - 1));
}

TEST(SpanCorruption, MasksMatchT5Statistics) {
  const int L = 568, seeds = 2000;
  const SpanLengths s = span_lengths_for_raw(L, 0.15, 3.0);
  std::map<int, int> span_hist;
  std::vector<double> pos_noise(L, 0);
  int spans_total = 0;
  std::set<std::string> distinct;  // the masks as bytes
  for (int seed = 0; seed < seeds; seed++) {
    const std::vector<uint8_t> m = random_spans_noise_mask(L, 0.15, 3.0, uint64_t(seed));
    ASSERT_EQ(int(m.size()), L);
    int noise = 0, spans = 0, run = 0;
    for (int i = 0; i < L; i++) {
      noise += m[i];
      pos_noise[i] += m[i];
      if (m[i]) run++;
      if (m[i] && (i == 0 || !m[i - 1])) spans++;
      if (run && (!m[i] || i == L - 1)) {
        span_hist[run]++;
        run = 0;
      }
    }
    ASSERT_EQ(noise, s.noise) << "seed " << seed << ": every mask has exactly round(L * 0.15) noise tokens";
    ASSERT_EQ(spans, s.spans) << "seed " << seed << ": and exactly round(noise / 3) spans";
    ASSERT_EQ(m[0], 0) << "a window starts with a non-noise run";
    ASSERT_EQ(m[L - 1], 1) << "and ends with a noise span";
    spans_total += spans;
    distinct.insert(std::string(m.begin(), m.end()));
    EXPECT_EQ(m, random_spans_noise_mask(L, 0.15, 3.0, uint64_t(seed))) << "deterministic in the seed";
  }
  EXPECT_EQ(int(distinct.size()), seeds) << "different seeds, different masks";
  // Span lengths: mean exactly noise / spans; the distribution that of a uniform random
  // partition. 56,000 spans: each frequency's standard error is below 0.002; 0.01 is 5x.
  double mean = 0;
  for (auto& [len, c] : span_hist) mean += double(len) * c;
  EXPECT_NEAR(mean / spans_total, double(s.noise) / s.spans, 1e-12);
  for (int k = 1; k <= 8; k++) {
    const double got = double(span_hist[k]) / spans_total, want = segment_length_p(s.noise, s.spans, k);
    EXPECT_NEAR(got, want, 0.01) << "P(span length = " << k << ")";
  }
  // Noise is spread over the window: away from the ends, each eighth of the window is
  // noise at the overall rate 85/568 = 0.150 (about 140k samples per bin; 0.01 is > 5 sigma).
  for (int b = 0; b < 8; b++) {
    double sum = 0, n = 0;
    for (int i = 20 + b * 66; i < 20 + (b + 1) * 66; i++) sum += pos_noise[i], n += seeds;
    EXPECT_NEAR(sum / n, double(s.noise) / L, 0.01) << "window eighth " << b;
  }
}

TEST(SpanCorruption, InputsAndTargetsReconstructTheText) {
  const int32_t sentinel0 = 999, eos = 1;
  for (int L : {2, 3, 7, 20, 64, 100, 333, 568}) {
    const SpanLengths s = span_lengths_for_raw(L, 0.15, 3.0);
    for (int seed = 0; seed < 50; seed++) {
      std::vector<int32_t> tokens = randint(size_t(L), 800, uint64_t(seed));
      for (auto& t : tokens) t += 2;  // no eos, no sentinel in the text
      const std::vector<uint8_t> m = random_spans_noise_mask(L, 0.15, 3.0, uint64_t(seed) + 77);
      std::vector<int32_t> in(size_t(s.inputs) + 8, -7), tg(size_t(s.targets) + 8, -7);
      span_corrupt(in.data(), tg.data(), tokens.data(), m.data(), L, sentinel0, eos);
      ASSERT_EQ(in[size_t(s.inputs) - 1], eos) << "inputs fill exactly their length";
      ASSERT_EQ(in[size_t(s.inputs)], -7);
      ASSERT_EQ(tg[size_t(s.targets) - 1], eos) << "targets fill exactly their length";
      ASSERT_EQ(tg[size_t(s.targets)], -7);
      EXPECT_EQ(tg[0], sentinel0) << "targets start with <extra_id_0>";
      int next = 0;
      for (int i = 0; i < s.inputs; i++) {
        if (in[size_t(i)] > 900) {
          EXPECT_EQ(in[size_t(i)], sentinel0 - next++) << "sentinels in order from the top";
        }
      }
      EXPECT_EQ(next, s.spans);
      EXPECT_EQ(span_uncorrupt(in.data(), s.inputs, tg.data(), s.targets, sentinel0, 100, eos), tokens)
          << "L " << L << " seed " << seed;
    }
  }
}

// The loader: rows are windows of the shard corrupted as above, the decoder inputs the
// targets shifted behind pad, the masks deterministic in (seed, place), and a run
// resumed from a saved state sees exactly the batches it would have seen.
TEST(SpanCorruptionLoader, BatchesAndExactResume) {
  DataTempDir dir("span_loader");
  const uint64_t V = 1000;
  std::vector<int32_t> tok = randint(20000, 800, 5);
  for (auto& t : tok) t += 2;
  shard_write(dir / "train.bin", tok.data(), tok.size(), V);
  SpanCorruptionSpec spec;
  spec.inputs_length = 64, spec.sentinel0 = int32_t(V) - 1, spec.seed = 9;
  const int B = 3;
  auto a = SpanCorruptionLoader::open(dir / "train.bin", B, spec, V);
  const SpanLengths& L = a.lengths();
  EXPECT_EQ(L.inputs, 64);
  const size_t I = size_t(B) * L.inputs, T = size_t(B) * L.targets;
  std::vector<int32_t> enc(I), dec(T), tgt(T);
  a.set_shuffle(3);
  auto b = SpanCorruptionLoader::open(dir / "train.bin", B, spec, V);
  b.set_shuffle(3);
  std::vector<std::vector<int32_t>> seen;
  LoaderState mid;
  std::set<std::vector<int32_t>> windows;
  for (int step = 0; step < 2 * int(a.batches_per_epoch()) + 3; step++) {  // across two epoch boundaries
    if (step == 7) mid = a.state();
    a.next(enc.data(), dec.data(), tgt.data());
    for (int r = 0; r < B; r++) {
      const int32_t* e = enc.data() + r * L.inputs;
      const int32_t* t = tgt.data() + r * L.targets;
      const int32_t* d = dec.data() + r * L.targets;
      EXPECT_EQ(d[0], spec.pad);
      for (int i = 1; i < L.targets; i++) ASSERT_EQ(d[i], t[i - 1]);
      const std::vector<int32_t> text = span_uncorrupt(e, L.inputs, t, L.targets, spec.sentinel0, 100, spec.eos);
      ASSERT_EQ(int(text.size()), L.raw);
      // The text is a window of the shard at a multiple of the raw length.
      bool found = false;
      for (size_t w = 0; w + L.raw <= tok.size() && !found; w += size_t(L.raw))
        found = std::equal(text.begin(), text.end(), tok.begin() + long(w));
      ASSERT_TRUE(found) << "step " << step << " row " << r;
      if (step < int(a.batches_per_epoch())) windows.insert(text);
    }
    seen.push_back(enc), seen.push_back(tgt);
  }
  EXPECT_EQ(windows.size(), size_t(a.batches_per_epoch()) * B) << "an epoch visits each window once";
  b.set_state(mid);
  for (int step = 7; step < int(seen.size() / 2); step++) {
    b.next(enc.data(), dec.data(), tgt.data());
    ASSERT_EQ(enc, seen[size_t(2 * step)]) << "resumed run, step " << step;
    ASSERT_EQ(tgt, seen[size_t(2 * step + 1)]) << "resumed run, step " << step;
  }
  // Evaluation batches do not depend on the loader's state: a fresh loader's batch 1
  // equals batch 1 of one that has stepped across two epoch boundaries.
  auto fresh = SpanCorruptionLoader::open(dir / "train.bin", B, spec, V);
  std::vector<int32_t> e1(I), d1(T), t1(T), e2(I), d2(T), t2(T);
  fresh.batch_at(1, e1.data(), d1.data(), t1.data());
  a.batch_at(1, e2.data(), d2.data(), t2.data());
  EXPECT_EQ(e1, e2);
  EXPECT_EQ(t1, t2);
  EXPECT_EQ(d1, d2);
  spec.max_sentinels = L.spans - 1;  // fewer sentinels than spans per row
  EXPECT_THROW(SpanCorruptionLoader::open(dir / "train.bin", B, spec, V), std::invalid_argument);
}

// fn must throw std::invalid_argument with a one-line message containing every needle.
void expect_invalid(const std::function<void()>& fn, const std::vector<std::string>& needles) {
  try {
    fn();
    ADD_FAILURE() << "no exception; expected one containing '" << needles[0] << "'";
  } catch (const std::invalid_argument& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    for (const auto& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << "'" << n << "' not in: " << msg;
  }
}

// Where the sentinels stand in each row's inputs: the row's mask, seen from outside.
std::vector<std::vector<int>> sentinel_positions(const std::vector<int32_t>& enc, int B, int I, int32_t lowest) {
  std::vector<std::vector<int>> out(static_cast<size_t>(B));
  for (int r = 0; r < B; r++)
    for (int i = 0; i < I; i++)
      if (enc[size_t(r) * I + i] >= lowest) out[size_t(r)].push_back(i);
  return out;
}

// Every row draws its own mask: the rows of a batch, the same window in two epochs, and
// a training row and the evaluation batch over the same window all differ.
TEST(SpanCorruptionLoader, EveryRowAndEpochDrawsItsOwnMask) {
  DataTempDir dir("span_loader_masks");
  const uint64_t V = 1000;
  std::vector<int32_t> tok = randint(6000, 800, 6);
  for (auto& t : tok) t += 2;
  shard_write(dir / "train.bin", tok.data(), tok.size(), V);
  SpanCorruptionSpec spec;
  spec.inputs_length = 64, spec.seed = 4;  // sentinel0: the last id, 999
  const int B = 4;
  auto a = SpanCorruptionLoader::open(dir / "train.bin", B, spec, V);  // no shuffle: epoch e visits the same windows
  const int I = a.lengths().inputs, Tt = a.lengths().targets;
  const int32_t lowest = int32_t(V) - 100;
  std::vector<int32_t> enc(size_t(B) * I), dec(size_t(B) * Tt), tgt(size_t(B) * Tt);
  std::vector<std::vector<std::vector<int>>> epoch0;
  for (uint64_t i = 0; i < a.batches_per_epoch(); i++) {
    a.next(enc.data(), dec.data(), tgt.data());
    epoch0.push_back(sentinel_positions(enc, B, I, lowest));
    for (int r = 1; r < B; r++) EXPECT_NE(epoch0.back()[size_t(r)], epoch0.back()[0]) << "batch " << i << " row " << r;
    std::vector<int32_t> ee(enc.size()), ed(dec.size()), et(tgt.size());
    a.batch_at(i, ee.data(), ed.data(), et.data());
    EXPECT_NE(sentinel_positions(ee, B, I, lowest), epoch0.back()) << "evaluation batch " << i << " vs training";
  }
  a.next(enc.data(), dec.data(), tgt.data());  // epoch 1, batch 0: the windows of epoch 0's batch 0
  EXPECT_EQ(a.state().epoch, 1u);
  EXPECT_NE(sentinel_positions(enc, B, I, lowest), epoch0[0]) << "the same windows, another epoch";
  // Ids: a shard holding a sentinel, eos among the sentinels, and fields out of range.
  tok[4321] = int32_t(V) - 3;
  shard_write(dir / "bad.bin", tok.data(), tok.size(), V);
  expect_invalid([&] { SpanCorruptionLoader::open(dir / "bad.bin", B, spec, V); },
                    {"bad.bin", "index 4321", "sentinel"});
  SpanCorruptionSpec e = spec;
  e.eos = int32_t(V) - 50;
  expect_invalid([&] { SpanCorruptionLoader::open(dir / "train.bin", B, e, V); }, {"eos", "sentinel"});
  e = spec, e.sentinel0 = int32_t(V);
  expect_invalid([&] { SpanCorruptionLoader::open(dir / "train.bin", B, e, V); }, {"first sentinel", "1000"});
  EXPECT_THROW(span_corruption_lengths(64, 0.6, 1.0), std::invalid_argument) << "more spans than other tokens";
}

}  // namespace
}  // namespace moe::test
