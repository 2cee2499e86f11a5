// moe data's automatic choices (issue 14): the vocabulary from the corpus size, and
// the stop strings of moe generate's streaming (src/cli/stop_strings.h, header-only).
#include <gtest/gtest.h>

#include "cli/stop_strings.h"
#include "data/dataset.h"

namespace moe {
namespace {

TEST(DataDefaults, VocabularyFromCorpusSize) {
  EXPECT_EQ(vocab_for_corpus(0), 512);
  EXPECT_EQ(vocab_for_corpus(20000), 512);      // 133 -> clamped up
  EXPECT_EQ(vocab_for_corpus(200000), 1024);    // 1333 -> 2^10
  EXPECT_EQ(vocab_for_corpus(400000), 2048);    // 2667 -> 2^11
  EXPECT_EQ(vocab_for_corpus(1000000), 8192);   // 6667 -> 2^13
  EXPECT_EQ(vocab_for_corpus(8100000), 8192);   // the default corpus keeps 8192
  EXPECT_EQ(vocab_for_corpus(1ull << 40), 8192);
}

TEST(StopStrings, CutsAtTheFirstAndHoldsBackPrefixes) {
  using cli::stop_cut;
  EXPECT_EQ(stop_cut("hello world", {}).printable, 11u);
  auto c = stop_cut("hello\n\nworld", {"\n\n"});
  EXPECT_TRUE(c.stop);
  EXPECT_EQ(c.printable, 5u);
  c = stop_cut("hello\n", {"\n\n"});  // might become the stop string: wait
  EXPECT_FALSE(c.stop);
  EXPECT_EQ(c.printable, 5u);
  c = stop_cut("a END b STOP", {"STOP", "END"});  // the earliest of several
  EXPECT_TRUE(c.stop);
  EXPECT_EQ(c.printable, 2u);
  c = stop_cut("abc", {""});  // an empty stop string never matches
  EXPECT_FALSE(c.stop);
  EXPECT_EQ(c.printable, 3u);
}

}  // namespace
}  // namespace moe
