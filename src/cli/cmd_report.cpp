// moe report RUN_DIR... --out DIR: the HTML training report. The page is drawn by
// src/report/moe_report.py with matplotlib (Debian's python3-matplotlib); this command
// finds the script (installed beside the binary, else in the source tree it was built
// from) and the interpreter, checks them, and hands over (exec) with the arguments.
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "io/files.h"
#include "io/signals.h"

namespace moe::cli {
namespace {

struct ReportOpts {
  std::vector<std::string> dirs;
  std::string out, title;
};

std::string self_dir() {
  std::vector<char> buf(4096);
  const ssize_t n = readlink("/proc/self/exe", buf.data(), buf.size() - 1);
  if (n <= 0) return "";
  std::string p(buf.data(), size_t(n));
  return p.substr(0, p.rfind('/'));
}

std::string report_script() {
  if (const char* e = std::getenv("MOE_REPORT_SCRIPT")) return e;
  const std::string installed = self_dir() + "/../share/moe/report/moe_report.py";
  if (path_exists(installed)) return installed;
  return std::string(MOE_SOURCE_DIR) + "/src/report/moe_report.py";
}

void run_report(const ReportOpts& o) {
  const std::string script = report_script();
  const char* py_env = std::getenv("MOE_PYTHON");
  const std::string python = py_env ? py_env : "/usr/bin/python3";
  if (!path_exists(script))
    throw std::runtime_error("report: " + script + " not found (the report script; set MOE_REPORT_SCRIPT)");
  if (python.find('/') != std::string::npos && access(python.c_str(), X_OK) != 0)
    throw std::runtime_error("report: " + python + " is not an executable Python (apt-get install python3 "
                             "python3-matplotlib, or set MOE_PYTHON)");
  std::vector<std::string> args{python, script};
  args.insert(args.end(), o.dirs.begin(), o.dirs.end());
  args.insert(args.end(), {"--out", o.out});
  if (!o.title.empty()) args.insert(args.end(), {"--title", o.title});
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::fflush(stdout);
  std::fflush(stderr);
  signals_unblock_for_exec();  // Python takes Ctrl-C itself
  execvp(python.c_str(), argv.data());  // a bare MOE_PYTHON name is looked up in PATH
  throw std::runtime_error("report: cannot run " + python + " " + script + ": " + std::strerror(errno));
}

}  // namespace

void register_report(CLI::App& app) {
  auto o = std::make_shared<ReportOpts>();
  CLI::App* sub = app.add_subcommand(
      "report", "An HTML page about runs: loss against steps, tokens, FLOPs and wall-clock, expert load, the "
                "step 0 of upcycled checkpoints, the protocol's comparison (needs python3-matplotlib)");
  sub->add_option("DIR", o->dirs,
                  "run directories (moe train --out), upcycled checkpoints (moe upcycle --out), protocol outputs "
                  "(experiments/protocol.py --out)")
      ->required();
  sub->add_option("--out", o->out, "directory to write index.html to")->required();
  sub->add_option("--title", o->title, "the page's title");
  sub->callback([o] { run_report(*o); });
}

}  // namespace moe::cli
