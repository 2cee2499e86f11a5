// Broken checkpoints and datasets, as `moe eval` and `moe train --init` meet them:
// each fails with exit 1, exactly one line on stderr naming the file (and the
// tensor or field) and what was expected, and writes nothing. The broken files are
// made from a valid checkpoint (the shared fixture's run); safetensors headers are
// rewritten by hand with nlohmann::json.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <functional>
#include <map>

#include "cli/cli_util.h"

namespace fs = std::filesystem;

namespace moe::clitest {
namespace {

using json = nlohmann::json;

// A safetensors file split into its parts.
struct StFile {
  json header;
  std::string data;  // the data region
};

StFile st_read(const std::string& path) {
  const std::string bytes = read_file(path);
  uint64_t n;
  std::memcpy(&n, bytes.data(), 8);
  StFile f;
  f.header = json::parse(bytes.substr(8, n));
  f.data = bytes.substr(8 + n);
  return f;
}

void st_write(const std::string& path, const StFile& f) {
  const std::string h = f.header.dump();
  uint64_t n = h.size();
  std::string bytes(8, '\0');
  std::memcpy(bytes.data(), &n, 8);
  write_file(path, bytes + h + f.data);
}

std::map<std::string, std::string> snapshot(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    out[fs::relative(e.path(), dir).string()] = e.is_regular_file() ? read_file(e.path().string()) : "<dir>";
  return out;
}

const std::string kQ0 = "model.layers.0.self_attn.q_proj.weight";  // [64, 64] in the tiny llama
const std::string kQ1 = "model.layers.1.self_attn.q_proj.weight";

class BadInput : public ::testing::Test {
 protected:
  BadInput() : tmp_(::testing::UnitTest::GetInstance()->current_test_info()->name()) {}

  // A copy of the fixture's checkpoint to break.
  std::string copy_checkpoint() {
    const std::string dir = tmp_ / "ckpt";
    fs::copy(run_checkpoint(), dir, fs::copy_options::recursive);
    return dir;
  }

  // `moe eval --model dir` and `moe train --init dir` both fail with one line holding
  // every needle, and write nothing (no run directory, the checkpoint untouched).
  void expect_bad_checkpoint(const std::string& dir, const std::vector<std::string>& needles) {
    const auto before = snapshot(dir);
    Proc r = run_moe(kOneThread + "eval --model " + q(dir) + " --data " + q(dataset()) + " --batches 1 --batch 4 --seq 32");
    expect_one_line_error(r, 1, needles, "moe eval --model <broken checkpoint>");
    const std::string out = tmp_ / "train_out";
    r = run_moe(kOneThread + "train --init " + q(dir) + " --data " + q(dataset()) + " --out " + q(out) +
                " --batch 4 --seq 32 --steps 1 --eval-every 0");
    expect_one_line_error(r, 1, needles, "moe train --init <broken checkpoint>");
    EXPECT_FALSE(fs::exists(out)) << "train wrote " << out;
    EXPECT_EQ(snapshot(dir), before) << "the checkpoint directory was modified";
  }

  // `moe eval --data dir` and `moe train --data dir` both fail with one line.
  void expect_bad_dataset(const std::string& dir, const std::vector<std::string>& needles) {
    Proc r = run_moe(kOneThread + "eval --model " + q(run()) + " --data " + q(dir) + " --batches 1 --batch 4 --seq 32");
    expect_one_line_error(r, 1, needles, "moe eval --data <broken dataset>");
    const std::string out = tmp_ / "train_out";
    r = run_moe(kOneThread + "train --preset tiny --data " + q(dir) + " --out " + q(out) +
                " --batch 4 --seq 32 --steps 1 --eval-every 0");
    expect_one_line_error(r, 1, needles, "moe train --data <broken dataset>");
    EXPECT_FALSE(fs::exists(out)) << "train wrote " << out;
  }

  // Rewrites dir/model.safetensors's header (the data region kept) with `edit`.
  void edit_header(const std::string& dir, const std::function<void(StFile&)>& edit) {
    StFile f = st_read(dir + "/model.safetensors");
    ASSERT_TRUE(f.header.contains(kQ0) && f.header.contains(kQ1)) << "the fixture is not the tiny llama";
    edit(f);
    st_write(dir + "/model.safetensors", f);
  }

  TempDir tmp_;
};

TEST_F(BadInput, TruncatedModelFile) {
  const std::string dir = copy_checkpoint(), st = dir + "/model.safetensors";
  fs::resize_file(st, fs::file_size(st) / 2);
  // Some tensor's bytes now lie beyond the end: the message names it.
  expect_bad_checkpoint(dir, {st, "tensor '", "extend past the data region"});
  fs::resize_file(st, 5);
  expect_bad_checkpoint(dir, {st, "5 bytes, shorter than the 8-byte header length"});
}

TEST_F(BadInput, HeaderLengthLargerThanFile) {
  const std::string dir = copy_checkpoint(), st = dir + "/model.safetensors";
  std::string bytes = read_file(st);
  const uint64_t n = bytes.size();  // 8 more than the bytes after the length field
  std::memcpy(bytes.data(), &n, 8);
  write_file(st, bytes);
  expect_bad_checkpoint(dir, {st, "header length " + std::to_string(n), "larger than the " +
                                                                            std::to_string(n - 8) + " bytes"});
}

TEST_F(BadInput, OverlappingOffsets) {
  const std::string dir = copy_checkpoint();
  edit_header(dir, [](StFile& f) { f.header[kQ1]["data_offsets"] = f.header[kQ0]["data_offsets"]; });
  expect_bad_checkpoint(dir, {dir + "/model.safetensors", "tensor '" + kQ1 + "'", "overlap tensor '" + kQ0 + "'"});
}

TEST_F(BadInput, OffsetsPastTheEnd) {
  const std::string dir = copy_checkpoint();
  uint64_t size = 0;
  edit_header(dir, [&](StFile& f) {
    size = f.data.size();
    const uint64_t nbytes = 64 * 64 * 4;
    f.header[kQ0]["data_offsets"] = {size - nbytes / 2, size + nbytes / 2};
  });
  expect_bad_checkpoint(dir, {dir + "/model.safetensors", "tensor '" + kQ0 + "'", "extend past the data region of " +
                                                                                    std::to_string(size) + " bytes"});
}

TEST_F(BadInput, UnknownDtype) {
  const std::string dir = copy_checkpoint();
  edit_header(dir, [](StFile& f) { f.header[kQ0]["dtype"] = "F8_E4M3"; });
  expect_bad_checkpoint(dir, {dir + "/model.safetensors", "tensor '" + kQ0 + "'", "unknown dtype 'F8_E4M3'",
                              "expected one of F32"});
}

// A dtype safetensors knows but a weight cannot be: I32 (same size as F32).
TEST_F(BadInput, IntegerDtype) {
  const std::string dir = copy_checkpoint();
  edit_header(dir, [](StFile& f) { f.header[kQ0]["dtype"] = "I32"; });
  expect_bad_checkpoint(dir, {dir + "/model.safetensors", "tensor '" + kQ0 + "'", "dtype I32",
                              "expected F32, BF16 or F16"});
}

// Same number of elements (so the byte range is consistent), another shape.
TEST_F(BadInput, ShapeDisagreesWithConfig) {
  const std::string dir = copy_checkpoint();
  edit_header(dir, [](StFile& f) { f.header[kQ0]["shape"] = {32, 128}; });
  expect_bad_checkpoint(dir, {dir + "/model.safetensors", "tensor '" + kQ0 + "'",
                              "has shape [32, 128], expected [64, 64]"});
}

// config.json says a smaller MLP than the weights hold.
TEST_F(BadInput, ConfigDisagreesWithShapes) {
  const std::string dir = copy_checkpoint();
  json cfg = json::parse(read_file(dir + "/config.json"));
  ASSERT_EQ(cfg["intermediate_size"], 256);
  cfg["intermediate_size"] = 128;
  write_file(dir + "/config.json", cfg.dump(2));
  expect_bad_checkpoint(dir, {dir + "/model.safetensors", "model.layers.0.mlp.", "has shape [", "expected ["});
}

TEST_F(BadInput, MissingTensor) {
  const std::string dir = copy_checkpoint();
  const std::string name = "model.layers.1.mlp.down_proj.weight";
  edit_header(dir, [&](StFile& f) { ASSERT_EQ(f.header.erase(name), 1u); });
  expect_bad_checkpoint(dir, {dir + "/model.safetensors", "missing tensor '" + name + "'"});
}

TEST_F(BadInput, ExtraTensor) {
  const std::string dir = copy_checkpoint();
  const std::string name = "model.layers.0.mlp.extra_proj.weight";
  edit_header(dir, [&](StFile& f) {
    const uint64_t size = f.data.size();
    f.header[name] = {{"dtype", "F32"}, {"shape", {2, 2}}, {"data_offsets", {size, size + 16}}};
    f.data += std::string(16, '\0');
  });
  expect_bad_checkpoint(dir, {dir + "/model.safetensors", "unexpected tensor '" + name + "'"});
}

// A sharded checkpoint whose index maps no tensor, or a tensor to a file that is not there.
TEST_F(BadInput, ShardIndexBroken) {
  const std::string dir = copy_checkpoint(), index = dir + "/model.safetensors.index.json";
  fs::remove(dir + "/model.safetensors");
  write_file(index, R"({"metadata": {}, "weight_map": {}})");
  expect_bad_checkpoint(dir, {index, "missing tensor '"});
  write_file(index, R"({"weight_map": {"model.embed_tokens.weight": "model-00001-of-00002.safetensors"}})");
  expect_bad_checkpoint(dir, {dir + "/model-00001-of-00002.safetensors", "cannot open"});
}

TEST_F(BadInput, ConfigNotJson) {
  const std::string dir = copy_checkpoint();
  write_file(dir + "/config.json", "{\"model_type\": \"llama\", \"hidden_size\": ");
  expect_bad_checkpoint(dir, {dir + "/config.json", "invalid JSON"});
}

TEST_F(BadInput, ConfigMissingField) {
  const std::string dir = copy_checkpoint();
  json cfg = json::parse(read_file(dir + "/config.json"));
  ASSERT_EQ(cfg.erase("hidden_size"), 1u);
  write_file(dir + "/config.json", cfg.dump(2));
  expect_bad_checkpoint(dir, {dir + "/config.json", "missing field 'hidden_size'"});
}

TEST_F(BadInput, ConfigWrongType) {
  const std::string dir = copy_checkpoint();
  json cfg = json::parse(read_file(dir + "/config.json"));
  cfg["num_hidden_layers"] = "2";
  write_file(dir + "/config.json", cfg.dump(2));
  expect_bad_checkpoint(dir, {dir + "/config.json", "'num_hidden_layers' must be a non-negative integer", "\"2\""});
  cfg["num_hidden_layers"] = 2;
  cfg["model_type"] = 7;
  write_file(dir + "/config.json", cfg.dump(2));
  expect_bad_checkpoint(dir, {dir + "/config.json", "'model_type' must be a string"});
}

TEST_F(BadInput, EmptyDatasetDirectory) {
  const std::string dir = tmp_ / "empty_ds";
  fs::create_directories(dir);
  expect_bad_dataset(dir, {dir, "no meta.json"});
  EXPECT_TRUE(fs::is_empty(dir));
}

TEST_F(BadInput, MissingDatasetDirectory) {
  const std::string dir = tmp_ / "no_such_ds";
  expect_bad_dataset(dir, {dir, "no such directory", "moe data"});
  EXPECT_FALSE(fs::exists(dir));
}

TEST_F(BadInput, TruncatedTrainShard) {
  const std::string dir = tmp_ / "ds";
  fs::copy(dataset(), dir, fs::copy_options::recursive);
  const std::string shard = dir + "/train.bin";
  fs::resize_file(shard, fs::file_size(shard) - 100);
  expect_bad_dataset(dir, {shard, "tokens of 2 bytes", "bytes after the header"});
}

}  // namespace
}  // namespace moe::clitest
