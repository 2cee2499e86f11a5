// `moe train` as a user runs it: exact resume (both families, fp32 and bf16),
// --init (the checkpoint's weights, a fresh optimizer and step count), refusing to
// overwrite a run or change its settings on resume, and log.jsonl.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <map>

#include "cli/cli_util.h"
#include "io/safetensors.h"

namespace fs = std::filesystem;

namespace moe::clitest {
namespace {

nlohmann::json state_of(const std::string& ckpt) {
  return nlohmann::json::parse(read_file(ckpt + "/trainer_state.json"));
}

// step -> loss of the step lines of a run's log.jsonl (a step logged twice fails).
std::map<int, double> losses_of(const std::string& run_dir) {
  std::map<int, double> out;
  for (const nlohmann::json& j : read_jsonl(run_dir + "/log.jsonl"))
    if (j.contains("loss")) {
      const int step = j.at("step").get<int>();
      EXPECT_EQ(out.count(step), 0u) << run_dir << ": step " << step << " logged twice";
      out[step] = j.at("loss").get<double>();
    }
  return out;
}

// Every file name under dir (recursively) with its bytes: "nothing was written" checks.
std::map<std::string, std::string> snapshot(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    out[fs::relative(e.path(), dir).string()] = e.is_regular_file() ? read_file(e.path().string()) : "<dir>";
  return out;
}

// N = 8 steps of 2 micro-batches with dropout, straight into A; the same with
// --stop-at 4 into B, then `--resume`. Weights, AdamW moments, the data cursor and
// every logged loss must be bit-identical: this fails if any of the weights, the
// moments, AdamW's step count, the data cursor, the dropout stream or the schedule
// were not restored exactly.
void check_exact_resume(const std::string& family, const std::string& compute, const std::string& threads) {
  TempDir tmp("resume_" + family + "_" + compute);
  const std::string a = tmp / "a", b = tmp / "b";
  auto args = [&](const std::string& out) {
    return threads + "train --data " + q(dataset()) + " --out " + q(out) + " --preset tiny --family " + family +
           " --compute " + compute +
           " --batch 4 --seq 32 --accum 2 --steps 8 --dropout 0.1 --eval-every 0 --eval-batches 2"
           " --warmup 2 --lr 3e-3 --seed 5";
  };
  Proc r = run_moe(args(a));
  ASSERT_EQ(r.code, 0) << r.err;
  r = run_moe(args(b) + " --stop-at 4");
  ASSERT_EQ(r.code, 0) << r.err;
  ASSERT_TRUE(fs::exists(b + "/checkpoint-4/model.safetensors"));
  EXPECT_FALSE(fs::exists(b + "/checkpoint-8"));
  EXPECT_EQ(state_of(b + "/checkpoint-4")["step"], 4);
  const std::string b4_model = read_file(b + "/checkpoint-4/model.safetensors");

  r = run_moe(threads + "train --out " + q(b) + " --resume");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("resuming"), std::string::npos) << r.err;

  const std::string ca = a + "/checkpoint-8", cb = b + "/checkpoint-8";
  ASSERT_TRUE(fs::exists(cb + "/model.safetensors")) << "resume did not reach step 8";
  EXPECT_TRUE(same_tensors(ca + "/model.safetensors", cb + "/model.safetensors"));
  EXPECT_TRUE(same_tensors(ca + "/optimizer.safetensors", cb + "/optimizer.safetensors"));
  // The second half did train (the comparison above is not between untouched weights).
  EXPECT_NE(read_file(cb + "/model.safetensors"), b4_model);

  nlohmann::json sa = state_of(ca), sb = state_of(cb);
  EXPECT_EQ(sa["step"], 8);
  EXPECT_EQ(sa["step"], sb["step"]);
  EXPECT_EQ(sa["tokens"], sb["tokens"]);
  EXPECT_EQ(sa["tokens"], 8 * 2 * 4 * 32);
  EXPECT_EQ(sa["loader"], sb["loader"]);
  EXPECT_EQ(sa["val_loss"], sb["val_loss"]);
  EXPECT_EQ(sa["config"]["compute"], sb["config"]["compute"]);

  std::map<int, double> la = losses_of(a), lb = losses_of(b);
  ASSERT_EQ(la.size(), 8u);
  EXPECT_EQ(la, lb) << "the logged losses of the resumed run differ from the straight run's";
}

// On all cores (the default): the thread-split reductions must be deterministic too.
TEST(CliTrain, ExactResumeLlama) { check_exact_resume("llama", "f32", ""); }
TEST(CliTrain, ExactResumeGpt2) { check_exact_resume("gpt2", "f32", kOneThread); }
TEST(CliTrain, ExactResumeLlamaBf16) { check_exact_resume("llama", "bf16", kOneThread); }

// --init: the first loss is that of the trained checkpoint (far below ln V, where a
// fresh model starts), and the run counts its own steps with a fresh optimizer.
TEST(CliTrain, InitStartsFromWeightsWithFreshOptimizer) {
  TempDir tmp("init");
  const std::string ckpt = run_checkpoint();
  const std::string common = " --data " + q(dataset()) + " --batch 4 --seq 32 --eval-every 0 --eval-batches 2";
  Proc r = run_moe(kOneThread + "train --init " + q(ckpt) + " --out " + q(tmp / "init") + common + " --steps 3 --warmup 0");
  ASSERT_EQ(r.code, 0) << r.err;
  r = run_moe(kOneThread + "train --preset tiny --out " + q(tmp / "fresh") + common + " --steps 1");
  ASSERT_EQ(r.code, 0) << r.err;

  const double ln_v = std::log(double(kVocab));
  std::map<int, double> li = losses_of(tmp / "init"), lf = losses_of(tmp / "fresh");
  ASSERT_EQ(li.size(), 3u);
  ASSERT_EQ(lf.size(), 1u);
  // A fresh model predicts nearly uniformly: ln V give or take the init's noise.
  EXPECT_NEAR(lf.at(1), ln_v, 0.3);
  // The checkpoint after kRunSteps steps is well below uniform; so is the first step from it.
  const double trained_val = state_of(ckpt)["val_loss"].get<double>();
  EXPECT_LT(trained_val, ln_v - 1.0);
  EXPECT_LT(li.at(1), ln_v - 1.0) << "--init did not start from the checkpoint's weights";
  EXPECT_NEAR(li.at(1), trained_val, 0.75) << "first loss far from the checkpoint's own loss";

  // Its own step count (checkpoint-3, not checkpoint-<kRunSteps + 3>), a fresh AdamW
  // (its step count is 3, not kRunSteps + 3), and where it came from.
  EXPECT_TRUE(fs::exists(tmp / "init/checkpoint-3/model.safetensors"));
  nlohmann::json st = state_of(tmp / "init/checkpoint-3");
  EXPECT_EQ(st["step"], 3);
  EXPECT_EQ(st["tokens"], 3 * 4 * 32);
  EXPECT_EQ(st["init_from"], ckpt);
  SafeTensorsFile opt = SafeTensorsFile::open(tmp / "init/checkpoint-3/optimizer.safetensors");
  EXPECT_EQ(opt.metadata().at("step"), "3");
  SafeTensorsFile src_opt = SafeTensorsFile::open(ckpt + "/optimizer.safetensors");
  EXPECT_EQ(src_opt.metadata().at("step"), std::to_string(kRunSteps));
}

// A run directory that already holds a run is not trained over without --resume.
TEST(CliTrain, ExistingRunWithoutResumeFails) {
  TempDir tmp("existing");
  const std::string copy = tmp / "run";
  fs::copy(run(), copy, fs::copy_options::recursive);
  const auto before = snapshot(copy);
  Proc r = run_moe(kOneThread + "train --data " + q(dataset()) + " --out " + q(copy) +
                   " --preset tiny --batch 4 --seq 32 --steps 2 --eval-every 0");
  expect_one_line_error(r, 2, {copy, "already holds a run", "--resume"}, "train over an existing run");
  EXPECT_EQ(snapshot(copy), before) << "the existing run was modified";
}

// The settings of a run are fixed once it started: --resume with another --lr fails.
TEST(CliTrain, ResumeWithChangedSettingFails) {
  TempDir tmp("resume_lr");
  const std::string copy = tmp / "run";
  fs::copy(run(), copy, fs::copy_options::recursive);
  const auto before = snapshot(copy);
  Proc r = run_moe(kOneThread + "train --out " + q(copy) + " --resume --lr 1e-2 --steps " + std::to_string(kRunSteps + 5));
  expect_one_line_error(r, 2, {"--lr", "cannot change when resuming"}, "resume with --lr");
  r = run_moe(kOneThread + "train --out " + q(copy) + " --resume --batch 8 --steps " + std::to_string(kRunSteps + 5));
  expect_one_line_error(r, 2, {"--batch", "cannot change when resuming"}, "resume with --batch");
  // Resuming a finished run needs a larger --steps.
  r = run_moe(kOneThread + "train --out " + q(copy) + " --resume");
  expect_one_line_error(r, 2, {"checkpoint-" + std::to_string(kRunSteps), "--steps"}, "resume a finished run");
  EXPECT_EQ(snapshot(copy), before) << "the run was modified";
}

// log.jsonl: one line per step (step, loss, lr, grad_norm, tokens_per_s), a val_loss
// line every --eval-every steps and at the end, a checkpoint line at the end, then the
// peak memory line.
TEST(CliTrain, LogJsonl) {
  std::vector<nlohmann::json> log = read_jsonl(run() + "/log.jsonl");
  int next_step = 1;
  std::vector<int> val_steps, ckpt_steps, peak_steps;
  double max_lr = 0, last_lr = 0;
  for (const nlohmann::json& j : log) {
    ASSERT_TRUE(j.contains("step")) << j.dump();
    const int step = j["step"].get<int>();
    if (j.contains("loss")) {
      EXPECT_EQ(step, next_step) << "steps out of order or missing: " << j.dump();
      next_step = step + 1;
      for (const char* k : {"loss", "lr", "grad_norm", "tokens_per_s", "elapsed"}) {
        ASSERT_TRUE(j.contains(k) && j[k].is_number()) << k << " missing: " << j.dump();
        EXPECT_TRUE(std::isfinite(j[k].get<double>())) << j.dump();
        EXPECT_GT(j[k].get<double>(), 0) << k << ": " << j.dump();
      }
      EXPECT_EQ(j["tokens"], uint64_t(step) * kB * kT) << j.dump();
      max_lr = std::max(max_lr, j["lr"].get<double>());
      last_lr = j["lr"].get<double>();
    } else if (j.contains("val_loss")) {
      val_steps.push_back(step);
      EXPECT_TRUE(std::isfinite(j["val_loss"].get<double>())) << j.dump();
      EXPECT_EQ(j["val_tokens"], uint64_t(kRunEvalBatches) * kB * kT) << j.dump();
    } else if (j.contains("checkpoint")) {
      ckpt_steps.push_back(step);
    } else if (j.contains("peak_rss_bytes")) {
      peak_steps.push_back(step);
      EXPECT_GT(j["peak_rss_bytes"].get<double>(), 1e6) << j.dump();  // at least the binary and the model
      EXPECT_EQ(&j, &log.back()) << "the peak memory line is not the last";
    } else {
      ADD_FAILURE() << "unexpected log line: " << j.dump();
    }
  }
  EXPECT_EQ(next_step, kRunSteps + 1) << "not one line per step";
  EXPECT_EQ(val_steps, (std::vector<int>{kRunEvalEvery, 2 * kRunEvalEvery, kRunSteps}));
  EXPECT_EQ(ckpt_steps, (std::vector<int>{kRunSteps}));
  EXPECT_EQ(peak_steps, (std::vector<int>{kRunSteps}));
  // Warmup then cosine decay: the peak is --lr (3e-3), the last step well below it.
  EXPECT_NEAR(max_lr, 3e-3, 1e-9);
  EXPECT_LT(last_lr, 0.5 * max_lr);
}

}  // namespace
}  // namespace moe::clitest
