// What a new user hits first (issue 14): --help with every default, a mistyped flag,
// global flags after the subcommand, exit codes (usage 2, bad data 1), the defaults
// that fit the model and the run (--seq, --warmup), the console summary, a tokenizer
// that does not match, and inspect --json of a dense model.
#include <gtest/gtest.h>

#include <filesystem>
#include <regex>

#include "cli/cli_util.h"

namespace fs = std::filesystem;

namespace moe::clitest {
namespace {

nlohmann::json state_of(const std::string& ckpt) {
  return nlohmann::json::parse(read_file(ckpt + "/trainer_state.json"));
}

// Every option of `moe <cmd> --help` that takes a value shows its default ("=...").
void expect_defaults_shown(const std::string& cmd, const std::vector<std::string>& no_default) {
  Proc r = run_moe(cmd + " --help");
  ASSERT_EQ(r.code, 0) << r.err;
  const std::regex opt(R"(^  (-\w,)?(--[a-z0-9-]+) (TEXT|INT|UINT|FLOAT|FLOAT\b.*)(.*)$)");
  int checked = 0;
  for (const std::string& line : lines_of(r.out)) {
    std::smatch m;
    if (!std::regex_match(line, m, opt)) continue;
    const std::string flag = m[2];
    if (std::find(no_default.begin(), no_default.end(), flag) != no_default.end()) continue;
    checked++;
    EXPECT_NE(line.find('='), std::string::npos) << "moe " << cmd << " --help: no default for " << flag << ":\n" << line;
  }
  EXPECT_GE(checked, 2) << r.out;
}

TEST(CliUsage, HelpShowsEveryDefault) {
  // Options without a default: required ones and paths that are absent unless given.
  expect_defaults_shown("train", {"--data", "--out", "--config", "--init"});
  expect_defaults_shown("generate", {"--model", "--tokenizer"});
  expect_defaults_shown("data", {"--out", "--input", "--tokenizer"});
  expect_defaults_shown("eval", {"--model", "--data"});
  Proc r = run_moe("train --help");
  EXPECT_NE(r.out.find("--steps INT:INT in [1 - 100000000]=1000"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("--seq INT:INT in [2 - 1048576]=min(256, the model's positions)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("docs/logs.md"), std::string::npos) << "train --help does not point at the log fields";
}

TEST(CliUsage, MistypedFlagGetsTheClosestAndTheSubcommandsHelp) {
  expect_one_line_error(run_moe("train --stpes 5 --out x"), 2, {"--stpes", "did you mean --steps?", "moe train --help"},
                        "a typo of --steps");
  expect_one_line_error(run_moe("generate --model x --temprature 0.5"), 2,
                        {"did you mean --temperature?", "moe generate --help"}, "a typo of --temperature");
  expect_one_line_error(run_moe("data --out x --vocab 512"), 2, {"--vocab", "did you mean --vocab-size?"},
                        "a prefix of --vocab-size");
  expect_one_line_error(run_moe("trian --steps 5"), 2, {"trian", "did you mean train?"}, "a typo of a subcommand");
  expect_one_line_error(run_moe("eval --model x --data y --frobnicate"), 2, {"--frobnicate", "moe eval --help"},
                        "nothing close");
  Proc r = run_moe("eval --model x --data y --frobnicate");
  EXPECT_EQ(r.err.find("did you mean"), std::string::npos) << r.err;
}

TEST(CliUsage, BadValuesExit2BadDataExit1) {
  TempDir t("usage_codes");
  // Values and combinations of flags: usage errors.
  expect_one_line_error(run_moe("train --data " + q(dataset()) + " --out " + q(t / "r") + " --lr 1e-3 --min-lr 1e-2"),
                        2, {"--min-lr"}, "--min-lr above --lr");
  expect_one_line_error(run_moe("train --data " + q(dataset()) + " --out " + q(t / "r") + " --preset tiny --seq 512"),
                        2, {"--seq 512", "128 positions"}, "--seq beyond the model");
  expect_one_line_error(run_moe("train --data " + q(dataset()) + " --out " + q(t / "r") + " --steps 10 --warmup 50"), 2,
                        {"--warmup 50", "--steps 10"}, "warmup longer than the run");
  expect_one_line_error(run_moe("generate --model " + q(run()) + " --top-p 2"), 2, {"--top-p"}, "--top-p out of range");
  // A dataset that is not one: bad data.
  expect_one_line_error(run_moe("train --data " + q(t.str()) + " --out " + q(t / "r")), 1, {t.str(), "moe data"},
                        "an empty folder as --data");
  EXPECT_FALSE(fs::exists(t / "r"));
}

// NaN and infinity pass a range check (NaN compares false): refused for every command's
// floating-point flags before the command runs (issue 21: generate sampled with them and
// upcycle wrote a NaN router), and nothing is written.
TEST(CliUsage, NonFiniteNumbersAreRefusedEverywhere) {
  TempDir t("usage_nonfinite");
  const std::string gen = "generate --model " + q(run()) + " --max-tokens 2";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {gen + " --temperature nan", "--temperature"},
      {gen + " --top-p nan", "--top-p"},
      {gen + " --repetition-penalty inf", "--repetition-penalty"},
      {gen + " --temperature -inf", "--temperature"},
      {"upcycle --from " + q(run()) + " --out " + q(t / "up") + " --experts 4 --router-std nan", "--router-std"},
      {"train --data " + q(dataset()) + " --out " + q(t / "r") + " --preset tiny --lr NaN", "--lr"},
      {"eval --model " + q(run()) + " --data " + q(dataset()) + " --batches 1 --threads 1", ""},
  };
  for (const auto& [cmd, flag] : cases) {
    Proc r = run_moe(cmd);
    if (flag.empty()) {  // control: finite values run
      EXPECT_EQ(r.code, 0) << cmd << "\n" << r.err;
      continue;
    }
    // NaN reaches our check; an infinity may already fail the flag's range check: either
    // way one line naming the flag, exit 2
    expect_one_line_error(r, 2, cmd.find("nan") != std::string::npos || cmd.find("NaN") != std::string::npos
                                    ? std::vector<std::string>{flag, "not a finite number"}
                                    : std::vector<std::string>{flag},
                          cmd);
    EXPECT_TRUE(r.out.empty()) << cmd << ": generated\n" << r.out;
  }
  EXPECT_FALSE(fs::exists(t / "up"));
  EXPECT_FALSE(fs::exists(t / "r"));
}

// The small things a new user hit first (issue 21, item 15): a flag value that is not a
// number says so; help texts read right; greedy decoding draws no seed; a file given as
// --model is named as a file.
TEST(CliUsage, FirstHourRoughEdges) {
  TempDir t("usage_rough");
  expect_one_line_error(run_moe("train --data " + q(dataset()) + " --out " + q(t / "r") + " --lr abc"), 2,
                        {"--lr", "abc is not a number"}, "--lr abc");
  expect_one_line_error(run_moe("train --data " + q(dataset()) + " --out " + q(t / "r") + " --lr 50"), 2,
                        {"--lr", "not in range"}, "--lr out of range");
  // An integer beyond the type is out of range, not "not an integer"; so is a size in a config.json.
  expect_one_line_error(run_moe("data --input " + q(t / "none") + " --out " + q(t / "d") + " --vocab-size 2147483648"),
                        2, {"--vocab-size", "2147483648 is not in range 260 to 1000000"}, "--vocab-size 2^31");
  write_file(t / "config.json", R"({"model_type": "llama", "vocab_size": 2147483648, "hidden_size": 64,
      "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 128})");
  expect_one_line_error(run_moe("train --config " + q(t / "config.json") + " --data " + q(dataset()) + " --out " +
                                q(t / "r")),
                        1,
                        {"config.json", "'vocab_size' is 2147483648, more than 2^30"}, "vocab_size 2^31");
  const std::string train_help = run_moe("train --help").out, up_help = run_moe("upcycle --help").out;
  EXPECT_EQ(train_help.find("=0 1 shards"), std::string::npos) << train_help;
  EXPECT_NE(train_help.find("ZeRO stage: 1 shards"), std::string::npos) << train_help;
  const size_t e = up_help.find("--experts");
  ASSERT_NE(e, std::string::npos);
  EXPECT_EQ(up_help.substr(e, up_help.find('\n', e) - e).find("=0"), std::string::npos) << up_help;
  Proc r = run_moe(kOneThread + "generate --model " + q(run()) + " --temperature 0 --max-tokens 3");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("greedy"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("seed "), std::string::npos) << "greedy decoding printed a seed: " << r.err;
  write_file(t / "model.safetensors", "x");
  expect_one_line_error(run_moe("eval --model " + q(t / "model.safetensors") + " --data " + q(dataset())), 1,
                        {"model.safetensors", "a file, not a model directory"}, "a file as --model");
}

// The user's folder of text given as --data: the message says how to build a dataset
// from it, never to write one into it.
TEST(CliUsage, TextFolderAsDataSuggestsInput) {
  TempDir t("usage_textdir");
  write_file(t / "notes/a.txt", "Some text of mine.\n");
  Proc r = run_moe("train --data " + q(t / "notes") + " --out " + q(t / "r"));
  expect_one_line_error(r, 1, {"moe data --input " + (t / "notes"), "--out DATASET_DIR"}, "a folder of text as --data");
  EXPECT_EQ(r.err.find("--out " + (t / "notes")), std::string::npos) << r.err;
}

TEST(CliUsage, GlobalFlagsAfterTheSubcommand) {
  Proc r = run_moe("inspect " + q(run()) + " --threads 1");
  EXPECT_EQ(r.code, 0) << r.err;
  r = run_moe("eval --model " + q(run()) + " --data " + q(dataset()) + " --batches 1 --threads 1 --json");
  EXPECT_EQ(r.code, 0) << r.err;
  expect_one_line_error(run_moe("inspect " + q(run()) + " --threads -1"), 2, {"--threads"}, "a bad global value");
}

// --preset tiny with its own defaults: the sequence fits its 128 positions, and the
// default warmup (100) shrinks to a tenth of a short run, saying so.
TEST(CliUsage, TinyPresetWithDefaultsTrains) {
  TempDir t("usage_tiny");
  Proc r = run_moe(kOneThread + "train --data " + q(dataset()) + " --out " + q(t / "r") +
                   " --preset tiny --batch 2 --steps 20 --eval-batches 1");
  ASSERT_EQ(r.code, 0) << r.err;
  const nlohmann::json st = state_of(t / "r/checkpoint-20");
  EXPECT_EQ(st["config"]["seq"], 128);
  EXPECT_EQ(st["config"]["warmup"], 2);
  EXPECT_NE(r.err.find("warmup 2 steps"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("steps per epoch"), std::string::npos) << r.err;
  // The summary: the step the validation loss was measured at, and the epochs.
  EXPECT_TRUE(std::regex_search(r.out, std::regex(R"(val loss \d+\.\d+ \(at step 20\), epoch \d+\.\d\d)"))) << r.out;
}

// --resume with a new --steps says that the learning-rate schedule changes.
TEST(CliUsage, ResumeWithNewStepsSaysTheScheduleChanges) {
  TempDir t("usage_resume_steps");
  const std::string a = t / "a";
  const std::string common = kOneThread + "train --out " + q(a);
  Proc r = run_moe(common + " --data " + q(dataset()) + " --preset tiny --batch 2 --seq 32 --steps 6 --warmup 1" +
                   " --eval-every 0 --eval-batches 1");
  ASSERT_EQ(r.code, 0) << r.err;
  r = run_moe(common + " --resume --steps 8");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("schedule was for 6 steps; --steps 8"), std::string::npos) << r.err;
  EXPECT_EQ(state_of(a + "/checkpoint-8")["config"]["steps"], 8);
}

// --save-minutes: a checkpoint whenever that much time passed since the last one. At
// 1e-9 minutes (60 ns, less than any step) that is after every step; the default is on.
TEST(CliUsage, PeriodicSaveByMinutes) {
  TempDir t("usage_save_minutes");
  Proc r = run_moe(kOneThread + "train --data " + q(dataset()) + " --out " + q(t / "a") +
                   " --preset tiny --batch 2 --seq 32 --steps 4 --warmup 1 --eval-every 0 --eval-batches 1"
                   " --save-minutes 1e-9 --keep 100");
  ASSERT_EQ(r.code, 0) << r.err;
  for (int s = 1; s <= 4; s++) EXPECT_TRUE(fs::exists(t / ("a/checkpoint-" + std::to_string(s)))) << s;
  EXPECT_EQ(state_of(t / "a/checkpoint-4")["config"]["save_minutes"].get<double>(), 1e-9);
  Proc help = run_moe("train --help");
  EXPECT_NE(help.out.find("--save-minutes FLOAT:FLOAT in [0 - 1e+09]=15"), std::string::npos) << help.out;
}

TEST(CliUsage, InspectJsonOfADenseModelHasNoMoeFields) {
  Proc r = run_moe("inspect --json " + q(run()));
  ASSERT_EQ(r.code, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["experts"], 0);
  for (const char* k : {"top_k", "moe_layers", "capacity_factor", "eval_capacity_factor", "combine"})
    EXPECT_FALSE(j.contains(k)) << k << " in " << r.out;
}

// A dataset built with another tokenizer: eval, train --init and generate --tokenizer
// refuse it in one line that names the override; with the override they run.
TEST(CliUsage, TokenizerMismatchIsRefused) {
  TempDir t("usage_tok");
  fs::create_directories(t / "text");
  for (const auto& e : fs::directory_iterator("/usr/share/common-licenses"))
    if (e.is_regular_file() && !e.is_symlink()) fs::copy_file(e.path(), t / ("text/" + e.path().filename().string()));
  Proc r = run_moe("data --input " + q(t / "text") + " --out " + q(t / "other") + " --vocab-size 400");
  ASSERT_EQ(r.code, 0) << r.err;
  const std::vector<std::string> needles{run_checkpoint() + "/tokenizer.model", "--allow-tokenizer-mismatch"};
  expect_one_line_error(run_moe("eval --model " + q(run()) + " --data " + q(t / "other")), 1, needles, "eval");
  expect_one_line_error(run_moe(kOneThread + "train --init " + q(run()) + " --data " + q(t / "other") + " --out " +
                                q(t / "r") + " --steps 2 --seq 32"),
                        1, needles, "train --init");
  expect_one_line_error(run_moe("generate --model " + q(run()) + " --tokenizer " + q(t / "other/tokenizer.model")), 1,
                        needles, "generate --tokenizer");
  EXPECT_FALSE(fs::exists(t / "r"));
  r = run_moe("eval --model " + q(run()) + " --data " + q(t / "other") + " --batches 1 --allow-tokenizer-mismatch");
  EXPECT_EQ(r.code, 0) << r.err;
  // The matching tokenizer passes.
  r = run_moe("generate --model " + q(run()) + " --tokenizer " + q(dataset() + "/tokenizer.model") +
              " --max-tokens 3 --seed 1");
  EXPECT_EQ(r.code, 0) << r.err;
}

}  // namespace
}  // namespace moe::clitest
