// Corpus: where the text comes from and how it is cleaned before tokenization.
//
// An Input is what one --input names (a file or a directory, read recursively), or one
// half of the default corpus, which comes from Debian packages:
//   bible-kjv           the King James Bible (`bible`), one document per book;
//   janeaustenr         Jane Austen's six novels (R package r-cran-janeaustenr, read
//                       with Rscript), one document per novel.
// Each Input holds Sources (a file, or the output of one command: the unit that is
// hashed) and Documents (cleaned text, joined with EOS in the token stream).
// Cleaned text is UTF-8 with paragraphs separated by one '\n' and no trailing newline.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace moe {

// Bumped whenever cleaning changes, so that `moe data` rebuilds datasets made with
// the old rules (it is part of the input hash).
inline constexpr int kCorpusCleanVersion = 1;

struct CorpusSource {
  std::string name;    // the file's path, or "bible-kjv", "janeaustenr/emma", ...
  uint64_t bytes = 0;  // raw bytes read
  std::string sha256;  // of the raw bytes
};

struct CorpusDocument {
  std::string name;
  std::string text;  // cleaned
};

struct CorpusInput {
  std::string name;  // the --input path as given, or "bible-kjv" / "janeaustenr"
  std::string kind;  // "file", "dir" or "debian"
  std::vector<CorpusSource> sources;
  std::vector<CorpusDocument> documents;  // empty documents dropped
};

// The two inputs of the default corpus. Throws one line naming the Debian package to
// install when a program or package is missing.
std::vector<CorpusInput> corpus_default();
CorpusInput corpus_kjv();
CorpusInput corpus_austen();

// Named corpora from Debian packages (moe data --corpus), each one input:
//   kjv          bible-kjv              the King James Bible
//   austen       r-cran-janeaustenr     Jane Austen's six novels
//   moby         r-cran-tokenizers      Moby Dick (Project Gutenberg's text, its license header cut)
//   python-docs  python3.11-doc         the reStructuredText sources of Python's documentation
//                                       (one document per page; the changelog left out)
//   perl-docs    perl-doc               Perl's POD manuals (markup removed; the perl*delta
//                                       release notes left out)
//   wordnet      wordnet-base           WordNet's glosses, "word, synonym: definition; "examples""
// `list`: names separated by commas, or "default" (kjv,austen) or "large" (all of them).
// The documentation and dictionary inputs are deduplicated: a document whose text was
// seen before, and a paragraph of 200+ characters seen before, are dropped (the books
// keep their own repetitions). Throws one line naming an unknown corpus, or the Debian
// package to install.
std::vector<CorpusInput> corpus_named(const std::string& list);
// The names a list stands for, checked (throws std::invalid_argument naming an unknown one).
std::vector<std::string> corpus_resolve(const std::string& list);
std::vector<std::string> corpus_names();  // kjv, austen, moby, python-docs, perl-docs, wordnet
// The deduplication: drops documents already seen and paragraphs (lines) of 200+
// characters already seen, across the inputs given, in order.
void corpus_dedup(const std::vector<CorpusInput*>& inputs);

// A user file, or a directory read recursively (regular files in sorted path order;
// names starting with '.' skipped, and so is `exclude` (the output directory) when
// it lies inside). Every file must be UTF-8 text: a NUL byte or invalid UTF-8 is an
// error naming the file and the offset. Throws when the path does not exist.
CorpusInput corpus_from_path(const std::string& path, const std::string& exclude = "");

// ---- cleaning (exposed for tests)

// Offset of the first byte that is not part of valid UTF-8 (overlong forms,
// surrogates and values above U+10FFFF are invalid), or npos when all is valid.
size_t utf8_invalid_offset(std::string_view s);
// Unicode code points in valid UTF-8.
uint64_t utf8_chars(std::string_view s);

// Plain text: drops a BOM, CRLF/CR -> LF, trailing whitespace of each line, runs of
// blank lines down to one, leading and trailing blank lines. Line breaks are kept.
std::string clean_plain_text(std::string_view raw);
// Output of `bible -l100000 gen1:1-rev22:21`: one document per book; chapter
// headings and verse numbers dropped; one verse per line.
std::vector<CorpusDocument> clean_kjv(std::string_view raw);
// A janeaustenr novel (lines wrapped at ~70 columns, blank lines between
// paragraphs): paragraphs unwrapped to one line each, '_' italics markers and '*'
// (footnote marks, section-break rows) removed, runs of spaces collapsed, the
// editors' notes dropped (bracketed notes about editions, a closing "A NOTE ON THE
// TEXT").
std::string clean_austen(std::string_view raw);
// A Project Gutenberg text: what lies between its "*** START OF" and "*** END OF"
// lines (all of it when they are missing), unwrapped like clean_austen.
std::string clean_gutenberg(std::string_view raw);
// POD (Perl's documentation markup): command paragraphs become their text ("=head1
// NAME" -> "NAME"; =cut, =over, =back, =begin/=end/=for blocks and =encoding dropped),
// formatting codes their content (C<x>, B<< x >>, L<text|target> -> text, E<gt> -> >).
std::string clean_pod(std::string_view raw);
// WordNet data.* lines -> one line per synset: "lemma, lemma: gloss" (underscores as
// spaces); the license header (lines starting with two spaces) skipped.
std::string wordnet_glosses(std::string_view raw);

}  // namespace moe
