// Regression tests for what the fuzz targets (tests/fuzz/, docs/testing.md) and their
// review found in the parsers: each feeds the input that crashed, hung or hit
// undefined behaviour, built from bytes here (no committed files). The undefined
// behaviour ones (null memcpy, int overflow) fail only in a sanitizer build
// (make test SANITIZE=1); elsewhere they check the error or result.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <string>

#include "data/shard.h"
#include "data/tokenizer.h"
#include "data_util.h"
#include "io/safetensors.h"
#include "model/config.h"

namespace moe {
namespace {

using test::DataTempDir;
using test::expect_error;
using test::write_bytes;

// A safetensors file: the 8-byte little-endian header length, the header, the data.
std::string st_bytes(const std::string& header, const std::string& data = "") {
  uint64_t n = header.size();
  std::string b(reinterpret_cast<const char*>(&n), 8);
  return b + header + data;
}

std::string nested(int depth) { return std::string(depth, '[') + std::string(depth, ']'); }

// fuzz_safetensors, first input (the seed corpus): read_f32 / read_i32 of an empty
// tensor passed the null data() of an empty vector to memcpy (UBSan: nonnull).
TEST(FuzzRegression, SafeTensorsEmptyTensorsRead) {
  DataTempDir dir("fuzz_st_empty");
  write_bytes(dir / "m.safetensors",
              st_bytes(R"({"e":{"dtype":"F32","shape":[0,7],"data_offsets":[0,0]},)"
                       R"("i":{"dtype":"I32","shape":[0],"data_offsets":[0,0]}})"));
  SafeTensorsFile f = SafeTensorsFile::open(dir / "m.safetensors");
  EXPECT_TRUE(f.read_f32(f.at("e")).empty());
  EXPECT_TRUE(f.read_i32(f.at("i")).empty());
}

// A shape nested 200000 deep: the error message's dump() recursed once per level and
// overflowed the stack (ASan: stack-overflow). Now one line naming file and tensor.
TEST(FuzzRegression, SafeTensorsDeeplyNestedShape) {
  DataTempDir dir("fuzz_st_deep");
  write_bytes(dir / "m.safetensors",
              st_bytes(R"({"x":{"dtype":"F32","shape":)" + nested(200000) + R"(,"data_offsets":[0,0]}})"));
  expect_error([&] { SafeTensorsFile::open(dir / "m.safetensors"); },
               {dir / "m.safetensors", "tensor 'x'", "non-negative integers"});
}

// config.json with a field nested 200000 deep: hf::shown's dump() overflowed the stack.
TEST(FuzzRegression, ConfigDeeplyNestedField) {
  DataTempDir dir("fuzz_cfg_deep");
  write_bytes(dir / "config.json", R"({"model_type":"llama","vocab_size":)" + nested(200000) + "}");
  expect_error([&] { config_load(dir / "config.json"); }, {dir / "config.json", "'vocab_size'", "[...]"});
  write_bytes(dir / "config.json", R"({"model_type":"gpt2","vocab_size":10,"n_embd":8,"n_layer":2,"n_head":2,)"
                                   R"("n_experts":2,"moe_layers":[)" + nested(200000) + "]}");
  expect_error([&] { config_load(dir / "config.json"); }, {dir / "config.json", "'moe_layers'", "[...]"});
}

// Llama head_dim * num_attention_heads, both up to 2^30, overflowed int (UBSan).
TEST(FuzzRegression, LlamaHeadDimTimesHeadsOverflow) {
  DataTempDir dir("fuzz_cfg_headdim");
  write_bytes(dir / "config.json",
              R"({"model_type":"llama","vocab_size":10,"hidden_size":64,"num_hidden_layers":1,)"
              R"("num_attention_heads":1073741824,"intermediate_size":8,"head_dim":1073741824})");
  expect_error([&] { config_load(dir / "config.json"); }, {dir / "config.json", "'head_dim'"});
}

// GPT-2 without n_inner: the default 4 * n_embd overflowed int for n_embd >= 2^29 (UBSan).
TEST(FuzzRegression, Gpt2DefaultInnerOverflow) {
  DataTempDir dir("fuzz_cfg_inner");
  write_bytes(dir / "config.json",
              R"({"model_type":"gpt2","vocab_size":10,"n_embd":1073741824,"n_layer":1,"n_head":1})");
  expect_error([&] { config_load(dir / "config.json"); }, {dir / "config.json", "'n_inner'", "4 * n_embd"});
}

// moe_layers values above INT_MAX were truncated by int(): 4294967297 became layer 1.
TEST(FuzzRegression, MoeLayerAboveIntRange) {
  DataTempDir dir("fuzz_cfg_layer");
  write_bytes(dir / "config.json", R"({"model_type":"gpt2","vocab_size":10,"n_embd":8,"n_layer":2,"n_head":2,)"
                                   R"("n_experts":2,"moe_layers":[4294967297]})");
  expect_error([&] { config_load(dir / "config.json"); }, {dir / "config.json", "'moe_layers'"});
}

// 2^30 layers and a long moe_layers list: validate() called moe_layer(l) for every
// layer, each scanning the list (hours; a libFuzzer timeout). Now immediate.
TEST(FuzzRegression, ManyLayersValidateQuickly) {
  DataTempDir dir("fuzz_cfg_layers");
  std::string layers;
  for (int i = 0; i < 64; i++) layers += (i ? "," : "") + std::to_string(1073741823 - i);
  write_bytes(dir / "config.json", R"({"model_type":"gpt2","vocab_size":10,"n_embd":64,"n_inner":8,)"
                                   R"("n_layer":1073741824,"n_head":1,"n_experts":2,"moe_layers":[)" + layers + "]}");
  auto t0 = std::chrono::steady_clock::now();
  try {
    ModelConfig c = config_load(dir / "config.json");
    EXPECT_TRUE(c.moe_layer(1073741823));
    EXPECT_FALSE(c.moe_layer(1));
  } catch (const std::runtime_error&) {
    // A reader that bounds the number of layers may refuse it: also fine, if quick.
  }
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 5.0);
}

// fuzz_shard on the empty seed: read(0, 0, out) of a 4-byte-token shard passed a null
// out to memcpy (UBSan: nonnull).
TEST(FuzzRegression, ShardEmptyRead) {
  DataTempDir dir("fuzz_shard_empty");
  std::string h(kShardMagic, 8);
  const uint32_t version = kShardVersion, width = 4;
  const uint64_t count = 0, vocab = 70000;
  h.append(reinterpret_cast<const char*>(&version), 4).append(reinterpret_cast<const char*>(&width), 4);
  h.append(reinterpret_cast<const char*>(&count), 8).append(reinterpret_cast<const char*>(&vocab), 8);
  write_bytes(dir / "train.tok", h);
  TokenShard s = TokenShard::open(dir / "train.tok");
  EXPECT_EQ(s.size(), 0u);
  s.read(0, 0, nullptr);
  s.check_tokens();
}

// fuzz_tokenizer: a 50-byte model whose pieces include an empty one made SentencePiece's
// trie builder throw Darts::Details::Exception out of LoadFromSerializedProto.
TEST(FuzzRegression, TokenizerEmptyPieceIsOurError) {
  const char hex[] = "0a0e0a053c756e00001802150000000018030a0d0a04452f733e150000000018030a0f0a0600327830363e15000018002000";
  std::string bytes;
  for (size_t i = 0; hex[i] && hex[i + 1]; i += 2) bytes.push_back(char(std::stoi(std::string(hex + i, 2), nullptr, 16)));
  ASSERT_EQ(bytes.size(), 50u);
  try {
    moe::Tokenizer::from_bytes(bytes, "fuzzed.model");
    FAIL() << "accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("fuzzed.model: not a valid SentencePiece model"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace moe
