#include "data/tokenizer.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <cstdlib>
#include <stdexcept>
#include <unordered_map>

#include "io/files.h"

// Exported by libsentencepiece but not declared in its public headers: the level
// below which its LOG() lines are dropped (0 info, 1 warning, 2 error). Training
// logs dozens of info lines per run otherwise.
namespace sentencepiece::logging {
int GetMinLogLevel();
void SetMinLogLevel(int v);
}  // namespace sentencepiece::logging

namespace moe {

namespace spm = sentencepiece;

struct Tokenizer::Impl {
  spm::SentencePieceProcessor sp;
};

Tokenizer::Tokenizer() : impl_(std::make_unique<Impl>()) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::from_bytes(const std::string& bytes, const std::string& name) {
  Tokenizer t;
  t.path_ = name;
  sentencepiece::util::Status st;
  try {
    st = t.impl_->sp.LoadFromSerializedProto(bytes);
  } catch (const std::exception& e) {  // SentencePiece's trie builder throws on some malformed models (fuzzing)
    throw std::runtime_error("tokenizer: " + name + ": not a valid SentencePiece model (" + e.what() + ")");
  }
  if (!st.ok()) throw std::runtime_error("tokenizer: " + name + ": not a valid SentencePiece model: " + st.ToString());
  if (t.vocab_size() <= 0) throw std::runtime_error("tokenizer: " + name + ": empty vocabulary");
  return t;
}

Tokenizer Tokenizer::load(const std::string& path) {
  std::string bytes;
  try {
    bytes = file_read(path);
  } catch (const std::exception& e) {
    throw std::runtime_error(std::string("tokenizer: ") + e.what());
  }
  return from_bytes(bytes, path);
}

int32_t Tokenizer::vocab_size() const { return impl_->sp.GetPieceSize(); }
int32_t Tokenizer::unk_id() const { return impl_->sp.unk_id(); }
int32_t Tokenizer::bos_id() const { return impl_->sp.bos_id(); }
int32_t Tokenizer::eos_id() const { return impl_->sp.eos_id(); }
int32_t Tokenizer::pad_id() const { return impl_->sp.pad_id(); }

std::vector<int32_t> Tokenizer::encode(std::string_view text) const {
  std::vector<int> ids;
  auto st = impl_->sp.Encode(text, &ids);
  if (!st.ok()) throw std::runtime_error("tokenizer: " + path_ + ": encode failed: " + st.ToString());
  return std::vector<int32_t>(ids.begin(), ids.end());
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const {
  const int32_t V = vocab_size();
  for (size_t i = 0; i < ids.size(); i++)
    if (ids[i] < 0 || ids[i] >= V)
      throw std::runtime_error("tokenizer: " + path_ + ": id " + std::to_string(ids[i]) + " at position " +
                               std::to_string(i) + " is outside the vocabulary [0, " + std::to_string(V) + ")");
  std::string out;
  auto st = impl_->sp.Decode(std::vector<int>(ids.begin(), ids.end()), &out);
  if (!st.ok()) throw std::runtime_error("tokenizer: " + path_ + ": decode failed: " + st.ToString());
  return out;
}

std::string Tokenizer::piece(int32_t id) const {
  if (id < 0 || id >= vocab_size())
    throw std::runtime_error("tokenizer: " + path_ + ": id " + std::to_string(id) + " is outside the vocabulary [0, " +
                             std::to_string(vocab_size()) + ")");
  return impl_->sp.IdToPiece(id);
}

float Tokenizer::score(int32_t id) const {
  piece(id);  // range check
  return impl_->sp.GetScore(id);
}

TokenizerSpec Tokenizer::spec() const { return tokenizer_spec_parse(impl_->sp.serialized_model_proto(), path_); }

// ---------------------------------------------------------------- training

namespace {

class VectorIterator : public spm::SentenceIterator {
 public:
  explicit VectorIterator(const std::vector<std::string_view>& v) : v_(v) { load(); }
  bool done() const override { return i_ >= v_.size(); }
  void Next() override {
    i_++;
    load();
  }
  const std::string& value() const override { return cur_; }
  spm::util::Status status() const override { return spm::util::Status(); }

 private:
  void load() {
    if (i_ < v_.size()) cur_.assign(v_[i_]);
  }
  const std::vector<std::string_view>& v_;
  size_t i_ = 0;
  std::string cur_;
};

// Restores the library's log level on every exit path.
struct QuietLogs {
  int saved = spm::logging::GetMinLogLevel();
  QuietLogs() { spm::logging::SetMinLogLevel(2); }
  ~QuietLogs() { spm::logging::SetMinLogLevel(saved); }
};

}  // namespace

std::string tokenizer_train(const std::vector<std::string_view>& sentences, const TokenizerTrainOptions& o) {
  if (sentences.empty()) throw std::runtime_error("tokenizer training: no text");
  if (o.vocab_size < 1) throw std::runtime_error("tokenizer training: vocabulary size must be positive");
  const std::unordered_map<std::string, std::string> args = {
      {"model_type", "bpe"},
      {"vocab_size", std::to_string(o.vocab_size)},
      {"character_coverage", "1.0"},  // rare characters as whole pieces ...
      {"byte_fallback", "true"},      // ... and anything else as bytes: no <unk> on valid UTF-8
      {"split_digits", "true"},
      {"unk_id", o.t5 ? "2" : "0"},
      {"bos_id", o.t5 ? "-1" : "1"},
      {"eos_id", o.t5 ? "1" : "2"},
      {"pad_id", o.t5 ? "0" : "-1"},
      {"normalization_rule_name", "identity"},
      {"remove_extra_whitespaces", "false"},
      {"add_dummy_prefix", "false"},
      {"allow_whitespace_only_pieces", "true"},
      {"max_sentence_length", "65536"},  // bytes; long paragraphs are not dropped
      {"input_sentence_size", std::to_string(o.max_sentences)},
      {"shuffle_input_sentence", "true"},
      {"num_threads", std::to_string(std::max(1, o.threads))},
      {"hard_vocab_limit", "true"},
      {"model_prefix", ""},
  };
  QuietLogs quiet;
  spm::SetRandomGeneratorSeed(20240601u);  // the sampling of sentences, when capped
  VectorIterator it(sentences);
  std::string model;
  auto st = spm::SentencePieceTrainer::Train(args, &it, &model);
  if (!st.ok()) {
    // SentencePiece's messages carry its source location and check expression; keep
    // the number that matters and say it in our words.
    const std::string msg(st.message());
    const int V = o.vocab_size;
    size_t at = msg.find("Please set it to a value <= ");
    if (at != std::string::npos) {
      const int limit = std::atoi(msg.c_str() + at + 28);
      throw TokenizerVocabError("vocabulary " + std::to_string(V) + " is too large for this text: it supports at most " +
                                    std::to_string(limit) + " pieces",
                                V, limit, true);
    }
    at = msg.find("smaller than required_chars. ");
    if (at != std::string::npos) {
      const size_t vs = msg.find(" vs ", at);
      const int need = vs == std::string::npos ? 0 : std::atoi(msg.c_str() + vs + 4);
      throw TokenizerVocabError("vocabulary " + std::to_string(V) + " is too small for this text: its distinct "
                                    "characters alone need " + std::to_string(need) + " pieces",
                                V, need, false);
    }
    const size_t tail = msg.rfind("] ");  // drop "./src/x.cc(660) [check] "
    throw std::runtime_error("tokenizer training failed: " + (tail == std::string::npos ? msg : msg.substr(tail + 2)));
  }
  return model;
}

Tokenizer tokenizer_open_checked(const std::string& path, const std::string& owner, int64_t min_vocab,
                                 int64_t max_vocab) {
  Tokenizer t = Tokenizer::load(path);
  const int64_t v = t.vocab_size();
  if (v < min_vocab || (max_vocab > 0 && v > max_vocab))
    throw std::runtime_error("tokenizer: " + path + ": has " + std::to_string(v) + " pieces, but " + owner +
                             (min_vocab == max_vocab ? " expects exactly " + std::to_string(max_vocab)
                                                     : " expects at most " + std::to_string(max_vocab)) +
                             " (a tokenizer from another dataset?)");
  return t;
}

}  // namespace moe
