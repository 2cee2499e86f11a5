// A run that survives its environment: SIGTERM (what `timeout` and job schedulers
// send) and SIGHUP stop training like Ctrl-C: a checkpoint, a resume hint, exit
// 128 + N; then --resume continues bit-exactly (compared with a run that was never
// stopped, at the same step).
#include <gtest/gtest.h>
#include <signal.h>

#include <unistd.h>

#include <filesystem>

#include "cli/cli_util.h"

namespace fs = std::filesystem;

namespace moe::clitest {
namespace {

// The newest checkpoint-N of a run directory (-1: none).
int newest_checkpoint(const std::string& run_dir) {
  int best = -1;
  for (const auto& e : fs::directory_iterator(run_dir)) {
    const std::string n = e.path().filename().string();
    if (n.rfind("checkpoint-", 0) == 0) best = std::max(best, std::stoi(n.substr(11)));
  }
  return best;
}

// Polls (every 0.2 ms, up to a minute) until a checkpoint is being written: its
// temporary directory (.tmp-checkpoint-N-PID) exists in the run directory.
bool wait_for_checkpoint_write(const std::string& run_dir) {
  for (int i = 0; i < 300000; i++) {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(run_dir, ec))
      if (e.path().filename().string().rfind(".tmp-checkpoint-", 0) == 0) return true;
    ::usleep(200);
  }
  return false;
}

std::vector<std::string> train_args(const std::string& out, const std::string& extra) {
  std::vector<std::string> a{"--threads", "1", "train", "--data", dataset(), "--out", out, "--preset", "tiny",
                             "--batch", "2", "--seq", "32", "--steps", "100000", "--warmup", "5", "--eval-every",
                             "0", "--eval-batches", "1", "--seed", "3"};
  if (!extra.empty()) a.push_back(extra);
  return a;
}

std::string cmdline(const std::vector<std::string>& a) {
  std::string s;
  for (size_t i = 0; i < a.size(); i++) s += (i ? " " : "") + q(a[i]);
  return s;
}

// Starts a long run, sends `sig` once it has trained a few steps, then checks what the
// user sees and that --resume to step S + 5 equals a straight run to S + 5.
void check_stop_and_resume(int sig, int code, const std::string& name, const std::string& extra) {
  TempDir t("signal_" + name + (extra.empty() ? "" : "_saving"));
  const std::string a = t / "a", b = t / "b";
  std::vector<std::string> args = train_args(a, extra);
  Child c = spawn_moe(args, t / "out.txt", t / "err.txt");
  ASSERT_TRUE(wait_for_step(c, a, 3)) << read_file(t / "err.txt");
  if (!extra.empty()) ASSERT_TRUE(wait_for_checkpoint_write(a)) << read_file(t / "err.txt");
  ::kill(c.pid, sig);
  ASSERT_EQ(wait_moe(c), code) << read_file(t / "err.txt");
  const std::string err = read_file(t / "err.txt"), out = read_file(t / "out.txt");
  EXPECT_NE(err.find("stopped by " + name), std::string::npos) << err;
  // the command that resumes exactly: the run's thread count too (issue 21: it was dropped)
  EXPECT_NE(err.find("resume with  moe --threads 1 train --out " + a + " --resume"), std::string::npos) << err;
  EXPECT_NE(out.find("val loss not evaluated yet"), std::string::npos) << out;  // --eval-every 0: none before the end
  const int s = newest_checkpoint(a);
  ASSERT_GE(s, 3) << err;
  EXPECT_NE(out.find("step " + std::to_string(s) + ":"), std::string::npos) << out;
  EXPECT_TRUE(fs::exists(a + "/checkpoint-" + std::to_string(s) + "/optimizer.safetensors"));
  for (const auto& e : fs::directory_iterator(a))
    EXPECT_NE(e.path().filename().string().rfind(".tmp", 0), 0u) << "left behind: " << e.path();

  const std::string stop = " --stop-at " + std::to_string(s + 5);
  Proc r = run_moe(kOneThread + "train --out " + q(a) + " --resume" + stop);
  ASSERT_EQ(r.code, 0) << r.err;
  r = run_moe(cmdline(train_args(b, extra)) + stop);
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string ck = "/checkpoint-" + std::to_string(s + 5);
  EXPECT_TRUE(same_tensors(a + ck + "/model.safetensors", b + ck + "/model.safetensors"));
  EXPECT_TRUE(same_tensors(a + ck + "/optimizer.safetensors", b + ck + "/optimizer.safetensors"));
}

TEST(CliSignals, SigtermSavesThenResumesExactly) { check_stop_and_resume(SIGTERM, 143, "SIGTERM", ""); }
TEST(CliSignals, SighupSavesThenResumesExactly) { check_stop_and_resume(SIGHUP, 129, "SIGHUP", ""); }
// A checkpoint every step, and the signal sent once a checkpoint's temporary directory
// exists (so while one is being written, unless it completes in the microseconds
// between): the write completes, the run stops after it, nothing half-written remains.
TEST(CliSignals, SigtermWhileSavingEveryStep) {
  check_stop_and_resume(SIGTERM, 143, "SIGTERM", "--save-every=1");
}

// One writer per run (issue 21: two moe train on one --out mixed their recipes,
// checkpoints and logs). While a run trains, a second new run and a --resume of it on the
// same --out are refused in one line and change nothing; once it has stopped (the kernel
// drops the lock with the process, whatever killed it), --resume takes the run.
TEST(CliSignals, ASecondWriterOfARunIsRefused) {
  TempDir t("run_lock");
  const std::string a = t / "a";
  Child c = spawn_moe(train_args(a, ""), t / "out.txt", t / "err.txt");  // no checkpoint for a while
  ASSERT_TRUE(wait_for_step(c, a, 2)) << read_file(t / "err.txt");
  const std::string recipe = read_file(a + "/recipe.json");
  for (const std::string& second : {cmdline(train_args(a, "")) + " --lr 3e-3",
                                    kOneThread + "train --out " + q(a) + " --resume --steps 200000"}) {
    Proc r = run_moe(second);
    expect_one_line_error(r, 2, {"--out " + a, "another moe train is writing this run"}, second);
  }
  EXPECT_EQ(read_file(a + "/recipe.json"), recipe) << "the second writer changed the recipe";
  ::kill(c.pid, SIGKILL);  // no cleanup at all: only the kernel releases the lock
  ASSERT_EQ(wait_moe(c), -1);
  Proc r = run_moe(cmdline(train_args(a, "")) + " --stop-at 3");  // the run never saved: a new one may start
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(fs::exists(a + "/checkpoint-3/model.safetensors"));
}

// Ctrl-C, SIGTERM and SIGHUP in the middle of the other long commands' writes (a
// failpoint raises the signal at the N-th tensor written, or between moe data's tokenizer
// and shards): exit 128 + N, no output, and no OUT.tmp-PID directory or .tmp file left
// (issue 21: up to 1.9 GB were left).
TEST(CliSignals, UpcycleExportAndDataLeaveNothingHalfWritten) {
  TempDir t("signal_writers");
  fs::create_directories(t / "text");
  int copied = 0;
  for (const auto& e : fs::directory_iterator("/usr/share/common-licenses"))
    if (e.is_regular_file() && copied < 6 && fs::file_size(e.path()) > 10000)
      fs::copy_file(e.path(), t / ("text/" + std::to_string(copied++) + ".txt"));
  const std::string ckpt = run_checkpoint();
  for (const auto& [sig, name] : {std::pair{SIGTERM, "SIGTERM"}, std::pair{SIGINT, "SIGINT"}, std::pair{SIGHUP, "SIGHUP"}}) {
    const std::string out = t / (std::string("out_") + name);
    fs::create_directories(out);
    const std::vector<std::pair<std::string, std::string>> cmds = {
        {"upcycle --from " + q(ckpt) + " --out " + q(out + "/up") + " --experts 4", "write.tensor:3"},
        {"export --model " + q(ckpt) + " --out " + q(out + "/st"), "write.tensor:2"},
        {"export --model " + q(ckpt) + " --out " + q(out + "/m.gguf") + " --format gguf", "write.tensor:2"},
        {"data --input " + q(t / "text") + " --out " + q(out + "/data") + " --vocab-size 400", "data.write:1"},
    };
    for (const auto& [cmd, point] : cmds) {
      Proc r = run_moe(kOneThread + cmd, "MOE_FAILPOINT=" + point + ":" + name + " ");
      EXPECT_EQ(r.code, 128 + sig) << name << " during moe " << cmd << "\n" << r.err;
      std::vector<std::string> left;
      for (const auto& e : fs::directory_iterator(out)) left.push_back(e.path().filename().string());
      EXPECT_TRUE(left.empty()) << name << " during moe " << cmd << " left " << left.size() << " entries, first "
                                << (left.empty() ? "" : left[0]);
      for (const std::string& l : left) fs::remove_all(out + "/" + l);
    }
  }
  // and without a signal the same commands write their outputs (the failpoints are off)
  Proc r = run_moe(kOneThread + "export --model " + q(ckpt) + " --out " + q(t / "whole"));
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(fs::exists(t / "whole/model.safetensors"));
}


// The value of `var` in a running moe's environment (its /proc/PID/environ), "" when
// unset; `set` ("NAME=value") is put in the environment moe starts with.
std::string running_env(const std::string& var, const std::string& set) {
  TempDir t("wait_policy");
  std::vector<std::string> args = train_args(t / "run", "");
  const std::string name = set.substr(0, set.find('='));
  if (!set.empty()) ::setenv(name.c_str(), set.substr(set.find('=') + 1).c_str(), 1);
  Child c = spawn_moe(args, t / "out.txt", t / "err.txt");
  if (!set.empty()) ::unsetenv(name.c_str());
  EXPECT_TRUE(wait_for_step(c, t / "run", 1)) << read_file(t / "err.txt");
  std::string env = read_file("/proc/" + std::to_string(c.pid) + "/environ"), value;
  for (size_t at = 0; at < env.size();) {
    const size_t end = env.find('\0', at);
    const std::string kv = env.substr(at, end == std::string::npos ? std::string::npos : end - at);
    if (kv.rfind(var + "=", 0) == 0) value = kv.substr(var.size() + 1);
    if (end == std::string::npos) break;
    at = end + 1;
  }
  ::kill(c.pid, SIGTERM);
  EXPECT_EQ(wait_moe(c), 143) << read_file(t / "err.txt");
  return value;
}

// OpenMP's threads spin briefly, then sleep, when they wait (issue 21, item 11: on a
// busy machine libgomp's long spin made 2 threads slower than 1), unless the user chose.
TEST(CliSignals, OpenMpThreadsSpinBrieflyUnlessTheUserChose) {
  if (std::getenv("OMP_WAIT_POLICY") || std::getenv("GOMP_SPINCOUNT"))
    GTEST_SKIP() << "OMP_WAIT_POLICY or GOMP_SPINCOUNT is set in this environment: moe keeps it";
  EXPECT_EQ(running_env("GOMP_SPINCOUNT", ""), "1000");
  EXPECT_EQ(running_env("GOMP_SPINCOUNT", "OMP_WAIT_POLICY=active"), "") << "the user's policy, nothing added";
  EXPECT_EQ(running_env("GOMP_SPINCOUNT", "GOMP_SPINCOUNT=50"), "50");
}

}  // namespace
}  // namespace moe::clitest
