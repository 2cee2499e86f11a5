// Broken checkpoints and datasets, as `moe eval` and `moe train --init` meet them:
// each fails with exit 1, exactly one line on stderr naming the file (and the
// tensor or field) and what was expected, and writes nothing. The broken files are
// made from a valid checkpoint (the shared fixture's run); safetensors headers are
// rewritten by hand with nlohmann::json.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <cstring>
#include <limits>
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

// Weights holding NaN or Inf: refused on load by every command that reads weights,
// naming the tensor and the first bad index.
TEST_F(BadInput, NonFiniteWeights) {
  const std::string dir = copy_checkpoint();
  const std::string file = dir + "/model.safetensors";
  StFile f = st_read(file);
  const uint64_t off = f.header[kQ1]["data_offsets"][0].get<uint64_t>();
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  std::memcpy(f.data.data() + off + 5 * 4, &nan, 4);
  st_write(file, f);
  expect_bad_checkpoint(dir, {file, kQ1, "NaN at flat index 5"});
  Proc r = run_moe(kOneThread + "inspect " + q(dir));
  expect_one_line_error(r, 1, {file, kQ1, "NaN"}, "moe inspect <NaN weights>");
  r = run_moe(kOneThread + "generate --model " + q(dir) + " --prompt a --max-tokens 2");
  expect_one_line_error(r, 1, {file, kQ1, "NaN"}, "moe generate <NaN weights>");
  const std::string up = tmp_ / "up";
  r = run_moe(kOneThread + "upcycle --from " + q(dir) + " --out " + q(up) + " --experts 2 --moe-layers all");
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.err.find("NaN at flat index 5"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(up));
  // An Inf in the MLP (which upcycling copies byte for byte into every expert).
  f = st_read(file);
  std::memset(f.data.data() + off + 5 * 4, 0, 4);
  const std::string up_name = "model.layers.0.mlp.up_proj.weight";
  std::memcpy(f.data.data() + f.header[up_name]["data_offsets"][0].get<uint64_t>() + 7 * 4, &inf, 4);
  st_write(file, f);
  r = run_moe(kOneThread + "upcycle --from " + q(dir) + " --out " + q(up) + " --experts 2 --moe-layers all");
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.err.find(up_name + "': holds Inf at flat index 7"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(up));
}

TEST_F(BadInput, NonFiniteOptimizerMoments) {
  const std::string run_dir = tmp_ / "run";
  fs::create_directories(run_dir);
  fs::copy(run_checkpoint(), run_dir + "/checkpoint-" + std::to_string(kRunSteps), fs::copy_options::recursive);
  const std::string file = run_dir + "/checkpoint-" + std::to_string(kRunSteps) + "/optimizer.safetensors";
  StFile f = st_read(file);
  const std::string name = "exp_avg_sq." + kQ0;
  const float inf = std::numeric_limits<float>::infinity();
  std::memcpy(f.data.data() + f.header[name]["data_offsets"][0].get<uint64_t>(), &inf, 4);
  st_write(file, f);
  Proc r = run_moe(kOneThread + "train --out " + q(run_dir) + " --resume --steps " + std::to_string(kRunSteps + 2));
  expect_one_line_error(r, 1, {file, name, "Inf at flat index 0"}, "moe train --resume <Inf moment>");
}

// config.json values are checked before anything is allocated from them.
TEST_F(BadInput, ConfigTooLargeForMemory) {
  const std::string dir = copy_checkpoint();
  json cfg = json::parse(read_file(dir + "/config.json"));
  cfg["vocab_size"] = 16000000;
  cfg["hidden_size"] = 65536;
  cfg["intermediate_size"] = 1 << 20;
  cfg.erase("head_dim");
  write_file(dir + "/config.json", cfg.dump(2));
  expect_bad_checkpoint(dir, {dir + "/config.json", "needs about", "TiB", "more than this machine's"});
}

TEST_F(BadInput, ConfigValuesOutOfRange) {
  const std::string dir = copy_checkpoint();
  const json orig = json::parse(read_file(dir + "/config.json"));
  auto with = [&](const char* key, json v) {
    json cfg = orig;
    cfg[key] = v;
    write_file(dir + "/config.json", cfg.dump(2));
  };
  with("num_hidden_layers", 100000);
  expect_bad_checkpoint(dir, {dir + "/config.json", "layer count", "100000", "1024"});
  with("rope_theta", -1.0);
  expect_bad_checkpoint(dir, {dir + "/config.json", "rope_theta", "above 1"});
  with("rope_theta", 0);
  expect_bad_checkpoint(dir, {dir + "/config.json", "rope_theta"});
  with("rms_norm_eps", 1e300);
  expect_bad_checkpoint(dir, {dir + "/config.json", "'rms_norm_eps' must be a finite float32"});
  with("vocab_size", 1 << 30);
  expect_bad_checkpoint(dir, {dir + "/config.json", "vocab_size", "more than the supported"});
}

// A FIFO (or any special file) where a file is expected is refused at once.
TEST_F(BadInput, SpecialFilesAreRefusedNotWaitedOn) {
  const std::string dir = copy_checkpoint();
  const std::string st = dir + "/model.safetensors";
  fs::remove(st);
  ASSERT_EQ(::mkfifo(st.c_str(), 0644), 0);
  const std::string guard = "timeout -s KILL 60 ";  // a regression would block forever
  Proc r = run_moe(kOneThread + "inspect " + q(dir), guard);
  expect_one_line_error(r, 1, {st, "not a regular file"}, "model.safetensors is a FIFO");
  fs::remove(st);
  fs::copy_file(run_checkpoint() + "/model.safetensors", st);
  const std::string cfg = dir + "/config.json";
  fs::remove(cfg);
  ASSERT_EQ(::mkfifo(cfg.c_str(), 0644), 0);
  r = run_moe(kOneThread + "inspect " + q(dir), guard);
  expect_one_line_error(r, 1, {cfg, "not a regular file", "FIFO"}, "config.json is a FIFO");
  const std::string ds = tmp_ / "ds";
  fs::copy(dataset(), ds, fs::copy_options::recursive);
  fs::remove(ds + "/tokenizer.model");
  ASSERT_EQ(::mkfifo((ds + "/tokenizer.model").c_str(), 0644), 0);
  r = run_moe(kOneThread + "train --data " + q(ds) + " --out " + q(tmp_ / "o") + " --preset tiny --seq 32 --steps 1",
              guard);
  expect_one_line_error(r, 1, {ds + "/tokenizer.model", "not a regular file"}, "tokenizer.model is a FIFO");
  EXPECT_FALSE(fs::exists(tmp_ / "o"));
}

// Tokenizers are loaded and checked when a dataset or checkpoint is opened, not
// copied blindly into every checkpoint.
TEST_F(BadInput, GarbageTokenizer) {
  const std::string ds = tmp_ / "ds";
  fs::copy(dataset(), ds, fs::copy_options::recursive);
  write_file(ds + "/tokenizer.model", "this is not a sentencepiece model");
  const std::string out = tmp_ / "o";
  Proc r = run_moe(kOneThread + "train --data " + q(ds) + " --out " + q(out) + " --preset tiny --seq 32 --steps 1");
  expect_one_line_error(r, 1, {ds, "tokenizer.model"}, "dataset with a garbage tokenizer");
  EXPECT_FALSE(fs::exists(out));
  // The same garbage beside a checkpoint: every command that opens it refuses it.
  const std::string dir = copy_checkpoint();
  write_file(dir + "/tokenizer.model", "garbage");
  expect_bad_checkpoint(dir, {dir + "/tokenizer.model", "not a valid SentencePiece model"});
  // A valid tokenizer with more pieces than the model's vocabulary.
  const std::string big = tmp_ / "big";
  r = run_moe(kOneThread + "data --out " + q(big) + " --input " + q(std::string(MOE_TEST_SRC) + "/../docs") +
              " --vocab-size 1024");
  ASSERT_EQ(r.code, 0) << r.err;
  fs::copy_file(big + "/tokenizer.model", dir + "/tokenizer.model", fs::copy_options::overwrite_existing);
  expect_bad_checkpoint(dir, {dir + "/tokenizer.model", "1024 pieces", "at most " + std::to_string(kVocab)});
}

// A checkpoint-N missing any file of a complete checkpoint (an interrupted removal
// by an older version, or a user's rm) is never used.
TEST_F(BadInput, IncompleteCheckpointIsNeverUsed) {
  const std::string run_dir = tmp_ / "run";
  fs::create_directories(run_dir);
  const std::string good = run_dir + "/checkpoint-7", bad = run_dir + "/checkpoint-9";
  fs::copy(run_checkpoint(), good, fs::copy_options::recursive);
  fs::copy(run_checkpoint(), bad, fs::copy_options::recursive);
  fs::remove(bad + "/trainer_state.json");
  Proc r = run_moe(kOneThread + "inspect " + q(bad));
  expect_one_line_error(r, 1, {bad, "incomplete checkpoint", "trainer_state.json"}, "inspect <incomplete checkpoint>");
  r = run_moe(kOneThread + "inspect --json " + q(run_dir));  // the run: its newest complete checkpoint
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["model"], good);
  fs::remove(good + "/optimizer.safetensors");
  r = run_moe(kOneThread + "eval --model " + q(run_dir) + " --data " + q(dataset()));
  expect_one_line_error(r, 1, {run_dir, "no complete checkpoint-N", "2 incomplete"}, "eval <run of incomplete checkpoints>");
}

}  // namespace
}  // namespace moe::clitest
