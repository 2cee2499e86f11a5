// moe: the command line. Each subcommand lives in its own cmd_*.cpp and registers
// itself here; library code never sees the command line.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "cli/openmp_env.h"
#include "dist/comm.h"
#include "io/signals.h"
#include "tensor/cpu.h"

namespace {

// Under mpirun: MPI starts before anything else; ranks other than 0 keep quiet (their
// stdout and stderr go to /dev/null) except for errors, and an error on any rank ends
// every rank (MPI_Abort) with its one line, never a hang.
int report(int code, const std::string& line) {
  if (moe::launched_by_mpi() && moe::comm_world().size() > 1) moe::comm_fail(line, code);
  std::fprintf(stderr, "moe: %s\n", line.c_str());
  return code;
}

// A command line that does not parse fails the same way on every rank, before any rank
// has started a collective: rank 0 says it once and every rank exits with the code
// (MPI finalized at exit), without MPI_Abort's per-rank lines and notice (issue 21,
// item 13).
int report_usage(const std::string& line) {
  if (!moe::launched_by_mpi() || moe::comm_world().rank() == 0) std::fprintf(stderr, "moe: %s\n", line.c_str());
  return moe::cli::kExitUsage;
}

}  // namespace

int main(int argc, char** argv) {
  moe::cli::openmp_spin_unless_chosen(argv);  // may execute moe again, with GOMP_SPINCOUNT=1000
  // Ctrl-C, SIGTERM, SIGHUP: taken by a thread of their own, before any other thread
  // (MPI's, OpenMP's) exists; no temp directory or file is left behind, exit 128 + N
  // (the training loop saves a checkpoint first: io/signals.h).
  moe::signals_start();
  if (moe::launched_by_mpi()) moe::comm_quiet_other_ranks(moe::comm_world());
  CLI::App app{"moe: train Mixture-of-Experts language models and upcycle dense checkpoints into them"};
  app.set_version_flag("--version", std::string("moe ") + MOE_VERSION);
  app.footer("Exit codes: 0 done, 1 bad data or I/O, 2 usage error, 128+N stopped by signal N after saving.");
  // Inherited by every subcommand created below: --help shows each flag's default,
  // and flags a subcommand does not know (the global --threads) may follow it.
  app.option_defaults()->always_capture_default();
  app.fallthrough();
  int threads = 0;
  app.add_option("--threads", threads, "threads to use, before or after the subcommand (0: all cores, shared among "
                 "the ranks of mpirun on this machine; never more "
                 "than the cores)")
      ->check(moe::cli::InRange(0, 4096));
  app.parse_complete_callback([&] {  // before any subcommand runs
    moe::cli::refuse_nonfinite_flags(app);
    moe::threads_set(threads);
  });

  moe::cli::register_bench(app);
  moe::cli::register_data(app);
  moe::cli::register_train(app);
  moe::cli::register_eval(app);
  moe::cli::register_generate(app);
  moe::cli::register_inspect(app);
  moe::cli::register_upcycle(app);
  moe::cli::register_export(app);
  moe::cli::register_report(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // Usage errors (unknown flag, bad value, missing subcommand): one line, exit 2.
    return report_usage(moe::cli::parse_error_message(app, e));
  } catch (const std::exception& e) {
    if (moe::cli::is_usage_error(e)) {
      const CLI::App* sub = moe::cli::deepest_subcommand(app);
      return report(moe::cli::kExitUsage,
                    std::string(e.what()) + " (see " + moe::cli::command_path(sub) + " --help)");
    }
    return report(moe::cli::kExitBadData, std::string("error: ") + e.what());
  }
  if (app.get_subcommands().empty()) {
    // Checked after parsing (not with require_subcommand) so that an unknown flag
    // is reported as itself rather than as a missing subcommand.
    std::fprintf(stderr, "moe: a subcommand is required (see moe --help)\n");
    return 2;
  }
  return moe::cli::exit_code();
}
