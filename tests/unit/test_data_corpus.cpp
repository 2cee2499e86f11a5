// Corpus: the cleaning rules (KJV, Austen, plain text), UTF-8 validation, reading
// user files and directories (sorted, hidden skipped, binary rejected), and the
// default Debian corpus (installed by scripts/install-deps.sh).
#include <gtest/gtest.h>

#include <string>

#include "data/corpus.h"
#include "data_util.h"

namespace moe {
namespace {

TEST(Corpus, CleanKjvSplitsBooksDropsReferences) {
  const std::string raw =
      "\nGenesis 1\n\n  1 In the beginning God created the heaven and the earth.\n"
      "  2 And the earth was without form,  and void.\n\nGenesis 2\n\n  1 Thus the heavens were finished.\n"
      "\nSong of Solomon 1\n\n  1 The song of songs, which is Solomon's.\n\n1 Kings 1\n\n  10 But Nathan the prophet.\n";
  std::vector<CorpusDocument> d = clean_kjv(raw);
  ASSERT_EQ(d.size(), 3u);
  EXPECT_EQ(d[0].name, "bible-kjv/Genesis");
  EXPECT_EQ(d[0].text,
            "In the beginning God created the heaven and the earth.\nAnd the earth was without form, and void.\n"
            "Thus the heavens were finished.");
  EXPECT_EQ(d[1].name, "bible-kjv/Song of Solomon");
  EXPECT_EQ(d[1].text, "The song of songs, which is Solomon's.");
  EXPECT_EQ(d[2].name, "bible-kjv/1 Kings");
  EXPECT_EQ(d[2].text, "But Nathan the prophet.");
}

TEST(Corpus, CleanAustenUnwrapsParagraphsAndDropsMarkup) {
  const std::string raw =
      "PRIDE AND PREJUDICE\n\nBy Jane Austen\n\n\n\nChapter 1\n\n\n"
      "It is a truth universally acknowledged, that a single man in possession\n"
      "of a good fortune, must be in want of a wife.\n\n"
      "\"_You_ want to tell me,  and I have no objection to hearing it.\"\n\n"
      "                          * * * * *\n\n"
      "declared,* it must be\n\n"
      "[At this point in the first and second editions, Volume 1 ends.]\n\n"
      "[To Mrs. Weston.]\n\n"
      "THE END\n\n\n\nA NOTE ON THE TEXT\n\nNorthanger Abbey was written in 1797-98.\n";
  EXPECT_EQ(clean_austen(raw),
            "PRIDE AND PREJUDICE\nBy Jane Austen\nChapter 1\n"
            "It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in "
            "want of a wife.\n"
            "\"You want to tell me, and I have no objection to hearing it.\"\n"
            "declared, it must be\n[To Mrs. Weston.]\nTHE END");
}

TEST(Corpus, CleanPlainText) {
  EXPECT_EQ(clean_plain_text("\xEF\xBB\xBF\n\nTitle  \r\n\r\n\r\n\r\nline one\t\nline two\rlast\n\n\n"),
            "Title\n\nline one\nline two\nlast");
  EXPECT_EQ(clean_plain_text("  indented\n    code"), "  indented\n    code");  // leading spaces kept
  EXPECT_EQ(clean_plain_text(" \n\t\n"), "");
}

TEST(Corpus, Utf8Validation) {
  EXPECT_EQ(utf8_invalid_offset("plain ascii"), std::string_view::npos);
  EXPECT_EQ(utf8_invalid_offset("£ é 日本語 🙂"), std::string_view::npos);
  EXPECT_EQ(utf8_invalid_offset("ab\xA3"), 2u);              // Latin-1 pound sign
  EXPECT_EQ(utf8_invalid_offset("a\xC0\xAF"), 1u);           // overlong '/'
  EXPECT_EQ(utf8_invalid_offset("a\xED\xA0\x80"), 1u);       // surrogate U+D800
  EXPECT_EQ(utf8_invalid_offset("a\xF4\x90\x80\x80"), 1u);   // above U+10FFFF
  EXPECT_EQ(utf8_invalid_offset("abc\xE6\x97"), 3u);         // truncated
  EXPECT_EQ(utf8_chars("£ é 日本語 🙂"), 9u);
}

TEST(Corpus, DirectoryIsSortedRecursiveAndSkipsHidden) {
  test::DataTempDir dir("corpus_dir");
  test::write_bytes(dir / "b.txt", "second\r\n");
  test::write_bytes(dir / "a.txt", "first");
  test::write_bytes(dir / "sub/c.md", "third");
  test::write_bytes(dir / "sub/empty.txt", "\n\n");
  test::write_bytes(dir / ".hidden/x.bin", std::string("\0\1", 2));
  test::write_bytes(dir / ".git", std::string("\0", 1));
  test::write_bytes(dir / "out/train.bin", std::string("\0", 1));  // the output directory, excluded
  CorpusInput in = corpus_from_path(dir.str(), dir / "out");
  EXPECT_EQ(in.kind, "dir");
  ASSERT_EQ(in.sources.size(), 4u);  // the empty file is a source but no document
  ASSERT_EQ(in.documents.size(), 3u);
  EXPECT_EQ(in.documents[0].text, "first");
  EXPECT_EQ(in.documents[1].text, "second");
  EXPECT_EQ(in.documents[2].text, "third");
  EXPECT_EQ(in.documents[2].name, dir / "sub/c.md");
  EXPECT_EQ(in.sources[1].bytes, 8u);
  EXPECT_EQ(in.sources[1].sha256.size(), 64u);

  CorpusInput one = corpus_from_path(dir / "a.txt");
  EXPECT_EQ(one.kind, "file");
  ASSERT_EQ(one.documents.size(), 1u);
}

TEST(Corpus, MissingBinaryAndNonUtf8InputsAreErrors) {
  test::DataTempDir dir("corpus_bad");
  test::expect_error([&] { corpus_from_path(dir / "absent.txt"); }, {"absent.txt", "no such file"});
  test::write_bytes(dir / "img.png", std::string("\x89PNG\r\n\x1a\n\0\0", 10));
  test::expect_error([&] { corpus_from_path(dir / "img.png"); }, {"img.png", "binary", "offset 8"});
  test::write_bytes(dir / "d/latin1.txt", "caf\xE9");
  test::expect_error([&] { corpus_from_path(dir / "d"); }, {"latin1.txt", "UTF-8", "0xE9", "offset 3"});
}

// The real corpus (installed by scripts/install-deps.sh): about a second.
TEST(CorpusDebian, DefaultCorpusIsCleanText) {
  std::vector<CorpusInput> c = corpus_default();
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0].name, "bible-kjv");
  ASSERT_EQ(c[0].documents.size(), 66u);
  EXPECT_EQ(c[0].documents[0].name, "bible-kjv/Genesis");
  EXPECT_EQ(c[0].documents[0].text.rfind("In the beginning God created the heaven and the earth.\n", 0), 0u);
  EXPECT_EQ(c[0].documents[65].name, "bible-kjv/Revelation");
  ASSERT_EQ(c[1].documents.size(), 6u);
  EXPECT_EQ(c[1].documents[1].name, "janeaustenr/prideprejudice");
  EXPECT_NE(c[1].documents[1].text.find("It is a truth universally acknowledged, that a single man in possession of a "
                                        "good fortune, must be in want of a wife.\n"),
            std::string::npos);
  uint64_t chars = 0;
  for (const auto& in : c)
    for (const auto& d : in.documents) {
      chars += utf8_chars(d.text);
      EXPECT_EQ(utf8_invalid_offset(d.text), std::string_view::npos) << d.name;
      EXPECT_EQ(d.text.find('_'), std::string::npos) << d.name;  // italics markers
      EXPECT_EQ(d.text.find('*'), std::string::npos) << d.name;
      EXPECT_EQ(d.text.find("  "), std::string::npos) << d.name;
      EXPECT_EQ(d.text.find("\n\n"), std::string::npos) << d.name;
      EXPECT_EQ(d.text.find("<U+"), std::string::npos) << d.name;  // R's escapes in a non-UTF-8 locale
    }
  for (const auto& d : c[0].documents) {  // no verse numbers at line starts
    size_t pos = 0;
    while (pos < d.text.size()) {
      EXPECT_FALSE(d.text[pos] >= '0' && d.text[pos] <= '9') << d.name << " at " << pos;
      size_t nl = d.text.find('\n', pos);
      if (nl == std::string::npos) break;
      pos = nl + 1;
    }
  }
  EXPECT_GT(chars, 7500000u);
  EXPECT_LT(chars, 9000000u);
}

}  // namespace
}  // namespace moe
