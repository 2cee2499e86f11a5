#include "data/dataset.h"
#include "data/dataset_files.h"
#include "io/failpoint.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "data/corpus.h"
#include "io/files.h"
#include "data/sha256.h"
#include "data/shard.h"
#include "data/tokenizer.h"
#include "tensor/cpu.h"

namespace fs = std::filesystem;

namespace moe {

using namespace dataset_files;

namespace {

using ojson = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }



void validate(const DataOptions& o) {
  if (o.out.empty()) throw std::runtime_error("--out: an output directory is required");
  if (!(o.val_fraction >= 0.0 && o.val_fraction <= 0.5))
    throw std::runtime_error("--val-fraction " + std::to_string(o.val_fraction) + ": expected 0 < F <= 0.5");
  if (o.tokenizer.empty() && o.vocab_size != 0 && (o.vocab_size < 260 || o.vocab_size > 1000000))
    throw std::runtime_error("--vocab-size " + std::to_string(o.vocab_size) +
                             ": expected 260 .. 1000000 (3 special ids + 256 byte pieces + at least one more)");
  if (o.t5 && o.tokenizer.empty() && o.vocab_size != 0 && o.vocab_size < 260 + kT5Sentinels)
    throw std::runtime_error("--vocab-size " + std::to_string(o.vocab_size) + " with --t5: expected at least " +
                             std::to_string(260 + kT5Sentinels) + " (the " + std::to_string(kT5Sentinels) +
                             " sentinels are part of it)");
  if (!o.corpus.empty()) corpus_resolve(o.corpus);  // an unknown name, before anything is read
  std::error_code ec;
  if (fs::exists(o.out, ec) && !fs::is_directory(o.out, ec))
    throw std::runtime_error("--out " + o.out + ": exists and is not a directory");
  // The directory is replaced whole when rebuilt: it may hold nothing but a dataset.
  if (fs::is_directory(o.out, ec))
    for (const auto& e : fs::directory_iterator(o.out, ec)) {
      const std::string n = e.path().filename().string();
      if (n != kMeta && n != kTokenizer && n != kTrain && n != kVal)
        throw std::runtime_error("--out " + o.out + ": holds '" + n +
                                 "', which is not part of a dataset (give a new or empty directory)");
    }
}

// The hash that decides whether an existing dataset can be reused: every source's
// content hash, the cleaning and tokenizer-settings versions and the options.
std::string input_hash(const std::vector<CorpusInput>& inputs, const DataOptions& o, const std::string& tok_sha) {
  std::string s = "moe data " + std::to_string(kDatasetFormatVersion) + "\nclean " +
                  std::to_string(kCorpusCleanVersion) + "\nshard " + std::to_string(kShardVersion) + "\n";
  for (const auto& in : inputs) {
    s += "input " + in.kind + " " + in.name + "\n";
    for (const auto& src : in.sources) s += "source " + src.sha256 + " " + std::to_string(src.bytes) + " " + src.name + "\n";
  }
  s += "split " + std::to_string(kSplitVersion) + "\n";
  if (o.tokenizer.empty())
    s += "tokenizer bpe " + (o.vocab_size ? std::to_string(o.vocab_size) : std::string("auto")) + " settings " +
         std::to_string(kTokenizerSettingsVersion) + "\n";
  else
    s += "tokenizer file " + tok_sha + "\n";
  if (o.t5) s += "t5 sentinels " + std::to_string(kT5Sentinels) + "\n";
  char f[64];
  std::snprintf(f, sizeof f, "%.17g", o.val_fraction);
  s += std::string("val_fraction ") + f + "\n";
  return sha256_hex(s);
}



// The warning for a validation split too small for a few evaluation batches.
void add_val_warning(DataSummary& s) {
  if (s.val_tokens >= kValMinTokens) return;
  const uint64_t full = (s.val_tokens - 1) / (8 * 256), tiny = (s.val_tokens - 1) / (8 * 128);
  s.warnings.push_back("the validation split has " + std::to_string(s.val_tokens) + " tokens: " + std::to_string(full) +
                       " evaluation batches of 8 x 256 (moe train's default), " + std::to_string(tiny) +
                       " of 8 x 128 (--preset tiny); fewer than 4 make a noisy validation loss, none makes moe train "
                       "refuse it: add text, raise --val-fraction, or train with a smaller --batch or --seq");
}

// The summary a reused dataset reports, from its meta.json.
DataSummary summary_from_meta(const ojson& m) {
  DataSummary s;
  s.reused = true;
  s.input_hash = m.at("input_hash").get<std::string>();
  for (const auto& in : m.at("inputs")) {
    DataInputSummary d;
    d.name = in.at("name").get<std::string>();
    d.kind = in.at("kind").get<std::string>();
    d.sources = in.at("sources").size();
    d.documents = in.at("documents").get<uint64_t>();
    d.bytes = in.at("bytes").get<uint64_t>();
    d.chars = in.at("chars").get<uint64_t>();
    d.train_tokens = in.at("train_tokens").get<uint64_t>();
    d.val_tokens = in.at("val_tokens").get<uint64_t>();
    s.inputs.push_back(d);
  }
  s.documents = m.at("documents").get<uint64_t>();
  s.bytes = m.at("bytes").get<uint64_t>();
  s.chars = m.at("chars").get<uint64_t>();
  s.train_tokens = m.at("train").at("tokens").get<uint64_t>();
  s.val_tokens = m.at("val").at("tokens").get<uint64_t>();
  s.vocab_size = m.at("vocab_size").get<int64_t>();
  s.sentinels = m.value("sentinels", 0);
  s.tokenizer_trained = m.at("tokenizer").at("trained").get<bool>();
  s.vocab_auto = m.at("options").value("vocab_size_auto", false);
  add_val_warning(s);
  return s;
}

// Empty when the dataset in `dir` was built from the same inputs and options and
// its files are intact; else the reason to rebuild.
std::string reuse_problem(const std::string& dir, const std::string& hash, DataSummary* out) {
  const std::string meta = join(dir, kMeta);
  if (!fs::exists(meta)) return "no " + std::string(kMeta);
  try {
    ojson m = read_json(meta);
    if (m.value("format_version", 0) != kDatasetFormatVersion) return "an older dataset format";
    if (m.value("input_hash", "") != hash) return "the inputs or options changed";
    DatasetInfo info = dataset_open(dir);
    if (sha256_file_hex(info.tokenizer_path) != info.tokenizer_sha256) return "tokenizer.model differs from meta.json";
    *out = summary_from_meta(m);
  } catch (const std::exception& e) {
    return std::string("the existing dataset is unusable (") + e.what() + ")";
  }
  return "";
}

// A document's text in chunks that end at line breaks (each chunk keeps its '\n'),
// about kChunk bytes each, encoded independently. With our tokenizer (no dummy
// prefix, no piece contains '\n') this gives exactly the ids of the whole text.
constexpr size_t kChunk = 32 << 10;

void chunk_text(std::string_view text, std::vector<std::string_view>* out) {
  size_t b = 0;
  while (b < text.size()) {
    size_t e = b + kChunk;
    if (e >= text.size()) {
      e = text.size();
    } else {
      size_t nl = text.find('\n', e);
      e = nl == std::string_view::npos ? text.size() : nl + 1;
    }
    out->push_back(text.substr(b, e - b));
    b = e;
  }
}

// Trains (or takes) the tokenizer, encodes, splits and writes the dataset's files into
// `out` (meta.json last). Fills the rest of `s`.
void build_into(const DataOptions& o, const std::vector<CorpusInput>& inputs, std::string tok_bytes, std::string tok_sha,
                const std::string& out, DataSummary& s, const std::function<void(const std::string&)>& say,
                Clock::time_point t_start, int threads);
// Validation tokens of an input of n tokens: round(F n) for an explicit F; otherwise
// 1%, raised to kValMinTokens, at most 10%. At least 1 and at most n - 1.
uint64_t val_tokens_for(uint64_t n, double fraction) {
  if (n < 2) return 0;
  uint64_t nv;
  if (fraction > 0) {
    nv = uint64_t(std::llround(double(n) * fraction));
  } else {
    nv = std::max<uint64_t>(uint64_t(std::llround(double(n) * kValFraction)), kValMinTokens);
    nv = std::min<uint64_t>(nv, uint64_t(double(n) * kValMaxFraction));
  }
  return std::clamp<uint64_t>(nv, 1, n - 1);
}

// Segments the validation tokens come from: kValSegments, fewer when each would hold
// fewer than 512 tokens (a piece shorter than a few windows is mostly boundary).
uint64_t val_segments(uint64_t nv) { return std::clamp<uint64_t>(nv / 512, 1, kValSegments); }

}  // namespace

int vocab_for_corpus(uint64_t chars) {
  const double x = std::max(1.0, double(chars) / 150.0);
  const int p = int(std::lround(std::log2(x)));
  return std::clamp(1 << std::clamp(p, 9, 13), 512, 8192);
}

DataSummary dataset_build(const DataOptions& o, const std::function<void(const std::string&)>& progress) {
  auto say = [&](const std::string& s) {
    if (progress) progress(s);
  };
  const auto t_start = Clock::now();
  validate(o);
  const int threads = o.threads > 0 ? o.threads : threads_get();

  // ---- read and clean
  std::vector<CorpusInput> inputs;
  if (!o.corpus.empty()) {
    say("reading the corpora " + o.corpus + " (Debian packages)");
    inputs = corpus_named(o.corpus);
  } else if (o.inputs.empty()) {
    say("reading the default corpus (Debian packages bible-kjv, r-cran-janeaustenr)");
    inputs = corpus_default();
  }
  for (const auto& p : o.inputs) inputs.push_back(corpus_from_path(p, o.out));
  std::string tok_bytes, tok_sha;
  if (!o.tokenizer.empty()) {
    try {
      tok_bytes = file_read(o.tokenizer);
    } catch (const std::exception& e) {
      throw std::runtime_error(std::string("--tokenizer ") + e.what());
    }
    tok_sha = sha256_hex(tok_bytes);
  }
  DataSummary s;
  for (const auto& in : inputs) {
    DataInputSummary d;
    d.name = in.name;
    d.kind = in.kind;
    d.sources = in.sources.size();
    d.documents = in.documents.size();
    for (const auto& src : in.sources) d.bytes += src.bytes;
    for (const auto& doc : in.documents) d.chars += utf8_chars(doc.text);
    s.inputs.push_back(d);
    s.documents += d.documents;
    s.bytes += d.bytes;
    s.chars += d.chars;
  }
  if (s.chars == 0) {
    std::string names;
    for (const auto& in : inputs) names += (names.empty() ? "" : ", ") + in.name;
    throw std::runtime_error("empty corpus: no text in " + names);
  }
  s.input_hash = input_hash(inputs, o, tok_sha);
  s.read_s = seconds_since(t_start);

  // ---- reuse
  if (!o.force) {
    DataSummary old;
    std::string why = reuse_problem(o.out, s.input_hash, &old);
    if (why.empty()) {
      old.read_s = s.read_s;
      old.total_s = seconds_since(t_start);
      return old;
    }
    if (fs::exists(join(o.out, kMeta))) say("rebuilding " + o.out + ": " + why);
  }

  // Everything is written into a temp directory beside --out, which replaces --out
  // only when complete: a failure or a kill never leaves a half-built dataset (a
  // killed build's temp directory is removed by the next moe data on the same --out).
  fs::path outp = fs::path(o.out).lexically_normal();
  if (outp.filename().empty()) outp = outp.parent_path();
  const std::string tmp = temp_dir_beside(outp.string());
  try {
    build_into(o, inputs, tok_bytes, tok_sha, tmp, s, say, t_start, threads);
    fsync_dir(tmp);
    dir_commit(tmp, outp.string());
  } catch (...) {
    remove_tree(tmp);
    throw;
  }
  return s;
}

namespace {

// The tokenizer: trained on the corpus's lines (the vocabulary from the corpus size unless
// given; an automatic one adapts when the text cannot support it), or the given one;
// checked for the ids the dataset needs.
Tokenizer dataset_tokenizer(const DataOptions& o, const std::vector<CorpusInput>& inputs, std::string& tok_bytes,
                            std::string& tok_sha, const std::string& tok_path, DataSummary& s,
                            const std::function<void(const std::string&)>& say) {
  // ---- tokenizer
  auto t0 = Clock::now();
  if (o.tokenizer.empty()) {
    std::vector<std::string_view> lines;
    for (const auto& in : inputs)
      for (const auto& doc : in.documents) {
        std::string_view t = doc.text;
        size_t b = 0;
        while (b < t.size()) {
          size_t e = t.find('\n', b);
          if (e == std::string_view::npos) e = t.size();
          if (e > b) lines.push_back(t.substr(b, e - b));
          b = e + 1;
        }
      }
    s.vocab_auto = o.vocab_size == 0;
    TokenizerTrainOptions to;
    to.vocab_size = s.vocab_auto ? vocab_for_corpus(s.chars) : o.vocab_size;  // threads: the fixed default
    // T5: the vocabulary holds the sentinels; the tokenizer the rest.
    const int sentinels = o.t5 ? kT5Sentinels : 0;
    to.t5 = o.t5;
    to.vocab_size -= sentinels;
    say("training a BPE tokenizer, vocabulary " + std::to_string(to.vocab_size) +
        (o.t5 ? " + " + std::to_string(kT5Sentinels) + " sentinels" : std::string()) +
        (s.vocab_auto ? " (from the corpus size; --vocab-size sets it)" : "") + ", on " + std::to_string(lines.size()) +
        " lines");
    for (int attempt = 0;; attempt++) {
      try {
        tok_bytes = tokenizer_train(lines, to);
        break;
      } catch (const TokenizerVocabError& e) {
        // An explicit size is the user's to change; an automatic one adapts to the text.
        if (!s.vocab_auto)
          throw std::invalid_argument("--vocab-size " + std::to_string(o.vocab_size) + ": " + e.what() + "; give --vocab-size " +
                                      (e.too_large ? std::to_string(e.limit + sentinels) + " or less"
                                                   : std::to_string(e.limit + sentinels) + " or more") +
                                      (e.too_large ? " (or more text)" : ""));
        if (attempt == 2) throw std::runtime_error(std::string("tokenizer training: ") + e.what());
        to.vocab_size = e.limit;  // pieces; the sentinels come on top
        say("vocabulary " + std::to_string(e.requested) + (e.too_large ? " is more than this text supports" : " is too small for this text's characters") +
            ": training with " + std::to_string(to.vocab_size));
      }
    }
    tok_sha = sha256_hex(tok_bytes);
    s.tokenizer_trained = true;
  }
  Tokenizer tok = Tokenizer::from_bytes(tok_bytes, o.tokenizer.empty() ? tok_path : o.tokenizer);
  if (tok.eos_id() < 0) throw std::runtime_error("tokenizer " + tok.path() + ": has no eos piece (documents are joined with it)");
  if (o.t5 && (tok.pad_id() != 0 || tok.eos_id() != 1))
    throw std::runtime_error("tokenizer " + tok.path() + ": --t5 needs T5's special ids (pad 0, eos 1), it has pad " +
                             std::to_string(tok.pad_id()) + ", eos " + std::to_string(tok.eos_id()) +
                             " (leave out --tokenizer and moe data trains one)");
  s.sentinels = o.t5 ? kT5Sentinels : 0;
  s.vocab_size = tok.vocab_size() + s.sentinels;  // T5: the sentinels above the pieces
  s.tokenizer_s = seconds_since(t0);

  return tok;
}

// Every document encoded (chunked, in parallel), joined with eos per input, and split:
// each input's validation share from the tails of up to kValSegments segments of it.
void encode_and_split(const DataOptions& o, const std::vector<CorpusInput>& inputs, const Tokenizer& tok,
                      DataSummary& s, const std::function<void(const std::string&)>& say, int threads,
                      std::vector<int32_t>& train, std::vector<int32_t>& val) {
  // ---- encode: every document, chunked, in parallel
  const auto t0 = Clock::now();
  say("encoding " + std::to_string(s.chars) + " characters");
  struct Chunk {
    size_t input, doc;
    std::string_view text;
  };
  std::vector<Chunk> chunks;
  for (size_t i = 0; i < inputs.size(); i++)
    for (size_t d = 0; d < inputs[i].documents.size(); d++) {
      std::vector<std::string_view> parts;
      chunk_text(inputs[i].documents[d].text, &parts);
      for (auto p : parts) chunks.push_back({i, d, p});
    }
  std::vector<std::vector<int32_t>> ids(chunks.size());
  std::string error;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
  for (size_t c = 0; c < chunks.size(); c++) {
    try {
      ids[c] = tok.encode(chunks[c].text);
    } catch (const std::exception& e) {
#pragma omp critical
      error = e.what();
    }
  }
  if (!error.empty()) throw std::runtime_error(error);

  // ---- split: val_tokens_for() of each input's stream is held out, from the tails of
  // up to kValSegments equal segments of it
  const int32_t eos = tok.eos_id();
  // Each input's stream length (its tokens, one eos per document) and validation share;
  // the automatic split is raised, over the inputs in proportion, to one batch of
  // kMinSplitTokens in all when it falls short and the corpus allows (at most half).
  std::vector<uint64_t> n_of(inputs.size(), 0), nv_of(inputs.size());
  for (size_t k = 0; k < chunks.size(); k++) n_of[chunks[k].input] += ids[k].size();
  uint64_t total = 0, val_total = 0;
  for (size_t i = 0; i < inputs.size(); i++) {
    n_of[i] += inputs[i].documents.size();
    nv_of[i] = val_tokens_for(n_of[i], o.val_fraction);
    total += n_of[i], val_total += nv_of[i];
  }
  const uint64_t want = std::min<uint64_t>(kMinSplitTokens, total / 2);
  if (o.val_fraction <= 0 && val_total < want)
    for (size_t i = 0; i < inputs.size(); i++)
      nv_of[i] = std::max(nv_of[i], std::min<uint64_t>((want * n_of[i] + total - 1) / total, n_of[i] / 2));
  size_t c = 0;
  for (size_t i = 0; i < inputs.size(); i++) {
    std::vector<int32_t> stream;  // doc EOS doc EOS ...
    for (size_t d = 0; d < inputs[i].documents.size(); d++) {
      for (; c < chunks.size() && chunks[c].input == i && chunks[c].doc == d; c++)
        stream.insert(stream.end(), ids[c].begin(), ids[c].end());
      stream.push_back(eos);
    }
    const uint64_t n = stream.size(), nv = nv_of[i];
    if (n != n_of[i]) throw std::logic_error("dataset: input " + std::to_string(i) + "'s stream length miscounted");
    const uint64_t S = val_segments(nv);
    for (uint64_t k = 0; k < S; k++) {
      const uint64_t b = n * k / S, e = n * (k + 1) / S, v = nv * (k + 1) / S - nv * k / S;
      train.insert(train.end(), stream.begin() + int64_t(b), stream.begin() + int64_t(e - v));
      val.insert(val.end(), stream.begin() + int64_t(e - v), stream.begin() + int64_t(e));
    }
    s.inputs[i].train_tokens = n - nv;
    s.inputs[i].val_tokens = nv;
  }
  if (train.empty() || val.empty())
    throw std::runtime_error("corpus too small: " + std::to_string(train.size() + val.size()) +
                             " tokens cannot be split into train and val");
  // A dataset moe train would refuse is refused now, not after it is written: each split
  // must hold one batch of the smallest shape moe train takes by default (--preset tiny).
  for (const auto& [name, n] : {std::pair{"training", train.size()}, std::pair{"validation", val.size()}})
    if (n < kMinSplitTokens)
      throw std::runtime_error("corpus too small: the " + std::string(name) + " split would hold " + std::to_string(n) +
                               " tokens, fewer than one batch of the tiny preset's 8 x 128 (+1), the least moe train takes; add "
                               "text" + (std::string(name) == "validation" ? " or raise --val-fraction" : ""));
  s.train_tokens = train.size();
  s.val_tokens = val.size();
  add_val_warning(s);
  s.encode_s = seconds_since(t0);

}

void build_into(const DataOptions& o, const std::vector<CorpusInput>& inputs, std::string tok_bytes, std::string tok_sha,
                const std::string& out, DataSummary& s, const std::function<void(const std::string&)>& say,
                Clock::time_point t_start, int threads) {
  const std::string tok_path = join(out, kTokenizer);
  const Tokenizer tok = dataset_tokenizer(o, inputs, tok_bytes, tok_sha, tok_path, s, say);
  std::vector<int32_t> train, val;
  encode_and_split(o, inputs, tok, s, say, threads, train, val);
  write_dataset(o, inputs, tok, tok_bytes, tok_sha, tok_path, out, s, train, val, t_start);
}

}  // namespace

}  // namespace moe
