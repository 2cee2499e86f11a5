// moe: the command line. Each subcommand lives in its own cmd_*.cpp and registers
// itself here; library code never sees the command line.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>

#include "cli/commands.h"
#include "tensor/cpu.h"

int main(int argc, char** argv) {
  CLI::App app{"moe: train Mixture-of-Experts language models and upcycle dense checkpoints into them"};
  app.set_version_flag("--version", std::string("moe ") + MOE_VERSION);
  int threads = 0;
  app.add_option("--threads", threads, "threads to use (default: all cores; never more than the cores)")
      ->check(CLI::Range(0, 4096));
  app.parse_complete_callback([&] { moe::threads_set(threads); });

  moe::cli::register_bench(app);
  moe::cli::register_data(app);
  moe::cli::register_train(app);
  moe::cli::register_eval(app);
  moe::cli::register_generate(app);
  moe::cli::register_inspect(app);
  moe::cli::register_upcycle(app);

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
    std::fprintf(stderr, "moe: %s (see moe --help)\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "moe: error: %s\n", e.what());
    return 1;
  }
  if (app.get_subcommands().empty()) {
    // Checked after parsing (not with require_subcommand) so that an unknown flag
    // is reported as itself rather than as a missing subcommand.
    std::fprintf(stderr, "moe: a subcommand is required (see moe --help)\n");
    return 2;
  }
  return moe::cli::exit_code();
}
