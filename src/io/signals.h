// SIGINT, SIGTERM and SIGHUP are taken by a thread of their own, never by a thread
// that computes (issue 21, item 1).
//
// Why: oneDNN's x86 GEMM kernels point the stack pointer into a heap buffer while they
// run (valgrind: "client switching stacks", the main thread's SP inside a 16 KB block
// that libdnnl allocated). A signal handler entered on such a thread gets its frame
// (1-3 KB of saved registers) written below that pointer, into the heap: the
// "corrupted size vs. prev_size" and "double free or corruption" aborts of runs that a
// signal stopped (1 in a few hundred tiny runs, more under load).
//
// signals_start() blocks the three signals in the calling thread before any other
// thread exists, so that every thread made later (OpenMP's, oneDNN's, MPI's) inherits
// the mask, and starts a thread that waits for them (sigwait) and acts in ordinary
// thread context:
//   - while a training loop listens (SignalsListen): records the signal; the loop polls
//     signals_received(), saves a checkpoint and exits 128 + N;
//   - otherwise: removes the registered temps (io/temps.h) and exits 128 + N, at once,
//     or at the end of a section that must not be cut (SignalsDeferred: dir_commit's
//     two renames).
// A handler stays installed for a library thread that unblocks the signals: it passes
// the signal on to the waiting thread (pthread_kill, async-signal-safe).
#pragma once

namespace moe {

// Call first in main(), before any thread is created. Idempotent.
void signals_start();
// Before replacing this process with another program (execvp): the program gets the
// signals unblocked, as moe got them.
void signals_unblock_for_exec();
// Whether signals_start() ran (in-process tests of library code run without it).
bool signals_started();

// The stop signal received while a SignalsListen was alive (0: none).
int signals_received();
bool signals_listening();

class SignalsListen {
 public:
  SignalsListen();
  ~SignalsListen();
  SignalsListen(const SignalsListen&) = delete;
  SignalsListen& operator=(const SignalsListen&) = delete;
};

// A signal that arrives meanwhile (and is not being listened for) ends the process when
// the outermost section ends, not in the middle of it.
class SignalsDeferred {
 public:
  SignalsDeferred();
  ~SignalsDeferred();
  SignalsDeferred(const SignalsDeferred&) = delete;
  SignalsDeferred& operator=(const SignalsDeferred&) = delete;
};

}  // namespace moe
