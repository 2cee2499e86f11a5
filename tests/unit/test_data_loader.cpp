// DataLoader: the windows and targets it yields, wrap-around and epochs, exact
// resume from a saved state, evaluation batches, and the too-short-shard error.
#include <gtest/gtest.h>

#include <numeric>
#include <vector>

#include "data/loader.h"
#include "data_util.h"

namespace moe {
namespace {

// A shard whose token i is i % vocab: every window's contents reveal its offset.
std::string iota_shard(const test::DataTempDir& dir, const std::string& name, size_t n, uint64_t vocab = 65536) {
  std::vector<int32_t> tok(n);
  for (size_t i = 0; i < n; i++) tok[i] = int32_t(i % vocab);
  shard_write(dir / name, tok.data(), n, vocab);
  return dir / name;
}

struct Batch {
  std::vector<int32_t> x, y;  // (B, T) each
};

Batch next(DataLoader& dl) {
  Batch b{std::vector<int32_t>(dl.B() * dl.T()), std::vector<int32_t>(dl.B() * dl.T())};
  dl.next(b.x.data(), b.y.data());
  return b;
}

TEST(DataLoader, WindowsTargetsAndWrap) {
  test::DataTempDir dir("loader");
  const int64_t B = 2, T = 4;
  // 30 tokens: batches need B*T + 1 = 9; (30 - 1) / 8 = 3 batches per epoch, 5 tokens unseen.
  DataLoader dl = DataLoader::open(iota_shard(dir, "a.bin", 30), B, T);
  EXPECT_EQ(dl.batches_per_epoch(), 3u);
  for (uint64_t epoch = 0; epoch < 3; epoch++) {
    for (int64_t k = 0; k < 3; k++) {
      LoaderState st = dl.state();
      Batch b = next(dl);
      const int64_t cursor = k * B * T;
      EXPECT_EQ(dl.state().epoch, epoch) << "k " << k;
      for (int64_t r = 0; r < B; r++)
        for (int64_t t = 0; t < T; t++) {
          EXPECT_EQ(b.x[r * T + t], cursor + r * T + t) << "epoch " << epoch << " batch " << k;
          EXPECT_EQ(b.y[r * T + t], cursor + r * T + t + 1) << "epoch " << epoch << " batch " << k;
        }
      EXPECT_EQ(dl.state().cursor, uint64_t(cursor + B * T));
      (void)st;
    }
  }
  EXPECT_EQ(dl.state().epoch, 2u);  // the wrap happens when the next batch is drawn
  next(dl);
  EXPECT_EQ(dl.state().epoch, 3u);
  EXPECT_EQ(dl.state().cursor, uint64_t(B * T));
}

TEST(DataLoader, ExactFitHasNoUnseenTokens) {
  test::DataTempDir dir("loader_fit");
  // 2 batches of 3*5 plus the one extra target token: 31 tokens, all used.
  DataLoader dl = DataLoader::open(iota_shard(dir, "a.bin", 31), 3, 5);
  EXPECT_EQ(dl.batches_per_epoch(), 2u);
  next(dl);
  Batch b = next(dl);
  EXPECT_EQ(b.y.back(), 30);
  EXPECT_EQ(dl.state().epoch, 0u);
  b = next(dl);
  EXPECT_EQ(dl.state().epoch, 1u);
  EXPECT_EQ(b.x[0], 0);

  // 32 tokens, B*T = 8: a 4th batch at cursor 24 would need token 32; it wraps instead.
  DataLoader dl2 = DataLoader::open(iota_shard(dir, "b.bin", 32), 2, 4);
  EXPECT_EQ(dl2.batches_per_epoch(), 3u);
  for (int i = 0; i < 3; i++) next(dl2);
  EXPECT_EQ(dl2.state(), (LoaderState{24, 0}));
  b = next(dl2);
  EXPECT_EQ(dl2.state(), (LoaderState{8, 1}));
  EXPECT_EQ(b.x[0], 0);
}

TEST(DataLoader, ResumeFromSavedStateIsIdentical) {
  test::DataTempDir dir("loader_resume");
  const std::string path = iota_shard(dir, "a.bin", 1000, 97);
  DataLoader a = DataLoader::open(path, 3, 16);
  for (int i = 0; i < 25; i++) next(a);  // several wraps (20 batches per epoch)
  const LoaderState saved = a.state();
  std::vector<Batch> expect;
  for (int i = 0; i < 30; i++) expect.push_back(next(a));

  DataLoader b = DataLoader::open(path, 3, 16);
  b.set_state(saved);
  EXPECT_EQ(b.state(), saved);
  for (int i = 0; i < 30; i++) {
    Batch got = next(b);
    EXPECT_EQ(got.x, expect[i].x) << i;
    EXPECT_EQ(got.y, expect[i].y) << i;
  }
  EXPECT_EQ(b.state(), a.state());
  test::expect_error([&] { b.set_state({1000, 0}); }, {"a.bin", "cursor 1000", "1000 tokens"});
}

// Shuffled training order: each epoch visits every window of T+1 tokens (stride T)
// exactly once, in an order fixed by (seed, epoch); a saved state resumes it exactly.
TEST(DataLoader, ShuffleVisitsEveryWindowOncePerEpoch) {
  test::DataTempDir dir("loader_shuffle");
  const int64_t B = 3, T = 8;
  const std::string path = iota_shard(dir, "s.bin", 8 * 30 + 1);  // 30 windows, 10 batches per epoch
  DataLoader a = DataLoader::open(path, B, T);
  a.set_shuffle(42);
  std::vector<int> seen(30, 0);
  std::vector<int32_t> first_order;
  for (int k = 0; k < 10; k++) {
    Batch b = next(a);
    for (int64_t r = 0; r < B; r++) {
      int32_t start = b.x[r * T];
      ASSERT_EQ(start % T, 0) << "rows start on a window boundary";
      for (int64_t t = 0; t < T; t++) {
        ASSERT_EQ(b.x[r * T + t], start + t);
        ASSERT_EQ(b.y[r * T + t], start + t + 1);
      }
      seen[start / T]++;
      first_order.push_back(start);
    }
  }
  for (int w = 0; w < 30; w++) EXPECT_EQ(seen[w], 1) << "window " << w;
  std::vector<int32_t> sequential(30);
  for (int w = 0; w < 30; w++) sequential[w] = w * int32_t(T);
  EXPECT_NE(first_order, sequential) << "a shuffled epoch is not the sequential order";
  // The next epoch is another order; a second loader with the same seed repeats all of it.
  const LoaderState saved = a.state();
  Batch e2 = next(a);
  DataLoader b = DataLoader::open(path, B, T);
  b.set_shuffle(42);
  b.set_state(saved);
  Batch again = next(b);
  EXPECT_EQ(again.x, e2.x);
  EXPECT_EQ(b.state(), a.state());
  DataLoader c = DataLoader::open(path, B, T);
  c.set_shuffle(43);
  std::vector<int32_t> other_order;
  for (int k = 0; k < 10; k++) {
    Batch bc = next(c);
    for (int64_t r = 0; r < B; r++) other_order.push_back(bc.x[r * T]);
  }
  EXPECT_NE(other_order, first_order) << "another seed, another order";
}

TEST(DataLoader, EvalBatchesAreTheFirstWindowsAndStateless) {
  test::DataTempDir dir("loader_eval");
  DataLoader dl = DataLoader::open(iota_shard(dir, "v.bin", 100), 2, 8);
  EXPECT_EQ(dl.batches_per_epoch(), 6u);
  DataLoader seq = DataLoader::open(dir / "v.bin", 2, 8);
  std::vector<int32_t> x(16), y(16);
  for (uint64_t i = 0; i < dl.batches_per_epoch(); i++) {
    dl.batch_at(i, x.data(), y.data());
    Batch s = next(seq);
    EXPECT_EQ(x, s.x) << i;
    EXPECT_EQ(y, s.y) << i;
    EXPECT_EQ(x[0], int32_t(i * 16));
  }
  EXPECT_EQ(dl.state(), LoaderState{});
  test::expect_error([&] { dl.batch_at(6, x.data(), y.data()); }, {"v.bin", "batch 6", "6 batches"});
}

TEST(DataLoader, ShardShorterThanABatch) {
  test::DataTempDir dir("loader_short");
  const std::string p = iota_shard(dir, "s.bin", 64);
  test::expect_error([&] { DataLoader::open(p, 4, 16); }, {"s.bin", "64 tokens", "4*16 + 1 = 65"});
  EXPECT_NO_THROW(DataLoader::open(p, 3, 21));  // 3*21 + 1 = 64
  test::expect_error([&] { DataLoader::open(p, 0, 16); }, {"s.bin", "B=0"});
}

TEST(DataLoader, OpenChecksTokensAndVocab) {
  test::DataTempDir dir("loader_vocab");
  const std::string p = iota_shard(dir, "a.bin", 100, 50);
  test::expect_error([&] { DataLoader::open(p, 1, 8, 64); }, {"a.bin", "vocabulary size 50", "expected 64"});
  EXPECT_NO_THROW(DataLoader::open(p, 1, 8, 50));
}

}  // namespace
}  // namespace moe
