// SIGINT, SIGTERM and SIGHUP never run a handler on a computing thread (issue 21,
// item 1: oneDNN's GEMM kernels move the stack pointer into a heap buffer, and a
// handler's frame written there corrupted the heap). After signals_start() every
// thread that OpenMP makes has them blocked; one waiting thread takes them: it records
// them for a listening training loop, and otherwise ends the process with 128 + N, at
// the end of a deferred section when one is running.
#include <gtest/gtest.h>
#include <omp.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "io/signals.h"

namespace moe {
namespace {

[[noreturn]] void check_then_signal_in_a_deferred_section() {
  signals_start();
  std::atomic<int> unblocked{0}, seen{0};
#pragma omp parallel num_threads(2)
  {
    sigset_t cur;
    pthread_sigmask(SIG_SETMASK, nullptr, &cur);
    for (int s : {SIGINT, SIGTERM, SIGHUP})
      if (!sigismember(&cur, s)) unblocked++;
    seen++;
  }
  if (seen != 2) ::_exit(10);      // the region did not run on two threads
  if (unblocked != 0) ::_exit(11);  // a computing thread would take a signal
  {
    SignalsListen listen;
    ::kill(::getpid(), SIGTERM);
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (signals_received() != SIGTERM && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    if (signals_received() != SIGTERM) ::_exit(12);  // not recorded for the loop
  }
  {
    SignalsDeferred section;
    ::kill(::getpid(), SIGHUP);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    if (::write(2, "section done\n", 13) < 0) ::_exit(13);  // still alive: the exit waits for the section
  }
  ::_exit(14);  // not reached: the section's end exits 128 + SIGHUP
}

TEST(Signals, TakenByTheirOwnThreadNeverByAComputingOne) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");  // a fresh process: no thread exists before signals_start
  EXPECT_EXIT(check_then_signal_in_a_deferred_section(), ::testing::ExitedWithCode(128 + SIGHUP), "section done");
}

}  // namespace
}  // namespace moe
