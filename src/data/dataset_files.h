// A dataset directory's file names and its meta.json reader, shared by building
// (dataset.cpp) and opening (dataset_open.cpp) it.
#pragma once
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <vector>
#include <nlohmann/json.hpp>
#include <string>

#include "data/corpus.h"
#include "data/dataset.h"
#include "data/tokenizer.h"

namespace moe::dataset_files {

inline constexpr const char* kMeta = "meta.json";
inline constexpr const char* kTokenizer = "tokenizer.model";
inline constexpr const char* kTrain = "train.bin";
inline constexpr const char* kVal = "val.bin";

inline std::string join(const std::string& dir, const char* name) {
  return (std::filesystem::path(dir) / name).string();
}

// Changes whenever tokenizer_train's settings change (part of the input hash).
inline constexpr int kTokenizerSettingsVersion = 1;
// Changes whenever the split rule or the automatic choices change (part of the input hash).
inline constexpr int kSplitVersion = 2;

nlohmann::ordered_json read_json(const std::string& path);

}  // namespace moe::dataset_files

namespace moe {

// The dataset's files (dataset_meta.cpp): tokenizer, shards, then meta.json last.
void write_dataset(const DataOptions& o, const std::vector<CorpusInput>& inputs, const Tokenizer& tok,
                   const std::string& tok_bytes, const std::string& tok_sha, const std::string& tok_path,
                   const std::string& out, DataSummary& s, const std::vector<int32_t>& train,
                   const std::vector<int32_t>& val, std::chrono::steady_clock::time_point t_start);

}  // namespace moe

namespace moe::dataset_files {

}  // namespace moe::dataset_files
