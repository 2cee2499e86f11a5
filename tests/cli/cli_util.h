// Helpers for the CLI tests: run the moe binary, check one-line errors, read
// safetensors tensors byte for byte, and the shared fixture (a small dataset and a
// short training run) that every test process of test_cli reuses.
#pragma once
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace moe::clitest {

struct Proc {
  int code = -1;  // exit status, or -1 when the process did not exit normally
  std::string out, err;
};

// Runs `moe <args>` through the shell; stdout through a pipe, stderr through a file.
// `prefix` goes before the binary: environment assignments ("MOE_FAILPOINT=x "), or a
// wrapper ("timeout -s KILL 30 ").
Proc run_moe(const std::string& args, const std::string& prefix = "");

// `moe <args>` in the background (stdout and stderr into files), for tests that
// signal it; wait_moe() returns its exit status (-1 when it did not exit normally).
struct Child {
  int pid = -1;
  std::string out_path, err_path;
};
Child spawn_moe(const std::vector<std::string>& args, const std::string& out_path, const std::string& err_path);
int wait_moe(const Child& c);
// Polls (every 20 ms, up to `limit_s` seconds) until the run's log.jsonl has a step
// line at or past `step`; false when the limit passed or the process ended first.
bool wait_for_step(const Child& c, const std::string& run_dir, int step, double limit_s = 300);

std::vector<std::string> lines_of(const std::string& s);  // non-empty lines
// Creates directory `to` holding copies of `names` from directory `from` (a checkpoint
// with some of its files, to be broken by a test); returns `to`.
std::string copy_files(const std::string& from, const std::string& to, const std::vector<std::string>& names);
std::string q(const std::string& path);                    // 'path' quoted for the shell

std::string read_file(const std::string& path);
void write_file(const std::string& path, const std::string& bytes);
std::vector<nlohmann::json> read_jsonl(const std::string& path);

// A fresh directory under the build tree for one test, removed at the end of it.
class TempDir {
 public:
  explicit TempDir(const std::string& name);
  ~TempDir();
  const std::string& str() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// A failure as a user sees it: exit code `code`, exactly one line on stderr that
// starts with "moe: " and contains every needle, nothing on stdout.
void expect_one_line_error(const Proc& r, int code, const std::vector<std::string>& needles, const std::string& what);

// Every tensor of two safetensors files: same names, dtypes, shapes and bytes.
::testing::AssertionResult same_tensors(const std::string& a, const std::string& b);

// The shared fixture, built on first use by whichever test process comes first and
// reused (on disk, under the build tree) until the moe binary changes:
//   dataset(): the regular files of /usr/share/common-licenses (~250 KB of English,
//              Debian's base-files) through `moe data --vocab-size 512`;
//   run():     `moe train` of a tiny llama on it (kRunSteps steps of kB x kT, with
//              validation every kRunEvalEvery steps over kRunEvalBatches batches).
// Most commands run on one thread: on a loaded 2-core machine OpenMP's spinning
// threads make the tiny model's steps 10x slower, and results are deterministic for
// a given thread count either way (one resume test runs on all cores).
inline const std::string kOneThread = "--threads 1 ";
constexpr int kVocab = 512;
constexpr int kB = 4, kT = 32;
constexpr int kRunSteps = 120, kRunEvalEvery = 40, kRunEvalBatches = 4;
const std::string& dataset();
const std::string& run();
std::string run_checkpoint();  // run()/checkpoint-kRunSteps

}  // namespace moe::clitest
