// Tokenizer: BPE training on a small synthetic text with the project's settings
// (special ids, byte fallback, no dummy prefix), exact encode/decode round trips,
// determinism, and errors for bad files, ids and vocabulary sizes.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "data/tokenizer.h"
#include "data_util.h"

namespace moe {
namespace {

// ~1500 lines of made-up words: enough repeated structure for a few hundred merges.
std::vector<std::string> synthetic_lines() {
  const char* syl[] = {"ka", "lo", "mi", "ne", "ru", "sa", "te", "vo", "zi", "qu", "the", "and", "ing"};
  std::mt19937 rng(5);
  std::vector<std::string> lines;
  for (int l = 0; l < 1500; l++) {
    std::string s;
    int words = 3 + int(rng() % 10);
    for (int w = 0; w < words; w++) {
      if (w) s += ' ';
      int n = 1 + int(rng() % 3);
      for (int k = 0; k < n; k++) s += syl[rng() % 13];
      if (rng() % 7 == 0) s += ',';
    }
    s += rng() % 3 ? "." : "? 42";
    lines.push_back(s);
  }
  return lines;
}

std::string train_small(int vocab) {
  static const std::vector<std::string> lines = synthetic_lines();
  std::vector<std::string_view> views(lines.begin(), lines.end());
  TokenizerTrainOptions o;
  o.vocab_size = vocab;
  return tokenizer_train(views, o);
}

TEST(Tokenizer, TrainSpecialIdsAndRoundTrip) {
  Tokenizer t = Tokenizer::from_bytes(train_small(400), "small");
  EXPECT_EQ(t.vocab_size(), 400);
  EXPECT_EQ(t.unk_id(), 0);
  EXPECT_EQ(t.bos_id(), 1);
  EXPECT_EQ(t.eos_id(), 2);
  EXPECT_EQ(t.pad_id(), -1);
  EXPECT_EQ(t.piece(2), "</s>");
  EXPECT_EQ(t.piece(3), "<0x00>");  // byte pieces follow the specials

  const std::vector<std::string> texts = {
      "kalo mine rusa, tevo.",
      "  leading spaces, trailing  \n\n\ttabs\r\nand CRLF",
      "unseen characters: £ é 日本語 🙂 and digits 2024",
      "Line one\nLine two\n",
      "",
  };
  for (const std::string& s : texts) {
    std::vector<int32_t> ids = t.encode(s);
    EXPECT_EQ(t.decode(ids), s) << "round trip of '" << s << "'";
    EXPECT_EQ(std::count(ids.begin(), ids.end(), t.unk_id()), 0) << "unk in '" << s << "'";
    for (int32_t id : ids) EXPECT_TRUE(id >= 0 && id < t.vocab_size());
  }
  // Merges were learned: a training word is fewer pieces than bytes.
  EXPECT_LT(t.encode("the kalo and").size(), 8u);
  // Control ids decode to nothing.
  EXPECT_EQ(t.decode({1, 2}), "");
}

// The dataset encodes documents line by line; that must equal encoding them whole.
TEST(Tokenizer, LineByLineEqualsWhole) {
  Tokenizer t = Tokenizer::from_bytes(train_small(400), "small");
  const std::string text = "kalo mine.\nThe rusa and tevo\n\nzi quing, 12? \n last line";
  std::vector<int32_t> whole = t.encode(text), pieces;
  size_t b = 0;
  while (b < text.size()) {
    size_t e = text.find('\n', b);
    e = e == std::string::npos ? text.size() : e + 1;
    std::vector<int32_t> ids = t.encode(std::string_view(text).substr(b, e - b));
    pieces.insert(pieces.end(), ids.begin(), ids.end());
    b = e;
  }
  EXPECT_EQ(pieces, whole);
}

TEST(Tokenizer, TrainingIsDeterministicAndFileLoads) {
  const std::string a = train_small(330), b = train_small(330);
  EXPECT_EQ(a, b);
  test::DataTempDir dir("tok");
  test::write_bytes(dir / "tokenizer.model", a);
  Tokenizer t = Tokenizer::load(dir / "tokenizer.model");
  EXPECT_EQ(t.vocab_size(), 330);
  EXPECT_EQ(t.path(), dir / "tokenizer.model");
}

TEST(Tokenizer, Errors) {
  test::DataTempDir dir("tok_bad");
  test::expect_error([&] { Tokenizer::load(dir / "absent.model"); }, {"absent.model"});
  test::write_bytes(dir / "junk.model", "this is not a protobuf");
  test::expect_error([&] { Tokenizer::load(dir / "junk.model"); }, {"junk.model", "SentencePiece"});
  Tokenizer t = Tokenizer::from_bytes(train_small(330), "small");
  test::expect_error([&] { t.decode({5, 330}); }, {"small", "id 330", "position 1"});
  test::expect_error([&] { t.piece(-1); }, {"small", "id -1"});
  // Far more pieces than the text can make.
  // Far more pieces than the text can make: our words and the trainer's limit.
  test::expect_error([] { train_small(100000); }, {"vocabulary 100000 is too large for this text", "at most"});
  try {
    train_small(100000);
  } catch (const TokenizerVocabError& e) {
    EXPECT_TRUE(e.too_large);
    EXPECT_EQ(e.requested, 100000);
    EXPECT_GT(e.limit, 259);  // 3 specials + 256 bytes, and the text's merges
    EXPECT_LT(e.limit, 100000);
    EXPECT_EQ(std::string(e.what()).find(".cc("), std::string::npos) << e.what();
  }
  test::expect_error([] { tokenizer_train({}, {}); }, {"no text"});
}

}  // namespace
}  // namespace moe
