// `moe eval --json` against the trainer's own validation loss, and `moe generate`:
// the prompt comes first, seeds make it deterministic, greedy is greedy, and a
// prompt longer than the model's positions is refused.
#include <gtest/gtest.h>

#include <regex>

#include <cmath>

#include "cli/cli_util.h"

namespace moe::clitest {
namespace {

// The trainer's last validation (at the final step, on the first kRunEvalBatches
// batches of the val split, B x T = kB x kT) and `moe eval` with the same batches
// run the same evaluation on the same weights (the checkpoint is F32, so bit-equal
// to the trainer's). 1e-6 relative: only float summation order could differ, and
// both use the same code and one thread.
TEST(CliEval, JsonMatchesTrainerValLoss) {
  Proc r = run_moe(kOneThread + "eval --model " + q(run()) + " --data " + q(dataset()) + " --batches " +
                   std::to_string(kRunEvalBatches) + " --batch " + std::to_string(kB) + " --seq " +
                   std::to_string(kT) + " --json");
  ASSERT_EQ(r.code, 0) << r.err;
  std::vector<std::string> lines = lines_of(r.out);
  ASSERT_EQ(lines.size(), 1u) << r.out;
  nlohmann::json j = nlohmann::json::parse(lines[0], nullptr, false);
  ASSERT_TRUE(j.is_object()) << lines[0];
  for (const char* k : {"loss", "perplexity", "tokens"}) ASSERT_TRUE(j.contains(k) && j[k].is_number()) << lines[0];
  const double loss = j["loss"].get<double>();
  ASSERT_TRUE(std::isfinite(loss)) << lines[0];
  EXPECT_NEAR(j["perplexity"].get<double>(), std::exp(loss), 1e-9 * std::exp(loss)) << lines[0];
  EXPECT_EQ(j["tokens"].get<uint64_t>(), uint64_t(kRunEvalBatches) * kB * kT) << lines[0];
  EXPECT_EQ(j["model"], run_checkpoint()) << "a run directory means its newest checkpoint";

  std::vector<double> vals;
  for (const nlohmann::json& l : read_jsonl(run() + "/log.jsonl"))
    if (l.contains("val_loss")) vals.push_back(l["val_loss"].get<double>());
  ASSERT_GE(vals.size(), 2u);
  EXPECT_NEAR(loss, vals.back(), 1e-6 * vals.back()) << "eval differs from the trainer's final val loss";
  // The match is specific: an earlier checkpoint's loss (step kRunEvalEvery) is another number.
  EXPECT_GT(std::fabs(vals.front() - vals.back()), 1e-3);

  // More batches: another number of tokens (and the plain output is one line too).
  r = run_moe(kOneThread + "eval --model " + q(run()) + " --data " + q(dataset()) + " --batches " +
              std::to_string(kRunEvalBatches + 2) + " --batch " + std::to_string(kB) + " --seq " +
              std::to_string(kT) + " --json");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["tokens"].get<uint64_t>(), uint64_t(kRunEvalBatches + 2) * kB * kT);
}

std::string gen(const std::string& prompt, const std::string& extra) {
  return kOneThread + "generate --model " + q(run()) + " --prompt " + q(prompt) + " --max-tokens 20 " + extra;
}

TEST(CliGenerate, PromptFirstDeterministicPerSeed) {
  const std::string prompt = "The license";
  Proc a = run_moe(gen(prompt, "--seed 1 --temperature 1"));
  Proc a2 = run_moe(gen(prompt, "--seed 1 --temperature 1"));
  Proc b = run_moe(gen(prompt, "--seed 2 --temperature 1"));
  for (const Proc* p : {&a, &a2, &b}) {
    ASSERT_EQ(p->code, 0) << p->err;
    EXPECT_EQ(p->err.rfind("moe generate: seed ", 0), 0u) << p->err;  // the seed, and nothing else
    EXPECT_EQ(std::count(p->err.begin(), p->err.end(), '\n'), 1) << p->err;
    EXPECT_EQ(p->out.rfind(prompt, 0), 0u) << "output does not start with the prompt: " << p->out;
    EXPECT_GT(p->out.size(), prompt.size() + 5) << "nothing generated: " << p->out;
  }
  EXPECT_EQ(a.out, a2.out) << "same seed, different text";
  EXPECT_NE(a.out, b.out) << "another seed gave the same 20 sampled tokens";
}

TEST(CliGenerate, GreedyIsDeterministic) {
  const std::string prompt = "The license";
  Proc g1 = run_moe(gen(prompt, "--seed 1 --temperature 0"));
  Proc g2 = run_moe(gen(prompt, "--seed 2 --temperature 0"));
  ASSERT_EQ(g1.code, 0) << g1.err;
  ASSERT_EQ(g2.code, 0) << g2.err;
  EXPECT_EQ(g1.out.rfind(prompt, 0), 0u) << g1.out;
  EXPECT_GT(g1.out.size(), prompt.size() + 5) << g1.out;
  EXPECT_EQ(g1.out, g2.out) << "greedy decoding depends on the seed";
  EXPECT_EQ(run_moe(gen(prompt, "--seed 1 --temperature 0")).out, g1.out);
}

// The tiny preset has 128 positions; a prompt of ~300 words is far more tokens.
TEST(CliGenerate, PromptLongerThanPositionsFails) {
  std::string prompt;
  for (int i = 0; i < 300; i++) prompt += "license ";
  Proc r = run_moe(gen(prompt, "--seed 1"));
  expect_one_line_error(r, 2, {"--prompt", "128 positions"}, "a prompt longer than the model's positions");
}

// Without --seed the seed is random and printed; giving it back repeats the sample.
TEST(CliGenerate, RandomSeedIsPrintedAndRepeats) {
  Proc a = run_moe(gen("The license", "--temperature 1"));
  ASSERT_EQ(a.code, 0) << a.err;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(a.err, m, std::regex(R"(seed (\d+) \(random)"))) << a.err;
  Proc b = run_moe(gen("The license", "--temperature 1 --seed " + m[1].str()));
  ASSERT_EQ(b.code, 0) << b.err;
  EXPECT_EQ(a.out, b.out);
}

// --samples N: N samples, sample k with seed + k - 1 (so sample 2 of seed 1 is seed 2's).
TEST(CliGenerate, SeveralSamples) {
  Proc three = run_moe(gen("The license", "--temperature 1 --seed 1 --samples 3"));
  ASSERT_EQ(three.code, 0) << three.err;
  for (int k = 1; k <= 3; k++)
    EXPECT_NE(three.out.find("=== sample " + std::to_string(k) + " of 3 (seed " + std::to_string(k) + ") ==="),
              std::string::npos) << three.out;
  Proc seed2 = run_moe(gen("The license", "--temperature 1 --seed 2"));
  const size_t at = three.out.find("=== sample 2 of 3 (seed 2) ===\n");
  ASSERT_NE(at, std::string::npos);
  EXPECT_EQ(three.out.substr(at + 31, seed2.out.size()), seed2.out) << three.out << "\nvs\n" << seed2.out;
}

// --stop: the text ends before the stop string (greedy output cut at its first space).
TEST(CliGenerate, StopStringEndsTheSample) {
  Proc full = run_moe(gen("The license", "--temperature 0"));
  ASSERT_EQ(full.code, 0) << full.err;
  const std::string tail = full.out.substr(std::string("The license").size());
  const size_t sp = tail.find(' ', 1);
  ASSERT_NE(sp, std::string::npos) << "greedy output has no space to stop at: " << full.out;
  Proc cut = run_moe(gen("The license", "--temperature 0 --stop ' '"));
  ASSERT_EQ(cut.code, 0) << cut.err;
  // A space at the very start of the continuation is the stop string itself.
  const size_t first = tail.find(' ');
  EXPECT_EQ(cut.out, "The license" + tail.substr(0, first) + "\n") << full.out;
}

// --repetition-penalty changes greedy output (the tiny model repeats itself), and 1 is off.
TEST(CliGenerate, RepetitionPenalty) {
  Proc plain = run_moe(gen("The license", "--temperature 0"));
  Proc off = run_moe(gen("The license", "--temperature 0 --repetition-penalty 1"));
  Proc pen = run_moe(gen("The license", "--temperature 0 --repetition-penalty 5"));
  ASSERT_EQ(pen.code, 0) << pen.err;
  EXPECT_EQ(plain.out, off.out);
  EXPECT_NE(plain.out, pen.out);
  expect_one_line_error(run_moe(gen("x", "--repetition-penalty 0.5")), 2, {"--repetition-penalty"}, "penalty < 1");
}

}  // namespace
}  // namespace moe::clitest
