// SIGTERM, SIGINT and SIGHUP at random moments of a training run (issue 21, item 1:
// 6 of 59 runs signalled on a loaded machine died of heap corruption, with no
// checkpoint). Every run must exit 128 + N, leave nothing half-written, and, once it
// has trained a step, leave a checkpoint that loads whole: the model, its optimizer
// moments and its trainer state, at the step the stop message names. A busy thread in
// the test keeps one core loaded meanwhile.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <random>
#include <thread>

#include "cli/cli_util.h"
#include "model/checkpoint.h"
#include "model/decoder/model_io.h"
#include "train/state.h"

namespace fs = std::filesystem;

namespace moe::clitest {
namespace {

struct Outcome {
  int code;         // the exit status; -1 when killed by a signal
  int killed_by;    // that signal (0: it exited)
  std::string err;
};

// Starts a tiny run on `threads` threads, sends `sig` `delay_ms` after the first
// training step is logged (a negative delay: -delay_ms after the start, before any
// step may have run), and returns the exit status and stderr.
Outcome signalled_run(const TempDir& t, const std::string& run, int threads, int sig, int delay_ms) {
  const std::vector<std::string> args{"--threads", std::to_string(threads), "train", "--data", dataset(), "--out",
                                      run, "--preset", "tiny", "--batch", "2", "--seq", "32", "--steps", "100000",
                                      "--warmup", "5", "--eval-every", "0", "--save-every", "7", "--seed", "3"};
  Child c = spawn_moe(args, t / "out.txt", t / "err.txt");
  if (delay_ms >= 0) {
    if (!wait_for_step(c, run, 1, 120)) return {-2, 0, read_file(t / "err.txt")};
    ::usleep(useconds_t(delay_ms) * 1000);
  } else {
    ::usleep(useconds_t(-delay_ms) * 1000);
  }
  ::kill(c.pid, sig);
  int status = 0;
  if (::waitpid(c.pid, &status, 0) != c.pid) return {-3, 0, read_file(t / "err.txt")};
  if (WIFSIGNALED(status)) return {-1, WTERMSIG(status), read_file(t / "err.txt")};
  return {WEXITSTATUS(status), 0, read_file(t / "err.txt")};
}

// The newest checkpoint-N of a run directory (-1: none, or no directory).
int newest_checkpoint(const std::string& run_dir) {
  int best = -1;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(run_dir, ec)) {
    const std::string n = e.path().filename().string();
    if (n.rfind("checkpoint-", 0) == 0) best = std::max(best, std::stoi(n.substr(11)));
  }
  return best;
}

// A thread that keeps one core busy while it lives: the runs compete for the cores as
// they did on the loaded machine where the crashes were seen.
class Load {
 public:
  Load() : t_([this] {
    volatile double x = 1;
    while (!stop_.load(std::memory_order_relaxed)) x = x * 1.0000001 + 1e-9;
  }) {}
  ~Load() {
    stop_ = true;
    t_.join();
  }

 private:
  std::atomic<bool> stop_{false};
  std::thread t_;
};

TEST(CliSignals, AnySignalAtAnyMomentLeavesALoadableCheckpoint) {
  Load load;
  // A new seed each run, printed with every failure, so that CI keeps trying new moments.
  const unsigned seed = unsigned(std::chrono::steady_clock::now().time_since_epoch().count());
  std::mt19937 rng(seed);
  struct Sig {
    int sig;
    const char* name;
  };
  const Sig sigs[] = {{SIGTERM, "SIGTERM"}, {SIGINT, "SIGINT"}, {SIGHUP, "SIGHUP"}};
  const int kRuns = 54;  // 18 per signal; one and two threads alternate
  int with_checkpoint = 0;
  for (int i = 0; i < kRuns; i++) {
    const Sig& s = sigs[i % 3];
    const int threads = 1 + (i / 3) % 2;
    // Mostly while training (0-400 ms after step 1: steps, checkpoint writes every 7
    // steps); every sixth run 0-150 ms after the start (setup, data, the first step).
    const int delay = i % 6 == 5 ? -int(rng() % 150) : int(rng() % 400);
    const std::string what = "run " + std::to_string(i) + ": " + s.name + ", " + std::to_string(threads) +
                             " threads, " + (delay < 0 ? std::to_string(-delay) + " ms after the start"
                                                       : std::to_string(delay) + " ms after step 1") +
                             " (seed " + std::to_string(seed) + ")";
    TempDir t("signal_storm");
    const std::string run = t / "run";
    const Outcome o = signalled_run(t, run, threads, s.sig, delay);
    // A signal that lands before main() has installed its handlers (the first few
    // milliseconds: exec, loading the libraries) takes its default action: killed by
    // it, which a shell shows as 128 + N too; nothing can have been written then.
    if (delay < 0 && o.killed_by == s.sig) {
      EXPECT_FALSE(fs::exists(run)) << what << ": killed before main(), yet the run directory exists";
      continue;
    }
    ASSERT_EQ(o.code, 128 + s.sig) << what << (o.killed_by ? ": killed by signal " + std::to_string(o.killed_by) : "")
                                   << "\n" << o.err;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(run, ec))
      EXPECT_NE(e.path().filename().string().rfind(".tmp", 0), 0u) << what << ": left behind " << e.path();
    const int step = newest_checkpoint(run);
    if (delay >= 0) {
      ASSERT_GE(step, 1) << what << ": trained a step, but no checkpoint\n" << o.err;
    }
    if (step < 0) continue;  // stopped before the first step: nothing to save
    with_checkpoint++;
    EXPECT_NE(o.err.find("stopped by " + std::string(s.name)), std::string::npos) << what << "\n" << o.err;
    EXPECT_NE(o.err.find(" at step " + std::to_string(step) + ", checkpoint saved"), std::string::npos)
        << what << "\n" << o.err;
    const std::string ck = run + "/checkpoint-" + std::to_string(step);
    try {
      auto m = model_load(ck);
      AdamW opt(m->layout());
      optimizer_load(opt, *m, ck);
      EXPECT_EQ(trainer_state_load(ck).step, step) << what;
    } catch (const std::exception& e) {
      ADD_FAILURE() << what << ": " << ck << " does not load: " << e.what();
    }
  }
  EXPECT_GE(with_checkpoint, kRuns * 5 / 6) << "the signals came too early to test the checkpoints (seed " << seed
                                            << ")";
}

}  // namespace
}  // namespace moe::clitest
