// Temporary paths that a signal must not leave behind. Every temp that moe's writers
// make (temp_dir_beside's OUT.tmp-PID directories, AtomicFile's FILE.tmp.PID) is
// registered while it exists; temps_remove_all() deletes the registered ones with
// system calls only (async-signal-safe), so that a SIGINT/SIGTERM/SIGHUP handler can
// call it and exit. moe installs such a handler for every command (cli/main.cpp); the
// training loop replaces it with its own, which saves a checkpoint first.
#pragma once
#include <string>

namespace moe {

void temp_register(const std::string& path);
void temp_unregister(const std::string& path);  // after it was moved into place or removed
void temps_remove_all();                         // async-signal-safe

// Installs, for SIGINT, SIGTERM and SIGHUP, the handler that removes the registered temps
// and exits 128 + N.
void temps_remove_on_signals();

}  // namespace moe
