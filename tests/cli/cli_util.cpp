#include "cli/cli_util.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "io/safetensors.h"

namespace fs = std::filesystem;

namespace moe::clitest {

Proc run_moe(const std::string& args, const std::string& prefix) {
  char err_path[] = "/tmp/moe_test_cli_XXXXXX";
  int fd = mkstemp(err_path);
  if (fd < 0) ADD_FAILURE() << "mkstemp failed";
  close(fd);
  std::string cmd = prefix + "'" + MOE_BINARY + "' " + args + " 2>'" + err_path + "'";
  Proc r;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) {
    ADD_FAILURE() << "popen failed: " << cmd;
    return r;
  }
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.err = read_file(err_path);
  std::remove(err_path);
  return r;
}

Child spawn_moe(const std::vector<std::string>& args, const std::string& out_path, const std::string& err_path) {
  Child c{-1, out_path, err_path};
  std::vector<std::string> argv_s{MOE_BINARY};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  c.pid = ::fork();
  if (c.pid == 0) {
    int o = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int e = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (o < 0 || e < 0) ::_exit(127);
    ::dup2(o, 1), ::dup2(e, 2);
    ::execv(MOE_BINARY, argv.data());
    ::_exit(127);
  }
  if (c.pid < 0) ADD_FAILURE() << "fork failed";
  return c;
}

int wait_moe(const Child& c) {
  int status = 0;
  if (::waitpid(c.pid, &status, 0) != c.pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

bool wait_for_step(const Child& c, const std::string& run_dir, int step, double limit_s) {
  for (int i = 0; i < int(limit_s * 50); i++) {
    for (const std::string& l : lines_of(read_file(run_dir + "/log.jsonl"))) {
      nlohmann::json j = nlohmann::json::parse(l, nullptr, false);
      if (!j.is_discarded() && j.contains("loss") && j.value("step", 0) >= step) return true;
    }
    int status = 0;
    if (::waitpid(c.pid, &status, WNOHANG) == c.pid) {
      ADD_FAILURE() << "moe ended before step " << step << ": " << read_file(c.err_path);
      return false;
    }
    ::usleep(20000);
  }
  return false;
}

std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) out.push_back(line);
  return out;
}

std::string q(const std::string& path) { return "'" + path + "'"; }

std::string copy_files(const std::string& from, const std::string& to, const std::vector<std::string>& names) {
  fs::create_directories(to);
  for (const std::string& n : names) fs::copy(from + "/" + n, to + "/" + n);
  return to;
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

void write_file(const std::string& path, const std::string& bytes) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), std::streamsize(bytes.size()));
  if (!f) ADD_FAILURE() << "cannot write " << path;
}

std::vector<nlohmann::json> read_jsonl(const std::string& path) {
  std::vector<nlohmann::json> out;
  for (const std::string& l : lines_of(read_file(path))) {
    nlohmann::json j = nlohmann::json::parse(l, nullptr, false);
    if (j.is_discarded() || !j.is_object()) ADD_FAILURE() << path << ": not a JSON object: " << l;
    out.push_back(j);
  }
  return out;
}

TempDir::TempDir(const std::string& name)
    : path_((fs::path(MOE_TEST_BIN) / "tmp_cli" / (std::to_string(::getpid()) + "_" + name)).string()) {
  fs::remove_all(path_);
  fs::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

void expect_one_line_error(const Proc& r, int code, const std::vector<std::string>& needles, const std::string& what) {
  SCOPED_TRACE(what);
  EXPECT_EQ(r.code, code) << "stderr: " << r.err << "\nstdout: " << r.out;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "stderr is not one line:\n" << r.err;
  EXPECT_EQ(r.err.rfind("moe: ", 0), 0u) << r.err;
  EXPECT_TRUE(r.out.empty()) << "stdout: " << r.out;
  for (const std::string& n : needles) EXPECT_NE(r.err.find(n), std::string::npos) << "'" << n << "' not in: " << r.err;
}

::testing::AssertionResult same_tensors(const std::string& a, const std::string& b) {
  try {
    SafeTensorsFile fa = SafeTensorsFile::open(a), fb = SafeTensorsFile::open(b);
    if (fa.tensors().size() != fb.tensors().size())
      return ::testing::AssertionFailure() << a << " has " << fa.tensors().size() << " tensors, " << b << " has "
                                           << fb.tensors().size();
    if (fa.tensors().empty()) return ::testing::AssertionFailure() << a << " has no tensors";
    for (const STEntry& ea : fa.tensors()) {
      const STEntry* eb = fb.find(ea.name);
      if (!eb) return ::testing::AssertionFailure() << "tensor " << ea.name << " missing from " << b;
      if (ea.dtype != eb->dtype || ea.shape != eb->shape)
        return ::testing::AssertionFailure() << "tensor " << ea.name << ": dtype/shape differ";
      if (std::memcmp(fa.data(ea), fb.data(*eb), ea.nbytes) != 0) {
        std::vector<float> va = fa.read_f32(ea), vb = fb.read_f32(*eb);
        size_t i = 0;
        while (i < va.size() && std::memcmp(&va[i], &vb[i], 4) == 0) i++;
        return ::testing::AssertionFailure() << "tensor " << ea.name << " differs first at element " << i << ": "
                                             << va[i] << " vs " << vb[i] << " (" << a << " vs " << b << ")";
      }
    }
    if (fa.metadata() != fb.metadata()) return ::testing::AssertionFailure() << "metadata differ";
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << e.what();
  }
  return ::testing::AssertionSuccess();
}

// ---------------------------------------------------------------- shared fixture

namespace {

std::string fixture_root() { return (fs::path(MOE_TEST_BIN) / "cli_fixture").string(); }

// Identifies the binary that made the fixture: a rebuilt moe rebuilds the fixture.
std::string binary_stamp() {
  struct stat st;
  if (::stat(MOE_BINARY, &st) != 0) return "missing";
  return std::to_string(st.st_size) + ":" + std::to_string(st.st_mtim.tv_sec) + "." +
         std::to_string(st.st_mtim.tv_nsec);
}

// The fixture's commands; they are part of its stamp, so changing them rebuilds it.
std::vector<std::string> fixture_commands(const std::string& dir) {
  return {"data --out " + q(dir + "/ds") + " --input " + q(dir + "/text") + " --vocab-size " + std::to_string(kVocab),
          kOneThread + "train --data " + q(dir + "/ds") + " --out " + q(dir + "/run") +
              " --preset tiny --family llama --batch " + std::to_string(kB) + " --seq " + std::to_string(kT) +
              " --steps " + std::to_string(kRunSteps) + " --lr 3e-3 --warmup 10 --eval-every " +
              std::to_string(kRunEvalEvery) + " --eval-batches " + std::to_string(kRunEvalBatches) + " --seed 11"};
}

void build_fixture(const std::string& dir) {
  fs::remove_all(dir);
  fs::create_directories(dir + "/text");
  // The regular files only (the directory's symlinks would duplicate texts).
  int copied = 0;
  for (const auto& e : fs::directory_iterator("/usr/share/common-licenses"))
    if (e.is_regular_file() && !e.is_symlink()) {
      fs::copy_file(e.path(), dir + "/text/" + e.path().filename().string());
      copied++;
    }
  if (copied < 5) throw std::runtime_error("/usr/share/common-licenses: expected Debian's license texts");
  for (const std::string& cmd : fixture_commands(dir)) {
    Proc r = run_moe(cmd);
    if (r.code != 0) throw std::runtime_error("fixture: moe " + cmd + " failed: " + r.err);
  }
}

struct Fixture {
  std::string ds, run;
  Fixture() {
    const std::string root = fixture_root();
    fs::create_directories(root);
    const std::string lock = root + ".lock";
    int fd = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0 || ::flock(fd, LOCK_EX) != 0) throw std::runtime_error(lock + ": cannot lock");
    const std::string stamp_path = root + "/stamp";
    std::string want = binary_stamp();
    for (const std::string& c : fixture_commands(root + "/data")) want += "\n" + c;
    try {
      if (read_file(stamp_path) != want) {
        fs::remove(stamp_path);
        build_fixture(root + "/data");
        write_file(stamp_path, want);
      }
    } catch (...) {
      ::close(fd);
      throw;
    }
    ::close(fd);  // releases the lock
    ds = root + "/data/ds";
    run = root + "/data/run";
  }
};

const Fixture& fixture() {
  static Fixture f;
  return f;
}

}  // namespace

const std::string& dataset() { return fixture().ds; }
const std::string& run() { return fixture().run; }
std::string run_checkpoint() { return run() + "/checkpoint-" + std::to_string(kRunSteps); }

}  // namespace moe::clitest
