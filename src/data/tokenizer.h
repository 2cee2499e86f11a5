// Tokenizer: a SentencePiece model (tokenizer.model, the Llama/T5 format) behind a
// small interface, and training of a BPE one with the project's settings.
//
// Trained models use the Llama conventions: unk=0, bos=1, eos=2, no pad (-1),
// byte_fallback (every UTF-8 text encodes; characters outside the vocabulary become
// byte pieces <0x..>), digits split, identity normalisation, whitespace kept as is.
// Unlike Llama, no dummy prefix: "The" encodes the same at the start of a text and
// after a newline, so encoding a text line by line gives the same ids as encoding it
// whole, and decode(encode(s)) == s for every valid UTF-8 string without U+2581 (SentencePiece
// escapes the space as that character, so it decodes as a space).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace moe {

// What a piece is: SentencePiece's piece types, with its numbering (which GGUF's
// tokenizer.ggml.token_type shares).
enum class PieceKind : uint8_t { Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6 };

// How a model file was trained and normalises text: fields of its protobuf, read from
// the file itself (SentencePiece's API does not expose them).
struct TokenizerSpec {
  std::string model_type = "unigram";  // "unigram" | "bpe" | "word" | "char"
  bool byte_fallback = false;
  std::string normalizer;              // normalization rule name ("identity", "nmt_nfkc", ...)
  bool has_charsmap = false;           // a precompiled normalisation map (none for identity)
  bool add_dummy_prefix = true;
  bool remove_extra_whitespaces = true;
  bool escape_whitespaces = true;      // ' ' -> U+2581
  std::vector<PieceKind> kinds;        // per piece, in id order
};
// Parses the serialized ModelProto; throws naming `name` on malformed bytes.
TokenizerSpec tokenizer_spec_parse(const std::string& model_bytes, const std::string& name);

class Tokenizer {
 public:
  // Loads a SentencePiece model file. Throws a one-line error naming the file.
  static Tokenizer load(const std::string& path);
  // From the bytes of a model file; `name` is used in errors.
  static Tokenizer from_bytes(const std::string& bytes, const std::string& name);

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  int32_t vocab_size() const;
  int32_t unk_id() const;
  int32_t bos_id() const;  // -1 when the model has none
  int32_t eos_id() const;  // -1 when the model has none
  int32_t pad_id() const;  // -1 when the model has none

  // Text -> ids, without bos/eos. Thread-safe (const). Throws on invalid input.
  std::vector<int32_t> encode(std::string_view text) const;
  // Ids -> text. Throws when an id is outside [0, vocab_size). Control ids (bos, eos)
  // decode to nothing.
  std::string decode(const std::vector<int32_t>& ids) const;
  // The piece of one id ("▁the", "<0x0A>", "<s>"); throws when out of range.
  std::string piece(int32_t id) const;
  float score(int32_t id) const;     // the piece's score (BPE: minus its merge rank)
  TokenizerSpec spec() const;        // from the model's own bytes
  const std::string& path() const { return path_; }

 private:
  struct Impl;
  Tokenizer();
  std::unique_ptr<Impl> impl_;
  std::string path_;
};

struct TokenizerTrainOptions {
  int vocab_size = 8192;
  // The trainer records its thread count in the model file, so it is fixed rather
  // than taken from --threads: the same text gives the same bytes on any machine.
  // (SentencePiece's BPE trainer gains little from more threads.)
  int threads = 2;
  // Cap on the sentences (lines) the trainer reads; more are sampled down with a
  // fixed seed. Bounds training time on large corpora.
  int64_t max_sentences = 300000;
  // T5's conventions (moe data --t5): pad 0, eos 1, unk 2, no bos. The sentinels
  // <extra_id_N> are not pieces: the dataset puts them above the vocabulary.
  bool t5 = false;
};

// The trainer refused the vocabulary size for this text: too large (not enough
// distinct merges: at most `limit` pieces) or too small (the text's distinct
// characters alone need `limit` pieces).
struct TokenizerVocabError : std::runtime_error {
  TokenizerVocabError(const std::string& what, int requested, int limit, bool too_large)
      : std::runtime_error(what), requested(requested), limit(limit), too_large(too_large) {}
  int requested, limit;
  bool too_large;
};

// Trains a BPE model on `sentences` (each one a line of text without '\n': the
// trainer never sees newlines, which encode as the byte piece <0x0A>) and returns
// the serialized model (the bytes of a tokenizer.model file). Throws one line on
// failure; a vocabulary too small or too large for the text is a TokenizerVocabError.
std::string tokenizer_train(const std::vector<std::string_view>& sentences, const TokenizerTrainOptions& opts);

// A tokenizer file that belongs to a dataset or checkpoint (`owner`, for errors):
// loads it and checks that it is a SentencePiece model whose vocabulary is at least
// min_vocab and at most max_vocab (0: no bound). Throws one line naming the file.
Tokenizer tokenizer_open_checked(const std::string& path, const std::string& owner, int64_t min_vocab,
                                 int64_t max_vocab);

}  // namespace moe
