// moe export --format safetensors: the same Hugging Face directory with its weights in
// bf16 or f16 (every value the f32 one rounded, nothing else changed), usable by every
// command; bad input refused with one line and nothing written.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <tuple>
#include <filesystem>

#include "cli/cli_util.h"
#include "io/safetensors.h"

namespace fs = std::filesystem;

namespace moe::clitest {
namespace {

using json = nlohmann::json;

// Every tensor of `out` is `in`'s, rounded to `dtype` (compared by encoding the f32 values).
void expect_rounded(const std::string& in, const std::string& out, STDType dtype) {
  SafeTensorsFile a = SafeTensorsFile::open(in), b = SafeTensorsFile::open(out);
  EXPECT_EQ(a.tensors().size(), b.tensors().size());
  for (const STEntry& e : a.tensors()) {
    const STEntry* f = b.find(e.name);
    ASSERT_NE(f, nullptr) << e.name;
    EXPECT_EQ(f->dtype, dtype) << e.name;
    EXPECT_EQ(f->shape, e.shape) << e.name;
    const std::vector<float> v = a.read_f32(e);
    std::vector<char> want(v.size() * st_dtype_size(dtype));
    st_encode_f32(want.data(), v.data(), v.size(), dtype);
    ASSERT_EQ(f->nbytes, want.size()) << e.name;
    EXPECT_EQ(std::memcmp(b.data(*f), want.data(), want.size()), 0) << e.name << ": not the f32 values rounded";
  }
}

// A copy of checkpoint `ckpt` in `dir` (weights, config, tokenizer) whose last tensor's first
// value is x (the data region ends the file); returns that tensor's name.
std::string copy_with_last_value(const std::string& ckpt, const std::string& dir, float x) {
  copy_files(ckpt, dir, {"config.json", "tokenizer.model"});
  std::string b = read_file(ckpt + "/model.safetensors");
  SafeTensorsFile f = SafeTensorsFile::open(ckpt + "/model.safetensors");
  uint64_t data = 0;
  for (const STEntry& e : f.tensors()) data += e.nbytes;
  std::memcpy(&b[b.size() - data + f.tensors().back().offset], &x, sizeof x);
  write_file(dir + "/model.safetensors", b);
  return f.tensors().back().name;
}

double eval_loss(const std::string& model) {
  Proc r = run_moe(kOneThread + "eval --model " + q(model) + " --data " + q(dataset()) + " --batches 4 --json");
  EXPECT_EQ(r.code, 0) << r.err;
  return json::parse(r.out)["loss"].get<double>();
}

TEST(Export, Bf16AndF16AreTheWeightsRoundedAndStillAModel) {
  TempDir t("export");
  const std::string ckpt = run_checkpoint();
  const double f32_loss = eval_loss(ckpt);
  for (const auto& [name, dtype, torch] : {std::tuple{"bf16", STDType::BF16, "bfloat16"},
                                           std::tuple{"f16", STDType::F16, "float16"}}) {
    const std::string out = t / name;
    Proc r = run_moe("export --model " + q(run()) + " --out " + q(out) + " --dtype " + name);
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find(ckpt), std::string::npos) << r.out;  // a run directory: its newest checkpoint
    expect_rounded(ckpt + "/model.safetensors", out + "/model.safetensors", dtype);
    EXPECT_EQ(json::parse(read_file(out + "/config.json"))["torch_dtype"], torch);
    EXPECT_EQ(read_file(out + "/tokenizer.model"), read_file(ckpt + "/tokenizer.model"));
    EXPECT_FALSE(fs::exists(out + "/optimizer.safetensors")) << "the training state is not part of an export";
    EXPECT_LT(fs::file_size(out + "/model.safetensors"), fs::file_size(ckpt + "/model.safetensors") * 0.51);
    // Rounding the weights moves the loss by rounding's amount only.
    EXPECT_NEAR(eval_loss(out), f32_loss, 0.01) << name;
    Proc g = run_moe(kOneThread + "generate --model " + q(out) + " --prompt 'The' --max-tokens 4");
    EXPECT_EQ(g.code, 0) << g.err;
  }
  // f32 of an f32 checkpoint: the same values.
  Proc r = run_moe("export --model " + q(ckpt) + " --out " + q(t / "f32") + " --dtype f32");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(same_tensors(ckpt + "/model.safetensors", t / "f32/model.safetensors"));
}

// An MoE checkpoint (experts one by one, GPT-2's transposed Conv1D layout kept).
TEST(Export, MoeCheckpoint) {
  TempDir t("export_moe");
  Proc r = run_moe(kOneThread + "train --data " + q(dataset()) + " --out " + q(t / "run") +
                   " --preset tiny --family gpt2 --experts 4 --top-k 2 --batch 4 --seq 32 --steps 2 --warmup 1");
  ASSERT_EQ(r.code, 0) << r.err;
  r = run_moe("export --model " + q(t / "run") + " --out " + q(t / "bf16"));
  ASSERT_EQ(r.code, 0) << r.err;
  expect_rounded(t / "run/checkpoint-2/model.safetensors", t / "bf16/model.safetensors", STDType::BF16);
  EXPECT_NEAR(eval_loss(t / "bf16"), eval_loss(t / "run"), 0.01);
}

TEST(Export, BadInputIsOneLineAndNothingIsWritten) {
  TempDir t("export_bad");
  const std::string ckpt = run_checkpoint();
  auto nothing_written = [&](const std::string& out) {
    EXPECT_FALSE(fs::exists(out)) << out;
    for (const auto& e : fs::directory_iterator(t.str()))
      EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos) << "temp left: " << e.path();
  };
  // No such model.
  Proc r = run_moe("export --model " + q(t / "nope") + " --out " + q(t / "o1"));
  expect_one_line_error(r, 1, {t / "nope"}, "missing model");
  nothing_written(t / "o1");
  // A truncated model.safetensors.
  const std::string bad = t / "truncated";
  copy_files(ckpt, bad, {"config.json", "tokenizer.model"});
  const std::string bytes = read_file(ckpt + "/model.safetensors");
  write_file(bad + "/model.safetensors", bytes.substr(0, bytes.size() / 2));
  r = run_moe("export --model " + q(bad) + " --out " + q(t / "o2"));
  expect_one_line_error(r, 1, {"model.safetensors"}, "truncated weights");
  nothing_written(t / "o2");
  // A NaN weight.
  const std::string nan = t / "nan";
  copy_with_last_value(ckpt, nan, NAN);
  r = run_moe("export --model " + q(nan) + " --out " + q(t / "o3"));
  expect_one_line_error(r, 1, {"NaN"}, "NaN weight");
  nothing_written(t / "o3");
  // An existing --out is kept unless --force.
  fs::create_directories(t / "o4");
  write_file(t / "o4/keep", "x");
  r = run_moe("export --model " + q(ckpt) + " --out " + q(t / "o4"));
  expect_one_line_error(r, 1, {t / "o4", "--force"}, "existing --out");
  EXPECT_TRUE(fs::exists(t / "o4/keep"));
  r = run_moe("export --model " + q(ckpt) + " --out " + q(t / "o4") + " --force");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_FALSE(fs::exists(t / "o4/keep"));
  // Bad flags: usage errors.
  r = run_moe("export --model " + q(ckpt) + " --out " + q(t / "o5") + " --dtype q4");
  EXPECT_EQ(r.code, 2) << r.err;
  r = run_moe("export --model " + q(ckpt) + " --out " + q(t / "o5") + " --format onnx");
  EXPECT_EQ(r.code, 2) << r.err;
  nothing_written(t / "o5");
}

// A weight beyond the output dtype's range is refused, naming the tensor, instead of being
// written as Inf that every command then refuses (issue 21): export and upcycle to f16 of
// 1e5, and to bf16 of 3.4e38 (above bf16's largest, 3.39e38); f32 and a wider dtype pass.
TEST(Export, OverflowIsRefusedNotWrittenAsInf) {
  TempDir t("export_overflow");
  const std::string ckpt = run_checkpoint();
  const std::string last = copy_with_last_value(ckpt, t / "big", 1e5f);
  copy_with_last_value(ckpt, t / "huge", 3.4e38f);
  for (const auto& [model, dtype, ok] : {std::tuple{"big", "f16", false}, std::tuple{"big", "bf16", true},
                                         std::tuple{"huge", "bf16", false}, std::tuple{"huge", "f32", true}}) {
    const std::string out = t / (std::string(model) + "_" + dtype);
    Proc r = run_moe("export --model " + q(t / model) + " --out " + q(out) + " --dtype " + dtype);
    if (ok) {
      EXPECT_EQ(r.code, 0) << r.err;
      continue;
    }
    expect_one_line_error(r, 1, {"tensor '" + last + "'", "flat index 0", "range", "Inf"}, out);
    EXPECT_FALSE(fs::exists(out)) << out;
  }
  Proc r = run_moe("upcycle --from " + q(t / "big") + " --out " + q(t / "up") + " --experts 4 --dtype f16 --no-check");
  // (upcycle prints its plan on stdout before writing)
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_EQ(lines_of(r.err).size(), 1u) << r.err;
  for (const char* needle : {"tensor '", "range", "Inf"}) EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(t / "up"));
  for (const auto& e : fs::directory_iterator(t.str()))
    EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos) << "temp left: " << e.path();
}

// --out that is the run being exported, its checkpoint, a file inside it or a directory
// around it is refused even with --force (issue 21: `--out RUN --force` replaced the whole
// run with the export), for both formats; the run is untouched.
TEST(Export, NeverReplacesItsOwnSource) {
  TempDir t("export_overlap");
  fs::copy(run(), t / "run", fs::copy_options::recursive);
  const std::string ckpt = t / ("run/" + fs::path(run_checkpoint()).filename().string());
  const std::string weights = read_file(ckpt + "/model.safetensors");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {t / "run", ""}, {ckpt, ""}, {t.str(), ""}, {t / "run/", ""},
      {ckpt + "/model.safetensors", " --format gguf"}, {t / "run", " --format gguf"}};
  for (const auto& [out, format] : cases) {
    Proc r = run_moe("export --model " + q(t / "run") + " --out " + q(out) + format + " --force");
    expect_one_line_error(r, 1, {"--out", "overlaps the checkpoint"}, "export --out " + out + format);
    ASSERT_TRUE(fs::exists(ckpt + "/model.safetensors")) << out;
    EXPECT_EQ(read_file(ckpt + "/model.safetensors"), weights) << out;
  }
}

}  // namespace
}  // namespace moe::clitest
