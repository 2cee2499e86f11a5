// moe train --schedule and --continue-schedule through the binary: the learning rates
// log.jsonl records, and the continued schedule of an --init run equal to its source's.
#include <gtest/gtest.h>

#include <map>

#include "cli/cli_util.h"

namespace moe::clitest {
namespace {

using json = nlohmann::json;

std::map<int, double> lrs(const std::string& run) {
  std::map<int, double> m;
  for (const json& j : read_jsonl(run + "/log.jsonl"))
    if (j.contains("lr") && j.contains("step")) m[j["step"].get<int>()] = j["lr"].get<double>();
  return m;
}

const std::string kRun = kOneThread + "train --batch 2 --seq 16 --eval-every 1000 --eval-batches 1 ";
const std::string kTiny = kRun + "--preset tiny ";

TEST(Schedule, ContinuedScheduleEqualsTheSourceRunsAtItsStep) {
  TempDir t("schedule");
  const std::string data = " --data " + q(dataset());
  // The source: warmup 4, constant, a final decay over 10 of its 40 steps; stopped at 24.
  Proc r = run_moe(kTiny + data + " --out " + q(t / "src") +
                   " --steps 40 --warmup 4 --schedule wsd --decay-steps 10 --lr 2e-3 --min-lr 2e-4 --stop-at 24");
  ASSERT_EQ(r.code, 0) << r.err;
  // The continuation from its step-24 checkpoint, to the same horizon.
  r = run_moe(kRun + data + " --out " + q(t / "cont") + " --init " + q(t / "src/checkpoint-24") +
              " --continue-data --continue-schedule --steps 16 --decay-steps 10");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("continuing"), std::string::npos) << r.err;
  // The source to its end.
  r = run_moe(kOneThread + "train --out " + q(t / "src") + " --resume");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto src = lrs(t / "src"), cont = lrs(t / "cont");
  ASSERT_EQ(cont.size(), 16u);
  for (const auto& [step, lr] : cont) {
    ASSERT_TRUE(src.count(24 + step)) << step;
    EXPECT_EQ(lr, src.at(24 + step)) << "continued step " << step << " vs source step " << 24 + step;
  }
  EXPECT_DOUBLE_EQ(src.at(4), 2e-3f);      // warmed up
  EXPECT_DOUBLE_EQ(cont.at(1), 2e-3f);     // stable: no second warmup
  EXPECT_NEAR(cont.at(16), 3.8e-4, 1e-9);  // decayed: 9/10 of the way to --min-lr at the last step
  const json st = json::parse(read_file(t / "cont/checkpoint-16/trainer_state.json"));
  const json& c = st.contains("config") ? st["config"] : st;
  EXPECT_EQ(c["schedule"], "wsd");
  EXPECT_EQ(c["schedule_offset"], 24);
  EXPECT_NE(c["schedule_from"].get<std::string>().find("checkpoint-24"), std::string::npos);
  // A fresh --init run warms up again instead.
  r = run_moe(kRun + data + " --out " + q(t / "fresh") + " --init " + q(t / "src/checkpoint-24") +
              " --steps 16 --warmup 4 --schedule wsd --lr 2e-3");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_DOUBLE_EQ(lrs(t / "fresh").at(1), 5e-4f);
}

TEST(Schedule, BadScheduleFlagsAreUsageErrors) {
  TempDir t("schedule_bad");
  const std::string data = " --data " + q(dataset());
  Proc r = run_moe(kTiny + data + " --out " + q(t / "a") + " --steps 10 --schedule linear");
  expect_one_line_error(r, 2, {"--schedule"}, "unknown schedule");
  r = run_moe(kTiny + data + " --out " + q(t / "b") + " --steps 10 --decay-steps 5");
  expect_one_line_error(r, 2, {"--decay-steps", "wsd"}, "decay steps with cosine");
  r = run_moe(kTiny + data + " --out " + q(t / "c") + " --steps 10 --continue-schedule");
  expect_one_line_error(r, 2, {"--continue-schedule", "--init"}, "continue without init");
}

}  // namespace
}  // namespace moe::clitest
