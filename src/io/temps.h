// Temporary paths that a signal must not leave behind. Every temp that moe's writers
// make (temp_dir_beside's OUT.tmp-PID directories, AtomicFile's FILE.tmp.PID) is
// registered while it exists; temps_remove_all() deletes the registered ones with
// system calls only (async-signal-safe), so that whatever takes SIGINT/SIGTERM/SIGHUP
// can call it and exit: io/signals.h's waiting thread, for every command (cli/main.cpp)
// except while the training loop listens (it saves a checkpoint first).
#pragma once
#include <string>

namespace moe {

void temp_register(const std::string& path);
void temp_unregister(const std::string& path);  // after it was moved into place or removed
void temps_remove_all();                         // async-signal-safe

}  // namespace moe
