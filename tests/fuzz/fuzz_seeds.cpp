// Writes the seed corpus of the fuzz targets: valid files made by the project's own
// writers (nothing binary is committed). Usage: fuzz_seeds OUT_DIR
//   OUT_DIR/safetensors/  files from SafeTensorsWriter (every dtype, empty tensors, metadata)
//   OUT_DIR/st_dir/       model.safetensors.index.json texts for fuzz_st_dir's shards
//   OUT_DIR/config/       config.json of every family and preset, dense and MoE
//   OUT_DIR/shard/        token shards from shard_write (2- and 4-byte tokens, empty)
//   OUT_DIR/tokenizer/    a BPE tokenizer.model trained on a few lines of text
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "data/shard.h"
#include "data/tokenizer.h"
#include "io/files.h"
#include "io/safetensors.h"
#include "model/config.h"

namespace fs = std::filesystem;
using namespace moe;

static void safetensors_seeds(const std::string& dir) {
  const float f[12] = {1, -2, 3.5f, 0, 1e-3f, -1e9f, 7, 8, 9, 10, 11, 12};
  const uint16_t h[4] = {0x3c00, 0x8001, 0x7c00, 0x0400};  // f16/bf16 bit patterns
  const int32_t i32[3] = {1, -2, 2147483647};
  const int64_t i64[2] = {-5, 1 << 20};
  const uint8_t u8[5] = {0, 1, 2, 254, 255};
  SafeTensorsWriter all;
  all.add_f32("model.embed_tokens.weight", {3, 4}, f);
  all.add("half", STDType::F16, {2, 2}, h);
  all.add("brain", STDType::BF16, {4}, h);
  all.add("ids", STDType::I32, {3}, i32);
  all.add("ids64", STDType::I64, {2, 1}, i64);
  all.add("bytes", STDType::U8, {5}, u8);
  all.add("flags", STDType::BOOL, {1, 2}, u8);
  all.add("empty", STDType::F32, {0, 7}, nullptr);
  all.add("scalar", STDType::F64, {}, f);
  all.set_metadata("format", "pt");
  all.write(dir + "/all_dtypes.safetensors");
  SafeTensorsWriter one;
  one.add_f32("w", {2}, f);
  one.write(dir + "/one.safetensors");
  SafeTensorsWriter none;
  none.write(dir + "/none.safetensors");
}

static void st_dir_seeds(const std::string& dir) {
  file_write_atomic(dir + "/ok.json",
                    R"({"metadata": {"total_size": 32}, "weight_map": {"x": "a.safetensors", "y": "a.safetensors",)"
                    R"( "z": "b.safetensors"}})");
  file_write_atomic(dir + "/one_file.json", R"({"weight_map": {"z": "b.safetensors"}})");
}

static void config_seeds(const std::string& dir) {
  for (const char* fam : {"gpt2", "llama", "mixtral"})
    for (const char* preset : {"tiny", "small"}) {
      ModelConfig c = model_preset(std::string(fam) == "mixtral" ? "llama" : fam, preset, 512);
      if (std::string(fam) == "mixtral") c.family = "mixtral", c.n_experts = 4, c.top_k = 2, c.moe_all_layers = true;
      file_write_atomic(dir + "/" + fam + "_" + preset + ".json", config_to_hf(c).dump(1));
      if (std::string(fam) != "mixtral") {  // the Switch-style MoE of a dense family
        c.n_experts = 8, c.top_k = 1, c.moe_inner = c.n_inner / 2, c.moe_layers = {1};
        c.moe_renormalize = false, c.capacity_factor = 1.0f;
        file_write_atomic(dir + "/" + fam + "_" + preset + "_moe.json", config_to_hf(c).dump());
      } else {  // raw top-1 gates: model_type mixtral_raw_gates
        c.top_k = 1, c.moe_renormalize = false;
        file_write_atomic(dir + "/" + fam + "_" + preset + "_raw.json", config_to_hf(c).dump(1));
      }
    }
  for (const char* preset : {"tiny", "small"}) {  // T5 v1.1 (gated-gelu, untied) and the original T5 (relu, tied)
    ModelConfig c = model_preset("t5", preset, 512);
    file_write_atomic(dir + "/t5_" + preset + ".json", config_to_hf(c).dump(1));
    c.mlp = MlpKind::Relu, c.tied = true, c.d_kv = 8, c.n_dec_layer = 1;
    file_write_atomic(dir + "/t5_" + preset + "_relu.json", config_to_hf(c).dump(1));
    ModelConfig m = model_preset("t5", preset, 512);  // MoE T5: expert choice encoder, top-2 decoder
    m.n_experts = 4, m.top_k = 2, m.expert_choice = true;
    file_write_atomic(dir + "/t5_" + preset + "_moe.json", config_to_hf(m).dump(1));
    file_write_atomic(dir + "/switch_" + preset + ".json", config_to_hf(model_preset("switch_transformers", preset, 512)).dump(1));
  }
}

static void shard_seeds(const std::string& dir) {
  std::vector<int32_t> t;
  for (int i = 0; i < 64; i++) t.push_back((i * 37) % 100);
  shard_write(dir + "/small_vocab.tok", t.data(), t.size(), 100);
  t.push_back(69999);
  shard_write(dir + "/large_vocab.tok", t.data(), t.size(), 70000);
  shard_write(dir + "/empty.tok", t.data(), 0, 8);
  shard_write(dir + "/empty_wide.tok", t.data(), 0, 70000);
}

static void tokenizer_seeds(const std::string& dir) {
  const char* words[] = {"the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "and",
                         "it", "is", "truth", "universally", "acknowledged", "1984", "caf\xc3\xa9", "!"};
  std::vector<std::string> lines;
  for (int i = 0; i < 400; i++) {
    std::string s;
    for (int k = 0; k < 8; k++) s += std::string(k ? " " : "") + words[(i * 7 + k * 5 + i / 3) % 18];
    lines.push_back(s);
  }
  std::vector<std::string_view> v(lines.begin(), lines.end());
  TokenizerTrainOptions o;
  o.vocab_size = 320;
  o.threads = 1;
  file_write_atomic(dir + "/bpe320.model", tokenizer_train(v, o));
}

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: fuzz_seeds OUT_DIR\n");
    return 2;
  }
  const std::string out = argv[1];
  try {
    for (const char* d : {"safetensors", "st_dir", "config", "shard", "tokenizer"})
      fs::create_directories(out + "/" + d);
    safetensors_seeds(out + "/safetensors");
    st_dir_seeds(out + "/st_dir");
    config_seeds(out + "/config");
    shard_seeds(out + "/shard");
    tokenizer_seeds(out + "/tokenizer");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fuzz_seeds: %s\n", e.what());
    return 1;
  }
  std::printf("fuzz_seeds: wrote the seed corpus to %s\n", out.c_str());
  return 0;
}
