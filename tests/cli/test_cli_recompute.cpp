// `moe train --recompute` gives byte-identical checkpoints (weights and AdamW moments)
// to the run without it, for both families, dense and MoE (top-1 with capacity
// dropping and router noise, top-2 dropless), f32 and bf16; it may change on resume;
// the peak memory line; `moe train --plan`; `moe bench train --recompute`.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>

#include "cli/cli_util.h"

namespace fs = std::filesystem;

namespace moe::clitest {
namespace {

std::string train_args(const std::string& out, const std::string& model) {
  return kOneThread + "train --data " + q(dataset()) + " --out " + q(out) + " --preset tiny " + model +
         " --batch 4 --seq 32 --accum 2 --steps 4 --dropout 0.1 --eval-every 0 --eval-batches 2 --warmup 1"
         " --lr 3e-3 --seed 9";
}

void expect_same_files(const std::string& a, const std::string& b, const std::string& what) {
  for (const char* f : {"model.safetensors", "optimizer.safetensors"}) {
    ASSERT_TRUE(fs::exists(a + "/" + f) && fs::exists(b + "/" + f)) << what << ": " << f;
    EXPECT_TRUE(read_file(a + "/" + f) == read_file(b + "/" + f)) << what << ": " << f << " differs";
  }
}

void check_identical(const std::string& name, const std::string& model) {
  TempDir tmp("recompute_" + name);
  const std::string a = tmp / "a", b = tmp / "b";
  Proc r = run_moe(train_args(a, model));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("recompute off"), std::string::npos) << r.out;
  r = run_moe(train_args(b, model) + " --recompute");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("recompute on"), std::string::npos) << r.out;
  expect_same_files(a + "/checkpoint-4", b + "/checkpoint-4", name);
  const nlohmann::json st = nlohmann::json::parse(read_file(b + "/checkpoint-4/trainer_state.json"));
  EXPECT_EQ(st["config"]["recompute"], true) << name;
  // The last log line: the run's peak resident memory.
  const std::vector<nlohmann::json> log = read_jsonl(b + "/log.jsonl");
  ASSERT_FALSE(log.empty());
  EXPECT_EQ(log.back()["step"], 4);
  EXPECT_GT(log.back().value("peak_rss_bytes", 0.0), 1e6) << log.back().dump();
  EXPECT_EQ(log.back()["recompute"], true);
}

const char* kMoeTop1 = "--experts 4 --top-k 1 --capacity-factor 1.0 --combine raw --router-jitter 0.1 --expert-dropout 0.1";
const char* kMoeTop2 = "--experts 4 --top-k 2 --capacity-factor 0";

TEST(CliRecompute, LlamaDenseF32) { check_identical("llama_f32", "--family llama --compute f32"); }
TEST(CliRecompute, Gpt2DenseBf16) { check_identical("gpt2_bf16", "--family gpt2 --compute bf16"); }
TEST(CliRecompute, LlamaTop1CapacityF32) {
  check_identical("mixtral_top1", std::string("--family llama --compute f32 ") + kMoeTop1);
}
TEST(CliRecompute, LlamaTop2DroplessBf16) {
  check_identical("mixtral_top2", std::string("--family llama --compute bf16 ") + kMoeTop2);
}
TEST(CliRecompute, Gpt2Top1CapacityBf16) {
  check_identical("gpt2_top1", std::string("--family gpt2 --compute bf16 ") + kMoeTop1);
}
TEST(CliRecompute, Gpt2Top2DroplessF32) {
  check_identical("gpt2_top2", std::string("--family gpt2 --compute f32 ") + kMoeTop2);
}

// --recompute may change on resume (the results are the same): on, then off.
TEST(CliRecompute, ChangesOnResume) {
  TempDir tmp("recompute_resume");
  const std::string model = std::string("--family llama --compute f32 ") + kMoeTop1;
  const std::string a = tmp / "a", b = tmp / "b";
  Proc r = run_moe(train_args(a, model));
  ASSERT_EQ(r.code, 0) << r.err;
  r = run_moe(train_args(b, model) + " --recompute --stop-at 2");
  ASSERT_EQ(r.code, 0) << r.err;
  r = run_moe(kOneThread + "train --out " + q(b) + " --resume --no-recompute");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("recompute off"), std::string::npos) << r.out;
  expect_same_files(a + "/checkpoint-4", b + "/checkpoint-4", "resumed without recompute");
  const nlohmann::json st = nlohmann::json::parse(read_file(b + "/checkpoint-4/trainer_state.json"));
  EXPECT_EQ(st["config"]["recompute"], false);
}

// "  activations   1.23 MiB  ..." -> bytes of the row named `row` of a plan.
double plan_bytes(const std::string& out, const std::string& row) {
  for (const std::string& line : lines_of(out)) {
    if (line.rfind("  " + row + " ", 0) != 0) continue;
    double v = 0;
    char unit[8] = {0};
    if (std::sscanf(line.c_str() + 2 + row.size(), " %lf %7s", &v, unit) != 2) break;
    const std::string u = unit;
    const double scale = u == "B" ? 1 : u == "KiB" ? 1024 : u == "MiB" ? 1 << 20 : u == "GiB" ? 1 << 30 : 0;
    return v * scale;
  }
  ADD_FAILURE() << "no row " << row << " in:\n" << out;
  return 0;
}

TEST(CliRecompute, Plan) {
  const std::string base = kOneThread + "train --plan --data " + q(dataset()) +
                           " --preset small --family llama --batch 16 --seq 256 --experts 8 --top-k 2";
  Proc plain = run_moe(base);
  ASSERT_EQ(plain.code, 0) << plain.err;
  for (const char* row : {"parameters", "gradients", "moments", "bf16 copy", "activations", "total", "machine memory"})
    EXPECT_GT(plan_bytes(plain.out, row) + (std::string(row) == "bf16 copy"), 0) << row;
  EXPECT_NE(plain.out.find("1 rank = DP 1 x EP 1, ZeRO-0: 16 sequences per rank"), std::string::npos) << plain.out;
  Proc rc = run_moe(base + " --recompute");
  ASSERT_EQ(rc.code, 0) << rc.err;
  // Recompute keeps 1 of the 6 layers' activations: well under 60% of them here.
  EXPECT_LT(plan_bytes(rc.out, "activations"), 0.6 * plan_bytes(plain.out, "activations")) << rc.out;
  EXPECT_EQ(plan_bytes(rc.out, "moments"), plan_bytes(plain.out, "moments"));
  // 4 ranks, 2-way expert parallel, ZeRO-1: 4 experts per rank, moments sharded,
  // 4 sequences per rank.
  Proc dist = run_moe(base + " --ranks 4 --expert-parallel 2 --zero 1");
  ASSERT_EQ(dist.code, 0) << dist.err;
  EXPECT_NE(dist.out.find("4 ranks = DP 2 x EP 2, ZeRO-1: 4 sequences per rank, 4 experts per MoE layer per rank"),
            std::string::npos) << dist.out;
  EXPECT_LT(plan_bytes(dist.out, "parameters"), plan_bytes(plain.out, "parameters"));
  Proc dist0 = run_moe(base + " --ranks 4 --expert-parallel 2 --zero 0");
  ASSERT_EQ(dist0.code, 0) << dist0.err;
  // exp_avg and exp_avg_sq: twice the weights (the table rounds to 3 digits: 1%).
  EXPECT_NEAR(plan_bytes(dist0.out, "moments"), 2 * plan_bytes(dist0.out, "parameters"),
              0.01 * plan_bytes(dist0.out, "moments"));
  EXPECT_LT(plan_bytes(dist.out, "moments"), 0.6 * plan_bytes(dist0.out, "moments"));  // ZeRO-1 over >= 2 ranks
  EXPECT_LT(plan_bytes(dist.out, "activations"), 0.5 * plan_bytes(plain.out, "activations"));
  // Nothing was trained or written.
  EXPECT_EQ(plain.out.find("step "), std::string::npos) << plain.out;

  // Usage errors: one line, exit 2, naming the flag.
  expect_one_line_error(run_moe(base + " --ranks 4 --expert-parallel 3"), 2, {"--expert-parallel", "must divide"},
                        "EP not dividing P");
  expect_one_line_error(run_moe(base + " --ranks 3"), 2, {"--batch", "multiple of --ranks 3"}, "B not divisible");
  expect_one_line_error(run_moe(kOneThread + "train --plan --data " + q(dataset()) +
                                " --preset tiny --ranks 2 --expert-parallel 2"),
                        2, {"--expert-parallel", "MoE"}, "EP on a dense model");
  expect_one_line_error(run_moe(base + " --zero 2"), 2, {"--zero"}, "ZeRO 2");
  TempDir tmp("plan_no_plan");
  expect_one_line_error(run_moe(train_args(tmp / "x", "") + " --ranks 2"), 2, {"--ranks", "only with --plan"},
                        "--ranks without --plan");
  EXPECT_FALSE(fs::exists(tmp / "x"));
}

// moe bench train --recompute: a row per configuration with and without, each with
// its own peak (reset before it), the recompute row's smaller activations and its
// step-time ratio.
TEST(CliRecompute, BenchTrain) {
  Proc r = run_moe("--threads 1 bench train --json --preset tiny --family llama --compute f32 --batch 2 --seq 32 "
                   "--min-time 0.01 --peak-time 0.01 --recompute");
  ASSERT_EQ(r.code, 0) << r.err;
  std::vector<nlohmann::json> rows;
  for (const std::string& line : lines_of(r.out)) {
    nlohmann::json j = nlohmann::json::parse(line);
    if (j["kind"] == "train") rows.push_back(j);
  }
  ASSERT_EQ(rows.size(), 2u) << r.out;
  EXPECT_EQ(rows[0]["recompute"], false);
  EXPECT_EQ(rows[1]["recompute"], true);
  for (const auto& j : rows) {
    EXPECT_GT(j["peak_rss_bytes"].get<double>(), 1e6) << j.dump();
    EXPECT_GT(j["estimate_bytes"].get<double>(), 0) << j.dump();
    EXPECT_TRUE(j["peak_rss_scope"] == "config" || j["peak_rss_scope"] == "process") << j.dump();
  }
  EXPECT_LT(rows[1]["activation_bytes"].get<double>(), rows[0]["activation_bytes"].get<double>());
  EXPECT_LT(rows[1]["estimate_bytes"].get<double>(), rows[0]["estimate_bytes"].get<double>());
  EXPECT_GT(rows[1]["step_ratio_vs_no_recompute"].get<double>(), 0);
}

}  // namespace
}  // namespace moe::clitest
