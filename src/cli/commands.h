// Subcommand registration. Each register_X adds one subcommand to the app; its
// callback does the work and sets the exit code through set_exit_code.
#pragma once
#include <CLI/CLI.hpp>
#include <string>
#include <vector>

namespace moe::cli {

void register_bench(CLI::App& app);  // cmd_bench.cpp
void register_data(CLI::App& app);   // cmd_data.cpp
void register_train(CLI::App& app);  // cmd_train.cpp
void register_eval(CLI::App& app);   // cmd_eval.cpp
void register_generate(CLI::App& app);  // cmd_generate.cpp
void register_inspect(CLI::App& app);   // cmd_inspect.cpp
void register_upcycle(CLI::App& app);   // cmd_upcycle.cpp
void register_export(CLI::App& app);    // cmd_export.cpp
void register_report(CLI::App& app);    // cmd_report.cpp

// --moe-layers: "every-other" | "all" | "1,3,5" (cmd_train.cpp; shared with upcycle).

void set_exit_code(int code);
int exit_code();

}  // namespace moe::cli
