// Crash safety as a user meets it: `moe train` killed (SIGKILL, through the
// MOE_FAILPOINT crash points of src/io/failpoint.h) inside checkpoint writes and
// inside the pruning of old checkpoints, then resumed; failed commands that leave
// nothing behind; the log after a resume; non-finite steps skipped or refused.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <set>
#include <vector>

#include "cli/cli_util.h"

namespace fs = std::filesystem;

namespace moe::clitest {
namespace {

using json = nlohmann::json;

constexpr int kSteps = 12, kSaveEvery = 2;

// The run's command line; resuming takes only --out (the settings are the run's).
std::string train_args(const std::string& out, bool resume = false) {
  if (resume) return kOneThread + "train --out " + q(out) + " --resume";
  return kOneThread + "train --data " + q(dataset()) + " --out " + q(out) + " --preset tiny --batch 4 --seq 32 --steps " +
         std::to_string(kSteps) + " --save-every " + std::to_string(kSaveEvery) +
         " --keep 2 --eval-every 4 --eval-batches 2 --warmup 2";
}

// Step -> loss of every training step in a log (each step must appear once).
std::map<int, double> step_losses(const std::string& log) {
  std::map<int, double> out;
  for (const json& j : read_jsonl(log)) {
    if (!j.contains("loss")) continue;
    const int step = j["step"].get<int>();
    EXPECT_EQ(out.count(step), 0u) << log << ": step " << step << " appears twice";
    out[step] = j["loss"].get<double>();
  }
  return out;
}

// After a kill: every checkpoint-N directory is complete (every file, and moe
// inspect accepts it), and nothing else looks like a checkpoint.
void expect_only_complete_checkpoints(const std::string& run_dir, const std::string& when) {
  SCOPED_TRACE(when);
  if (!fs::exists(run_dir)) return;
  for (const auto& e : fs::directory_iterator(run_dir)) {
    const std::string n = e.path().filename().string();
    if (n.rfind("checkpoint-", 0) != 0) continue;
    for (const char* f : {"config.json", "model.safetensors", "tokenizer.model", "optimizer.safetensors",
                          "trainer_state.json"})
      EXPECT_TRUE(fs::exists(e.path() / f)) << e.path() << " lacks " << f;
    Proc r = run_moe(kOneThread + "inspect " + q(e.path().string()));
    EXPECT_EQ(r.code, 0) << e.path() << ": " << r.err;
  }
}

class Crash : public ::testing::Test {
 protected:
  Crash() : tmp_(::testing::UnitTest::GetInstance()->current_test_info()->name()) {}

  // The uninterrupted run, made once per test process.
  static const std::string& reference() {
    static const std::string dir = [] {
      const std::string d = std::string(MOE_TEST_BIN) + "/crash_reference";
      fs::remove_all(d);
      Proc r = run_moe(train_args(d));
      EXPECT_EQ(r.code, 0) << r.err;
      return d;
    }();
    return dir;
  }

  // Runs (or resumes) with a crash point; expects the kill.
  void killed_at(const std::string& out, bool resume, const std::string& point) {
    Proc r = run_moe(train_args(out, resume), "MOE_FAILPOINT=" + point + " ");
    EXPECT_EQ(r.code, 128 + 9) << "not killed (SIGKILL, as the shell reports it) at " << point << ": " << r.err;
    expect_only_complete_checkpoints(out, "after a kill at " + point);
  }

  // all_done: also the run directory's contents (the last two checkpoints and the log).
  void expect_same_as_reference(const std::string& out, bool all_done = true) {
    const std::string last = "/checkpoint-" + std::to_string(kSteps);
    for (const char* f : {"/model.safetensors", "/optimizer.safetensors"})
      EXPECT_EQ(read_file(out + last + f), read_file(reference() + last + f)) << f << " differs from the uninterrupted run";
    const auto want = step_losses(reference() + "/log.jsonl"), got = step_losses(out + "/log.jsonl");
    EXPECT_EQ(got, want) << "the log's steps differ from the uninterrupted run's";
    EXPECT_EQ(got.size(), size_t(kSteps));
    if (!all_done) return;
    std::set<std::string> left;
    for (const auto& e : fs::directory_iterator(out)) left.insert(e.path().filename().string());
    const std::set<std::string> expect{"checkpoint-" + std::to_string(kSteps - kSaveEvery),
                                       "checkpoint-" + std::to_string(kSteps), "log.jsonl", "recipe.json"};
    EXPECT_EQ(left, expect) << "temp or trash directories left behind";
  }

  TempDir tmp_;
};

// One run killed five times, once at each crash point, resumed (or restarted when
// no checkpoint survived) after each kill; it ends exactly as an uninterrupted run.
TEST_F(Crash, KilledInWritesAndPruningThenResumed) {
  const std::string out = tmp_ / "run";
  reference();
  killed_at(out, false, "checkpoint.model_written:1");  // the first save (step 2): nothing complete yet
  EXPECT_FALSE(fs::exists(out + "/checkpoint-2"));
  Proc r = run_moe(train_args(out, true));
  EXPECT_EQ(r.code, 1) << "resumed from nothing: " << r.err;
  killed_at(out, false, "checkpoint.before_commit:2");  // a new run in its place: killed at step 4's save
  EXPECT_TRUE(fs::exists(out + "/checkpoint-2"));
  killed_at(out, true, "checkpoint.committed:2");       // steps 4 and 6 saved, killed before pruning
  EXPECT_TRUE(fs::exists(out + "/checkpoint-2") && fs::exists(out + "/checkpoint-6"));
  killed_at(out, true, "checkpoint.prune_file:2");      // step 8: killed while deleting checkpoint-2
  killed_at(out, true, "checkpoint.prune_renamed:1");   // step 10: killed between rename and deletion
  r = run_moe(train_args(out, true));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("left by a killed run"), std::string::npos) << r.err;
  expect_same_as_reference(out);
}

// Every crash point at several of its hits (saves at steps 2, 4, .., 12; pruning from
// step 6 on, five files per checkpoint), each followed by one resume to the end. A
// kill inside the last save leaves a finished run (nothing to resume): its final
// checkpoint must then already be the uninterrupted run's.
TEST_F(Crash, EveryCrashPointResumesToTheSameBytes) {
  reference();
  const std::vector<std::pair<const char*, std::vector<int>>> points{
      {"checkpoint.model_written", {1, 3, 6}}, {"checkpoint.before_commit", {2, 5}}, {"checkpoint.committed", {3, 6}},
      {"checkpoint.prune_renamed", {1, 4}},    {"checkpoint.prune_file", {3, 12, 20}}};
  int n = 0;
  for (const auto& [point, hits] : points) {
    for (int hit : hits) {
      const std::string spec = std::string(point) + ":" + std::to_string(hit);
      SCOPED_TRACE(spec);
      const std::string out = tmp_ / ("run" + std::to_string(n++));
      killed_at(out, false, spec);
      if (fs::exists(out + "/checkpoint-" + std::to_string(kSteps))) {
        expect_same_as_reference(out, false);
        continue;
      }
      bool any = false;  // killed before the first save completed: start the run again
      for (const auto& e : fs::directory_iterator(out)) any |= e.path().filename().string().rfind("checkpoint-", 0) == 0;
      Proc r = run_moe(train_args(out, any));
      ASSERT_EQ(r.code, 0) << r.err;
      expect_same_as_reference(out);
    }
  }
}

// The log after a resume holds each step once: steps redone after the checkpoint
// replace the ones a killed run had logged past it.
TEST_F(Crash, LogHoldsEachStepOnceAfterResume) {
  const std::string out = tmp_ / "run";
  reference();
  killed_at(out, false, "checkpoint.model_written:3");  // killed saving step 6: the log has steps 1..6
  EXPECT_EQ(step_losses(out + "/log.jsonl").rbegin()->first, 6);
  // A torn last line, as a kill in the middle of a write leaves.
  std::string log = read_file(out + "/log.jsonl");
  write_file(out + "/log.jsonl", log + "{\"step\": 6, \"lo");
  Proc r = run_moe(train_args(out, true));
  ASSERT_EQ(r.code, 0) << r.err;
  expect_same_as_reference(out);
}

// A command that fails leaves nothing it made behind.
TEST_F(Crash, FailedCommandsLeaveNothing) {
  // moe data: an input without text; a --out directory that holds other files.
  const std::string empty = tmp_ / "empty.txt", out = tmp_ / "ds";
  write_file(empty, "\n\n");
  Proc r = run_moe(kOneThread + "data --out " + q(out) + " --input " + q(empty));
  EXPECT_EQ(r.code, 1) << r.err;
  std::set<std::string> left;
  for (const auto& e : fs::directory_iterator(tmp_.str())) left.insert(e.path().filename().string());
  EXPECT_EQ(left, std::set<std::string>{"empty.txt"});
  const std::string mine = tmp_ / "mytexts";
  fs::create_directories(mine);
  write_file(mine + "/notes.txt", "my own notes\n");
  r = run_moe(kOneThread + "data --out " + q(mine) + " --input " + q(std::string(MOE_TEST_SRC) + "/../docs") +
              " --vocab-size 600");
  expect_one_line_error(r, 1, {mine, "notes.txt", "not part of a dataset"}, "moe data --out <a folder of the user's>");
  EXPECT_EQ(read_file(mine + "/notes.txt"), "my own notes\n");
  // A killed moe data leaves its temp directory; the next one removes it.
  r = run_moe(kOneThread + "data --out " + q(out) + " --input " + q(std::string(MOE_TEST_SRC) + "/../docs") +
              " --vocab-size 600");
  ASSERT_EQ(r.code, 0) << r.err;
  for (const char* f : {"meta.json", "tokenizer.model", "train.bin", "val.bin"}) EXPECT_TRUE(fs::exists(out + "/" + f));
  fs::create_directories(out + ".tmp-999999999");  // a dead writer's
  r = run_moe(kOneThread + "data --out " + q(out) + " --force --input " + q(std::string(MOE_TEST_SRC) + "/../docs") +
              " --vocab-size 600");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_FALSE(fs::exists(out + ".tmp-999999999"));

  // moe upcycle: a killed upcycle's temp directory goes with the next upcycle to that --out.
  const std::string up = tmp_ / "up";
  fs::create_directories(up + ".tmp-999999999");
  r = run_moe(kOneThread + "upcycle --from " + q(run_checkpoint()) + " --out " + q(up) + " --experts 2 --no-check");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_FALSE(fs::exists(up + ".tmp-999999999"));

  // moe train: a run that fails at its first step (the logits overflow) leaves no run directory.
  const std::string ckpt = tmp_ / "huge";
  fs::copy(run_checkpoint(), ckpt, fs::copy_options::recursive);
  {
    const std::string file = ckpt + "/model.safetensors";
    const std::string bytes = read_file(file);
    uint64_t n;
    std::memcpy(&n, bytes.data(), 8);
    json h = json::parse(bytes.substr(8, n));
    std::string data = bytes.substr(8 + n);
    const auto& e = h["model.norm.weight"];  // normalised activations times 3e38: Inf, then NaN logits
    const uint64_t b = e["data_offsets"][0].get<uint64_t>(), end = e["data_offsets"][1].get<uint64_t>();
    const float big = 3e38f;
    for (uint64_t o = b; o < end; o += 4) std::memcpy(data.data() + o, &big, 4);
    write_file(file, bytes.substr(0, 8 + n) + data);
  }
  const std::string run_dir = tmp_ / "run";
  r = run_moe(kOneThread + "train --init " + q(ckpt) + " --data " + q(dataset()) + " --out " + q(run_dir) +
              " --batch 4 --seq 32 --steps 3 --eval-every 0");
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.err.find("step 1: loss is"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("nothing saved"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(run_dir)) << "a failed new run left its directory";

  // --skip-nonfinite: such steps are skipped (no update, logged) up to N in a row.
  r = run_moe(kOneThread + "train --init " + q(ckpt) + " --data " + q(dataset()) + " --out " + q(run_dir) +
              " --batch 4 --seq 32 --steps 6 --eval-every 0 --skip-nonfinite 2");
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.err.find("step 3: loss is"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("after 2 skipped steps in a row, --skip-nonfinite 2"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(run_dir));
  r = run_moe(kOneThread + "train --init " + q(ckpt) + " --data " + q(dataset()) + " --out " + q(run_dir) +
              " --batch 4 --seq 32 --steps 2 --eval-every 0 --eval-batches 1 --skip-nonfinite 5");
  EXPECT_EQ(r.code, 0) << r.err;
  int skipped = 0;
  for (const json& j : read_jsonl(run_dir + "/log.jsonl")) skipped += j.contains("skipped");
  EXPECT_EQ(skipped, 2);
  // The skipped steps changed nothing: the weights are the --init checkpoint's.
  EXPECT_TRUE(same_tensors(run_dir + "/checkpoint-2/model.safetensors", ckpt + "/model.safetensors"));
}

}  // namespace
}  // namespace moe::clitest
