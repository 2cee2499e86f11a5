// A dataset directory, what `moe data` writes and `moe train` reads:
//   tokenizer.model  SentencePiece model (trained on the corpus, or the one given)
//   train.bin        token shard (see shard.h): the training stream
//   val.bin          token shard: the held-out stream
//   meta.json        sources, counts, special ids, hashes, options; written last, so a
//                    directory without it is incomplete and never used.
// See docs/data.md for the fields and how the validation split is chosen.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace moe {

inline constexpr int kDatasetFormatVersion = 1;

struct DataOptions {
  std::string out;                  // the dataset directory (created when missing)
  std::vector<std::string> inputs;  // files / directories; empty (and no corpus): the default Debian corpus
  std::string corpus;               // named Debian corpora (corpus_named): "large", "kjv,moby", ...
  std::string tokenizer;            // an existing tokenizer.model; empty: train one
  int vocab_size = 0;               // when training; 0: from the corpus size (vocab_for_corpus)
  double val_fraction = 0;          // of each input's token stream; 0: automatic (see below)
  bool force = false;               // rebuild even when meta.json says the inputs are unchanged
  int threads = 0;                  // for encoding; <= 0: threads_get()
  // T5 (span corruption): a tokenizer with T5's special ids (pad 0, eos 1, unk 2) and
  // kT5Sentinels ids above its pieces for the sentinels; vocab_size counts them.
  bool t5 = false;
};
inline constexpr int kT5Sentinels = 100;  // T5's extra_ids

struct DataInputSummary {
  std::string name, kind;
  uint64_t sources = 0, documents = 0, bytes = 0, chars = 0, train_tokens = 0, val_tokens = 0;
};

struct DataSummary {
  bool reused = false;
  std::string input_hash;
  std::vector<DataInputSummary> inputs;
  uint64_t documents = 0, bytes = 0, chars = 0, train_tokens = 0, val_tokens = 0;
  int64_t vocab_size = 0;
  int sentinels = 0;               // T5 datasets: ids above the tokenizer's pieces
  bool tokenizer_trained = false;
  bool vocab_auto = false;         // the vocabulary was chosen from the corpus size
  std::vector<std::string> warnings;  // e.g. a validation split too small for a few batches
  double read_s = 0, tokenizer_s = 0, encode_s = 0, total_s = 0;  // this run's times
};

// The default vocabulary for `chars` characters of text: the power of two nearest
// chars / 150, within [512, 8192] (8192 from about 870K characters up). A small corpus
// gets a small vocabulary: every piece is seen often enough to be learned, and a small
// model does not spend most of its parameters on embeddings.
int vocab_for_corpus(uint64_t chars);

// The automatic validation split: 1% of each input's tokens, raised to kValMinTokens
// (4 batches of moe train's default 8 x 256, +1) but never above 10% of the input; when
// the inputs' shares add up to less than one batch of 8 x 128 (kMinSplitTokens), they are
// raised in proportion to that batch, each to at most half its input (moe data's build).
inline constexpr double kValFraction = 0.01, kValMaxFraction = 0.1;
inline constexpr uint64_t kValMinTokens = 4 * 8 * 256 + 1;
// Each split holds at least one batch of moe train's smallest default shape (the tiny
// preset's 8 x 128, +1 for the shifted targets), or moe data refuses the corpus.
inline constexpr uint64_t kMinSplitTokens = 8 * 128 + 1;
// Validation is taken from up to kValSegments places spread evenly over each input's
// stream (the tail of each segment), so it samples every part of the corpus.
inline constexpr int kValSegments = 16;

// Builds (or reuses) the dataset. Progress messages (one line each) go to `progress`.
// Throws one line on bad options, missing or binary inputs, an empty corpus, a
// missing Debian package, or any I/O failure; nothing half-written is ever valid
// (meta.json is removed first and written last, every file atomically).
DataSummary dataset_build(const DataOptions& opts, const std::function<void(const std::string&)>& progress = {});

// What training needs from a dataset directory, read from meta.json and checked
// against the files (present; shard headers agree with meta.json).
struct DatasetInfo {
  std::string dir, tokenizer_path, train_path, val_path;
  int64_t vocab_size = 0;
  int32_t unk_id = -1, bos_id = -1, eos_id = -1, pad_id = -1;
  // T5 datasets (moe data --t5): the ids [vocab_size - sentinels, vocab_size) above the
  // tokenizer's pieces are the sentinels <extra_id_0> = vocab_size - 1, <extra_id_1>, ...
  int sentinels = 0;
  uint64_t train_tokens = 0, val_tokens = 0;
  std::string tokenizer_sha256;
};
// Throws one line naming the directory (or file) and what is wrong, e.g. when
// meta.json is missing ("not a dataset directory: run moe data").
DatasetInfo dataset_open(const std::string& dir);

}  // namespace moe
