// Writing a dataset directory's files: the tokenizer, the shards, then meta.json last
// (what makes the directory a dataset; moe data's reuse check and dataset_open read it).
#include <chrono>
#include <ctime>
#include <nlohmann/json.hpp>

#include "data/dataset_files.h"
#include "data/shard.h"
#include "io/failpoint.h"
#include "io/files.h"

namespace moe {

using namespace dataset_files;

namespace {

using ojson = nlohmann::ordered_json;

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::string utc_now() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char b[32];
  std::strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return b;
}

}  // namespace

// The dataset's files: tokenizer, shards, then meta.json last (what makes it a dataset).
void write_dataset(const DataOptions& o, const std::vector<CorpusInput>& inputs, const Tokenizer& tok,
                   const std::string& tok_bytes, const std::string& tok_sha, const std::string& tok_path,
                   const std::string& out, DataSummary& s, const std::vector<int32_t>& train,
                   const std::vector<int32_t>& val, std::chrono::steady_clock::time_point t_start) {
  // ---- write: tokenizer, shards, then meta.json last
  file_write_atomic(tok_path, tok_bytes);
  failpoint("data.write");
  shard_write(join(out, kTrain), train.data(), train.size(), uint64_t(s.vocab_size));
  shard_write(join(out, kVal), val.data(), val.size(), uint64_t(s.vocab_size));
  s.total_s = seconds_since(t_start);

  ojson m;
  m["format"] = "moe-dataset";
  m["format_version"] = kDatasetFormatVersion;
  m["moe_version"] = MOE_VERSION;
  m["created"] = utc_now();
  m["input_hash"] = s.input_hash;
  m["vocab_size"] = s.vocab_size;
  m["special_ids"] = {{"unk", tok.unk_id()}, {"bos", tok.bos_id()}, {"eos", tok.eos_id()}, {"pad", tok.pad_id()}};
  if (s.sentinels > 0) m["sentinels"] = s.sentinels;  // <extra_id_0> = vocab_size - 1, <extra_id_1> below it, ...
  m["tokenizer"] = {{"file", kTokenizer},
                    {"sha256", tok_sha},
                    {"trained", s.tokenizer_trained},
                    {"source", o.tokenizer.empty() ? ojson(nullptr) : ojson(o.tokenizer)},
                    {"model_type", s.tokenizer_trained ? ojson("bpe") : ojson(nullptr)}};
  m["train"] = {{"file", kTrain}, {"tokens", s.train_tokens}, {"bytes_per_token", shard_width_for_vocab(s.vocab_size)}};
  m["val"] = {{"file", kVal}, {"tokens", s.val_tokens}, {"bytes_per_token", shard_width_for_vocab(s.vocab_size)}};
  m["documents"] = s.documents;
  m["bytes"] = s.bytes;
  m["chars"] = s.chars;
  m["tokens_per_char"] = double(s.train_tokens + s.val_tokens) / double(s.chars);
  ojson jin = ojson::array();
  for (size_t i = 0; i < inputs.size(); i++) {
    const auto& d = s.inputs[i];
    ojson srcs = ojson::array();
    for (const auto& src : inputs[i].sources) srcs.push_back({{"name", src.name}, {"bytes", src.bytes}, {"sha256", src.sha256}});
    jin.push_back({{"name", d.name},
                   {"kind", d.kind},
                   {"documents", d.documents},
                   {"bytes", d.bytes},
                   {"chars", d.chars},
                   {"train_tokens", d.train_tokens},
                   {"val_tokens", d.val_tokens},
                   {"sources", srcs}});
  }
  m["inputs"] = jin;
  m["split"] = "val = val_fraction of each input's token stream (documents joined with eos), taken from the tails of up "
               "to 16 equal segments of it";
  m["options"] = {{"inputs", o.inputs},
                  {"tokenizer", o.tokenizer.empty() ? ojson(nullptr) : ojson(o.tokenizer)},
                  {"vocab_size", o.tokenizer.empty() ? ojson(s.vocab_size) : ojson(nullptr)},
                  {"vocab_size_auto", s.vocab_auto},
                  {"t5", o.t5},
                  {"val_fraction", o.val_fraction > 0 ? ojson(o.val_fraction) : ojson("auto")},
                  {"split_version", kSplitVersion},
                  {"clean_version", kCorpusCleanVersion},
                  {"tokenizer_settings_version", kTokenizerSettingsVersion}};
  m["timing_s"] = {{"read", s.read_s}, {"tokenizer", s.tokenizer_s}, {"encode", s.encode_s}, {"total", s.total_s}};
  file_write_atomic(join(out, kMeta), m.dump(2) + "\n");
}

}  // namespace moe
