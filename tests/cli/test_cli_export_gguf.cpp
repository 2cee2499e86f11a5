// moe export --format gguf without llama.cpp: the file read back by a GGUF v3 reader
// written here from the format's description (header, typed metadata, tensor infos,
// 32-byte aligned data), its tensors compared with the checkpoint's, and bad input
// refused with one line and nothing written. tests/llama runs the files in llama.cpp.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <map>

#include "cli/cli_util.h"
#include "export/export_gguf.h"
#include "io/safetensors.h"

namespace fs = std::filesystem;

namespace moe::clitest {
namespace {

using json = nlohmann::json;

struct GgufTensor {
  std::vector<uint64_t> ne;
  uint32_t type;
  uint64_t offset;  // absolute, in the file
};

struct Gguf {
  uint32_t version = 0;
  std::map<std::string, json> kv;  // arrays as JSON arrays
  std::map<std::string, GgufTensor> tensors;
  std::vector<std::string> order;
  std::string bytes;
};

Gguf read_gguf(const std::string& path) {
  Gguf g;
  g.bytes = read_file(path);
  size_t p = 0;
  auto take = [&](size_t n) {
    if (p + n > g.bytes.size()) throw std::runtime_error(path + ": truncated at byte " + std::to_string(p));
    const char* at = g.bytes.data() + p;
    p += n;
    return at;
  };
  auto u32 = [&] { uint32_t v; std::memcpy(&v, take(4), 4); return v; };
  auto u64 = [&] { uint64_t v; std::memcpy(&v, take(8), 8); return v; };
  auto str = [&] { const uint64_t n = u64(); return std::string(take(size_t(n)), size_t(n)); };
  std::function<json(uint32_t)> value = [&](uint32_t t) -> json {
    switch (t) {
      case 0: return uint8_t(*take(1));
      case 4: return u32();
      case 5: return int32_t(u32());
      case 6: { float f; std::memcpy(&f, take(4), 4); return f; }
      case 7: return *take(1) != 0;
      case 8: return str();
      case 9: {
        const uint32_t et = u32();
        const uint64_t n = u64();
        json a = json::array();
        for (uint64_t i = 0; i < n; i++) a.push_back(value(et));
        return a;
      }
      case 10: return u64();
      default: throw std::runtime_error("unexpected metadata type " + std::to_string(t));
    }
  };
  if (std::string(take(4), 4) != "GGUF") throw std::runtime_error("no GGUF magic");
  g.version = u32();
  const uint64_t n_tensors = u64(), n_kv = u64();
  for (uint64_t i = 0; i < n_kv; i++) {
    const std::string k = str();
    g.kv[k] = value(u32());
  }
  for (uint64_t i = 0; i < n_tensors; i++) {
    const std::string name = str();
    GgufTensor t;
    t.ne.resize(u32());
    for (auto& d : t.ne) d = u64();
    t.type = u32();
    t.offset = u64();
    g.tensors[name] = t;
    g.order.push_back(name);
  }
  const uint64_t data = (p + 31) / 32 * 32;
  for (auto& [name, t] : g.tensors) t.offset += data;
  return g;
}

uint64_t nbytes(const GgufTensor& t) {
  uint64_t n = t.type == 0 ? 4 : 2;
  for (uint64_t d : t.ne) n *= d;
  return n;
}

TEST(ExportGguf, LlamaFileReadsBackWithTheCheckpointsValues) {
  TempDir t("export_gguf");
  const std::string ckpt = run_checkpoint();
  const json cfg = json::parse(read_file(ckpt + "/config.json"));
  Proc r = run_moe("export --format gguf --dtype f32 --model " + q(ckpt) + " --out " + q(t / "sub/m.gguf"));
  ASSERT_EQ(r.code, 0) << r.err;
  const Gguf g = read_gguf(t / "sub/m.gguf");
  EXPECT_EQ(g.version, 3u);
  EXPECT_EQ(g.kv.at("general.architecture"), "llama");
  EXPECT_EQ(g.kv.at("general.file_type"), 0);
  EXPECT_EQ(g.kv.at("llama.block_count"), cfg["num_hidden_layers"]);
  EXPECT_EQ(g.kv.at("llama.embedding_length"), cfg["hidden_size"]);
  EXPECT_EQ(g.kv.at("llama.attention.head_count_kv"), cfg["num_key_value_heads"]);
  EXPECT_EQ(g.kv.at("tokenizer.ggml.model"), "llama");
  EXPECT_EQ(g.kv.at("tokenizer.ggml.tokens").size(), size_t(cfg["vocab_size"].get<int>()));
  EXPECT_EQ(g.kv.at("tokenizer.ggml.tokens")[0x41 + 3], "<0x41>");  // byte pieces follow unk, bos, eos
  EXPECT_EQ(g.kv.at("tokenizer.ggml.token_type")[0x41 + 3], 6);      // BYTE
  EXPECT_EQ(g.kv.at("tokenizer.ggml.add_space_prefix"), false);
  EXPECT_EQ(g.kv.at("tokenizer.ggml.add_bos_token"), false);
  // Data: contiguous, each tensor 32-byte aligned, the file ends with the last one.
  uint64_t end = 0;
  for (const std::string& n : g.order) {
    const GgufTensor& x = g.tensors.at(n);
    EXPECT_EQ(x.offset % 32, 0u) << n;
    if (end) {
      EXPECT_EQ(x.offset, (end + 31) / 32 * 32) << n;
    }
    end = x.offset + nbytes(x);
  }
  EXPECT_EQ((end + 31) / 32 * 32, g.bytes.size());
  // Values: the embedding as it is ([V, C] -> ne {C, V}); q rows permuted for llama.cpp's RoPE.
  SafeTensorsFile st = SafeTensorsFile::open(ckpt + "/model.safetensors");
  const STEntry& emb = st.at("model.embed_tokens.weight");
  const GgufTensor& te = g.tensors.at("token_embd.weight");
  EXPECT_EQ(te.ne, (std::vector<uint64_t>{uint64_t(emb.shape[1]), uint64_t(emb.shape[0])}));
  EXPECT_EQ(std::memcmp(g.bytes.data() + te.offset, st.data(emb), emb.nbytes), 0);
  const STEntry& qe = st.at("model.layers.1.self_attn.q_proj.weight");
  const std::vector<float> qv = st.read_f32(qe);
  const GgufTensor& tq = g.tensors.at("blk.1.attn_q.weight");
  const int64_t C = qe.shape[1], H = cfg["num_attention_heads"].get<int>(), D = qe.shape[0] / H;
  for (int64_t h = 0; h < H; h++)
    for (int64_t r = 0; r < D; r++) {  // llama.cpp's row r of head h: HF row (r % 2) * D/2 + r / 2
      const int64_t hf = h * D + (r % 2) * (D / 2) + r / 2;
      EXPECT_EQ(std::memcmp(g.bytes.data() + tq.offset + uint64_t((h * D + r) * C) * 4, &qv[size_t(hf * C)], C * 4), 0)
          << "head " << h << " row " << r;
    }
  // f16: weight matrices F16, norms F32.
  r = run_moe("export --format gguf --model " + q(ckpt) + " --out " + q(t / "h.gguf"));
  ASSERT_EQ(r.code, 0) << r.err;
  const Gguf h = read_gguf(t / "h.gguf");
  EXPECT_EQ(h.kv.at("general.file_type"), 1);
  EXPECT_EQ(h.tensors.at("blk.0.attn_q.weight").type, 1u);
  EXPECT_EQ(h.tensors.at("blk.0.attn_norm.weight").type, 0u);
  EXPECT_EQ(h.tensors.at("output_norm.weight").type, 0u);
}

// Tensors are read and converted a block of rows at a time (whole heads for q and k):
// blocks of one row or one head give the same file as one block per tensor.
TEST(ExportGguf, BlocksDoNotChangeTheFile) {
  TempDir t("export_gguf_blocks");
  for (const std::string& ckpt : {run_checkpoint(), std::string()}) {
    std::string model = ckpt;
    if (model.empty()) {  // an upcycled every-other-layer MoE: experts and replicated dense layers
      Proc r = run_moe("upcycle --from " + q(run_checkpoint()) + " --out " + q(t / "up") + " --experts 4 --no-check");
      ASSERT_EQ(r.code, 0) << r.err;
      model = t / "up";
    }
    for (STDType ty : {STDType::F32, STDType::F16}) {
      export_gguf(model, t / "whole.gguf", ty, true, size_t(1) << 30);
      export_gguf(model, t / "rows.gguf", ty, true, 1);
      EXPECT_EQ(read_file(t / "whole.gguf"), read_file(t / "rows.gguf")) << model << " " << st_dtype_name(ty);
    }
    if (ckpt.empty()) {  // routers stay F32 in an f16 export, the zero one of the dense layer too
      const Gguf g = read_gguf(t / "rows.gguf");
      EXPECT_EQ(g.tensors.at("blk.1.ffn_gate_inp.weight").type, 0u);
      EXPECT_EQ(g.tensors.at("blk.0.ffn_gate_inp.weight").type, 0u);
      EXPECT_EQ(g.tensors.at("blk.1.ffn_up_exps.weight").type, 1u);
      EXPECT_EQ(g.tensors.at("blk.0.ffn_up_exps.weight").ne, (std::vector<uint64_t>{64, 256, 4}));
    }
  }
}

TEST(ExportGguf, BadInputIsOneLineAndNothingIsWritten) {
  TempDir t("export_gguf_bad");
  const std::string ckpt = run_checkpoint();
  auto nothing_written = [&](const std::string& out) {
    EXPECT_FALSE(fs::exists(out)) << out;
    for (const auto& e : fs::directory_iterator(t.str()))
      EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos) << "temp left: " << e.path();
  };
  auto gguf = [&](const std::string& model, const std::string& out) {
    return run_moe("export --format gguf --model " + q(model) + " --out " + q(out));
  };
  const std::string train = kOneThread + "train --data " + q(dataset()) +
                            " --preset tiny --experts 4 --top-k 2 --batch 2 --seq 16 --steps 2 --warmup 1 --out ";
  // A GPT-2 MoE and Switch's raw gates: no llama.cpp equivalent.
  Proc r = run_moe(train + q(t / "gpt2moe") + " --family gpt2");
  ASSERT_EQ(r.code, 0) << r.err;
  r = gguf(t / "gpt2moe", t / "a.gguf");
  expect_one_line_error(r, 1, {"GPT-2 MoE", "llama.cpp", "safetensors"}, "GPT-2 MoE");
  nothing_written(t / "a.gguf");
  r = run_moe(train + q(t / "raw") + " --family llama --combine raw");
  ASSERT_EQ(r.code, 0) << r.err;
  // Not labelled Mixtral (whose HF class renormalises), and the model card says why.
  EXPECT_EQ(nlohmann::json::parse(read_file(t / "raw/checkpoint-2/config.json"))["model_type"], "mixtral_raw_gates");
  EXPECT_NE(read_file(t / "raw/checkpoint-2/README.md").find("transformers refuses it"), std::string::npos);
  r = gguf(t / "raw", t / "b.gguf");
  expect_one_line_error(r, 1, {"raw Switch gates", "renormalises"}, "raw gates");
  nothing_written(t / "b.gguf");
  // No tokenizer.model: the GGUF needs the vocabulary.
  const std::string notok = t / "notok";
  copy_files(ckpt, notok, {"config.json", "model.safetensors"});
  r = gguf(notok, t / "c.gguf");
  expect_one_line_error(r, 1, {"tokenizer.model", "missing"}, "missing tokenizer");
  nothing_written(t / "c.gguf");
  // A truncated checkpoint.
  const std::string trunc = t / "trunc";
  copy_files(ckpt, trunc, {"config.json", "tokenizer.model"});
  const std::string bytes = read_file(ckpt + "/model.safetensors");
  write_file(trunc + "/model.safetensors", bytes.substr(0, bytes.size() - 1000));
  r = gguf(trunc, t / "d.gguf");
  expect_one_line_error(r, 1, {"model.safetensors"}, "truncated checkpoint");
  nothing_written(t / "d.gguf");
  // A shape that disagrees with config.json.
  const std::string shape = t / "shape";
  copy_files(ckpt, shape, {"model.safetensors", "tokenizer.model"});
  json cfg = json::parse(read_file(ckpt + "/config.json"));
  cfg["intermediate_size"] = cfg["intermediate_size"].get<int>() * 2;
  write_file(shape + "/config.json", cfg.dump());
  r = gguf(shape, t / "e.gguf");
  expect_one_line_error(r, 1, {"mlp", "shape"}, "shape against config.json");
  nothing_written(t / "e.gguf");
  // A family llama.cpp export does not know.
  const std::string fam = t / "family";
  copy_files(ckpt, fam, {"model.safetensors", "tokenizer.model"});
  cfg = json::parse(read_file(ckpt + "/config.json"));
  cfg["model_type"] = "bert";
  write_file(fam + "/config.json", cfg.dump());
  r = gguf(fam, t / "g.gguf");
  expect_one_line_error(r, 1, {"bert"}, "unknown family");
  nothing_written(t / "g.gguf");
  // Granular upcycling of every other layer: experts narrower than the dense MLP.
  r = run_moe("upcycle --from " + q(ckpt) + " --out " + q(t / "gran") +
              " --experts 4 --strategy granular --granularity 2 --no-check");
  ASSERT_EQ(r.code, 0) << r.err;
  r = gguf(t / "gran", t / "h.gguf");
  expect_one_line_error(r, 1, {"granular", "one MLP width", "--moe-layers all"}, "granular, some layers");
  nothing_written(t / "h.gguf");
  // Tokenizers llama.cpp would split differently. Fields appended to the model's protobuf
  // override its own (protobuf merges repeated messages): SentencePiece loads the result.
  const std::string tok_bytes = read_file(ckpt + "/tokenizer.model");
  for (const auto& [tail, needle] : {std::pair<std::string, std::string>{"\x12\x02\x18\x01", "unigram"},
                                     {"\x1a\x02\x20\x01", "removes extra whitespace"},
                                     {std::string("\x12\x03\x98\x02\x00", 5), "byte_fallback"},  // SentencePiece refuses byte pieces then
                                     {"\x1a\x06\x0a\x04nfkc", "normalises text"}}) {
    const std::string d = t / "tok";
    fs::remove_all(d);
    copy_files(ckpt, d, {"config.json", "model.safetensors"});
    write_file(d + "/tokenizer.model", tok_bytes + tail);
    r = gguf(d, t / "i.gguf");
    expect_one_line_error(r, 1, {"tokenizer.model", needle}, needle);
    nothing_written(t / "i.gguf");
  }
  // A weight beyond f16's range, in the last tensor written: found mid-write, the partly
  // written file removed; bf16 holds it.
  const std::string big = t / "big";
  copy_files(ckpt, big, {"config.json", "tokenizer.model"});
  {
    SafeTensorsFile f = SafeTensorsFile::open(ckpt + "/model.safetensors");
    const STEntry& up = f.at("model.layers.1.mlp.up_proj.weight");
    std::string b = bytes;
    const float x = 1e6f;
    std::memcpy(&b[f.file_offset(up) + 4 * 5], &x, sizeof x);
    write_file(big + "/model.safetensors", b);
  }
  r = gguf(big, t / "j.gguf");
  expect_one_line_error(r, 1, {"up_proj", "flat index 5", "65504", "--dtype bf16"}, "beyond f16");
  nothing_written(t / "j.gguf");
  r = run_moe("export --format gguf --dtype bf16 --model " + q(big) + " --out " + q(t / "j.gguf"));
  EXPECT_EQ(r.code, 0) << r.err;
  // An existing file is kept unless --force; a directory is not a file.
  write_file(t / "f.gguf", "keep");
  r = gguf(ckpt, t / "f.gguf");
  expect_one_line_error(r, 1, {"f.gguf", "--force"}, "existing --out");
  EXPECT_EQ(read_file(t / "f.gguf"), "keep");
  r = run_moe("export --format gguf --force --model " + q(ckpt) + " --out " + q(t / "f.gguf"));
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(read_file(t / "f.gguf").substr(0, 4), "GGUF");
  r = gguf(ckpt, t.str());
  expect_one_line_error(r, 1, {"is a directory"}, "directory --out");
}

}  // namespace
}  // namespace moe::clitest
