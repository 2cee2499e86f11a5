// The named Debian corpora's cleaning (Gutenberg, POD, WordNet glosses), their
// deduplication, and the --corpus list.
#include <gtest/gtest.h>

#include "data/corpus.h"

namespace moe {
namespace {

TEST(CorpusNamed, GutenbergTextIsCutToTheBookAndUnwrapped) {
  const std::string raw =
      "\xEF\xBB\xBFThe Project Gutenberg EBook of X\n\nLicense text.\n"
      "*** START OF THIS PROJECT GUTENBERG EBOOK X ***\n\n"
      "Call me Ishmael.  Some years ago--never mind\nhow long precisely--having little.\n\n"
      "It is a _way_ I have.\n\n*** END OF THIS PROJECT GUTENBERG EBOOK X ***\nMore license.\n";
  EXPECT_EQ(clean_gutenberg(raw),
            "Call me Ishmael. Some years ago--never mind how long precisely--having little.\nIt is a way I have.");
  EXPECT_EQ(clean_gutenberg("No markers\nhere.\n"), "No markers here.");
}

TEST(CorpusNamed, PodMarkupBecomesText) {
  const std::string raw =
      "=encoding utf8\n\n=head1 NAME\n\nperlfoo - the B<bold> and C<< $x->y >> manual\n\n"
      "=over 4\n\n=item *\n\nSee L<perlsyn/\"Loops\"> or L<the docs|perldoc> and F<file.pl>; 1 E<lt> 2 E<gt> 0.\n\n"
      "=back\n\n=begin html\n\n<p>skipped</p>\n\n=end html\n\n=for comment\nskipped too\n\n"
      "X<index>Nested I<italic C<code>> text.\n\n=cut\n";
  EXPECT_EQ(clean_pod(raw),
            "NAME\n\nperlfoo - the bold and $x->y manual\n\n*\n\nSee perlsyn/Loops or the docs and file.pl; 1 < 2 > 0."
            "\n\nNested italic code text.");
}

TEST(CorpusNamed, WordnetGlossesOnePerSynset) {
  const std::string raw =
      "  1 This software and database is being provided to you, the LICENSEE, by\n"
      "00217499 04 n 01 disaster 0 001 @ 00217014 n 0000 | an act that has disastrous consequences  \n"
      "00217773 04 n 03 laying_waste 0 ruin 0 ruining 0 007 @ 00217014 n 0000 | destruction achieved by "
      "causing something to be wrecked; \"the ruin of the city\"  \n"
      "00001740 00 a 01 able(p) 0 005 = 05207437 n 0000 | (usually followed by `to') having the necessary means  \n";
  EXPECT_EQ(wordnet_glosses(raw),
            "disaster: an act that has disastrous consequences\n"
            "laying waste, ruin, ruining: destruction achieved by causing something to be wrecked; \"the ruin of the "
            "city\"\n"
            "able: (usually followed by `to') having the necessary means");
}

TEST(CorpusNamed, DedupDropsRepeatedDocumentsAndLongParagraphs) {
  const std::string boiler(250, 'b');
  CorpusInput a{"a", "debian", {}, {{"a1", "intro\n" + boiler + "\nshort"}, {"a2", "same"}}};
  CorpusInput b{"b", "debian", {}, {{"b1", "same"}, {"b2", "other\n" + boiler + "\nshort"}}};
  corpus_dedup({&a, &b});
  ASSERT_EQ(a.documents.size(), 2u);
  EXPECT_EQ(a.documents[0].text, "intro\n" + boiler + "\nshort");
  ASSERT_EQ(b.documents.size(), 1u);  // "same" was seen in a
  EXPECT_EQ(b.documents[0].text, "other\nshort");  // the long paragraph once; short ones kept
}

TEST(CorpusNamed, UnknownNamesAreRefusedListingTheKnownOnes) {
  try {
    corpus_named("kjv,novels");
    FAIL() << "an unknown corpus";
  } catch (const std::invalid_argument& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("novels"), std::string::npos) << m;
    EXPECT_NE(m.find("python-docs"), std::string::npos) << m;
    EXPECT_NE(m.find("large"), std::string::npos) << m;
  }
  EXPECT_EQ(corpus_names().size(), 6u);
}

}  // namespace
}  // namespace moe
