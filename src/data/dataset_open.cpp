// Opening a dataset directory (moe data's output): meta.json, the shards and the
// tokenizer checked against each other.
#include <filesystem>
#include <stdexcept>

#include "data/dataset.h"
#include "data/dataset_files.h"
#include "data/sha256.h"
#include "data/shard.h"
#include "data/tokenizer.h"
#include "io/files.h"

namespace fs = std::filesystem;

namespace moe {

namespace dataset_files {

using ojson = nlohmann::ordered_json;

nlohmann::ordered_json read_json(const std::string& path) {
  std::string text = file_read(path);
  ojson j = ojson::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) throw std::runtime_error(path + ": not a JSON object");
  return j;
}

}  // namespace dataset_files

using namespace dataset_files;
using ojson = nlohmann::ordered_json;

DatasetInfo dataset_open(const std::string& dir) {
  const std::string meta = join(dir, kMeta);
  if (!fs::exists(meta)) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) throw std::runtime_error("dataset " + dir + ": no such directory (build one with moe data)");
    bool empty = fs::directory_iterator(dir, ec) == fs::directory_iterator();
    if (empty || fs::exists(join(dir, kTrain)) || fs::exists(join(dir, kTokenizer)))
      throw std::runtime_error("dataset " + dir + ": no meta.json (an incomplete dataset directory: rebuild it with moe data --out " +
                               dir + " and its --input)");
    // Anything else, e.g. the user's folder of text: never suggest writing into it.
    throw std::runtime_error("dataset " + dir + ": not a dataset directory (no meta.json); to make one from the text in it: "
                             "moe data --input " + dir + " --out DATASET_DIR, then --data DATASET_DIR");
  }
  ojson m = read_json(meta);
  DatasetInfo d;
  d.dir = dir;
  try {
    if (m.at("format").get<std::string>() != "moe-dataset" || m.at("format_version").get<int>() != kDatasetFormatVersion)
      throw std::runtime_error("format is not moe-dataset version " + std::to_string(kDatasetFormatVersion));
    d.tokenizer_path = join(dir, kTokenizer);
    d.train_path = join(dir, kTrain);
    d.val_path = join(dir, kVal);
    d.vocab_size = m.at("vocab_size").get<int64_t>();
    const auto& sp = m.at("special_ids");
    d.unk_id = sp.at("unk").get<int32_t>();
    d.bos_id = sp.at("bos").get<int32_t>();
    d.eos_id = sp.at("eos").get<int32_t>();
    d.pad_id = sp.at("pad").get<int32_t>();
    d.train_tokens = m.at("train").at("tokens").get<uint64_t>();
    d.val_tokens = m.at("val").at("tokens").get<uint64_t>();
    d.tokenizer_sha256 = m.at("tokenizer").at("sha256").get<std::string>();
    d.sentinels = m.value("sentinels", 0);
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(meta + ": missing or malformed field: " + e.what());
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(meta + ": " + e.what());
  }
  if (d.vocab_size <= 0) throw std::runtime_error(meta + ": vocab_size " + std::to_string(d.vocab_size) + ", expected > 0");
  if (!fs::exists(d.tokenizer_path)) throw std::runtime_error("dataset " + dir + ": tokenizer.model is missing");
  // The tokenizer is what every checkpoint of the dataset copies: load it now, so a
  // damaged one fails here, naming the dataset, and not later in another command.
  if (sha256_file_hex(d.tokenizer_path) != d.tokenizer_sha256)
    throw std::runtime_error("dataset " + dir + ": tokenizer.model does not match the sha256 in meta.json "
                             "(changed after moe data; rebuild with moe data --force)");
  if (d.sentinels < 0 || d.sentinels >= d.vocab_size)
    throw std::runtime_error(meta + ": sentinels " + std::to_string(d.sentinels) + ", expected 0 or a count below vocab_size");
  // The tokenizer's pieces, then the sentinels (none but for T5 datasets).
  tokenizer_open_checked(d.tokenizer_path, meta, d.vocab_size - d.sentinels, d.vocab_size - d.sentinels);
  for (auto [path, want] : {std::pair{d.train_path, d.train_tokens}, std::pair{d.val_path, d.val_tokens}}) {
    TokenShard s = TokenShard::open(path, uint64_t(d.vocab_size));
    if (s.size() != want)
      throw std::runtime_error("token shard: " + path + ": holds " + std::to_string(s.size()) + " tokens, meta.json says " +
                               std::to_string(want));
  }
  return d;
}

}  // namespace moe
